//! The controller: runs a graph of components and keeps it in step with its config.
//!
//! - **Load/reload** ([`Controller::load`]): the new config is parsed, resolved and checked completely first; a
//!   rejected config changes nothing. An accepted one stops removed components (with a deadline) before
//!   anything new starts, then evaluates every node in dependency order: new components are built and
//!   started, existing ones get exactly one `update` if (and only if) their evaluated arguments changed. A node
//!   whose evaluation fails keeps its last good arguments and is marked unhealthy; the rest is applied.
//! - **Propagation**: when a component publishes exports that differ from its previous ones, every node that
//!   refers to it is marked dirty. One evaluator task drains the dirty set in dependency order, so repeated
//!   notifications coalesce, a diamond (C refers to A and B, B to A) sees A's change, and there is no bounded
//!   queue to deadlock on. Evaluation only decodes arguments; `update` runs in each component's own task, so
//!   a slow component never holds up the others.
//! - **Supervision**: a component whose `run` returns or panics is marked exited and restarted with backoff.

use crate::component::{Component, ComponentError, ComponentId, Context, Health, HealthState};
use crate::graph::{Graph, NodeKind};
use crate::registry::{Arguments, Registry};
use crate::runner::{NodeShared, PendingUpdate, Runner};
use crate::source::{LoadDiagnostics, Sources};
use river::eval::Scope;
use river::{Diagnostic, Object, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Receives the `logging` block's settings whenever they are (re)applied.
pub type LoggingHook = Arc<dyn Fn(&crate::LoggingConfig) + Send + Sync>;

/// Settings of a controller.
#[derive(Clone)]
pub struct ControllerOptions {
    /// Where components keep their data: each gets `<storage_path>/<id>`.
    pub storage_path: PathBuf,
    /// How long a removed or shut-down component may take to stop before it is abandoned.
    pub stop_timeout: Duration,
    /// The first delay before restarting a component whose run ended; doubles up to `max_restart_backoff`.
    /// Both are kept in whole milliseconds (a nonzero delay shorter than that waits 1 ms).
    pub restart_backoff: Duration,
    /// The longest delay between restarts.
    pub max_restart_backoff: Duration,
    /// Applies the `logging` block (defaults when the config has none).
    pub on_logging: Option<LoggingHook>,
    /// During a load, how long to wait for a component's `update` to finish before evaluating the components
    /// that refer to it (so they see its new exports). A slower update is not waited for any longer.
    pub update_wait: Duration,
    /// Cluster membership handed to components ([`crate::Standalone`] when not clustered).
    pub cluster: Arc<dyn crate::cluster::Cluster>,
    /// Where components register their metrics.
    pub metrics: crate::component_metrics::MetricsHub,
    /// How many threads a load evaluates independent nodes on. 0 (the default): one per core, for loads of
    /// at least 64 nodes on a multi-thread runtime; smaller loads, and every load on a current-thread
    /// runtime, are evaluated on the loading task. The controller keeps one fewer threads than this
    /// (`rill-eval-N`, idle between loads) from its creation until it is dropped.
    pub evaluation_threads: usize,
}

impl std::fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("storage_path", &self.storage_path)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            storage_path: PathBuf::from("data-rill"),
            stop_timeout: Duration::from_secs(10),
            restart_backoff: Duration::from_millis(100),
            max_restart_backoff: Duration::from_secs(30),
            on_logging: None,
            update_wait: Duration::from_secs(2),
            cluster: Arc::new(crate::cluster::Standalone::default()),
            metrics: crate::component_metrics::MetricsHub::new(),
            evaluation_threads: 0,
        }
    }
}

/// What a load applied.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Problems that did not reject the config: nodes whose evaluation or build failed (they keep their last
    /// good arguments and are unhealthy).
    pub diagnostics: LoadDiagnostics,
    /// Components started by this load.
    pub started: Vec<ComponentId>,
    /// Components updated by this load.
    pub updated: Vec<ComponentId>,
    /// Components stopped by this load.
    pub stopped: Vec<ComponentId>,
}

/// Counters per component, for tests and metrics.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// `update` calls made.
    pub updates: AtomicU64,
    /// Times `run` was started (1 + restarts).
    pub runs: AtomicU64,
    /// Times the node was evaluated.
    pub evaluations: AtomicU64,
}

/// A component's live counters (see [`Controller::counters`]); dereferences to [`NodeCounters`].
#[derive(Clone)]
pub struct CountersHandle(Arc<NodeShared>);

impl std::ops::Deref for CountersHandle {
    type Target = NodeCounters;

    fn deref(&self) -> &NodeCounters {
        &self.0.counters
    }
}

impl std::fmt::Debug for CountersHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.counters.fmt(f)
    }
}

/// Publishes a component's exports. Cheap to clone.
#[derive(Clone)]
pub struct ExportsHandle {
    /// Weak: the slot holds the component, which holds this handle; a strong reference would keep every
    /// component of a dropped controller alive.
    slot: Weak<Slot>,
    /// Revoked when the component is stopped or abandoned, or its build fails: a component that ignores
    /// cancellation must not overwrite the exports of its successor.
    alive: crate::runner::ExportsLicense,
}

impl ExportsHandle {
    /// Publishes new exports. Dependants are re-evaluated only when the value differs from the last one.
    pub fn publish<T: serde::Serialize>(&self, exports: &T) -> Result<(), ComponentError> {
        let value =
            river::encode::to_value(exports).map_err(|e| ComponentError::new(e.to_string()))?;
        self.publish_value(value);
        Ok(())
    }

    /// Publishes exports already encoded as a River value.
    pub fn publish_value(&self, value: Value) {
        if !self.alive.is_valid() {
            return;
        }
        let Some(slot) = self.slot.upgrade() else {
            return;
        };
        let old = {
            let mut exports = lock_plain(&slot.exports);
            if exports
                .value
                .as_ref()
                .is_some_and(|old| same_value(old, &value))
            {
                return;
            }
            exports.set(value)
        };
        // Freed outside the lock: readers need not wait for a big value to be dropped.
        drop(old);
        // Published from `build` during a full pass: nothing that refers to this component is evaluated
        // yet, and each will read these exports when it is.
        if slot.building_in_pass.load(Ordering::Acquire) {
            return;
        }
        if let Some(shared) = slot.controller.upgrade() {
            shared.mark_dependants_dirty(&slot);
        }
    }
}

impl std::fmt::Debug for ExportsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.slot.upgrade() {
            Some(slot) => write!(f, "ExportsHandle({})", slot.id),
            None => f.write_str("ExportsHandle(<removed>)"),
        }
    }
}

