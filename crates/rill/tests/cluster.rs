//! Clustering with real `rill run` processes on loopback: 300 targets served by one fixture server that
//! logs every request, shared by the nodes through `clustering { enabled = true }`.
//!
//! Each test runs several processes for tens of seconds (scrape interval 2 s, gossip every 500 ms); they
//! run one at a time so their timings do not disturb each other.

mod common;

use common::Agent;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const TARGETS: usize = 300;
const INTERVAL: Duration = Duration::from_secs(2);
const GOSSIP: &str = "500ms";
/// `phi_threshold` (6) × the gossip interval: how long a silent node takes to be declared dead.
const DETECTION: Duration = Duration::from_secs(3);

/// Serialises the tests: each starts several processes and measures gaps of about a second.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An HTTP/1.1 server answering `/debug/pprof/allocs?target=tNNN` with a real pprof fixture and logging
/// (target, time) for every request.
struct Fixture {
    addr: String,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Fixture {
    fn start() -> Fixture {
        let profile = std::fs::read(common::shared_dir().join("fixtures/pprof/go-allocs.pb.gz"))
            .expect("fixture profile");
        let profile = Arc::new(profile);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (sink, profile) = (sink.clone(), profile.clone());
                std::thread::spawn(move || serve(conn, &sink, &profile));
            }
        });
        Fixture { addr, log }
    }

    /// Requests per target received in `[from, to)`.
    fn counts(&self, from: Instant, to: Instant) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (t, at) in self.log.lock().unwrap().iter() {
            if *at >= from && *at < to {
                *m.entry(t.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    /// Request times per target.
    fn times(&self) -> HashMap<String, Vec<Instant>> {
        let mut m: HashMap<String, Vec<Instant>> = HashMap::new();
        for (t, at) in self.log.lock().unwrap().iter() {
            m.entry(t.clone()).or_default().push(*at);
        }
        m
    }
}

/// Serves keep-alive HTTP/1.1 requests on one connection.
fn serve(conn: TcpStream, log: &Mutex<Vec<(String, Instant)>>, profile: &[u8]) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let target = path
            .split_once("target=")
            .map(|(_, t)| t.split('&').next().unwrap_or("").to_string());
        let ok = path.starts_with("/debug/pprof/allocs") && target.is_some();
        if let Some(t) = target.filter(|_| ok) {
            log.lock().unwrap().push((t, Instant::now()));
        }
        let (status, payload): (&str, &[u8]) = if ok {
            ("200 OK", profile)
        } else {
            ("404 Not Found", b"not found")
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(payload).is_err() {
            return;
        }
    }
}

fn target_name(i: usize) -> String {
    format!("t{i:03}")
}

fn config(fixture: &Fixture) -> String {
    let targets: Vec<String> = (0..TARGETS)
        .map(|i| {
            format!(
                "    {{\"__address__\" = \"{}\", \"__param_target\" = \"{}\", \"service_name\" = \"svc\"}},",
                fixture.addr,
                target_name(i)
            )
        })
        .collect();
    format!(
        r#"pyroscope.scrape "shared" {{
  targets = [
{}
  ]
  forward_to      = []
  scrape_interval = "{}s"

  profiling_config {{
    profile.block {{ enabled = false }}
    profile.goroutine {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
    profile.fgprof {{ enabled = false }}
  }}

  clustering {{
    enabled = true
  }}
}}
"#,
        targets.join("\n"),
        INTERVAL.as_secs()
    )
}

/// Starts a clustered node named `name`, joining `join` (if any).
fn node(config: &str, name: &str, join: Option<&Agent>) -> Agent {
    let mut args = vec![
        "--cluster.enabled".to_string(),
        format!("--cluster.node-name={name}"),
        format!("--cluster.gossip-interval={GOSSIP}"),
        "--cluster.name=test".to_string(),
    ];
    if let Some(j) = join {
        args.push(format!("--cluster.join-addresses={}", j.addr));
    }
    Agent::start_with_args(config, &args)
}

/// The peers a node sees: name → state.
fn peers(a: &Agent) -> BTreeMap<String, String> {
    a.get_json("/api/v0/web/peers")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The targets a node scrapes, from its component's debug info (`target=tNNN` in each task's URL).
