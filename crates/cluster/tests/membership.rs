//! Several in-process nodes gossiping over real UDP sockets on 127.0.0.1.

use cluster::{ClusterConfig, ClusterService};
use flow::{Cluster, PeerState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;

fn config(name: &str, listen: SocketAddr, join: &[SocketAddr]) -> ClusterConfig {
    let mut c = ClusterConfig::new(name, listen);
    c.join_addresses = join.iter().map(|a| a.to_string()).collect();
    c.gossip_interval = Duration::from_millis(200);
    c.debounce = Duration::from_millis(100);
    c.leave_delay = Duration::from_millis(800);
    c.rejoin_interval = Duration::from_millis(500);
    c.cluster_name = "test".into();
    c
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(name: &str, join: &[SocketAddr]) -> ClusterService {
    ClusterService::start(config(name, any_port(), join))
        .await
        .unwrap()
}

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| {
            format!(
                "{{__address__=\"10.1.{}.{}:4040\", service_name=\"svc-{}\"}}",
                i / 250,
                i % 250,
                i % 7
            )
        })
        .collect()
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    start.elapsed()
}

/// Every node sees exactly `nodes` as live peers, each in the state given.
fn settled(nodes: &[&ClusterService], expected: &[(&str, PeerState)]) -> bool {
    let mut want: Vec<(String, PeerState)> =
        expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    want.sort();
    nodes.iter().all(|n| {
        let mut got: Vec<(String, PeerState)> =
            n.peers().into_iter().map(|p| (p.name, p.state)).collect();
        got.sort();
        got == want
    })
}

/// Who owns each key: panics unless exactly one node owns it.
fn ownership(nodes: &[&ClusterService], keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let owners: Vec<&str> = nodes
                .iter()
                .filter(|n| n.owns(k.as_bytes()))
                .map(|n| n.node_name())
                .collect();
            assert_eq!(owners.len(), 1, "key {k} owned by {owners:?}");
            owners[0].to_string()
        })
        .collect()
}

fn shares(owners: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for o in owners {
        *m.entry(o.clone()).or_insert(0) += 1;
    }
    m
}

