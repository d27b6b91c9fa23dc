//! The data-driven conformance suites under `testdata/`, one test per suite. The file formats are described in
//! `testdata/README.md`; each failure names the file, the line or case, and what differed.

#[path = "testdata/common.rs"]
mod common;
#[path = "testdata/decode.rs"]
mod decode;
#[path = "testdata/diagnostics.rs"]
mod diagnostics;
#[path = "testdata/eval.rs"]
mod eval;
#[path = "testdata/parse.rs"]
mod parse;

use common::{pattern_matches, read, testdata_dir};

#[test]
fn parse_valid() {
    parse::valid();
}

#[test]
fn parse_invalid() {
    parse::invalid();
}

#[test]
fn decode_blocks() {
    decode::run();
}

#[test]
fn eval_isolated() {
    eval::run_isolated("eval_isolated_child");
}

/// Run by `eval_isolated` in a child process, one case at a time.
#[test]
#[ignore = "run by eval_isolated in a child process"]
fn eval_isolated_child() {
    eval::run_isolated_child();
}

#[test]
fn diagnostics_render() {
    diagnostics::run();
}

#[test]
fn eval_expressions() {
    eval::run();
}

/// Every expected message the suites state, for the coverage check.
fn all_expected_messages() -> Vec<String> {
    let mut out = Vec::new();
    for path in common::files_with_suffix(&testdata_dir().join("parse/invalid"), ".river") {
        let bytes = std::fs::read(&path).unwrap_or_default();
        if let Ok(a) = parse::annotations(&String::from_utf8_lossy(&bytes)) {
            out.extend(a.into_iter().map(|e| e.message));
        }
    }
    out.extend(eval::expected_messages());
    out.extend(decode::expected_messages());
    out.extend(diagnostics::expected_messages());
    out
}

/// Every message pattern in `testdata/messages.txt` (the messages of the language reference) is expected by
/// at least one case of some suite.
#[test]
fn every_reference_message_has_a_case() {
    let list = read(&testdata_dir().join("messages.txt"));
    let expected = all_expected_messages();
    let mut uncovered = Vec::new();
    let mut total = 0;
    for pattern in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        total += 1;
        if !expected.iter().any(|m| pattern_matches(pattern, m)) {
            uncovered.push(pattern);
        }
    }
    println!(
        "messages: {}/{total} reference message patterns have a case",
        total - uncovered.len()
    );
    assert!(
        uncovered.is_empty(),
        "{} message patterns of testdata/messages.txt have no case:\n  {}",
        uncovered.len(),
        uncovered.join("\n  ")
    );
}

/// Every standard library function in `testdata/stdlib-functions.txt` (both the Agent Flow and the Alloy
/// names) is called by at least one eval case.
#[test]
fn every_stdlib_function_has_a_case() {
    let list = read(&testdata_dir().join("stdlib-functions.txt"));
    let exprs = eval::expressions();
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let uncovered: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            // A call `name(` or, for values like `constants.os`, a use not followed by more name characters.
            !exprs.iter().any(|e| {
                e.match_indices(name).any(|(i, _)| {
                    let before = e[..i].chars().next_back();
                    let after = e[i + name.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .collect();
    println!(
        "stdlib: {}/{} names have a case",
        names.len() - uncovered.len(),
        names.len()
    );
    assert!(
        uncovered.is_empty(),
        "standard library names without an eval case:\n  {}",
        uncovered.join("\n  ")
    );
}
