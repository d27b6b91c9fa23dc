//! The `pyroscope.scrape` component: pulls pprof profiles from targets and forwards them to `forward_to`.
//!
//! ```river
//! pyroscope.scrape "local" {
//!   targets    = [{"__address__" = "localhost:4100", "service_name" = "pyroscope"}]
//!   forward_to = [pyroscope.write.local.receiver]
//! }
//! ```
//!
//! - One task per (target, enabled profile type), identified by a hash of its forwarded labels, URL and
//!   mode. Its first scrape comes at a phase derived from that identity (stable across reloads and
//!   restarts), then every `scrape_interval`, without drift.
//! - On new arguments the task sets are diffed: unchanged tasks keep running untouched (phase, delta
//!   baseline), new ones start, vanished ones stop — an in-flight scrape of a removed task forwards nothing.
//!   A change of `scrape_interval`, `scrape_timeout` or the HTTP client settings restarts every task.
//!   `forward_to` is shared by all tasks and read at each forward, so a change reaches every task at once.
//! - Forwarding runs beside the schedule: a slow receiver never delays a scrape; while a task's previous
//!   profile is still being delivered, its next one is dropped and counted.
//! - A target that cannot be scraped (no `__address__`, bad scheme) is reported on its own in the debug
//!   info; the others run.
//! - With `clustering { enabled = true }` in a clustered process, only the targets this node owns are
//!   scraped; a membership change re-filters them and only the tasks that moved start or stop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod scrape;
pub mod targets;

pub use args::{Arguments, ProfileType, ProfilingConfig};

use async_trait::async_trait;
use flow::{ComponentError, Context, Health, HealthState, TypedComponent};
use prometheus_client::metrics::counter::Counter;
use pyroscope::{Labels, Receiver};
use river::Value;
use scrape::{Client, Metrics, ScrapeEnv, Status};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use targets::{JobSettings, TargetError, TaskSpec};
use tokio_util::sync::CancellationToken;

/// The `pyroscope.scrape` component.
pub struct PyroscopeScrape {
    shared: Arc<Shared>,
}

struct Shared {
    id: String,
    span: tracing::Span,
    cluster: Arc<dyn flow::Cluster>,
    metrics: Metrics,
    tasks: TaskCounters,
    receivers: Arc<RwLock<Arc<[Receiver]>>>,
    state: Mutex<State>,
}

/// `pyroscope_scrape_tasks_started_total` and `..._stopped_total`: how often the schedule changed, so that
/// a reload that restarts tasks it should have kept is visible (started minus stopped is the running count).
struct TaskCounters {
    started: Counter,
    stopped: Counter,
}

impl TaskCounters {
    fn new(m: &flow::ComponentMetrics) -> Self {
        let counter = |name: &str, help: &str| {
            m.metric::<Counter>(name, help, Counter::default)
                .inspect_err(|e| tracing::warn!(error = %e, "metric not registered"))
                .unwrap_or_default()
        };
        TaskCounters {
            started: counter(
                "pyroscope_scrape_tasks_started",
                "Scrape tasks (one per target and profile type) started.",
            ),
            stopped: counter(
                "pyroscope_scrape_tasks_stopped",
                "Scrape tasks stopped (target removed, settings changed, component stopped).",
            ),
        }
    }

    fn stopped(&self, n: usize) {
        self.stopped.inc_by(n as u64);
    }
}

struct State {
    args: Arguments,
    /// Set while `run` runs; tasks are children of it.
    root: Option<CancellationToken>,
    /// What the running tasks share; replaced (restarting every task) when the interval, timeout or client
    /// settings change.
    env: Option<(EnvSettings, Arc<ScrapeEnv>)>,
    tasks: HashMap<u64, Running>,
    failed: Vec<TargetError>,
    health: Health,
}

/// The settings that, when changed, restart every task.
#[derive(Clone, Debug, PartialEq)]
struct EnvSettings {
    interval: Duration,
    timeout: Duration,
    client: http_client::HttpClientConfig,
}

