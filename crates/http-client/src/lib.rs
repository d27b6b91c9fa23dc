//! The HTTP client settings that `pyroscope.scrape` and `pyroscope.write` endpoints both take, and the
//! client built from them.
//!
//! # Embedding the settings in a component's arguments
//!
//! `river::decode` does not support `#[serde(flatten)]`, so a component declares the nine fields itself,
//! with exactly these names, types and defaults, next to its own arguments:
//!
//! ```
//! use http_client::{Authorization, BasicAuth, OAuth2Config, ProxyUrl, TlsConfig};
//! use river::decode::{Block, Validate};
//! use river::value::Secret;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
//! #[serde(default)]
//! pub struct Arguments {
//!     pub url: String,
//!     // ---- HTTP client settings (http_client::HttpClientConfig) ----
//!     pub basic_auth: Option<Block<BasicAuth>>,
//!     pub authorization: Option<Block<Authorization>>,
//!     pub oauth2: Option<Block<OAuth2Config>>,
//!     pub bearer_token: Option<Secret>,
//!     pub bearer_token_file: Option<String>,
//!     pub proxy_url: Option<ProxyUrl>,
//!     pub tls_config: Option<Block<TlsConfig>>,
//!     pub follow_redirects: bool,
//!     pub enable_http2: bool,
//! }
//!
//! impl Default for Arguments {
//!     fn default() -> Self {
//!         Arguments {
//!             url: String::new(),
//!             basic_auth: None,
//!             authorization: None,
//!             oauth2: None,
//!             bearer_token: None,
//!             bearer_token_file: None,
//!             proxy_url: None,
//!             tls_config: None,
//!             follow_redirects: http_client::DEFAULT_FOLLOW_REDIRECTS,
//!             enable_http2: http_client::DEFAULT_ENABLE_HTTP2,
//!         }
//!     }
//! }
//!
//! impl Validate for Arguments {
//!     fn validate(&self) -> Result<(), String> {
//!         // Nested blocks were validated while decoding (errors on their headers); this reports the
//!         // conflict between authentication methods on the component's header.
//!         http_client::http_client_config!(self).validate().map_err(|e| e.to_string())
//!     }
//! }
//!
//! let src = r#"c "x" {
//!     url          = "https://example.com"
//!     bearer_token = "t"
//!     basic_auth { username = "u" }
//! }"#;
//! let (file, _) = river::parse(src);
//! let river::ast::Stmt::Block(block) = &file.top_level()[0] else { unreachable!() };
//! let scope = river::eval::Scope::with_stdlib();
//! let err = river::decode::decode_block_body_validated::<Arguments>(block, &file, &scope).unwrap_err();
//! assert_eq!(
//!     err.0[0].message,
//!     "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured"
//! );
//! ```
//!
//! Where errors point: nested blocks implement [`river::decode::Validate`], so `river::decode` reports e.g.
//! `at most one of ca_pem and ca_file must be configured` on the `tls_config` block's header; `proxy_url`
//! and `min_version` are checked while decoding the attribute, so their errors point at the attribute; the
//! authentication conflict is reported by the component's `Validate` on the component's header.
//! [`ConfigError::path`] names the offending block/attribute for callers that position errors themselves.
//!
//! # Building and using a client
//!
//! [`HttpClient::new`] validates the settings, reads the TLS files and builds a `reqwest` client (rustls
//! with the ring provider). For each request call [`HttpClient::request`] (or [`HttpClient::get`] /
//! [`HttpClient::post`]): it returns a [`reqwest::RequestBuilder`] with authentication applied. Credential
//! files (`password_file`, `credentials_file`, `bearer_token_file`, `client_secret_file`) are read at each
//! request, so rotations apply at once; TLS files (`ca_file`, `cert_file`, `key_file`) are checked every
//! [`ClientOptions::tls_reload_interval`] (5 s) and the client is rebuilt when their content changed.
//!
//! Response bodies are **not** decompressed: no `Accept-Encoding` is sent and bodies arrive as the server
//! sent them (a gzip-compressed pprof profile stays gzip). Callers that want compression send the header and
//! decode themselves.
//!
//! For GETs whose body is read whole (scrapes), [`HttpClient::fetch`] does the request, the status and
//! size checks and the body in one call, with a bound in time. Plain HTTP/1.1 fetches (`http` URLs, or
//! `https` with `enable_http2 = false`, without a proxy) take a lean path: keep-alive connections kept per
//! origin and driven by the fetching task itself, without reqwest's pool and per-connection tasks, at
//! about half the CPU per request; a connection the server closed while idle is replaced, and the request
//! retried once. Everything else goes through reqwest, with the same headers and the same error texts
//! ([`ClientOptions::lean_http1`] turns the lean path off). The lean path follows redirects itself while
//! it serves their targets (10 at most, as Go); from the first `Location` it does not serve, reqwest
//! carries on with the `Authorization` and `Referer` its own redirect would send, so no hop is asked twice.
//!
//! `tls_config.server_name` is sent as the TLS ServerName (SNI), as Go's `tls.Config.ServerName` is, only
//! by the lean path, which therefore also serves `https` fetches without a proxy when it is set (over
//! HTTP/1.1, even with `enable_http2`). reqwest has no way to send another name than the URL's host:
//! through it (a proxy, [`HttpClient::request`]) the name is only the one the certificate is verified
//! against.
//!
//! Errors of `send()` are [`reqwest::Error`]s; [`describe_error`] prints one with its causes (e.g.
//! `... invalid peer certificate: UnknownIssuer`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
pub mod config;
mod h1;
mod tls;
mod transport;

