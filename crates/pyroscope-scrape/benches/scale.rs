//! Scale figures for `pyroscope.scrape` (issue 5's target: 10,000 targets × 5 profile types at a 15 s
//! interval, ≤ 0.25 of a core and ≤ 200 MB RSS for the whole process), printed, never asserted.
//!
//! The component runs in a real flow `Controller` with N targets, all pointing at one fixture server that
//! serves the real profiles of `../shared/fixtures/pprof` (allocs and mutex alternate between two
//! consecutive cumulative profiles per target, so the client-side delta does real work). The fixture server
//! is this binary re-executed as a CHILD PROCESS, so the CPU and memory figures cover only the scraper.
//! Targets differ by a `__param_t` label (a distinct URL, hence distinct tasks) and a `pod` label. The
//! bench uses jemalloc, the allocator of the `rill` binary.
//!
//! Run (default: 1,000 targets, 15 s interval, 15 s warm-up, 60 s measured):
//!
//! ```text
//! cargo bench -p pyroscope-scrape --bench scale
//! SCALE_TARGETS=10000 SCALE_DURATION=60s cargo bench -p pyroscope-scrape --bench scale   # the issue's figure
//! ```
//!
//! Env vars: `SCALE_TARGETS` (N), `SCALE_INTERVAL` (scrape_interval, humantime, default 15s),
//! `SCALE_WARMUP` (time before measuring, default one interval: every task has made its first scrape),
//! `SCALE_DURATION` (measured span, default 60s), `SCALE_ALLOCS` (`wide`, the default: `/debug/pprof/allocs`
//! alternates `wide-allocs-1/2`, about 4,000 stacks each, for every target; `go`: the small `go-allocs`
//! profile of a typical service, served unchanged each time), `SCALE_WORKERS` (tokio worker threads; default
//! one per core, as `rill run` uses up to its cap).

use async_trait::async_trait;
use bytes::Bytes;
use flow::{ComponentError, Context, Controller, ControllerOptions, Sources, TypedComponent};
use pyroscope::{AppendError, Appender, Labels, RawSample, Receiver};
use river::decode::Validate;
use river::types::TypedCapsule;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "SCALE_FIXTURE_SERVER";

// The allocator of the `rill` binary, so that the RSS figure is the one a user sees.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn fixture(name: &str) -> Bytes {
    let dir = std::env::var_os("RILL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = dir.join("fixtures/pprof").join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

fn env_duration(name: &str, default: Duration) -> Duration {
    match std::env::var(name) {
        Ok(v) => humantime::parse_duration(&v).unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        Err(_) => default,
    }
}

// ----- the fixture server (child process) -----

fn serve_fixtures() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use http_body_util::Full;
        use hyper::{Request, Response};
        let allocs = match std::env::var("SCALE_ALLOCS").as_deref() {
            // A typical small service: the same small allocs profile each time (the delta is zero but still
            // decoded, diffed and re-encoded).
            Ok("go") => [fixture("go-allocs.pb.gz"), fixture("go-allocs.pb.gz")],
            _ => [
                fixture("wide-allocs-1.pb.gz"),
                fixture("wide-allocs-2.pb.gz"),
            ],
        };
        let mutex = [fixture("go-mutex.pb.gz"), fixture("go-mutex-2.pb.gz")];
        let cpu = fixture("go-cpu.pb.gz");
        let goroutine = fixture("go-goroutine.pb.gz");
        let block = fixture("go-block.pb.gz");
        // Per (path, target) request counts, so each target's cumulative profiles alternate.
        let counts: Arc<Mutex<HashMap<(String, String), u64>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("ADDR {}", listener.local_addr().expect("addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (allocs, mutex, cpu, goroutine, block, counts) = (
                allocs.clone(),
                mutex.clone(),
                cpu.clone(),
                goroutine.clone(),
                block.clone(),
                counts.clone(),
            );
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_string();
                        let t = req
                            .uri()
                            .query()
                            .unwrap_or("")
                            .split('&')
                            .find_map(|kv| kv.strip_prefix("t="))
                            .unwrap_or("")
                            .to_string();
                        let n = {
                            let mut c = counts.lock().unwrap();
                            let e = c.entry((path.clone(), t)).or_insert(0);
                            *e += 1;
                            *e - 1
                        };
                        let body = match path.as_str() {
                            "/debug/pprof/allocs" => Some(allocs[(n % 2) as usize].clone()),
                            "/debug/pprof/mutex" => Some(mutex[(n % 2) as usize].clone()),
                            "/debug/pprof/profile" => Some(cpu.clone()),
                            "/debug/pprof/goroutine" => Some(goroutine.clone()),
                            "/debug/pprof/block" => Some(block.clone()),
                            _ => None,
                        };
                        let resp = match body {
                            Some(b) => Response::builder()
                                .header("content-type", "application/octet-stream")
                                .body(Full::new(b)),
                            None => Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"404 page not found\n"))),
                        };
                        async move { Ok::<_, std::convert::Infallible>(resp.unwrap()) }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn fixture server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("fixture server address");
    let addr = line
        .strip_prefix("ADDR ")
        .expect("ADDR line")
        .trim()
        .to_string();
    Server { child, addr }
}

