//! The HTTP server: health and reload endpoints, metrics, the JSON API, component HTTP handlers, the
//! process's profiles and the UI. [`router`] builds the whole app from an [`AppState`] and needs no socket,
//! so tests can drive it directly.

use super::profiling::{self, ProfileError, Profiler};
use super::reload::Reloader;
use super::{api, logs, process_metrics, ui, RunArgs};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use flow::{Controller, ControllerOptions, HealthState, Registry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest request body handed to a component.
const MAX_COMPONENT_BODY: usize = 16 << 20;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    controller: Controller,
    reloader: Reloader,
    metrics: prometheus_client::registry::Registry,
    profiler: Profiler,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Why the process could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The storage directory is unusable.
    #[error("storage path {path}: {source}")]
    Storage {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl AppState {
    /// The state of `rill run` with the built-in components; `logs` applies the config's `logging` block.
    /// With `cluster`, components share their work through it and its metrics are served too.
    pub fn new(
        args: &RunArgs,
        logs: logs::LogControl,
        cluster: Option<cluster::ClusterService>,
    ) -> Result<Self, SetupError> {
        if let Err(source) = std::fs::create_dir_all(&args.storage_path) {
            return Err(SetupError::Storage {
                path: args.storage_path.display().to_string(),
                source,
            });
        }
        let options = ControllerOptions {
            storage_path: args.storage_path.clone(),
            stop_timeout: super::STOP_TIMEOUT,
            on_logging: Some(Arc::new(move |c: &flow::LoggingConfig| logs.apply(c))),
            cluster: match &cluster {
                Some(c) => Arc::new(c.clone()),
                None => Arc::new(flow::Standalone {
                    node_name: args.cluster.node_name(),
                }),
            },
            ..ControllerOptions::default()
        };
        Ok(Self::with_parts(
            crate::components::builtin_registry(),
            options,
            args.config.clone(),
            |metrics| {
                if let Some(c) = &cluster {
                    c.metrics().register(metrics);
                }
            },
        ))
    }

    /// A state for any registry and options (tests, embedders); `extra_metrics` registers metrics beside
    /// the controller's and the process's.
    pub fn with_parts(
        registry: Arc<Registry>,
        options: ControllerOptions,
        config: std::path::PathBuf,
        extra_metrics: impl FnOnce(&mut prometheus_client::registry::Registry),
    ) -> Self {
        let controller = Controller::new(registry, options);
        let mut metrics = prometheus_client::registry::Registry::default();
        controller.register_metrics(&mut metrics);
        extra_metrics(&mut metrics);
        metrics.register_collector(Box::new(process_metrics::ProcessCollector));
        AppState {
            inner: Arc::new(Inner {
                reloader: Reloader::new(config, controller.clone()),
                controller,
                metrics,
                profiler: Profiler::default(),
            }),
        }
    }

    /// The controller.
    pub fn controller(&self) -> &Controller {
        &self.inner.controller
    }

    /// Loads the config path again.
    pub fn reloader(&self) -> &Reloader {
        &self.inner.reloader
    }
}

/// The whole HTTP app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(healthy))
        .route("/-/reload", get(reload).post(reload))
        .route("/metrics", get(metrics))
        .route("/api/v0/web/components", get(components))
        .route("/api/v0/web/components/{id}", get(component))
        .route("/api/v0/web/peers", get(peers))
        .route("/api/v0/component/{id}", any(component_http_root))
        .route("/api/v0/component/{id}/", any(component_http_root))
        .route("/api/v0/component/{id}/{*rest}", any(component_http))
        .route("/debug/pprof/", get(pprof_index))
        .route("/debug/pprof/{name}", get(pprof))
        .merge(ui::routes())
        .with_state(state)
}

/// Serves `app` on `listener` until `stop` fires, then stops accepting and lets open requests finish.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "http server failed");
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.controller().is_loaded() {
        text(StatusCode::OK, "ready")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the config is not loaded yet",
        )
    }
}