/// Redirects followed at most, as Go's http.Client.
pub(crate) const MAX_REDIRECTS: usize = 10;

pub use config::{
    default_true, Authorization, BasicAuth, ConfigError, HttpClientConfig, OAuth2Config, ProxyUrl,
    TlsConfig, TlsVersion, DEFAULT_AUTHORIZATION_TYPE, DEFAULT_ENABLE_HTTP2,
    DEFAULT_FOLLOW_REDIRECTS,
};
/// The reqwest version the client is built with, for callers' request and response types.
pub use reqwest;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a client could not be built or a request could not be prepared. Never contains secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configured file could not be read.
    #[error("unable to read {what} {path}: {source}")]
    ReadFile {
        /// What the file holds, e.g. `bearer token file`.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS material is unusable (bad PEM, key not matching, ...).
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("unable to build the HTTP client: {0}")]
    Build(String),
    /// Credentials cannot be sent.
    #[error("{0}")]
    Auth(String),
    /// No OAuth2 token could be obtained.
    #[error("oauth2: {0}")]
    OAuth2(String),
}

/// Settings of the client that are not River arguments.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    user_agent: Option<String>,
    connect_timeout: Option<Duration>,
    tls_reload_interval: Duration,
    token_timeout: Duration,
    max_connections_per_host: Option<usize>,
    lean_http1: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            user_agent: None,
            connect_timeout: None,
            tls_reload_interval: Duration::from_secs(5),
            token_timeout: Duration::from_secs(30),
            max_connections_per_host: None,
            lean_http1: true,
        }
    }
}

impl ClientOptions {
    /// The `User-Agent` of every request (also of OAuth2 token requests).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// A bound on establishing connections (the request's own timeout bounds everything).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// The bound on one OAuth2 token request (default 30 s), so that a hanging token endpoint cannot hold
    /// [`HttpClient::request`] forever.
    pub fn token_timeout(mut self, t: Duration) -> Self {
        self.token_timeout = t;
        self
    }

    /// Bounds the requests in flight to one origin (scheme, host, port) to `n` — callers take a slot with
    /// [`HttpClient::host_slot`] — and the idle keep-alive connections kept per origin to `n` as well, so
    /// that many requests to one host reuse a bounded set of sockets instead of opening one each. Unset (the
    /// default), neither is bounded.
    pub fn max_connections_per_host(mut self, n: usize) -> Self {
        self.max_connections_per_host = Some(n.max(1));
        self
    }

    /// Whether [`HttpClient::fetch`] may take its lean HTTP/1.1 path (default: yes). Off, every fetch goes
    /// through reqwest, which behaves the same at a higher CPU cost per request.
    pub fn lean_http1(mut self, enabled: bool) -> Self {
        self.lean_http1 = enabled;
        self
    }

    /// How often TLS files are checked for changes (default 5 s).
    pub fn tls_reload_interval(mut self, t: Duration) -> Self {
        self.tls_reload_interval = t;
        self
    }
}

/// An HTTP client configured by an [`HttpClientConfig`]. Cheap to clone (shared state).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: transport::Transport,
    auth: auth::Auth,
    hosts: Option<HostSlots>,
}

/// One semaphore per origin, created on first use and forgotten when no request holds it.
struct HostSlots {
    per_host: usize,
    map: std::sync::Mutex<HostMap>,
}

struct HostMap {
    slots: std::collections::HashMap<String, std::sync::Weak<tokio::sync::Semaphore>>,
    /// The map's size after the last sweep of dead entries; the next sweep comes when it doubled.
    swept_at: usize,
}

/// A slot of [`HttpClient::host_slot`]: hold it until the response (body included) has been read.
#[derive(Debug)]
pub struct HostSlot {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The auth state's Debug shows no secret (Secret prints "(secret)"); paths are not secret.
        f.debug_struct("HttpClient")
            .field("transport", &self.inner.transport)
            .field("auth", &self.inner.auth)
            .finish()
    }
}

