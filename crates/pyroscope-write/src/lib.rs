//! The `pyroscope.write` component: pushes profiles to Pyroscope servers.
//!
//! ```river
//! pyroscope.write "default" {
//!   external_labels = {"env" = "prod"}
//!   endpoint {
//!     url = "http://pyroscope:4040"
//!   }
//! }
//! ```
//!
//! - Exports `receiver`. It is created once and never changes: updates swap the endpoints behind it, so
//!   senders keep sending without being re-evaluated, and nothing queued is lost.
//! - Labels sent: internal `__*` labels are dropped (except `__name__` and `__delta__`), `external_labels`
//!   replace same-named labels, and a profile without `service_name` is rejected.
//! - Each endpoint has a bounded queue (profiles and bytes) and `parallelism` workers sending Connect unary
//!   `push.v1.PusherService/Push` requests. A full queue drops (and counts) new profiles instead of blocking
//!   the sender, so a dead endpoint never holds up scraping or the other endpoints.
//! - Failed pushes are retried with jittered exponential backoff on the retryable codes, honouring
//!   `Retry-After`, up to `max_backoff_retries` retries (0: forever).
//! - At shutdown the queues are flushed for up to [`FLUSH_TIMEOUT`]; what is left is dropped and counted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod endpoint;
mod queue;

pub use args::{
    Arguments, EndpointOptions, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, DEFAULT_MIN_BACKOFF,
    DEFAULT_PARALLELISM, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_PROFILES, DEFAULT_REMOTE_TIMEOUT,
};
pub use endpoint::{parse_retry_after, user_agent, Backoff, MAX_BATCH_BYTES, MAX_BATCH_SERIES};

use async_trait::async_trait;
use endpoint::{Endpoint, MetricFamilies, Sender};
use flow::{ComponentError, Context, Health, HealthState, TypedComponent};
use pyroscope::labels::SERVICE_NAME_LABEL;
use pyroscope::push::{label_pairs, PushSample, RawProfileSeries};
use pyroscope::{AppendError, Appender, Labels, RawSample, Receiver};
use queue::{Item, Queue};
use river::types::TypedCapsule;
use river::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long queued profiles may take to be sent when the component stops (below the runtime's default stop
/// deadline of 10 s, so the flush finishes before the runtime gives up on the component).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Exports {
    receiver: TypedCapsule<Receiver>,
}

/// What the receiver routes to; replaced whole by updates.
struct Routing {
    external_labels: Vec<(String, String)>,
    endpoints: Vec<Arc<Endpoint>>,
    closed: bool,
}

struct Shared {
    routing: RwLock<Arc<Routing>>,
    families: MetricFamilies,
    span: tracing::Span,
    /// Serializes updates and shutdown.
    update_lock: tokio::sync::Mutex<()>,
    /// Current arguments (for debug info).
    args: Mutex<Arguments>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_routing(&self, r: Routing) {
        *self.routing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(r);
    }
}

/// Keys of endpoints: the name, else the URL; duplicates get `#2`, `#3`, ...
fn endpoint_keys(endpoints: &[EndpointOptions]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    endpoints
        .iter()
        .map(|e| {
            let base = if e.name.is_empty() {
                e.url.clone()
            } else {
                e.name.clone()
            };
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base}#{n}")
            }
        })
        .collect()
}

/// The labels pushed for a profile: internal ones dropped, external ones applied.
pub fn push_labels(labels: &Labels, external: &[(String, String)]) -> Result<Labels, AppendError> {
    let mut out = labels.without_internal();
    for (k, v) in external {
        out.set(k, v);
    }
    if out.get(SERVICE_NAME_LABEL).is_none_or(str::is_empty) {
        return Err(AppendError::Rejected(format!(
            "profile has no {SERVICE_NAME_LABEL} label: {out}"
        )));
    }
    Ok(out)
}

struct WriteAppender(Arc<Shared>);

