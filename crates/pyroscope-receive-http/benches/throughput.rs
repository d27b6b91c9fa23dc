//! Throughput of the profile path, printed as profiles/s. Run on one core:
//!
//! `taskset -c 0 cargo bench -p pyroscope-receive-http --bench throughput`
//!
//! 1. `pyroscope.write` → a local Connect server (fixture `wide-cpu`): appends to the receiver until the server
//!    has every profile.
//! 2. HTTP Push → `pyroscope.receive_http` → `pyroscope.file`: 8 concurrent clients, one profile per request,
//!    until every profile is on disk.

use axum::body::Bytes;
use flow::{Controller, ControllerOptions, Sources};
use prost::Message;
use pyroscope::push::{LabelPair, PushRequest, PushSample, RawProfileSeries};
use pyroscope::{Labels, RawSample, Receiver};
use river::types::TypedCapsule;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn controller(dir: &Path) -> Controller {
    let mut registry = flow::Registry::new();
    pyroscope_receive_http::register(&mut registry).unwrap();
    pyroscope_write::register(&mut registry).unwrap();
    pyroscope_file::register(&mut registry).unwrap();
    Controller::new(
        Arc::new(registry),
        ControllerOptions {
            storage_path: dir.join("data"),
            ..ControllerOptions::default()
        },
    )
}

fn receiver(c: &Controller, id: &str) -> Receiver {
    let river::Value::Object(o) = c.exports(id).unwrap() else {
        panic!()
    };
    let cap: TypedCapsule<Receiver> =
        river::decode::decode_value(o.get("receiver").unwrap()).unwrap();
    cap.get().clone()
}

async fn bench_write(profile: &[u8], n: usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let app = axum::Router::new().route(
        "/push.v1.PusherService/Push",
        axum::routing::post(move |body: Bytes| {
            let c = c2.clone();
            async move {
                let req = PushRequest::decode(body).unwrap();
                c.fetch_add(
                    req.series.iter().map(|s| s.samples.len()).sum(),
                    Ordering::Relaxed,
                );
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path());
    let cfg = format!(
        "pyroscope.write \"w\" {{\n endpoint {{\n url = \"{url}\"\n queue_max_profiles = 1000000\n queue_max_bytes = \"4GiB\"\n }}\n}}\n"
    );
    c.load(Sources::parse([("m.river", cfg.as_str())]).unwrap())
        .await
        .unwrap();
    let recv = receiver(&c, "pyroscope.write.w");
    let bytes = bytes::Bytes::copy_from_slice(profile);
    let started = Instant::now();
    for i in 0..n {
        let labels = Labels::from_pairs([
            ("service_name", "bench"),
            ("__name__", "process_cpu"),
            ("instance", &format!("host-{}", i % 100)),
        ]);
        recv.append(labels, vec![RawSample::new(bytes.clone())])
            .await
            .unwrap();
    }
    while count.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pyroscope.write → local Connect server: {n} profiles ({} bytes each) in {secs:.2}s = {:.0} profiles/s",
        profile.len(),
        n as f64 / secs
    );
    c.shutdown().await;
}

async fn bench_receive_file(profile: &[u8], n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path());
    let cfg = format!(
        "pyroscope.receive_http \"in\" {{\n http {{\n listen_address = \"127.0.0.1\"\n listen_port = 0\n }}\n forward_to = [pyroscope.file.f.receiver]\n}}\npyroscope.file \"f\" {{\n directory = {:?}\n max_size = \"8GiB\"\n}}\n",
        dir.path().join("store").display().to_string()
    );
    c.load(Sources::parse([("m.river", cfg.as_str())]).unwrap())
        .await
        .unwrap();
    let info = c.component("pyroscope.receive_http.in").unwrap().debug_info;
    let addr = info["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "listen_address")
        .unwrap()["value"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{addr}/push.v1.PusherService/Push");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            let profile = bytes::Bytes::copy_from_slice(profile);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body = PushRequest {
                        series: vec![RawProfileSeries {
                            labels: vec![
                                LabelPair {
                                    name: "__name__".into(),
                                    value: "process_cpu".into(),
                                },
                                LabelPair {
                                    name: "service_name".into(),
                                    value: format!("svc-{}", i % 10),
                                },
                            ],
                            samples: vec![PushSample {
                                raw_profile: profile.clone(),
                                id: String::new(),
                            }],
                        }],
                    }
                    .encode_to_vec();
                    let r = client
                        .post(&url)
                        .header("content-type", "application/proto")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "HTTP push → pyroscope.receive_http → pyroscope.file: {n} profiles ({} bytes each) in {secs:.2}s = {:.0} profiles/s",
        profile.len(),
        n as f64 / secs
    );
    c.shutdown().await;
}

fn main() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pprof/wide-cpu.pb.gz");
    let Ok(profile) = std::fs::read(&path) else {
        println!("SKIPPED: fixture {} not found", path.display());
        return;
    };
    // One worker thread: the targets are per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench_write(&profile, 50_000).await;
        bench_receive_file(&profile, 10_000).await;
    });
}
