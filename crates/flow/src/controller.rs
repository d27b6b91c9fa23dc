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

use crate::component::{Component, ComponentError, Context, Health, HealthState};
use crate::fasthash::FastMap;
use crate::graph::{Adjacency, Graph, NodeKind};
use crate::registry::{Arguments, Registry};
use crate::runner::{NodeShared, PendingUpdate, Runner};
use crate::source::{LoadDiagnostics, Sources};
use river::eval::Scope;
use river::{Diagnostic, Object, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
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
    /// runtime, are evaluated on the loading task.
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
    pub started: Vec<String>,
    /// Components updated by this load.
    pub updated: Vec<String>,
    /// Components stopped by this load.
    pub stopped: Vec<String>,
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
    id: Arc<str>,
    shared: Weak<Shared>,
    /// Cleared when the component is stopped or abandoned: a component that ignores cancellation must not
    /// overwrite the exports of its successor.
    alive: Arc<std::sync::atomic::AtomicBool>,
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
        if !self.alive.load(Ordering::Acquire) {
            return;
        }
        if let Some(shared) = self.shared.upgrade() {
            shared.exports_changed(&self.id, value);
        }
    }
}

impl std::fmt::Debug for ExportsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExportsHandle({})", self.id)
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
    /// The runtime the controller was created in: components' tasks run there.
    runtime: tokio::runtime::Handle,
    /// Components started whose `run` has not been polled yet.
    pending_starts: crate::lazy_task::PendingStarts,
}

#[derive(Default)]
struct State {
    sources: Sources,
    graph: Graph,
    /// Position of each node in the dependency order.
    rank: Vec<usize>,
    nodes: FastMap<Arc<str>, NodeState>,
    exports: FastMap<Arc<str>, Value>,
    /// (rank, node index) of nodes to re-evaluate.
    dirty: BTreeSet<(usize, usize)>,
    /// During a load that evaluates every node (a full pass): which nodes the pass has not started yet. They
    /// are evaluated after everything they depend on anyway, so export changes need not mark them dirty.
    /// Empty outside a full pass.
    pass_pending: Vec<bool>,
    loaded: bool,
}

