//! Rill's cluster service: gossip membership with [chitchat] and target sharding, behind [`flow::Cluster`].
//!
//! - Membership: each node gossips over UDP (Scuttlebutt reconciliation) with up to three peers every
//!   [`ClusterConfig::gossip_interval`]; a phi-accrual failure detector declares a silent peer dead. Each
//!   node publishes its state under the key `state`: `viewer` at start, `participant` once the program says
//!   so (after its first successful config load), `terminating` when it is about to leave.
//! - Sharding: [`shard`] picks one owner for a key among the live participants (rendezvous hashing of the
//!   node names). A node with no participant to ask keeps the key.
//! - Changes of the participant set are debounced and reported to a callback (the program calls
//!   `Controller::cluster_changed`, which tells components to re-filter their work).
//!
//! ## Timing (defaults)
//! Gossip every second, with up to three peers. A node hears of each peer's heartbeat through any gossip
//! message that mentions it, about once per interval; the failure detector declares a peer dead when no
//! fresh heartbeat came for `phi_threshold` (6) times the mean interval between fresh heartbeats. So a peer
//! killed without warning is declared dead after about `phi_threshold × gossip_interval` (measured 5–8 s in a
//! 10-node cluster on loopback), and its keys move once the debounce (250 ms) has passed. Gossip costs about
//! 0.6 KB/s per node in a 10-node cluster, sent and received together (digests compressed against the
//! peer's last digest, see `transport`; 6 KB/s raw); halving the interval halves the detection time and
//! doubles the traffic. Joining is done here, not by chitchat's seed mechanism: the join addresses are
//! contacted every gossip interval while this node knows no live peer, and every rejoin interval; chitchat's
//! seeds would also be gossiped with on top of the three random peers, making the node everybody joined
//! through the busiest of the cluster. A node that terminates announces it and gossips for `leave_delay`
//! (3 intervals) before it stops, so its keys move without waiting for the failure detector.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
pub mod metrics;
pub mod shard;
mod transport;

pub use config::ClusterConfig;
pub use metrics::ClusterMetrics;

use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState,
};
use flow::{Peer, PeerState};
use shard::Member;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The chitchat key holding a node's state.
const KEY_STATE: &str = "state";
/// The chitchat key holding a node's sharding scheme.
const KEY_SHARD: &str = "shard";

/// Why the cluster service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node name is empty.
    #[error("the cluster node name is empty")]
    EmptyNodeName,
    /// The address to advertise is not one peers can reach.
    #[error(
        "cannot advertise {0} to peers: set the advertise address to an address they can reach"
    )]
    UnspecifiedAdvertiseAddress(SocketAddr),
    /// The advertise address flag is not an address.
    #[error("invalid cluster advertise address {value:?}: {reason}")]
    AdvertiseAddress {
        /// What was given.
        value: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The gossip socket could not be bound.
    #[error("cannot listen for gossip on {addr}/udp: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid cluster setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Chitchat did not start.
    #[error("cannot start gossip: {0}")]
    Start(String),
}

/// A peer other than this node, as the last membership view saw it.
#[derive(Clone, Debug)]
struct Other {
    peer: Peer,
    member: Member,
}

/// The membership as of the last change: every live peer but this node.
#[derive(Debug, Default)]
struct View {
    /// Sorted by name, then address.
    others: Vec<Other>,
}

impl View {
    fn participants(&self) -> impl Iterator<Item = &Member> {
        self.others
            .iter()
            .filter(|o| o.peer.state == PeerState::Participant)
            .map(|o| &o.member)
    }
}

type Callback = Arc<dyn Fn() + Send + Sync>;

struct Inner {
    name: String,
    advertise: SocketAddr,
    me: Member,
    state: AtomicU8,
    view: RwLock<Arc<View>>,
    handle: Mutex<Option<ChitchatHandle>>,
    callback: Mutex<Option<Callback>>,
    /// Bumped on every change of who owns what; the debouncer reports it.
    changes: watch::Sender<u64>,
    /// Set to stop the background tasks.
    stop: watch::Sender<bool>,
    metrics: ClusterMetrics,
    leave_delay: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Like a crash for the peers: no terminating state is announced, the failure detector notices.
        let _ = self.stop.send(true);
        if let Ok(mut h) = self.handle.lock() {
            if let Some(h) = h.take() {
                let _ = h.initiate_shutdown();
            }
        }
    }
}

/// One node's membership in a cluster; implements [`flow::Cluster`]. Cheap to clone.
///
/// Dropping the last clone stops gossip abruptly (as a crash would); [`ClusterService::terminate`] leaves
/// gracefully.
#[derive(Clone)]
pub struct ClusterService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterService")
            .field("name", &self.inner.name)
            .field("advertise", &self.inner.advertise)
            .field("state", &self.state())
            .finish()
    }
}

