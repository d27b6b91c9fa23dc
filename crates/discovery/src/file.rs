//! `discovery.file`: targets from Prometheus file_sd files.

use crate::file_sd::{self, Format};
use crate::lock;
use crate::watch::DirWatcher;
use async_trait::async_trait;
use flow::{ComponentError, Context, ExportsHandle, Health, HealthState, TypedComponent};
use relabel::{targets_to_value, Target};
use river::decode::Validate;
use river::types::Duration;
use river::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The default `refresh_interval`: five minutes.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// How long to wait after a file event before reading, so that a write in progress is read whole and a burst
/// of events costs one refresh.
pub const EVENT_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(30);

/// The shortest refresh period used, whatever `refresh_interval` says.
pub const MIN_REFRESH_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

/// The `discovery.file` block.
///
/// ```river
/// discovery.file "example" {
///   files            = ["/etc/targets/*.json", "/etc/targets/static.yaml"]
///   refresh_interval = "1m"   // default "5m"
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Arguments {
    /// Files to read; each may be a glob pattern (`*`, `?`, `[...]`). Names must end in `.json`, `.yml` or
    /// `.yaml`.
    pub files: Vec<String>,
    /// How often every file is re-read (file events also trigger a refresh).
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Duration,
}

impl Arguments {
    /// Arguments for `files` with the default interval.
    pub fn new(files: Vec<String>) -> Self {
        Arguments {
            files,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }
}

impl Validate for Arguments {
    fn validate(&self) -> Result<(), String> {
        if self.refresh_interval.as_nanos() <= 0 {
            return Err("refresh_interval must be greater than 0".into());
        }
        for f in &self.files {
            if let Err(e) = glob::Pattern::new(f) {
                return Err(format!(
                    "invalid file pattern {}: {}",
                    river::parser::go_quote(f),
                    e.msg
                ));
            }
            if Format::of(f).is_none() {
                return Err(format!(
                    "path name {} is not valid for file discovery: it must end in .json, .yml or .yaml",
                    river::parser::go_quote(f)
                ));
            }
        }
        Ok(())
    }
}

/// What is known about one matched file.
#[derive(Default)]
struct FileState {
    /// The last good targets read from it.
    targets: Vec<Target>,
    /// Why the last read failed, while it fails.
    error: Option<String>,
    last_read: Option<SystemTime>,
}

struct State {
    args: Arguments,
    /// Bumped by every update; a refresh started under an older generation is dropped.
    generation: u64,
    files: BTreeMap<PathBuf, FileState>,
    /// What was last published.
    published: Option<Vec<Target>>,
    health: Health,
    refresh_count: u64,
    publish_count: u64,
    last_refresh: Option<SystemTime>,
}

struct Shared {
    exports: ExportsHandle,
    span: tracing::Span,
    /// Held across a whole refresh (read, decide, publish) so refreshes never interleave or publish out of
    /// order. The runtime never takes it.
    refreshing: Mutex<()>,
    state: Mutex<State>,
}

/// The debug info of one file.
#[derive(Serialize)]
struct FileInfo {
    path: String,
    targets: usize,
    last_error: Option<String>,
    last_read: Option<String>,
}

#[derive(Serialize)]
struct DebugInfo {
    files: Vec<FileInfo>,
    refresh_interval: Duration,
    targets: usize,
    last_refresh: Option<String>,
    refresh_count: u64,
    publish_count: u64,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl Shared {
    /// Globs, reads every matched file, publishes the targets if they changed and updates health.
    /// Blocking (file I/O): call from a blocking thread or at build.
    fn refresh(&self) {
        let _entered = self.span.enter();
        let _refreshing = lock(&self.refreshing);
        let (patterns, generation) = {
            let st = lock(&self.state);
            (st.args.files.clone(), st.generation)
        };
        let mut matched = BTreeSet::new();
        for pattern in &patterns {
            match glob::glob(pattern) {
                Ok(paths) => {
                    for entry in paths {
                        match entry {
                            Ok(p) => {
                                matched.insert(p);
                            }
                            Err(error) => {
                                tracing::warn!(pattern = %pattern, %error, "error while matching files")
                            }
                        }
                    }
                }
                // Validated at decode time; cannot happen for arguments that were accepted.
                Err(error) => tracing::error!(pattern = %pattern, %error, "invalid file pattern"),
            }
        }
        let reads: Vec<(PathBuf, Result<Vec<Target>, file_sd::FileError>)> = matched
            .into_iter()
            .map(|p| {
                let r = file_sd::read(&p);
                (p, r)
            })
            .collect();

        let value = {
            let mut st = lock(&self.state);
            if st.generation != generation {
                return;
            }
            let now = SystemTime::now();
            st.refresh_count += 1;
            st.last_refresh = Some(now);
            let mut files = BTreeMap::new();
            for (path, read) in reads {
                let mut fs = st.files.remove(&path).unwrap_or_default();
                fs.last_read = Some(now);
                match read {
                    Ok(targets) => {
                        if fs.error.take().is_some() {
                            tracing::info!(path = %path.display(), "target file is valid again");
                        }
                        fs.targets = targets;
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if fs.error.as_deref() != Some(message.as_str()) {
                            tracing::error!(path = %path.display(), error = %message, "failed to read target file; keeping its last good targets");
                        }
                        fs.error = Some(message);
                    }
                }
                files.insert(path, fs);
            }
            for gone in st.files.keys() {
                tracing::info!(path = %gone.display(), "target file no longer matched; dropping its targets");
            }
            st.files = files;
            let errors: Vec<&str> = st
                .files
                .values()
                .filter_map(|f| f.error.as_deref())
                .collect();
            let targets: Vec<Target> = st
                .files
                .values()
                .flat_map(|f| f.targets.iter().cloned())
                .collect();
            let health = if errors.is_empty() {
                Health::new(
                    HealthState::Healthy,
                    format!("{} targets from {} files", targets.len(), st.files.len()),
                )
            } else {
                Health::new(HealthState::Unhealthy, errors.join("; "))
            };
            if health.state != st.health.state || health.message != st.health.message {
                st.health = health;
            }
            if st.published.as_ref() == Some(&targets) {
                None
            } else {
                let value = exports_value(&targets);
                tracing::debug!(targets = targets.len(), "publishing targets");
                st.published = Some(targets);
                st.publish_count += 1;
                Some(value)
            }
        };
        // Publish without our state lock: the runtime may hold its own lock while asking for our health.
        if let Some(value) = value {
            self.exports.publish_value(value);
        }
    }
}

fn exports_value(targets: &[Target]) -> Value {
    let mut obj = river::Object::with_capacity(1);
    obj.insert("targets".to_string(), targets_to_value(targets));
    Value::object(obj)
}

/// The `discovery.file` component.
pub struct DiscoveryFile {
    shared: Arc<Shared>,
    /// Tells the run loop to re-watch after an update.
    config: tokio_watch::Sender<Arguments>,
}

#[async_trait]
impl TypedComponent for DiscoveryFile {
    const NAME: &'static str = "discovery.file";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let shared = Arc::new(Shared {
            exports: ctx.exports.clone(),
            span: ctx.span.clone(),
            refreshing: Mutex::new(()),
            state: Mutex::new(State {
                args: args.clone(),
                generation: 0,
                files: BTreeMap::new(),
                published: None,
                health: Health::new(HealthState::Unknown, "not refreshed yet"),
                refresh_count: 0,
                publish_count: 0,
                last_refresh: None,
            }),
        });
        // Read at once, so that dependants see the targets on their first evaluation. Bad files do not fail
        // the build: they are reported in health and fixed files are picked up later.
        shared.refresh();
        let (config, _) = tokio_watch::channel(args);
        Ok(DiscoveryFile { shared, config })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let span = self.shared.span.clone();
        self.run_loop(cancel).instrument(span).await;
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        {
            let mut st = lock(&self.shared.state);
            st.generation += 1;
            st.args = args.clone();
        }
        tracing::info!(parent: &self.shared.span, files = ?args.files, "arguments updated");
        self.refresh().await;
        self.config.send_replace(args);
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        Some(lock(&self.shared.state).health.clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.shared.state);
        let info = DebugInfo {
            files: st
                .files
                .iter()
                .map(|(p, f)| FileInfo {
                    path: p.display().to_string(),
                    targets: f.targets.len(),
                    last_error: f.error.clone(),
                    last_read: f.last_read.map(rfc3339),
                })
                .collect(),
            refresh_interval: st.args.refresh_interval,
            targets: st.published.as_ref().map_or(0, Vec::len),
            last_refresh: st.last_refresh.map(rfc3339),
            refresh_count: st.refresh_count,
            publish_count: st.publish_count,
        };
        river::encode::to_value(&info).ok()
    }
}

