//! Cluster benchmarks (figures printed, not asserted): `cargo bench -p cluster --bench cluster`.
//!
//! 1. Ownership of 100,000 targets recomputed after a membership change (10 live participants, in-process
//!    nodes over real UDP): time for every `owns` call; target ≤ 50 ms.
//! 2. Gossip traffic per node in a 10-node in-process cluster, settled, over a 15 s window: bytes sent and
//!    received per second, for several settings; target ≤ 1 KB/s.
//! 3. Memory per node: heap bytes (counting allocator) and RSS growth for starting 10 nodes, divided by 10;
//!    target ≤ 5 MB.

use cluster::{ClusterConfig, ClusterService};
use flow::{Cluster, PeerState};
use std::alloc::{GlobalAlloc, Layout, System};
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
    let sent0: Vec<u64> = nodes
        .iter()
        .map(|n| n.metrics().gossip.sent_bytes.get())
        .collect();
    let recv0: Vec<u64> = nodes
        .iter()
        .map(|n| n.metrics().gossip.received_bytes.get())
        .collect();
    let window = Duration::from_secs(15);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    let sent: Vec<f64> = nodes
        .iter()
        .zip(&sent0)
        .map(|(n, s0)| (n.metrics().gossip.sent_bytes.get() - s0) as f64 / secs)
        .collect();
    let recv: Vec<f64> = nodes
        .iter()
        .zip(&recv0)
        .map(|(n, r0)| (n.metrics().gossip.received_bytes.get() - r0) as f64 / secs)
        .collect();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "gossip: 10 nodes, interval {:?}, {}: per node sent {:.0} B/s (max {:.0}), received {:.0} B/s [target <= 1 KB/s]",
        gossip,
        if compress { "zstd" } else { "raw" },
        avg(&sent),
        max(&sent),
        avg(&recv)
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        ownership_bench().await;
        memory_bench().await;
        detection_bench().await;
        gossip_bench(Duration::from_secs(1), true).await;
        gossip_bench(Duration::from_secs(1), false).await;
        gossip_bench(Duration::from_millis(500), true).await;
    });
}
