//! One scrape task: its schedule, the request, validation, the client-side delta and forwarding.

use crate::args::Mode;
use crate::targets::TaskSpec;
use bytes::Bytes;
use http_client::reqwest;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use pyroscope::labels::DELTA_LABEL;
use pyroscope::pprof::delta::{Delta, DeltaComputer};
use pyroscope::pprof::{self, DEFAULT_MAX_DECOMPRESSED};
use pyroscope::{RawSample, Receiver};
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The largest response body accepted: 64 MiB (the widest real profiles are a few MB).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The `User-Agent` of every scrape.
pub fn user_agent() -> String {
    format!("Rill/{}", env!("CARGO_PKG_VERSION"))
}

/// How many scrapes of one origin (scheme, host, port) run at once, and how many idle keep-alive
/// connections to it are kept. A Go target sees at most one request per profile type at a time; this only
/// bites when many targets share an address (e.g. differing in `__param_*`), where it keeps the socket count
/// bounded and the sockets reused instead of opening one per scrape. Waiting for a slot counts towards the
/// scrape timeout.
pub const MAX_CONNECTIONS_PER_HOST: usize = 128;

/// The HTTP client tasks share: the shared `http-client` settings (auth, TLS, proxy, redirects, HTTP/2).
#[derive(Clone, Debug)]
pub struct Client {
    http: http_client::HttpClient,
}

impl Client {
    /// A client for these settings.
    pub fn new(config: &http_client::HttpClientConfig) -> Result<Self, String> {
        let options = http_client::ClientOptions::default()
            .user_agent(user_agent())
            .max_connections_per_host(MAX_CONNECTIONS_PER_HOST);
        let http = http_client::HttpClient::with_options(config, options)
            .map_err(|e| http_client::describe_error(&e))?;
        Ok(Client { http })
    }
}

/// Metric handles of the component.
#[derive(Clone)]
pub struct Metrics {
    /// `pyroscope_fanout_latency`.
    pub fanout_latency: Histogram,
    /// `pyroscope_scrape_duration_seconds{profile}`.
    pub scrape_duration: Option<flow::ComponentFamily<Histogram>>,
    /// `pyroscope_scrapes_total{profile, result}`.
    pub scrapes: Option<flow::ComponentFamily<Counter>>,
    /// `pyroscope_scrape_dropped_profiles_total`: profiles not forwarded because the previous forward of the
    /// same task was still running.
    pub dropped: Counter,
    /// `pyroscope_scrape_forward_errors_total`: forwards that a receiver refused.
    pub forward_errors: Counter,
}

impl Metrics {
    /// Registers the metrics (a name clash with another component's type is logged, the metric unexported).
    pub fn new(m: &flow::ComponentMetrics) -> Self {
        let warn = |e: flow::MetricsError| tracing::warn!(error = %e, "metric not registered");
        let fanout_latency = m
            .metric::<Histogram>(
                "pyroscope_fanout_latency",
                "Write latency for sending to direct and indirect components.",
                || {
                    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                        0.0005, 4.0, 9,
                    ))
                },
            )
            .inspect_err(|e| warn(e.clone()))
            .unwrap_or_else(|_| Histogram::new([1.0]));
        let scrape_duration = m
            .family::<Histogram>(
                "pyroscope_scrape_duration_seconds",
                "Duration of scrapes, by profile type.",
                || {
                    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                        0.001, 4.0, 9,
                    ))
                },
            )
            .inspect_err(|e| warn(e.clone()))
            .ok();
        let scrapes = m
            .family::<Counter>(
                "pyroscope_scrapes",
                "Scrapes by profile type and result (success, failure).",
                Counter::default,
            )
            .inspect_err(|e| warn(e.clone()))
            .ok();
        let dropped = m
            .metric::<Counter>(
                "pyroscope_scrape_dropped_profiles",
                "Profiles dropped because their receivers were still busy with the previous one.",
                Counter::default,
            )
            .inspect_err(|e| warn(e.clone()))
            .unwrap_or_default();
        let forward_errors = m
            .metric::<Counter>(
                "pyroscope_scrape_forward_errors",
                "Forwards of a profile that at least one receiver refused.",
                Counter::default,
            )
            .inspect_err(|e| warn(e.clone()))
            .unwrap_or_default();
        Metrics {
            fanout_latency,
            scrape_duration,
            scrapes,
            dropped,
            forward_errors,
        }
    }
}

/// What every task of one configuration shares.
pub struct ScrapeEnv {
    /// The client.
    pub client: Client,
    /// The interval.
    pub interval: Duration,
    /// The current `forward_to`, read at each forward: a change reaches every task at once.
    pub receivers: Arc<RwLock<Arc<[Receiver]>>>,
    /// Metrics.
    pub metrics: Metrics,
    /// The component's span.
    pub span: tracing::Span,
}

/// Health of a target as the debug info shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetHealth {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl TargetHealth {
    /// `unknown`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Unknown => "unknown",
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
        }
    }
}

