//! One endpoint: its queue, its workers, the Connect Push request and the retry policy.

use crate::args::EndpointOptions;
use crate::queue::{Item, Queue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prost::Message;
use pyroscope::push::{self, Code, ConnectError, PushRequest};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Series per Push request at most.
pub const MAX_BATCH_SERIES: usize = 32;
/// Bytes of profiles per Push request at most (a single larger series still goes alone).
pub const MAX_BATCH_BYTES: u64 = 4 << 20;
/// How much of an error response body is read.
const MAX_ERROR_BODY: usize = 16 << 10;

/// The `User-Agent` sent.
pub fn user_agent() -> String {
    format!("Rill/{} pyroscope.write", env!("CARGO_PKG_VERSION"))
}

/// Metrics of one endpoint (series labelled `endpoint`).
#[derive(Clone)]
pub struct EndpointMetrics {
    pub sent_bytes: Counter,
    pub dropped_bytes: Counter,
    pub sent_profiles: Counter,
    pub dropped_profiles: Counter,
    pub retries: Counter,
    pub latency: Histogram,
    pub queued_profiles: Gauge,
    pub queued_bytes: Gauge,
}

/// The families, created once per component.
#[derive(Clone)]
pub struct MetricFamilies {
    sent_bytes: flow::ComponentFamily<Counter>,
    dropped_bytes: flow::ComponentFamily<Counter>,
    sent_profiles: flow::ComponentFamily<Counter>,
    dropped_profiles: flow::ComponentFamily<Counter>,
    retries: flow::ComponentFamily<Counter>,
    latency: flow::ComponentFamily<Histogram>,
    queued_profiles: flow::ComponentFamily<Gauge>,
    queued_bytes: flow::ComponentFamily<Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl MetricFamilies {
    /// Registers the `pyroscope_write_*` families.
    pub fn new(m: &flow::ComponentMetrics) -> Result<Self, flow::MetricsError> {
        Ok(MetricFamilies {
            sent_bytes: m.family(
                "pyroscope_write_sent_bytes_total",
                "Bytes of profiles pushed successfully.",
                Counter::default,
            )?,
            dropped_bytes: m.family(
                "pyroscope_write_dropped_bytes_total",
                "Bytes of profiles dropped (queue full, rejected, or out of retries).",
                Counter::default,
            )?,
            sent_profiles: m.family(
                "pyroscope_write_sent_profiles_total",
                "Profiles pushed successfully.",
                Counter::default,
            )?,
            dropped_profiles: m.family(
                "pyroscope_write_dropped_profiles_total",
                "Profiles dropped (queue full, rejected, or out of retries).",
                Counter::default,
            )?,
            retries: m.family(
                "pyroscope_write_retries_total",
                "Push requests retried.",
                Counter::default,
            )?,
            latency: m.family(
                "pyroscope_write_latency",
                "Duration of push requests in seconds, by endpoint.",
                latency_histogram,
            )?,
            queued_profiles: m.family(
                "pyroscope_write_queue_profiles",
                "Profiles waiting to be pushed.",
                Gauge::default,
            )?,
            queued_bytes: m.family(
                "pyroscope_write_queue_bytes",
                "Bytes of profiles waiting to be pushed.",
                Gauge::default,
            )?,
        })
    }

    /// The series of one endpoint.
    pub fn endpoint(&self, name: &str) -> EndpointMetrics {
        let l = [("endpoint", name)];
        EndpointMetrics {
            sent_bytes: self.sent_bytes.get(&l),
            dropped_bytes: self.dropped_bytes.get(&l),
            sent_profiles: self.sent_profiles.get(&l),
            dropped_profiles: self.dropped_profiles.get(&l),
            retries: self.retries.get(&l),
            latency: self.latency.get(&l),
            queued_profiles: self.queued_profiles.get(&l),
            queued_bytes: self.queued_bytes.get(&l),
        }
    }
}

/// What the debug info and health show of an endpoint.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub last_error: Option<String>,
    pub last_error_time: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    /// Whether the last finished attempt failed.
    pub failing: bool,
}

/// Why one Push attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// The server answered with an error.
    #[error("server returned HTTP status {status}: {error}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The Connect error (from the body, or inferred from the status).
        error: ConnectError,
        /// Whether it may succeed later.
        retryable: bool,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, reset, TLS failure, timeout.
    #[error("{0}")]
    Transport(String),
}

