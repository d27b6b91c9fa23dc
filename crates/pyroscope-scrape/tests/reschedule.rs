//! Rescheduling on re-evaluation, under paused tokio time: the default 15 s interval runs in virtual time,
//! so the scrape instants the target servers record are exact and a task's phase can be compared across
//! updates. Real servers on 127.0.0.1 and a real controller; only the clock is virtual.
//!
//! A kept task is seen three ways: its scrapes stay exactly one interval apart across the update (a restarted
//! task would take a new phase and scrape off-beat), its client-side delta baseline survives (only the very
//! first profile of a cumulative type is withheld), and `pyroscope_scrape_tasks_started_total` does not move.

mod common;

use common::*;
use prometheus_client::registry::Registry;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(15);
/// Paths of the default profile types, as `Target::hits_of` counts them.
const PATHS: [&str; 5] = [
    "/debug/pprof/allocs",
    "/debug/pprof/block",
    "/debug/pprof/goroutine",
    "/debug/pprof/mutex",
    "/debug/pprof/profile",
];
/// The client-side delta types and their paths.
const CUMULATIVE: [(&str, &str); 3] = [
    ("memory", "/debug/pprof/allocs"),
    ("block", "/debug/pprof/block"),
    ("mutex", "/debug/pprof/mutex"),
];
const KEY: &str = "reschedule";
const RECEIVERS: [&str; 2] = ["test.recorder.a", "test.recorder.b"];

fn config(targets: &[&Target], to: &str) -> String {
    let list: String = targets
        .iter()
        .map(|t| {
            format!(
                "    {{\"__address__\" = \"{}\", \"service_name\" = \"svc\"}},\n",
                t.address()
            )
        })
        .collect();
    format!(
        r#"
test.recorder "a" {{ key = "{KEY}" }}
test.recorder "b" {{ key = "{KEY}" }}
pyroscope.scrape "r" {{
  targets    = [
{list}  ]
  forward_to = [test.recorder.{to}.receiver]
}}
"#
    )
}

/// Lets virtual time pass; the scrapes due in it run (their loopback I/O is ready at once).
async fn advance(d: Duration) {
    tokio::time::sleep(d).await;
    // Whatever became due at the very end finishes: a few idle turns in virtual time.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `pyroscope_scrape_tasks_{started,stopped}_total` of the component.
fn task_counts(registry: &Registry) -> (u64, u64) {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode metrics");
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("component_id=\"pyroscope.scrape.r\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}")) as u64
    };
    (
        value("pyroscope_scrape_tasks_started_total"),
        value("pyroscope_scrape_tasks_stopped_total"),
    )
}

/// Every task of `t` scraped `at_least` times, each scrape exactly one interval after the previous one
/// (the timer wheel rounds to a millisecond).
fn assert_on_beat(t: &Target, name: &str, at_least: usize) {
    let hits = t.hits.lock().unwrap().clone();
    for path in PATHS {
        let at: Vec<_> = hits
            .iter()
            .filter(|h| h.path_and_query.split('?').next() == Some(path))
            .map(|h| h.tokio_at)
            .collect();
        assert!(
            at.len() >= at_least,
            "{name}{path}: {} scrapes, want at least {at_least}",
            at.len()
        );
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            let off = gap.abs_diff(INTERVAL);
            assert!(
                off <= Duration::from_millis(2),
                "{name}{path}: scrapes {gap:?} apart, not {INTERVAL:?}"
            );
        }
    }
}

/// Per cumulative type of `t`: scrapes minus forwards (to any receiver). 1 while the task has run since the
/// start (only its first profile withheld); each restart withholds one more.
fn withheld(t: &Target) -> Vec<(&'static str, i64)> {
    let got: Vec<_> = RECEIVERS.iter().flat_map(|r| recorded(KEY, r)).collect();
    CUMULATIVE
        .iter()
        .map(|(name, path)| {
            let forwarded = got
                .iter()
                .filter(|(l, _)| {
                    l.get("instance") == Some(t.address().as_str())
                        && l.get("__name__") == Some(*name)
                })
                .count() as i64;
            (*name, t.hits_of(path) as i64 - forwarded)
        })
        .collect()
}

