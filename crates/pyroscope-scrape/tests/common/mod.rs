//! Test parts: pprof target servers on 127.0.0.1, a recording receiver component, a controller.
#![allow(dead_code)]

use async_trait::async_trait;
use bytes::Bytes;
use flow::{ComponentError, Context, Controller, ControllerOptions, Sources, TypedComponent};
use http_body_util::Full;
use hyper::{Request, Response};
use pyroscope::{AppendError, Appender, Labels, RawSample, Receiver};
use river::decode::Validate;
use river::types::TypedCapsule;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub fn fixture(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pprof")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

// ----- target server -----

/// One request a target server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path_and_query: String,
    pub user_agent: String,
    pub at: Instant,
    /// The same on tokio's clock, which tests with paused time advance.
    pub tokio_at: tokio::time::Instant,
}

/// What to answer: status, content type, body.
pub type Answer = (u16, &'static str, Bytes);
type Handler = dyn Fn(&str, u64) -> Answer + Send + Sync;

/// A target on 127.0.0.1:0 (HTTP/1.1 and HTTP/2 cleartext) answering with `handler(path, n)` where `n`
/// counts earlier requests to that path.
pub struct Target {
    pub addr: std::net::SocketAddr,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// The TLS ServerName each TLS connection arrived with (none for an IP address).
    pub server_names: Arc<Mutex<Vec<Option<String>>>>,
    stop: CancellationToken,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Target {
    pub async fn start(handler: impl Fn(&str, u64) -> Answer + Send + Sync + 'static) -> Target {
        Target::start_with(handler, None, None).await
    }

    /// `start` over TLS (ALPN h2 and http/1.1), optionally requiring `Authorization: <auth>`.
    pub async fn start_with(
        handler: impl Fn(&str, u64) -> Answer + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
        auth: Option<String>,
    ) -> Target {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let auth = Arc::new(auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let counts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let stop = CancellationToken::new();
        let (h2, s2) = (hits.clone(), stop.clone());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a2 = accepted.clone();
        let server_names: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let names2 = server_names.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = s2.cancelled() => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (hits, counts, handler) = (h2.clone(), counts.clone(), handler.clone());
                let (acceptor, auth, names) = (acceptor.clone(), auth.clone(), names2.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let authorized = match auth.as_deref() {
                                None => true,
                                Some(want) => {
                                    req.headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok())
                                        == Some(want)
                                }
                            };
                            let path = req.uri().path().to_string();
                            let pq = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let ua = req
                                .headers()
                                .get("user-agent")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            hits.lock().unwrap().push(Hit {
                                path_and_query: pq,
                                user_agent: ua,
                                at: Instant::now(),
                                tokio_at: tokio::time::Instant::now(),
                            });
                            let n = {
                                let mut c = counts.lock().unwrap();
                                let e = c.entry(path.clone()).or_insert(0);
                                *e += 1;
                                *e - 1
                            };
                            let (status, ct, body) = if authorized {
                                handler(&path, n)
                            } else {
                                (401, "text/plain", Bytes::from_static(b"unauthorized"))
                            };
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .header("content-type", ct)
                                        .body(Full::new(body))
                                        .unwrap(),
                                )
                            }
                        });
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let name = tls.get_ref().1.server_name().map(str::to_owned);
                            names.lock().unwrap().push(name);
                            let _ = builder
                                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                .await;
                        }
                    }
                });
            }
        });
        Target {
            addr,
            hits,
            accepted,
            server_names,
            stop,
        }
    }

    /// A Go program's pprof endpoints: cumulative profiles move from the first fixture to the second.
    pub async fn go() -> Target {
        Target::start(go_handler).await
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn hits_of(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path_and_query.split('?').next() == Some(path))
            .count()
    }

    pub fn requested(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .hits
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.path_and_query.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

pub fn pprof(body: Bytes) -> Answer {
    (200, "application/octet-stream", body)
}

pub fn go_handler(path: &str, n: u64) -> Answer {
    let pick = |a: &str, b: &str| fixture(if n == 0 { a } else { b });
    match path {
        "/debug/pprof/allocs" => pprof(pick("wide-allocs-1.pb.gz", "wide-allocs-2.pb.gz")),
        "/debug/pprof/mutex" => pprof(pick("go-mutex.pb.gz", "go-mutex-2.pb.gz")),
        "/debug/pprof/block" => pprof(fixture("go-block.pb.gz")),
        "/debug/pprof/goroutine" => pprof(fixture("go-goroutine.pb.gz")),
        "/debug/pprof/profile" => pprof(fixture("go-cpu.pb.gz")),
        "/debug/fgprof" => pprof(fixture("go-fgprof.pb.gz")),
        "/debug/pprof/delta_heap" => pprof(fixture("go-heap.pb.gz")),
        _ => (
            404,
            "text/plain",
            Bytes::from_static(b"404 page not found\n"),
        ),
    }
}

// ----- recording receiver: `test.recorder "x" {}` exports `receiver` -----

#[derive(Default)]
pub struct Recorded {
    pub got: Mutex<Vec<(Labels, Bytes)>>,
}

#[async_trait]
impl Appender for Recorded {
    async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
        let mut got = self.got.lock().unwrap();
        for s in samples {
            got.push((labels.clone(), s.raw_profile));
        }
        Ok(())
    }
}

