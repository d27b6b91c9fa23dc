//! `pyroscope.file` in a real controller, storing real pprof fixtures in a temporary directory.

use flow::{Controller, ControllerOptions, HealthState, Sources};
use prost::Message;
use pyroscope::{Labels, RawSample, Receiver};
use river::types::TypedCapsule;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The parts of pprof's `Profile` message these tests look at.
#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
}

fn fixtures_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pprof");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "fixtures not found at {} (required under CI=true)",
            dir.display()
        );
    }
    println!("SKIPPED: fixtures not found at {}", dir.display());
    None
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("stored file is gzip");
    out
}

fn decode_pprof(b: &[u8]) -> Profile {
    Profile::decode(&gunzip(b)[..]).expect("stored file is a pprof profile")
}

struct Env {
    dir: tempfile::TempDir,
    c: Controller,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = flow::Registry::new();
        pyroscope_file::register(&mut registry).expect("register");
        let options = ControllerOptions {
            storage_path: dir.path().join("data"),
            ..ControllerOptions::default()
        };
        Env {
            c: Controller::new(Arc::new(registry), options),
            dir,
        }
    }

    async fn load(&self, config: &str) {
        let sources = Sources::parse([("main.river", config)]).expect("config parses");
        let report = self.c.load(sources).await.expect("config is accepted");
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    }

    fn receiver(&self, id: &str) -> Receiver {
        let exports = self.c.exports(id).expect("exports");
        let river::Value::Object(obj) = exports else {
            panic!("exports are not an object: {exports:?}");
        };
        let value = obj.get("receiver").expect("receiver export").clone();
        let cap: TypedCapsule<Receiver> =
            river::decode::decode_value(&value).expect("receiver capsule");
        cap.get().clone()
    }

    fn debug(&self, id: &str) -> serde_json::Value {
        self.c.component(id).expect("node").debug_info
    }
}

/// A field of a riverjson object, as its plain JSON value (numbers, strings) or riverjson (the rest).
fn field<'a>(rj: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    rj["value"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["key"] == key))
        .map(|f| &f["value"])
        .unwrap_or_else(|| panic!("no field {key} in {rj}"))
}

fn number(rj: &serde_json::Value, key: &str) -> u64 {
    field(rj, key)["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {rj}"))
}

fn profile_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".pb.gz") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn labels(service: &str, ptype: &str) -> Labels {
    Labels::from_pairs([
        ("service_name", service),
        ("__name__", ptype),
        ("job", "test"),
        ("__address__", "internal:1"),
    ])
}

#[tokio::test]
async fn stores_fixtures_that_decode_as_pprof_with_labels_beside_them() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let env = Env::new();
    let store = env.dir.path().join("store");
    env.load(&format!(
        "pyroscope.file \"local\" {{\n  directory = {:?}\n}}\n",
        store.display().to_string()
    ))
    .await;
    let recv = env.receiver("pyroscope.file.local");
    let cpu = std::fs::read(fixtures.join("wide-cpu.pb.gz")).unwrap();
    let heap = std::fs::read(fixtures.join("go-heap.pb.gz")).unwrap();
    recv.append(
        labels("app", "process_cpu"),
        vec![RawSample::new(cpu.clone())],
    )
    .await
    .unwrap();
    // Uncompressed pprof is compressed on the way in.
    recv.append(labels("app", "memory"), vec![RawSample::new(gunzip(&heap))])
        .await
        .unwrap();

    let files = profile_files(&store);
    assert_eq!(files.len(), 2, "{files:?}");
    let cpu_file = files
        .iter()
        .find(|p| p.to_string_lossy().contains("/app/process_cpu/"))
        .unwrap();
    assert_eq!(
        std::fs::read(cpu_file).unwrap(),
        cpu,
        "stored bytes are the received ones"
    );
    let cpu_profile = decode_pprof(&std::fs::read(cpu_file).unwrap());
    assert!(
        cpu_profile.string_table.iter().any(|s| s == "cpu"),
        "{:?}",
        &cpu_profile.string_table[..5]
    );
    let heap_file = files
        .iter()
        .find(|p| p.to_string_lossy().contains("/app/memory/"))
        .unwrap();
    let heap_profile = decode_pprof(&std::fs::read(heap_file).unwrap());
    assert_eq!(heap_profile, decode_pprof(&heap));

    // The labels file beside it: internal labels dropped, __name__ kept.
    let name = cpu_file.file_name().unwrap().to_string_lossy().into_owned();
    let sid = name
        .trim_end_matches(".pb.gz")
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    let labels_file = cpu_file.with_file_name(format!("{sid}.labels.json"));
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(labels_file).unwrap()).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({"__name__": "process_cpu", "job": "test", "service_name": "app"})
    );

    let info = env.debug("pyroscope.file.local");
    assert_eq!(number(&info, "stored_profiles"), 2, "{info}");
    let series = field(&info, "series")["value"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{info}");
    assert_eq!(field(&series[1], "directory")["value"], "app/process_cpu");
    assert_eq!(field(&series[1], "series_id")["value"], sid.as_str());
    assert_eq!(
        env.c
            .component("pyroscope.file.local")
            .unwrap()
            .health
            .state,
        HealthState::Healthy
    );
    env.c.shutdown().await;
}

