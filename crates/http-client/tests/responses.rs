//! How `HttpClient::fetch` reads responses that servers write byte by byte, on the lean HTTP/1.1 path
//! and through reqwest: heads and bodies split across reads, chunked bodies with extensions and trailers,
//! informational responses, HTTP/1.0, and malformed or oversized heads, with the same results and error
//! texts both ways.

mod support;

use http_client::{ClientOptions, FetchError, Fetched, HttpClient};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client(lean: bool) -> HttpClient {
    HttpClient::with_options(&config(""), ClientOptions::default().lean_http1(lean)).unwrap()
}

/// Status, content type and body, or the error.
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

/// A server that answers every request with `pieces`, written one at a time with a pause between them
/// (so that the client reads them separately), then keeps the connection open for the next request, or
/// closes it when `close` is set.
struct Scripted {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(pieces: Vec<Vec<u8>>, close: bool) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let pieces = Arc::new(pieces);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let pieces = pieces.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &pieces, close).await;
                });
            }
        });
        Scripted {
            addr,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/p", self.addr)
    }
}

async fn serve(mut stream: TcpStream, pieces: &[Vec<u8>], close: bool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stream.write_all(piece).await?;
            stream.flush().await?;
        }
        if close {
            return Ok(());
        }
    }
}

/// Fetches twice from a server playing `pieces` on both paths; returns the lean summary and how many
/// connections the lean client opened, after checking that reqwest says the same.
async fn both(pieces: &[&[u8]], close: bool, limit: usize) -> (String, usize) {
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let mut got = Vec::new();
    let mut lean_connections = 0;
    for lean in [true, false] {
        let srv = Scripted::start(pieces.clone(), close).await;
        let c = client(lean);
        let url = srv.url().parse().unwrap();
        let mut results = Vec::new();
        for _ in 0..2 {
            let r = c.fetch(&url, Duration::from_secs(10), limit).await;
            results.push(summary(&r).replace(&srv.addr.to_string(), "ADDR"));
        }
        assert_eq!(results[0], results[1], "lean {lean}");
        if lean {
            lean_connections = srv.connections.load(Ordering::SeqCst);
        }
        got.push(results.swap_remove(0));
    }
    assert_eq!(got[0], got[1], "lean and reqwest differ");
    (got.swap_remove(0), lean_connections)
}

const SEND_ERROR: &str =
    "transport: error sending request for url (http://ADDR/p): client error (SendRequest): ";
const BODY_ERROR: &str = "transport: error decoding response body: request or response body error: error reading a body from connection: ";

#[tokio::test]
async fn a_head_and_body_split_across_reads_are_put_together() {
    let (r, conns) = both(
        &[
            b"HTTP/1.1 200 OK\r\ncont",
            b"ent-type: application/x-protobuf\r\ncontent-length: 11\r",
            b"\n\r\nhello",
            b" world",
        ],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "200 Some(\"application/x-protobuf\") \"hello world\"");
    assert_eq!(conns, 1, "the connection is reused");
}

#[tokio::test]
async fn chunked_bodies_with_extensions_and_trailers_are_read_and_the_connection_reused() {
    let (r, conns) = both(
        &[
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nhel\r\n",
            b"2;name=value\r\nlo\r\nA \r\n",
            b", chunked!\r\n0\r\nx-trailer: 1\r\n",
            b"x-other: two\r\n\r\n",
        ],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "200 None \"hello, chunked!\"");
    assert_eq!(conns, 1);
}

