//! The `pyroscope.file` component: Rill's embedded local profile store.
//!
//! ```river
//! pyroscope.file "local" {
//!   retention = "24h"
//!   max_size  = "1GiB"
//! }
//!
//! pyroscope.scrape "self" {
//!   targets    = [{"__address__" = "127.0.0.1:12345", "service_name" = "rill"}]
//!   forward_to = [pyroscope.file.local.receiver]
//! }
//! ```
//!
//! Each profile received is stored as a gzip pprof file (`go tool pprof FILE` opens it) under
//! `<directory>/<service_name>/<profile type>/<timestamp>-<series id>.pb.gz`, with the series' labels in
//! `<series id>.labels.json` beside it. Writes are atomic (a temporary file renamed into place), the oldest
//! profiles are deleted beyond `max_size` or `retention`, and the debug info lists what is held.
//!
//! The exported `receiver` never changes, so updating the arguments (even the directory) never re-evaluates
//! the components that send to it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
pub mod store;

pub use args::{Arguments, DEFAULT_MAX_SIZE, DEFAULT_RETENTION};

use async_trait::async_trait;
use flow::{ComponentError, Context, Health, HealthState, TypedComponent};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use pyroscope::{AppendError, Appender, Labels, RawSample, Receiver};
use river::types::TypedCapsule;
use river::Value;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How many series the debug info lists at most.
const DEBUG_SERIES_LIMIT: usize = 200;

/// The exports: `receiver`.
#[derive(Serialize)]
struct Exports {
    receiver: TypedCapsule<Receiver>,
}

#[derive(Clone)]
struct Metrics {
    written_profiles: Counter,
    written_bytes: Counter,
    evicted_profiles: Counter,
    failed_profiles: Counter,
    stored_bytes: Gauge,
    stored_profiles: Gauge,
}

impl Metrics {
    fn new(m: &flow::ComponentMetrics) -> Result<Metrics, flow::MetricsError> {
        Ok(Metrics {
            written_profiles: m.metric(
                "pyroscope_file_written_profiles",
                "Profiles written to disk.",
                Counter::default,
            )?,
            written_bytes: m.metric(
                "pyroscope_file_written_bytes",
                "Bytes of profiles written to disk.",
                Counter::default,
            )?,
            evicted_profiles: m.metric(
                "pyroscope_file_evicted_profiles",
                "Profiles deleted because of retention or max_size.",
                Counter::default,
            )?,
            failed_profiles: m.metric(
                "pyroscope_file_failed_profiles",
                "Profiles that could not be written.",
                Counter::default,
            )?,
            stored_bytes: m.metric(
                "pyroscope_file_stored_bytes",
                "Bytes of profiles currently on disk.",
                Gauge::default,
            )?,
            stored_profiles: m.metric(
                "pyroscope_file_stored_profiles",
                "Profiles currently on disk.",
                Gauge::default,
            )?,
        })
    }
}

struct State {
    args: Arguments,
    store: Option<Store>,
    health: Health,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    data_dir: PathBuf,
    metrics: Metrics,
    span: tracing::Span,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn directory(&self, args: &Arguments) -> PathBuf {
        if args.directory.is_empty() {
            self.data_dir.clone()
        } else {
            PathBuf::from(&args.directory)
        }
    }

    fn record_error(&self, st: &mut State, message: String) {
        if st.last_error.as_deref() != Some(message.as_str()) {
            tracing::error!(error = %message, "pyroscope.file: write failed");
        }
        st.health = Health::new(HealthState::Unhealthy, message.clone());
        st.last_error = Some(message);
    }

    fn update_gauges(&self, store: &Store) {
        self.metrics
            .stored_bytes
            .set(i64::try_from(store.total_bytes()).unwrap_or(i64::MAX));
        self.metrics
            .stored_profiles
            .set(i64::try_from(store.profiles()).unwrap_or(i64::MAX));
    }

    /// Writes the samples; runs on a blocking thread.
    fn write_blocking(&self, labels: &Labels, samples: &[RawSample]) -> Result<(), AppendError> {
        let mut st = lock(&self.state);
        let retention = st.args.retention.to_std_saturating();
        let max_size = st.args.max_size.as_u64();
        let st = &mut *st;
        let Some(store) = st.store.as_mut() else {
            let msg = st
                .last_error
                .clone()
                .unwrap_or_else(|| "store is not open".into());
            return Err(AppendError::Unavailable(msg));
        };
        let mut failure = None;
        for sample in samples {
            match store.write(labels, &sample.raw_profile, retention, max_size) {
                Ok(out) => {
                    self.metrics.written_profiles.inc();
                    self.metrics.written_bytes.inc_by(out.bytes);
                    self.metrics.evicted_profiles.inc_by(out.evicted);
                }
                Err(e) => {
                    self.metrics.failed_profiles.inc();
                    failure = Some(e.to_string());
                }
            }
        }
        self.update_gauges(store);
        match failure {
            Some(message) => {
                self.record_error(st, message.clone());
                Err(AppendError::Unavailable(message))
            }
            None => {
                if st.health.state != HealthState::Healthy {
                    st.health = Health::new(HealthState::Healthy, "storing profiles");
                    st.last_error = None;
                }
                Ok(())
            }
        }
    }