/// Runs a component graph. Cheap to clone; all clones drive the same graph.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    registry: Arc<Registry>,
    metrics: crate::metrics::ControllerMetrics,
    options: ControllerOptions,
    state: Mutex<State>,
    /// Serializes loads with evaluation of dirty nodes.
    load_lock: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    /// Set with `cancel` (a plain flag: checking the token locks it, and every component built checks).
    shut_down: AtomicBool,
    /// The runtime the controller was created in: components' tasks run there.
    runtime: tokio::runtime::Handle,
    /// Components started whose `run` has not been polled yet.
    pending_starts: crate::lazy_task::PendingStarts,
    /// Components built by a load whose runners are not made yet (see [`start_built`]), and notified when
    /// that reaches none.
    unmade_runners: AtomicUsize,
    runners_made: Notify,
    /// The threads that evaluate a big load with the loading thread.
    helpers: Arc<crate::pass::Helpers>,
    /// `options.storage_path`, shared with every component's [`Context`].
    storage: Arc<std::path::Path>,
}

#[derive(Default)]
struct State {
    /// The running config. Replaced whole by a load with new text; never changed in place, so an evaluation
    /// reads it without holding this lock.
    current: Arc<Generation>,
    /// (rank, node index) of nodes to re-evaluate.
    dirty: BTreeSet<(usize, usize)>,
    loaded: bool,
}

/// A loaded config: its sources, its graph and the state of each node, by graph index.
#[derive(Default)]
pub(crate) struct Generation {
    /// Shared with the evaluation threads while the graph is built.
    sources: Arc<Sources>,
    pub(crate) graph: Graph,
    /// Position of each node in the dependency order.
    pub(crate) rank: Vec<usize>,
    /// Each node's state, by graph index. A node whose ID stays in the config keeps its slot across loads; a
    /// new node's slot is made by its first evaluation, on the thread evaluating it (a load of thousands of
    /// new nodes would otherwise make them all on the loading thread, and then read each back from memory).
    slots: Vec<OnceLock<Arc<Slot>>>,
}

/// The state of one node, kept for as long as its ID stays in the config. Each node's state and exports have
/// locks of their own, so that independent nodes are evaluated at the same time without taking turns at one
/// lock.
pub(crate) struct Slot {
    id: Arc<str>,
    /// The controller, for exports handles to mark dependants dirty. Set when the slot is made, on the
    /// loading thread: taken there for each new node, not by every evaluation thread from one counter.
    controller: Weak<Shared>,
    /// The node's index in the running graph (`usize::MAX` once it is removed). Changed only with the
    /// controller's state locked.
    index: AtomicUsize,
    /// During a load that evaluates every node (a full pass): the pass has not started this node yet. It is
    /// evaluated after everything it depends on anyway, so export changes need not mark it dirty.
    pass_pending: AtomicBool,
    /// While a full pass builds this component: whatever refers to it is not evaluated yet.
    building_in_pass: AtomicBool,
    node: Mutex<NodeState>,
    exports: Mutex<Published>,
}

/// A node's exports and which publication they are.
#[derive(Default)]
struct Published {
    value: Option<Value>,
    /// 0 while nothing is published (what a reader then sees is an empty object, whichever node it is);
    /// otherwise the publication's number, unique in the process (see [`next_publication`]). An evaluation
    /// records the numbers of what it read, so that it can tell whether its inputs changed without keeping
    /// (or comparing) the values themselves.
    version: u64,
}

impl Published {
    /// Sets the exports, as a new publication.
    fn set(&mut self, value: Value) -> Option<Value> {
        self.version = next_publication();
        self.value.replace(value)
    }

    /// Clears the exports (a reader then sees an empty object).
    fn take(&mut self) -> Option<Value> {
        self.version = 0;
        self.value.take()
    }
}

/// The next number for a publication of exports: unique in the process, never 0. Each thread takes a block
/// of numbers at a time, so that evaluation threads publishing at once do not contend on one counter.
fn next_publication() -> u64 {
    const BLOCK: u64 = 4096;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static RANGE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    })
}

impl Slot {
    fn new(id: Arc<str>, index: usize, controller: Weak<Shared>) -> Self {
        Slot {
            id,
            controller,
            index: AtomicUsize::new(index),
            pass_pending: AtomicBool::new(false),
            building_in_pass: AtomicBool::new(false),
            node: Mutex::new(NodeState::default()),
            exports: Mutex::new(Published::default()),
        }
    }

    fn node(&self) -> MutexGuard<'_, NodeState> {
        lock_plain(&self.node)
    }

    fn exports(&self) -> Option<Value> {
        lock_plain(&self.exports).value.clone()
    }

    /// The exports as an evaluation reads them (none published: an empty object), and their publication.
    fn exports_for_evaluation(&self) -> (Value, u64) {
        let published = lock_plain(&self.exports);
        let value = match &published.value {
            Some(v) => v.clone(),
            None => Value::object(Object::new()),
        };
        (value, published.version)
    }
}

/// How many slots a node's evaluation makes at most when it has none (see [`Generation::make_slots`]).
const SLOT_BATCH: usize = 64;

impl Generation {
    /// The slot of the node with this ID.
    fn slot(&self, id: &str) -> Option<&Arc<Slot>> {
        self.graph.index_of(id).and_then(|i| self.slot_at(i))
    }

    /// The slot of node `index`, unless the node was never evaluated.
    fn slot_at(&self, index: usize) -> Option<&Arc<Slot>> {
        self.slots.get(index)?.get()
    }

    /// Makes the slot of node `index` and those of the next nodes by index that have none (up to
    /// [`SLOT_BATCH`] in all), and returns the first. A thread evaluates the nodes
    /// of its share mostly in the order of their indices: making their slots in a row keeps the code that
    /// makes them in the cache, and the slots themselves until they are evaluated.
    fn make_slots(&self, index: usize, shared: &Arc<Shared>) -> Option<&Arc<Slot>> {
        let controller = Arc::downgrade(shared);
        let end = self.slots.len().min(index.saturating_add(SLOT_BATCH));
        for i in index..end {
            if let (Some(cell), Some(node)) = (self.slots.get(i), self.graph.nodes.get(i)) {
                cell.get_or_init(|| Arc::new(Slot::new(node.id.clone(), i, controller.clone())));
            }
        }
        self.slot_at(index)
    }

    /// The slots made so far, by graph index.
    fn existing_slots(&self) -> impl Iterator<Item = &Arc<Slot>> {
        self.slots.iter().filter_map(OnceLock::get)
    }
}

#[derive(Default)]
struct NodeState {
    args: Option<Arguments>,
    /// What the last successful evaluation saw; an identical block with identical inputs is not
    /// evaluated again (reloads of unchanged configs cost almost nothing).
    stamp: Option<EvalStamp>,
    component: Option<Arc<dyn Component>>,
    runner: Option<Runner>,
    /// The health of the last evaluation; `None` until the first.
    eval_health: Option<EvalHealth>,
    /// Run and update health and the counters, shared with the component's task. Made by the first
    /// evaluation (or counters lookup), on the thread evaluating the node rather than the loading thread.
    shared: Option<Arc<NodeShared>>,
    /// The right of the component's exports handle to publish; granted when the component is built.
    alive: Option<crate::runner::ExportsLicense>,
    /// How many times the component was built (numbers the builds' [`crate::runner::ExportsLicense`]s).
    builds: u64,
}

/// The health of a node's last evaluation. A successful one, by far the most common, is only its time: every
/// node keeps one, and a whole [`Health`] (with its message) would make each node's state 24 bytes larger.
enum EvalHealth {
    /// Evaluated without error at this time (healthy, no message).
    Evaluated(SystemTime),
    /// Anything else.
    Other(Box<Health>),
}