fn owned(a: &Agent) -> BTreeSet<String> {
    let (status, body) = a.get_text("/api/v0/web/components/pyroscope.scrape.shared");
    assert_eq!(status, 200, "{body}");
    let mut out = BTreeSet::new();
    let mut rest = body.as_str();
    while let Some(i) = rest.find("target=t") {
        let t = &rest[i + 7..];
        let name: String = t.chars().take(4).collect();
        out.insert(name);
        rest = &t[4.min(t.len())..];
    }
    out
}

/// Polls `cond` until it holds or `limit` passes.
fn wait(what: &str, limit: Duration, nodes: &[&Agent], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
            panic!(
                "timed out waiting until {what}; logs:\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every node sees exactly `names` as participants, and their shares add up: each target owned
/// by exactly one node.
fn settle(nodes: &[&Agent], names: &[&str]) -> Vec<BTreeSet<String>> {
    let want: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.to_string(), "participant".to_string()))
        .collect();
    wait("membership settles", Duration::from_secs(30), nodes, || {
        nodes.iter().all(|n| peers(n) == want)
    });
    let mut shares = Vec::new();
    wait("ownership settles", Duration::from_secs(15), nodes, || {
        shares = nodes.iter().map(|n| owned(n)).collect::<Vec<_>>();
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&String> = shares.iter().flatten().collect();
        total == TARGETS && union.len() == TARGETS
    });
    shares
}

