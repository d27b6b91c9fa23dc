//! Scenario tests of the controller with real components.

mod common;

use flow::{Controller, ControllerOptions, HealthState, Sources};
use river::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn sources(text: &str) -> Sources {
    Sources::parse([("main.river", text)]).expect("config parses")
}

fn controller() -> Controller {
    let options = ControllerOptions {
        storage_path: std::env::temp_dir().join("rill-flow-tests"),
        restart_backoff: Duration::from_millis(10),
        ..ControllerOptions::default()
    };
    Controller::new(common::registry(), options)
}

fn output(c: &Controller, id: &str) -> Value {
    let exports = c
        .exports(id)
        .unwrap_or_else(|| panic!("{id} has no exports"));
    match exports {
        Value::Object(o) => o.get("output").cloned().unwrap_or_default(),
        other => panic!("{id} exports {other:?}"),
    }
}

fn counts(c: &Controller, id: &str) -> (u64, u64) {
    let n = c.counters(id).unwrap();
    (
        n.updates.load(Ordering::Relaxed),
        n.runs.load(Ordering::Relaxed),
    )
}

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached in time");
}

const DIAMOND: &str = r#"
test.pass "a" { input = 1 }
test.pass "b" { input = test.pass.a.output }
test.pass "c" { input = [test.pass.a.output, test.pass.b.output] }
"#;

#[tokio::test]
async fn diamond_propagation_reaches_the_node_that_refers_to_both() {
    let c = controller();
    c.load(sources(DIAMOND)).await.unwrap();
    assert_eq!(
        output(&c, "test.pass.c"),
        Value::array(vec![Value::int(1), Value::int(1)])
    );

    c.load(sources(&DIAMOND.replace("input = 1", "input = 2")))
        .await
        .unwrap();
    eventually(|| output(&c, "test.pass.c") == Value::array(vec![Value::int(2), Value::int(2)]))
        .await;
    c.settle().await;
    assert_eq!(output(&c, "test.pass.b"), Value::int(2));
    c.shutdown().await;
}

#[tokio::test]
async fn an_unchanged_reload_updates_and_restarts_nothing() {
    let c = controller();
    c.load(sources(DIAMOND)).await.unwrap();
    c.settle().await;
    let before: Vec<_> = ["a", "b", "c"]
        .map(|l| counts(&c, &format!("test.pass.{l}")))
        .into();
    let report = c.load(sources(DIAMOND)).await.unwrap();
    c.settle().await;
    let after: Vec<_> = ["a", "b", "c"]
        .map(|l| counts(&c, &format!("test.pass.{l}")))
        .into();
    assert_eq!(before, after);
    assert!(report.updated.is_empty() && report.started.is_empty() && report.stopped.is_empty());
    c.shutdown().await;
}

#[tokio::test]
async fn a_dependency_that_changes_and_changes_back_is_followed_each_time_and_only_then() {
    let config = |a: &str, x: i64| {
        format!(
            "test.pass \"a\" {{ input = {a} }}\ntest.pass \"b\" {{ input = test.pass.a.output }}\ntest.pass \"x\" {{ input = {x} }}\n"
        )
    };
    let c = controller();
    c.load(sources(&config("1", 0))).await.unwrap();
    c.settle().await;
    let updates = |id: &str| counts(&c, id).0;
    let (a0, b0) = (updates("test.pass.a"), updates("test.pass.b"));
    for (round, (a, want)) in [("2", 2), ("1", 1), ("3 - 2", 1), ("1", 1)]
        .into_iter()
        .enumerate()
    {
        c.load(sources(&config(a, round as i64 + 1))).await.unwrap();
        c.settle().await;
        assert_eq!(output(&c, "test.pass.b"), Value::int(want), "round {round}");
    }
    // `a` changed twice (1 -> 2 -> 1); `3 - 2` and `1` evaluate to what it had, so neither `a` nor what
    // refers to it is updated for them, while `x` changed every time.
    assert_eq!(updates("test.pass.a") - a0, 2);
    assert_eq!(updates("test.pass.b") - b0, 2);
    assert_eq!(output(&c, "test.pass.x"), Value::int(4));
    c.shutdown().await;
}

