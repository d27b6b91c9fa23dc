//! End to end against a real Go program (tests/goapp/main.go) that serves `net/http/pprof` and fgprof,
//! built in the test run with Debian's `golang-go` and `golang-github-felixge-fgprof-dev` (`.ci/run`
//! installs them), offline, in GOPATH mode. Without them the test is skipped locally and fails under
//! `CI=true`.
//!
//! One run with the default `scrape_interval` (15 s): every task scrapes once at its phase, the CPU and fgprof
//! profiles take 14 s, the cumulative profiles need a second scrape for their first delta, so it takes
//! between about 15 and 32 seconds.

mod common;

use common::*;
use pyroscope::pprof::{self, Profile};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Debian's GOPATH: fgprof and github.com/google/pprof live under `src/`.
const GOPATH: &str = "/usr/share/gocode";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Why the Go toolchain or fgprof is unusable, if it is.
fn missing_go() -> Option<String> {
    match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Some(format!("`go version` failed: {}", o.status)),
        Err(e) => return Some(format!("`go` not found: {e}")),
    }
    let fgprof = Path::new(GOPATH).join("src/github.com/felixge/fgprof");
    if !fgprof.is_dir() {
        return Some(format!("fgprof sources missing at {}", fgprof.display()));
    }
    None
}