async fn healthy(State(s): State<AppState>) -> Response {
    let bad: Vec<String> = s
        .controller()
        .components()
        .into_iter()
        .filter(|c| matches!(c.health.state, HealthState::Unhealthy | HealthState::Exited))
        .map(|c| {
            format!(
                "{} ({}): {}",
                c.id,
                c.health.state.as_str(),
                c.health.message
            )
        })
        .collect();
    if bad.is_empty() {
        text(StatusCode::OK, "healthy")
    } else {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unhealthy components:\n{}", bad.join("\n")),
        )
    }
}

async fn reload(State(s): State<AppState>) -> Response {
    match s.reloader().reload().await {
        Ok(report) => {
            tracing::info!("config reloaded");
            super::reload::log_warnings(&report);
            text(StatusCode::OK, reload_reply(&report))
        }
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; the running config is unchanged");
            text(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// The reply to an accepted reload: `config reloaded`, then what it could not apply, one diagnostic per line. The
/// reload is still accepted (200): the rest of the config runs, and each of those components keeps its last
/// good arguments, but a `curl` of `/-/reload` must not hide that part of the edit did not take effect.
fn reload_reply(report: &flow::LoadReport) -> String {
    let problems: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    if problems.is_empty() {
        return "config reloaded".into();
    }
    format!(
        "config reloaded with {} (those components are unhealthy and keep their last good arguments, if any):\n{}",
        match problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        },
        problems.join("\n")
    )
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &s.inner.metrics) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn components(State(s): State<AppState>) -> Response {
    let list: Vec<_> = s
        .controller()
        .components()
        .iter()
        .map(|c| api::component_json(c, false))
        .collect();
    Json(list).into_response()
}

async fn component(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.controller().component(&id) {
        Some(c) => Json(api::component_json(&c, true)).into_response(),
        None => text(
            StatusCode::NOT_FOUND,
            format!("component {id:?} does not exist"),
        ),
    }
}

async fn peers(State(s): State<AppState>) -> Response {
    let peers: Vec<_> = s
        .controller()
        .cluster()
        .peers()
        .iter()
        .map(api::peer_json)
        .collect();
    Json(peers).into_response()
}

async fn component_http_root(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    dispatch(s, id, String::new(), req).await
}

async fn component_http(
    State(s): State<AppState>,
    Path((id, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    dispatch(s, id, rest, req).await
}

/// Hands a request to the component's HTTP handler, with the path after `/api/v0/component/<id>`.
async fn dispatch(s: AppState, id: String, rest: String, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_COMPONENT_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request bodies are limited to {MAX_COMPONENT_BODY} bytes"),
            )
        }
    };
    let path = match parts.uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid path"),
    };
    let request = http::Request::from_parts(parts, bytes);
    match s.controller().handle_http(&id, request).await {
        Some(resp) => resp.map(Body::from),
        None => text(
            StatusCode::NOT_FOUND,
            format!("component {id:?} does not exist or serves no HTTP"),
        ),
    }
}

async fn pprof_index() -> Response {
    text(
        StatusCode::OK,
        "rill profiles (pprof format, gzip):\n\
         /debug/pprof/profile?seconds=N  CPU profile over N seconds (default 30)\n\
         /debug/pprof/heap               sampled live heap (jemalloc)\n\
         /debug/pprof/allocs             the same as heap\n",
    )
}

async fn pprof(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(reason) = profiling::unavailable_reason(&name) {
        return text(StatusCode::NOT_FOUND, reason);
    }
    let result = match name.as_str() {
        "profile" => match Profiler::parse_seconds(query.get("seconds").map(String::as_str)) {
            Ok(secs) => s.inner.profiler.cpu(Duration::from_secs(secs)).await,
            Err(e) => Err(e),
        },
        _ => s.inner.profiler.heap().await,
    };
    match result {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"profile\""),
            );
            resp
        }
        Err(e) => {
            let status = match &e {
                ProfileError::BadSeconds => StatusCode::BAD_REQUEST,
                ProfileError::Busy => StatusCode::CONFLICT,
                ProfileError::Unavailable(_) => StatusCode::NOT_FOUND,
                ProfileError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut resp = text(status, e.to_string());
            if matches!(e, ProfileError::Busy) {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            resp
        }
    }
}