impl PushError {
    fn retryable(&self) -> bool {
        match self {
            PushError::Status { retryable, .. } => *retryable,
            PushError::Transport(_) => true,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            PushError::Status { retry_after, .. } => *retry_after,
            PushError::Transport(_) => None,
        }
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The exponential backoff with jitter of the reference (dskit): the n-th delay is drawn from
/// `[min·2ⁿ⁻¹, min·2ⁿ)`, both ends capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    lo: Duration,
    hi: Duration,
}

impl Backoff {
    /// A backoff between these bounds.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            lo: Duration::ZERO,
            hi: Duration::ZERO,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        if self.min >= self.max {
            return self.min;
        }
        if self.lo < self.min {
            self.lo = self.min;
            self.hi = (self.min * 2).min(self.max);
        } else {
            self.lo = (self.lo * 2).min(self.max);
            self.hi = (self.hi * 2).min(self.max);
        }
        let span = self.hi.saturating_sub(self.lo);
        if span.is_zero() {
            return self.lo;
        }
        self.lo + span.mul_f64(fastrand::f64())
    }
}

/// Everything a worker needs.
pub struct Sender {
    pub key: String,
    pub opts: EndpointOptions,
    pub client: http_client::HttpClient,
    pub push_url: String,
    pub headers: http::HeaderMap,
    pub metrics: EndpointMetrics,
    pub status: Mutex<Status>,
    pub queue: Arc<Queue>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why building an endpoint failed.
#[derive(Debug, thiserror::Error)]
#[error("endpoint {endpoint:?}: cannot build HTTP client: {message}")]
pub struct BuildError {
    endpoint: String,
    message: String,
}

impl Sender {
    /// A sender for these options, feeding from `queue`.
    pub fn new(
        key: String,
        opts: EndpointOptions,
        queue: Arc<Queue>,
        metrics: EndpointMetrics,
    ) -> Result<Sender, BuildError> {
        let timeout = opts.remote_timeout.to_std_saturating();
        let options = http_client::ClientOptions::default()
            .user_agent(user_agent())
            .connect_timeout(timeout)
            .token_timeout(timeout);
        let client = http_client::HttpClient::with_options(&opts.http_client_config(), options)
            .map_err(|e| BuildError {
                endpoint: key.clone(),
                message: e.to_string(),
            })?;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_str(&user_agent())
                .unwrap_or(http::HeaderValue::from_static("Rill")),
        );
        for (name, value) in &opts.headers {
            // Validated when the arguments were decoded.
            if let (Ok(n), Ok(mut v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value.expose()),
            ) {
                v.set_sensitive(value.is_secret());
                headers.insert(n, v);
            }
        }
        // The protocol's own headers win over configured ones.
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(push::CONTENT_TYPE_PROTO),
        );
        headers.insert(
            push::PROTOCOL_VERSION_HEADER,
            http::HeaderValue::from_static("1"),
        );
        let ms = timeout.as_millis().to_string();
        if let Ok(v) = http::HeaderValue::from_str(&ms) {
            headers.insert(push::TIMEOUT_HEADER, v);
        }
        Ok(Sender {
            push_url: opts.push_url(),
            key,
            opts,
            client,
            headers,
            metrics,
            status: Mutex::new(Status::default()),
            queue,
        })
    }

    fn update_queue_gauges(&self) {
        let (p, b) = self.queue.len();
        self.metrics
            .queued_profiles
            .set(i64::try_from(p).unwrap_or(i64::MAX));
        self.metrics
            .queued_bytes
            .set(i64::try_from(b).unwrap_or(i64::MAX));
    }

    /// Counts items as dropped.
    pub fn drop_items(&self, profiles: u64, bytes: u64) {
        self.metrics.dropped_profiles.inc_by(profiles);
        self.metrics.dropped_bytes.inc_by(bytes);
    }

    /// One Push attempt.
    async fn push_once(&self, body: bytes::Bytes) -> Result<(), PushError> {
        let started = Instant::now();
        let request = match self.client.post(&self.push_url).await {
            Ok(r) => r,
            // E.g. an unreadable token file or a failed OAuth2 token request: may work later.
            Err(e) => return Err(PushError::Transport(e.to_string())),
        };
        let result = request
            .headers(self.headers.clone())
            .timeout(self.opts.remote_timeout.to_std_saturating())
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                self.metrics
                    .latency
                    .observe(started.elapsed().as_secs_f64());
                return Err(PushError::Transport(describe_reqwest(&e)));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if response.status().is_success() {
            // Drain the (empty) PushResponse so the connection can be reused.
            let _ = response.bytes().await;
            self.metrics
                .latency
                .observe(started.elapsed().as_secs_f64());
            return Ok(());
        }
        let body = read_bounded(response, MAX_ERROR_BODY).await;
        self.metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        let (error, retryable) = match ConnectError::from_json(&body) {
            Some(e) => {
                let r = e.code.is_retryable();
                (e, r)
            }
            None => {
                let code = Code::from_http_status(status);
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text.chars().take(512).collect()
                };
                // Decision: a bare 400 maps to `internal` per Connect, but it is a client error from a proxy
                // or a non-Connect server; resending the same bytes cannot help.
                let r = code.is_retryable() && status != 400;
                (ConnectError::new(code, message), r)
            }
        };
        Err(PushError::Status {
            status,
            error,
            retryable,
            retry_after,
        })
    }

    /// Sends one batch with retries. Returns the batch back if `retire` fired before it could be sent (so
    /// the successor endpoint can take it); `abort` drops it.
    async fn send_batch(
        &self,
        batch: Vec<Item>,
        retire: &CancellationToken,
        abort: &CancellationToken,
    ) -> Option<Vec<Item>> {
        let profiles: u64 = batch.iter().map(Item::profiles).sum();
        let bytes: u64 = batch.iter().map(|i| i.bytes).sum();
        let request = PushRequest {
            series: batch.iter().map(|i| i.series.clone()).collect(),
        };
        let body = bytes::Bytes::from(request.encode_to_vec());
        let mut backoff = Backoff::new(
            self.opts.min_backoff_period.to_std_saturating(),
            self.opts.max_backoff_period.to_std_saturating(),
        );
        let max_retries = self.opts.max_backoff_retries;
        let mut retries = 0u32;
        loop {
            let attempt = tokio::select! {
                r = self.push_once(body.clone()) => r,
                _ = abort.cancelled() => {
                    self.drop_items(profiles, bytes);
                    return None;
                }
            };
            let err = match attempt {
                Ok(()) => {
                    self.metrics.sent_profiles.inc_by(profiles);
                    self.metrics.sent_bytes.inc_by(bytes);
                    let mut st = lock(&self.status);
                    if st.failing {
                        tracing::info!(endpoint = %self.key, "push succeeded again");
                    }
                    st.failing = false;
                    st.last_success = Some(SystemTime::now());
                    return None;
                }
                Err(e) => e,
            };
            let message = err.to_string();
            {
                let mut st = lock(&self.status);
                st.failing = true;
                st.last_error = Some(message.clone());
                st.last_error_time = Some(SystemTime::now());
            }
            if !err.retryable() {
                tracing::error!(endpoint = %self.key, error = %message, profiles, "push failed; dropping the profiles (not retryable)");
                self.drop_items(profiles, bytes);
                return None;
            }
            if max_retries != 0 && retries >= max_retries {
                tracing::error!(endpoint = %self.key, error = %message, profiles, retries, "push failed; dropping the profiles (out of retries)");
                self.drop_items(profiles, bytes);
                return None;
            }
            let mut delay = backoff.next_delay();
            if let Some(after) = err.retry_after() {
                // Honour the server's wish, within our own longest backoff.
                delay = delay.max(after.min(self.opts.max_backoff_period.to_std_saturating()));
            }
            tracing::warn!(endpoint = %self.key, error = %message, ?delay, retry = retries + 1, "push failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = retire.cancelled() => return Some(batch),
                _ = abort.cancelled() => {
                    self.drop_items(profiles, bytes);
                    return None;
                }
            }
            retries += 1;
            self.metrics.retries.inc();
        }
    }

    /// A worker: takes batches until the queue is closed and empty, or until retired/aborted.
    async fn work(self: Arc<Self>, retire: CancellationToken, abort: CancellationToken) {
        loop {
            let batch = tokio::select! {
                b = self.queue.pop_batch(MAX_BATCH_SERIES, MAX_BATCH_BYTES) => b,
                _ = retire.cancelled() => return,
                _ = abort.cancelled() => return,
            };
            let Some(batch) = batch else { return };
            self.update_queue_gauges();
            if let Some(back) = self.send_batch(batch, &retire, &abort).await {
                self.queue.requeue(back);
                self.update_queue_gauges();
                return;
            }
        }
    }
}

