//! The cluster service as components see it.
//!
//! `flow` only defines the contract; `crates/cluster` implements it with gossip, and a process that is not
//! clustered uses [`Standalone`], which owns everything.

use std::fmt;

/// A node's state in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Known to the cluster but not taking work (before its first successful config load).
    Viewer,
    /// Takes its share of the work.
    Participant,
    /// Shutting down; its work moves to the others.
    Terminating,
}

impl PeerState {
    /// The name used in the API and UI.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Viewer => "viewer",
            PeerState::Participant => "participant",
            PeerState::Terminating => "terminating",
        }
    }
}

/// A member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node name.
    pub name: String,
    /// The address other nodes reach it at.
    pub addr: String,
    /// Whether this is the local node.
    pub is_self: bool,
    /// Its state.
    pub state: PeerState,
}

/// Membership and ownership, shared by every component of a process.
pub trait Cluster: Send + Sync + fmt::Debug + 'static {
    /// Whether clustering is enabled for this process.
    fn enabled(&self) -> bool;

    /// Whether this node owns the work item identified by `key` (for targets: their labels without
    /// `__meta_*`, in the sorted `{a="b", c="d"}` form). Every node must answer consistently for the same
    /// membership. Without peers, or when the lookup fails, the node keeps the item: a gap is worse than a
    /// duplicate.
    fn owns(&self, key: &[u8]) -> bool;

    /// The known peers, this node included.
    fn peers(&self) -> Vec<Peer>;
}

/// A process that is not clustered: it owns everything and is its only peer.
#[derive(Clone, Debug, Default)]
pub struct Standalone {
    /// The node name shown in the peers list.
    pub node_name: String,
}

impl Cluster for Standalone {
    fn enabled(&self) -> bool {
        false
    }
    fn owns(&self, _key: &[u8]) -> bool {
        true
    }
    fn peers(&self) -> Vec<Peer> {
        vec![Peer {
            name: self.node_name.clone(),
            addr: String::new(),
            is_self: true,
            state: PeerState::Participant,
        }]
    }
}