struct Running {
    spec: Arc<TaskSpec>,
    status: Arc<Mutex<Status>>,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The debug info: one `target` entry per task (and per target that cannot be scraped).
#[derive(Serialize)]
struct DebugInfo {
    target: Vec<TargetStatus>,
}

#[derive(Serialize)]
struct TargetStatus {
    job: String,
    url: String,
    health: &'static str,
    labels: BTreeMap<String, String>,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: river::types::Duration,
}

fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

impl Shared {
    /// Brings the running tasks in line with the arguments (and cluster ownership).
    fn apply(&self, st: &mut State) -> Result<(), String> {
        let args = st.args.clone();
        *self.receivers.write().unwrap_or_else(|e| e.into_inner()) = args
            .forward_to
            .iter()
            .map(|c| c.get().clone())
            .collect::<Vec<_>>()
            .into();
        let Some(root) = st.root.clone() else {
            return Ok(());
        };
        let env_settings = EnvSettings {
            interval: args.scrape_interval.to_std_saturating(),
            timeout: args.scrape_timeout.to_std_saturating(),
            client: args.http_client_config(),
        };
        let env = match &st.env {
            Some((s, env)) if *s == env_settings => env.clone(),
            _ => {
                let client = Client::new(&env_settings.client)?;
                if !st.tasks.is_empty() {
                    tracing::info!(
                        "interval, timeout or client settings changed; restarting every task"
                    );
                }
                self.tasks.stopped(st.tasks.len());
                for (_, t) in st.tasks.drain() {
                    t.cancel.cancel();
                }
                let env = Arc::new(ScrapeEnv {
                    client,
                    interval: env_settings.interval,
                    receivers: self.receivers.clone(),
                    metrics: self.metrics.clone(),
                    span: self.span.clone(),
                });
                st.env = Some((env_settings.clone(), env.clone()));
                env
            }
        };

        let job = JobSettings {
            job: args.job_name.clone().unwrap_or_else(|| self.id.clone()),
            scheme: args.scheme.clone(),
            params: args.params.clone(),
            interval: env_settings.interval,
            timeout: env_settings.timeout,
            profiles: args.profiles().into_iter().map(Arc::new).collect(),
        };
        let filter = args.clustering_enabled() && self.cluster.enabled();
        let mut desired: HashMap<u64, TaskSpec> = HashMap::new();
        let mut failed = Vec::new();
        for target in &args.targets {
            let labels = Labels::from_pairs(target.iter());
            // Ownership is decided per target, so all its profile types stay on one node.
            if filter && !self.cluster.owns(targets::cluster_key(&labels).as_bytes()) {
                continue;
            }
            match targets::tasks_for(&labels, &job) {
                Ok(specs) => {
                    for s in specs {
                        desired.entry(s.key).or_insert(s);
                    }
                }
                Err(e) => failed.push(e),
            }
        }
        let before = st.tasks.len();
        let mut stopped = 0usize;
        st.tasks.retain(|key, t| {
            let keep = desired.contains_key(key);
            if !keep {
                t.cancel.cancel();
                stopped += 1;
            }
            keep
        });
        let mut started = 0usize;
        for (key, spec) in desired {
            if st.tasks.contains_key(&key) {
                continue;
            }
            let spec = Arc::new(spec);
            let status = Arc::new(Mutex::new(Status::default()));
            let cancel = root.child_token();
            tokio::spawn(scrape::run_task(
                spec.clone(),
                env.clone(),
                status.clone(),
                cancel.clone(),
            ));
            st.tasks.insert(
                key,
                Running {
                    spec,
                    status,
                    cancel,
                },
            );
            started += 1;
        }
        if !failed.is_empty() {
            tracing::warn!(
                count = failed.len(),
                "some targets cannot be scraped; see the debug info"
            );
        }
        self.tasks.stopped(stopped);
        self.tasks.started.inc_by(started as u64);
        st.failed = failed;
        tracing::debug!(
            before,
            started,
            stopped,
            tasks = st.tasks.len(),
            "scrape tasks updated"
        );
        Ok(())
    }