struct NodeState {
    args: Option<Arguments>,
    /// What the last successful evaluation saw; an identical block with identical inputs is not
    /// evaluated again (reloads of unchanged configs cost almost nothing).
    stamp: Option<EvalStamp>,
    component: Option<Arc<dyn Component>>,
    runner: Option<Runner>,
    eval_health: Health,
    /// Run and update health and the counters, shared with the component's task.
    shared: Arc<NodeShared>,
    /// The liveness flag shared with the component's exports handle.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    /// A controller with no config loaded yet. Must be created inside a tokio runtime.
    pub fn new(registry: Arc<Registry>, options: ControllerOptions) -> Self {
        let shared = Arc::new(Shared {
            registry,
            metrics: crate::metrics::ControllerMetrics::default(),
            options,
            state: Mutex::new(State::default()),
            load_lock: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            pending_starts: Default::default(),
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
        // The same text as the running config makes the same graph: keep the running one (and its
        // syntax trees) and only evaluate what may have changed.
        let same_text = {
            let st = lock(&shared.state);
            st.loaded && same_sources(&st.sources, &sources)
        };
        let big = sources
            .files
            .iter()
            .map(|f| f.ast.body.len())
            .sum::<usize>()
            > 100;
        let mut report = LoadReport::default();
        let order = if same_text {
            shared.metrics.evaluating.set(1);
            drop_later(sources, big);
            let st = lock(&shared.state);
            // A node needs evaluating if an input changed since its last good evaluation (it is dirty),
            // if that failed, or if it is a config block (applied on every load).
            st.graph
                .order
                .iter()
                .copied()
                .filter(|&i| {
                    let node = &st.graph.nodes[i];
                    !matches!(node.kind, NodeKind::Component { .. })
                        || st.dirty.contains(&(st.rank[i], i))
                        || st.nodes.get(&*node.id).is_none_or(|n| n.stamp.is_none())
                })
                .collect()
        } else {
            let graph = match Graph::build(&sources, shared.registry.as_ref()) {
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
            let removed: Vec<(Arc<str>, Option<Runner>)> = {
                let mut st = lock(&shared.state);
                let gone: Vec<Arc<str>> = st
                    .nodes
                    .keys()
                    .filter(|id| graph.get(id).is_none())
                    .cloned()
                    .collect();
                gone.into_iter()
                    .map(|id| {
                        st.exports.remove(&*id);
                        let runner = st.nodes.remove(&*id).and_then(|n| n.runner);
                        (id, runner)
                    })
                    .collect()
            };
            for (id, runner) in removed {
                if let Some(r) = runner {
                    stop_runner(r, shared.options.stop_timeout, &id).await;
                }
                shared.options.metrics.remove_component(&id);
                report.stopped.push(String::from(&*id));
            }

            // Swap in the new graph; surviving nodes keep their state.
            let mut st = lock(&shared.state);
            let mut rank = vec![0; graph.nodes.len()];
            for (r, &i) in graph.order.iter().enumerate() {
                rank[i] = r;
            }
            st.rank = rank;
            st.dirty.clear();
            // Room for every node up front: growing the maps one rehash at a time shows in big loads.
            let n = graph.nodes.len();
            let (have_nodes, have_exports) = (st.nodes.len(), st.exports.len());
            st.nodes.reserve(n.saturating_sub(have_nodes));
            st.exports.reserve(n.saturating_sub(have_exports));
            let old = (
                std::mem::replace(&mut st.sources, sources),
                std::mem::replace(&mut st.graph, graph),
            );
            let order = st.graph.order.clone();
            drop(st);
            drop_later(old, big);
            order
        };

        let has_logging = lock(&shared.state).graph.get("logging").is_some();
        if !has_logging {
            if let Some(hook) = &shared.options.on_logging {
                hook(&crate::LoggingConfig::default());
            }
        }
        let mut starts = DeferredStarts {
            shared: shared.clone(),
            first_polls: Vec::new(),
            full_pass: !same_text,
        };
        if starts.full_pass {
            let mut st = lock(&shared.state);
            let n = st.graph.nodes.len();
            st.pass_pending = vec![true; n];
        }
        match crate::pass::threads_for(order.len(), shared.options.evaluation_threads) {
            Some(threads) => crate::pass::evaluate_in_parallel(
                shared,
                &order,
                threads,
                shared.options.evaluation_threads != 0,
                &mut report,
                &mut starts,
            ),
            None => {
                for index in order {
                    if starts.full_pass {
                        shared.pass_started(index);
                    }
                    let Some(pending) =
                        shared.evaluate(index, Some(&mut report), Some(&mut starts))
                    else {
                        continue;
                    };
                    if shared.has_dependants(index) {
                        // Let dependants see the new exports, but never wait long for a slow component.
                        let _ =
                            tokio::time::timeout(shared.options.update_wait, pending.finished())
                                .await;
                    }
                }
            }
        }
        lock(&shared.state).pass_pending = Vec::new();
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
                let st = lock(&shared.state);
                for node in &st.graph.nodes {
                    let state = st.health_of(&node.id).state;
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
        let components: Vec<Arc<dyn Component>> = lock(&self.shared.state)
            .nodes
            .values()
            .filter_map(|n| n.component.clone())
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
        let component = lock(&self.shared.state)
            .nodes
            .get(id)
            .and_then(|n| n.component.clone())?;
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
        lock(&self.shared.state)
            .nodes
            .get(id)
            .map(|n| CountersHandle(n.shared.clone()))
    }

    /// The current exports of a component.
    pub fn exports(&self, id: &str) -> Option<Value> {
        lock(&self.shared.state).exports.get(id).cloned()
    }

    /// Introspection of every node, in source order.
    pub fn components(&self) -> Vec<ComponentInfo> {
        let st = lock(&self.shared.state);
        (0..st.graph.nodes.len())
            .filter_map(|i| st.info(i))
            .collect()
    }

    /// Introspection of one node.
    pub fn component(&self, id: &str) -> Option<ComponentInfo> {
        let st = lock(&self.shared.state);
        st.graph.index_of(id).and_then(|i| st.info(i))
    }

    /// Stops every component (each within the stop timeout) and the evaluator.
    pub async fn shutdown(&self) {
        let _guard = self.shared.load_lock.lock().await;
        self.shared.cancel.cancel();
        let runners: Vec<(Arc<str>, Runner)> = {
            let mut st = lock(&self.shared.state);
            st.nodes
                .iter_mut()
                .filter_map(|(id, n)| n.runner.take().map(|r| (id.clone(), r)))
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

/// `<storage>/<id>`, like `storage.join(id)` (an ID is never absolute) without parsing the path again for
/// every component.
fn data_dir(storage: &std::path::Path, id: &str) -> PathBuf {
    let base = storage.as_os_str();
    let mut dir = std::ffi::OsString::with_capacity(base.len() + 1 + id.len());
    dir.push(base);
    let ends_with_separator = base
        .as_encoded_bytes()
        .last()
        .is_some_and(|&b| std::path::is_separator(b as char));
    if !base.is_empty() && !ends_with_separator {
        dir.push(std::path::MAIN_SEPARATOR_STR);
    }
    dir.push(id);
    PathBuf::from(dir)
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

impl State {
    /// The least healthy of a node's evaluation, run, update and self-reported health.
    fn health_of(&self, id: &str) -> Health {
        let mut reports = vec![];
        if let Some(s) = self.nodes.get(id) {
            reports.push(s.eval_health.clone());
            if s.component.is_some() {
                let run = s
                    .shared
                    .run_health
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                reports.push(run.to_health());
            }
            if let Some(h) = s
                .shared
                .update_health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                reports.push(h);
            }
            if let Some(h) = s.component.as_ref().and_then(|c| c.health()) {
                reports.push(h);
            }
        }
        Health::worst(reports.iter())
            .cloned()
            .unwrap_or_else(|| Health::new(HealthState::Unknown, "not evaluated yet"))
    }

    fn info(&self, index: usize) -> Option<ComponentInfo> {
        let node = self.graph.nodes.get(index)?;
        let (name, label) = match &node.kind {
            NodeKind::Component { name } => (String::from(&**name), node.label().to_string()),
            NodeKind::Config { name } => (name.clone(), String::new()),
        };
        let ids = |list: &[usize]| {
            list.iter()
                .map(|&i| String::from(&*self.graph.nodes[i].id))
                .collect()
        };
        let state = self.nodes.get(&*node.id);
        let health = self.health_of(&node.id);
        Some(ComponentInfo {
            id: String::from(&*node.id),
            name,
            label,
            health,
            references_to: ids(&self.graph.dependencies[index]),
            referenced_by: ids(&self.graph.dependants[index]),
            arguments: state
                .and_then(|s| s.args.as_ref())
                .map(|a| a.to_riverjson())
                .unwrap_or_default(),
            exports: self
                .exports
                .get(&*node.id)
                .map(river::riverjson::value_to_json)
                .unwrap_or_default(),
            debug_info: state
                .and_then(|s| s.component.as_ref())
                .and_then(|c| c.debug_info())
                .map(|v| river::riverjson::value_to_json(&v))
                .unwrap_or_default(),
        })
    }

    fn mark_dependants_dirty(&mut self, id: &str) -> bool {
        let Some(index) = self.graph.index_of(id) else {
            return false;
        };
        let mut any = false;
        for &d in &self.graph.dependants[index] {
            if self.pass_pending.get(d) == Some(&true) {
                continue;
            }
            any |= self.dirty.insert((self.rank[d], d));
        }
        any
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
            let entry = root
                .entry(first.to_string())
                .or_insert_with(|| Value::object(Object::new()));
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
    /// Whether anything refers to node `index`.
    pub(crate) fn has_dependants(&self, index: usize) -> bool {
        lock(&self.state)
            .graph
            .dependants
            .get(index)
            .is_some_and(|d| !d.is_empty())
    }

    /// Marks node `index` as started by the running full pass (see [`State::pass_pending`]).
    pub(crate) fn pass_started(&self, index: usize) {
        if let Some(p) = lock(&self.state).pass_pending.get_mut(index) {
            *p = false;
        }
    }

    /// The dependency lists of the current graph and each node's rank, for scheduling a pass.
    pub(crate) fn pass_plan(&self) -> (Adjacency, Adjacency, Vec<usize>) {
        let st = lock(&self.state);
        (
            st.graph.dependencies.clone(),
            st.graph.dependants.clone(),
            st.rank.clone(),
        )
    }

    pub(crate) fn update_wait(&self) -> Duration {
        self.options.update_wait
    }

    fn exports_changed(self: &Arc<Self>, id: &Arc<str>, value: Value) {
        let mut st = lock(&self.state);
        match st.exports.get_mut(&**id) {
            Some(old) if *old == value => return,
            Some(old) => *old = value,
            None => {
                st.exports.insert(id.clone(), value);
            }
        }
        if st.mark_dependants_dirty(id) {
            self.metrics.queue_size.set(st.dirty.len() as i64);
            drop(st);
            self.wake.notify_one();
        }
    }

    /// Evaluates node `index` of the current graph and applies the result. Returns nothing: failures become
    /// the node's evaluation health (and diagnostics in `report` during a load). During a load (`starts`
    /// given), the tasks of newly built components are started when the pass is over.
    pub(crate) fn evaluate(
        self: &Arc<Self>,
        index: usize,
        mut report: Option<&mut LoadReport>,
        starts: Option<&mut DeferredStarts>,
    ) -> Option<PendingUpdate> {
        let (file, stmt, registration, id, stamp, scope) = {
            let mut st = lock(&self.state);
            let &rank = st.rank.get(index)?;
            if st.dirty.remove(&(rank, index)) {
                self.metrics.queue_size.set(st.dirty.len() as i64);
            }
            let node = &st.graph.nodes[index];
            let file = &st.sources.files[node.file];
            let Some(river::ast::Stmt::Block(block)) = file.ast.top_level().get(node.stmt) else {
                return None;
            };
            let deps = &st.graph.dependencies[index];
            let exports_of = |d: usize| st.exports.get(&*st.graph.nodes[d].id);
            let is_component = matches!(node.kind, NodeKind::Component { .. });
            // Compared in place: an unchanged node (most of an unchanged reload) costs no copies.
            let unchanged = is_component
                && st
                    .nodes
                    .get(&*node.id)
                    .and_then(|n| n.stamp.as_ref())
                    .is_some_and(|p| {
                        p.same_text(&file.source, block.span)
                            && p.inputs.len() == deps.len()
                            && deps.iter().all(|&d| {
                                let id = &*st.graph.nodes[d].id;
                                let Ok(at) = p.inputs.binary_search_by(|(k, _)| (**k).cmp(id))
                                else {
                                    return false;
                                };
                                let seen = &p.inputs[at].1;
                                match exports_of(d) {
                                    Some(v) => same_value(seen, v),
                                    None => matches!(seen, Value::Object(o) if o.is_empty()),
                                }
                            })
                    });
            if unchanged {
                return None;
            }
            let empty = || Value::object(Object::new());
            let mut inputs: Vec<(Arc<str>, Value)> = deps
                .iter()
                .map(|&d| {
                    let exports = exports_of(d).cloned().unwrap_or_else(empty);
                    (st.graph.nodes[d].id.clone(), exports)
                })
                .collect();
            inputs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let scope = if st.graph.shadows_stdlib(index) {
                // The component's namespace hides the library's: evaluate in the nested objects.
                scope_from_pairs(inputs.iter().map(|(k, v)| (&**k, v)))
            } else {
                // Every other name in an accepted block is the standard library's, so the references are
                // all there is to resolve.
                let resolved = node
                    .references
                    .iter()
                    .map(|r| {
                        let exports = exports_of(r.target).cloned().unwrap_or_else(empty);
                        (r.id_span, exports)
                    })
                    .collect();
                Scope::with_stdlib().with_resolved(resolved)
            };
            // `None` for a config block.
            let registration = match &node.kind {
                NodeKind::Component { name, .. } => Some(self.registry.get(name).cloned()?),
                NodeKind::Config { .. } => None,
            };
            (
                file.clone(),
                node.stmt,
                registration,
                node.id.clone(),
                EvalStamp {
                    source: file.source.clone(),
                    span: block.span,
                    inputs,
                },
                scope,
            )
        };
        let ast = &*file.ast;
        let Some(river::ast::Stmt::Block(block)) = ast.top_level().get(stmt) else {
            return None;
        };

        let Some(registration) = registration else {
            let result = match &*id {
                "logging" => river::decode::decode_block_body_validated::<crate::LoggingConfig>(
                    block, ast, &scope,
                )
                .map(|config| {
                    if let Some(hook) = &self.options.on_logging {
                        hook(&config);
                    }
                }),
                // `tracing` is accepted for compatibility; Rill exports no traces yet.
                _ => Ok(()),
            };
            let mut st = lock(&self.state);
            let node = st.nodes.entry(id.clone()).or_insert_with(NodeState::new);
            node.eval_health = match result {
                Ok(()) => Health::new(HealthState::Healthy, ""),
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
            return None;
        };
        let started = std::time::Instant::now();
        let decoded = registration.decode(block, ast, &scope);
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        drop(scope);

        let mut st = lock(&self.state);
        let node = st.nodes.entry(id.clone()).or_insert_with(NodeState::new);
        node.shared
            .counters
            .evaluations
            .fetch_add(1, Ordering::Relaxed);
        let args = match decoded {
            Ok(args) => args,
            Err(diags) => {
                node.stamp = None;
                let message = diags
                    .iter()
                    .map(|d| file.source.one_line(d))
                    .collect::<Vec<_>>()
                    .join("; ");
                node.eval_health = Health::new(
                    HealthState::Unhealthy,
                    format!("failed to evaluate config: {message}"),
                );
                tracing::error!(component = %id, error = %message, "failed to evaluate component arguments");
                if let Some(r) = report.as_deref_mut() {
                    for d in diags {
                        r.diagnostics.push(&file.source, d);
                    }
                }
                return None;
            }
        };
        node.eval_health = Health::new(HealthState::Healthy, "");
        node.stamp = Some(stamp);
        if node
            .args
            .as_ref()
            .is_some_and(|old| old.same_as(args.as_ref()))
        {
            return None;
        }
        node.args = Some(args.clone());
        if let Some(runner) = node.runner.as_mut() {
            let (runner, generation) = runner.next_update();
            drop(st);
            if let Some(r) = report {
                r.updated.push(String::from(&*id));
            }
            return crate::runner::submit(&runner, generation, args);
        }
        if node.component.is_some() {
            return None;
        }
        // Build outside the lock: components publish their first exports from `build`.
        let alive = node.alive.clone();
        drop(st);
        let ctx = Context {
            id: String::from(&*id),
            data_dir: data_dir(&self.options.storage_path, &id),
            span: tracing::info_span!("component", component = %id),
            exports: ExportsHandle {
                id: id.clone(),
                shared: Arc::downgrade(self),
                alive,
            },
            metrics: self.options.metrics.for_component_id(id.clone()),
            cluster: self.options.cluster.clone(),
        };
        let built = registration.build(ctx, args);
        let mut st = lock(&self.state);
        let node = st.nodes.get_mut(&*id)?;
        match built {
            Ok(component) => {
                node.component = Some(component.clone());
                let shared = crate::runner::Shared::new(id.clone(), component, node.shared.clone());
                let backoff = crate::runner::Backoff {
                    first: self.options.restart_backoff,
                    max: self.options.max_restart_backoff,
                };
                // A token of its own rather than a child of the controller's: thousands of children make
                // one tree that every start and stop locks. `shutdown` and the controller's drop cancel
                // each runner instead; after shutdown, nothing new may run.
                let cancel = CancellationToken::new();
                if self.cancel.is_cancelled() {
                    cancel.cancel();
                }
                let mut runner = Runner::new(shared, cancel, node.alive.clone(), backoff);
                let first_poll = match starts {
                    // Started with the others when the pass is over, in a few runtime tasks.
                    Some(starts) => {
                        starts.first_polls.extend(runner.start(&self.runtime));
                        None
                    }
                    None => runner.start(&self.runtime),
                };
                node.runner = Some(runner);
                drop(st);
                if let Some(first_poll) = first_poll {
                    crate::lazy_task::start_all(
                        &self.runtime,
                        vec![first_poll],
                        &self.pending_starts,
                    );
                }
                if let Some(r) = report {
                    r.started.push(String::from(&*id));
                }
                return None;
            }
            Err(e) => {
                node.args = None;
                node.stamp = None;
                // Whatever the failed build left behind must not publish; the next attempt gets a new flag.
                node.alive.store(false, Ordering::Release);
                node.alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
                node.eval_health = Health::new(
                    HealthState::Unhealthy,
                    format!("failed to build component: {e}"),
                );
                tracing::error!(component = %id, error = %e, "failed to build component");
                if let (Some(r), Some(n)) = (report, st.graph.get(&id)) {
                    let d = Diagnostic::error(
                        n.name_span(&st.sources),
                        format!("failed to build component: {e}"),
                    );
                    r.diagnostics.push(&file.source, d);
                }
            }
        }
        None
    }
}

/// Components built during a load whose tasks are not started yet. They are started when this is dropped: at
/// the end of the load, or when the load is abandoned half-way (its future dropped).
pub(crate) struct DeferredStarts {
    shared: Arc<Shared>,
    /// The first polls of the components' tasks (see [`crate::lazy_task::start_all`]).
    pub(crate) first_polls: Vec<crate::lazy_task::FirstPoll>,
    /// Whether the load evaluates every node (see [`State::pass_pending`]). A pass abandoned half-way leaves
    /// the nodes it did not reach dirty, for the evaluator.
    full_pass: bool,
}

impl DeferredStarts {
    /// An empty list for one evaluation thread of a pass ([`crate::pass`]); its IDs are moved to the load's
    /// own list.
    pub(crate) fn collecting(shared: Arc<Shared>) -> Self {
        DeferredStarts {
            shared,
            first_polls: Vec::new(),
            full_pass: false,
        }
    }
}

impl Drop for DeferredStarts {
    fn drop(&mut self) {
        if self.full_pass {
            let mut st = lock(&self.shared.state);
            let pending = std::mem::take(&mut st.pass_pending);
            {
                // Abandoned half-way: what the pass did not reach may have missed export changes.
                let rest: Vec<(usize, usize)> = pending
                    .iter()
                    .enumerate()
                    .filter(|&(i, &p)| p && i < st.rank.len())
                    .map(|(i, _)| (st.rank[i], i))
                    .collect();
                if !rest.is_empty() {
                    st.dirty.extend(rest);
                    drop(st);
                    self.shared.wake.notify_one();
                }
            }
        }
        crate::lazy_task::start_all(
            &self.shared.runtime,
            std::mem::take(&mut self.first_polls),
            &self.shared.pending_starts,
        );
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Stops the evaluator and every component still running.
        self.cancel.cancel();
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for runner in st.nodes.values().filter_map(|n| n.runner.as_ref()) {
            runner.cancel.cancel();
        }
    }
}

impl NodeState {
    fn new() -> Self {
        NodeState {
            args: None,
            stamp: None,
            component: None,
            runner: None,
            // Always set by the evaluation that creates the state (under the same lock).
            eval_health: Health::new(HealthState::Unknown, String::new()),
            shared: NodeShared::new(),
            alive: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }
}

/// The inputs of one evaluation: the block's text and the exports it read, by component ID.
#[derive(Clone, Debug)]
struct EvalStamp {
    /// The file the block was read from and where.
    source: river::SourceFile,
    span: river::Span,
    /// Sorted by ID.
    inputs: Vec<(Arc<str>, Value)>,
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
            let next = lock(&s.state).dirty.first().copied();
            let Some((_, index)) = next else { break };
            // Propagation does not wait for updates (see `load`): the dependants are dirtied again when the
            // component publishes, so they converge without holding up unrelated nodes.
            let _ = s.evaluate(index, None, None);
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
                assert_eq!(data_dir(storage, id), storage.join(id), "{storage:?} {id}");
            }
        }
    }
}