impl EvalHealth {
    fn to_health(&self) -> Health {
        match self {
            EvalHealth::Evaluated(at) => Health::at(HealthState::Healthy, "", *at),
            EvalHealth::Other(h) => (**h).clone(),
        }
    }
}

impl From<Health> for EvalHealth {
    fn from(h: Health) -> Self {
        if h.state == HealthState::Healthy && h.message.is_empty() {
            EvalHealth::Evaluated(h.updated)
        } else {
            EvalHealth::Other(Box::new(h))
        }
    }
}

fn lock_plain<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    /// A controller with no config loaded yet. Must be created inside a tokio runtime.
    pub fn new(registry: Arc<Registry>, options: ControllerOptions) -> Self {
        let helpers = crate::pass::Helpers::start(options.evaluation_threads);
        let storage = Arc::from(options.storage_path.as_path());
        let shared = Arc::new(Shared {
            registry,
            metrics: crate::metrics::ControllerMetrics::default(),
            options,
            state: Mutex::new(State::default()),
            load_lock: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
            shut_down: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
            pending_starts: Default::default(),
            unmade_runners: AtomicUsize::new(0),
            runners_made: Notify::new(),
            helpers,
            storage,
        });
        tokio::spawn(evaluator(
            Arc::downgrade(&shared),
            shared.wake.clone(),
            shared.cancel.clone(),
        ));
        Controller { shared }
    }

    /// Loads (or reloads) a config. A config with errors is rejected whole and nothing running changes.
    pub async fn load(&self, sources: Sources) -> Result<LoadReport, LoadDiagnostics> {
        let shared = &self.shared;
        let _guard = shared.load_lock.lock().await;
        // What the previous load built is stopped or updated through its runner.
        shared.runners_made().await;
        // The same text as the running config makes the same graph: keep the running one (and its
        // syntax trees) and only evaluate what may have changed.
        let same_text = {
            let st = lock(&shared.state);
            st.loaded && same_sources(&st.current.sources, &sources)
        };
        let big = sources
            .files
            .iter()
            .map(|f| f.ast.body.len())
            .sum::<usize>()
            > 100;
        let mut report = LoadReport::default();
        let (generation, order) = if same_text {
            shared.metrics.evaluating.set(1);
            drop_later(sources, big);
            let st = lock(&shared.state);
            let generation = st.current.clone();
            // A node needs evaluating if an input changed since its last good evaluation (it is dirty),
            // if that failed, or if it is a config block (applied on every load).
            let order = generation
                .graph
                .order
                .iter()
                .copied()
                .filter(|&i| {
                    let node = &generation.graph.nodes[i];
                    !matches!(node.kind, NodeKind::Component { .. })
                        || st.dirty.contains(&(generation.rank[i], i))
                        || generation
                            .slot_at(i)
                            .is_none_or(|slot| slot.node().stamp.is_none())
                })
                .collect();
            (generation, order)
        } else {
            let sources = Arc::new(sources);
            let graph = match crate::pass::build_graph(
                &sources,
                &shared.registry,
                &shared.helpers,
                shared.options.evaluation_threads,
            ) {
                Ok(graph) => graph,
                Err(diags) => {
                    shared.metrics.last_load_successful.set(0);
                    shared.metrics.load_failures.inc();
                    return Err(diags);
                }
            };
            shared.metrics.evaluating.set(1);

            // Stop what the new config no longer has, before anything new starts (a renamed component may
            // hold a port or a file its successor needs).
            let removed: Vec<Arc<Slot>> = {
                let st = lock(&shared.state);
                st.current
                    .existing_slots()
                    .filter(|slot| graph.get(&slot.id).is_none())
                    .cloned()
                    .collect()
            };
            for slot in removed {
                lock_plain(&slot.exports).take();
                let state = std::mem::take(&mut *slot.node());
                if let Some(r) = state.runner {
                    stop_runner(r, shared.options.stop_timeout, &slot.id).await;
                }
                shared.options.metrics.remove_component(&slot.id);
                report.stopped.push(ComponentId::from(slot.id.clone()));
            }

            // Swap in the new graph; surviving nodes keep their slots.
            let mut rank = vec![0; graph.nodes.len()];
            for (r, &i) in graph.order.iter().enumerate() {
                rank[i] = r;
            }
            let mut st = lock(&shared.state);
            let old = &st.current;
            let slots = graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| match old.slot(&node.id) {
                    Some(slot) => {
                        slot.index.store(i, Ordering::Release);
                        OnceLock::from(slot.clone())
                    }
                    None => OnceLock::new(),
                })
                .collect();
            for slot in old.existing_slots() {
                if graph.get(&slot.id).is_none() {
                    slot.index.store(usize::MAX, Ordering::Release);
                }
            }
            let generation = Arc::new(Generation {
                sources,
                graph,
                rank,
                slots,
            });
            st.dirty.clear();
            let old = std::mem::replace(&mut st.current, generation.clone());
            drop(st);
            // Judged by the old config's size: the first load replaces an empty one, which is not worth a
            // blocking thread (starting one takes longer than the drop).
            let old_is_big = old.graph.nodes.len() > 100;
            drop_later(old, old_is_big);
            let order = generation.graph.order.clone();
            (generation, order)
        };

        if generation.graph.get("logging").is_none() {
            if let Some(hook) = &shared.options.on_logging {
                hook(&crate::LoggingConfig::default());
            }
        }
        let full_pass = !same_text;
        if full_pass {
            for slot in generation.existing_slots() {
                slot.pass_pending.store(true, Ordering::Release);
            }
        }
        let mut starts = DeferredStarts {
            shared: shared.clone(),
            first_polls: Vec::new(),
            full_pass: full_pass.then(|| generation.clone()),
            evaluation_seconds: Vec::new(),
            timed: false,
            source_files: Vec::new(),
            last_registration: None,
            resolved: Vec::new(),
            runners: Vec::new(),
        };
        let now = SystemTime::now();
        match crate::pass::threads_for(order.len(), shared.options.evaluation_threads) {
            Some(threads) => crate::pass::evaluate_in_parallel(
                shared,
                &generation,
                &order,
                threads,
                full_pass,
                &mut report,
                &mut starts,
                now,
            ),
            None => {
                let mut clock = EvaluationClock::start();
                for index in order {
                    if full_pass {
                        generation.pass_started(index);
                    }
                    let pending = shared.evaluate(
                        &generation,
                        index,
                        full_pass,
                        Some(&mut report),
                        Some(&mut starts),
                        now,
                    );
                    clock.lap(&mut starts);
                    let Some(pending) = pending else {
                        continue;
                    };
                    if generation.has_dependants(index) {
                        // Let dependants see the new exports, but never wait long for a slow component.
                        let _ =
                            tokio::time::timeout(shared.options.update_wait, pending.finished())
                                .await;
                        // Waiting is not evaluating.
                        clock = EvaluationClock::start();
                    }
                }
            }
        }
        drop(starts);
        lock(&shared.state).loaded = true;
        shared.metrics.evaluating.set(0);
        shared.metrics.last_load_successful.set(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        shared
            .metrics
            .last_load_success_timestamp
            .set(now.as_secs_f64());
        // Exports published while loading may have dirtied nodes evaluated earlier in this pass.
        shared.wake.notify_one();
        Ok(report)
    }

    /// Registers the controller's metrics (`rill_component_*`, `rill_config_*`) into `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let shared = Arc::downgrade(&self.shared);
        let counts = move || {
            let mut counts = [
                (HealthState::Healthy, 0),
                (HealthState::Unknown, 0),
                (HealthState::Unhealthy, 0),
                (HealthState::Exited, 0),
            ];
            if let Some(shared) = shared.upgrade() {
                let generation = lock(&shared.state).current.clone();
                for slot in &generation.slots {
                    let state = health_of(slot.get()).state;
                    if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                        slot.1 += 1;
                    }
                }
            }
            counts
        };
        let health = crate::metrics::HealthCounts(Arc::new(counts));
        self.shared.metrics.register(registry, health);
        self.shared.options.metrics.register(registry);
    }

    /// Tells every running component that cluster membership changed (each in its own task, so a slow
    /// component does not delay the others).
    pub fn cluster_changed(&self) {
        let generation = lock(&self.shared.state).current.clone();
        let components: Vec<Arc<dyn Component>> = generation
            .existing_slots()
            .filter_map(|slot| slot.node().component.clone())
            .collect();
        for c in components {
            tokio::spawn(async move { c.cluster_changed().await });
        }
    }

    /// The cluster service components were given.
    pub fn cluster(&self) -> &Arc<dyn crate::cluster::Cluster> {
        &self.shared.options.cluster
    }

    /// Hands an HTTP request to a component (`path` is what follows `/api/v0/component/<id>`). `None` when
    /// there is no such running component or it serves no HTTP.
    pub async fn handle_http(
        &self,
        id: &str,
        request: crate::component::HttpRequest,
    ) -> Option<crate::component::HttpResponse> {
        let component = self.slot(id)?.node().component.clone()?;
        component.handle_http(request).await
    }

    /// Whether a config has been loaded successfully.
    pub fn is_loaded(&self) -> bool {
        lock(&self.shared.state).loaded
    }

    /// Waits until no node is waiting to be re-evaluated and every component started so far has begun to
    /// run (its `run` was polled).
    pub async fn settle(&self) {
        loop {
            {
                let _guard = self.shared.load_lock.lock().await;
                if lock(&self.shared.state).dirty.is_empty()
                    && self.shared.pending_starts.count() == 0
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Counters of a component, if it exists.
    pub fn counters(&self, id: &str) -> Option<CountersHandle> {
        let shared = self.slot(id)?.node().shared(SystemTime::now()).clone();
        Some(CountersHandle(shared))
    }

    /// The slot of the running node with this ID.
    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        lock(&self.shared.state).current.slot(id).cloned()
    }

    /// The current exports of a component.
    pub fn exports(&self, id: &str) -> Option<Value> {
        self.slot(id)?.exports()
    }

    /// Introspection of every node, in source order.
    pub fn components(&self) -> Vec<ComponentInfo> {
        let generation = lock(&self.shared.state).current.clone();
        (0..generation.graph.nodes.len())
            .filter_map(|i| generation.info(i))
            .collect()
    }

    /// Introspection of one node.
    pub fn component(&self, id: &str) -> Option<ComponentInfo> {
        let generation = lock(&self.shared.state).current.clone();
        generation
            .graph
            .index_of(id)
            .and_then(|i| generation.info(i))
    }

    /// Stops every component (each within the stop timeout) and the evaluator.
    pub async fn shutdown(&self) {
        let _guard = self.shared.load_lock.lock().await;
        self.shared.shut_down.store(true, Ordering::Release);
        self.shared.cancel.cancel();
        // Components whose runners a load is still making get them cancelled from the start (nothing new
        // may run now); they are stopped with the others.
        self.shared.runners_made().await;
        let runners: Vec<(Arc<str>, Runner)> = {
            let generation = lock(&self.shared.state).current.clone();
            generation
                .existing_slots()
                .filter_map(|slot| slot.node().runner.take().map(|r| (slot.id.clone(), r)))
                .collect()
        };
        // Every component is told at once; each is then given the stop timeout.
        for (_, runner) in &runners {
            runner.cancel.cancel();
        }
        let timeout = self.shared.options.stop_timeout;
        let stops = runners
            .into_iter()
            .map(|(id, r)| async move { stop_runner(r, timeout, &id).await });
        futures_join_all(stops).await;
    }
}

/// Whether two configs are the same files with the same text.
fn same_sources(a: &Sources, b: &Sources) -> bool {
    a.files.len() == b.files.len()
        && a.files
            .iter()
            .zip(&b.files)
            .all(|(x, y)| x.source.name() == y.source.name() && x.source.text() == y.source.text())
}

/// Drops a config, a `big` one off the caller's path: freeing a big config's syntax trees takes a while, and
/// nobody need wait for it.
fn drop_later<T: Send + 'static>(config: T, big: bool) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if big => {
            rt.spawn_blocking(move || drop(config));
        }
        _ => drop(config),
    }
}