impl HttpClient {
    /// Validates `config`, reads its TLS files and builds the client, with default [`ClientOptions`].
    ///
    /// Synchronous (files are small and read once), so components can build their client in `build`.
    pub fn new(config: &HttpClientConfig) -> Result<HttpClient, Error> {
        HttpClient::with_options(config, ClientOptions::default())
    }

    /// [`HttpClient::new`] with options.
    pub fn with_options(
        config: &HttpClientConfig,
        options: ClientOptions,
    ) -> Result<HttpClient, Error> {
        config.validate()?;
        let settings = transport::ConnectionSettings {
            tls: config.tls_config.as_deref().cloned().unwrap_or_default(),
            proxy: config.proxy().cloned(),
            follow_redirects: config.follow_redirects,
            enable_http2: config.enable_http2,
        };
        let transport = transport::Transport::new(settings, options.clone())?;
        let auth = auth::Auth::new(config, &options)?;
        let hosts = options.max_connections_per_host.map(|per_host| HostSlots {
            per_host,
            map: std::sync::Mutex::new(HostMap {
                slots: std::collections::HashMap::new(),
                swept_at: 0,
            }),
        });
        Ok(HttpClient {
            inner: Arc::new(Inner {
                transport,
                auth,
                hosts,
            }),
        })
    }

    /// Waits for a free slot of `url`'s origin when [`ClientOptions::max_connections_per_host`] is set
    /// (at once otherwise). Waiters are served in order.
    pub async fn host_slot(&self, url: &reqwest::Url) -> HostSlot {
        let Some(hosts) = &self.inner.hosts else {
            return HostSlot { _permit: None };
        };
        // scheme://host:port, built without `Url::origin`'s copies (this runs at every scrape).
        let (scheme, host) = (url.scheme(), url.host_str().unwrap_or(""));
        let mut key = String::with_capacity(scheme.len() + host.len() + 9);
        key.push_str(scheme);
        key.push_str("://");
        key.push_str(host);
        if let Some(port) = url.port_or_known_default() {
            use fmt::Write;
            let _ = write!(key, ":{port}");
        }
        let semaphore = {
            let mut map = hosts.map.lock().unwrap_or_else(|e| e.into_inner());
            let existing = map.slots.get(&key).and_then(std::sync::Weak::upgrade);
            match existing {
                Some(s) => s,
                None => {
                    let s = Arc::new(tokio::sync::Semaphore::new(hosts.per_host));
                    map.slots.insert(key, Arc::downgrade(&s));
                    if map.slots.len() > 2 * map.swept_at.max(512) {
                        map.slots.retain(|_, w| w.strong_count() > 0);
                        map.swept_at = map.slots.len();
                    }
                    s
                }
            }
        };
        // The semaphore is never closed, so acquiring only fails if it were; then go ahead unbounded.
        HostSlot {
            _permit: semaphore.acquire_owned().await.ok(),
        }
    }