fn encode_state(s: PeerState) -> u8 {
    metrics::state_index(s) as u8
}

fn decode_state(v: u8) -> PeerState {
    match v {
        0 => PeerState::Viewer,
        1 => PeerState::Participant,
        _ => PeerState::Terminating,
    }
}

fn parse_state(s: Option<&str>) -> PeerState {
    match s {
        Some("participant") => PeerState::Participant,
        Some("terminating") => PeerState::Terminating,
        // A peer that does not say (yet) takes no work.
        _ => PeerState::Viewer,
    }
}

impl ClusterService {
    /// Binds the gossip socket, starts gossiping (as a viewer) and contacts the join addresses. Must be
    /// called within a Tokio runtime.
    pub async fn start(config: ClusterConfig) -> Result<ClusterService, ClusterError> {
        if config.node_name.trim().is_empty() {
            return Err(ClusterError::EmptyNodeName);
        }
        if config.gossip_interval.is_zero() {
            return Err(ClusterError::InvalidSetting {
                name: "gossip interval",
                reason: "must be more than zero",
            });
        }
        if !(config.phi_threshold.is_finite() && config.phi_threshold > 1.0) {
            return Err(ClusterError::InvalidSetting {
                name: "phi threshold",
                reason: "must be a number above 1",
            });
        }
        let socket =
            std::net::UdpSocket::bind(config.listen_addr).map_err(|source| ClusterError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let bound = socket.local_addr().map_err(|source| ClusterError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let advertise = match config.advertise_addr {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
            Some(a) => a,
            None => bound,
        };
        if advertise.ip().is_unspecified() {
            return Err(ClusterError::UnspecifiedAdvertiseAddress(advertise));
        }
        let seeds: Vec<String> = config
            .join_addresses
            .iter()
            .filter_map(|a| ClusterConfig::with_port(a, advertise.port()))
            .filter(|a| a.parse::<SocketAddr>().ok() != Some(advertise))
            .collect();

        // A new generation on every start, so peers tell a restarted node from the one they knew.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let chitchat_id = ChitchatId::new(config.node_name.clone(), generation, advertise);
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_name.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: bound,
            // Joining is ours (see `membership_loop`): chitchat would keep gossiping with its seeds besides
            // its three random peers, which makes the node everybody joined through the busiest one.
            seed_nodes: Vec::new(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: config.phi_threshold,
                sampling_window_size: 100,
                max_interval: (config.gossip_interval * 20).max(Duration::from_secs(10)),
                initial_interval: config.gossip_interval,
                dead_node_grace_period: config.dead_node_grace_period,
            },
            marked_for_deletion_grace_period: config.dead_node_grace_period,
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let metrics = ClusterMetrics::default();
        let transport = transport::CountingTransport {
            stats: metrics.gossip.clone(),
            compress: config.compress,
            prebound: Mutex::new(Some(socket)),
        };
        let initial = vec![
            (
                KEY_STATE.to_string(),
                PeerState::Viewer.as_str().to_string(),
            ),
            (KEY_SHARD.to_string(), shard::ALGORITHM.to_string()),
        ];
        let handle = spawn_chitchat(chitchat_config, initial, &transport)
            .await
            .map_err(|e| ClusterError::Start(format!("{e:#}")))?;
        let live = handle.chitchat().lock().await.live_nodes_watcher();

        let (changes, changes_rx) = watch::channel(0u64);
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            name: config.node_name.clone(),
            advertise,
            me: Member::new(config.node_name.clone(), advertise.to_string()),
            state: AtomicU8::new(encode_state(PeerState::Viewer)),
            view: RwLock::new(Arc::new(View::default())),
            handle: Mutex::new(Some(handle)),
            callback: Mutex::new(None),
            changes,
            stop,
            metrics,
            leave_delay: config.leave_delay,
        });
        inner.metrics.set_peers([1, 0, 0], PeerState::Viewer);
        info!(node = %config.node_name, %advertise, cluster = %config.cluster_name, join = ?seeds, "cluster: gossip started");

        tokio::spawn(membership_loop(
            Arc::downgrade(&inner),
            live,
            seeds,
            config.gossip_interval,
            config.rejoin_interval,
            stop_rx.clone(),
        ));
        tokio::spawn(debounce_loop(
            Arc::downgrade(&inner),
            changes_rx,
            config.debounce,
            stop_rx,
        ));
        Ok(ClusterService { inner })
    }

