//! `discovery.file` feeding `discovery.relabel` feeding a consumer, in a real controller, with real files in
//! a temporary directory: write, rewrite, rewrite the same, break, restore, add and remove target files.

use flow::testing::{eventually, Pass};
use flow::{Controller, ControllerOptions, HealthState, Sources};
use river::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    dir: tempfile::TempDir,
    c: Controller,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut registry = flow::Registry::new();
        discovery::register(&mut registry).expect("register discovery");
        registry.register::<Pass>().expect("register test.pass");
        let options = ControllerOptions {
            storage_path: dir.path().join("data"),
            restart_backoff: Duration::from_millis(10),
            ..ControllerOptions::default()
        };
        let c = Controller::new(Arc::new(registry), options);
        Env { dir, c }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Writes atomically (temp file + rename), as config management tools do.
    fn write(&self, name: &str, content: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).expect("write temp file");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename into place");
    }

    /// `discovery.file` on `patterns` → `discovery.relabel` keeping `app = "web"|"api"` and copying
    /// `__meta_filepath` to `file` → `test.pass "x"`.
    fn config(&self, patterns: &[&str], refresh: &str) -> String {
        let files: Vec<String> = patterns
            .iter()
            .map(|p| river::parser::go_quote(&self.path(p)))
            .collect();
        format!(
            r#"discovery.file "sd" {{
  files            = [{}]
  refresh_interval = "{refresh}"
}}

discovery.relabel "r" {{
  targets = discovery.file.sd.targets
  rule {{
    source_labels = ["app"]
    regex         = "web|api"
    action        = "keep"
  }}
  rule {{
    source_labels = ["__meta_filepath"]
    regex         = ".*/([^/]+)"
    target_label  = "file"
  }}
}}

test.pass "x" {{
  input = discovery.relabel.r.output
}}
"#,
            files.join(", ")
        )
    }

    async fn load(&self, config: &str) -> flow::LoadReport {
        let sources = Sources::parse([("main.river", config)]).expect("config parses");
        let report = self.c.load(sources).await.expect("config is accepted");
        assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
        report
    }

    /// The consumer's view: `(address, file)` of each target, in order.
    fn seen(&self) -> Vec<(String, String)> {
        let Some(Value::Object(o)) = self.c.exports("test.pass.x") else {
            return Vec::new();
        };
        let Some(Value::Array(items)) = o.get("output") else {
            return Vec::new();
        };
        items
            .iter()
            .map(|t| {
                let Value::Object(t) = t else {
                    panic!("target is not an object: {t:?}")
                };
                let s = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                (s("__address__"), s("file"))
            })
            .collect()
    }

    fn health(&self) -> flow::Health {
        self.c.component("discovery.file.sd").expect("node").health
    }

    fn debug_number(&self, name: &str) -> u64 {
        let info = self
            .c
            .component("discovery.file.sd")
            .expect("node")
            .debug_info;
        let text = info.to_string();
        info["value"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["key"] == name))
            .and_then(|f| f["value"]["value"].as_u64())
            .unwrap_or_else(|| panic!("no number {name} in debug info {text}"))
    }

    fn consumer_evaluations(&self) -> u64 {
        self.c
            .counters("test.pass.x")
            .expect("counters")
            .evaluations
            .load(Ordering::SeqCst)
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, f)| (a.to_string(), f.to_string()))
        .collect()
}

const FIRST: &str = r#"[
  {"targets": ["10.0.0.1:4100", "10.0.0.2:4100"], "labels": {"app": "web"}},
  {"targets": ["10.0.0.3:4100"], "labels": {"app": "sidecar"}}
]"#;

const SECOND: &str = r#"[
  {"targets": ["10.0.0.1:4100", "10.0.0.2:4100", "10.0.0.4:4100"], "labels": {"app": "web"}}
]"#;

/// SECOND with other formatting, group split differently and a dropped-by-relabel group added: the same
/// relabelled targets.
const SECOND_AGAIN: &str = r#"[
  {"labels": {"app": "web"}, "targets": ["10.0.0.1:4100", "10.0.0.2:4100"]},
  {"targets": ["10.0.0.4:4100"], "labels": {"app": "web"}}
]"#;

