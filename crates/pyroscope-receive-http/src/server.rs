//! The HTTP server: accept loop (connection limit, timeouts) and the two push endpoints.

use crate::{lock, HttpConfig, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use prost::Message;
use pyroscope::push::{self, Code, ConnectError, PushRequest};
use pyroscope::{fanout, Labels, RawSample};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest request body accepted, compressed or not (and the largest after decompression).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    config: HttpConfig,
    stop: CancellationToken,
) {
    let app = axum::Router::new()
        .route(push::PUSH_PATH, axum::routing::post(handle_push))
        .route("/ingest", axum::routing::post(handle_ingest))
        .with_state(shared.clone());
    let limit =
        (config.conn_limit > 0).then(|| Arc::new(tokio::sync::Semaphore::new(config.conn_limit)));
    let read_timeout = config.server_read_timeout.to_std_saturating();
    let write_timeout = config.server_write_timeout.to_std_saturating();
    let idle_timeout = config.server_idle_timeout.to_std_saturating();
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let permit = match &limit {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => p.ok(),
                _ = stop.cancelled() => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(parent: &shared.span, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let req = req.map(Body::new);
                        // Bounds reading the body and producing the answer.
                        let resp = tokio::time::timeout(
                            read_timeout + write_timeout,
                            tower_call(app, req),
                        )
                        .await;
                        Ok::<_, std::convert::Infallible>(resp.unwrap_or_else(|_| {
                            connect_error(
                                StatusCode::GATEWAY_TIMEOUT,
                                Code::DeadlineExceeded,
                                "request timed out",
                            )
                        }))
                    }
                });
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(read_timeout.min(idle_timeout))
                .keep_alive(true);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

async fn tower_call(app: axum::Router, req: Request) -> Response {
    use tower::ServiceExt;
    match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn connect_error(status: StatusCode, code: Code, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, push::CONTENT_TYPE_JSON)],
        ConnectError::new(code, message).to_json(),
    )
        .into_response()
}

/// A request that cannot be accepted as sent.
struct Bad(String);

fn reject(shared: &Shared, reason: String) -> Response {
    let mut st = lock(&shared.stats);
    st.rejected += 1;
    st.last_error = Some(reason.clone());
    drop(st);
    tracing::debug!(parent: &shared.span, %reason, "rejected request");
    connect_error(StatusCode::BAD_REQUEST, Code::InvalidArgument, &reason)
}

/// Reads the whole body (bounded) and undoes `Content-Encoding: gzip`.
async fn read_body(req: Request) -> Result<Bytes, Bad> {
    let encoding = req
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let limited = http_body_util::Limited::new(req.into_body(), MAX_REQUEST_BYTES);
    let body = limited.collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            Bad(format!(
                "request body larger than {MAX_REQUEST_BYTES} bytes"
            ))
        } else {
            Bad(format!("cannot read request body: {e}"))
        }
    })?;
    let body = body.to_bytes();
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Bad(format!("invalid gzip body: {e}")))?;
            if out.len() > MAX_REQUEST_BYTES {
                return Err(Bad(format!(
                    "decompressed request body larger than {MAX_REQUEST_BYTES} bytes"
                )));
            }
            Ok(out.into())
        }
        Some(other) => Err(Bad(format!("unsupported Content-Encoding {other:?}"))),
    }
}

/// Forwards series; maps failures to what the sender should do.
async fn forward(shared: &Shared, series: Vec<(Labels, Vec<RawSample>)>) -> Response {
    let receivers = shared
        .forward_to
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let profiles: u64 = series.iter().map(|(_, s)| s.len() as u64).sum();
    let sends = series
        .iter()
        .map(|(labels, samples)| fanout(&receivers, labels, samples));
    let results = futures_util::future::join_all(sends).await;
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    let mut st = lock(&shared.stats);
    st.requests += 1;
    st.profiles += profiles;
    if failures.is_empty() {
        return (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, push::CONTENT_TYPE_PROTO)],
            push::PushResponse {}.encode_to_vec(),
        )
            .into_response();
    }
    st.forward_failures += 1;
    let message = failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    st.last_error = Some(message.clone());
    drop(st);
    tracing::warn!(parent: &shared.span, error = %message, "forwarding failed");
    if failures.iter().all(|f| f.is_retryable()) {
        connect_error(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &message)
    } else {
        connect_error(StatusCode::BAD_REQUEST, Code::InvalidArgument, &message)
    }
}

