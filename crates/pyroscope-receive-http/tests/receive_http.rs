//! pyroscope.receive_http in a real controller: real HTTP clients push to it, and it forwards to
//! pyroscope.write (which pushes to a real Connect server) and pyroscope.file (real files).

use axum::body::Bytes;
use axum::extract::State;
use flow::{Controller, ControllerOptions, Sources};
use prost::Message;
use pyroscope::push::{LabelPair, PushRequest, PushSample, RawProfileSeries};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Got = Arc<Mutex<Vec<PushRequest>>>;

/// A Connect Push server standing in for Pyroscope.
async fn pyroscope_server() -> (String, Got) {
    let got: Got = Arc::default();
    async fn push(State(got): State<Got>, body: Bytes) -> &'static str {
        got.lock().unwrap().push(PushRequest::decode(body).unwrap());
        ""
    }
    let app = axum::Router::new()
        .route("/push.v1.PusherService/Push", axum::routing::post(push))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn fixture(name: &str) -> Option<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pprof")
        .join(name);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("missing fixture {}", p.display())
        }
        Err(_) => {
            println!("SKIPPED: fixture {} not found", p.display());
            None
        }
    }
}

fn client() -> reqwest::Client {
    // reqwest is built without a default crypto provider (the project uses ring only).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

struct Env {
    _dir: tempfile::TempDir,
    store: PathBuf,
    c: Controller,
}

impl Env {
    async fn start(config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = flow::Registry::new();
        pyroscope_receive_http::register(&mut registry).unwrap();
        pyroscope_write::register(&mut registry).unwrap();
        pyroscope_file::register(&mut registry).unwrap();
        let c = Controller::new(
            Arc::new(registry),
            ControllerOptions {
                storage_path: dir.path().join("data"),
                ..ControllerOptions::default()
            },
        );
        let store = dir.path().join("store");
        let config = config.replace("STORE", &store.display().to_string());
        let report = c
            .load(Sources::parse([("main.river", config.as_str())]).unwrap())
            .await
            .expect("config accepted");
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        Env {
            _dir: dir,
            store,
            c,
        }
    }

    fn base_url(&self) -> String {
        let info = self
            .c
            .component("pyroscope.receive_http.in")
            .unwrap()
            .debug_info;
        let addr = info["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == "listen_address")
            .unwrap()["value"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        format!("http://{addr}")
    }
}

const RECEIVER: &str = r#"
pyroscope.receive_http "in" {
  http {
    listen_address = "127.0.0.1"
    listen_port    = 0
  }
  forward_to = [pyroscope.write.out.receiver, pyroscope.file.local.receiver]
}
pyroscope.file "local" {
  directory = "STORE"
}
"#;

fn push_body(profile: &[u8]) -> Vec<u8> {
    PushRequest {
        series: vec![RawProfileSeries {
            labels: [
                ("service_name", "app"),
                ("__name__", "process_cpu"),
                ("__secret_internal", "x"),
                ("team", "a"),
            ]
            .iter()
            .map(|(n, v)| LabelPair {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
            samples: vec![PushSample {
                raw_profile: profile.to_vec().into(),
                id: "id-1".into(),
            }],
        }],
    }
    .encode_to_vec()
}

fn stored_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".pb.gz") {
                out.push(p);
            }
        }
    }
    out
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn push_and_ingest_reach_write_and_file_end_to_end() {
    let Some(cpu) = fixture("wide-cpu.pb.gz") else {
        return;
    };
    let (url, got) = pyroscope_server().await;
    let env = Env::start(&format!(
        "{RECEIVER}\npyroscope.write \"out\" {{\n  external_labels = {{\"team\" = \"b\"}}\n  endpoint {{\n    url = \"{url}\"\n  }}\n}}\n"
    ))
    .await;
    let base = env.base_url();
    let client = client();

    // Connect Push, gzip-compressed envelope.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&push_body(&cpu)).unwrap();
    let resp = client
        .post(format!("{base}/push.v1.PusherService/Push"))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    // Legacy ingest.
    let resp = client
        .post(format!(
            "{base}/ingest?name=legacy.app.cpu%7Benv%3Dprod%7D&format=pprof&spyName=gospy"
        ))
        .body(cpu.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    wait_for("two pushes at the server", || {
        got.lock()
            .unwrap()
            .iter()
            .map(|r| r.series.len())
            .sum::<usize>()
            == 2
    })
    .await;
    let mut series: Vec<Vec<(String, String)>> = got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.series.iter())
        .map(|s| {
            assert_eq!(
                &s.samples[0].raw_profile[..],
                &cpu[..],
                "bytes forwarded unchanged"
            );
            s.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect()
        })
        .collect();
    series.sort();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        series,
        [
            pairs(&[
                ("__name__", "process_cpu"),
                ("env", "prod"),
                ("service_name", "legacy.app"),
                ("team", "b")
            ]),
            pairs(&[
                ("__name__", "process_cpu"),
                ("service_name", "app"),
                ("team", "b")
            ]),
        ]
    );

    // And the same two profiles on disk, byte for byte.
    wait_for("two stored profiles", || {
        stored_files(&env.store).len() == 2
    })
    .await;
    for f in stored_files(&env.store) {
        assert_eq!(std::fs::read(&f).unwrap(), cpu);
    }
    assert!(env.store.join("legacy.app/process_cpu").is_dir());
    assert!(env.store.join("app/process_cpu").is_dir());
    env.c.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_get_400_with_a_reason() {
    let env = Env::start(&format!("{}\npyroscope.write \"out\" {{\n}}\n", RECEIVER)).await;
    let base = env.base_url();
    let client = client();
    let push = |body: Vec<u8>, ct: &'static str| {
        client
            .post(format!("{base}/push.v1.PusherService/Push"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = push(b"\xff\xff\xff".to_vec(), "application/proto")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("\"code\":\"invalid_argument\"") && text.contains("invalid PushRequest"),
        "{text}"
    );

    let r = push(b"{}".to_vec(), "application/json").await.unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("only application/proto"));

    let r = client
        .post(format!("{base}/push.v1.PusherService/Push"))
        .header("content-type", "application/proto")
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid gzip body"));

    let r = client
        .post(format!("{base}/ingest?name=%7Bx%3Dy%7D"))
        .body(b"\x1f\x8b".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("no application name"));

    let r = client
        .post(format!("{base}/ingest?name=app&format=jfr"))
        .body(b"\x1f\x8b".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("unsupported format") && text.contains("jfr"),
        "{text}"
    );

    // Too large: refused without reading it all.
    let big = vec![0x0a; pyroscope_receive_http::MAX_REQUEST_BYTES + 1];
    let r = push(big, "application/proto").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("larger than"));

    // Missing service_name is a permanent downstream refusal (pyroscope.write rejects it): 400.
    let body = PushRequest {
        series: vec![RawProfileSeries {
            labels: vec![LabelPair {
                name: "job".into(),
                value: "x".into(),
            }],
            samples: vec![PushSample {
                raw_profile: b"\x1f\x8b".to_vec().into(),
                id: String::new(),
            }],
        }],
    }
    .encode_to_vec();
    let r = push(body, "application/proto").await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("service_name"));
    env.c.shutdown().await;
}

#[tokio::test]
async fn a_failing_downstream_answers_a_retryable_status() {
    // pyroscope.file on an unwritable directory fails with a retryable error.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let env = Env::start(&format!(
        r#"
pyroscope.receive_http "in" {{
  http {{
    listen_address = "127.0.0.1"
    listen_port    = 0
  }}
  forward_to = [pyroscope.file.local.receiver]
}}
pyroscope.file "local" {{
  directory = "{}"
}}
"#,
        blocker.join("sub").display()
    ))
    .await;
    let r = client()
        .post(format!("{}/push.v1.PusherService/Push", env.base_url()))
        .header("content-type", "application/proto")
        .body(push_body(b"\x1f\x8b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"code\":\"unavailable\""), "{text}");
    env.c.shutdown().await;
}
