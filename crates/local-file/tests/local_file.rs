//! `local.file` in a real controller, reading real files in a temporary directory.

use flow::testing::{eventually, Pass};
use flow::{Controller, ControllerOptions, HealthState, Sources};
use river::Value;
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
        local_file::register(&mut registry).expect("register local.file");
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

    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).expect("write test file");
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove test file");
    }

    /// `local.file "a"` on `name` with extra attributes, and a `test.pass "x"` fed by its content.
    fn config(&self, name: &str, extra: &str) -> String {
        format!(
            "local.file \"a\" {{\n  filename = {}\n  {extra}\n}}\n\ntest.pass \"x\" {{\n  input = local.file.a.content\n}}\n",
            river::parser::go_quote(&self.path(name))
        )
    }

    async fn load(&self, config: &str) -> flow::LoadReport {
        let sources = Sources::parse([("main.river", config)]).expect("config parses");
        self.c.load(sources).await.expect("config is accepted")
    }

    fn content(&self) -> Value {
        field(self.c.exports("local.file.a"), "content")
    }

    fn passed(&self) -> Value {
        field(self.c.exports("test.pass.x"), "output")
    }

    fn health(&self) -> flow::Health {
        self.c
            .component("local.file.a")
            .expect("node exists")
            .health
    }

    fn debug_number(&self, name: &str) -> u64 {
        let info = self
            .c
            .component("local.file.a")
            .expect("node exists")
            .debug_info;
        let text = info.to_string();
        // riverjson object: [{"key": name, "value": {"type": "number", "value": N}}]
        info["value"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["key"] == name))
            .and_then(|f| f["value"]["value"].as_u64())
            .unwrap_or_else(|| panic!("no number {name} in debug info {text}"))
    }
}

fn field(exports: Option<Value>, name: &str) -> Value {
    match exports {
        Some(Value::Object(o)) => o.get(name).cloned().unwrap_or_default(),
        other => panic!("unexpected exports {other:?}"),
    }
}

fn string(s: &str) -> Value {
    Value::string(s)
}

#[tokio::test]
async fn content_is_exported_and_a_rewrite_reaches_the_dependant_through_file_events() {
    let env = Env::new();
    env.write("a.txt", "first");
    // A one-hour poll: only file events can deliver the rewrite in time.
    let report = env
        .load(&env.config("a.txt", "poll_frequency = \"1h\""))
        .await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert_eq!(env.content(), string("first"));
    env.c.settle().await;
    assert_eq!(env.passed(), string("first"));
    assert_eq!(env.health().state, HealthState::Healthy);

    env.write("a.txt", "second");
    eventually("the rewrite reaches test.pass.x", || {
        env.passed() == string("second")
    })
    .await;
    assert_eq!(env.content(), string("second"));
    env.c.shutdown().await;
}

#[tokio::test]
async fn unchanged_content_is_neither_published_again_nor_read_in_a_loop() {
    let env = Env::new();
    env.write("a.txt", "same");
    env.load(&env.config("a.txt", "poll_frequency = \"10ms\""))
        .await;
    // Let several polls happen.
    let reads = env.debug_number("read_count");
    eventually("a few polls", || {
        env.debug_number("read_count") >= reads + 3
    })
    .await;
    assert_eq!(env.debug_number("publish_count"), 1);

    // With events only (hour-long poll), an idle file is not re-read at all: our own reads must not
    // trigger events that trigger reads.
    env.load(&env.config("a.txt", "poll_frequency = \"1h\""))
        .await;
    let mut idle = None;
    for _ in 0..50 {
        let before = env.debug_number("read_count");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if env.debug_number("read_count") == before {
            idle = Some(before);
            break;
        }
    }
    let idle = idle.expect("reads never stop: the component re-reads in a loop");
    assert_eq!(env.debug_number("publish_count"), 1);

    // A write of the same bytes is read but not published.
    env.write("a.txt", "same");
    eventually("the rewrite is read", || {
        env.debug_number("read_count") > idle
    })
    .await;
    assert_eq!(env.debug_number("publish_count"), 1);
    env.c.shutdown().await;
}

#[tokio::test]
async fn a_secret_is_exported_as_a_secret_and_never_shown() {
    let env = Env::new();
    const TOKEN: &str = "hunter2-very-secret";
    env.write("token", TOKEN);
    let report = env.load(&env.config("token", "is_secret = true")).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert!(
        matches!(env.content(), Value::Secret(ref s) if s.expose() == TOKEN),
        "{:?}",
        env.content()
    );
    env.c.settle().await;
    assert!(matches!(env.passed(), Value::Secret(ref s) if s.expose() == TOKEN));

    for info in env.c.components() {
        for (what, json) in [
            ("arguments", &info.arguments),
            ("exports", &info.exports),
            ("debug info", &info.debug_info),
        ] {
            let text = json.to_string();
            assert!(
                !text.contains("hunter2"),
                "{} {what} leak the secret: {text}",
                info.id
            );
        }
    }
    let exports = env.c.component("local.file.a").unwrap().exports.to_string();
    assert!(exports.contains("(secret)"), "{exports}");
    env.c.shutdown().await;
}