#[tokio::test]
async fn a_rejected_reload_leaves_everything_running_as_it_was() {
    let c = controller();
    c.load(sources(DIAMOND)).await.unwrap();
    c.settle().await;
    let before = counts(&c, "test.pass.a");
    for broken in [
        "test.pass \"a\" { input = 5 }\ntest.pass \"b\" { input = nope.x }\n",
        "test.pass \"a\" { input = 5 }\ntest.passs \"b\" { }\n",
        "test.pass \"a\" { input = test.pass.b.output }\ntest.pass \"b\" { input = test.pass.a.output }\n",
    ] {
        let err = c.load(sources(broken)).await.unwrap_err();
        assert!(!err.is_empty());
    }
    let syntax = Sources::parse([("main.river", "test.pass \"a\" { input = }")]);
    assert!(syntax.is_err());
    c.settle().await;
    assert_eq!(counts(&c, "test.pass.a"), before);
    assert_eq!(output(&c, "test.pass.a"), Value::int(1));
    assert_eq!(c.components().len(), 3);
    c.shutdown().await;
}

#[tokio::test]
async fn a_failed_evaluation_keeps_the_last_good_arguments() {
    let c = controller();
    c.load(sources(DIAMOND)).await.unwrap();
    c.settle().await;
    let report = c
        .load(sources(&DIAMOND.replace(
            "input = test.pass.a.output }",
            "input = test.pass.a.output + \"x\" }",
        )))
        .await
        .unwrap();
    assert_eq!(report.diagnostics.len(), 1, "{}", report.diagnostics);
    let msg = report.diagnostics.to_string();
    assert!(msg.starts_with("main.river:3:"), "{msg}");
    assert!(msg.contains("should be number, got string"), "{msg}");
    let b = c.component("test.pass.b").unwrap();
    assert_eq!(b.health.state, HealthState::Unhealthy);
    assert_eq!(output(&c, "test.pass.b"), Value::int(1));
    assert_eq!(
        c.component("test.pass.a").unwrap().health.state,
        HealthState::Healthy
    );
    c.shutdown().await;
}

#[tokio::test]
async fn a_rename_stops_the_old_component_before_starting_the_new() {
    let c = controller();
    c.load(sources("test.lock \"old\" { name = \"port-1\" }"))
        .await
        .unwrap();
    let report = c
        .load(sources("test.lock \"new\" { name = \"port-1\" }"))
        .await
        .unwrap();
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert_eq!(report.stopped, ["test.lock.old"]);
    assert_eq!(report.started, ["test.lock.new"]);
    assert_eq!(
        c.component("test.lock.new").unwrap().health.state,
        HealthState::Healthy
    );
    c.shutdown().await;
}

#[tokio::test]
async fn a_panicking_component_is_restarted_while_the_others_run_on() {
    let c = controller();
    c.load(sources(
        "test.panicky \"p\" { times = 2 }\ntest.pass \"ok\" { input = 1 }\n",
    ))
    .await
    .unwrap();
    eventually(|| counts(&c, "test.panicky.p").1 == 3).await;
    eventually(|| c.component("test.panicky.p").unwrap().health.state == HealthState::Healthy)
        .await;
    assert_eq!(counts(&c, "test.pass.ok"), (0, 1));
    c.shutdown().await;
}

#[tokio::test]
async fn the_logging_block_is_applied_live_and_reset_when_removed() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let options = ControllerOptions {
        on_logging: Some(std::sync::Arc::new(move |c: &flow::LoggingConfig| {
            record
                .lock()
                .unwrap()
                .push(format!("{}/{}", c.level, c.format))
        })),
        ..ControllerOptions::default()
    };
    let c = Controller::new(common::registry(), options);
    c.load(sources(
        "logging {\n  level = \"debug\"\n  format = \"json\"\n}\n",
    ))
    .await
    .unwrap();
    let report = c
        .load(sources("logging {\n  level = \"loud\"\n}\n"))
        .await
        .unwrap();
    assert_eq!(
        report.diagnostics.to_string(),
        "main.river:1:1: unrecognized log level \"loud\"; must be one of debug, info, warn, error"
    );
    assert_eq!(
        c.component("logging").unwrap().health.state,
        HealthState::Unhealthy
    );
    c.load(sources("test.pass \"a\" { }\n")).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["debug/json", "info/logfmt"]);
    c.shutdown().await;
}