#[tokio::test]
async fn default_directory_is_the_data_dir_and_max_size_evicts_the_oldest() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let env = Env::new();
    let cpu = std::fs::read(fixtures.join("wide-cpu.pb.gz")).unwrap();
    // Room for three profiles of this size.
    let max = cpu.len() * 3 + cpu.len() / 2;
    env.load(&format!(
        "pyroscope.file \"local\" {{\n  max_size = {max}\n}}\n"
    ))
    .await;
    let recv = env.receiver("pyroscope.file.local");
    for _ in 0..5 {
        recv.append(
            labels("app", "process_cpu"),
            vec![RawSample::new(cpu.clone())],
        )
        .await
        .unwrap();
    }
    let store = env.dir.path().join("data/pyroscope.file.local");
    let files = profile_files(&store);
    assert_eq!(files.len(), 3, "{files:?}");
    let total: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert!(total <= max as u64);
    let info = env.debug("pyroscope.file.local");
    assert_eq!(number(&info, "stored_profiles"), 3, "{info}");

    // A smaller limit on update evicts at once; the receiver export is unchanged.
    env.load(&format!(
        "pyroscope.file \"local\" {{\n  max_size = {}\n}}\n",
        cpu.len()
    ))
    .await;
    // The update runs in the component's own task.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while profile_files(&store).len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not evicted on update"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.receiver("pyroscope.file.local"), recv);
    env.c.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_old_profiles_in_the_background() {
    let env = Env::new();
    env.load("pyroscope.file \"local\" {\n  retention = \"1s\"\n}\n")
        .await;
    let recv = env.receiver("pyroscope.file.local");
    recv.append(
        labels("app", "process_cpu"),
        vec![RawSample::new(&b"\x1f\x8bnot really"[..])],
    )
    .await
    .unwrap();
    let store = env.dir.path().join("data/pyroscope.file.local");
    assert_eq!(profile_files(&store).len(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !profile_files(&store).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "profile not expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The series is gone with its labels file.
    let leftovers: Vec<_> = std::fs::read_dir(store.join("app/process_cpu"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.c.shutdown().await;
}

#[tokio::test]
async fn an_unwritable_directory_makes_it_unhealthy_and_appends_retryable() {
    let env = Env::new();
    let blocker = env.dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    env.load(&format!(
        "pyroscope.file \"local\" {{\n  directory = {:?}\n}}\n",
        blocker.join("sub").display().to_string()
    ))
    .await;
    let health = env.c.component("pyroscope.file.local").unwrap().health;
    assert_eq!(health.state, HealthState::Unhealthy, "{health:?}");
    assert!(
        health.message.contains("cannot create directory"),
        "{}",
        health.message
    );
    let recv = env.receiver("pyroscope.file.local");
    let err = recv
        .append(
            labels("app", "process_cpu"),
            vec![RawSample::new(&b"x"[..])],
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    env.c.shutdown().await;
}

/// Run as a child process by the test below: writes profiles as fast as it can until killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("PYROSCOPE_FILE_CHILD_DIR") else {
        return;
    };
    let mut store = pyroscope_file::store::Store::open(Path::new(&dir)).unwrap();
    // A large body so that a kill is likely to land mid-write.
    let body: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut n = 0u64;
    loop {
        n += 1;
        let l = Labels::from_pairs([
            ("service_name", "child"),
            ("__name__", "memory"),
            ("n", &(n % 3).to_string()),
        ]);
        store
            .write(&l, &body, Duration::from_secs(3600), 1 << 30)
            .unwrap();
        if n == 2 {
            std::fs::write(Path::new(&dir).join("started"), b"").unwrap();
        }
    }
}

#[test]
fn kill_9_mid_write_leaves_no_partial_files() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env("PYROSCOPE_FILE_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !dir.path().join("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "child never started writing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let written = profile_files(dir.path());
    assert!(written.len() >= 2);
    for f in &written {
        let data = gunzip(&std::fs::read(f).unwrap());
        assert_eq!(data.len(), 4_000_000, "{} is partial", f.display());
    }
    // Reopening cleans what was in flight and indexes exactly the complete files.
    let store = pyroscope_file::store::Store::open(dir.path()).unwrap();
    assert_eq!(store.profiles(), written.len());
    assert_eq!(
        std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(),
        0
    );
}