/// The state of the last scrape of a task.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Health.
    pub health: TargetHealth,
    /// The last error, while failing.
    pub last_error: Option<String>,
    /// When the last scrape started.
    pub last_scrape: Option<SystemTime>,
    /// How long it took.
    pub last_scrape_duration: Option<Duration>,
}

/// The delay until a task's first scrape: its phase within the interval, derived from its key and anchored
/// to wall-clock time, so that it stays the same across reloads and restarts.
pub fn first_delay(key: u64, interval: Duration, now: SystemTime) -> Duration {
    let interval_ns = interval.as_nanos().max(1);
    let offset = u128::from(key) % interval_ns;
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let into = now_ns % interval_ns;
    let wait = if offset >= into {
        offset - into
    } else {
        interval_ns - into + offset
    };
    Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
}

/// Runs one task until cancelled.
pub async fn run_task(
    spec: Arc<TaskSpec>,
    env: Arc<ScrapeEnv>,
    status: Arc<Mutex<Status>>,
    cancel: CancellationToken,
) {
    let span = tracing::debug_span!(parent: &env.span, "scrape", url = %spec.url, profile = %spec.profile.name);
    async move {
        let start = Instant::now() + first_delay(spec.key, env.interval, SystemTime::now());
        let mut ticker = tokio::time::interval_at(start, env.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut delta = match spec.profile.mode {
            Mode::ClientDelta(kind) => Some(DeltaComputer::new(kind, DEFAULT_MAX_DECOMPRESSED)),
            _ => None,
        };
        let profile = spec.profile.name.as_str();
        let success = env
            .metrics
            .scrapes
            .as_ref()
            .map(|f| f.get(&[("profile", profile), ("result", "success")]));
        let failure = env
            .metrics
            .scrapes
            .as_ref()
            .map(|f| f.get(&[("profile", profile), ("result", "failure")]));
        let duration = env
            .metrics
            .scrape_duration
            .as_ref()
            .map(|f| f.get(&[("profile", profile)]));
        // Set while this task's previous profile is being forwarded (a flag rather than a JoinHandle, which
        // would keep the finished task's allocation alive until the next forward).
        let forwarding = Arc::new(AtomicBool::new(false));
        // Parsed once: the URL only changes with the task's spec, which restarts the task.
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|e| format!("Get {}: {e}", river::parser::go_quote(&spec.url)));
        // One registration for the task's life, rather than one registered and dropped twice a scrape.
        let mut cancelled = std::pin::pin!(cancel.cancelled());
        loop {
            tokio::select! {
                _ = &mut cancelled => return,
                _ = ticker.tick() => {}
            }
            let started_at = SystemTime::now();
            let started = Instant::now();
            // Boxed: the request's state is large (a few KB) and only needed while a scrape runs; inline it
            // would sit in every idle task's allocation.
            let fetched = tokio::select! {
                _ = &mut cancelled => return,
                r = Box::pin(fetch(&env.client, &spec, url.as_ref())) => r,
            };
            let outcome = fetched.and_then(|(body, content_type)| {
                process(&spec, delta.as_mut(), body, content_type.as_deref())
            });
            let took = started.elapsed();
            if let Some(d) = &duration {
                d.observe(took.as_secs_f64());
            }
            {
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.last_scrape = Some(started_at);
                st.last_scrape_duration = Some(took);
                match &outcome {
                    Ok(_) => {
                        st.health = TargetHealth::Up;
                        st.last_error = None;
                    }
                    Err(e) => {
                        if st.last_error.as_deref() != Some(e.as_str()) {
                            tracing::warn!(error = %e, "scrape failed");
                        }
                        st.health = TargetHealth::Down;
                        st.last_error = Some(e.clone());
                    }
                }
            }
            match outcome {
                Ok(out) => {
                    if let Some(c) = &success {
                        c.inc();
                    }
                    let Some((labels, body)) = out else { continue };
                    let spec = spec.clone();
                    // A task removed while its scrape was in flight forwards nothing.
                    if cancel.is_cancelled() {
                        return;
                    }
                    if forwarding.load(Ordering::Acquire) {
                        env.metrics.dropped.inc();
                        tracing::warn!(
                            "receivers still busy with the previous profile; dropping this one"
                        );
                        continue;
                    }
                    let receivers = env
                        .receivers
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let metrics = env.metrics.clone();
                    forwarding.store(true, Ordering::Release);
                    let busy = Busy(forwarding.clone());
                    let mut forwarded = Box::pin(
                        async move {
                            let _busy = busy;
                            // The task's own labels unless the delta changed them.
                            let labels = labels.as_ref().unwrap_or(&spec.labels);
                            forward(receivers, labels, body, metrics).await;
                        }
                        .in_current_span(),
                    );
                    // Most receivers accept at once (they queue); only a forward that has to wait gets a
                    // task of its own, so the schedule never waits for it. Polling again from the task
                    // replaces the no-op waker registered here.
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    if forwarded.as_mut().poll(&mut cx).is_pending() {
                        tokio::spawn(forwarded);
                    }
                }
                Err(_) => {
                    if let Some(c) = &failure {
                        c.inc();
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Clears a task's "forwarding" flag when the forward ends, however it ends.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn forward(
    receivers: Arc<[Receiver]>,
    labels: &pyroscope::Labels,
    body: Bytes,
    metrics: Metrics,
) {
    if receivers.is_empty() {
        return;
    }
    let started = Instant::now();
    let result = pyroscope::fanout(&receivers, labels, &[RawSample::new(body)]).await;
    metrics
        .fanout_latency
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics.forward_errors.inc();
        tracing::warn!(error = %e, "forwarding a profile failed");
    }
}

/// The largest decompressed profile accepted, the same bound as on the body itself.
pub const MAX_DECOMPRESSED_BYTES: usize = MAX_BODY_BYTES;

thread_local! {
    /// The decompressed body, per worker thread rather than per task: processing never awaits, so one
    /// buffer per thread serves every task, and memory follows concurrency, not the number of targets.
    static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What to forward, if anything: the labels when they differ from the task's own, and the validated body
/// or the client-side delta. The body is decompressed once; validation and the delta both work on those
/// bytes.
fn process(
    spec: &TaskSpec,
    delta: Option<&mut DeltaComputer>,
    body: Bytes,
    content_type: Option<&str>,
) -> Result<Option<(Option<pyroscope::Labels>, Bytes)>, String> {
    PLAIN.with(|plain| {
        let mut plain = plain.borrow_mut();
        let out = process_with(spec, delta, body, content_type, &mut plain);
        // A rare very large profile does not pin its buffer for the life of the thread.
        if plain.capacity() > 8 << 20 {
            *plain = Vec::new();
        }
        out
    })
}

fn process_with(
    spec: &TaskSpec,
    delta: Option<&mut DeltaComputer>,
    body: Bytes,
    content_type: Option<&str>,
    scratch: &mut Vec<u8>,
) -> Result<Option<(Option<pyroscope::Labels>, Bytes)>, String> {
    let plain = match pprof::validated(&body, content_type, MAX_DECOMPRESSED_BYTES, scratch) {
        Ok(plain) => plain,
        Err(e) => {
            if let Some(d) = delta {
                d.reset();
            }
            return Err(e.to_string());
        }
    };
    let Some(d) = delta else {
        // Forwarded as received (still compressed).
        return Ok(Some((None, body)));
    };
    match d.next(plain).map_err(|e| e.to_string())? {
        Delta::Withheld => Ok(None),
        Delta::Profile(p) => Ok(Some((None, Bytes::from(p)))),
        Delta::PassThrough => {
            let mut labels = spec.labels.clone();
            labels.remove(DELTA_LABEL);
            Ok(Some((Some(labels), body)))
        }
    }
}

/// GETs the profile: status, size bound and emptiness checked.
async fn fetch(
    client: &Client,
    spec: &TaskSpec,
    url: Result<&reqwest::Url, &String>,
) -> Result<(Bytes, Option<String>), String> {
    let deadline = Instant::now() + spec.timeout;
    let url = url.map_err(String::clone)?;
    let timed_out = || {
        format!(
            "Get {}: scrape timed out after {}",
            river::parser::go_quote(&spec.url),
            humantime::format_duration(spec.timeout)
        )
    };
    // The slot is held until the body has been read, so the connection is back in the pool when the next
    // scrape of this host starts.
    let _slot = tokio::time::timeout_at(deadline, client.http.host_slot(url))
        .await
        .map_err(|_| timed_out())?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(timed_out());
    }
    let fetched = client
        .http
        .fetch(url, remaining, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            http_client::FetchError::Prepare(e) => http_client::describe_error(&e),
            http_client::FetchError::Timeout => timed_out(),
            http_client::FetchError::TooLarge => {
                format!("response body is larger than the limit of {MAX_BODY_BYTES} bytes")
            }
            http_client::FetchError::Transport(text) => {
                format!("Get {}: {text}", river::parser::go_quote(&spec.url))
            }
        })?;
    let status = fetched.status;
    if !status.is_success() {
        return Err(format!(
            "server returned HTTP status ({}) {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    let (body, content_type) = (fetched.body, fetched.content_type);
    if body.is_empty() {
        return Err(format!(
            "empty {} profile from {}",
            spec.profile.name, spec.url
        ));
    }
    Ok((body, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_is_stable_and_within_the_interval() {
        let interval = Duration::from_secs(15);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for key in [0u64, 1, 7_000_000_000, u64::MAX] {
            let d = first_delay(key, interval, t0);
            assert!(d < interval);
            // The first scrape lands on the same wall-clock phase whenever the task starts.
            let later = t0 + Duration::from_millis(4321);
            let d2 = first_delay(key, interval, later);
            let phase = |t: SystemTime, d: Duration| {
                (t + d).duration_since(UNIX_EPOCH).unwrap().as_nanos() % interval.as_nanos()
            };
            assert_eq!(phase(t0, d), phase(later, d2));
            assert_eq!(phase(t0, d), u128::from(key) % interval.as_nanos());
        }
    }
}