// ----- counting receiver: `bench.counter "out" {}` exports `receiver` -----

#[derive(Default)]
struct Counted {
    profiles: AtomicU64,
    bytes: AtomicU64,
    by_name: Mutex<HashMap<String, u64>>,
}

fn counted() -> &'static Arc<Counted> {
    static C: std::sync::OnceLock<Arc<Counted>> = std::sync::OnceLock::new();
    C.get_or_init(Arc::default)
}

struct CountingAppender(Arc<Counted>);

#[async_trait]
impl Appender for CountingAppender {
    async fn append(&self, labels: Labels, samples: Vec<RawSample>) -> Result<(), AppendError> {
        let n = samples.len() as u64;
        let bytes: usize = samples.iter().map(|s| s.raw_profile.len()).sum();
        self.0.profiles.fetch_add(n, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let name = labels.get("__name__").unwrap_or("?");
        let mut by = self.0.by_name.lock().unwrap();
        match by.get_mut(name) {
            Some(c) => *c += n,
            None => {
                by.insert(name.to_string(), n);
            }
        }
        Ok(())
    }
}

struct Counter;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
struct CounterArgs {}
impl Validate for CounterArgs {}

#[derive(Serialize)]
struct CounterExports {
    receiver: TypedCapsule<Receiver>,
}

#[async_trait]
impl TypedComponent for Counter {
    const NAME: &'static str = "bench.counter";
    type Arguments = CounterArgs;

    fn build(ctx: Context, _args: CounterArgs) -> Result<Self, ComponentError> {
        let appender = Arc::new(CountingAppender(counted().clone()));
        ctx.exports.publish(&CounterExports {
            receiver: TypedCapsule::new(Receiver::new(&ctx.id, appender)),
        })?;
        Ok(Counter)
    }
    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }
    async fn update(&self, _args: CounterArgs) -> Result<(), ComponentError> {
        Ok(())
    }
}

// ----- process figures -----

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Clock ticks are 1/100 s on Linux.
    (n(11) + n(12)) as f64 / 100.0
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Counts the distinct non-empty `last_error` values in riverjson debug info.
fn collect_errors(v: &serde_json::Value, out: &mut HashMap<String, usize>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("key").and_then(|k| k.as_str()) == Some("last_error") {
                if let Some(e) = m.get("value").and_then(|v| v["value"].as_str()) {
                    if !e.is_empty() {
                        *out.entry(e.chars().take(160).collect()).or_default() += 1;
                    }
                }
            }
            m.values().for_each(|x| collect_errors(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_errors(x, out)),
        _ => {}
    }
}