impl DiscoveryFile {
    /// Refreshes on a blocking thread.
    async fn refresh(&self) {
        let shared = self.shared.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || shared.refresh()).await {
            tracing::error!(parent: &self.shared.span, %error, "refresh task failed");
        }
    }

    /// Watches and refreshes until cancelled; re-configures whenever `update` changes the arguments.
    async fn run_loop(&self, cancel: CancellationToken) {
        let mut config = self.config.subscribe();
        loop {
            let args = config.borrow_and_update().clone();
            // Capacity 1: pending wake-ups coalesce.
            let (wake_tx, mut wake) = mpsc::channel::<()>(1);
            let mut watcher = match DirWatcher::new(&args.files, wake_tx) {
                Ok(w) => Some(w),
                Err(error) => {
                    tracing::warn!(%error, "cannot watch for file events; refreshing every refresh_interval only");
                    None
                }
            };
            let period = args
                .refresh_interval
                .to_std_saturating()
                .max(MIN_REFRESH_PERIOD);
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tracing::debug!(files = ?args.files, ?period, "watching target files");
            // A change between the last refresh and the watch being set up would otherwise wait a period.
            self.refresh().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = config.changed() => {
                        if changed.is_err() {
                            cancel.cancelled().await;
                            return;
                        }
                        break;
                    }
                    _ = ticker.tick() => {
                        if let Some(w) = watcher.as_mut() {
                            w.rewatch();
                        }
                        self.refresh().await;
                    }
                    Some(()) = wake.recv() => {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(EVENT_DEBOUNCE) => {}
                        }
                        while wake.try_recv().is_ok() {}
                        self.refresh().await;
                    }
                }
            }
        }
    }
}
