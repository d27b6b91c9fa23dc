//! Figures for the agent process's targets, measured on the real (optimised) binary with the quickstart
//! config, printed (never asserted):
//!
//! - exec to `/-/ready` = 200 (target ≤ 100 ms), over several starts;
//! - RSS (target ≤ 15 MB): right after start, after serving profiles, and at most over a minute of the
//!   quickstart scraping itself, split into anonymous memory and mapped files (the binary's pages);
//! - the CPU cost of serving `/debug/pprof/profile?seconds=1` (target ≤ 2 % beyond the sampling itself),
//!   on the idle agent and on an agent kept busy by a steady request load from a separate process (so that
//!   profiles have samples to unwind, aggregate and name, and the load's own CPU is not counted). The cost is
//!   the difference of the agent's CPU rate (utime + stime from /proc/PID/stat) between paired neighbouring
//!   windows, one serving a profile and one not, alternating which comes first; the mean difference is
//!   reported with its standard error and a 95 % confidence interval. It includes the sampling (SIGPROF and
//!   unwinding), so it bounds the cost beyond the sampling from above.
//!
//! Run: `cargo bench -p rill --bench agent`; on the release binary users deploy:
//! `cargo build --release -p rill`, then
//! `RILL_BIN=$CARGO_TARGET_DIR/release/rill cargo bench -p rill --bench agent`
//! (PROFILE_PAIRS=N for more or fewer loaded pairs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 10;
/// Paired windows on the idle agent.
const IDLE_PAIRS: usize = 20;
/// Paired windows on the loaded agent (default; PROFILE_PAIRS overrides).
const LOADED_PAIRS: usize = 80;
const SELF_SCRAPE_SECONDS: u64 = 60;
/// Set in the load generator's environment: the agent's address.
const LOAD_ENV: &str = "RILL_AGENT_BENCH_LOAD";
/// Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

fn quickstart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.river")
}

/// The binary measured: `RILL_BIN` (e.g. the release build users deploy, `target/release/rill`), else the
/// one cargo built for this bench (bench profile: optimised, but without the release build's LTO and size
/// optimisation, so its code takes more RSS).
fn rill_bin() -> std::path::PathBuf {
    std::env::var_os("RILL_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rill").into())
}