/// A running endpoint: a sender and its workers.
pub struct Endpoint {
    pub sender: Arc<Sender>,
    retire: CancellationToken,
    abort: CancellationToken,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Endpoint {
    /// Starts the workers (needs a tokio runtime).
    pub fn start(sender: Sender, span: &tracing::Span) -> Endpoint {
        let sender = Arc::new(sender);
        let retire = CancellationToken::new();
        let abort = CancellationToken::new();
        let workers = (0..sender.opts.parallelism)
            .map(|_| {
                tokio::spawn(
                    sender
                        .clone()
                        .work(retire.clone(), abort.clone())
                        .instrument(span.clone()),
                )
            })
            .collect();
        Endpoint {
            sender,
            retire,
            abort,
            workers: Mutex::new(workers),
        }
    }

    /// Queues a series; refused (and counted as dropped) when the queue is full or closed.
    pub fn enqueue(&self, item: Item) -> bool {
        let (profiles, bytes) = (item.profiles(), item.bytes);
        match self.sender.queue.push(item) {
            Ok(()) => {
                self.sender.update_queue_gauges();
                true
            }
            Err(_) => {
                self.sender.drop_items(profiles, bytes);
                false
            }
        }
    }

    /// Stops the workers without losing queued series: a batch waiting for a retry goes back into the queue
    /// (for a successor sharing it). In-flight requests finish first.
    pub async fn retire(&self) {
        self.retire.cancel();
        let workers = std::mem::take(&mut *lock(&self.workers));
        for w in workers {
            let _ = w.await;
        }
    }

    /// Closes the queue and lets the workers send what is left, for at most `deadline`; what is still queued
    /// then is dropped and counted.
    pub async fn flush(&self, deadline: Duration) {
        self.sender.queue.close();
        let workers = std::mem::take(&mut *lock(&self.workers));
        let all = futures_util::future::join_all(workers);
        tokio::pin!(all);
        if tokio::time::timeout(deadline, &mut all).await.is_err() {
            self.abort.cancel();
            let _ = all.await;
        }
        let (profiles, bytes) = self.sender.queue.clear();
        if profiles > 0 {
            tracing::warn!(endpoint = %self.sender.key, profiles, "dropping queued profiles at shutdown");
            self.sender.drop_items(profiles, bytes);
        }
        self.sender.update_queue_gauges();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.abort.cancel();
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "request timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    // The chain of causes, without the URL (it may carry credentials).
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let ms = |x: u64| Duration::from_millis(x);
        assert!(d[0] >= ms(100) && d[0] < ms(200), "{d:?}");
        assert!(d[1] >= ms(200) && d[1] < ms(400), "{d:?}");
        assert!(d[2] >= ms(400) && d[2] < ms(800), "{d:?}");
        assert!(d[3] >= ms(800) && d[3] <= ms(1000), "{d:?}");
        assert_eq!(d[5], ms(1000));
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