/// Awaits all futures concurrently (a tiny join_all without an extra dependency).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl Iterator<Item = F>,
) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

async fn stop_runner(runner: Runner, timeout: Duration, id: &str) {
    crate::runner::stop(runner, timeout, id).await
}

/// What the UI and API show about a node.
#[derive(Clone, Debug)]
pub struct ComponentInfo {
    /// `name.label`, or the block name of a config block.
    pub id: String,
    /// The component or block name.
    pub name: String,
    /// The label (empty for config blocks).
    pub label: String,
    /// Combined health.
    pub health: Health,
    /// IDs this node refers to.
    pub references_to: Vec<String>,
    /// IDs that refer to this node.
    pub referenced_by: Vec<String>,
    /// Arguments as riverjson (secrets redacted), if evaluated.
    pub arguments: serde_json::Value,
    /// Exports as a riverjson value.
    pub exports: serde_json::Value,
    /// Debug info as a riverjson value.
    pub debug_info: serde_json::Value,
}

/// The least healthy of a node's evaluation, run, update and self-reported health (`None`: a node not
/// evaluated yet, which has no slot).
fn health_of(slot: Option<&Arc<Slot>>) -> Health {
    let mut reports = vec![];
    if let Some(slot) = slot {
        let s = slot.node();
        reports.extend(s.eval_health.as_ref().map(EvalHealth::to_health));
        if let Some(shared) = &s.shared {
            if s.component.is_some() {
                let run = lock_plain(&shared.run_health);
                reports.push(run.to_health());
            }
            if let Some(h) = lock_plain(&shared.update_health).as_deref().cloned() {
                reports.push(h);
            }
        }
        if let Some(h) = s.component.as_ref().and_then(|c| c.health()) {
            reports.push(h);
        }
    }
    Health::worst(reports.iter())
        .cloned()
        .unwrap_or_else(|| Health::new(HealthState::Unknown, "not evaluated yet"))
}