#[tokio::test]
async fn a_missing_file_at_start_fails_the_build_with_a_clear_error() {
    let env = Env::new();
    let report = env.load(&env.config("missing.txt", "")).await;
    let text = report.diagnostics.to_string();
    assert!(text.contains("failed to build component"), "{text}");
    assert!(text.contains(&env.path("missing.txt")), "{text}");
    assert!(text.contains("os error"), "{text}");
    let health = env.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(health.message.contains("missing.txt"), "{}", health.message);
    let dependant = env.c.component("test.pass.x").unwrap().health;
    assert_eq!(
        dependant.state,
        HealthState::Unhealthy,
        "{}",
        dependant.message
    );

    // Once the file exists, a reload builds the component.
    env.write("missing.txt", "found");
    let report = env.load(&env.config("missing.txt", "")).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert!(
        report.started.iter().any(|id| id == "local.file.a"),
        "{report:?}"
    );
    assert_eq!(env.health().state, HealthState::Healthy);
    env.c.settle().await;
    assert_eq!(env.passed(), string("found"));
    env.c.shutdown().await;
}

/// Removing the file makes the component unhealthy (keeping the last content); restoring it recovers.
async fn removal_and_recovery(detector: &str) {
    let env = Env::new();
    env.write("a.txt", "before");
    env.load(&env.config(
        "a.txt",
        &format!("detector = \"{detector}\"\n  poll_frequency = \"20ms\""),
    ))
    .await;
    assert_eq!(env.health().state, HealthState::Healthy);

    env.remove("a.txt");
    eventually("unhealthy after removal", || {
        env.health().state == HealthState::Unhealthy
    })
    .await;
    let message = env.health().message;
    assert!(message.contains(&env.path("a.txt")), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert_eq!(env.content(), string("before"));
    assert_eq!(env.passed(), string("before"));

    env.write("a.txt", "after");
    eventually("healthy with the new content", || {
        env.health().state == HealthState::Healthy && env.passed() == string("after")
    })
    .await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn removal_and_recovery_with_file_events() {
    removal_and_recovery("fsnotify").await;
}

#[tokio::test]
async fn removal_and_recovery_with_polling() {
    removal_and_recovery("poll").await;
}

#[tokio::test]
async fn a_file_replaced_by_rename_is_followed() {
    // Editors and config managers write a new file and rename it over the old one.
    let env = Env::new();
    env.write("a.txt", "one");
    env.load(&env.config("a.txt", "poll_frequency = \"1h\""))
        .await;
    for (i, content) in ["two", "three"].into_iter().enumerate() {
        let tmp = format!("a.txt.tmp{i}");
        env.write(&tmp, content);
        std::fs::rename(env.dir.path().join(&tmp), env.dir.path().join("a.txt")).unwrap();
        eventually("the renamed file's content", || {
            env.passed() == string(content)
        })
        .await;
    }
    env.c.shutdown().await;
}

#[tokio::test]
async fn the_poll_detector_picks_up_changes() {
    let env = Env::new();
    env.write("a.txt", "v1");
    env.load(&env.config("a.txt", "detector = \"poll\"\n  poll_frequency = \"20ms\""))
        .await;
    assert_eq!(env.content(), string("v1"));
    env.write("a.txt", "v2");
    eventually("the poll reads v2", || env.passed() == string("v2")).await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn an_update_switches_files_at_once() {
    let env = Env::new();
    env.write("a.txt", "from a");
    env.write("b.txt", "from b");
    env.load(&env.config("a.txt", "poll_frequency = \"1h\""))
        .await;
    let report = env
        .load(&env.config("b.txt", "poll_frequency = \"1h\""))
        .await;
    // The reload waits for local.file.a's update, so its dependant is updated with the new content in the
    // same load.
    assert_eq!(report.updated, ["local.file.a", "test.pass.x"]);
    eventually("b's content at the dependant", || {
        env.passed() == string("from b")
    })
    .await;

    // The old file no longer matters; the new one is watched.
    env.write("a.txt", "a again");
    env.write("b.txt", "b again");
    eventually("b's new content", || env.passed() == string("b again")).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(env.content(), string("b again"));
    env.c.shutdown().await;
}

#[tokio::test]
async fn turning_is_secret_on_republishes_the_same_content_as_a_secret() {
    let env = Env::new();
    env.write("a.txt", "pw");
    env.load(&env.config("a.txt", "")).await;
    assert_eq!(env.content(), string("pw"));
    env.load(&env.config("a.txt", "is_secret = true")).await;
    eventually("a secret", || matches!(env.content(), Value::Secret(_))).await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn an_update_to_a_missing_file_is_unhealthy_until_it_appears() {
    let env = Env::new();
    env.write("a.txt", "a");
    env.load(&env.config("a.txt", "poll_frequency = \"1h\""))
        .await;
    let report = env
        .load(&env.config("later.txt", "poll_frequency = \"1h\""))
        .await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("unhealthy", || env.health().state == HealthState::Unhealthy).await;
    assert_eq!(env.content(), string("a"));
    // The directory watch sees the file appear.
    env.write("later.txt", "here now");
    eventually("healthy with the new file", || {
        env.health().state == HealthState::Healthy && env.content() == string("here now")
    })
    .await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn an_invalid_detector_rejects_the_block_with_the_reference_message() {
    let env = Env::new();
    env.write("a.txt", "a");
    let report = env
        .load(&env.config("a.txt", "detector = \"inotify\""))
        .await;
    let text = report.diagnostics.to_string();
    assert!(
        text.contains(r#"unrecognized detector "inotify", expected fsnotify or poll"#),
        "{text}"
    );
    assert_eq!(env.health().state, HealthState::Unhealthy);
    env.c.shutdown().await;
}