fn assert_never_restarted(t: &Target, name: &str) {
    for (profile, w) in withheld(t) {
        assert_eq!(w, 1, "{name}'s {profile} task withheld {w} profiles");
    }
}

#[tokio::test(start_paused = true)]
async fn updates_keep_tasks_and_phases_start_only_new_targets_and_reroute_at_once() {
    let (a, b, c) = (Target::go().await, Target::go().await, Target::go().await);
    let env = Env::new();
    let mut registry = Registry::default();
    env.c.register_metrics(&mut registry);

    let report = env.load(&config(&[&a, &b], "a")).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    advance(3 * INTERVAL).await;
    assert_eq!(
        task_counts(&registry),
        (10, 0),
        "2 targets × 5 profile types"
    );
    assert_on_beat(&a, "a", 3);
    assert_on_beat(&b, "b", 3);

    // The same targets again, first as the same text, then reordered (the arguments differ, so the component
    // is updated): every task keeps running at its phase.
    env.load(&config(&[&a, &b], "a")).await;
    let report = env.load(&config(&[&b, &a], "a")).await;
    assert_eq!(report.updated, vec!["pyroscope.scrape.r".to_string()]);
    advance(3 * INTERVAL).await;
    assert_eq!(task_counts(&registry), (10, 0), "an update restarted tasks");
    assert_on_beat(&a, "a", 6);
    assert_on_beat(&b, "b", 6);
    assert_never_restarted(&a, "a");
    assert_never_restarted(&b, "b");
    assert!(recorded(KEY, "test.recorder.b").is_empty());

    // A new target: only its five tasks start; the others stay on their beat.
    env.load(&config(&[&b, &a, &c], "a")).await;
    assert_eq!(
        task_counts(&registry),
        (15, 0),
        "adding c started more than c"
    );
    advance(2 * INTERVAL).await;
    assert_on_beat(&a, "a", 8);
    assert_on_beat(&b, "b", 8);
    assert_on_beat(&c, "c", 2);
    assert_never_restarted(&c, "c");

    // Another receiver: every task forwards there from its next scrape on, none restarts.
    let to_a = recorded(KEY, "test.recorder.a").len();
    env.load(&config(&[&b, &a, &c], "b")).await;
    assert_eq!(
        task_counts(&registry),
        (15, 0),
        "forward_to restarted tasks"
    );
    advance(2 * INTERVAL).await;
    assert_eq!(
        recorded(KEY, "test.recorder.a").len(),
        to_a,
        "a profile reached the old receiver after the switch"
    );
    let to_b = recorded(KEY, "test.recorder.b");
    for t in [&a, &b, &c] {
        for name in ["process_cpu", "goroutine", "memory", "block", "mutex"] {
            let n = to_b
                .iter()
                .filter(|(l, _)| {
                    l.get("instance") == Some(t.address().as_str())
                        && l.get("__name__") == Some(name)
                })
                .count();
            // Two scrapes since the switch (three if one fell on the window's edge), all forwarded: the
            // delta baselines were kept.
            assert!(
                (2..=3).contains(&n),
                "{name} of {} reached the new receiver {n} times",
                t.address()
            );
        }
    }
    for (t, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        assert_on_beat(t, name, 2);
        assert_never_restarted(t, name);
    }

    // Removing a target stops its five tasks and nothing else.
    env.load(&config(&[&b, &a], "b")).await;
    assert_eq!(task_counts(&registry), (15, 5));
    let c_hits = c.hits.lock().unwrap().len();
    advance(2 * INTERVAL).await;
    assert_eq!(
        c.hits.lock().unwrap().len(),
        c_hits,
        "c scraped after removal"
    );
    assert_on_beat(&a, "a", 12);
    assert_on_beat(&b, "b", 12);
    assert_never_restarted(&a, "a");
    assert_never_restarted(&b, "b");

    env.c.shutdown().await;
    assert_eq!(
        task_counts(&registry),
        (15, 15),
        "shutdown stops every task"
    );
}