/// `go build` of tests/goapp into `dir`, offline, with a fresh build cache in `dir` (cgo left at its default:
/// Debian ships the standard library built that way, so only the program and fgprof are compiled).
fn build(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goapp/main.go");
    let bin = dir.join("goapp");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOENV", "off")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// The running Go program: its address and the request URIs it logged, with when the test read them.
struct GoApp {
    child: std::process::Child,
    addr: String,
    requests: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Drop for GoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GoApp {
    fn start(bin: &Path) -> GoApp {
        let mut child = Command::new(bin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Go program");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let requests: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let r2 = requests.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.strip_prefix("listening ") {
                    let _ = tx.send(addr.to_string());
                } else if let Some(uri) = line.strip_prefix("request ") {
                    r2.lock().unwrap().push((uri.to_string(), Instant::now()));
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the Go program prints its address");
        GoApp {
            child,
            addr,
            requests,
        }
    }

    fn requested(&self, uri: &str) -> Vec<Instant> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == uri)
            .map(|(_, at)| *at)
            .collect()
    }
}

fn decode(data: &[u8]) -> Profile {
    pprof::decode(data, pprof::DEFAULT_MAX_DECOMPRESSED, &mut Vec::new()).expect("a pprof profile")
}

fn sample_types(p: &Profile) -> Vec<String> {
    p.sample_type
        .iter()
        .map(|t| p.string_table[t.r#type as usize].clone())
        .collect()
}

fn sum_of(p: &Profile, type_name: &str) -> i64 {
    let i = sample_types(p)
        .iter()
        .position(|t| t == type_name)
        .unwrap_or_else(|| panic!("no sample type {type_name} in {:?}", sample_types(p)));
    p.sample.iter().map(|s| s.value[i]).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_go_program_delivers_every_default_profile_and_fgprof() {
    if let Some(why) = missing_go() {
        assert!(
            !in_ci(),
            "{why}: golang-go and golang-github-felixge-fgprof-dev are required under CI=true (.ci/run installs them)"
        );
        eprintln!("skipped: {why} (install golang-go and golang-github-felixge-fgprof-dev)");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || build(&dir))
            .await
            .expect("build")
    };
    eprintln!("built the Go program in {:?}", t0.elapsed());
    let app = GoApp::start(&bin);
    let addr = app.addr.clone();

    let env = Env::new();
    // The defaults plus fgprof and a custom profile: scrape_interval and every other setting left unset.
    let config = format!(
        r#"
test.recorder "out" {{ key = "goapp" }}

pyroscope.scrape "go" {{
  targets    = [{{"__address__" = "{addr}", "service_name" = "goapp"}}]
  forward_to = [test.recorder.out.receiver]
  profiling_config {{
    profile.fgprof {{
      enabled = true
    }}
    profile.custom "heap" {{
      enabled = true
      path    = "/debug/pprof/heap"
      delta   = false
    }}
  }}
}}
"#
    );
    let report = env.load(&config).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);

    // Every profile type and whether it carries `__delta__="false"` (the client-side delta ones).
    let expected: [(&str, bool); 7] = [
        ("process_cpu", false),
        ("memory", true),
        ("goroutine", false),
        ("mutex", true),
        ("block", true),
        ("fgprof", false),
        ("heap", false),
    ];
    let names_of = || -> Vec<String> {
        recorded("goapp", "test.recorder.out")
            .iter()
            .filter_map(|(l, _)| l.get("__name__").map(str::to_string))
            .collect()
    };
    // First scrapes come within one interval (15 s) at each task's phase; CPU and fgprof take 14 s more, the
    // cumulative ones forward from their second scrape on (another 15 s).
    eventually(
        "every profile type forwarded",
        Duration::from_secs(45),
        || {
            let names = names_of();
            expected.iter().all(|(n, _)| names.iter().any(|m| m == n))
        },
    )
    .await;
    eprintln!(
        "every profile type arrived {:?} after the start",
        t0.elapsed()
    );

    let got = recorded("goapp", "test.recorder.out");
    for (name, delta) in expected {
        let (labels, body) = got
            .iter()
            .find(|(l, _)| l.get("__name__") == Some(name))
            .unwrap();
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        let mut want: BTreeMap<String, String> = [
            ("__name__", name),
            ("instance", addr.as_str()),
            ("job", "pyroscope.scrape.go"),
            ("service_name", "goapp"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if delta {
            want.insert("__delta__".into(), "false".into());
        }
        assert_eq!(labels, want, "labels of {name}");

        let p = decode(body);
        let types = sample_types(&p);
        // Each profile has the Go runtime's sample types and real samples from the program's work.
        let (counted, want_types): (&str, &[&str]) = match name {
            "process_cpu" => ("samples", &["samples", "cpu"]),
            "memory" => (
                "alloc_objects",
                &[
                    "alloc_objects",
                    "alloc_space",
                    "inuse_objects",
                    "inuse_space",
                ],
            ),
            "heap" => (
                "alloc_objects",
                &[
                    "alloc_objects",
                    "alloc_space",
                    "inuse_objects",
                    "inuse_space",
                ],
            ),
            "goroutine" => ("goroutine", &["goroutine"]),
            "mutex" | "block" => ("contentions", &["contentions", "delay"]),
            "fgprof" => ("samples", &["samples", "time"]),
            _ => unreachable!(),
        };
        assert_eq!(types, want_types, "sample types of {name}");
        assert!(
            sum_of(&p, counted) > 0,
            "{name}: no {counted} in {} samples",
            p.sample.len()
        );
        // The stacks are the program's own work (names from the profile's string table).
        let frame = match name {
            "process_cpu" => "main.burn",
            "memory" | "heap" => "main.allocate",
            "mutex" => "main.contend",
            _ => "main.main",
        };
        assert!(
            p.string_table.iter().any(|s| s.starts_with(frame)),
            "{name}: no {frame} frame"
        );
        if delta {
            // A delta between two scrapes 15 s apart of a program that keeps working: forwarded as gzip.
            assert!(pprof::is_gzip(body), "{name} delta not gzip-compressed");
        }
    }

    // From the Go program's side: the documented URLs, `seconds=14` for the 14 s profiles.
    for uri in [
        "/debug/pprof/profile?seconds=14",
        "/debug/fgprof?seconds=14",
        "/debug/pprof/allocs",
        "/debug/pprof/goroutine",
        "/debug/pprof/mutex",
        "/debug/pprof/block",
        "/debug/pprof/heap",
    ] {
        assert!(!app.requested(uri).is_empty(), "{uri} never requested");
    }
    let all: Vec<String> = app
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(u, _)| u.clone())
        .collect();
    assert!(
        all.iter()
            .filter(|u| u.starts_with("/debug/pprof/profile") || u.starts_with("/debug/fgprof"))
            .all(|u| u.ends_with("?seconds=14")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .filter(|u| !u.starts_with("/debug/pprof/profile") && !u.starts_with("/debug/fgprof"))
            .all(|u| !u.contains('?')),
        "only the 14 s profiles have a query: {all:#?}"
    );
    // The default interval: the cumulative profiles were scraped twice, 15 s apart (wide bounds: the time is
    // when the test read the Go program's log line).
    for uri in [
        "/debug/pprof/allocs",
        "/debug/pprof/mutex",
        "/debug/pprof/block",
    ] {
        let at = app.requested(uri);
        assert!(at.len() >= 2, "{uri}: {} requests", at.len());
        let gap = at[1] - at[0];
        assert!(
            gap > Duration::from_secs(13) && gap < Duration::from_secs(17),
            "{uri}: scrapes {gap:?} apart"
        );
    }

    let targets = env.targets("pyroscope.scrape.go");
    assert_eq!(targets.len(), 7, "{targets:#?}");
    for t in &targets {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["last_error"], "", "{t}");
    }
    env.c.shutdown().await;
    drop(app);
}