struct Agent {
    child: Child,
    addr: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the agent; returns it with the time from exec to the first `/-/ready` 200.
fn start(storage: &Path) -> (Agent, Duration) {
    start_with(&quickstart(), "127.0.0.1:0", storage)
}

/// Starts the agent on `config`, listening on `listen`.
fn start_with(config: &Path, listen: &str, storage: &Path) -> (Agent, Duration) {
    let started = Instant::now();
    let mut child = Command::new(rill_bin())
        .arg("run")
        .arg(config)
        .args(["--server.http.listen-addr", listen, "--storage.path"])
        .arg(storage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("addr="))
            {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("rill logs its address");
    let agent = Agent { child, addr };
    loop {
        if get(&agent.addr, "/-/ready").map(|r| r.0) == Some(200) {
            return (agent, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn get(addr: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw[split + 4..].to_vec()))
}

/// A `kB` field of /proc/PID/status (VmRSS, RssAnon, RssFile).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// "X MB (A anonymous + F file)".
fn rss_split(pid: u32) -> String {
    format!(
        "{:.1} MB ({:.1} anonymous + {:.1} mapped files)",
        rss_kib(pid) as f64 / 1024.0,
        status_kib(pid, "RssAnon") as f64 / 1024.0,
        status_kib(pid, "RssFile") as f64 / 1024.0
    )
}

/// User + system CPU of the process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The load generator (run as a separate process): `/metrics` and `/` every 5 ms until killed; prints a line
/// per pair of requests served, so the bench can count the load each window carried.
fn generate_load(addr: &str) {
    let mut next = Instant::now();
    let mut out = std::io::stdout().lock();
    loop {
        let _ = get(addr, "/metrics");
        let _ = get(addr, "/");
        if writeln!(out).and_then(|()| out.flush()).is_err() {
            return;
        }
        next += Duration::from_millis(5);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// A load generator process on `addr`, killed when dropped, and the count of request pairs it completed.
struct Load(Child, std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Load {
    fn start(addr: &str) -> Load {
        let exe = std::env::current_exe().expect("the bench executable");
        let mut child = Command::new(exe)
            .env(LOAD_ENV, addr)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the load generator");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let out = child.stdout.take().expect("stdout");
        let counter = done.clone();
        std::thread::spawn(move || {
            for _ in BufReader::new(out).lines().map_while(Result::ok) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Load(child, done)
    }

    fn served(&self) -> u64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One pair of windows: the agent's CPU rate (cores) while serving a profile and without, and the load's
/// request rate (pairs per second) in each.
struct Pair {
    with: f64,
    without: f64,
    load_with: f64,
    load_without: f64,
}

/// The agent's CPU rate over a window that serves one `/debug/pprof/profile?seconds=1`, and over one of the
/// same length that does not; `pairs` pairs, alternating which comes first. Also the profiles' sizes.
fn paired_windows(agent: &Agent, pairs: usize, load: Option<&Load>) -> (Vec<Pair>, Vec<usize>) {
    let pid = agent.child.id();
    let mut out = Vec::with_capacity(pairs);
    let mut sizes = Vec::new();
    let mut last_wall = Duration::from_millis(1020);
    for i in 0..pairs {
        let mut pair = Pair {
            with: 0.0,
            without: 0.0,
            load_with: 0.0,
            load_without: 0.0,
        };
        for profile_now in [i % 2 == 0, i % 2 == 1] {
            let served = load.map_or(0, Load::served);
            let before = cpu_ticks(pid);
            let t0 = Instant::now();
            if profile_now {
                let (status, body) =
                    get(&agent.addr, "/debug/pprof/profile?seconds=1").expect("profile");
                assert_eq!(status, 200);
                sizes.push(body.len());
                last_wall = t0.elapsed();
            } else {
                std::thread::sleep(last_wall);
            }
            let wall = t0.elapsed().as_secs_f64();
            let rate = (cpu_ticks(pid) - before) as f64 / TICKS / wall;
            let load_rate = (load.map_or(0, Load::served) - served) as f64 / wall;
            if profile_now {
                (pair.with, pair.load_with) = (rate, load_rate);
            } else {
                (pair.without, pair.load_without) = (rate, load_rate);
            }
        }
        out.push(pair);
    }
    (out, sizes)
}

/// The two-sided 95 % quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    match df {
        0 => f64::NAN,
        1..=10 => TABLE[df - 1],
        // Within 0.01 of the exact quantile from 10 degrees of freedom on.
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// Prints the paired comparison: each rate, and the difference's mean, standard error and 95 % interval;
/// under load also the difference at equal load (regressing the CPU difference on the load difference: the
/// load generator shares the CPUs, so its pace, and with it the agent's work, varies between windows).
fn report_pairs(what: &str, pairs: &[Pair], sizes: &[usize], loaded: bool) {
    let n = pairs.len();
    let nf = n as f64;
    let with = pairs.iter().map(|p| p.with).sum::<f64>() / nf * 100.0;
    let without = pairs.iter().map(|p| p.without).sum::<f64>() / nf * 100.0;
    let y: Vec<f64> = pairs.iter().map(|p| (p.with - p.without) * 100.0).collect();
    let d = y.iter().sum::<f64>() / nf;
    let var = y.iter().map(|v| (v - d).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let se = (var / nf).sqrt();
    let half = t95(n - 1) * se;
    println!(
        "{what}: {n} pairs of ~1 s windows; agent CPU {without:.2} % of one core without a profile, {with:.2} % \
         while serving /debug/pprof/profile?seconds=1 ({} bytes each on average); cost {d:.2} % of one core \
         (sd {:.2}, standard error {se:.2}, 95 % interval {:.2} to {:.2}), sampling included (target <= 2 % \
         beyond sampling)",
        sizes.iter().sum::<usize>() / sizes.len().max(1),
        var.sqrt(),
        d - half,
        d + half
    );
    if !loaded || n < 3 {
        return;
    }
    let x: Vec<f64> = pairs.iter().map(|p| p.load_with - p.load_without).collect();
    let load = pairs.iter().map(|p| p.load_without).sum::<f64>() / nf;
    let xm = x.iter().sum::<f64>() / nf;
    let sxx = x.iter().map(|v| (v - xm).powi(2)).sum::<f64>();
    if sxx == 0.0 {
        return;
    }
    let sxy = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (a - xm) * (b - d))
        .sum::<f64>();
    let slope = sxy / sxx;
    let cost = d - slope * xm;
    let resid = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (b - cost - slope * a).powi(2))
        .sum::<f64>()
        / (n - 2) as f64;
    let se = (resid * (1.0 / nf + xm * xm / sxx)).sqrt();
    let half = t95(n - 2) * se;
    println!(
        "  at equal load ({load:.0} request pairs/s without a profile, {:+.1}/s while profiling; {slope:.3} % \
         of a core per request pair/s): cost {cost:.2} % of one core (standard error {se:.2}, 95 % interval \
         {:.2} to {:.2})",
        xm,
        cost - half,
        cost + half
    );
}

fn main() {
    if let Ok(addr) = std::env::var(LOAD_ENV) {
        generate_load(&addr);
        return;
    }
    // `cargo bench` passes `--bench`; a filter that names another bench means: not us.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "agent")
    {
        return;
    }
    let storage = tempfile::tempdir().expect("tempdir");
    let bin = rill_bin();
    println!(
        "measuring {} ({:.1} MB file)",
        bin.display(),
        std::fs::metadata(&bin).map_or(0, |m| m.len()) as f64 / 1e6
    );

    let mut times = Vec::new();
    for _ in 0..STARTS {
        let (agent, t) = start(storage.path());
        times.push(t);
        drop(agent);
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    println!(
        "exec to /-/ready=200: median {:.1} ms, worst {:.1} ms over {STARTS} starts (target <= 100 ms)",
        median(times.clone()).as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );

    let (agent, _) = start(storage.path());
    let pid = agent.child.id();
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "idle RSS with the quickstart config (its scrape target on another port): {} (target <= 15 MB)",
        rss_split(pid)
    );

    let (pairs, sizes) = paired_windows(&agent, IDLE_PAIRS, None);
    report_pairs("idle agent", &pairs, &sizes, false);
    println!("RSS after the idle CPU profiles: {}", rss_split(pid));

    let loaded_pairs = std::env::var("PROFILE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LOADED_PAIRS)
        .max(2);
    let load = Load::start(&agent.addr);
    std::thread::sleep(Duration::from_millis(500));
    let (pairs, sizes) = paired_windows(&agent, loaded_pairs, Some(&load));
    drop(load);
    report_pairs(
        "agent under load (/metrics + / every 5 ms, from another process)",
        &pairs,
        &sizes,
        true,
    );
    println!("RSS after the loaded CPU profiles: {}", rss_split(pid));

    let t0 = Instant::now();
    let (status, heap) = get(&agent.addr, "/debug/pprof/heap").expect("heap");
    println!(
        "/debug/pprof/heap: status {status}, {} bytes, {:.1} ms",
        heap.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "RSS after serving CPU and heap profiles: {}",
        rss_split(pid)
    );
    drop(agent);

    // The quickstart as users run it: the agent scrapes itself (a 9 s CPU profile and the heap every 10 s).
    // Its target address is rewritten to a free port, on which the agent then listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = std::fs::read_to_string(quickstart())
        .expect("quickstart")
        .replace("127.0.0.1:12345", &format!("127.0.0.1:{port}"));
    let path = storage.path().join("self-scrape.river");
    std::fs::write(&path, config).expect("write config");
    let data = storage.path().join("self-scrape-data");
    let (agent, _) = start_with(&path, &format!("127.0.0.1:{port}"), &data);
    let pid = agent.child.id();
    std::thread::sleep(Duration::from_millis(200));
    let at_start = rss_split(pid);
    let before = cpu_ticks(pid);
    let (mut peak, mut peak_anon, mut peak_file) = (0, 0, 0);
    let span = Duration::from_secs(SELF_SCRAPE_SECONDS);
    let t0 = Instant::now();
    while t0.elapsed() < span {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss_kib(pid));
        peak_anon = peak_anon.max(status_kib(pid, "RssAnon"));
        peak_file = peak_file.max(status_kib(pid, "RssFile"));
    }
    let ticks = cpu_ticks(pid) - before;
    let stored = walk_files(&data);
    println!(
        "quickstart scraping itself for {SELF_SCRAPE_SECONDS} s: RSS {at_start} at the start, {} at the end, \
         {:.1} MB at most (sampled every 250 ms; anonymous at most {:.1}, mapped files at most {:.1}) (target \
         <= 15 MB); {:.2} % of one core on average, sampling included; {stored} profiles stored",
        rss_split(pid),
        peak as f64 / 1024.0,
        peak_anon as f64 / 1024.0,
        peak_file as f64 / 1024.0,
        ticks as f64 / TICKS / t0.elapsed().as_secs_f64() * 100.0
    );
}

/// The number of files under `dir`, recursively.
fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_files(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