    /// Calls `f` (from a Tokio task) after each change of the participant set, once membership has been
    /// quiet for the debounce period. Replaces any earlier callback.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut c) = self.inner.callback.lock() {
            *c = Some(Arc::new(f));
        }
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.name
    }

    /// The address peers reach this node at.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.inner.advertise
    }

    /// This node's state.
    pub fn state(&self) -> PeerState {
        decode_state(self.inner.state.load(Ordering::Acquire))
    }

    /// The metrics, to register with [`ClusterMetrics::register`].
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.inner.metrics
    }

    /// Announces a new state for this node. Ownership here changes at once; peers learn it by gossip.
    /// Leaving the terminating state is refused (a terminating node only leaves).
    pub async fn set_state(&self, state: PeerState) {
        let old = self.state();
        if old == state || old == PeerState::Terminating {
            return;
        }
        self.inner
            .state
            .store(encode_state(state), Ordering::Release);
        let chitchat = self
            .inner
            .handle
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(|h| h.chitchat()));
        if let Some(chitchat) = chitchat {
            chitchat
                .lock()
                .await
                .self_node_state()
                .set(KEY_STATE, state.as_str());
        }
        info!(node = %self.inner.name, from = old.as_str(), to = state.as_str(), "cluster: node state changed");
        refresh_metrics(&self.inner);
        // A terminating node keeps its share until it leaves (a duplicate is better than a gap), so only
        // becoming a participant changes what this node owns.
        if state == PeerState::Participant {
            self.inner.changes.send_modify(|g| *g += 1);
        }
    }

    /// Takes a share of the work (call after the first successful config load).
    pub async fn become_participant(&self) {
        self.set_state(PeerState::Participant).await;
    }

    /// Leaves gracefully: announces the terminating state, keeps gossiping for the leave delay so that every
    /// peer learns it (and moves this node's keys to the others), then stops gossiping.
    pub async fn terminate(&self) {
        self.set_state(PeerState::Terminating).await;
        tokio::time::sleep(self.inner.leave_delay).await;
        self.leave().await;
    }

    /// Stops gossiping now (peers detect it as a failure unless it announced terminating first).
    pub async fn leave(&self) {
        let _ = self.inner.stop.send(true);
        let handle = self.inner.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            if let Err(e) = h.shutdown().await {
                debug!(error = %e, "cluster: gossip ended with an error");
            }
            info!(node = %self.inner.name, "cluster: left");
        }
    }

    /// Sends one gossip round to `addr` now (besides the periodic rounds).
    pub fn gossip_with(&self, addr: SocketAddr) {
        if let Ok(h) = self.inner.handle.lock() {
            if let Some(h) = h.as_ref() {
                let _ = h.gossip(addr);
            }
        }
    }

    fn view(&self) -> Arc<View> {
        match self.inner.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The owner of `key` as this node sees it (`None`: no participant, so every node keeps the key).
    pub fn owner(&self, key: &[u8]) -> Option<String> {
        let view = self.view();
        let me = matches!(
            self.state(),
            PeerState::Participant | PeerState::Terminating
        )
        .then_some(&self.inner.me);
        shard::owner(key, view.participants().chain(me)).map(|m| m.name.clone())
    }
}

impl flow::Cluster for ClusterService {
    fn enabled(&self) -> bool {
        true
    }

    fn owns(&self, key: &[u8]) -> bool {
        let view = self.view();
        let me = &self.inner.me;
        let takes_work = matches!(
            self.state(),
            PeerState::Participant | PeerState::Terminating
        );
        let candidates = view.participants().chain(takes_work.then_some(me));
        match shard::owner(key, candidates) {
            // Compare by address too: a peer may share our name.
            Some(o) => o.name == me.name && o.addr == me.addr,
            None => true,
        }
    }

    fn peers(&self) -> Vec<Peer> {
        let view = self.view();
        let mut peers: Vec<Peer> = view.others.iter().map(|o| o.peer.clone()).collect();
        peers.push(Peer {
            name: self.inner.name.clone(),
            addr: self.inner.advertise.to_string(),
            is_self: true,
            state: self.state(),
        });
        peers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.addr.cmp(&b.addr)));
        peers
    }
}