impl Generation {
    fn info(&self, index: usize) -> Option<ComponentInfo> {
        let node = self.graph.nodes.get(index)?;
        let slot = self.slot_at(index);
        let (name, label) = match &node.kind {
            NodeKind::Component { name } => (String::from(&**name), node.label().to_string()),
            NodeKind::Config { name } => (name.clone(), String::new()),
        };
        let ids = |list: &[usize]| {
            list.iter()
                .map(|&i| String::from(&*self.graph.nodes[i].id))
                .collect()
        };
        let health = health_of(slot);
        let (arguments, component) = match slot {
            Some(slot) => {
                let state = slot.node();
                (
                    state
                        .args
                        .as_ref()
                        .map(|a| a.to_riverjson())
                        .unwrap_or_default(),
                    state.component.clone(),
                )
            }
            None => Default::default(),
        };
        Some(ComponentInfo {
            id: String::from(&*node.id),
            name,
            label,
            health,
            references_to: ids(&self.graph.dependencies[index]),
            referenced_by: ids(&self.graph.dependants[index]),
            arguments,
            exports: slot
                .and_then(|slot| slot.exports())
                .map(|v| river::riverjson::value_to_json(&v))
                .unwrap_or_default(),
            // Asked without the node's lock held: a component may take its time.
            debug_info: component
                .and_then(|c| c.debug_info())
                .map(|v| river::riverjson::value_to_json(&v))
                .unwrap_or_default(),
        })
    }

    /// Whether anything refers to node `index`.
    pub(crate) fn has_dependants(&self, index: usize) -> bool {
        self.graph
            .dependants
            .get(index)
            .is_some_and(|d| !d.is_empty())
    }

    /// Marks node `index` as started by the running full pass (see [`Slot::pass_pending`]).
    pub(crate) fn pass_started(&self, index: usize) {
        if let Some(slot) = self.slot_at(index) {
            slot.pass_pending.store(false, Ordering::Release);
        }
    }
}

/// The scope a node evaluates in: the given components' exports nested by ID (`test.pass.a` →
/// `{test = {pass = {a = ...}}}`), over the standard library.
pub fn scope_from(inputs: &[(String, Value)]) -> Scope {
    scope_from_pairs(inputs.iter().map(|(id, v)| (id.as_str(), v)))
}

fn scope_from_pairs<'a>(inputs: impl Iterator<Item = (&'a str, &'a Value)>) -> Scope {
    let mut roots: Object = Object::new();
    for (id, exports) in inputs {
        insert_path(
            &mut roots,
            &id.split('.').collect::<Vec<_>>(),
            exports.clone(),
        );
    }
    Scope::from_vars_with_stdlib(roots)
}

/// Inserts `value` at the dotted path in nested objects (`a.b.c` → `{a = {b = {c = value}}}`).
fn insert_path(root: &mut Object, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            root.insert(last.to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = root.get_or_insert_with(first, || Value::object(Object::new()));
            if !matches!(entry, Value::Object(_)) {
                *entry = Value::object(Object::new());
            }
            if let Value::Object(obj) = entry {
                insert_path(Arc::make_mut(obj), rest, value);
            }
        }
    }
}

impl Shared {
    /// The controller's evaluation threads (see [`crate::pass::Helpers`]).
    pub(crate) fn helpers(&self) -> &crate::pass::Helpers {
        &self.helpers
    }

    pub(crate) fn update_wait(&self) -> Duration {
        self.options.update_wait
    }

