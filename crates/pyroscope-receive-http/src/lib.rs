//! The `pyroscope.receive_http` component: accepts pushed profiles and forwards them to `forward_to`.
//!
//! ```river
//! pyroscope.receive_http "default" {
//!   http {
//!     listen_address = "0.0.0.0"
//!     listen_port    = 4040
//!   }
//!   forward_to = [pyroscope.write.default.receiver]
//! }
//! ```
//!
//! Serves `POST /push.v1.PusherService/Push` (Connect unary, binary protobuf, optionally gzip-compressed)
//! and the legacy `POST /ingest?name=app.cpu{k=v}` (a pprof body). Malformed requests get 400 with the
//! reason; a downstream failure that may pass on retry gets a retryable Connect error (`unavailable`, 503),
//! a permanent one `invalid_argument` (400). Request bodies are bounded by [`MAX_REQUEST_BYTES`], before and
//! after decompression.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod server;

use async_trait::async_trait;
use flow::{ComponentError, Context, Health, HealthState, TypedComponent};
use pyroscope::Receiver;
use river::decode::{Block, Validate};
use river::types::{Duration, TypedCapsule};
use river::Value;
use serde::{Deserialize, Serialize, Serializer};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio_util::sync::CancellationToken;

pub use server::MAX_REQUEST_BYTES;

/// The `http` block.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpConfig {
    /// The address to listen on.
    pub listen_address: String,
    /// The port to listen on (0: any free port, shown in the debug info).
    pub listen_port: u16,
    /// Connections served at once at most (0: no limit).
    pub conn_limit: usize,
    /// How long reading a request (headers and body) may take.
    pub server_read_timeout: Duration,
    /// How long producing and writing a response may take.
    pub server_write_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub server_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen_address: "0.0.0.0".into(),
            listen_port: 8080,
            conn_limit: 0,
            server_read_timeout: Duration::from_secs(30),
            server_write_timeout: Duration::from_secs(30),
            server_idle_timeout: Duration::from_secs(120),
        }
    }
}

impl Validate for HttpConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("server_read_timeout", self.server_read_timeout),
            ("server_write_timeout", self.server_write_timeout),
            ("server_idle_timeout", self.server_idle_timeout),
        ] {
            if d.as_nanos() <= 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// The `pyroscope.receive_http` block.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Arguments {
    /// Where the server listens.
    #[serde(default, serialize_with = "serialize_block")]
    pub http: Option<Block<HttpConfig>>,
    /// Where received profiles go.
    pub forward_to: Vec<TypedCapsule<Receiver>>,
}

fn serialize_block<S: Serializer>(b: &Option<Block<HttpConfig>>, s: S) -> Result<S::Ok, S::Error> {
    b.as_ref().map(|b| &b.0).serialize(s)
}

impl Validate for Arguments {}

impl Arguments {
    /// The `http` block, or its defaults.
    pub fn http(&self) -> HttpConfig {
        self.http.as_ref().map(|b| b.0.clone()).unwrap_or_default()
    }
}

pub(crate) struct Shared {
    pub(crate) forward_to: RwLock<Vec<Receiver>>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) span: tracing::Span,
}

#[derive(Default, Clone)]
pub(crate) struct Stats {
    pub(crate) requests: u64,
    pub(crate) profiles: u64,
    pub(crate) rejected: u64,
    pub(crate) forward_failures: u64,
    pub(crate) last_error: Option<String>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Running {
    config: HttpConfig,
    local_addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// The `pyroscope.receive_http` component.
pub struct ReceiveHttp {
    shared: Arc<Shared>,
    server: tokio::sync::Mutex<Option<Running>>,
    addr: Mutex<Option<std::net::SocketAddr>>,
    health: Mutex<Health>,
}

fn start(shared: &Arc<Shared>, config: &HttpConfig) -> Result<Running, ComponentError> {
    let addr = format!("{}:{}", config.listen_address, config.listen_port);
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(|e| ComponentError::new(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ComponentError::new(format!("cannot listen on {addr}: {e}")))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| ComponentError::new(format!("cannot listen on {addr}: {e}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| ComponentError::new(format!("cannot listen on {addr}: {e}")))?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(server::serve(
        listener,
        shared.clone(),
        config.clone(),
        stop.clone(),
    ));
    tracing::info!(parent: &shared.span, address = %local_addr, "listening for pushed profiles");
    Ok(Running {
        config: config.clone(),
        local_addr,
        stop,
        task,
    })
}

#[async_trait]
impl TypedComponent for ReceiveHttp {
    const NAME: &'static str = "pyroscope.receive_http";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let shared = Arc::new(Shared {
            forward_to: RwLock::new(args.forward_to.iter().map(|c| c.get().clone()).collect()),
            stats: Mutex::new(Stats::default()),
            span: ctx.span.clone(),
        });
        let running = start(&shared, &args.http())?;
        Ok(ReceiveHttp {
            addr: Mutex::new(Some(running.local_addr)),
            shared,
            server: tokio::sync::Mutex::new(Some(running)),
            health: Mutex::new(Health::new(HealthState::Healthy, "serving")),
        })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        if let Some(r) = self.server.lock().await.take() {
            r.stop.cancel();
            let _ = r.task.await;
        }
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        *self
            .shared
            .forward_to
            .write()
            .unwrap_or_else(|e| e.into_inner()) =
            args.forward_to.iter().map(|c| c.get().clone()).collect();
        let config = args.http();
        let mut server = self.server.lock().await;
        if server.as_ref().is_some_and(|r| r.config == config) {
            return Ok(());
        }
        if let Some(old) = server.take() {
            old.stop.cancel();
            let _ = old.task.await;
        }
        match start(&self.shared, &config) {
            Ok(r) => {
                *lock(&self.addr) = Some(r.local_addr);
                *server = Some(r);
                *lock(&self.health) = Health::new(HealthState::Healthy, "serving");
                Ok(())
            }
            Err(e) => {
                *lock(&self.addr) = None;
                *lock(&self.health) = Health::new(HealthState::Unhealthy, e.to_string());
                Err(e)
            }
        }
    }

    fn health(&self) -> Option<Health> {
        Some(lock(&self.health).clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.shared.stats).clone();
        let info = DebugInfo {
            listen_address: lock(&self.addr).map(|a| a.to_string()),
            forward_to: self
                .shared
                .forward_to
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|r| r.owner().to_string())
                .collect(),
            requests: st.requests,
            profiles: st.profiles,
            rejected_requests: st.rejected,
            forward_failures: st.forward_failures,
            last_error: st.last_error,
        };
        river::encode::to_value(&info).ok()
    }
}

#[derive(Serialize)]
struct DebugInfo {
    listen_address: Option<String>,
    forward_to: Vec<String>,
    requests: u64,
    profiles: u64,
    rejected_requests: u64,
    forward_failures: u64,
    last_error: Option<String>,
}

/// Registers `pyroscope.receive_http` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<ReceiveHttp>().map(|_| ())
}
