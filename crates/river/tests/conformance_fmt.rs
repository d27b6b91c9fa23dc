//! Every valid config of the conformance set formats exactly like the reference `agent fmt` (its `.expect`
//! file), and formatting is idempotent.

use std::path::{Path, PathBuf};

fn valid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/agent-docs/valid")
}

/// A short line-based diff: the first differing line with a little context.
fn first_difference(expected: &str, got: &str) -> String {
    let e: Vec<&str> = expected.split('\n').collect();
    let g: Vec<&str> = got.split('\n').collect();
    let i = e
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(e.len().min(g.len()));
    let from = i.saturating_sub(2);
    let mut out = String::new();
    for (tag, lines) in [("expect", &e), ("got   ", &g)] {
        for (n, line) in lines.iter().enumerate().skip(from).take(5) {
            out.push_str(&format!("  {tag} {:>4}: {line:?}\n", n + 1));
        }
    }
    out
}

#[test]
fn conformance_valid_files_format_like_the_reference() {
    let dir = valid_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance data missing at {} (required under CI=true)",
            dir.display()
        );
        println!("skipped: conformance data not found at {}", dir.display());
        return;
    }
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read conformance dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "river"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no .river files in {}", dir.display());

    let mut passed = 0;
    let mut failures = Vec::new();
    for path in &inputs {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let src = std::fs::read_to_string(path).expect("read .river");
        let expect = std::fs::read_to_string(path.with_extension("expect")).expect("read .expect");
        let got = match river::format::format_source(&src) {
            Ok(s) => s,
            Err(d) => {
                failures.push(format!("{name}: does not parse: {d:?}"));
                continue;
            }
        };
        if got != expect {
            failures.push(format!(
                "{name}: differs\n{}",
                first_difference(&expect, &got)
            ));
            continue;
        }
        match river::format::format_source(&got) {
            Ok(again) if again == got => passed += 1,
            Ok(again) => failures.push(format!(
                "{name}: not idempotent\n{}",
                first_difference(&got, &again)
            )),
            Err(d) => failures.push(format!("{name}: output does not parse: {d:?}")),
        }
    }
    println!("fmt conformance: {passed}/{} files pass", inputs.len());
    for f in failures.iter().take(8) {
        println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ",
        failures.len(),
        inputs.len()
    );
}