/// Over `intervals` scrape intervals from now, every target is requested once per interval (one node
/// scrapes it: a second node would double the count).
fn assert_scraped_once_per_interval(fixture: &Fixture, intervals: u32) {
    // Let scrapes that were already started by a previous owner finish.
    std::thread::sleep(INTERVAL);
    let from = Instant::now();
    std::thread::sleep(INTERVAL * intervals);
    let counts = fixture.counts(from, Instant::now());
    let n = intervals as usize;
    let times = fixture.times();
    let bad: Vec<String> = (0..TARGETS)
        .map(target_name)
        .filter(|t| !(n - 1..=n + 1).contains(&counts.get(t).copied().unwrap_or(0)))
        .map(|t| {
            let at: Vec<String> = times
                .get(&t)
                .map(|v| {
                    v.iter()
                        .filter(|at| **at >= from)
                        .map(|at| format!("{:.2}", (*at - from).as_secs_f64()))
                        .collect()
                })
                .unwrap_or_default();
            format!("{t}: {} requests at {at:?} s", at.len())
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} targets not requested once per interval over {intervals} intervals (expected {n} ± 1):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn three_nodes_scrape_each_target_exactly_once() {
    let _serial = serial();
    let fixture = Fixture::start();
    let cfg = config(&fixture);
    let a = node(&cfg, "a", None);
    let b = node(&cfg, "b", Some(&a));
    let c = node(&cfg, "c", Some(&a));
    let shares = settle(&[&a, &b, &c], &["a", "b", "c"]);
    for s in &shares {
        assert!(
            (60..=140).contains(&s.len()),
            "uneven shares: {:?}",
            shares.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
    }
    // What an operator sees: the metrics and the peers page.
    let (_, metrics) = a.get_text("/metrics");
    assert!(
        metrics.contains("rill_cluster_peers{state=\"participant\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rill_cluster_gossip_sent_bytes_total"),
        "{metrics}"
    );
    let (status, page) = a.get_text("/peers");
    assert_eq!(status, 200);
    for name in ["a", "b", "c"] {
        assert!(page.contains(&format!("<td>{name}")), "{page}");
    }
    assert!(page.contains("(this node)"));
    let peers = a.get_json("/api/v0/web/peers");
    let me: Vec<_> = peers
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["isSelf"] == true)
        .collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["addr"], a.addr.as_str());
    assert_scraped_once_per_interval(&fixture, 5);
}

#[test]
fn a_killed_node_s_targets_are_taken_over() {
    let _serial = serial();
    let fixture = Fixture::start();
    let cfg = config(&fixture);
    let a = node(&cfg, "a", None);
    let b = node(&cfg, "b", Some(&a));
    let mut c = node(&cfg, "c", Some(&a));
    let shares = settle(&[&a, &b, &c], &["a", "b", "c"]);
    let orphans = shares[2].clone();
    c.signal("KILL");
    let killed = Instant::now();
    c.wait_exit(Duration::from_secs(5)).expect("killed");
    let shares = settle(&[&a, &b], &["a", "b"]);
    assert_eq!(shares[0].len() + shares[1].len(), TARGETS);
    // Every orphan is scraped by a survivor within 3 failure-detection periods (plus the interval until
    // its next scheduled scrape).
    let limit = DETECTION * 3 + INTERVAL;
    wait(
        "orphans scraped again",
        limit + Duration::from_secs(5),
        &[&a, &b],
        || {
            let times = fixture.times();
            orphans.iter().all(|t| {
                times
                    .get(t)
                    .is_some_and(|v| v.iter().any(|at| *at > killed))
            })
        },
    );
    let times = fixture.times();
    let worst = orphans
        .iter()
        .map(|t| *times[t].iter().find(|at| **at > killed).unwrap() - killed)
        .max()
        .unwrap();
    eprintln!("takeover after kill -9: slowest orphan scraped again after {worst:?}");
    assert!(
        worst <= limit,
        "an orphan waited {worst:?} (limit {limit:?})"
    );
    assert_scraped_once_per_interval(&fixture, 4);
}

#[test]
fn a_fourth_node_takes_a_quarter() {
    let _serial = serial();
    let fixture = Fixture::start();
    let cfg = config(&fixture);
    let a = node(&cfg, "a", None);
    let b = node(&cfg, "b", Some(&a));
    let c = node(&cfg, "c", Some(&b));
    let before = settle(&[&a, &b, &c], &["a", "b", "c"]);
    let d = node(&cfg, "d", Some(&c));
    let after = settle(&[&a, &b, &c, &d], &["a", "b", "c", "d"]);
    let owner = |shares: &[BTreeSet<String>], t: &str| shares.iter().position(|s| s.contains(t));
    let mut moved = 0;
    for i in 0..TARGETS {
        let t = target_name(i);
        let (x, y) = (owner(&before, &t), owner(&after, &t));
        if x != y {
            assert_eq!(y, Some(3), "{t} moved between old nodes");
            moved += 1;
        }
    }
    let share = moved as f64 / TARGETS as f64;
    eprintln!("share moved to the fourth node: {share:.3}");
    // The targets' labels include the fixture's random port, so which 300 keys these are changes from run to
    // run: the moved share is binomial (σ = √(300·¼·¾)/300 ≈ 0.025), and ¼ ± 5 % would be only a 2σ window
    // (a false failure in 1 run of 20). The ¼ ± 5 % property itself is checked on 10,000 fixed keys in
    // crates/cluster/tests; here, beyond "only to the new node" above, the share must be within 4σ.
    assert!((0.15..=0.35).contains(&share), "moved share {share}");
    assert_scraped_once_per_interval(&fixture, 4);
}

#[test]
fn sigterm_hands_targets_over_without_a_gap() {
    let _serial = serial();
    let fixture = Fixture::start();
    let cfg = config(&fixture);
    let a = node(&cfg, "a", None);
    let b = node(&cfg, "b", Some(&a));
    let mut c = node(&cfg, "c", Some(&a));
    let shares = settle(&[&a, &b, &c], &["a", "b", "c"]);
    let leaving = shares[2].clone();
    // A few intervals of steady state first, so every target has a scrape before the signal.
    std::thread::sleep(INTERVAL * 2);
    let term = Instant::now();
    c.signal("TERM");
    let status = c
        .wait_exit(Duration::from_secs(20))
        .expect("exits on SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        c.log()
    );
    settle(&[&a, &b], &["a", "b"]);
    std::thread::sleep(INTERVAL * 2);
    // For each target c had: no gap between consecutive scrapes around the handover longer than an interval
    // (plus scheduling slack).
    let times = fixture.times();
    let slack = Duration::from_millis(700);
    let mut worst = Duration::ZERO;
    for t in &leaving {
        let v = &times[t];
        let around: Vec<&Instant> = v
            .iter()
            .filter(|at| **at + INTERVAL * 2 > term && **at < term + Duration::from_secs(12))
            .collect();
        assert!(
            around.len() >= 2,
            "{t} has too few scrapes around the handover"
        );
        for w in around.windows(2) {
            worst = worst.max(*w[1] - *w[0]);
        }
    }
    eprintln!("SIGTERM handover: longest gap between scrapes of a moved target {worst:?}");
    assert!(
        worst <= INTERVAL + slack,
        "a moved target waited {worst:?} between scrapes"
    );
    assert_scraped_once_per_interval(&fixture, 3);
}