#[tokio::test]
async fn targets_follow_the_file_through_rewrites_breakage_and_restoration() {
    let env = Env::new();
    env.write("a.json", FIRST);
    // An hour-long refresh: only file events can deliver changes in time.
    env.load(&env.config(&["*.json"], "1h")).await;
    env.c.settle().await;
    assert_eq!(
        env.seen(),
        pairs(&[("10.0.0.1:4100", "a.json"), ("10.0.0.2:4100", "a.json")])
    );
    assert_eq!(env.health().state, HealthState::Healthy);

    // Rewrite: the consumer sees the new target list.
    env.write("a.json", SECOND);
    let want = pairs(&[
        ("10.0.0.1:4100", "a.json"),
        ("10.0.0.2:4100", "a.json"),
        ("10.0.0.4:4100", "a.json"),
    ]);
    eventually("the rewrite reaches the consumer", || env.seen() == want).await;
    env.c.settle().await;

    // Rewrite with different content but the same targets: read, but nothing published or re-evaluated.
    let evaluations = env.consumer_evaluations();
    let publishes = env.debug_number("publish_count");
    let refreshes = env.debug_number("refresh_count");
    env.write("a.json", SECOND_AGAIN);
    eventually("the same-targets rewrite is read", || {
        env.debug_number("refresh_count") > refreshes
    })
    .await;
    env.c.settle().await;
    assert_eq!(env.debug_number("publish_count"), publishes);
    assert_eq!(
        env.consumer_evaluations(),
        evaluations,
        "consumer re-evaluated"
    );
    assert_eq!(env.seen(), want);

    // Break the file: the last good targets stay, health says what is wrong.
    env.write("a.json", "[{\"targets\": [\"10.0.0.9:4100\"]");
    eventually("health reports the broken file", || {
        env.health().state == HealthState::Unhealthy
    })
    .await;
    let health = env.health();
    assert!(
        health.message.contains("a.json") && health.message.contains("failed to parse"),
        "{}",
        health.message
    );
    env.c.settle().await;
    assert_eq!(env.seen(), want);
    assert_eq!(
        env.consumer_evaluations(),
        evaluations,
        "a broken file changed the output"
    );

    // Restore (with a change): healthy again and the consumer follows.
    env.write("a.json", FIRST);
    eventually("the restored file reaches the consumer", || {
        env.seen() == pairs(&[("10.0.0.1:4100", "a.json"), ("10.0.0.2:4100", "a.json")])
    })
    .await;
    assert_eq!(env.health().state, HealthState::Healthy);
    env.c.shutdown().await;
}

#[tokio::test]
async fn files_appearing_and_disappearing_add_and_remove_their_targets() {
    let env = Env::new();
    env.write("a.json", FIRST);
    env.load(&env.config(&["*.json", "*.yaml"], "1h")).await;
    env.c.settle().await;
    assert_eq!(env.seen().len(), 2);

    // A YAML file appears: its targets are added (files in path order).
    env.write(
        "b.yaml",
        "- targets: ['10.0.1.1:4100']\n  labels:\n    app: api\n",
    );
    let both = pairs(&[
        ("10.0.0.1:4100", "a.json"),
        ("10.0.0.2:4100", "a.json"),
        ("10.0.1.1:4100", "b.yaml"),
    ]);
    eventually("the new file's targets arrive", || env.seen() == both).await;

    // A file not matched by any pattern changes nothing.
    let evaluations = env.consumer_evaluations();
    env.write("c.txt", "not a target file");
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.c.settle().await;
    assert_eq!(env.consumer_evaluations(), evaluations);

    // The JSON file goes away: its targets go too.
    std::fs::remove_file(env.dir.path().join("a.json")).expect("remove");
    eventually("the removed file's targets leave", || {
        env.seen() == pairs(&[("10.0.1.1:4100", "b.yaml")])
    })
    .await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn the_refresh_interval_picks_up_files_that_events_cannot_see() {
    let env = Env::new();
    // A glob in the directory part is not watched: only the refresh interval finds this file.
    std::fs::create_dir(env.dir.path().join("sub")).expect("mkdir");
    env.load(&env.config(&["*/t.json"], "20ms")).await;
    env.c.settle().await;
    assert!(env.seen().is_empty());
    std::fs::write(env.dir.path().join("sub/t.json"), SECOND).expect("write");
    eventually("the polled file's targets arrive", || env.seen().len() == 3).await;
    assert_eq!(env.seen()[0].1, "t.json");
    env.c.shutdown().await;
}

#[tokio::test]
async fn invalid_arguments_are_rejected_with_positions() {
    let env = Env::new();
    let config = "discovery.file \"sd\" {\n  files = [\"/etc/targets.txt\"]\n}\n";
    let sources = Sources::parse([("main.river", config)]).expect("parses");
    // An evaluation error fails the node (reported with the load), never the whole graph.
    let report = env.c.load(sources).await.expect("the graph loads");
    let text = report.diagnostics.to_string();
    assert!(
        text.contains("main.river:1:1")
            && text.contains("path name \"/etc/targets.txt\" is not valid for file discovery"),
        "{text}"
    );

    let config = "discovery.relabel \"r\" {\n  targets = []\n  rule {\n    regex = \"(\"\n    target_label = \"x\"\n  }\n}\n";
    let sources = Sources::parse([("main.river", config)]).expect("parses");
    // An evaluation error fails the node (reported with the load), never the whole graph.
    let report = env.c.load(sources).await.expect("the graph loads");
    let text = report.diagnostics.to_string();
    assert!(
        text.contains("main.river:4:13") && text.contains("invalid regex \"(\""),
        "{text}"
    );
    env.c.shutdown().await;
}