fn refresh_metrics(inner: &Inner) {
    let view = match inner.view.read() {
        Ok(v) => v.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let own = decode_state(inner.state.load(Ordering::Acquire));
    let mut counts = [0i64; 3];
    counts[metrics::state_index(own)] += 1;
    for o in &view.others {
        counts[metrics::state_index(o.peer.state)] += 1;
    }
    inner.metrics.set_peers(counts, own);
}

/// Builds the view of the peers (all but `self_id`) from chitchat's live nodes.
fn build_view(
    live: &BTreeMap<ChitchatId, NodeState>,
    self_id_name: &str,
    self_addr: SocketAddr,
    incompatible: &mut HashSet<String>,
) -> (View, i64) {
    let mut others = Vec::new();
    let mut bad = 0;
    for (id, state) in live {
        if id.node_id == self_id_name && id.gossip_advertise_addr == self_addr {
            continue;
        }
        let shard = state.get(KEY_SHARD);
        if shard != Some(shard::ALGORITHM) {
            bad += 1;
            if incompatible.insert(id.node_id.clone()) {
                warn!(peer = %id.node_id, theirs = ?shard, ours = shard::ALGORITHM,
                    "cluster: peer uses another sharding scheme; ownership will disagree (targets may be scraped twice or not at all)");
            }
        }
        let addr = id.gossip_advertise_addr.to_string();
        others.push(Other {
            peer: Peer {
                name: id.node_id.clone(),
                addr: addr.clone(),
                is_self: false,
                state: parse_state(state.get(KEY_STATE)),
            },
            member: Member::new(id.node_id.clone(), addr),
        });
    }
    others.sort_by(|a, b| {
        a.peer
            .name
            .cmp(&b.peer.name)
            .then_with(|| a.peer.addr.cmp(&b.peer.addr))
    });
    (View { others }, bad)
}

/// Follows chitchat's live-node set, keeps the view current and contacts the join addresses: every gossip
/// interval while this node knows no live peer (at start, or when it was cut off), and every rejoin interval
/// (to heal a partition).
async fn membership_loop(
    inner: Weak<Inner>,
    mut live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    seeds: Vec<String>,
    gossip_interval: Duration,
    rejoin_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The first tick is now: join at once.
    let mut join = tokio::time::interval(gossip_interval);
    join.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alone = true;
    let mut rejoin = (!rejoin_interval.is_zero()).then(|| {
        let mut t = tokio::time::interval_at(
            tokio::time::Instant::now() + rejoin_interval,
            rejoin_interval,
        );
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut incompatible = HashSet::new();
    loop {
        tokio::select! {
            changed = live.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                let snapshot = live.borrow_and_update().clone();
                let (view, bad) = build_view(&snapshot, &inner.name, inner.advertise, &mut incompatible);
                alone = view.others.is_empty();
                inner.metrics.incompatible_peers.set(bad);
                let before: Vec<(String, String)> = current_participants(&inner);
                let after: Vec<(String, String)> =
                    view.participants().map(|m| (m.name.clone(), m.addr.clone())).collect();
                let peers_before: Vec<(String, PeerState)> = current_peers(&inner);
                let peers_after: Vec<(String, PeerState)> =
                    view.others.iter().map(|o| (o.peer.name.clone(), o.peer.state)).collect();
                if let Ok(mut v) = inner.view.write() {
                    *v = Arc::new(view);
                }
                if peers_before != peers_after {
                    info!(node = %inner.name, peers = ?peers_after, "cluster: membership changed");
                }
                refresh_metrics(&inner);
                if before != after {
                    inner.changes.send_modify(|g| *g += 1);
                }
            }
            _ = join.tick(), if alone && !seeds.is_empty() => {
                let Some(inner) = inner.upgrade() else { return };
                rejoin_seeds(&inner, &seeds).await;
            }
            _ = async {
                match rejoin.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                let Some(inner) = inner.upgrade() else { return };
                rejoin_seeds(&inner, &seeds).await;
            }
            _ = stop.changed() => return,
        }
    }
}

fn current_participants(inner: &Inner) -> Vec<(String, String)> {
    match inner.view.read() {
        Ok(v) => v
            .participants()
            .map(|m| (m.name.clone(), m.addr.clone()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn current_peers(inner: &Inner) -> Vec<(String, PeerState)> {
    match inner.view.read() {
        Ok(v) => v
            .others
            .iter()
            .map(|o| (o.peer.name.clone(), o.peer.state))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Gossips with every join address (resolved again each time: DNS names may point elsewhere now).
async fn rejoin_seeds(inner: &Inner, seeds: &[String]) {
    for seed in seeds {
        match tokio::net::lookup_host(seed.as_str()).await {
            Ok(addrs) => {
                for addr in addrs.filter(|a| *a != inner.advertise) {
                    debug!(%seed, %addr, "cluster: rejoining through join address");
                    if let Ok(h) = inner.handle.lock() {
                        if let Some(h) = h.as_ref() {
                            let _ = h.gossip(addr);
                        }
                    }
                }
            }
            Err(e) => warn!(%seed, error = %e, "cluster: cannot resolve join address"),
        }
    }
}

/// Reports changes to the callback once they stop coming for `debounce` (at most 10 × `debounce` late).
async fn debounce_loop(
    inner: Weak<Inner>,
    mut changes: watch::Receiver<u64>,
    debounce: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
        changes.borrow_and_update();
        for _ in 0..10 {
            tokio::time::sleep(debounce).await;
            if !changes.has_changed().unwrap_or(false) {
                break;
            }
            changes.borrow_and_update();
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.metrics.membership_changes.inc();
        let callback = inner.callback.lock().ok().and_then(|c| c.clone());
        debug!(node = %inner.name, "cluster: reporting a membership change");
        drop(inner);
        if let Some(cb) = callback {
            cb();
        }
    }
}