    /// After `slot`'s exports changed: marks what refers to it for re-evaluation and wakes the evaluator.
    fn mark_dependants_dirty(&self, slot: &Arc<Slot>) {
        let mut st = lock(&self.state);
        let State { current, dirty, .. } = &mut *st;
        let index = slot.index.load(Ordering::Acquire);
        // A component removed from the config (or not in it yet) has no dependants.
        if !current.slot_at(index).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            return;
        }
        let mut any = false;
        for &d in &current.graph.dependants[index] {
            // Not evaluated yet (no slot), or not by the running pass yet: it will see these exports.
            if current
                .slot_at(d)
                .is_none_or(|s| s.pass_pending.load(Ordering::Acquire))
            {
                continue;
            }
            any |= dirty.insert((current.rank[d], d));
        }
        if any {
            self.metrics.queue_size.set(dirty.len() as i64);
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Evaluates node `index` of `generation` (the running config) and applies the result. Returns the
    /// update submitted to the component, if any. Failures become the node's evaluation health (and
    /// diagnostics in `report` during a load). During a load (`starts` given), the tasks of newly built
    /// components are started when the pass is over. `full_pass`: the load evaluates every node, and this
    /// one after everything it depends on. `now`: the time health changes are reported at (a pass reads the
    /// clock once for all its nodes).
    pub(crate) fn evaluate(
        self: &Arc<Self>,
        generation: &Generation,
        index: usize,
        full_pass: bool,
        mut report: Option<&mut LoadReport>,
        mut starts: Option<&mut DeferredStarts>,
        now: SystemTime,
    ) -> Option<PendingUpdate> {
        // A full pass cleared the dirty set when it began, and what refers to a node not started yet is
        // not marked dirty: there is nothing to take out.
        if !full_pass {
            let mut st = lock(&self.state);
            let &rank = generation.rank.get(index)?;
            if st.dirty.remove(&(rank, index)) {
                self.metrics.queue_size.set(st.dirty.len() as i64);
            }
        }
        let node = generation.graph.nodes.get(index)?;
        let slot = match generation.slot_at(index) {
            Some(slot) => slot,
            None => generation.make_slots(index, self)?,
        };
        let file = generation.sources.files.get(node.file)?;
        let ast = &*file.ast;
        let Some(river::ast::Stmt::Block(block)) = ast.top_level().get(node.stmt) else {
            return None;
        };
        let deps = &generation.graph.dependencies[index];
        let is_component = matches!(node.kind, NodeKind::Component { .. });
        // Compared in place: an unchanged node (most of an unchanged reload) costs no copies.
        // Publication numbers are unique, so equal numbers are the same exports of the same node (or nothing
        // published, an empty object either way).
        let unchanged = is_component
            && slot.node().stamp.as_ref().is_some_and(|p| {
                p.same_text(&file.source, block.span)
                    && p.inputs.len() == deps.len()
                    && deps.iter().zip(&p.inputs).all(|(&d, &seen)| {
                        generation
                            .slot_at(d)
                            .is_some_and(|dep| lock_plain(&dep.exports).version == seen)
                    })
            });
        if unchanged {
            return None;
        }
        let exports_of = |d: usize| match generation.slot_at(d) {
            Some(dep) => dep.exports_for_evaluation(),
            None => (Value::object(Object::new()), 0),
        };
        // In the order of `deps`, which are the references' targets (each once).
        let mut values: smallvec::SmallVec<[Value; 2]> =
            smallvec::SmallVec::with_capacity(deps.len());
        let mut inputs = Inputs::with_capacity(deps.len());
        for &d in deps {
            let (value, version) = exports_of(d);
            values.push(value);
            inputs.push(version);
        }
        let mut scope = if generation.graph.shadows_stdlib(index) {
            // The component's namespace hides the library's: evaluate in the nested objects.
            scope_from_pairs(
                deps.iter()
                    .zip(&values)
                    .map(|(&d, v)| (&*generation.graph.nodes[d].id, v)),
            )
        } else {
            // Every other name in an accepted block is the standard library's, so the references are all
            // there is to resolve. Each target's exports were read once, above.
            // The buffer of the thread's previous evaluation, if any.
            let mut resolved = starts
                .as_deref_mut()
                .map(|s| std::mem::take(&mut s.resolved))
                .unwrap_or_default();
            // Mostly each dependency is referred to once, in order: its value then moves to its reference.
            // (Each is referred to once when there are as many references as dependencies, so a value
            // moved is never asked for again.)
            let one_each = node.references.len() == deps.len();
            resolved.extend(node.references.iter().enumerate().map(|(k, r)| {
                let value = if one_each && deps.get(k) == Some(&r.target) {
                    std::mem::take(&mut values[k])
                } else {
                    match deps.iter().position(|&d| d == r.target) {
                        Some(at) => values[at].clone(),
                        None => exports_of(r.target).0,
                    }
                };
                (r.id_span, value)
            }));
            Scope::with_stdlib().with_resolved(resolved)
        };
        drop(values);
        let stamp = EvalStamp {
            source: match starts.as_deref_mut() {
                Some(starts) => starts.source_file(node.file, &file.source),
                None => Arc::new(file.source.clone()),
            },
            span: block.span,
            inputs,
        };
        let id = &node.id;

        let registration = match &node.kind {
            NodeKind::Component { name } => {
                let position = match starts.as_deref_mut() {
                    Some(starts) => starts.registration(&self.registry, name)?,
                    None => self.registry.position(name)?,
                };
                self.registry.at(position)?
            }
            NodeKind::Config { .. } => {
                let result =
                    match &**id {
                        "logging" => river::decode::decode_block_body_validated::<
                            crate::LoggingConfig,
                        >(block, ast, &scope)
                        .map(|config| {
                            if let Some(hook) = &self.options.on_logging {
                                hook(&config);
                            }
                        }),
                        // `tracing` is accepted for compatibility; Rill exports no traces yet.
                        _ => Ok(()),
                    };
                let health = match result {
                    Ok(()) => Health::at(HealthState::Healthy, "", now),
                    Err(diags) => {
                        let message = diags
                            .iter()
                            .map(|d| file.source.one_line(d))
                            .collect::<Vec<_>>()
                            .join("; ");
                        if let Some(r) = report {
                            for d in diags {
                                r.diagnostics.push(&file.source, d);
                            }
                        }
                        Health::new(
                            HealthState::Unhealthy,
                            format!("failed to evaluate config: {message}"),
                        )
                    }
                };
                slot.node().eval_health = Some(health.into());
                return None;
            }
        };
        // A load times its evaluations itself, one clock reading per node (see [`EvaluationClock`]).
        let started = starts.is_none().then(std::time::Instant::now);
        let decoded = registration.decode(block, ast, &scope);
        match starts.as_deref_mut() {
            Some(starts) => starts.timed = true,
            None => {
                let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                self.metrics.evaluation_seconds.observe(seconds);
            }
        }
        if let Some(starts) = starts.as_deref_mut() {
            let mut resolved = scope.take_resolved();
            resolved.clear();
            starts.resolved = resolved;
        }
        drop(scope);

        let mut state = slot.node();
        state
            .shared(now)
            .counters
            .evaluations
            .fetch_add(1, Ordering::Relaxed);
        let args = match decoded {
            Ok(args) => args,
            Err(diags) => {
                state.stamp = None;
                let message = diags
                    .iter()
                    .map(|d| file.source.one_line(d))
                    .collect::<Vec<_>>()
                    .join("; ");
                state.eval_health = Some(
                    Health::new(
                        HealthState::Unhealthy,
                        format!("failed to evaluate config: {message}"),
                    )
                    .into(),
                );
                drop(state);
                tracing::error!(component = %id, error = %message, "failed to evaluate component arguments");
                if let Some(r) = report.as_deref_mut() {
                    for d in diags {
                        r.diagnostics.push(&file.source, d);
                    }
                }
                return None;
            }
        };
        state.eval_health = Some(EvalHealth::Evaluated(now));
        state.stamp = Some(stamp);
        if state
            .args
            .as_ref()
            .is_some_and(|old| old.same_as(args.as_ref()))
        {
            return None;
        }
        state.args = Some(args.clone());
        // Built by a load whose tasks are still being started (see [`start_built`]): its runner is made now,
        // so that it is given these arguments.
        let first_poll = match (&state.runner, state.component.clone()) {
            (None, Some(component)) => self.start_runner(id.clone(), &mut state, component, now),
            _ => None,
        };
        if let Some(runner) = state.runner.as_mut() {
            let (runner, generation) = runner.next_update();
            drop(state);
            match starts.as_deref_mut() {
                Some(starts) => starts.first_polls.extend(first_poll),
                None => crate::lazy_task::start_all(
                    &self.runtime,
                    first_poll.into_iter().collect(),
                    &self.pending_starts,
                ),
            }
            if let Some(r) = report {
                r.updated.push(ComponentId::from(id.clone()));
            }
            return crate::runner::submit(&runner, generation, args);
        }
        // Build outside the lock: components publish their first exports from `build`.
        let alive = state.alive(now).clone();
        drop(state);
        let ctx = Context {
            id: ComponentId::from(id.clone()),
            storage: self.storage.clone(),
            span: tracing::info_span!("component", component = %id),
            exports: ExportsHandle {
                slot: Arc::downgrade(slot),
                alive,
            },
            metrics: self.options.metrics.for_component_id(id.clone()),
            cluster: self.options.cluster.clone(),
        };
        if full_pass {
            slot.building_in_pass.store(true, Ordering::Release);
        }
        // A component that panics in `build` fails to build like one that returns an error: the rest of the
        // load goes on.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            registration.build(ctx, args)
        }))
        .unwrap_or_else(|payload| {
            Err(ComponentError::new(format!(
                "panicked: {}",
                crate::runner::panic_message(&*payload)
            )))
        });
        if full_pass {
            slot.building_in_pass.store(false, Ordering::Release);
        }
        let mut state = slot.node();
        match built {
            Ok(component) => {
                state.component = Some(component.clone());
                match starts {
                    // Made when the load is over, on the runtime's workers (see [`start_built`]): dependants
                    // need the exports, not the runner.
                    Some(starts) => {
                        state.shared(now).started(now);
                        drop(state);
                        starts.runners.push((slot.clone(), component));
                    }
                    None => {
                        let first_poll = self.start_runner(id.clone(), &mut state, component, now);
                        drop(state);
                        if let Some(first_poll) = first_poll {
                            crate::lazy_task::start_all(
                                &self.runtime,
                                vec![first_poll],
                                &self.pending_starts,
                            );
                        }
                    }
                }
                if let Some(r) = report {
                    r.started.push(ComponentId::from(id.clone()));
                }
            }
            Err(e) => {
                state.args = None;
                state.stamp = None;
                // Whatever the failed build left behind must not publish; the next attempt gets a new license.
                if let Some(alive) = state.alive.take() {
                    alive.revoke();
                }
                // Nor may what it published before failing: there is no component to export anything.
                let published = lock_plain(&slot.exports).take();
                state.eval_health = Some(
                    Health::new(
                        HealthState::Unhealthy,
                        format!("failed to build component: {e}"),
                    )
                    .into(),
                );
                drop(state);
                drop(published);
                tracing::error!(component = %id, error = %e, "failed to build component");
                if let Some(r) = report {
                    let d = Diagnostic::error(
                        node.name_span(&generation.sources),
                        format!("failed to build component: {e}"),
                    );
                    r.diagnostics.push(&file.source, d);
                }
            }
        }
        None
    }
}

