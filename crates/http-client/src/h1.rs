//! The lean path of [`HttpClient::fetch`](crate::HttpClient::fetch): plain HTTP/1.1 GETs over keep-alive
//! connections that the calling task drives itself.
//!
//! reqwest spawns a task per connection and hands every request and body chunk across channels to it
//! through its pool; at thousands of scrapes a second that dispatch costs more than the I/O. Here a request
//! checks a connection out of a small per-origin idle list, writes the request in one go, reads the
//! response into a buffer the connection keeps, and checks the connection back in once the body has been
//! read. The response is read as hyper reads it (its head is parsed with `httparse`, hyper's parser, with
//! hyper's limits; Content-Length, chunked and close-delimited bodies, the same keep-alive rules), and
//! failures are described with hyper's texts, so that both paths report the same errors.
//! Idle connections are not polled: a connection the server closed meanwhile is noticed when it is next
//! used, and the request is retried once on a fresh connection (it is an idempotent GET).
//!
//! Used only for `http` URLs, and for `https` when HTTP/2 is disabled (so ALPN can only choose HTTP/1.1),
//! without a proxy; everything else goes through reqwest. A redirect to follow is answered here and reqwest
//! carries on from its `Location`, so each hop is asked once.

use bytes::BufMut;
use http::header::HeaderValue;
use http::StatusCode;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection may sit idle before it is closed (reqwest's default pool idle timeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// hyper's limits on a response head: header lines, and bytes buffered without a complete head.
const MAX_HEADERS: usize = 100;
const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's limits on chunk extensions and trailers.
const CHUNK_EXTENSIONS_LIMIT: u64 = 16 << 10;
const TRAILERS_LIMIT: usize = 16 << 10;
/// How much room a read gets at least (hyper's initial read buffer).
const READ_SIZE: usize = 8192;

thread_local! {
    /// Read buffers of connections gone idle, for the next request on this thread: an idle connection
    /// holds none (there may be one per target), and a request does not allocate one each time.
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many spare read buffers a thread keeps, and the largest kept.
const SPARE_BUFFERS_MAX: usize = 16;
const SPARE_BUFFER_MAX_BYTES: usize = 64 << 10;

/// What a lean GET got.
pub(crate) enum Outcome {
    /// The response; the body was read only for a success status.
    Done(crate::Fetched),
    /// A redirect to follow, to this URL (the `Location`, resolved against the request's URL): the caller
    /// carries on from there (here again if this pool serves it, else through reqwest).
    Redirect(url::Url),
    /// The body is larger than the limit.
    TooLarge,
}

/// The idle connections per origin and how to make new ones.
pub(crate) struct Pool {
    tls: Option<tokio_rustls::TlsConnector>,
    /// The name sent in the TLS ServerName extension instead of the URL's host (`tls_config.server_name`).
    sni: Option<rustls::pki_types::ServerName<'static>>,
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

/// One HTTP/1.1 connection and what has been read from it but not consumed yet (`buf[pos..]`).
struct Conn {
    io: Io,
    buf: Vec<u8>,
    pos: usize,
}

/// A plain or TLS stream.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(bytes).await,
            Io::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read_into<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read_buf(buf).await,
            Io::Tls(s) => s.read_buf(buf).await,
        }
    }
}

impl Conn {
    fn new(io: Io) -> Conn {
        Conn {
            io,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Gives the read buffer back to this thread's spares.
    fn release_buffer(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        self.pos = 0;
        if buf.capacity() <= SPARE_BUFFER_MAX_BYTES {
            buf.clear();
            SPARE_BUFFERS.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE_BUFFERS_MAX {
                    s.push(buf);
                }
            });
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more after what is unread, at most `max` bytes; 0 at the end of the stream.
    async fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
            self.buf.reserve(READ_SIZE);
        }
        let mut room = (&mut self.buf).limit(max);
        self.io.read_into(&mut room).await
    }

    /// The next byte of the body, as hyper's chunked decoder reads it.
    async fn byte(&mut self) -> Result<u8, io::Error> {
        if self.pos == self.buf.len() && self.fill(READ_SIZE).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected EOF during chunk size line",
            ));
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }
}