#[async_trait]
impl Appender for WriteAppender {
    async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
        let routing = self.0.routing();
        if routing.closed {
            return Err(AppendError::Unavailable(
                "pyroscope.write is shutting down".into(),
            ));
        }
        let labels = push_labels(&labels, &routing.external_labels)?;
        if routing.endpoints.is_empty() || samples.is_empty() {
            return Ok(());
        }
        let bytes = samples.iter().map(|s| s.raw_profile.len() as u64).sum();
        let item = Item {
            series: RawProfileSeries {
                labels: label_pairs(&labels),
                samples: samples
                    .into_iter()
                    .map(|s| PushSample {
                        raw_profile: s.raw_profile,
                        id: uuid::Uuid::new_v4().to_string(),
                    })
                    .collect(),
            },
            bytes,
        };
        let mut full = Vec::new();
        for ep in &routing.endpoints {
            if !ep.enqueue(item.clone()) {
                full.push(ep.sender.key.as_str());
            }
        }
        if full.len() == routing.endpoints.len() {
            return Err(AppendError::Unavailable(format!(
                "queue full for endpoint {}",
                full.join(", ")
            )));
        }
        if !full.is_empty() {
            tracing::debug!(endpoints = ?full, "queue full; profile dropped for these endpoints");
        }
        Ok(())
    }
}

/// An update's endpoints: (the new set, changed ones handing over their queue, removed ones).
type Plan = (Vec<Arc<Endpoint>>, Vec<Arc<Endpoint>>, Vec<Arc<Endpoint>>);

/// The `pyroscope.write` component.
pub struct PyroscopeWrite {
    shared: Arc<Shared>,
}

impl PyroscopeWrite {
    /// Builds the endpoints for new arguments, reusing unchanged ones (and the queues of changed ones).
    fn plan(&self, args: &Arguments, current: &[Arc<Endpoint>]) -> Result<Plan, ComponentError> {
        let opts: Vec<EndpointOptions> = args.endpoint.iter().map(|b| b.0.clone()).collect();
        let keys = endpoint_keys(&opts);
        let mut next = Vec::new();
        let mut retired = Vec::new();
        for (key, o) in keys.into_iter().zip(opts) {
            let old = current.iter().find(|e| e.sender.key == key);
            match old {
                Some(old) if old.sender.opts == o => next.push(old.clone()),
                _ => {
                    let queue = match old {
                        Some(old) => {
                            old.sender
                                .queue
                                .set_bounds(o.queue_max_profiles, o.queue_max_bytes.as_u64());
                            retired.push(old.clone());
                            old.sender.queue.clone()
                        }
                        None => {
                            Arc::new(Queue::new(o.queue_max_profiles, o.queue_max_bytes.as_u64()))
                        }
                    };
                    let metrics = self.shared.families.endpoint(&key);
                    let sender = Sender::new(key, o, queue, metrics)
                        .map_err(|e| ComponentError::new(e.to_string()))?;
                    next.push(Arc::new(Endpoint::start(sender, &self.shared.span)));
                }
            }
        }
        let removed = current
            .iter()
            .filter(|e| {
                !next.iter().any(|n| Arc::ptr_eq(n, e))
                    && !retired.iter().any(|r| Arc::ptr_eq(r, e))
            })
            .cloned()
            .collect();
        Ok((next, retired, removed))
    }

    async fn shutdown(&self) {
        let _guard = self.shared.update_lock.lock().await;
        let routing = self.shared.routing();
        self.shared.set_routing(Routing {
            external_labels: routing.external_labels.clone(),
            endpoints: routing.endpoints.clone(),
            closed: true,
        });
        let flushes = routing.endpoints.iter().map(|e| e.flush(FLUSH_TIMEOUT));
        futures_util::future::join_all(flushes).await;
        tracing::debug!("pyroscope.write stopped");
    }
}