    /// Opens the store for the current arguments (on a blocking thread).
    fn open(&self) {
        let args = lock(&self.state).args.clone();
        let dir = self.directory(&args);
        let opened = Store::open(&dir);
        let mut st = lock(&self.state);
        if st.args != args {
            // A newer update opened (or will open) its own store.
            return;
        }
        match opened {
            Ok(store) => {
                tracing::info!(directory = %dir.display(), profiles = store.profiles(), bytes = store.total_bytes(), "opened profile store");
                self.update_gauges(&store);
                st.store = Some(store);
                st.health = Health::new(HealthState::Healthy, "storing profiles");
                st.last_error = None;
            }
            Err(e) => {
                st.store = None;
                self.record_error(&mut st, e.to_string());
            }
        }
    }

    fn enforce(&self) {
        let mut st = lock(&self.state);
        let retention = st.args.retention.to_std_saturating();
        let max_size = st.args.max_size.as_u64();
        if let Some(store) = st.store.as_mut() {
            let evicted = store.enforce(retention, max_size);
            self.metrics.evicted_profiles.inc_by(evicted);
            self.update_gauges(store);
        }
    }
}

struct FileAppender(Arc<Shared>);

#[async_trait]
impl Appender for FileAppender {
    async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
        if let Some(empty) = samples.iter().position(|s| s.raw_profile.is_empty()) {
            return Err(AppendError::Rejected(format!("sample {empty} is empty")));
        }
        let labels = labels.without_internal();
        let shared = self.0.clone();
        tokio::task::spawn_blocking(move || shared.write_blocking(&labels, &samples))
            .await
            .map_err(|e| AppendError::Unavailable(format!("write task failed: {e}")))?
    }
}

/// The `pyroscope.file` component.
pub struct PyroscopeFile {
    shared: Arc<Shared>,
}

#[async_trait]
impl TypedComponent for PyroscopeFile {
    const NAME: &'static str = "pyroscope.file";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let metrics = Metrics::new(&ctx.metrics).map_err(|e| ComponentError::new(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                args,
                store: None,
                health: Health::new(HealthState::Unknown, "opening store"),
                last_error: None,
            }),
            data_dir: ctx.data_dir(),
            metrics,
            span: ctx.span.clone(),
        });
        {
            let _entered = ctx.span.enter();
            // Opening scans the directory; a failure (e.g. permissions) is reported as health so that the
            // receiver still exists and the senders' config stays valid while the operator fixes it.
            shared.open();
        }
        let receiver = Receiver::new(&ctx.id, Arc::new(FileAppender(shared.clone())));
        ctx.exports.publish(&Exports {
            receiver: TypedCapsule::new(receiver),
        })?;
        Ok(PyroscopeFile { shared })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let span = self.shared.span.clone();
        async {
            loop {
                let period = {
                    let st = lock(&self.shared.state);
                    (st.args.retention.to_std_saturating() / 10)
                        .clamp(Duration::from_secs(1), Duration::from_secs(60))
                };
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let shared = self.shared.clone();
                let needs_open = lock(&shared.state).store.is_none();
                let _ = tokio::task::spawn_blocking(move || {
                    if needs_open {
                        shared.open();
                    }
                    shared.enforce();
                })
                .await;
            }
        }
        .instrument(span)
        .await;
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        let reopen = {
            let mut st = lock(&self.shared.state);
            let reopen = self.shared.directory(&st.args) != self.shared.directory(&args);
            st.args = args;
            if reopen {
                st.store = None;
            }
            reopen
        };
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _entered = shared.span.enter();
            if reopen {
                shared.open();
            }
            shared.enforce();
        })
        .await;
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        Some(lock(&self.shared.state).health.clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.shared.state);
        let store = st.store.as_ref();
        let fmt_time = |t| humantime::format_rfc3339_millis(t).to_string();
        let info = DebugInfo {
            directory: self.shared.directory(&st.args).display().to_string(),
            retention: st.args.retention,
            max_size: st.args.max_size.to_string(),
            stored_bytes: store.map_or(0, |s| s.total_bytes()),
            stored_profiles: store.map_or(0, |s| s.profiles() as u64),
            oldest: store.and_then(|s| s.span()).map(|(a, _)| fmt_time(a)),
            newest: store.and_then(|s| s.span()).map(|(_, b)| fmt_time(b)),
            last_error: st.last_error.clone(),
            series: store
                .map(|s| {
                    s.series()
                        .into_iter()
                        .take(DEBUG_SERIES_LIMIT)
                        .map(|(dir, id, i)| SeriesDebug {
                            directory: dir.display().to_string(),
                            series_id: id.to_string(),
                            labels: i.labels.clone(),
                            profiles: i.profiles,
                            bytes: i.bytes,
                            newest: fmt_time(
                                std::time::UNIX_EPOCH + Duration::from_micros(i.newest_micros),
                            ),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        river::encode::to_value(&info).ok()
    }
}

#[derive(Serialize)]
struct DebugInfo {
    directory: String,
    retention: river::types::Duration,
    max_size: String,
    stored_bytes: u64,
    stored_profiles: u64,
    oldest: Option<String>,
    newest: Option<String>,
    last_error: Option<String>,
    /// Up to 200 series, sorted by directory.
    series: Vec<SeriesDebug>,
}

#[derive(Serialize)]
struct SeriesDebug {
    directory: String,
    series_id: String,
    labels: String,
    profiles: u64,
    bytes: u64,
    newest: String,
}

/// Registers `pyroscope.file` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<PyroscopeFile>().map(|_| ())
}