#[tokio::test]
async fn reverting_a_broken_block_evaluates_it_again() {
    let c = controller();
    c.load(sources(DIAMOND)).await.unwrap();
    c.settle().await;
    let broken = DIAMOND.replace("input = 1 }", "input = 1 + \"x\" }");
    let report = c.load(sources(&broken)).await.unwrap();
    assert_eq!(report.diagnostics.len(), 1);
    assert_eq!(
        c.component("test.pass.a").unwrap().health.state,
        HealthState::Unhealthy
    );
    let report = c.load(sources(DIAMOND)).await.unwrap();
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert_eq!(
        c.component("test.pass.a").unwrap().health.state,
        HealthState::Healthy
    );
    // Its arguments never changed from the last good ones, so it was not updated.
    assert_eq!(counts(&c, "test.pass.a").0, 0);
    c.shutdown().await;
}

#[tokio::test]
async fn metrics_report_loads_evaluations_and_health() {
    let c = controller();
    let mut registry = prometheus_client::registry::Registry::default();
    c.register_metrics(&mut registry);
    c.load(sources(DIAMOND)).await.unwrap();
    assert!(c
        .load(sources("test.pass \"a\" { input = nope.x }"))
        .await
        .is_err());
    c.load(sources(
        "test.panicky \"p\" { times = 1000 }\ntest.pass \"ok\" { }\n",
    ))
    .await
    .unwrap();
    eventually(|| c.component("test.panicky.p").unwrap().health.state == HealthState::Exited).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "rill_config_last_load_successful 1",
        "rill_config_load_failures_total 1",
        "rill_component_controller_running_components{health_type=\"healthy\"} 1",
        "rill_component_controller_running_components{health_type=\"exited\"} 1",
        "rill_component_evaluation_queue_size 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let evaluations = text
        .lines()
        .find_map(|l| l.strip_prefix("rill_component_evaluation_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(evaluations.is_some_and(|n| n >= 5), "{text}");
    c.shutdown().await;
}

/// 40 chains of 5 whose heads differ, and a fan-in per chain over its members: 240 nodes, enough for a
/// load to evaluate on several threads by default.
fn wide_config(round: i64) -> String {
    let mut s = String::new();
    for c in 0..40 {
        s.push_str(&format!(
            "test.pass \"c{c}_0\" {{ input = {} }}\n",
            c * 100 + round
        ));
        for i in 1..5 {
            s.push_str(&format!(
                "test.pass \"c{c}_{i}\" {{ input = test.pass.c{c}_{}.output + 1 }}\n",
                i - 1
            ));
        }
        let all: Vec<String> = (0..5)
            .map(|i| format!("test.pass.c{c}_{i}.output"))
            .collect();
        s.push_str(&format!(
            "test.pass \"fan{c}\" {{ input = [{}] }}\n",
            all.join(", ")
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_on_several_threads_matches_one_on_the_loading_task() {
    let load = |threads: usize| async move {
        let options = ControllerOptions {
            storage_path: std::env::temp_dir().join("rill-flow-tests"),
            evaluation_threads: threads,
            ..ControllerOptions::default()
        };
        let c = Controller::new(common::registry(), options);
        let first = c.load(sources(&wide_config(0))).await.unwrap();
        // Every fan-in saw its whole chain, evaluated in order, on the first pass.
        for chain in 0..40 {
            let head = chain * 100;
            let want: Vec<Value> = (0..5).map(|i| Value::int(head + i)).collect();
            assert_eq!(
                output(&c, &format!("test.pass.fan{chain}")),
                Value::array(want)
            );
        }
        let second = c.load(sources(&wide_config(7))).await.unwrap();
        for chain in 0..40 {
            let head = chain * 100 + 7;
            let want: Vec<Value> = (0..5).map(|i| Value::int(head + i)).collect();
            assert_eq!(
                output(&c, &format!("test.pass.fan{chain}")),
                Value::array(want)
            );
            for i in 0..5 {
                let id = format!("test.pass.c{chain}_{i}");
                assert_eq!(counts(&c, &id).0, 1, "{id} updated once");
            }
        }
        c.shutdown().await;
        (first.started, second.updated)
    };
    let (one_started, one_updated) = load(1).await;
    assert_eq!(one_started.len(), 240);
    assert_eq!(one_updated.len(), 240);
    // 0: the pass scheduler, which adds threads only for slow nodes; 3: three threads from the start. The
    // report lists nodes in the same (dependency) order whichever way they were evaluated.
    for threads in [0, 3] {
        let (started, updated) = load(threads).await;
        assert_eq!(started, one_started, "{threads} threads");
        assert_eq!(updated, one_updated, "{threads} threads");
    }
}

/// Takes `ms` milliseconds to build (like a component that reads certificates or opens files), noting the
/// thread that built it.
struct SlowBuild;

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
struct SlowBuildArgs {
    ms: u64,
}
impl river::decode::Validate for SlowBuildArgs {}

fn slow_build_threads(
) -> &'static std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>> {
    static THREADS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>,
    > = std::sync::OnceLock::new();
    THREADS.get_or_init(Default::default)
}

#[async_trait::async_trait]
impl flow::TypedComponent for SlowBuild {
    const NAME: &'static str = "test.slow_build";
    type Arguments = SlowBuildArgs;

    fn build(_ctx: flow::Context, args: SlowBuildArgs) -> Result<Self, flow::ComponentError> {
        std::thread::sleep(Duration::from_millis(args.ms));
        slow_build_threads()
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        Ok(SlowBuild)
    }

    async fn run(
        &self,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(), flow::ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, _args: SlowBuildArgs) -> Result<(), flow::ComponentError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_join_a_load_whose_components_are_slow_to_build() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one core: a load is evaluated on one thread");
        return;
    }
    let mut registry = flow::Registry::new();
    registry.register::<SlowBuild>().unwrap();
    let c = Controller::new(
        std::sync::Arc::new(registry),
        ControllerOptions {
            storage_path: std::env::temp_dir().join("rill-flow-tests"),
            ..ControllerOptions::default()
        },
    );
    let text: String = (0..80)
        .map(|i| format!("test.slow_build \"n{i}\" {{ ms = 2 }}\n"))
        .collect();
    let report = c.load(sources(&text)).await.unwrap();
    assert_eq!(report.started.len(), 80);
    let expected: Vec<String> = (0..80).map(|i| format!("test.slow_build.n{i}")).collect();
    assert_eq!(report.started, expected, "in source order");
    let threads = slow_build_threads().lock().unwrap().len();
    assert!(threads >= 2, "built on {threads} thread(s)");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_controller_stops_its_components() {
    let config = r#"test.lock "held" { name = "dropped-controller-resource" }"#;
    let first = controller();
    first.load(sources(config)).await.unwrap();
    assert_eq!(
        first.component("test.lock.held").unwrap().health.state,
        HealthState::Healthy
    );
    drop(first);
    // The dropped controller's component releases the resource when its run is cancelled, so a second
    // controller can build its own.
    let second = controller();
    for _ in 0..200 {
        second.load(sources(config)).await.unwrap();
        if second.component("test.lock.held").unwrap().health.state == HealthState::Healthy {
            second.shutdown().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the dropped controller's component still holds the resource");
}

/// Counts its live instances, so a test can tell that a controller let go of its components. Like real
/// components, it keeps its context (and so its exports handle).
struct Counted {
    _ctx: flow::Context,
}

static COUNTED_LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTED_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl flow::TypedComponent for Counted {
    const NAME: &'static str = "test.counted";
    type Arguments = common::PassArgs;

    fn build(ctx: flow::Context, args: common::PassArgs) -> Result<Self, flow::ComponentError> {
        #[derive(serde::Serialize)]
        struct Exports<'a> {
            output: &'a Value,
        }
        ctx.exports.publish(&Exports {
            output: &args.input,
        })?;
        COUNTED_LIVE.fetch_add(1, Ordering::SeqCst);
        Ok(Counted { _ctx: ctx })
    }

    async fn run(
        &self,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(), flow::ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, _args: common::PassArgs) -> Result<(), flow::ComponentError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_controller_frees_its_components() {
    let mut registry = flow::Registry::new();
    registry.register::<Counted>().unwrap();
    let registry = std::sync::Arc::new(registry);
    let options = || ControllerOptions {
        storage_path: std::env::temp_dir().join("rill-flow-tests"),
        ..ControllerOptions::default()
    };
    // Each component refers to the one before, so every one holds its exports handle.
    let text: String = (0..100)
        .map(|i| match i {
            0 => "test.counted \"n0\" { input = 0 }\n".to_string(),
            _ => format!(
                "test.counted \"n{i}\" {{ input = test.counted.n{}.output }}\n",
                i - 1
            ),
        })
        .collect();
    // Dropped after a shutdown, and dropped while running.
    for shut_down in [true, false] {
        let c = Controller::new(registry.clone(), options());
        c.load(sources(&text)).await.unwrap();
        c.settle().await;
        assert_eq!(COUNTED_LIVE.load(Ordering::SeqCst), 100);
        if shut_down {
            c.shutdown().await;
        }
        drop(c);
        eventually(|| COUNTED_LIVE.load(Ordering::SeqCst) == 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_panics_in_build_fails_alone_and_the_load_goes_on() {
    let registry = common::scenario_registry();
    // One thread, and a pass big enough for several.
    for threads in [1, 0] {
        let c = Controller::new(
            registry.clone(),
            ControllerOptions {
                storage_path: std::env::temp_dir().join("rill-flow-tests"),
                evaluation_threads: threads,
                ..ControllerOptions::default()
            },
        );
        let others: String = (0..100)
            .map(|i| format!("test.pass \"n{i}\" {{ input = {i} }}\n"))
            .collect();
        let text = format!("{others}test.probe \"bad\" {{ panic_build = \"a bug in build\" }}\n");
        let report = c.load(sources(&text)).await.expect("the load goes on");
        assert_eq!(report.started.len(), 100, "{threads} threads");
        let errors: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("101:1")
                && errors[0]
                    .contains("failed to build component: panicked: deliberate: a bug in build"),
            "{}",
            errors[0]
        );
        let bad = c.component("test.probe.bad").unwrap();
        assert_eq!(bad.health.state, HealthState::Unhealthy);
        // Fixed by the next load.
        let fixed = text.replace("panic_build = \"a bug in build\"", "input = 1");
        let report = c.load(sources(&fixed)).await.unwrap();
        assert_eq!(report.started, vec!["test.probe.bad".to_string()]);
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_s_entries_reach_the_report_even_when_some_helpers_never_ran() {
    // Many threads for a few nodes: the loading thread often finishes before some helpers take their
    // share, and the report must still hold what the others evaluated.
    let c = Controller::new(
        common::registry(),
        ControllerOptions {
            storage_path: std::env::temp_dir().join("rill-flow-tests"),
            evaluation_threads: 8,
            ..ControllerOptions::default()
        },
    );
    let config = |round: usize| -> String {
        (0..6)
            .map(|i| format!("test.pass \"n{i}\" {{ input = {} }}\n", round * 10 + i))
            .collect()
    };
    let all: Vec<String> = (0..6).map(|i| format!("test.pass.n{i}")).collect();
    let report = c.load(sources(&config(0))).await.unwrap();
    assert_eq!(report.started, all);
    for round in 1..300 {
        let report = c.load(sources(&config(round))).await.unwrap();
        assert_eq!(report.updated, all, "round {round}");
    }
    c.shutdown().await;
}

/// Keeps the exports handle of every build (in `HANDLES`), and fails to build while `fail` is set.
struct Keeper;

static HANDLES: std::sync::Mutex<Vec<flow::ExportsHandle>> = std::sync::Mutex::new(Vec::new());

#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, PartialEq)]
struct KeeperArgs {
    fail: bool,
}
impl river::decode::Validate for KeeperArgs {}

#[async_trait::async_trait]
impl flow::TypedComponent for Keeper {
    const NAME: &'static str = "test.keeper";
    type Arguments = KeeperArgs;

    fn build(ctx: flow::Context, args: KeeperArgs) -> Result<Self, flow::ComponentError> {
        ctx.exports.publish_value(Value::string("built"));
        HANDLES.lock().unwrap().push(ctx.exports.clone());
        if args.fail {
            return Err(flow::ComponentError::new("told to fail"));
        }
        Ok(Keeper)
    }

    async fn run(
        &self,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(), flow::ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, _args: KeeperArgs) -> Result<(), flow::ComponentError> {
        Ok(())
    }
}

#[tokio::test]
async fn only_the_latest_successful_build_of_a_component_may_publish() {
    let mut registry = flow::Registry::new();
    registry.register::<Keeper>().unwrap();
    let c = Controller::new(
        std::sync::Arc::new(registry),
        ControllerOptions {
            storage_path: std::env::temp_dir().join("rill-flow-tests"),
            ..ControllerOptions::default()
        },
    );
    let publish_with = |build: usize, text: &str| {
        let handle = HANDLES.lock().unwrap()[build].clone();
        handle.publish_value(Value::string(text));
    };

    // A failed build: what it published, and what its handle publishes later, never shows.
    let report = c
        .load(sources("test.keeper \"k\" { fail = true }"))
        .await
        .unwrap();
    assert!(report.started.is_empty(), "{report:?}");
    publish_with(0, "from the failed build");
    assert_eq!(c.exports("test.keeper.k"), None);

    // The next build succeeds and publishes; the failed build's handle still cannot.
    c.load(sources("test.keeper \"k\" { fail = false }"))
        .await
        .unwrap();
    assert_eq!(c.exports("test.keeper.k"), Some(Value::string("built")));
    publish_with(0, "from the failed build");
    assert_eq!(c.exports("test.keeper.k"), Some(Value::string("built")));
    publish_with(1, "from the running build");
    assert_eq!(
        c.exports("test.keeper.k"),
        Some(Value::string("from the running build"))
    );

    // Removed: its handle publishes nothing more.
    c.load(sources("")).await.unwrap();
    publish_with(1, "after removal");
    assert_eq!(c.exports("test.keeper.k"), None);
    c.shutdown().await;
}

/// A reload abandoned half-way (its future dropped while it waits for a slow update) leaves the nodes it did
/// not reach to the evaluator: a node new in that config, never evaluated (it has no state yet), is built and
/// runs with the latest exports of what it refers to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_an_abandoned_reload_did_not_reach_are_evaluated_afterwards() {
    let options = ControllerOptions {
        storage_path: std::env::temp_dir().join("rill-flow-tests-abandoned"),
        ..ControllerOptions::default()
    };
    let c = Controller::new(common::scenario_registry(), options);
    c.load(sources(
        r#"
test.probe "a" { input = 1 }
test.pass "b" { input = test.probe.a.output }
"#,
    ))
    .await
    .expect("loads");
    c.settle().await;
    assert_eq!(output(&c, "test.pass.b"), Value::int(1));

    // `a` is updated first and takes 300ms; the load waits for it (its dependants should see the new
    // exports) and is dropped meanwhile, before it evaluates `b` or the new `c`.
    let reload = c.load(sources(
        r#"
test.probe "a" {
    input = 2
    update_delay = "300ms"
}
test.pass "b" { input = test.probe.a.output }
test.pass "c" { input = test.probe.a.output }
"#,
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), reload)
            .await
            .is_err(),
        "the reload should still wait for the slow update"
    );
    // The evaluator takes over at once, so what it finds at first is not checked here.
    assert!(
        c.component("test.pass.c").is_some(),
        "c is in the running config"
    );
    eventually(|| c.exports("test.pass.c").is_some() && output(&c, "test.pass.c") == Value::int(2))
        .await;
    eventually(|| output(&c, "test.pass.b") == Value::int(2)).await;
    let c_info = c.component("test.pass.c").expect("listed");
    assert_eq!(c_info.references_to, vec!["test.probe.a".to_string()]);
    eventually(|| {
        c.component("test.pass.c")
            .is_some_and(|i| i.health.state == HealthState::Healthy)
    })
    .await;
    c.shutdown().await;
}