async fn handle_push(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let base = content_type.split(';').next().unwrap_or("").trim();
    if base != push::CONTENT_TYPE_PROTO {
        let mut r = reject(
            &shared,
            format!("unsupported Content-Type {content_type:?}: only application/proto is served"),
        );
        *r.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(Bad(reason)) => return reject(&shared, reason),
    };
    let request = match PushRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return reject(&shared, format!("invalid PushRequest: {e}")),
    };
    let series = request
        .series
        .into_iter()
        .map(|s| {
            (
                push::labels_from_pairs(&s.labels),
                s.samples
                    .into_iter()
                    .map(|x| RawSample::new(x.raw_profile))
                    .collect(),
            )
        })
        .collect();
    forward(&shared, series).await
}

/// The profile type a legacy app name's suffix stands for (`app.cpu` → `process_cpu`).
fn legacy_profile_type(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "cpu" | "itimer" | "wall" => "process_cpu",
        "alloc_objects" | "alloc_space" | "inuse_objects" | "inuse_space" => "memory",
        "goroutines" => "goroutine",
        "mutex_count" | "mutex_duration" => "mutex",
        "block_count" | "block_duration" => "block",
        _ => return None,
    })
}

/// Parses the legacy `name` query: `app.cpu{env=prod,region=eu}`.
pub fn parse_legacy_name(name: &str) -> Result<Labels, String> {
    let (app, rest) = match name.find('{') {
        Some(i) => (&name[..i], Some(&name[i..])),
        None => (name, None),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err("name has no application name".into());
    }
    let mut labels = Labels::new();
    if let Some(rest) = rest {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("invalid name {name:?}: labels must be enclosed in {{}}"))?;
        for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("invalid label {pair:?} in name: expected key=value"))?;
            let k = k.trim();
            let valid = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !valid {
                return Err(format!("invalid label name {k:?} in name"));
            }
            labels.set(k, v.trim());
        }
    }
    let (service, ptype) = match app.rsplit_once('.') {
        Some((svc, suffix)) => match legacy_profile_type(suffix) {
            Some(t) => (svc, Some(t)),
            None => (app, None),
        },
        None => (app, None),
    };
    labels.set_default(pyroscope::labels::SERVICE_NAME_LABEL, service);
    if let Some(t) = ptype {
        labels.set(pyroscope::labels::NAME_LABEL, t);
    }
    Ok(labels)
}

async fn handle_ingest(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or("").to_string();
    let params: Vec<(String, String)> = url_pairs(&query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(name) = get("name") else {
        return reject(&shared, "missing name query parameter".into());
    };
    let labels = match parse_legacy_name(name) {
        Ok(l) => l,
        Err(e) => return reject(&shared, e),
    };
    match get("format") {
        None | Some("") | Some("pprof") => {}
        Some(other) => {
            return reject(
                &shared,
                format!("unsupported format {other:?}: only pprof is accepted"),
            );
        }
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(Bad(reason)) => return reject(&shared, reason),
    };
    if !looks_like_pprof(&body) {
        return reject(
            &shared,
            "body is not a pprof profile (gzip or protobuf)".into(),
        );
    }
    forward(&shared, vec![(labels, vec![RawSample::new(body)])]).await
}

/// A cheap check: gzip magic, or a protobuf whose first field is `sample_type` (1) or `sample` (2).
fn looks_like_pprof(b: &[u8]) -> bool {
    match b {
        [0x1f, 0x8b, ..] => true,
        [first, ..] => matches!(first, 0x0a | 0x12),
        [] => false,
    }
}

/// `a=b&c=d` with percent-decoding.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_parse_into_labels() {
        let l = parse_legacy_name("my.app.cpu{env=prod, region = eu}").unwrap();
        assert_eq!(
            l.to_string(),
            r#"{__name__="process_cpu", env="prod", region="eu", service_name="my.app"}"#
        );
        let l = parse_legacy_name("svc").unwrap();
        assert_eq!(l.to_string(), r#"{service_name="svc"}"#);
        assert!(parse_legacy_name("{a=b}")
            .unwrap_err()
            .contains("no application name"));
        assert!(parse_legacy_name("a{b}")
            .unwrap_err()
            .contains("expected key=value"));
        assert!(parse_legacy_name("a{b=c").unwrap_err().contains("enclosed"));
        assert!(parse_legacy_name("a{1x=c}")
            .unwrap_err()
            .contains("invalid label name"));
    }

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            url_pairs("name=app.cpu%7Benv%3Dprod%7D&x=a+b&bad=%zz&u=%C3%A9%"),
            [
                ("name".to_string(), "app.cpu{env=prod}".to_string()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("u".into(), "é%".into())
            ]
        );
    }
}