/// Every recorder ever built, by component ID, so tests can read what arrived.
pub type Recorders = Arc<Mutex<HashMap<String, Arc<Recorded>>>>;

fn recorders() -> &'static Recorders {
    static R: std::sync::OnceLock<Recorders> = std::sync::OnceLock::new();
    R.get_or_init(Recorders::default)
}

pub struct Recorder;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct RecorderArgs {
    /// Tests use a unique key per test so that parallel tests don't share recorders.
    pub key: String,
}
impl Validate for RecorderArgs {}

#[derive(Serialize)]
struct RecorderExports {
    receiver: TypedCapsule<Receiver>,
}

#[async_trait]
impl TypedComponent for Recorder {
    const NAME: &'static str = "test.recorder";
    type Arguments = RecorderArgs;

    fn build(ctx: Context, args: RecorderArgs) -> Result<Self, ComponentError> {
        let rec = Arc::new(Recorded::default());
        recorders()
            .lock()
            .unwrap()
            .insert(format!("{}/{}", args.key, ctx.id), rec.clone());
        ctx.exports.publish(&RecorderExports {
            receiver: TypedCapsule::new(Receiver::new(&ctx.id, rec)),
        })?;
        Ok(Recorder)
    }
    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }
    async fn update(&self, _args: RecorderArgs) -> Result<(), ComponentError> {
        Ok(())
    }
}

pub fn recorded(key: &str, id: &str) -> Vec<(Labels, Bytes)> {
    recorders()
        .lock()
        .unwrap()
        .get(&format!("{key}/{id}"))
        .map(|r| r.got.lock().unwrap().clone())
        .unwrap_or_default()
}

// ----- controller -----

pub struct Env {
    pub c: Controller,
    _dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env::with_cluster(Arc::new(flow::Standalone::default()))
    }

    pub fn with_cluster(cluster: Arc<dyn flow::Cluster>) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = flow::Registry::new();
        pyroscope_scrape::register(&mut registry).expect("register");
        registry
            .register::<Recorder>()
            .expect("register test.recorder");
        let options = ControllerOptions {
            storage_path: dir.path().join("data"),
            restart_backoff: Duration::from_millis(10),
            cluster,
            ..ControllerOptions::default()
        };
        Env {
            c: Controller::new(Arc::new(registry), options),
            _dir: dir,
        }
    }

    pub async fn load(&self, config: &str) -> flow::LoadReport {
        let sources = Sources::parse([("main.river", config)]).expect("config parses");
        let report = self.c.load(sources).await.expect("config is accepted");
        self.c.settle().await;
        report
    }

    /// The debug info's `target` entries as plain JSON objects.
    pub fn targets(&self, id: &str) -> Vec<serde_json::Value> {
        let info = self.c.component(id).expect("component exists").debug_info;
        let plain = plain(&info);
        plain["target"].as_array().cloned().unwrap_or_default()
    }

    /// Health and last error of component `id`'s target with this `service_name`; the health reads
    /// `(not listed)` while the component does not list that target (yet), so waiting loops keep waiting.
    pub fn target_status(&self, id: &str, svc: &str) -> (String, String) {
        let targets = self.targets(id);
        match targets.iter().find(|t| t["labels"]["service_name"] == svc) {
            Some(t) => (
                t["health"].as_str().unwrap_or("").into(),
                t["last_error"].as_str().unwrap_or("").into(),
            ),
            None => ("(not listed)".into(), String::new()),
        }
    }

    /// Whether component `id` lists at least one target and every one has been scraped (health known).
    /// Tasks start once the load has returned, so an empty list means "not yet", not "all done".
    pub fn all_targets_reported(&self, id: &str) -> bool {
        let targets = self.targets(id);
        !targets.is_empty() && targets.iter().all(|t| t["health"] != "unknown")
    }
}

/// riverjson value → plain JSON.
pub fn plain(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v["type"].as_str() {
        Some("object") => {
            let mut m = serde_json::Map::new();
            for f in v["value"].as_array().into_iter().flatten() {
                m.insert(
                    f["key"].as_str().unwrap_or("").to_string(),
                    plain(&f["value"]),
                );
            }
            J::Object(m)
        }
        Some("array") => J::Array(
            v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(plain)
                .collect(),
        ),
        _ => v["value"].clone(),
    }
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

// ----- certificates -----

pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new() -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server config with a certificate for `names`, offering h2 and http/1.1.
    pub fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
