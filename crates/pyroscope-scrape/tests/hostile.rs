//! Hostile targets: a body that never ends, a server that never answers, a connection reset mid-response,
//! a redirect loop, a corrupt gzip body. Each runs beside a good target in a real controller; the component
//! must neither hang nor crash, the good target's profiles must keep arriving, and the bad target's debug
//! info must carry a clear error.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a raw target does once it has read a request's head.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 with an unbounded stream of zeros (no Content-Length), written in 64 KiB chunks as the client
    /// reads, so nothing is allocated up front.
    EndlessBody,
    /// 200 declaring a 200 MiB Content-Length, then zeros as the client reads.
    HugeDeclared,
    /// Reads the request and never answers, holding the connection open.
    Silent,
    /// 200, then one byte of body every 100 ms, forever.
    Trickle,
    /// Sends a head promising 100 000 bytes, part of the body, then resets the connection (RST).
    ResetMidBody,
    /// 302 to itself, forever.
    RedirectLoop,
    /// 200 with a valid gzip header followed by garbage.
    CorruptGzip,
}

/// A raw HTTP/1.1 target on 127.0.0.1:0: hostile behaviour needs control over the bytes on the wire.
struct RawTarget {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawTarget {
    async fn start(behaviour: Behaviour) -> RawTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, behaviour, &counter).await;
                });
            }
        });
        RawTarget {
            addr,
            requests,
            task,
        }
    }

    fn address(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
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
    let line = String::from_utf8_lossy(&head);
    Ok(line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string())
}

async fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    counter: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    loop {
        let path = read_head(&mut stream).await?;
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match behaviour {
            Behaviour::EndlessBody => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                    )
                    .await?;
                let zeros = vec![0u8; 64 << 10];
                // Ends when the client gives up and closes.
                loop {
                    stream.write_all(&zeros).await?;
                }
            }
            Behaviour::HugeDeclared => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 209715200\r\n\r\n",
                    )
                    .await?;
                let zeros = vec![0u8; 64 << 10];
                loop {
                    stream.write_all(&zeros).await?;
                }
            }
            Behaviour::Silent => {
                // Hold the connection until the client closes it.
                let mut buf = [0u8; 1024];
                while stream.read(&mut buf).await? > 0 {}
                return Ok(());
            }
            Behaviour::Trickle => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                    )
                    .await?;
                loop {
                    stream.write_all(&[0x1f]).await?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Behaviour::ResetMidBody => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n",
                    )
                    .await?;
                stream
                    .write_all(&fixture("go-goroutine.pb.gz")[..100])
                    .await?;
                stream.flush().await?;
                // Linger 0: close sends RST instead of FIN.
                stream.set_zero_linger()?;
                return Ok(());
            }
            Behaviour::RedirectLoop => {
                let answer =
                    format!("HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\n\r\n");
                stream.write_all(answer.as_bytes()).await?;
            }
            Behaviour::CorruptGzip => {
                let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
                body.extend(std::iter::repeat_n(0xffu8, 4096));
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
            }
        }
    }
}