/// Why a lean GET failed.
pub(crate) enum Failure {
    /// Described as reqwest describes its own (`error sending request for url (...)` and causes).
    Text(String),
    /// The connect timeout passed (reqwest reports it as a timeout, too).
    Timeout,
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// What the request needs of a response head.
struct Head {
    status: StatusCode,
    content_type: Option<String>,
    /// The first Content-Length, as the reqwest path reads it for the body's first allocation.
    declared: Option<u64>,
    framing: Framing,
    keep_alive: bool,
    /// The first `Location`, when it is UTF-8 text (only kept for redirects).
    location: Option<String>,
}

/// Why no response head was read, in hyper's words (`hyper::Error`'s texts and causes).
#[derive(Debug)]
enum HeadError {
    /// The request could not be written.
    Write(io::Error),
    /// Reading failed.
    Read(io::Error),
    /// The connection ended before a complete head.
    Incomplete,
    /// The head is not valid HTTP/1.
    Parse(&'static str),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Write(e) => {
                write!(
                    f,
                    "error writing a body to connection: {}",
                    crate::describe_error(e)
                )
            }
            HeadError::Read(e) => write!(f, "connection error: {}", crate::describe_error(e)),
            HeadError::Incomplete => f.write_str("connection closed before message completed"),
            HeadError::Parse(text) => f.write_str(text),
        }
    }
}

/// Why reading a body failed; `Io` in hyper's words.
enum BodyError {
    Io(io::Error),
    TooLarge,
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// hyper's error for a body that ended before its length.
#[derive(Debug)]
struct IncompleteBody;

impl std::fmt::Display for IncompleteBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("end of file before message length reached")
    }
}

impl std::error::Error for IncompleteBody {}

fn incomplete_body() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, IncompleteBody)
}

fn invalid(kind: io::ErrorKind, text: &'static str) -> io::Error {
    io::Error::new(kind, text)
}

