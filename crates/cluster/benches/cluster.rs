//! Cluster benchmarks (figures printed, not asserted): `cargo bench -p cluster --bench cluster`.
//!
//! 1. Ownership of 100,000 targets recomputed after a membership change (10 live participants, in-process
//!    nodes over real UDP): time for every `owns` call; target ≤ 50 ms.
//! 2. Gossip traffic per node in a 10-node in-process cluster, settled, over a 15 s window: bytes sent and
//!    received per second, for several settings; target ≤ 1 KB/s.
//! 3. Memory per node: (a) one node per child process (this binary run again), 10 of them in a cluster: each
//!    process's RSS, and the same minus the RSS of an idle child (same runtime, no node); (b) 10 nodes in this
//!    process: heap bytes (counting allocator) and RSS growth, divided by 10. Target ≤ 5 MB.

use cluster::{ClusterConfig, ClusterService};
use flow::{Cluster, PeerState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// VmRSS of process `pid`, in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The child side of the memory bench: `CLUSTER_BENCH_CHILD` is `idle` or `node,<name>,<join address or
/// empty>,<expected cluster size>`. Prints `addr <advertise address>` and `settled` (or `ready` when idle),
/// then runs until its stdin closes.
fn child_main(spec: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut parts = spec.split(',');
    let node = rt.block_on(async {
        if parts.next() != Some("node") {
            println!("ready");
            return None;
        }
        let name = parts.next().expect("name");
        let join = parts.next().filter(|j| !j.is_empty());
        let expect: usize = parts.next().and_then(|e| e.parse().ok()).expect("size");
        let mut c = ClusterConfig::new(name, "127.0.0.1:0".parse().unwrap());
        c.join_addresses = join.iter().map(|j| j.to_string()).collect();
        c.cluster_name = "bench-rss".into();
        let node = ClusterService::start(c).await.expect("start");
        node.become_participant().await;
        println!("addr {}", node.advertise_addr());
        while !(node.peers().len() == expect
            && node
                .peers()
                .iter()
                .all(|p| p.state == PeerState::Participant))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("settled");
        Some(node)
    });
    let _ = std::io::stdout().flush();
    // Gossip goes on in the runtime's threads until the parent closes stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(node);
    drop(rt);
}

/// Child processes, killed when dropped.
struct Children(Vec<(Child, BufReader<std::process::ChildStdout>)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (c, _) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Children {
    fn spawn(&mut self, spec: &str) -> usize {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("CLUSTER_BENCH_CHILD", spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        self.0.push((child, out));
        self.0.len() - 1
    }

    /// Reads child `i`'s lines until one starts with `prefix`; returns the rest of it.
    fn expect(&mut self, i: usize, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.0[i].1.read_line(&mut line).expect("child output");
            assert!(n > 0, "child {i} ended before saying {prefix:?}");
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    fn rss(&self, i: usize) -> u64 {
        rss_of(self.0[i].0.id()).unwrap_or(0)
    }
}

fn process_memory_bench() {
    const N: usize = 10;
    let mut children = Children(Vec::new());
    let idle = children.spawn("idle");
    children.expect(idle, "ready");
    let first = children.spawn(&format!("node,node-00,,{N}"));
    let seed = children.expect(first, "addr");
    let mut nodes = vec![first];
    for i in 1..N {
        nodes.push(children.spawn(&format!("node,node-{i:02},{seed},{N}")));
    }
    for &i in &nodes {
        children.expect(i, "settled");
    }
    // Settled; let gossip run for a while (buffers, failure-detector windows fill up).
    std::thread::sleep(Duration::from_secs(10));
    let idle_rss = children.rss(idle) as f64;
    let rss: Vec<f64> = nodes.iter().map(|&i| children.rss(i) as f64).collect();
    let avg = rss.iter().sum::<f64>() / N as f64;
    let max = rss.iter().cloned().fold(0.0, f64::max);
    println!(
        "memory: one node per process, {N}-node cluster, settled + 10 s: RSS {:.0} KB per process (max {:.0}); idle process (same runtime, no node) {:.0} KB; the node's share {:.0} KB (max {:.0}) [target <= 5 MB]",
        avg / 1024.0,
        max / 1024.0,
        idle_rss / 1024.0,
        (avg - idle_rss) / 1024.0,
        (max - idle_rss) / 1024.0,
    );
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn config(
    name: &str,
    join: Option<std::net::SocketAddr>,
    gossip: Duration,
    compress: bool,
) -> ClusterConfig {
    let mut c = ClusterConfig::new(name, "127.0.0.1:0".parse().unwrap());
    c.join_addresses = join.iter().map(|a| a.to_string()).collect();
    c.gossip_interval = gossip;
    c.compress = compress;
    c.cluster_name = "bench".into();
    c
}

async fn start_cluster(n: usize, gossip: Duration, compress: bool) -> Vec<ClusterService> {
    let first = ClusterService::start(config("node-00", None, gossip, compress))
        .await
        .expect("start");
    let seed = first.advertise_addr();
    let mut nodes = vec![first];
    for i in 1..n {
        let name = format!("node-{i:02}");
        nodes.push(
            ClusterService::start(config(&name, Some(seed), gossip, compress))
                .await
                .expect("start"),
        );
    }
    for node in &nodes {
        node.become_participant().await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !nodes.iter().all(|node| {
        let p = node.peers();
        p.len() == n && p.iter().all(|p| p.state == PeerState::Participant)
    }) {
        assert!(Instant::now() < deadline, "cluster did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes
}

fn targets(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{{__address__=\"10.{}.{}.{}:4040\", job=\"pyroscope.scrape.default\", service_name=\"svc-{}\"}}",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                i % 50
            )
        })
        .collect()
}

async fn ownership_bench() {
    let nodes = start_cluster(11, Duration::from_millis(200), true).await;
    let ts = targets(100_000);
    // The change: one participant leaves (terminates), the view on node 0 updates.
    nodes[10].terminate().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes[0]
        .peers()
        .iter()
        .filter(|p| p.state == PeerState::Participant)
        .count()
        != 10
    {
        assert!(Instant::now() < deadline, "terminating node not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut best = Duration::MAX;
    let mut owned = 0;
    for _ in 0..5 {
        let t = Instant::now();
        owned = ts.iter().filter(|k| nodes[0].owns(k.as_bytes())).count();
        best = best.min(t.elapsed());
    }
    println!(
        "ownership: 100,000 targets over 10 participants recomputed in {:.1} ms (best of 5; node-00 owns {owned}) [target <= 50 ms]",
        best.as_secs_f64() * 1e3
    );
    // The pure hash over 100 participants, for scale.
    let members: Vec<cluster::shard::Member> = (0..100)
        .map(|i| cluster::shard::Member::new(format!("node-{i:03}"), format!("10.0.0.{i}:12345")))
        .collect();
    let t = Instant::now();
    let mut sum = 0usize;
    for k in &ts {
        sum += cluster::shard::owner(k.as_bytes(), &members).map_or(0, |m| m.name.len());
    }
    println!(
        "ownership: 100,000 targets over 100 participants (hash only) in {:.1} ms ({sum})",
        t.elapsed().as_secs_f64() * 1e3
    );
}

async fn gossip_bench(gossip: Duration, compress: bool) {
    let nodes = start_cluster(10, gossip, compress).await;
    // Let the joins' deltas pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = |n: &ClusterService| {
        let g = &n.metrics().gossip;
        (g.sent_bytes.get(), g.received_bytes.get())
    };
    let before: Vec<(u64, u64)> = nodes.iter().map(counts).collect();
    let window = Duration::from_secs(20);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    // Per node: (sent, received) bytes per second.
    let rates: Vec<(f64, f64)> = nodes
        .iter()
        .zip(&before)
        .map(|(n, (s0, r0))| {
            let (s, r) = counts(n);
            ((s - s0) as f64 / secs, (r - r0) as f64 / secs)
        })
        .collect();
    let avg =
        |f: &dyn Fn(&(f64, f64)) -> f64| rates.iter().map(f).sum::<f64>() / rates.len() as f64;
    let max = |f: &dyn Fn(&(f64, f64)) -> f64| rates.iter().map(f).fold(0.0, f64::max);
    let sent = |r: &(f64, f64)| r.0;
    let recv = |r: &(f64, f64)| r.1;
    let both = |r: &(f64, f64)| r.0 + r.1;
    println!(
        "gossip: 10 nodes, interval {:?}, {}, UDP payload per node over {:.0} s: sent {:.0} B/s (busiest {:.0}), received {:.0} B/s (busiest {:.0}), sent+received {:.0} B/s (busiest {:.0}) [target: sent+received <= 1 KB/s per node]",
        gossip,
        if compress { "zstd" } else { "raw" },
        secs,
        avg(&sent),
        max(&sent),
        avg(&recv),
        max(&recv),
        avg(&both),
        max(&both),
    );
    for n in &nodes {
        n.leave().await;
    }
}

/// Kills (drops) three nodes of a 10-node cluster with the default settings, one after the other: time until
/// every survivor has declared the node dead.
async fn detection_bench() {
    let defaults = ClusterConfig::new("x", "127.0.0.1:0".parse().unwrap());
    let mut nodes = start_cluster(10, defaults.gossip_interval, true).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut took = Vec::new();
    for _ in 0..3 {
        let victim = nodes.pop().expect("node");
        let t = Instant::now();
        drop(victim);
        let n = nodes.len();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !nodes.iter().all(|node| node.peers().len() == n) {
            assert!(Instant::now() < deadline, "killed node never detected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took.push(t.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "failure detection (defaults: gossip {:?}, phi {}): killed node declared dead by all survivors after {:?}",
        defaults.gossip_interval, defaults.phi_threshold, took
    );
}

async fn memory_bench() {
    // Warm up the runtime and allocator with one throwaway cluster.
    let warm = start_cluster(2, Duration::from_millis(500), true).await;
    for n in &warm {
        n.leave().await;
    }
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heap0 = LIVE.load(Ordering::Relaxed);
    let rss0 = rss_bytes().unwrap_or(0);
    let nodes = start_cluster(10, Duration::from_millis(500), true).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let heap = LIVE.load(Ordering::Relaxed) - heap0;
    let rss = rss_bytes().unwrap_or(0).saturating_sub(rss0);
    println!(
        "memory: 10 in-process nodes, settled: heap {:.0} KB per node, RSS growth {:.0} KB per node [target <= 5 MB]",
        heap as f64 / 10.0 / 1024.0,
        rss as f64 / 10.0 / 1024.0
    );
    drop(nodes);
}

fn main() {
    if let Ok(spec) = std::env::var("CLUSTER_BENCH_CHILD") {
        child_main(&spec);
        return;
    }
    // `cargo bench -p cluster --bench cluster -- gossip memory` runs only those parts.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if run("memory") {
        process_memory_bench();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if run("ownership") {
            ownership_bench().await;
        }
        if run("memory") {
            memory_bench().await;
        }
        if run("detection") {
            detection_bench().await;
        }
        if run("gossip") {
            gossip_bench(Duration::from_secs(1), true).await;
            gossip_bench(Duration::from_secs(1), false).await;
            gossip_bench(Duration::from_millis(500), true).await;
        }
    });
}