impl Shared {
    /// Makes and starts the runner of `component`, just built for the node whose state is `state`; returns
    /// the first poll of its task, for the caller to make.
    fn start_runner(
        &self,
        id: Arc<str>,
        state: &mut NodeState,
        component: Arc<dyn Component>,
        now: SystemTime,
    ) -> Option<crate::lazy_task::FirstPoll> {
        let shared = crate::runner::Shared::new(id, component, state.shared(now).clone());
        let backoff = crate::runner::Backoff {
            first: self.options.restart_backoff,
            max: self.options.max_restart_backoff,
        };
        // A token of its own rather than a child of the controller's: thousands of children make one tree
        // that every start and stop locks. `shutdown` and the controller's drop cancel each runner instead;
        // after shutdown, nothing new may run.
        let cancel = CancellationToken::new();
        if self.shut_down.load(Ordering::Acquire) {
            cancel.cancel();
        }
        let mut runner = Runner::new(shared, cancel, state.alive(now).clone());
        let first_poll = runner.start(&self.runtime, now, backoff);
        state.runner = Some(runner);
        first_poll
    }
}

/// Components built during a load whose tasks are not started yet. They are started when this is dropped: at
/// the end of the load, or when the load is abandoned half-way (its future dropped).
pub(crate) struct DeferredStarts {
    shared: Arc<Shared>,
    /// The first polls of the components' tasks (see [`crate::lazy_task::start_all`]).
    pub(crate) first_polls: Vec<crate::lazy_task::FirstPoll>,
    /// The config a full pass evaluates (see [`Slot::pass_pending`]). A pass abandoned half-way leaves
    /// the nodes it did not reach dirty, for the evaluator.
    full_pass: Option<Arc<Generation>>,
    /// How long each evaluation took, for the controller's histogram (recorded when the load is over: the
    /// histogram has one lock, which the threads of a pass would otherwise take in turns for every node).
    evaluation_seconds: Vec<f64>,
    /// The last evaluation decoded arguments, so that [`EvaluationClock::lap`] records its time.
    timed: bool,
    /// Each file of the config, referred to by the stamps of the nodes evaluated here. Every evaluation
    /// thread has its own, so that the threads do not all count references on one counter.
    source_files: Vec<Option<Arc<river::SourceFile>>>,
    /// The registration last looked up, by the graph's interned component name: blocks of one component
    /// mostly come in a row, and each lookup otherwise compares names through the registry's map.
    last_registration: Option<(Arc<str>, usize)>,
    /// An empty buffer for the references resolved by the next evaluation (see [`Scope::with_resolved`]).
    resolved: Vec<(river::Span, Value)>,
    /// Components built here whose runners are not made yet (see [`start_built`]).
    pub(crate) runners: Vec<(Arc<Slot>, Arc<dyn Component>)>,
}

impl DeferredStarts {
    /// Where the registration of component `name` (interned by the graph) is in `registry`.
    fn registration(&mut self, registry: &crate::Registry, name: &Arc<str>) -> Option<usize> {
        if let Some((last, position)) = &self.last_registration {
            if Arc::ptr_eq(last, name) {
                return Some(*position);
            }
        }
        let position = registry.position(name)?;
        self.last_registration = Some((name.clone(), position));
        Some(position)
    }

    /// This list's reference to file `index` of the config, whose source is `source`.
    fn source_file(&mut self, index: usize, source: &river::SourceFile) -> Arc<river::SourceFile> {
        if self.source_files.len() <= index {
            self.source_files.resize(index + 1, None);
        }
        self.source_files[index]
            .get_or_insert_with(|| Arc::new(source.clone()))
            .clone()
    }

    /// An empty list for one evaluation thread of a pass ([`crate::pass`]); its first polls are moved to the
    /// load's own list.
    /// `expected`: about how many nodes it will evaluate.
    pub(crate) fn collecting(shared: Arc<Shared>, expected: usize) -> Self {
        DeferredStarts {
            shared,
            first_polls: Vec::new(),
            full_pass: None,
            evaluation_seconds: Vec::with_capacity(expected),
            timed: false,
            source_files: Vec::new(),
            last_registration: None,
            resolved: Vec::new(),
            runners: Vec::with_capacity(expected),
        }
    }
}

impl Drop for DeferredStarts {
    fn drop(&mut self) {
        let seconds = std::mem::take(&mut self.evaluation_seconds);
        if seconds.len() > 64 {
            // A big pass's thousands of observations take the histogram's lock each: recorded off the load's
            // path.
            let histogram = self.shared.metrics.evaluation_seconds.clone();
            self.shared.runtime.spawn(async move {
                for s in seconds {
                    histogram.observe(s);
                }
            });
        } else {
            for s in seconds {
                self.shared.metrics.evaluation_seconds.observe(s);
            }
        }
        if let Some(generation) = self.full_pass.take() {
            // Abandoned half-way: what the pass did not reach may have missed export changes.
            let rest: Vec<(usize, usize)> = generation
                .slots
                .iter()
                .enumerate()
                // A node without a slot was never evaluated.
                .filter(|(_, slot)| {
                    slot.get()
                        .is_none_or(|slot| slot.pass_pending.swap(false, Ordering::AcqRel))
                })
                .map(|(i, _)| (generation.rank[i], i))
                .collect();
            if !rest.is_empty() {
                let mut st = lock(&self.shared.state);
                // Unless a newer config replaced this one meanwhile.
                if Arc::ptr_eq(&st.current, &generation) {
                    st.dirty.extend(rest);
                    drop(st);
                    self.shared.wake.notify_one();
                }
            }
        }
        start_built(
            &self.shared,
            std::mem::take(&mut self.runners),
            std::mem::take(&mut self.first_polls),
        );
    }
}

/// Times the evaluations of a load's thread with one clock reading per node: each evaluation lasts from the
/// end of the one before (or the thread's last wait) to its own end, including the thread's bookkeeping
/// between the two, which is tiny.
pub(crate) struct EvaluationClock(std::time::Instant);

impl EvaluationClock {
    /// Starts timing now (the thread is about to evaluate).
    pub(crate) fn start() -> Self {
        EvaluationClock(std::time::Instant::now())
    }

