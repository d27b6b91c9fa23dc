//! Real HTTP(S) servers on 127.0.0.1:0 and certificates generated with rcgen.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server TLS settings.
pub struct ServerTls {
    pub leaf: Leaf,
    /// Only TLS 1.2 when set.
    pub tls12_only: bool,
    /// Require a client certificate issued by this CA.
    pub client_ca: Option<CertificateDer<'static>>,
}

impl ServerTls {
    pub fn new(leaf: Leaf) -> Self {
        ServerTls {
            leaf,
            tls12_only: false,
            client_ca: None,
        }
    }

    fn config(self) -> rustls::ServerConfig {
        let versions: &[&'static rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let b = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap();
        let b = match self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca).unwrap();
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                b.with_client_cert_verifier(v)
            }
            None => b.with_no_client_auth(),
        };
        let mut c = b
            .with_single_cert(vec![self.leaf.cert_der], self.leaf.key_der)
            .unwrap();
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        c
    }
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// The TLS ServerName the client sent (none over plain HTTP, or for an IP address).
    pub sni: Option<String>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// A running server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A plain HTTP server.
    pub async fn http(
        handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Server {
        Server::start(None, Arc::new(handler)).await
    }

    /// An HTTPS server.
    pub async fn https(
        tls: ServerTls,
        handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Server {
        Server::start(Some(tls.config()), Arc::new(handler)).await
    }

    async fn start(tls: Option<rustls::ServerConfig>, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let seen2 = seen.clone();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                accepted2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let handler = handler.clone();
                let seen = seen2.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let (tls, plain) = match &acceptor {
                        // Failed handshakes are what some tests want; nothing to do.
                        Some(a) => match a.accept(tcp).await {
                            Ok(tls) => (Some(tls), None),
                            Err(_) => return,
                        },
                        None => (None, Some(tcp)),
                    };
                    let sni = tls
                        .as_ref()
                        .and_then(|t| t.get_ref().1.server_name().map(str::to_owned));
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let seen = seen.clone();
                        let sni = sni.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let s = Seen {
                                method: parts.method,
                                uri: parts.uri,
                                version: parts.version,
                                headers: parts.headers,
                                body,
                                sni,
                            };
                            let resp = handler(&s);
                            seen.lock().unwrap().push(s);
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match (tls, plain) {
                        (Some(tls), _) => {
                            builder.serve_connection(TokioIo::new(tls), service).await
                        }
                        (None, Some(tcp)) => {
                            builder.serve_connection(TokioIo::new(tcp), service).await
                        }
                        (None, None) => return,
                    };
                });
            }
        });
        Server {
            addr,
            seen,
            accepted,
            task,
        }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A response with `status` and `body`.
pub fn respond(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Decodes HTTP client settings written in River, as a component would.
pub fn config(body: &str) -> http_client::HttpClientConfig {
    let src = format!("c {{\n{body}\n}}\n");
    let (file, diags) = river::parse(&src);
    assert!(diags.is_empty(), "{diags:?}");
    let Some(river::ast::Stmt::Block(block)) = file.top_level().first() else {
        panic!("no block");
    };
    river::decode::decode_block_body_validated::<http_client::HttpClientConfig>(
        block,
        &file,
        &river::eval::Scope::with_stdlib(),
    )
    .unwrap_or_else(|d| {
        panic!(
            "{:?}",
            d.iter().map(|d| d.message.clone()).collect::<Vec<_>>()
        )
    })
}
