//! Parses the shared conformance configs (`../shared/conformance/agent-docs`): every `valid/*.river` must parse
//! with no diagnostic, and every `invalid/*.river` must be rejected with the same first diagnostic (line, byte
//! column and message) as the first line of its `.errors` file, which holds the reference implementation's
//! output.
//!
//! The shared folder lives outside the project. When it is missing the test prints that it skipped, except
//! under `CI=true`, where a missing folder is a failure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn conformance_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/agent-docs");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "conformance data not found at {} (required under CI=true)",
            dir.display()
        );
    }
    println!("SKIPPED: conformance data not found at {}", dir.display());
    None
}

fn river_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "river"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .river files in {}", dir.display());
    files
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `line:byte_col: message` of the earliest diagnostic, as the reference prints it.
fn first_diagnostic(src: &str, diags: &river::Diagnostics) -> Option<String> {
    let first = diags.iter().min_by_key(|d| d.span.start)?;
    let p = river::span::LineIndex::new(src).position(src, first.span.start);
    Some(format!("{}:{}: {}", p.line, p.byte_column, first.message))
}

#[test]
fn conformance_valid_files_parse_without_diagnostics() {
    let Some(dir) = conformance_dir() else { return };
    let files = river_files(&dir.join("valid"));
    let mut mismatches = String::new();
    let mut failed = 0;
    for path in &files {
        let src =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, diags) = river::parse(&src);
        if !diags.is_empty() {
            failed += 1;
            let mut sorted: Vec<_> = diags.iter().collect();
            sorted.sort_by_key(|d| d.span.start);
            let index = river::span::LineIndex::new(&src);
            let _ = writeln!(mismatches, "  valid/{}:", name(path));
            for d in sorted.iter().take(3) {
                let p = index.position(&src, d.span.start);
                let _ = writeln!(
                    mismatches,
                    "      {}:{}: {}",
                    p.line, p.byte_column, d.message
                );
            }
            if sorted.len() > 3 {
                let _ = writeln!(mismatches, "      ... and {} more", sorted.len() - 3);
            }
        }
    }
    println!(
        "conformance valid: {}/{} files parse with no diagnostics",
        files.len() - failed,
        files.len()
    );
    assert!(
        failed == 0,
        "{failed} of {} valid conformance files have diagnostics:\n{mismatches}",
        files.len()
    );
}

#[test]
fn conformance_invalid_files_report_the_reference_first_error() {
    let Some(dir) = conformance_dir() else { return };
    let files = river_files(&dir.join("invalid"));
    let mut mismatches = String::new();
    let mut failed = 0;
    for path in &files {
        let src =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let errors_path = path.with_extension("errors");
        let errors = std::fs::read_to_string(&errors_path)
            .unwrap_or_else(|e| panic!("{}: {e}", errors_path.display()));
        let want = errors.lines().next().unwrap_or("").trim_end().to_string();
        let (_, diags) = river::parse(&src);
        let got = first_diagnostic(&src, &diags);
        if got.as_deref() != Some(want.as_str()) {
            failed += 1;
            let _ = writeln!(
                mismatches,
                "  invalid/{}:\n      want {want}\n      got  {}",
                name(path),
                got.as_deref().unwrap_or("(no diagnostic)")
            );
        }
    }
    println!(
        "conformance invalid: {}/{} files give the reference first diagnostic",
        files.len() - failed,
        files.len()
    );
    assert!(
        failed == 0,
        "{failed} of {} invalid conformance files differ:\n{mismatches}",
        files.len()
    );
}