fn external(args: &Arguments) -> Vec<(String, String)> {
    args.external_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[async_trait]
impl TypedComponent for PyroscopeWrite {
    const NAME: &'static str = "pyroscope.write";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let families =
            MetricFamilies::new(&ctx.metrics).map_err(|e| ComponentError::new(e.to_string()))?;
        let shared = Arc::new(Shared {
            routing: RwLock::new(Arc::new(Routing {
                external_labels: external(&args),
                endpoints: Vec::new(),
                closed: false,
            })),
            families,
            span: ctx.span.clone(),
            update_lock: tokio::sync::Mutex::new(()),
            args: Mutex::new(args.clone()),
        });
        let this = PyroscopeWrite { shared };
        let (endpoints, _, _) = this.plan(&args, &[])?;
        this.shared.set_routing(Routing {
            external_labels: external(&args),
            endpoints,
            closed: false,
        });
        let receiver = Receiver::new(&ctx.id, Arc::new(WriteAppender(this.shared.clone())));
        ctx.exports.publish(&Exports {
            receiver: TypedCapsule::new(receiver),
        })?;
        Ok(this)
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        let span = self.shared.span.clone();
        self.shutdown().instrument(span).await;
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        let span = self.shared.span.clone();
        async {
            let _guard = self.shared.update_lock.lock().await;
            let current = self.shared.routing();
            if current.closed {
                return Ok(());
            }
            let (next, retired, removed) = self.plan(&args, &current.endpoints)?;
            self.shared.set_routing(Routing {
                external_labels: external(&args),
                endpoints: next,
                closed: false,
            });
            *lock(&self.shared.args) = args;
            tracing::info!(
                retired = retired.len(),
                removed = removed.len(),
                "endpoints updated"
            );
            // Changed endpoints hand their queue to their successor; removed ones send what they hold.
            for r in retired {
                tokio::spawn(async move { r.retire().await }.instrument(tracing::Span::current()));
            }
            for r in removed {
                tokio::spawn(
                    async move { r.flush(FLUSH_TIMEOUT).await }
                        .instrument(tracing::Span::current()),
                );
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    fn health(&self) -> Option<Health> {
        let routing = self.shared.routing();
        let failing: Vec<String> = routing
            .endpoints
            .iter()
            .filter_map(|e| {
                let st = e.sender.status.lock().unwrap_or_else(|e| e.into_inner());
                st.failing.then(|| {
                    format!(
                        "endpoint {}: {}",
                        e.sender.key,
                        st.last_error.as_deref().unwrap_or("failing")
                    )
                })
            })
            .collect();
        Some(if failing.is_empty() {
            Health::new(HealthState::Healthy, "pushing")
        } else {
            Health::new(HealthState::Unhealthy, failing.join("; "))
        })
    }

    fn debug_info(&self) -> Option<Value> {
        let routing = self.shared.routing();
        let fmt = |t: Option<std::time::SystemTime>| {
            t.map(|t| humantime::format_rfc3339_millis(t).to_string())
        };
        let endpoints = routing
            .endpoints
            .iter()
            .map(|e| {
                let s = &e.sender;
                let st = s.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (qp, qb) = s.queue.len();
                EndpointDebug {
                    name: s.key.clone(),
                    url: s.opts.url.clone(),
                    queued_profiles: qp,
                    queued_bytes: qb,
                    sent_profiles: s.metrics.sent_profiles.get(),
                    dropped_profiles: s.metrics.dropped_profiles.get(),
                    retries: s.metrics.retries.get(),
                    last_success: fmt(st.last_success),
                    last_error: st.last_error,
                    last_error_time: fmt(st.last_error_time),
                }
            })
            .collect();
        river::encode::to_value(&DebugInfo { endpoints }).ok()
    }
}

#[derive(Serialize)]
struct DebugInfo {
    endpoints: Vec<EndpointDebug>,
}

#[derive(Serialize)]
struct EndpointDebug {
    name: String,
    url: String,
    queued_profiles: u64,
    queued_bytes: u64,
    sent_profiles: u64,
    dropped_profiles: u64,
    retries: u64,
    last_success: Option<String>,
    last_error: Option<String>,
    last_error_time: Option<String>,
}

/// Registers `pyroscope.write` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<PyroscopeWrite>().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_internal_apply_external_and_need_service_name() {
        let l = Labels::from_pairs([
            ("__address__", "h:1"),
            ("__name__", "process_cpu"),
            ("__delta__", "false"),
            ("service_name", "svc"),
            ("env", "dev"),
        ]);
        let out = push_labels(&l, &[("env".into(), "prod".into())]).unwrap();
        assert_eq!(
            out.to_string(),
            r#"{__delta__="false", __name__="process_cpu", env="prod", service_name="svc"}"#
        );
        let err = push_labels(&Labels::from_pairs([("a", "b")]), &[]).unwrap_err();
        assert!(
            matches!(err, AppendError::Rejected(ref m) if m.contains("no service_name")),
            "{err}"
        );
        // External labels can supply it.
        assert!(push_labels(&Labels::new(), &[("service_name".into(), "x".into())]).is_ok());
    }

    #[test]
    fn endpoint_keys_are_unique() {
        let e = |name: &str, url: &str| EndpointOptions {
            name: name.into(),
            ..EndpointOptions::new(url)
        };
        assert_eq!(
            endpoint_keys(&[
                e("", "http://a"),
                e("b", "http://x"),
                e("", "http://a"),
                e("b", "http://y")
            ]),
            ["http://a", "b", "http://a#2", "b#2"]
        );
    }
}