impl Pool {
    pub(crate) fn new(
        tls: Option<rustls::ClientConfig>,
        sni: Option<rustls::pki_types::ServerName<'static>>,
        options: &crate::ClientOptions,
        follow_redirects: bool,
    ) -> Pool {
        Pool {
            tls: tls.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c))),
            sni,
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

    /// GETs `url` with `authorization` (and `referer`, on a redirect); bodies above `limit` bytes are
    /// refused. Not bounded in time: the caller bounds it (dropping the future drops the connection).
    pub(crate) async fn get(
        &self,
        url: &url::Url,
        authorization: Option<HeaderValue>,
        referer: Option<&HeaderValue>,
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
        let request = self.request(url, &origin, authorization.as_ref(), referer);
        let mut idle = self.checkout(&origin);
        let (head, mut c) = loop {
            let (mut c, reused) = match idle.take() {
                Some(c) => (c, true),
                None => (self.connect(&origin, url).await?, false),
            };
            // A closed keep-alive connection fails here; a reused one is retried once on a fresh
            // connection, as the request is idempotent and was not answered.
            match exchange(&mut c, &request).await {
                Ok(head) => break (head, c),
                Err(_) if reused => continue,
                Err(e) => {
                    return Err(Failure::Text(format!(
                        "error sending request for url ({url}): client error (SendRequest): {e}"
                    )))
                }
            }
        };
        let status = head.status;
        if status.is_redirection() && self.follow_redirects && is_followed(status) {
            // As reqwest: a redirect without a usable `Location` is the answer itself.
            if let Some(next) = head.location.as_deref().and_then(|l| url.join(l).ok()) {
                return Ok(Outcome::Redirect(next));
            }
        }
        if !status.is_success() {
            // The body is not wanted; the connection goes with it.
            return Ok(Outcome::Done(crate::Fetched {
                status,
                content_type: head.content_type,
                body: bytes::Bytes::new(),
            }));
        }
        let Some(mut body) = crate::LimitedBody::new(head.declared, limit) else {
            return Ok(Outcome::TooLarge);
        };
        let read = match head.framing {
            Framing::Length(n) => read_length(&mut c, n, &mut body).await,
            Framing::Chunked => read_chunked(&mut c, &mut body).await,
            Framing::Close => read_to_close(&mut c, &mut body).await,
        };
        match read {
            Ok(()) => {}
            Err(BodyError::TooLarge) => return Ok(Outcome::TooLarge),
            Err(BodyError::Io(e)) => {
                // reqwest's `chunk()` reports a decode error around hyper's body error.
                return Err(Failure::Text(format!(
                    "error decoding response body: request or response body error: error reading a body from connection: {}",
                    crate::describe_error(&e)
                )));
            }
        }
        // Reused only when the response ended where its framing says and nothing else was sent.
        if head.keep_alive && head.framing != Framing::Close && c.pos == c.buf.len() {
            c.release_buffer();
            self.checkin(origin, c);
        }
        Ok(Outcome::Done(crate::Fetched {
            status,
            content_type: head.content_type,
            body: body.finish(),
        }))
    }

    /// The request as hyper writes it: these headers, lowercase, in this order.
    fn request(
        &self,
        url: &url::Url,
        origin: &Origin,
        authorization: Option<&HeaderValue>,
        referer: Option<&HeaderValue>,
    ) -> Vec<u8> {
        let path = url.path();
        let query = url.query();
        let mut r = Vec::with_capacity(
            96 + path.len()
                + query.map_or(0, str::len)
                + origin.host.len()
                + self.user_agent.as_ref().map_or(0, HeaderValue::len)
                + authorization.map_or(0, HeaderValue::len)
                + referer.map_or(0, HeaderValue::len),
        );
        r.extend_from_slice(b"GET ");
        r.extend_from_slice(path.as_bytes());
        if let Some(q) = query {
            r.push(b'?');
            r.extend_from_slice(q.as_bytes());
        }
        r.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        r.extend_from_slice(origin.host.as_bytes());
        if let Some(p) = url.port() {
            r.push(b':');
            r.extend_from_slice(p.to_string().as_bytes());
        }
        r.extend_from_slice(b"\r\naccept: */*\r\n");
        if let Some(ua) = &self.user_agent {
            r.extend_from_slice(b"user-agent: ");
            r.extend_from_slice(ua.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        if let Some(a) = authorization {
            r.extend_from_slice(b"authorization: ");
            r.extend_from_slice(a.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        if let Some(referer) = referer {
            r.extend_from_slice(b"referer: ");
            r.extend_from_slice(referer.as_bytes());
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"\r\n");
        r
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
                Some(i) => break Some(i.conn),
            }
        };
        if list.is_empty() {
            idle.by_origin.remove(origin);
        }
        found
    }

    fn checkin(&self, origin: Origin, conn: Conn) {
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
                    let name = match &self.sni {
                        Some(n) => n.clone(),
                        None => server_name(&origin.host)?,
                    };
                    let stream = tls.connect(name, tcp).await?;
                    Io::Tls(Box::new(stream))
                }
                _ => Io::Plain(tcp),
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
        Ok(Conn::new(io))
    }
}

/// Sends the request and reads the response head (skipping informational responses, as hyper does).
async fn exchange(c: &mut Conn, request: &[u8]) -> Result<Head, HeadError> {
    // Whatever is left from before is not an answer to this request.
    c.buf.clear();
    c.pos = 0;
    if c.buf.capacity() == 0 {
        if let Some(spare) = SPARE_BUFFERS.with(|s| s.borrow_mut().pop()) {
            c.buf = spare;
        }
    }
    c.io.send(request).await.map_err(HeadError::Write)?;
    loop {
        if c.pos < c.buf.len() {
            match parse_head(c.unread())? {
                Parsed::Head(len, head) => {
                    c.pos += len;
                    return Ok(head);
                }
                Parsed::Informational(len) => {
                    c.pos += len;
                    continue;
                }
                Parsed::Partial => {}
            }
        }
        let have = c.unread().len();
        if have >= MAX_HEAD_BYTES {
            return Err(HeadError::Parse("message head is too large"));
        }
        if c.fill(MAX_HEAD_BYTES - have)
            .await
            .map_err(HeadError::Read)?
            == 0
        {
            return Err(HeadError::Incomplete);
        }
    }
}

