//! The cluster's metrics (prometheus-client), registered by the program into the registry it serves.

use flow::PeerState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Gossip traffic counters, shared with the transport.
#[derive(Clone, Debug, Default)]
pub struct GossipStats {
    /// UDP payload bytes sent.
    pub sent_bytes: Counter,
    /// UDP payload bytes received (including datagrams that were dropped as invalid).
    pub received_bytes: Counter,
    /// Datagrams sent.
    pub sent_messages: Counter,
    /// Datagrams received.
    pub received_messages: Counter,
}

/// The `state` label of `rill_cluster_peers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `viewer`, `participant` or `terminating`.
    pub state: &'static str,
}

/// Every cluster metric; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetrics {
    /// Gossip traffic.
    pub gossip: GossipStats,
    /// Live peers (this node included) by state.
    pub peers: Family<StateLabel, Gauge>,
    /// This node's own state: 1 for the current state, 0 for the others.
    pub self_state: Family<StateLabel, Gauge>,
    /// Changes of the participant set that were reported to components.
    pub membership_changes: Counter,
    /// Live peers whose sharding scheme differs from ours (they would compute other owners).
    pub incompatible_peers: Gauge,
}

const STATES: [PeerState; 3] = [
    PeerState::Viewer,
    PeerState::Participant,
    PeerState::Terminating,
];

impl ClusterMetrics {
    /// Sets the peer gauges from a count per state, and the self state.
    pub(crate) fn set_peers(&self, counts: [i64; 3], own: PeerState) {
        for (i, s) in STATES.iter().enumerate() {
            let label = StateLabel { state: s.as_str() };
            self.peers.get_or_create(&label).set(counts[i]);
            self.self_state
                .get_or_create(&label)
                .set(i64::from(*s == own));
        }
    }

    /// Registers every metric under `rill_cluster_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rill_cluster_peers",
            "Live cluster peers, this node included, by state",
            self.peers.clone(),
        );
        registry.register(
            "rill_cluster_node_state",
            "This node's state in the cluster (1 for the current state)",
            self.self_state.clone(),
        );
        registry.register(
            "rill_cluster_gossip_sent_bytes",
            "Gossip bytes sent (UDP payload)",
            self.gossip.sent_bytes.clone(),
        );
        registry.register(
            "rill_cluster_gossip_received_bytes",
            "Gossip bytes received (UDP payload)",
            self.gossip.received_bytes.clone(),
        );
        registry.register(
            "rill_cluster_gossip_sent_messages",
            "Gossip datagrams sent",
            self.gossip.sent_messages.clone(),
        );
        registry.register(
            "rill_cluster_gossip_received_messages",
            "Gossip datagrams received",
            self.gossip.received_messages.clone(),
        );
        registry.register(
            "rill_cluster_membership_changes",
            "Changes of the set of participants reported to components",
            self.membership_changes.clone(),
        );
        registry.register(
            "rill_cluster_incompatible_peers",
            "Live peers using another sharding scheme than this node",
            self.incompatible_peers.clone(),
        );
    }
}

pub(crate) fn state_index(s: PeerState) -> usize {
    match s {
        PeerState::Viewer => 0,
        PeerState::Participant => 1,
        PeerState::Terminating => 2,
    }
}
