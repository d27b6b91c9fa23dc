//! `HttpClient::fetch` against real servers on loopback, on its lean HTTP/1.1 path and through reqwest
//! (`ClientOptions::lean_http1(false)`): keep-alive reuse, stale connections, limits, timeouts, redirects,
//! TLS, and the same results and error texts both ways.

mod support;

use http_client::{ClientOptions, FetchError, Fetched, HttpClient};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{config, respond, Ca, Server, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client(body: &str, lean: bool) -> HttpClient {
    HttpClient::with_options(
        &config(body),
        ClientOptions::default()
            .user_agent("test-agent/1")
            .lean_http1(lean),
    )
    .unwrap()
}

async fn fetch(c: &HttpClient, url: &str, limit: usize) -> Result<Fetched, FetchError> {
    c.fetch(&url.parse().unwrap(), Duration::from_secs(5), limit)
        .await
}

/// A comparable summary of a fetch: status, content type and body, or the error.
fn summary(r: &Result<Fetched, FetchError>) -> String {
    match r {
        Ok(f) => format!(
            "{} {:?} {:?}",
            f.status.as_u16(),
            f.content_type,
            String::from_utf8_lossy(&f.body)
        ),
        Err(FetchError::Transport(t)) => format!("transport: {t}"),
        Err(e) => format!("{e:?}"),
    }
}

/// What a raw target does with each request it reads.
#[derive(Clone, Copy, Debug)]
enum Raw {
    /// 200 with a Content-Length body, keep-alive.
    Ok,
    /// 200 with a Content-Length body, then the server closes the connection (no `Connection: close`).
    OkThenClose,
    /// 200 with a chunked body.
    Chunked,
    /// 200 announcing `Connection: close`, body delimited by the close.
    CloseDelimited,
    /// 404, keep-alive.
    NotFound,
    /// 200 declaring 1000 bytes.
    Declared1000,
    /// 200 without length, zeros forever.
    Endless,
    /// Never answers.
    Silent,
    /// Part of the body, then RST.
    ResetMidBody,
    /// Closes the connection as soon as the request has arrived.
    CloseBeforeResponse,
    /// 302 from `/old` to `/new` (same server), 200 at `/new`.
    Redirect,
    /// 302 to itself, forever.
    RedirectLoop,
}

/// A raw HTTP/1.1 target on 127.0.0.1:0 that counts connections and requests.
struct RawServer {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    async fn start(raw: Raw) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c2, r2) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c2.fetch_add(1, Ordering::SeqCst);
                let r2 = r2.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, raw, &r2).await;
                });
            }
        });
        RawServer {
            addr,
            connections,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request head; returns its path.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split_whitespace().nth(1).unwrap_or("/").to_string())
}

async fn serve(mut stream: TcpStream, raw: Raw, requests: &AtomicUsize) -> std::io::Result<()> {
    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 5\r\n\r\nhello";
    loop {
        let path = read_head(&mut stream).await?;
        requests.fetch_add(1, Ordering::SeqCst);
        match raw {
            Raw::Ok => stream.write_all(OK).await?,
            Raw::OkThenClose => {
                stream.write_all(OK).await?;
                return Ok(());
            }
            Raw::Chunked => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
                    .await?
            }
            Raw::CloseDelimited => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello")
                    .await?;
                return Ok(());
            }
            Raw::NotFound => {
                stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\nnope")
                    .await?
            }
            Raw::Declared1000 => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await?;
                stream.write_all(&[0u8; 1000]).await?;
            }
            Raw::Endless => {
                stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await?;
                let zeros = vec![0u8; 16 << 10];
                loop {
                    stream.write_all(&zeros).await?;
                }
            }
            Raw::Silent => {
                let mut buf = [0u8; 1024];
                while stream.read(&mut buf).await? > 0 {}
                return Ok(());
            }
            Raw::ResetMidBody => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                    .await?;
                stream.write_all(&[7u8; 100]).await?;
                stream.flush().await?;
                stream.set_zero_linger()?;
                return Ok(());
            }
            Raw::CloseBeforeResponse => return Ok(()),
            Raw::Redirect if path == "/old" => {
                stream
                    .write_all(b"HTTP/1.1 302 Found\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n")
                    .await?
            }
            Raw::Redirect => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nmoved")
                    .await?
            }
            Raw::RedirectLoop => {
                let answer =
                    format!("HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\n\r\n");
                stream.write_all(answer.as_bytes()).await?;
            }
        }
    }
}

#[tokio::test]
async fn keep_alive_connections_are_reused_across_fetches() {
    for lean in [true, false] {
        let srv = RawServer::start(Raw::Ok).await;
        let c = client("", lean);
        for _ in 0..5 {
            let f = fetch(&c, &srv.url("/debug/pprof/allocs"), 1 << 20)
                .await
                .unwrap();
            assert_eq!(&f.body[..], b"hello");
        }
        assert_eq!(srv.requests(), 5, "lean {lean}");
        assert_eq!(srv.connections(), 1, "lean {lean}");
    }
}