enum Parsed {
    /// A final response head of this many bytes.
    Head(usize, Head),
    /// A 1xx response (not 101) of this many bytes, to skip.
    Informational(usize),
    Partial,
}

/// Parses a response head as hyper's client does (`httparse`, its header limit, its body rules).
fn parse_head(data: &[u8]) -> Result<Parsed, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(HeadError::Parse(parse_error_text(e))),
    };
    let invalid_status = HeadError::Parse("invalid HTTP status-code parsed");
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(invalid_status)?;
    let http11 = res.version == Some(1);
    let mut keep_alive = http11;
    let mut saw_close = false;
    let mut content_type = None;
    let mut location = None;
    let mut declared = None;
    let mut has_length = false;
    // All Content-Length values must agree (hyper's `content_length_parse_all`).
    let mut length: Result<Option<u64>, ()> = Ok(None);
    let mut last_te: Option<&[u8]> = None;
    for h in res.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            // Once one line asks to close, a later keep-alive does not undo it.
            if saw_close || has_token(h.value, "close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(h.value, "keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_none() {
                content_type = Some(visible_text(h.value).map(str::to_string));
            }
        } else if name.eq_ignore_ascii_case("location") {
            if location.is_none() && (300..400).contains(&res.code.unwrap_or(0)) {
                location = Some(std::str::from_utf8(h.value).map(str::to_string).ok());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if !has_length {
                declared = visible_text(h.value).and_then(|v| v.parse::<u64>().ok());
            }
            has_length = true;
            length = length.and_then(|known| merge_lengths(known, h.value));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            last_te = Some(h.value);
        }
    }
    let code = status.as_u16();
    let framing = match code {
        101 | 204 | 304 => Framing::Length(0),
        100..=199 => return Ok(Parsed::Informational(len)),
        _ => match last_te {
            Some(_) if !http11 => {
                return Err(HeadError::Parse("unexpected transfer-encoding parsed"));
            }
            Some(te) if is_chunked(te) => Framing::Chunked,
            Some(_) => Framing::Close,
            None => match length {
                Ok(Some(n)) if n <= u64::MAX - 2 => Framing::Length(n),
                Ok(Some(_)) => return Err(HeadError::Parse("message head is too large")),
                Ok(None) => Framing::Close,
                Err(()) => return Err(HeadError::Parse("invalid content-length parsed")),
            },
        },
    };
    Ok(Parsed::Head(
        len,
        Head {
            status,
            content_type: content_type.flatten(),
            declared,
            framing,
            // A switch of protocols is never reused.
            keep_alive: keep_alive && code != 101,
            location: location.flatten(),
        },
    ))
}

/// hyper's texts for `httparse` errors.
fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName
        | httparse::Error::HeaderValue
        | httparse::Error::NewLine
        | httparse::Error::Token => "invalid HTTP header parsed",
        httparse::Error::Status => "invalid HTTP status-code parsed",
        httparse::Error::TooManyHeaders => "message head is too large",
        httparse::Error::Version => "invalid HTTP version parsed",
    }
}

