//! `pyroscope.scrape` in a real controller, scraping real HTTP servers on 127.0.0.1 that serve real pprof
//! profiles, forwarding into a recording receiver component.

mod common;

use common::*;
use pyroscope::pprof::{self, Profile};
use std::collections::BTreeSet;
use std::time::Duration;

fn decode(data: &[u8]) -> Profile {
    pprof::decode(data, pprof::DEFAULT_MAX_DECOMPRESSED, &mut Vec::new()).expect("a pprof profile")
}

fn sum_of(p: &Profile, type_name: &str) -> i64 {
    let i = p
        .sample_type
        .iter()
        .position(|t| p.string_table[t.r#type as usize] == type_name)
        .expect("sample type");
    p.sample.iter().map(|s| s.value[i]).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_example_scrapes_the_documented_urls_with_the_documented_labels() {
    let (a, b) = (Target::go().await, Target::go().await);
    let env = Env::new();
    let config = format!(
        r#"
test.recorder "out" {{ key = "example" }}

pyroscope.scrape "local" {{
  targets    = [
    {{"__address__" = "{a}", "service_name"="pyroscope"}},
    {{"__address__" = "{b}", "service_name"="agent"}},
  ]
  forward_to = [test.recorder.out.receiver]
  profiling_config {{
    profile.fgprof {{
      enabled = true
    }}
    profile.block {{
      enabled = false
    }}
    profile.mutex {{
      enabled = false
    }}
  }}
}}
"#,
        a = a.address(),
        b = b.address()
    );
    let report = env.load(&config).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    let expected: BTreeSet<String> = [
        "/debug/pprof/allocs",
        "/debug/pprof/goroutine",
        "/debug/pprof/profile?seconds=14",
        "/debug/fgprof?seconds=14",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Every task scrapes within one interval (15 s) of starting, at its own phase.
    eventually(
        "both targets scraped on every path",
        Duration::from_secs(20),
        || a.requested().len() == 4 && b.requested().len() == 4,
    )
    .await;
    assert_eq!(a.requested().into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(b.requested().into_iter().collect::<BTreeSet<_>>(), expected);
    for h in a.hits.lock().unwrap().iter() {
        assert_eq!(h.user_agent, format!("Rill/{}", env!("CARGO_PKG_VERSION")));
    }

    eventually("profiles forwarded", Duration::from_secs(5), || {
        recorded("example", "test.recorder.out").len() >= 6
    })
    .await;
    let got = recorded("example", "test.recorder.out");
    let names: BTreeSet<String> = got.iter().map(|(l, _)| l.to_string()).collect();
    let want = |addr: &str, svc: &str, name: &str| {
        format!(
            r#"{{__name__="{name}", instance="{addr}", job="pyroscope.scrape.local", service_name="{svc}"}}"#
        )
    };
    for (addr, svc) in [(a.address(), "pyroscope"), (b.address(), "agent")] {
        for name in ["goroutine", "process_cpu", "fgprof"] {
            assert!(
                names.contains(&want(&addr, svc, name)),
                "{name} of {addr} missing in {names:#?}"
            );
        }
    }
    // The first memory profile of each target only sets the delta baseline.
    assert!(
        got.iter().all(|(l, _)| l.get("__name__") != Some("memory")),
        "{names:#?}"
    );
    // What arrives is the body the target sent.
    let cpu = got
        .iter()
        .find(|(l, _)| l.get("__name__") == Some("process_cpu"))
        .unwrap();
    assert_eq!(cpu.1, fixture("go-cpu.pb.gz"));

    eventually("every task reported", Duration::from_secs(5), || {
        env.all_targets_reported("pyroscope.scrape.local")
    })
    .await;
    let targets = env.targets("pyroscope.scrape.local");
    assert_eq!(targets.len(), 8, "{targets:#?}");
    for t in &targets {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["job"], "pyroscope.scrape.local");
        assert_eq!(t["last_error"], "");
        assert!(t["last_scrape"].as_str().unwrap().ends_with('Z'), "{t}");
        assert!(t["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    }
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_memory_is_forwarded_as_a_delta_after_a_withheld_first_profile() {
    let t = Target::go().await;
    let env = Env::new();
    let config = format!(
        r#"
test.recorder "out" {{ key = "delta" }}
pyroscope.scrape "d" {{
  targets         = [{{"__address__" = "{}", "service_name" = "svc"}}]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "500ms"
  profiling_config {{
    profile.goroutine {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
        t.address()
    );
    env.load(&config).await;
    eventually(
        "a memory and a mutex delta arrive",
        Duration::from_secs(5),
        || {
            let got = recorded("delta", "test.recorder.out");
            ["memory", "mutex"]
                .iter()
                .all(|n| got.iter().any(|(l, _)| l.get("__name__") == Some(*n)))
        },
    )
    .await;
    let got = recorded("delta", "test.recorder.out");
    // Withheld: the first of each; forwarded: from the second scrape on.
    assert!(t.hits_of("/debug/pprof/allocs") >= 2);
    let (labels, body) = got
        .iter()
        .find(|(l, _)| l.get("__name__") == Some("memory"))
        .unwrap();
    assert_eq!(labels.get("__delta__"), Some("false"));
    assert!(pprof::is_gzip(body));
    let (d, p1, p2) = (
        decode(body),
        decode(&fixture("wide-allocs-1.pb.gz")),
        decode(&fixture("wide-allocs-2.pb.gz")),
    );
    for ty in ["alloc_objects", "alloc_space"] {
        assert_eq!(sum_of(&d, ty), sum_of(&p2, ty) - sum_of(&p1, ty), "{ty}");
    }
    assert_eq!(sum_of(&d, "inuse_space"), sum_of(&p2, "inuse_space"));
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_get_their_specific_error_and_the_good_one_keeps_working() {
    let good = Target::go().await;
    let html = Target::start(|_, _| {
        (
            200,
            "text/html; charset=utf-8",
            bytes::Bytes::from_static(b"<!DOCTYPE html><html><body>Sign in</body></html>"),
        )
    })
    .await;
    let text = Target::start(|_, _| {
        (
            200,
            "text/plain; charset=utf-8",
            fixture("go-goroutine-debug1.txt"),
        )
    })
    .await;
    let json = Target::start(|_, _| {
        (
            200,
            "application/json",
            bytes::Bytes::from_static(b"{\"error\":\"nope\"}"),
        )
    })
    .await;
    let missing = Target::start(|_, _| {
        (
            404,
            "text/plain",
            bytes::Bytes::from_static(b"404 page not found"),
        )
    })
    .await;
    let empty = Target::start(|_, _| (200, "application/octet-stream", bytes::Bytes::new())).await;
    let env = Env::new();
    let config = format!(
        r#"
test.recorder "out" {{ key = "bad" }}
pyroscope.scrape "bad" {{
  targets = [
    {{"__address__" = "{good}", "service_name" = "good"}},
    {{"__address__" = "{html}", "service_name" = "html"}},
    {{"__address__" = "{text}", "service_name" = "text"}},
    {{"__address__" = "{json}", "service_name" = "json"}},
    {{"__address__" = "{missing}", "service_name" = "missing"}},
    {{"__address__" = "{empty}", "service_name" = "empty"}},
    {{"service_name" = "noaddr"}},
  ]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "500ms"
  profiling_config {{
    profile.memory {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
        good = good.address(),
        html = html.address(),
        text = text.address(),
        json = json.address(),
        missing = missing.address(),
        empty = empty.address(),
    );
    let report = env.load(&config).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("every target scraped", Duration::from_secs(5), || {
        env.all_targets_reported("pyroscope.scrape.bad")
    })
    .await;
    let error_of = |svc: &str| env.target_status("pyroscope.scrape.bad", svc);
    assert_eq!(error_of("good"), ("up".into(), "".into()));
    assert_eq!(
        error_of("html"),
        ("down".into(), "invalid profile data: unexpected Content-Type text/html; charset=utf-8: HTML response instead of pprof".into())
    );
    assert_eq!(
        error_of("text"),
        ("down".into(), "invalid profile data: unexpected Content-Type text/plain; charset=utf-8: text response instead of pprof".into())
    );
    assert_eq!(
        error_of("json"),
        ("down".into(), "invalid profile data: unexpected Content-Type application/json: JSON response instead of pprof".into())
    );
    assert_eq!(
        error_of("missing"),
        (
            "down".into(),
            "server returned HTTP status (404) Not Found".into()
        )
    );
    assert_eq!(
        error_of("empty"),
        (
            "down".into(),
            format!(
                "empty goroutine profile from http://{}/debug/pprof/goroutine",
                empty.address()
            )
        )
    );
    assert_eq!(error_of("noaddr"), ("down".into(), "no address".into()));
    // The component itself is healthy: only invalid arguments make it unhealthy.
    let health = env.c.component("pyroscope.scrape.bad").unwrap().health;
    assert_eq!(health.state, flow::HealthState::Healthy, "{health:?}");
    // The good target's profiles arrive and keep arriving.
    eventually("several good profiles", Duration::from_secs(5), || {
        recorded("bad", "test.recorder.out").len() >= 3
    })
    .await;
    assert!(recorded("bad", "test.recorder.out")
        .iter()
        .all(|(l, _)| l.get("service_name") == Some("good")));
    env.c.shutdown().await;
}

/// Forwards minus scrapes of one target's memory profile: -1 while its task runs on (only the very first
/// profile was withheld); a restarted task withholds again.
/// How many profiles of `service_name` `svc` recorder `id` got.
fn forwarded_per_service(key: &str, id: &str, svc: &str) -> usize {
    recorded(key, id)
        .iter()
        .filter(|(l, _)| l.get("service_name") == Some(svc))
        .count()
}

fn withheld(t: &Target, key: &str, svc: &str) -> i64 {
    let forwarded: usize = ["test.recorder.a", "test.recorder.b"]
        .iter()
        .map(|id| forwarded_per_service(key, id, svc))
        .sum();
    t.hits_of("/debug/pprof/allocs") as i64 - forwarded as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_tasks_restarts_changed_ones_and_reroutes_forward_to_at_once() {
    let (a, b) = (Target::go().await, Target::go().await);
    let env = Env::new();
    let config = |b_extra: &str, to: &str| {
        format!(
            r#"
test.recorder "a" {{ key = "reload" }}
test.recorder "b" {{ key = "reload" }}
pyroscope.scrape "r" {{
  targets         = [
    {{"__address__" = "{a}", "service_name" = "a"}},
    {{"__address__" = "{b}", "service_name" = "b"{b_extra}}},
  ]
  forward_to      = [test.recorder.{to}.receiver]
  scrape_interval = "400ms"
  profiling_config {{
    profile.goroutine {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
            a = a.address(),
            b = b.address()
        )
    };
    env.load(&config("", "a")).await;
    eventually(
        "both targets forwarded twice",
        Duration::from_secs(5),
        || {
            forwarded_per_service("reload", "test.recorder.a", "a") >= 2
                && forwarded_per_service("reload", "test.recorder.a", "b") >= 2
        },
    )
    .await;

    // Change target b only (a new label): a's task keeps running, b's is replaced.
    let report = env.load(&config(r#", "team" = "x""#, "a")).await;
    assert_eq!(
        report.updated,
        vec!["pyroscope.scrape.r".to_string()],
        "{report:?}"
    );
    let hits_b = b.hits_of("/debug/pprof/allocs");
    eventually("b's new task forwarded", Duration::from_secs(5), || {
        recorded("reload", "test.recorder.a")
            .iter()
            .any(|(l, _)| l.get("team") == Some("x"))
    })
    .await;
    assert!(b.hits_of("/debug/pprof/allocs") >= hits_b + 2);

    // Switch forward_to: profiles go to b from the next scrape on, a's task still untouched.
    let before_a = recorded("reload", "test.recorder.a").len();
    env.load(&config(r#", "team" = "x""#, "b")).await;
    let switched = recorded("reload", "test.recorder.a").len();
    assert!(switched <= before_a + 2);
    eventually(
        "profiles reach the new receiver",
        Duration::from_secs(5),
        || {
            forwarded_per_service("reload", "test.recorder.b", "a") >= 2
                && forwarded_per_service("reload", "test.recorder.b", "b") >= 2
        },
    )
    .await;
    // Nothing reached the old receiver after the switch settled (at most a forward in flight).
    let late = recorded("reload", "test.recorder.a").len();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(recorded("reload", "test.recorder.a").len(), late);

    // The bookkeeping: a withheld one profile in all (never restarted), b two (restarted once). A scrape in
    // flight counts as a hit without a forward yet, so take the smallest difference over a few intervals.
    let (mut min_a, mut min_b) = (i64::MAX, i64::MAX);
    for _ in 0..60 {
        min_a = min_a.min(withheld(&a, "reload", "a"));
        min_b = min_b.min(withheld(&b, "reload", "b"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.c.shutdown().await;
    assert_eq!(min_a, 1, "a's task was restarted");
    // b: one withheld per task, plus at most one scrape of the old task that was in flight at the reload
    // and cancelled (a hit that is rightly never forwarded).
    assert!(
        (2..=3).contains(&min_b),
        "b's task was not restarted exactly once: {min_b} withheld"
    );

    // Phase: a's scrapes kept their spacing across both reloads (no extra scrape at reload time).
    let times: Vec<_> = a.hits.lock().unwrap().iter().map(|h| h.at).collect();
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(300), "scrapes {gap:?} apart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_are_rejected_with_positions() {
    let env = Env::new();
    let cases = [
        (
            "scrape_timeout = \"0s\"",
            "main.river:2:1",
            "scrape_timeout must be greater than 0",
        ),
        (
            "scrape_interval = \"1s\"",
            "main.river:2:1",
            "scrape_interval must be at least 2 seconds when using delta profiling",
        ),
        (
            "profiling_config {\n    profile.custom \"memory\" {\n      enabled = true\n      path = \"/x\"\n    }\n  }",
            "main.river:5:3",
            "profile.custom \"memory\" has the name of a built-in profile type: configure profile.memory instead",
        ),
        (
            "profiling_config {\n    profile.custom \"x\" {\n      enabled = true\n      path = \"/x\"\n    }\n    profile.custom \"x\" {\n      enabled = false\n      path = \"/y\"\n    }\n  }",
            "main.river:5:3",
            "profile.custom \"x\" is defined more than once",
        ),
        ("scheme = \"ftp\"", "main.river:2:1", "invalid scheme \"ftp\": must be \"http\" or \"https\""),
    ];
    for (extra, position, message) in cases {
        let config = format!(
            "test.recorder \"out\" {{ key = \"invalid\" }}\npyroscope.scrape \"x\" {{\n  targets = []\n  forward_to = [test.recorder.out.receiver]\n  {extra}\n}}\n"
        );
        let sources = flow::Sources::parse([("main.river", config.as_str())]).unwrap();
        let text = match env.c.load(sources).await {
            Ok(report) => report.diagnostics.to_string(),
            Err(d) => d.to_string(),
        };
        assert!(text.contains(message), "{extra}: {text}");
        assert!(text.contains(position), "{extra}: {text}");
    }
    env.c.shutdown().await;
}

/// Every `river` example of docs/components/pyroscope.scrape.md that is a full component block loads
/// without diagnostics (receivers are replaced by recorders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_examples_are_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/components/pyroscope.scrape.md"
    ))
    .expect("doc page");
    let mut examples = 0;
    for block in doc.split("```river\n").skip(1) {
        let body = block.split("```").next().unwrap_or("");
        if !body.starts_with("pyroscope.scrape \"") || body.contains("TARGET_LIST") {
            continue;
        }
        // Files the examples name exist here.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, Ca::new().pem).unwrap();
        let config = format!(
            "test.recorder \"local\" {{ key = \"docs\" }}\n{}",
            body.replace(
                "pyroscope.write.local.receiver",
                "test.recorder.local.receiver"
            )
            .replace("/etc/ssl/internal-ca.pem", &ca.display().to_string())
        );
        let env = Env::new();
        let sources = flow::Sources::parse([("main.river", config.as_str())]).expect("parses");
        let report = env.c.load(sources).await.expect("loads");
        assert!(
            report.diagnostics.is_empty(),
            "{body}\n{}",
            report.diagnostics
        );
        let health = env.c.component(&format!(
            "pyroscope.scrape.{}",
            body.split('"').nth(1).unwrap_or("")
        ));
        assert!(health.is_some(), "{body}");
        env.c.shutdown().await;
        examples += 1;
    }
    assert_eq!(examples, 2);
}

/// A gzip body whose first 4 KiB decompress into a valid-looking profile but which breaks further on (cut
/// short, or corrupted in the middle) is refused with a gzip error and never forwarded; the whole body is
/// validated, not its beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_body_that_breaks_after_the_first_4_kib_is_refused_and_not_forwarded() {
    // A real profile large enough that the break lies well past the first 4 KiB of decompressed data.
    let plain = {
        let wide = fixture("wide-allocs-1.pb.gz");
        let mut scratch = Vec::new();
        pprof::uncompressed(&wide, pprof::DEFAULT_MAX_DECOMPRESSED, &mut scratch)
            .expect("decompresses")
            .to_vec()
    };
    assert!(plain.len() > 64 << 10);
    let good = pprof::gzip(&plain);
    // The cut stream yields its first 4 KiB (the old prefix check passed it), then ends early.
    let (mut out, mut head_len) = (Vec::new(), 0);
    let r = pprof::gz::gunzip_into(&good[..good.len() / 2], usize::MAX, &mut out, 4096, |h| {
        head_len = h.len();
        Ok::<(), ()>(())
    });
    assert!(r.is_err());
    assert_eq!(head_len, 4096);
    let cut = bytes::Bytes::copy_from_slice(&good[..good.len() / 2]);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x5a;
    let flipped = bytes::Bytes::from(flipped);
    let good = bytes::Bytes::from(good);
    let serve = |body: bytes::Bytes| move |_: &str, _: u64| pprof(body.clone());
    let (ok, short, corrupt) = (
        Target::start(serve(good.clone())).await,
        Target::start(serve(cut)).await,
        Target::start(serve(flipped)).await,
    );
    let env = Env::new();
    let config = format!(
        r#"
test.recorder "out" {{ key = "broken-gzip" }}
pyroscope.scrape "g" {{
  targets = [
    {{"__address__" = "{ok}", "service_name" = "ok"}},
    {{"__address__" = "{short}", "service_name" = "short"}},
    {{"__address__" = "{corrupt}", "service_name" = "corrupt"}},
  ]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "500ms"
  profiling_config {{
    profile.memory {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#,
        ok = ok.address(),
        short = short.address(),
        corrupt = corrupt.address(),
    );
    let report = env.load(&config).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually(
        "every target scraped twice",
        Duration::from_secs(10),
        || {
            [&ok, &short, &corrupt]
                .iter()
                .all(|t| t.hits_of("/debug/pprof/goroutine") >= 2)
        },
    )
    .await;
    eventually("every target reported", Duration::from_secs(5), || {
        env.all_targets_reported("pyroscope.scrape.g")
    })
    .await;
    let status_of = |svc: &str| env.target_status("pyroscope.scrape.g", svc);
    assert_eq!(status_of("ok"), ("up".into(), "".into()));
    assert_eq!(
        status_of("short"),
        (
            "down".into(),
            "invalid profile data: invalid gzip data: unexpected end of gzip stream".into()
        )
    );
    let (health, error) = status_of("corrupt");
    assert_eq!(health, "down");
    assert!(
        error.starts_with("invalid profile data: invalid gzip data: "),
        "{error}"
    );
    // Only the intact profile was forwarded, exactly as sent.
    let got = recorded("broken-gzip", "test.recorder.out");
    assert!(!got.is_empty());
    for (labels, body) in &got {
        assert_eq!(labels.get("service_name"), Some("ok"), "{labels:?}");
        assert_eq!(body, &good);
    }
    env.c.shutdown().await;
}