#[tokio::test]
async fn concurrent_fetches_to_one_origin_open_what_they_need_and_keep_it() {
    let srv = RawServer::start(Raw::Ok).await;
    let c = client("", true);
    let url = srv.url("/x");
    let round = || async {
        let all = (0..4).map(|_| fetch(&c, &url, 1 << 20));
        for r in futures_join(all).await {
            assert_eq!(&r.unwrap().body[..], b"hello");
        }
    };
    round().await;
    let after_first = srv.connections();
    assert!((1..=4).contains(&after_first), "{after_first}");
    round().await;
    round().await;
    // Later rounds reuse the connections the first one opened.
    assert_eq!(srv.connections(), after_first);
    assert_eq!(srv.requests(), 12);
}

/// Runs the futures concurrently on this task.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut left = 0;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => left += 1,
                }
            }
        }
        if left == 0 {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.expect("ready")));
    out
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
    for lean in [true, false] {
        let srv = RawServer::start(Raw::OkThenClose).await;
        let c = client("", lean);
        for i in 0..4 {
            let f = fetch(&c, &srv.url("/p"), 1 << 20).await;
            assert_eq!(
                summary(&f),
                "200 Some(\"application/octet-stream\") \"hello\"",
                "lean {lean} #{i}"
            );
            // Give the close time to arrive, so the next fetch finds a dead idle connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(srv.requests(), 4, "lean {lean}");
        assert_eq!(srv.connections(), 4, "lean {lean}");
    }
}

#[tokio::test]
async fn a_connection_closed_right_after_the_response_is_retried_once_on_a_fresh_one() {
    // No pause: the next fetch may send on the connection before its close is seen.
    let srv = RawServer::start(Raw::OkThenClose).await;
    let c = client("", true);
    for _ in 0..20 {
        let f = fetch(&c, &srv.url("/p"), 1 << 20).await;
        assert_eq!(
            summary(&f),
            "200 Some(\"application/octet-stream\") \"hello\""
        );
    }
    assert_eq!(srv.requests(), 20);
}

