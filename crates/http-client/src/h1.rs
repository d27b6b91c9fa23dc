//! The lean path of [`HttpClient::fetch`](crate::HttpClient::fetch): plain HTTP/1.1 GETs over keep-alive
//! connections that the calling task drives itself.
//!
//! reqwest spawns a task per connection and hands every request and body chunk across channels to it
//! through its pool; at thousands of scrapes a second that dispatch costs more than the I/O. Here a request
//! checks a connection out of a small per-origin idle list, polls hyper's connection future together with
//! the response (no spawned task, no cross-task wake-ups) and checks it back in once the body has been read.
//! Idle connections are not polled: a connection the server closed meanwhile is noticed when it is next
//! used, and the request is retried once on a fresh connection (it is an idempotent GET).
//!
//! Used only for `http` URLs, and for `https` when HTTP/2 is disabled (so ALPN can only choose HTTP/1.1),
//! without a proxy; everything else, and every redirect to follow, goes through reqwest.

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HOST, USER_AGENT};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a connection may sit idle before it is closed (reqwest's default pool idle timeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a lean GET got.
pub(crate) enum Outcome {
    /// The response; the body was read only for a success status.
    Done(crate::Fetched),
    /// A redirect that is to be followed: the caller repeats the request through reqwest.
    Redirect,
    /// The body is larger than the limit.
    TooLarge,
}

/// The idle connections per origin and how to make new ones.
pub(crate) struct Pool {
    tls: Option<tokio_rustls::TlsConnector>,
    user_agent: Option<HeaderValue>,
    connect_timeout: Option<Duration>,
    max_idle_per_host: usize,
    follow_redirects: bool,
    idle: Mutex<IdleMap>,
}

#[derive(Default)]
struct IdleMap {
    by_origin: HashMap<Origin, Vec<Idle>>,
    /// When expired connections were last swept out.
    swept: Option<Instant>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("https", &self.tls.is_some())
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: Box<str>,
    port: u16,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One HTTP/1.1 connection: the request handle and the connection future, polled by whoever uses it.
struct Conn {
    sender: http1::SendRequest<Empty<Bytes>>,
    driver: Driver,
}

/// The connection future, until it ends.
struct Driver {
    conn: Option<http1::Connection<Io, Empty<Bytes>>>,
    /// Why the connection ended, if it failed.
    error: Option<hyper::Error>,
}

impl Driver {
    /// Polls the connection; when it ends it is dropped, which fails whatever still waits on it.
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(c) = self.conn.as_mut() {
            if let Poll::Ready(r) = Pin::new(c).poll(cx) {
                self.error = r.err();
                self.conn = None;
            }
        }
    }

    /// Runs `fut` while driving the connection.
    async fn run<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            self.poll(cx);
            fut.as_mut().poll(cx)
        })
        .await
    }
}

/// Why a lean GET failed.
pub(crate) enum Failure {
    /// Described as reqwest describes its own (`error sending request for url (...)` and causes).
    Text(String),
    /// The connect timeout passed (reqwest reports it as a timeout, too).
    Timeout,
}