#[tokio::test]
async fn a_large_length_delimited_body_is_read_whole() {
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
    let (r, conns) = both(
        &[head.as_bytes(), &body[..1000], &body[1000..]],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(
        r,
        format!("200 None {:?}", String::from_utf8(body).unwrap())
    );
    assert_eq!(conns, 1);
}

#[tokio::test]
async fn informational_responses_are_skipped() {
    let (r, _) = both(
        &[
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "200 None \"ok\"");
}

#[tokio::test]
async fn http_1_0_connections_are_kept_only_when_the_server_says_so() {
    let (r, conns) = both(
        &[b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "200 None \"ok\"");
    assert_eq!(conns, 2);
    let (r, conns) = both(
        &[b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "200 None \"ok\"");
    assert_eq!(conns, 1);
    // Close wins over keep-alive, on HTTP/1.1 too.
    let (_, conns) = both(
        &[b"HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(conns, 2);
}

#[tokio::test]
async fn malformed_heads_are_refused_with_hyper_s_errors() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "invalid HTTP header parsed",
        ),
        (b"HTTX/1.1 200 OK\r\n\r\n", "invalid HTTP version parsed"),
        (
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            "invalid HTTP status-code parsed",
        ),
        (
            b"HTTP/1.1 099 Odd\r\n\r\n",
            "invalid HTTP status-code parsed",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
            "invalid content-length parsed",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: five\r\n\r\nhello",
            "invalid content-length parsed",
        ),
        (
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "unexpected transfer-encoding parsed",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n",
            "connection closed before message completed",
        ),
    ];
    for (head, want) in cases {
        let (r, _) = both(&[head], true, 1 << 20).await;
        assert_eq!(
            r,
            format!("{SEND_ERROR}{want}"),
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
}

#[tokio::test]
async fn oversized_heads_are_refused_without_reading_on() {
    // More than hyper's 100 header lines.
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..101 {
        many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"content-length: 0\r\n\r\n");
    // More than hyper's 400 KB buffer without the end of the head.
    let mut huge = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
    huge.resize(600 << 10, b'a');
    for head in [many, huge] {
        let (r, _) = both(&[&head], true, 1 << 20).await;
        assert_eq!(r, format!("{SEND_ERROR}message head is too large"));
    }
}

#[tokio::test]
async fn broken_bodies_are_reported_like_hyper_reports_them() {
    let cases: &[(&[&[u8]], &str)] = &[
        (
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"],
            "end of file before message length reached",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
            "Invalid chunk size line: missing size digit",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3x\r\n"],
            "Invalid chunk size line: Invalid Size",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3 x\r\n"],
            "Invalid chunk size linear white space",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\rx"],
            "Invalid chunk size LF",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd"],
            "Invalid chunk body CR",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\rx"],
            "Invalid chunk body LF",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab"],
            "end of file before message length reached",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"],
            "unexpected EOF during chunk size line",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n"],
            "invalid chunk size: overflow",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;a\nb\r\n"],
            "invalid chunk extension contains newline",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-a: 1\rx"],
            "Invalid trailer end LF",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\rx"],
            "Invalid chunk end LF",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n"],
            "invalid header name",
        ),
    ];
    for (pieces, want) in cases {
        let (r, _) = both(pieces, true, 1 << 20).await;
        assert_eq!(r, format!("{BODY_ERROR}{want}"), "{pieces:?}");
    }
    // Trailers beyond hyper's 16 KB.
    let mut long = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx-long: ".to_vec();
    long.resize(20 << 10, b'a');
    let (r, _) = both(&[&long], true, 1 << 20).await;
    assert_eq!(r, format!("{BODY_ERROR}chunk trailers bytes over limit"));
}

#[tokio::test]
async fn limits_apply_to_chunked_and_close_delimited_bodies() {
    let (r, _) = both(
        &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello!\r\n0\r\n\r\n"],
        false,
        5,
    )
    .await;
    assert_eq!(r, "TooLarge");
    let (r, _) = both(&[b"HTTP/1.1 200 OK\r\n\r\nhello!"], true, 5).await;
    assert_eq!(r, "TooLarge");
    let (r, conns) = both(&[b"HTTP/1.1 200 OK\r\n\r\nhello"], true, 5).await;
    assert_eq!(r, "200 None \"hello\"");
    assert_eq!(conns, 2, "a close-delimited body ends its connection");
}

#[tokio::test]
async fn no_content_responses_have_no_body() {
    let (r, conns) = both(
        &[b"HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n"],
        false,
        1 << 20,
    )
    .await;
    assert_eq!(r, "204 None \"\"");
    assert_eq!(conns, 1);
}