async fn three_participants() -> (ClusterService, ClusterService, ClusterService) {
    let a = start("a", &[]).await;
    let b = start("b", &[a.advertise_addr()]).await;
    let c = start("c", &[a.advertise_addr()]).await;
    for n in [&a, &b, &c] {
        n.become_participant().await;
    }
    let p = PeerState::Participant;
    wait_until(
        "three participants see each other",
        Duration::from_secs(15),
        || settled(&[&a, &b, &c], &[("a", p), ("b", p), ("c", p)]),
    )
    .await;
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_each_other_through_one_seed_and_split_the_keys() {
    let (a, b, c) = three_participants().await;
    let ks = keys();
    let owners = ownership(&[&a, &b, &c], &ks);
    let s = shares(&owners);
    for n in ["a", "b", "c"] {
        let share = s.get(n).copied().unwrap_or(0) as f64 / KEYS as f64;
        assert!(
            (0.28..=0.39).contains(&share),
            "{n} owns {share} of the keys: {s:?}"
        );
    }
    // Every node names the same owner for every key.
    for (k, o) in ks.iter().zip(&owners) {
        for n in [&a, &b, &c] {
            assert_eq!(n.owner(k.as_bytes()).as_deref(), Some(o.as_str()));
        }
    }
    // The peers list: everyone, self marked, addresses advertised.
    let peers = b.peers();
    assert_eq!(peers.len(), 3);
    let me: Vec<_> = peers.iter().filter(|p| p.is_self).collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0].name, "b");
    assert_eq!(me[0].addr, b.advertise_addr().to_string());
    let pa = peers.iter().find(|p| p.name == "a").unwrap();
    assert_eq!(pa.addr, a.advertise_addr().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_detected_and_only_its_keys_move() {
    let (a, b, c) = three_participants().await;
    let ks = keys();
    let before = ownership(&[&a, &b, &c], &ks);
    let changes = Arc::new(AtomicUsize::new(0));
    let counter = changes.clone();
    a.on_change(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    // Dropped without terminating: it just stops answering, as after kill -9.
    drop(c);
    let p = PeerState::Participant;
    let took = wait_until(
        "the killed node is declared dead",
        Duration::from_secs(20),
        || settled(&[&a, &b], &[("a", p), ("b", p)]),
    )
    .await;
    eprintln!("failure detected after {took:?}");
    let after = ownership(&[&a, &b], &ks);
    for (x, y) in before.iter().zip(&after) {
        if x != "c" {
            assert_eq!(x, y, "a key of a surviving node moved");
        }
    }
    wait_until("the change is reported", Duration::from_secs(5), || {
        changes.load(Ordering::SeqCst) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_takes_about_a_quarter() {
    let (a, b, c) = three_participants().await;
    let ks = keys();
    let before = ownership(&[&a, &b, &c], &ks);
    let d = start("d", &[b.advertise_addr()]).await;
    // As a viewer it takes nothing.
    let p = PeerState::Participant;
    wait_until("the viewer is known", Duration::from_secs(15), || {
        settled(
            &[&a, &b, &c, &d],
            &[("a", p), ("b", p), ("c", p), ("d", PeerState::Viewer)],
        )
    })
    .await;
    assert_eq!(ownership(&[&a, &b, &c, &d], &ks), before);
    d.become_participant().await;
    wait_until("four participants", Duration::from_secs(15), || {
        settled(&[&a, &b, &c, &d], &[("a", p), ("b", p), ("c", p), ("d", p)])
    })
    .await;
    let after = ownership(&[&a, &b, &c, &d], &ks);
    let mut moved = 0;
    for (x, y) in before.iter().zip(&after) {
        if x != y {
            assert_eq!(y, "d", "a key moved between old nodes");
            moved += 1;
        }
    }
    let share = moved as f64 / KEYS as f64;
    eprintln!("moved share on join: {share}");
    assert!((0.20..=0.30).contains(&share), "moved share {share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_moves_keys_away_before_leaving() {
    let (a, b, c) = three_participants().await;
    let ks = keys();
    let before = ownership(&[&a, &b, &c], &ks);
    let c_keys: Vec<&String> = ks
        .iter()
        .zip(&before)
        .filter(|(_, o)| *o == "c")
        .map(|(k, _)| k)
        .collect();
    assert!(!c_keys.is_empty());
    let leaving = tokio::spawn({
        let c = c.clone();
        async move { c.terminate().await }
    });
    let p = PeerState::Participant;
    wait_until(
        "peers see the terminating state",
        Duration::from_secs(5),
        || {
            settled(
                &[&a, &b],
                &[("a", p), ("b", p), ("c", PeerState::Terminating)],
            )
        },
    )
    .await;
    // Still gossiping (the leave delay has not passed): the others already own c's keys...
    assert!(!leaving.is_finished());
    let after = ownership(&[&a, &b], &ks);
    for (x, y) in before.iter().zip(&after) {
        if x != "c" {
            assert_eq!(x, y);
        }
    }
    // ... and c keeps them until it is gone (a duplicate rather than a gap).
    assert!(c_keys.iter().all(|k| c.owns(k.as_bytes())));
    leaving.await.unwrap();
    wait_until(
        "the terminated node is gone",
        Duration::from_secs(20),
        || settled(&[&a, &b], &[("a", p), ("b", p)]),
    )
    .await;
    assert_eq!(ownership(&[&a, &b], &ks), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_keep_everything_only_when_nobody_participates() {
    let a = start("a", &[]).await;
    let b = start("b", &[a.advertise_addr()]).await;
    let v = PeerState::Viewer;
    wait_until("two viewers", Duration::from_secs(15), || {
        settled(&[&a, &b], &[("a", v), ("b", v)])
    })
    .await;
    // No participant anywhere: every node keeps every key (a gap is worse than a duplicate).
    assert!(keys()
        .iter()
        .all(|k| a.owns(k.as_bytes()) && b.owns(k.as_bytes())));
    a.become_participant().await;
    wait_until("b sees a participate", Duration::from_secs(15), || {
        settled(&[&b], &[("a", PeerState::Participant), ("b", v)])
    })
    .await;
    assert!(keys()
        .iter()
        .all(|k| a.owns(k.as_bytes()) && !b.owns(k.as_bytes())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_in_any_order_find_each_other() {
    // b's join address is a's port before a exists.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b = start("b", &[port]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = ClusterService::start(config("a", port, &[])).await.unwrap();
    let v = PeerState::Viewer;
    wait_until("late seed found", Duration::from_secs(15), || {
        settled(&[&a, &b], &[("a", v), ("b", v)])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_with_other_names_do_not_mix() {
    let a = start("a", &[]).await;
    let mut cfg = config("x", any_port(), &[a.advertise_addr()]);
    cfg.cluster_name = "other".into();
    let x = ClusterService::start(cfg).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.peers().len(), 1);
    assert_eq!(x.peers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_is_reported_once() {
    let a = start("a", &[]).await;
    a.become_participant().await;
    let changes = Arc::new(AtomicUsize::new(0));
    let counter = changes.clone();
    a.on_change(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = changes.load(Ordering::SeqCst);
    // Five nodes join as participants at once: five membership changes within a few gossip rounds.
    let mut cfgs = Vec::new();
    for i in 0..5 {
        let mut c = config(&format!("n{i}"), any_port(), &[a.advertise_addr()]);
        c.debounce = Duration::from_millis(100);
        cfgs.push(c);
    }
    let mut nodes = Vec::new();
    for c in cfgs {
        let n = ClusterService::start(c).await.unwrap();
        n.become_participant().await;
        nodes.push(n);
    }
    wait_until("a sees six participants", Duration::from_secs(15), || {
        a.peers()
            .iter()
            .filter(|p| p.state == PeerState::Participant)
            .count()
            == 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reported = changes.load(Ordering::SeqCst) - base;
    assert!(reported >= 1, "the change was not reported");
    assert!(reported < 5, "{reported} reports for one burst of 5 joins");
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_reason() {
    let e = ClusterService::start(ClusterConfig::new("", any_port()))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "the cluster node name is empty");
    let e = ClusterService::start(ClusterConfig::new("a", "0.0.0.0:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot advertise 0.0.0.0:"),
        "{e}"
    );
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = ClusterService::start(ClusterConfig::new("a", taken.local_addr().unwrap()))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot listen for gossip on 127.0.0.1:"),
        "{e}"
    );
}
