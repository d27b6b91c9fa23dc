//! Runs the example config with the example's registry and watches exports propagate.

use flow::{Controller, ControllerOptions, Sources};
use river::Value;
use std::time::Duration;

fn export(c: &Controller, id: &str, field: &str) -> Value {
    match c.exports(id) {
        Some(Value::Object(o)) => o.get(field).cloned().unwrap_or_default(),
        other => panic!("{id} exports {other:?}"),
    }
}

#[tokio::test]
async fn the_example_config_runs_and_propagates_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example.river");
    let sources = Sources::read(&path).expect("example parses");
    let controller = Controller::new(custom_component::registry(), ControllerOptions::default());
    let report = controller.load(sources).await.expect("example loads");
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    assert_eq!(
        report.started,
        ["example.ticker.fast", "example.ticker.slow"]
    );

    // The fast ticker counts, and every new message reaches the slow ticker's arguments and exports.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = export(&controller, "example.ticker.slow", "message");
        if seen
            .as_str()
            .is_some_and(|m| m.starts_with("fast ") && !m.starts_with("fast 0 "))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message = seen.as_str().expect("slow exports a message").to_string();
    assert!(
        message.starts_with("fast ") && !message.starts_with("fast 0 "),
        "{message}"
    );

    let info = controller.component("example.ticker.slow").unwrap();
    assert_eq!(info.referenced_by, Vec::<String>::new());
    assert_eq!(info.references_to, ["example.ticker.fast"]);
    controller.shutdown().await;
}

#[test]
fn the_binary_rejects_a_bad_config_with_a_position() {
    let dir = std::env::temp_dir().join(format!("custom-component-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.river");
    std::fs::write(
        &file,
        "example.ticker \"a\" {\n\tinterval = \"0s\"\n}\nexample.tickr \"b\" { }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custom-component"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.river:4:1: cannot find the definition of component name \"example.tickr\" (did you mean \"example.ticker\"?)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