/// The value as text when every byte is visible ASCII or a tab (`HeaderValue::to_str`).
fn visible_text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Whether a comma-separated header value has `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    visible_text(value).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether the last transfer coding is `chunked`.
fn is_chunked(value: &[u8]) -> bool {
    visible_text(value)
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
}

/// Adds one Content-Length line's values to what is known; `Err` when one is not a number or differs.
fn merge_lengths(known: Option<u64>, value: &[u8]) -> Result<Option<u64>, ()> {
    let text = visible_text(value).ok_or(())?;
    let mut known = known;
    for v in text.split(',') {
        let v = v.trim().as_bytes();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n = v.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        let n = n.ok_or(())?;
        match known {
            None => known = Some(n),
            Some(k) if k != n => return Err(()),
            Some(_) => {}
        }
    }
    Ok(known)
}

/// Moves up to `n` of the buffered bytes into `body`; returns how many it moved.
fn consume(c: &mut Conn, n: u64, body: &mut crate::LimitedBody) -> Result<u64, BodyError> {
    let have = c.unread();
    let take = have.len().min(usize::try_from(n).unwrap_or(usize::MAX));
    if !body.push(&have[..take]) {
        return Err(BodyError::TooLarge);
    }
    c.pos += take;
    Ok(take as u64)
}

/// A body of `n` bytes.
async fn read_length(
    c: &mut Conn,
    mut n: u64,
    body: &mut crate::LimitedBody,
) -> Result<(), BodyError> {
    loop {
        n -= consume(c, n, body)?;
        if n == 0 {
            return Ok(());
        }
        let rest = usize::try_from(n).unwrap_or(usize::MAX);
        let read = if rest >= READ_SIZE && body.buf.len().saturating_add(rest) <= body.limit {
            // A large rest goes straight into the body, which has room for what was declared.
            c.io.read_into(&mut (&mut body.buf).limit(rest)).await?
        } else {
            let got = c.fill(rest.max(READ_SIZE)).await?;
            if got > 0 {
                continue;
            }
            got
        };
        if read == 0 {
            return Err(incomplete_body().into());
        }
        n -= read as u64;
        if n == 0 {
            return Ok(());
        }
    }
}

/// A body that ends when the server closes the connection.
async fn read_to_close(c: &mut Conn, body: &mut crate::LimitedBody) -> Result<(), BodyError> {
    loop {
        if !body.push(c.unread()) {
            return Err(BodyError::TooLarge);
        }
        c.pos = c.buf.len();
        if c.fill(usize::MAX).await? == 0 {
            return Ok(());
        }
    }
}

/// A chunked body, read as hyper's decoder reads it (same errors, same limits; trailers are checked and
/// dropped, as reqwest drops them).
async fn read_chunked(c: &mut Conn, body: &mut crate::LimitedBody) -> Result<(), BodyError> {
    use io::ErrorKind::{InvalidData, InvalidInput};
    // Counted over the whole body, as hyper counts them.
    let mut extensions = 0u64;
    loop {
        // The size line: hex digits, optional whitespace, optional extension, CRLF.
        let mut size = 0u64;
        let mut b = c.byte().await?;
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b + 10 - b'a'),
            b'A'..=b'F' => Some(b + 10 - b'A'),
            _ => None,
        };
        let overflow = || invalid(InvalidData, "invalid chunk size: overflow");
        let Some(d) = digit(b) else {
            return Err(
                invalid(InvalidInput, "Invalid chunk size line: missing size digit").into(),
            );
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or_else(overflow)?;
        loop {
            b = c.byte().await?;
            match b {
                b'\t' | b' ' | b';' | b'\r' => break,
                _ => match digit(b) {
                    Some(d) => {
                        size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or_else(overflow)?;
                    }
                    None => {
                        return Err(
                            invalid(InvalidInput, "Invalid chunk size line: Invalid Size").into(),
                        )
                    }
                },
            }
        }
        while matches!(b, b'\t' | b' ') {
            b = c.byte().await?;
            if !matches!(b, b'\t' | b' ' | b';' | b'\r') {
                return Err(invalid(InvalidInput, "Invalid chunk size linear white space").into());
            }
        }
        if b == b';' {
            loop {
                match c.byte().await? {
                    b'\r' => break,
                    b'\n' => {
                        return Err(invalid(
                            InvalidData,
                            "invalid chunk extension contains newline",
                        )
                        .into())
                    }
                    _ => {
                        extensions += 1;
                        if extensions >= CHUNK_EXTENSIONS_LIMIT {
                            return Err(invalid(InvalidData, "chunk extensions over limit").into());
                        }
                    }
                }
            }
        }
        if c.byte().await? != b'\n' {
            return Err(invalid(InvalidInput, "Invalid chunk size LF").into());
        }
        if size == 0 {
            return read_trailers(c).await;
        }
        // The data, then CRLF.
        while size > 0 {
            if c.pos == c.buf.len()
                && c.fill(READ_SIZE.max(usize::try_from(size).unwrap_or(usize::MAX)))
                    .await?
                    == 0
            {
                return Err(incomplete_body().into());
            }
            size -= consume(c, size, body)?;
        }
        if c.byte().await? != b'\r' {
            return Err(invalid(InvalidInput, "Invalid chunk body CR").into());
        }
        if c.byte().await? != b'\n' {
            return Err(invalid(InvalidInput, "Invalid chunk body LF").into());
        }
    }
}

/// What follows the last chunk: trailer lines, each CRLF-terminated, then CRLF.
async fn read_trailers(c: &mut Conn) -> Result<(), BodyError> {
    use io::ErrorKind::{InvalidData, InvalidInput};
    let over = || BodyError::Io(invalid(InvalidData, "chunk trailers bytes over limit"));
    let mut trailers: Option<Vec<u8>> = None;
    let mut count = 0usize;
    loop {
        // At the start of a line: CR ends the trailers, anything else starts a trailer line.
        let b = c.byte().await?;
        if b == b'\r' {
            if let Some(t) = trailers.as_mut() {
                t.push(b);
                if t.len() >= TRAILERS_LIMIT {
                    return Err(over());
                }
            }
            if c.byte().await? != b'\n' {
                return Err(invalid(InvalidInput, "Invalid chunk end LF").into());
            }
            let Some(mut t) = trailers else {
                return Ok(());
            };
            t.push(b'\n');
            if t.len() >= TRAILERS_LIMIT {
                return Err(over());
            }
            return check_trailers(&t, count).map_err(BodyError::Io);
        }
        let t = trailers.get_or_insert_with(|| Vec::with_capacity(64));
        t.push(b);
        // hyper checks the limit on every byte but the one that starts the trailers.
        if t.len() > 1 && t.len() >= TRAILERS_LIMIT {
            return Err(over());
        }
        loop {
            let b = c.byte().await?;
            t.push(b);
            if t.len() >= TRAILERS_LIMIT {
                return Err(over());
            }
            if b == b'\r' {
                break;
            }
        }
        if c.byte().await? != b'\n' {
            return Err(invalid(InvalidInput, "Invalid trailer end LF").into());
        }
        if count >= MAX_HEADERS {
            return Err(invalid(InvalidData, "chunk trailers count overflow").into());
        }
        count += 1;
        t.push(b'\n');
        if t.len() >= TRAILERS_LIMIT {
            return Err(over());
        }
    }
}

/// Trailers must parse as header lines (hyper's `decode_trailers`).
fn check_trailers(buf: &[u8], count: usize) -> Result<(), io::Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; count];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((_, headers))) => {
            for h in headers.iter() {
                if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("Invalid header name: {h:?}"),
                    ));
                }
                if HeaderValue::from_bytes(h.value).is_err() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("Invalid header value: {h:?}"),
                    ));
                }
            }
            Ok(())
        }
        Ok(httparse::Status::Partial) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "Partial header",
        )),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
    }
}

/// reqwest follows these (and only with a `Location` that is a valid URL).
fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
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
    connect_any(interleave_families(addrs), ATTEMPT_DELAY)
        .await
        .map_err(ConnectError::Tcp)
}

/// How long a connection attempt has before the next address is tried beside it (RFC 8305's "Connection
/// Attempt Delay"): a host whose first address does not answer (an IPv6 route that drops packets, a dead
/// replica in round-robin DNS) is reached through the next one this much later, not after the first times out.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// `addrs` in the order RFC 8305 tries them: the two families alternating, starting with the family the
/// resolver put first, each family's addresses in the resolver's order.
fn interleave_families(addrs: Vec<std::net::SocketAddr>) -> Vec<std::net::SocketAddr> {
    let first_is_v6 = addrs.first().is_some_and(|a| a.is_ipv6());
    let (first, other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_is_v6);
    let mut out = Vec::with_capacity(first.len() + other.len());
    let (mut first, mut other) = (first.into_iter(), other.into_iter());
    loop {
        match (first.next(), other.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

type Attempt = std::pin::Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// Connects to the first of `addrs` to accept (happy eyeballs): attempts start in order, the next one when
/// the last failed or has not connected within `delay`, and the earlier ones go on meanwhile; the first to
/// connect wins and the others are dropped. All failing gives the last attempt's error.
async fn connect_any(addrs: Vec<std::net::SocketAddr>, delay: Duration) -> io::Result<TcpStream> {
    let mut waiting = addrs.into_iter();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last_error = None;
    let mut next_due = Box::pin(tokio::time::sleep(delay));
    let mut start_next = true;
    std::future::poll_fn(|cx| loop {
        // Set at first, and after a failure or once the delay is up (see below).
        if start_next {
            start_next = false;
            if let Some(addr) = waiting.next() {
                attempts.push(Box::pin(TcpStream::connect(addr)));
                next_due.as_mut().reset(tokio::time::Instant::now() + delay);
            }
        }
        let mut failed = false;
        let mut i = 0;
        while i < attempts.len() {
            match attempts[i].as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(stream)) => return std::task::Poll::Ready(Ok(stream)),
                std::task::Poll::Ready(Err(e)) => {
                    last_error = Some(e);
                    drop(attempts.swap_remove(i));
                    failed = true;
                }
                std::task::Poll::Pending => i += 1,
            }
        }
        if attempts.is_empty() && waiting.len() == 0 {
            return std::task::Poll::Ready(Err(last_error.take().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to")
            })));
        }
        // The next address is tried as soon as an attempt fails, or once the last one started has had
        // `delay` (the timer, polled here, wakes this task then).
        if failed || (waiting.len() > 0 && next_due.as_mut().poll(cx).is_ready()) {
            start_next = true;
            continue;
        }
        return std::task::Poll::Pending;
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn v4(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn v6(port: u16) -> SocketAddr {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    }

    #[test]
    fn families_alternate_starting_with_the_resolvers_first() {
        let got = interleave_families(vec![v6(1), v6(2), v6(3), v4(4), v4(5)]);
        assert_eq!(got, vec![v6(1), v4(4), v6(2), v4(5), v6(3)]);
        let got = interleave_families(vec![v4(1), v6(2), v4(3)]);
        assert_eq!(got, vec![v4(1), v6(2), v4(3)]);
        assert!(interleave_families(Vec::new()).is_empty());
    }

    /// A loopback address whose connection attempts go unanswered: a listener with a backlog of 0 whose
    /// queue is full drops further SYNs, as a route that loses packets does. The returned sockets keep the
    /// queue full.
    async fn unanswered_address() -> (
        SocketAddr,
        Vec<std::net::TcpStream>,
        tokio::net::TcpListener,
    ) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(v4(0)).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => held.push(stream.into_std().unwrap()),
                Ok(Err(e)) => panic!("filling the listener's queue: {e}"),
                // Unanswered: the queue is full.
                Err(_) => return (addr, held, listener),
            }
        }
        panic!("the listener kept accepting connections into its queue");
    }

    /// Connects through `first`, then a listening address, with `delay` between attempts; asserts that the
    /// connection is to the listener, made within a guard of 5 seconds (far below the seconds a dropped SYN
    /// takes to be retried and given up on, and than `delay` in the tests that rely on a refusal).
    async fn assert_connects_past(first: SocketAddr, delay: Duration) {
        let good = tokio::net::TcpListener::bind(v4(0)).await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let stream = tokio::time::timeout(
            Duration::from_secs(5),
            connect_any(vec![first, good_addr], delay),
        )
        .await
        .expect("connected before the guard ran out")
        .expect("connected");
        assert_eq!(stream.peer_addr().unwrap(), good_addr);
    }

    #[tokio::test]
    async fn an_address_that_does_not_answer_is_passed_over_for_the_next() {
        let (silent, _held, _listener) = unanswered_address().await;
        assert_connects_past(silent, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_refused_address_is_followed_by_the_next_at_once_and_all_failing_gives_the_last_error(
    ) {
        // A port nobody listens on: bound, then closed.
        let closed = std::net::TcpListener::bind(v4(0))
            .unwrap()
            .local_addr()
            .unwrap();
        // With a delay longer than the guard, only the refusal can have started the second attempt.
        assert_connects_past(closed, Duration::from_secs(60)).await;

        let err = connect_any(vec![closed, closed], Duration::from_secs(60))
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = connect_any(Vec::new(), Duration::from_secs(60))
            .await
            .expect_err("no addresses");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