#[tokio::test]
async fn results_and_errors_are_the_same_on_both_paths() {
    let cases: &[(Raw, &str, usize)] = &[
        (Raw::Ok, "/a?x=1", 1 << 20),
        (Raw::Chunked, "/a", 1 << 20),
        (Raw::CloseDelimited, "/a", 1 << 20),
        (Raw::NotFound, "/a", 1 << 20),
        (Raw::Declared1000, "/a", 100),
        (Raw::Declared1000, "/a", 1000),
        (Raw::Endless, "/a", 100_000),
        (Raw::ResetMidBody, "/a", 1 << 20),
        (Raw::CloseBeforeResponse, "/a", 1 << 20),
        (Raw::Redirect, "/old", 1 << 20),
        (Raw::RedirectLoop, "/loop", 1 << 20),
    ];
    for &(raw, path, limit) in cases {
        let mut got = Vec::new();
        for lean in [true, false] {
            let srv = RawServer::start(raw).await;
            let url = srv.url(path);
            let r = fetch(&client("", lean), &url, limit).await;
            // The address differs per server; compare with it replaced.
            got.push(summary(&r).replace(&srv.addr.to_string(), "ADDR"));
        }
        assert_eq!(got[0], got[1], "{raw:?}");
        let want_prefix = match raw {
            Raw::Ok | Raw::Chunked | Raw::CloseDelimited => "200 ",
            Raw::NotFound => "404 Some(\"text/plain\") \"\"",
            Raw::Declared1000 if limit == 100 => "TooLarge",
            Raw::Declared1000 => "200 None",
            Raw::Endless => "TooLarge",
            Raw::ResetMidBody => {
                "transport: error decoding response body: request or response body error: "
            }
            Raw::CloseBeforeResponse => {
                "transport: error sending request for url (http://ADDR/a): client error (SendRequest)"
            }
            Raw::Redirect => "200 None \"moved\"",
            Raw::RedirectLoop => {
                "transport: error following redirect for url (http://ADDR/loop): too many redirects"
            }
            Raw::OkThenClose | Raw::Silent => unreachable!(),
        };
        assert!(got[0].starts_with(want_prefix), "{raw:?}: {}", got[0]);
    }
    // A refused connection.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/a");
    let lean = summary(&fetch(&client("", true), &url, 100).await);
    let reqwest = summary(&fetch(&client("", false), &url, 100).await);
    assert_eq!(lean, reqwest);
    assert!(
        lean.starts_with(&format!(
            "transport: error sending request for url ({url}): client error (Connect): tcp connect error: "
        )),
        "{lean}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_on_both_paths() {
    for lean in [true, false] {
        let srv = RawServer::start(Raw::Silent).await;
        let c = client("", lean);
        let started = std::time::Instant::now();
        let r = c
            .fetch(
                &srv.url("/a").parse().unwrap(),
                Duration::from_millis(300),
                100,
            )
            .await;
        assert!(matches!(r, Err(FetchError::Timeout)), "{}", summary(&r));
        assert!(started.elapsed() < Duration::from_secs(3));
        // A timed-out connection is not reused: the next fetch connects again.
        let _ = c
            .fetch(
                &srv.url("/a").parse().unwrap(),
                Duration::from_millis(100),
                100,
            )
            .await;
        assert_eq!(srv.connections(), 2, "lean {lean}");
    }
}

#[tokio::test]
async fn request_headers_are_the_same_on_both_paths() {
    let srv = Server::http(|_| respond(200, "ok")).await;
    for lean in [true, false] {
        let c = client(r#"bearer_token = "tok""#, lean);
        let f = fetch(&c, &srv.url("http", "/debug/pprof/profile?seconds=14"), 100)
            .await
            .unwrap();
        assert_eq!(&f.body[..], b"ok");
    }
    let c = client(
        "basic_auth {\n username = \"u\"\n password = \"p\"\n}",
        true,
    );
    fetch(&c, &srv.url("http", "/"), 100).await.unwrap();
    let seen = srv.seen();
    assert_eq!(seen.len(), 3);
    let describe = |s: &support::Seen| {
        let mut names: Vec<_> = s
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        names.sort();
        format!("{} {} {:?} {names:?}", s.method, s.uri, s.version)
    };
    assert_eq!(describe(&seen[0]), describe(&seen[1]));
    assert_eq!(
        describe(&seen[0]),
        format!(
            "GET /debug/pprof/profile?seconds=14 HTTP/1.1 [\"accept: */*\", \"authorization: Bearer tok\", \"host: {}\", \"user-agent: test-agent/1\"]",
            srv.addr
        )
    );
    assert_eq!(
        seen[2].header("authorization").as_deref(),
        Some("Basic dTpw")
    );
}

#[tokio::test]
async fn https_takes_the_lean_path_only_without_http2_and_is_verified_either_way() {
    let ca = Ca::new("ca");
    let srv = Server::https(ServerTls::new(ca.leaf(&["localhost", "127.0.0.1"])), |_| {
        respond(200, "secure")
    })
    .await;
    let url = srv.url("https", "/p");
    let tls = format!("tls_config {{ ca_pem = `{}` }}", ca.pem);
    // HTTP/2 off: HTTP/1.1 over one reused connection.
    let h1 = client(&format!("{tls}\nenable_http2 = false"), true);
    for _ in 0..3 {
        assert_eq!(&fetch(&h1, &url, 100).await.unwrap().body[..], b"secure");
    }
    assert_eq!(srv.accepted.load(Ordering::SeqCst), 1);
    // HTTP/2 on: reqwest negotiates h2, as before.
    let h2 = client(&tls, true);
    assert_eq!(&fetch(&h2, &url, 100).await.unwrap().body[..], b"secure");
    let versions: Vec<_> = srv.seen().iter().map(|s| s.version).collect();
    assert_eq!(
        versions,
        [
            hyper::Version::HTTP_11,
            hyper::Version::HTTP_11,
            hyper::Version::HTTP_11,
            hyper::Version::HTTP_2
        ]
    );
    // server_name and insecure_skip_verify apply on the lean path too.
    let named = format!(
        "tls_config {{\n ca_pem = `{}`\n server_name = \"localhost\"\n}}\nenable_http2 = false",
        ca.pem
    );
    let by_name = client(&named, true);
    assert!(fetch(&by_name, &url, 100).await.is_ok());
    let insecure = client(
        "tls_config { insecure_skip_verify = true }\nenable_http2 = false",
        true,
    );
    assert!(fetch(&insecure, &url, 100).await.is_ok());
    // An unknown CA is refused with the same error both ways.
    let other = format!(
        "tls_config {{ ca_pem = `{}` }}\nenable_http2 = false",
        Ca::new("other").pem
    );
    let lean = summary(&fetch(&client(&other, true), &url, 100).await);
    let reqwest = summary(&fetch(&client(&other, false), &url, 100).await);
    assert_eq!(lean, reqwest);
    assert!(
        lean.contains("invalid peer certificate: UnknownIssuer"),
        "{lean}"
    );
}

#[tokio::test]
async fn server_name_is_sent_as_the_tls_server_name_over_http1_even_with_http2_on() {
    let ca = Ca::new("ca");
    // The certificate names only the name the target is known by, not the address scraped.
    let srv = Server::https(ServerTls::new(ca.leaf(&["scrape.example"])), |s| {
        match s.uri.path() {
            "/old" => hyper::Response::builder()
                .status(302)
                .header("location", "/new")
                .body(Default::default())
                .unwrap(),
            _ => respond(200, "named"),
        }
    })
    .await;
    let named = client(
        &format!(
            "tls_config {{\n ca_pem = `{}`\n server_name = \"scrape.example\"\n}}",
            ca.pem
        ),
        true,
    );
    let f = fetch(&named, &srv.url("https", "/old"), 100).await.unwrap();
    assert_eq!((f.status.as_u16(), &f.body[..]), (200, &b"named"[..]));
    let seen: Vec<_> = srv
        .seen()
        .iter()
        .map(|s| (s.uri.path().to_string(), s.sni.clone(), s.version))
        .collect();
    let sni = Some("scrape.example".to_string());
    assert_eq!(
        seen,
        [
            ("/old".to_string(), sni.clone(), hyper::Version::HTTP_11),
            ("/new".to_string(), sni, hyper::Version::HTTP_11),
        ]
    );
    // Without it the address is the name: verification fails (and no ServerName is sent for an address).
    let unnamed = client(&format!("tls_config {{ ca_pem = `{}` }}", ca.pem), true);
    let err = summary(&fetch(&unnamed, &srv.url("https", "/new"), 100).await);
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_proxy_sends_fetches_through_reqwest() {
    let proxy = Server::http(|_| respond(200, "via proxy")).await;
    let c = client(&format!("proxy_url = \"http://{}\"", proxy.addr), true);
    let f = fetch(&c, "http://target.invalid:1234/debug/pprof/allocs", 100)
        .await
        .unwrap();
    assert_eq!(&f.body[..], b"via proxy");
    assert_eq!(
        proxy.seen()[0].uri.to_string(),
        "http://target.invalid:1234/debug/pprof/allocs"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_when_disabled() {
    for lean in [true, false] {
        let srv = RawServer::start(Raw::Redirect).await;
        let f = fetch(
            &client("follow_redirects = false", lean),
            &srv.url("/old"),
            100,
        )
        .await
        .unwrap();
        assert_eq!(f.status.as_u16(), 302);
        assert_eq!(srv.requests(), 1);
    }
}

/// What the servers of a redirect chain saw, in order: path, `Authorization` and `Referer` of each request.
type Hops = Vec<(String, Option<String>, Option<String>)>;

fn hops(servers: &[&Server]) -> Hops {
    servers
        .iter()
        .flat_map(|s| s.seen())
        .map(|r| {
            (
                r.uri.path().to_string(),
                r.header("authorization"),
                r.header("referer"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_followed_redirect_asks_each_hop_once_with_the_headers_reqwest_sends() {
    let mut got = Vec::new();
    for lean in [true, false] {
        let end = Server::http(|_| respond(200, "at the end")).await;
        let next = end.url("http", "/end");
        // Two hops on one origin, then one to another port: a different origin, so no credentials there.
        let start = Server::http(move |seen| match seen.uri.path() {
            "/old" => hyper::Response::builder()
                .status(302)
                .header("location", "/mid")
                .body(Default::default())
                .unwrap(),
            _ => hyper::Response::builder()
                .status(307)
                .header("location", next.as_str())
                .body(Default::default())
                .unwrap(),
        })
        .await;
        let c = client("bearer_token = \"s3cret\"", lean);
        let f = fetch(&c, &start.url("http", "/old"), 100).await.unwrap();
        assert_eq!((f.status.as_u16(), &f.body[..]), (200, &b"at the end"[..]));
        let origin = start.url("http", "");
        let seen = hops(&[&start, &end]);
        let want: Hops = vec![
            ("/old".into(), Some("Bearer s3cret".into()), None),
            (
                "/mid".into(),
                Some("Bearer s3cret".into()),
                Some(format!("{origin}/old")),
            ),
            ("/end".into(), None, Some(format!("{origin}/mid"))),
        ];
        assert_eq!(seen, want, "lean: {lean}");
        got.push(seen.len());
    }
    assert_eq!(got, [3, 3]);
}

#[tokio::test]
async fn a_redirect_without_a_usable_location_is_the_answer_on_both_paths() {
    for lean in [true, false] {
        let srv = Server::http(|_| {
            hyper::Response::builder()
                .status(302)
                .body(Default::default())
                .unwrap()
        })
        .await;
        let f = fetch(&client("", lean), &srv.url("http", "/old"), 100)
            .await
            .unwrap();
        assert_eq!(f.status.as_u16(), 302, "lean: {lean}");
        assert_eq!(srv.seen().len(), 1, "lean: {lean}");
    }
}