    /// An evaluation just ended: its time is recorded in `starts` if it decoded arguments.
    pub(crate) fn lap(&mut self, starts: &mut DeferredStarts) {
        let end = std::time::Instant::now();
        if std::mem::take(&mut starts.timed) {
            starts
                .evaluation_seconds
                .push(end.duration_since(self.0).as_secs_f64());
        }
        self.0 = end;
    }
}

/// Starts the tasks of the components a load built (`built`) and made runners for (`first_polls`), on the
/// runtime's workers, counted in the controller's pending starts until done. A load returns once every
/// node is evaluated: making thousands of runners on its way would hold up the load (and whatever waits
/// for it) for work that nothing in the config waits for, since dependants need exports, not runners. A
/// component whose node was rebuilt, removed or given a runner meanwhile (re-evaluated with new
/// arguments: see [`Shared::evaluate`]) is skipped. The next load, and a shutdown, wait until these runners
/// are made (see [`Shared::runners_made`]), so that they stop what the load started.
fn start_built(
    shared: &Arc<Shared>,
    built: Vec<(Arc<Slot>, Arc<dyn Component>)>,
    first_polls: Vec<crate::lazy_task::FirstPoll>,
) {
    crate::lazy_task::start_all(&shared.runtime, first_polls, &shared.pending_starts);
    if built.is_empty() {
        return;
    }
    shared
        .unmade_runners
        .fetch_add(built.len(), Ordering::AcqRel);
    let controller = shared.clone();
    crate::lazy_task::start_all_with(
        &shared.runtime,
        built,
        &shared.pending_starts,
        move |batch: Vec<(Arc<Slot>, Arc<dyn Component>)>| {
            // Every runner of the batch is made before any is polled: a first poll may take its time.
            let mut first_polls = Vec::with_capacity(batch.len());
            let made = Made(&controller, batch.len());
            let now = SystemTime::now();
            for (slot, component) in batch {
                let mut state = slot.node();
                let current = state
                    .component
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &component));
                if !current || state.runner.is_some() {
                    continue;
                }
                first_polls.extend(controller.start_runner(
                    slot.id.clone(),
                    &mut state,
                    component,
                    now,
                ));
            }
            drop(made);
            for first_poll in first_polls {
                first_poll.poll();
            }
        },
    );
}

/// Takes `.1` runners off [`Shared::unmade_runners`] when dropped (even by a panic), waking whoever waits
/// for none to be left.
struct Made<'a>(&'a Shared, usize);

impl Drop for Made<'_> {
    fn drop(&mut self) {
        if self.0.unmade_runners.fetch_sub(self.1, Ordering::AcqRel) == self.1 {
            self.0.runners_made.notify_waiters();
        }
    }
}

impl Shared {
    /// Waits until the runners of every component built by earlier loads are made (see [`start_built`]).
    async fn runners_made(&self) {
        loop {
            let made = self.runners_made.notified();
            tokio::pin!(made);
            made.as_mut().enable();
            if self.unmade_runners.load(Ordering::Acquire) == 0 {
                return;
            }
            made.await;
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.helpers.close();
        // Stops the evaluator and every component still running.
        self.cancel.cancel();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for slot in st.current.existing_slots() {
            if let Some(runner) = slot.node().runner.as_ref() {
                runner.cancel.cancel();
            }
        }
    }
}

impl NodeState {
    /// The node's health and counters, made now if the node has none yet (`now`: when).
    fn shared(&mut self, now: SystemTime) -> &Arc<NodeShared> {
        self.shared.get_or_insert_with(|| NodeShared::new(now))
    }

    /// The license of the component's exports handle, granted to a new build now if there is none (`now`:
    /// when, should the node's shared state be made too).
    fn alive(&mut self, now: SystemTime) -> &crate::runner::ExportsLicense {
        let license = match self.alive.take() {
            Some(license) => license,
            None => {
                self.builds += 1;
                crate::runner::ExportsLicense::grant(self.shared(now).clone(), self.builds)
            }
        };
        self.alive.insert(license)
    }
}

/// The publications an evaluation read ([`Published::version`]), in the order of the node's dependencies;
/// most nodes have one or two.
type Inputs = smallvec::SmallVec<[u64; 2]>;

/// The inputs of one evaluation: the block's text and the exports it read.
#[derive(Clone, Debug)]
struct EvalStamp {
    /// The file the block was read from and where. Behind an `Arc` of the evaluating thread's own (see
    /// [`DeferredStarts::source_file`]).
    source: Arc<river::SourceFile>,
    span: river::Span,
    inputs: Inputs,
}

impl EvalStamp {
    /// Whether the block at `span` of `source` has the same text as the one evaluated.
    fn same_text(&self, source: &river::SourceFile, span: river::Span) -> bool {
        (std::ptr::eq(self.source.text(), source.text()) && self.span == span)
            || self.span.text(self.source.text()) == span.text(source.text())
    }
}

/// Equality with a shortcut for values shared by reference (exports are usually passed along unchanged).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if Arc::ptr_eq(x, y) => true,
        (Value::Object(x), Value::Object(y)) if Arc::ptr_eq(x, y) => true,
        _ => a == b,
    }
}

/// Re-evaluates dirty nodes in dependency order whenever woken.
async fn evaluator(shared: Weak<Shared>, wake: Arc<Notify>, cancel: CancellationToken) {
    loop {
        // Holds only the `Notify`, so a dropped controller is freed; `shutdown` (or the drop) cancels.
        let notified = wake.notified();
        if shared.strong_count() == 0 {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = notified => {}
        }
        let Some(s) = shared.upgrade() else { return };
        let _guard = s.load_lock.lock().await;
        s.metrics.evaluating.set(1);
        loop {
            let (generation, next) = {
                let st = lock(&s.state);
                (st.current.clone(), st.dirty.first().copied())
            };
            let Some((_, index)) = next else { break };
            // Propagation does not wait for updates (see `load`): the dependants are dirtied again when the
            // component publishes, so they converge without holding up unrelated nodes.
            let _ = s.evaluate(&generation, index, false, None, None, SystemTime::now());
        }
        s.metrics.evaluating.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs_are_joined_like_paths() {
        for storage in ["data-rill", "data-rill/", "/var/lib/rill", "", "/"] {
            for id in ["local.file.a", "test.pass.with/slash"] {
                let storage = std::path::Path::new(storage);
                assert_eq!(
                    crate::component::data_dir(storage, id),
                    storage.join(id),
                    "{storage:?} {id}"
                );
            }
        }
    }

    #[test]
    fn a_node_not_evaluated_yet_says_so_with_or_without_a_slot() {
        let slot = Arc::new(Slot::new(Arc::from("test.pass.a"), 0, Weak::new()));
        for health in [health_of(None), health_of(Some(&slot))] {
            assert_eq!(health.state, HealthState::Unknown);
            assert_eq!(health.message, "not evaluated yet");
        }
        slot.node().eval_health = Some(Health::new(HealthState::Healthy, "").into());
        assert_eq!(health_of(Some(&slot)).state, HealthState::Healthy);
    }
}