/// The bad target beside a good one: only the goroutine profile, a 2 s interval.
fn config(key: &str, good: &Target, bad: &RawTarget, extra: &str) -> String {
    format!(
        r#"
test.recorder "out" {{ key = "{key}" }}
pyroscope.scrape "s" {{
  targets = [
    {{"__address__" = "{good}", "service_name" = "good"}},
    {{"__address__" = "{bad}", "service_name" = "bad"}},
  ]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "2s"
  {extra}
  profiling_config {{
    profile.memory {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
        good = good.address(),
        bad = bad.address(),
    )
}

/// Health and last error of the target with this `service_name`.
fn status_of(env: &Env, svc: &str) -> (String, String) {
    env.target_status("pyroscope.scrape.s", svc)
}

/// Loads the config, waits (bounded) until the bad target is down, checks that the good target keeps
/// delivering and that the component stays healthy and shuts down; returns the bad target's error.
async fn run(key: &str, bad: &RawTarget, extra: &str) -> String {
    let good = Target::go().await;
    let env = Env::new();
    let report = env.load(&config(key, &good, bad, extra)).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("the bad target is down", Duration::from_secs(15), || {
        status_of(&env, "bad").0 == "down"
    })
    .await;
    let (_, error) = status_of(&env, "bad");
    assert!(bad.requests() >= 1);
    // The good target is unaffected: scraped on every interval, its profiles forwarded.
    eventually("two good profiles", Duration::from_secs(10), || {
        recorded(key, "test.recorder.out").len() >= 2
    })
    .await;
    assert_eq!(status_of(&env, "good"), ("up".into(), "".into()));
    assert!(recorded(key, "test.recorder.out")
        .iter()
        .all(|(l, _)| l.get("service_name") == Some("good")));
    let health = env
        .c
        .component("pyroscope.scrape.s")
        .expect("component")
        .health;
    assert_eq!(health.state, flow::HealthState::Healthy, "{health:?}");
    // A bounded shutdown proves no task is stuck on the bad target.
    tokio::time::timeout(Duration::from_secs(10), env.c.shutdown())
        .await
        .expect("shutdown finishes");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_at_the_size_bound() {
    let bad = RawTarget::start(Behaviour::EndlessBody).await;
    let error = run("endless", &bad, "").await;
    assert_eq!(
        error,
        format!(
            "response body is larger than the limit of {} bytes",
            pyroscope_scrape::scrape::MAX_BODY_BYTES
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_huge_body_is_refused_at_the_size_bound() {
    let bad = RawTarget::start(Behaviour::HugeDeclared).await;
    let error = run("declared", &bad, "").await;
    assert_eq!(
        error,
        format!(
            "response body is larger than the limit of {} bytes",
            pyroscope_scrape::scrape::MAX_BODY_BYTES
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_within_scrape_timeout() {
    let bad = RawTarget::start(Behaviour::Silent).await;
    let error = run("silent", &bad, r#"scrape_timeout = "500ms""#).await;
    assert_eq!(
        error,
        format!(
            "Get \"http://{}/debug/pprof/goroutine\": scrape timed out after 500ms",
            bad.address()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_forever_times_out_within_scrape_timeout() {
    let bad = RawTarget::start(Behaviour::Trickle).await;
    let error = run("trickle", &bad, r#"scrape_timeout = "500ms""#).await;
    assert_eq!(
        error,
        format!(
            "Get \"http://{}/debug/pprof/goroutine\": scrape timed out after 500ms",
            bad.address()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_body_is_reported() {
    let bad = RawTarget::start(Behaviour::ResetMidBody).await;
    let error = run("reset", &bad, "").await;
    let url = format!("http://{}/debug/pprof/goroutine", bad.address());
    assert!(error.starts_with(&format!("Get \"{url}\": ")), "{error}");
    assert!(error.to_lowercase().contains("connection reset"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_stops_after_ten_redirects() {
    let bad = RawTarget::start(Behaviour::RedirectLoop).await;
    let error = run("loop", &bad, "follow_redirects = true").await;
    let url = format!("http://{}/debug/pprof/goroutine", bad.address());
    assert!(error.starts_with(&format!("Get \"{url}\": ")), "{error}");
    assert!(error.ends_with("too many redirects"), "{error}");
    // The first request plus at most ten redirects per scrape.
    assert!(bad.requests() >= 11, "{}", bad.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_without_follow_redirects_is_a_status_error() {
    let bad = RawTarget::start(Behaviour::RedirectLoop).await;
    let error = run("noredirect", &bad, "follow_redirects = false").await;
    assert_eq!(error, "server returned HTTP status (302) Found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_gzip_body_is_rejected() {
    let bad = RawTarget::start(Behaviour::CorruptGzip).await;
    let error = run("gzip", &bad, "").await;
    assert!(error.starts_with("invalid profile data: "), "{error}");
    assert!(error.contains("invalid gzip data"), "{error}");
}