fn config(n: usize, server: &str, interval: Duration) -> String {
    let mut targets = String::with_capacity(n * 80);
    for i in 0..n {
        targets.push_str(&format!(
            "    {{\"__address__\" = \"{server}\", \"__param_t\" = \"{i}\", \"pod\" = \"pod-{i}\"}},\n"
        ));
    }
    format!(
        r#"
bench.counter "out" {{}}

pyroscope.scrape "scale" {{
  targets = [
{targets}  ]
  forward_to      = [bench.counter.out.receiver]
  scrape_interval = "{interval}"
}}
"#,
        interval = humantime::format_duration(interval)
    )
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_fixtures();
        return;
    }
    // `cargo bench` passes `--bench`; a filter that names another bench means: not us.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "scale")
    {
        return;
    }
    let n: usize = std::env::var("SCALE_TARGETS")
        .ok()
        .map(|v| v.parse().expect("SCALE_TARGETS is a number"))
        .unwrap_or(1000);
    let interval = env_duration("SCALE_INTERVAL", Duration::from_secs(15));
    let warmup = env_duration("SCALE_WARMUP", interval);
    let duration = env_duration("SCALE_DURATION", Duration::from_secs(60));

    let server = start_server();
    let server_pid = server.child.id().to_string();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("SCALE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    let rt = builder.enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = flow::Registry::new();
        pyroscope_scrape::register(&mut registry).expect("register");
        registry.register::<Counter>().expect("register bench.counter");
        let c = Controller::new(
            Arc::new(registry),
            ControllerOptions {
                storage_path: dir.path().join("data"),
                ..ControllerOptions::default()
            },
        );
        let text = config(n, &server.addr, interval);
        let t0 = Instant::now();
        let cpu0 = cpu_secs("self");
        let sources = Sources::parse([("main.river", text.as_str())]).expect("config parses");
        let report = c.load(sources).await.expect("config is accepted");
        assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
        c.settle().await;
        drop(text);
        println!(
            "allocs fixture: {}",
            std::env::var("SCALE_ALLOCS").unwrap_or_else(|_| "wide".into())
        );
        println!(
            "pyroscope.scrape scale: {n} targets x 5 profile types = {} tasks, interval {}, expected {:.0} scrapes/s",
            n * 5,
            humantime::format_duration(interval),
            (n * 5) as f64 / interval.as_secs_f64()
        );
        println!(
            "load: {:.2} s wall, {:.2} CPU s; RSS after load {:.1} MB",
            t0.elapsed().as_secs_f64(),
            cpu_secs("self") - cpu0,
            mb(status_kib("self", "VmRSS:"))
        );

        tokio::time::sleep(warmup).await;
        let (p0, b0) = (
            counted().profiles.load(Ordering::Relaxed),
            counted().bytes.load(Ordering::Relaxed),
        );
        let (cpu0, scpu0, t0) = (cpu_secs("self"), cpu_secs(&server_pid), Instant::now());
        let mut peak_during = 0;
        while t0.elapsed() < duration {
            tokio::time::sleep(Duration::from_secs(1)).await;
            peak_during = peak_during.max(status_kib("self", "VmRSS:"));
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_secs("self") - cpu0;
        let scpu = cpu_secs(&server_pid) - scpu0;
        let profiles = counted().profiles.load(Ordering::Relaxed) - p0;
        let bytes = counted().bytes.load(Ordering::Relaxed) - b0;
        println!(
            "measured {wall:.1} s after {} warm-up: {:.0} profiles/s forwarded ({:.1} MB/s)",
            humantime::format_duration(warmup),
            profiles as f64 / wall,
            bytes as f64 / wall / 1e6
        );
        println!(
            "scraper CPU: {:.3} cores (target <= 0.25); fixture server (child) {:.3} cores",
            cpu / wall,
            scpu / wall
        );
        println!(
            "scraper RSS: peak (VmHWM) {:.1} MB, peak while measuring {:.1} MB, final {:.1} MB (target <= 200 MB)",
            mb(status_kib("self", "VmHWM:")),
            mb(peak_during),
            mb(status_kib("self", "VmRSS:"))
        );
        let mut by: Vec<(String, u64)> = counted()
            .by_name
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        by.sort();
        println!("forwarded in total, by __name__: {by:?}");
        #[cfg(target_os = "linux")]
        {
            use tikv_jemalloc_ctl::{epoch, stats};
            let _ = epoch::advance();
            let m = |r: tikv_jemalloc_ctl::Result<usize>| r.unwrap_or(0) as f64 / 1e6;
            println!(
                "jemalloc: allocated {:.1} MB, active {:.1} MB, resident {:.1} MB, retained {:.1} MB",
                m(stats::allocated::read()),
                m(stats::active::read()),
                m(stats::resident::read()),
                m(stats::retained::read())
            );
            // SCALE_HEAP_PROFILE=FILE: the sampled live heap, for `go tool pprof -sample_index=inuse_space`.
            if let Some(path) = std::env::var_os("SCALE_HEAP_PROFILE") {
                match jemalloc_pprof::PROF_CTL.as_ref() {
                    Some(ctl) => match ctl.lock().await.dump_pprof() {
                        Ok(gz) => {
                            std::fs::write(&path, gz).expect("write the heap profile");
                            println!("heap profile written to {}", PathBuf::from(path).display());
                        }
                        Err(e) => println!("heap profile: {e}"),
                    },
                    None => println!("heap profile: jemalloc profiling is off"),
                }
            }
        }
        let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
        println!("open file descriptors: {fds}");
        if let Some(info) = c.component("pyroscope.scrape.scale") {
            let s = info.debug_info.to_string();
            println!(
                "task health: up {}, down {}",
                s.matches("\"up\"").count(),
                s.matches("\"down\"").count()
            );
            let mut errors: HashMap<String, usize> = HashMap::new();
            collect_errors(&info.debug_info, &mut errors);
            let mut errors: Vec<_> = errors.into_iter().collect();
            errors.sort_by_key(|e| std::cmp::Reverse(e.1));
            for (e, n) in errors.iter().take(5) {
                println!("  last_error x{n}: {e}");
            }
        }
        c.shutdown().await;
    });
}