    fn apply_and_report(&self, st: &mut State) -> Result<(), ComponentError> {
        match self.apply(st) {
            Ok(()) => {
                st.health = Health::new(
                    HealthState::Healthy,
                    format!("scraping {} tasks", st.tasks.len()),
                );
                Ok(())
            }
            Err(e) => {
                st.health = Health::new(HealthState::Unhealthy, e.clone());
                Err(ComponentError::new(e))
            }
        }
    }
}

#[async_trait]
impl TypedComponent for PyroscopeScrape {
    const NAME: &'static str = "pyroscope.scrape";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let (metrics, tasks) = {
            let _entered = ctx.span.enter();
            (Metrics::new(&ctx.metrics), TaskCounters::new(&ctx.metrics))
        };
        let shared = Arc::new(Shared {
            id: ctx.id.to_string(),
            span: ctx.span.clone(),
            cluster: ctx.cluster.clone(),
            metrics,
            tasks,
            receivers: Arc::new(RwLock::new(Arc::from(Vec::new()))),
            state: Mutex::new(State {
                args,
                root: None,
                env: None,
                tasks: HashMap::new(),
                failed: Vec::new(),
                health: Health::new(HealthState::Unknown, "not started"),
            }),
        });
        // Checks that a client can be built at all, so a broken setup fails the build visibly.
        Client::new(&lock(&shared.state).args.http_client_config()).map_err(ComponentError::new)?;
        {
            let mut st = lock(&shared.state);
            shared.apply(&mut st).map_err(ComponentError::new)?;
        }
        Ok(PyroscopeScrape { shared })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let root = cancel.child_token();
        {
            let _entered = self.shared.span.enter();
            let mut st = lock(&self.shared.state);
            st.root = Some(root.clone());
            st.env = None;
            st.tasks.clear();
            // An error here is reported as health; tasks start on the next good update.
            let _ = self.shared.apply_and_report(&mut st);
        }
        cancel.cancelled().await;
        root.cancel();
        let mut st = lock(&self.shared.state);
        self.shared.tasks.stopped(st.tasks.len());
        st.root = None;
        st.env = None;
        st.tasks.clear();
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        let _entered = self.shared.span.enter();
        let mut st = lock(&self.shared.state);
        st.args = args;
        self.shared.apply_and_report(&mut st)
    }

    fn health(&self) -> Option<Health> {
        Some(lock(&self.shared.state).health.clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.shared.state);
        let mut target: Vec<TargetStatus> = st
            .tasks
            .values()
            .map(|t| {
                let s = lock(&t.status).clone();
                TargetStatus {
                    job: t.spec.job.clone(),
                    url: t.spec.url.clone(),
                    health: s.health.as_str(),
                    labels: label_map(&t.spec.labels),
                    last_error: s.last_error.unwrap_or_default(),
                    last_scrape: s
                        .last_scrape
                        .map(|t| humantime::format_rfc3339_millis(t).to_string())
                        .unwrap_or_default(),
                    last_scrape_duration: s
                        .last_scrape_duration
                        .and_then(|d| river::types::Duration::try_from(d).ok())
                        .unwrap_or_default(),
                }
            })
            .collect();
        target.extend(st.failed.iter().map(|f| TargetStatus {
            job: f.labels.get("job").unwrap_or_default().to_string(),
            url: String::new(),
            health: scrape::TargetHealth::Down.as_str(),
            labels: label_map(&f.labels),
            last_error: f.error.clone(),
            last_scrape: String::new(),
            last_scrape_duration: river::types::Duration::default(),
        }));
        drop(st);
        target.sort_by(|a, b| (&a.url, &a.labels).cmp(&(&b.url, &b.labels)));
        river::encode::to_value(&DebugInfo { target }).ok()
    }

    async fn cluster_changed(&self) {
        let _entered = self.shared.span.enter();
        let mut st = lock(&self.shared.state);
        if st.args.clustering_enabled() {
            let _ = self.shared.apply_and_report(&mut st);
        }
    }
}

/// Registers `pyroscope.scrape` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<PyroscopeScrape>().map(|_| ())
}