    /// Starts a request with authentication applied: credential files are read now, an OAuth2 token is
    /// fetched if the cached one is missing or about to expire. Add headers, body and timeout, then `send()`.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let client = self.inner.transport.client().await?;
        self.inner.auth.apply(client.request(method, url)).await
    }

    /// GETs `url` within `timeout` and reads the body of a success (2xx) response, refusing bodies larger
    /// than `limit` bytes; the body of any other response is not read.
    ///
    /// Plain HTTP/1.1 requests (`http`, or `https` with `enable_http2 = false`; no proxy) take a lean path
    /// that reuses keep-alive connections without reqwest's pool and connection tasks; everything else, and
    /// the hops after a redirect, go through reqwest. Both behave the same: same request headers,
    /// same errors.
    pub async fn fetch(
        &self,
        url: &reqwest::Url,
        timeout: std::time::Duration,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::time::timeout_at(deadline, self.fetch_by(url, deadline, limit))
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    async fn fetch_by(
        &self,
        url: &reqwest::Url,
        deadline: tokio::time::Instant,
        limit: usize,
    ) -> Result<Fetched, FetchError> {
        let clients = self
            .inner
            .transport
            .clients()
            .await
            .map_err(FetchError::Prepare)?;
        let authorization = self
            .inner
            .auth
            .header()
            .await
            .map_err(FetchError::Prepare)?;
        // Where reqwest starts, and the headers the lean path's redirect leaves it.
        let mut from = std::borrow::Cow::Borrowed(url);
        let mut referer = None;
        let mut authorization = authorization;
        // The lean path follows redirects while it serves their targets; reqwest carries on from the first
        // one it does not, with the headers its own redirect would send there.
        let mut hops = 0;
        while let Some(lean) = clients.lean.as_ref().filter(|l| l.serves(&from)) {
            match lean
                .get(&from, authorization.clone(), referer.as_ref(), limit)
                .await
            {
                Ok(h1::Outcome::Done(f)) => return Ok(f),
                Ok(h1::Outcome::TooLarge) => return Err(FetchError::TooLarge),
                Ok(h1::Outcome::Redirect(_)) if hops == MAX_REDIRECTS => {
                    // reqwest's limit and words.
                    return Err(FetchError::Transport(format!(
                        "error following redirect for url ({from}): too many redirects"
                    )));
                }
                Ok(h1::Outcome::Redirect(next)) => {
                    referer = redirect_referer(&from, &next);
                    if !same_origin(&from, &next) {
                        authorization = None;
                    }
                    from = std::borrow::Cow::Owned(next);
                    hops += 1;
                }
                Err(h1::Failure::Text(text)) => return Err(FetchError::Transport(text)),
                Err(h1::Failure::Timeout) => return Err(FetchError::Timeout),
            }
        }
        let mut request = clients
            .reqwest
            .get(from.into_owned())
            .timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
        if let Some(a) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(r) = referer {
            request = request.header(reqwest::header::REFERER, r);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Transport(describe_error(&e))
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let content_type = content_type(response.headers());
        if !status.is_success() {
            return Ok(Fetched {
                status,
                content_type,
                body: bytes::Bytes::new(),
            });
        }
        let mut body =
            LimitedBody::new(response.content_length(), limit).ok_or(FetchError::TooLarge)?;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if !body.push(&chunk) {
                return Err(FetchError::TooLarge);
            }
        }
        Ok(Fetched {
            status,
            content_type,
            body: body.finish(),
        })
    }

    /// [`request`](Self::request) with `GET`.
    pub async fn get(&self, url: impl reqwest::IntoUrl) -> Result<reqwest::RequestBuilder, Error> {
        self.request(reqwest::Method::GET, url).await
    }

    /// [`request`](Self::request) with `POST`.
    pub async fn post(&self, url: impl reqwest::IntoUrl) -> Result<reqwest::RequestBuilder, Error> {
        self.request(reqwest::Method::POST, url).await
    }
}

/// Whether a redirect from `a` to `b` keeps credentials: reqwest (like Go) drops `Authorization` when the
/// scheme, host or port changes.
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The `Referer` reqwest sends when it follows a redirect from `previous` to `next`: the previous URL
/// without credentials or fragment, and none from https to http.
fn redirect_referer(
    previous: &reqwest::Url,
    next: &reqwest::Url,
) -> Option<reqwest::header::HeaderValue> {
    if previous.scheme() == "https" && next.scheme() == "http" {
        return None;
    }
    let mut referer = previous.clone();
    let _ = referer.set_username("");
    let _ = referer.set_password(None);
    referer.set_fragment(None);
    reqwest::header::HeaderValue::from_str(referer.as_str()).ok()
}

/// A response's `Content-Type`, when it is valid text.
fn content_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A response body read whole by [`HttpClient::fetch`], on either path, refusing more than a limit.
struct LimitedBody {
    buf: bytes::BytesMut,
    limit: usize,
}

impl LimitedBody {
    /// Room for a body of `declared` bytes (16 KiB when unknown); `None` when that is over `limit`.
    fn new(declared: Option<u64>, limit: usize) -> Option<LimitedBody> {
        if declared.is_some_and(|n| n > limit as u64) {
            return None;
        }
        let capacity = declared.map_or(16 << 10, |n| n as usize).min(limit);
        Some(LimitedBody {
            buf: bytes::BytesMut::with_capacity(capacity),
            limit,
        })
    }

    /// Appends `chunk`; false (and nothing appended) when the body would pass the limit.
    fn push(&mut self, chunk: &[u8]) -> bool {
        if self.buf.len() + chunk.len() > self.limit {
            return false;
        }
        self.buf.extend_from_slice(chunk);
        true
    }

    fn finish(self) -> bytes::Bytes {
        self.buf.freeze()
    }
}

/// What [`HttpClient::fetch`] got.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The final response's status (after redirects that were followed).
    pub status: reqwest::StatusCode,
    /// Its `Content-Type`, when it is valid text.
    pub content_type: Option<String>,
    /// The body of a success response; empty for any other status.
    pub body: bytes::Bytes,
}

/// Why [`HttpClient::fetch`] failed. Never contains secrets.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request could not be prepared (credentials, TLS files).
    #[error(transparent)]
    Prepare(Error),
    /// The timeout passed first.
    #[error("timed out")]
    Timeout,
    /// The body is larger than the limit.
    #[error("response body is larger than the limit")]
    TooLarge,
    /// Connecting, sending or receiving failed: reqwest's description with its causes, e.g.
    /// `error sending request for url (http://...): client error (Connect): tcp connect error: ...`.
    #[error("{0}")]
    Transport(String),
}

/// An error with its chain of causes, `: `-separated, skipping causes already included in the text.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