impl Pool {
    pub(crate) fn new(
        tls: Option<rustls::ClientConfig>,
        options: &crate::ClientOptions,
        follow_redirects: bool,
    ) -> Pool {
        Pool {
            tls: tls.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c))),
            user_agent: options
                .user_agent
                .as_deref()
                .and_then(|ua| HeaderValue::from_str(ua).ok()),
            connect_timeout: options.connect_timeout,
            max_idle_per_host: options.max_connections_per_host.unwrap_or(usize::MAX),
            follow_redirects,
            idle: Mutex::new(IdleMap::default()),
        }
    }

    /// Whether this pool serves `url`.
    pub(crate) fn serves(&self, url: &url::Url) -> bool {
        match url.scheme() {
            "http" => true,
            "https" => self.tls.is_some(),
            _ => false,
        }
    }

    /// GETs `url` with `authorization`; bodies above `limit` bytes are refused. Not bounded in time: the
    /// caller bounds it (dropping the future drops the connection).
    pub(crate) async fn get(
        &self,
        url: &url::Url,
        authorization: Option<HeaderValue>,
        limit: usize,
    ) -> Result<Outcome, Failure> {
        let Some(host) = url.host_str() else {
            return Err(Failure::Text(format!("builder error for url ({url})")));
        };
        let https = url.scheme() == "https";
        let origin = Origin {
            https,
            host: host.into(),
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
        };
        let request = self.request(url, &origin, authorization)?;
        let mut conn = self.checkout(&origin);
        let response = loop {
            let (mut c, reused) = match conn.take() {
                Some(c) => (c, true),
                None => (self.connect(&origin, url).await?, false),
            };
            // A closed keep-alive connection fails here or in the send; a reused one is retried once on a
            // fresh connection, as the request is idempotent and was not answered.
            let sent = match c.driver.run(c.sender.ready()).await {
                Ok(()) => c.driver.run(c.sender.send_request(request.clone())).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(r) => break (r, c),
                Err(_) if reused => continue,
                Err(e) => return Err(send_failure(url, &mut c.driver, e)),
            }
        };
        let (response, mut c) = response;
        let status = response.status();
        if status.is_redirection() && self.follow_redirects && is_followed(status) {
            return Ok(Outcome::Redirect);
        }
        let content_type = crate::content_type(response.headers());
        if !status.is_success() {
            // The body is not wanted; the connection goes with it.
            return Ok(Outcome::Done(crate::Fetched {
                status,
                content_type,
                body: Bytes::new(),
            }));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(mut body) = crate::LimitedBody::new(declared, limit) else {
            return Ok(Outcome::TooLarge);
        };
        let mut incoming = response.into_body();
        loop {
            let frame = c.driver.run(incoming.frame()).await;
            match frame {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !body.push(&data) {
                            return Ok(Outcome::TooLarge);
                        }
                    }
                }
                Some(Err(e)) => {
                    let cause = c.driver.error.take().unwrap_or(e);
                    // reqwest's `chunk()` reports a decode error around a body error.
                    return Err(Failure::Text(format!(
                        "error decoding response body: request or response body error: {}",
                        crate::describe_error(&cause)
                    )));
                }
            }
        }
        drop(incoming);
        self.checkin(origin, c);
        Ok(Outcome::Done(crate::Fetched {
            status,
            content_type,
            body: body.finish(),
        }))
    }

    fn request(
        &self,
        url: &url::Url,
        origin: &Origin,
        authorization: Option<HeaderValue>,
    ) -> Result<Request<Empty<Bytes>>, Failure> {
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let host = match url.port() {
            Some(p) => format!("{}:{p}", origin.host),
            None => origin.host.to_string(),
        };
        let mut b = Request::get(target)
            .header(HOST, host)
            .header(ACCEPT, HeaderValue::from_static("*/*"));
        if let Some(ua) = &self.user_agent {
            b = b.header(USER_AGENT, ua.clone());
        }
        if let Some(a) = authorization {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(Empty::new())
            .map_err(|e| Failure::Text(format!("builder error for url ({url}): {e}")))
    }

    /// The most recently used idle connection to `origin` that has not expired.
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.by_origin.get_mut(origin)?;
        let now = Instant::now();
        let found = loop {
            match list.pop() {
                None => break None,
                Some(i) if now.duration_since(i.since) >= IDLE_TIMEOUT => continue,
                Some(i) if i.conn.sender.is_closed() || i.conn.driver.conn.is_none() => continue,
                Some(i) => break Some(i.conn),
            }
        };
        if list.is_empty() {
            idle.by_origin.remove(origin);
        }
        found
    }

    fn checkin(&self, origin: Origin, conn: Conn) {
        if conn.sender.is_closed() || conn.driver.conn.is_none() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // Now and then, close what has been idle too long everywhere (origins no longer scraped).
        if idle
            .swept
            .is_none_or(|t| now.duration_since(t) >= IDLE_TIMEOUT)
        {
            idle.swept = Some(now);
            idle.by_origin.retain(|_, list| {
                list.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT);
                !list.is_empty()
            });
        }
        let list = idle.by_origin.entry(origin).or_default();
        if list.len() < self.max_idle_per_host {
            list.push(Idle { conn, since: now });
        }
    }

    async fn connect(&self, origin: &Origin, url: &url::Url) -> Result<Conn, Failure> {
        let connecting = async {
            let tcp = tcp_connect(origin).await?;
            // As reqwest does: requests are small and should not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let io = match (&self.tls, origin.https) {
                (Some(tls), true) => {
                    let name = server_name(&origin.host)?;
                    let stream = tls.connect(name, tcp).await?;
                    Io::Tls(Box::new(TokioIo::new(stream)))
                }
                _ => Io::Plain(TokioIo::new(tcp)),
            };
            Ok::<_, ConnectError>(io)
        };
        let io = match self.connect_timeout {
            Some(t) => match tokio::time::timeout(t, connecting).await {
                Ok(r) => r,
                Err(_) => return Err(Failure::Timeout),
            },
            None => connecting.await,
        }
        .map_err(|e| {
            Failure::Text(format!(
                "error sending request for url ({url}): client error (Connect): {e}"
            ))
        })?;
        let (sender, conn) = http1::handshake(io).await.map_err(|e| {
            Failure::Text(format!(
                "error sending request for url ({url}): client error (Connect): {}",
                crate::describe_error(&e)
            ))
        })?;
        Ok(Conn {
            sender,
            driver: Driver {
                conn: Some(conn),
                error: None,
            },
        })
    }
}

/// reqwest follows these (and only with a `Location`, which it checks itself).
fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn send_failure(url: &url::Url, driver: &mut Driver, e: hyper::Error) -> Failure {
    // The connection's own error says more than "connection closed" on the request.
    let cause = driver.error.take().unwrap_or(e);
    Failure::Text(format!(
        "error sending request for url ({url}): client error (SendRequest): {}",
        crate::describe_error(&cause)
    ))
}

enum ConnectError {
    Dns(io::Error),
    Tcp(io::Error),
    Tls(io::Error),
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Tls(e)
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The texts of hyper-util's connector, which reqwest reports.
        match self {
            ConnectError::Dns(e) => write!(f, "dns error: {e}"),
            ConnectError::Tcp(e) => write!(f, "tcp connect error: {e}"),
            ConnectError::Tls(e) => write!(f, "{}", crate::describe_error(e)),
        }
    }
}

/// `host` without the brackets `url` puts around IPv6 addresses.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, ConnectError> {
    let bare = bare_host(host);
    rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
        ConnectError::Tls(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid DNS name {bare:?}"),
        ))
    })
}

async fn tcp_connect(origin: &Origin) -> Result<TcpStream, ConnectError> {
    let bare = bare_host(&origin.host);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return TcpStream::connect((ip, origin.port))
            .await
            .map_err(ConnectError::Tcp);
    }
    let addrs: Vec<_> = tokio::net::lookup_host((bare, origin.port))
        .await
        .map_err(ConnectError::Dns)?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError::Tcp(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to")
    })))
}

/// A plain or TLS stream, so that one connection type serves both.
enum Io {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}
