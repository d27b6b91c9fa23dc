//! Focused formatter cases: `testdata/fmt/NAME.in` formats to `NAME.expect` byte for byte, and formatting
//! the expected output again changes nothing.

use std::path::{Path, PathBuf};

#[test]
fn golden_pairs_format_exactly_and_idempotently() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fmt");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testdata/fmt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "in"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "golden inputs missing in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    for path in &inputs {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path).expect("read .in");
        let expect = std::fs::read_to_string(path.with_extension("expect")).expect("read .expect");
        match river::format::format_source(&src) {
            Ok(got) if got == expect => {}
            Ok(got) => failures.push(format!("{name}:\n--- expect\n{expect}\n--- got\n{got}")),
            Err(d) => failures.push(format!("{name}: does not parse: {d:?}")),
        }
        match river::format::format_source(&expect) {
            Ok(again) if again == expect => {}
            Ok(again) => failures.push(format!("{name}: not idempotent:\n{again}")),
            Err(d) => failures.push(format!("{name}: expected output does not parse: {d:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
