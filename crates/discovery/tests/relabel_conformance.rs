//! The relabelling conformance suite: `testdata/relabel/*.river` (format in `testdata/relabel/README.md`).
//!
//! Each `discovery.relabel "NAME"` block is decoded exactly as the component decodes its arguments and run
//! through the rules; the `expect "NAME"` block beside it gives the output targets (in order) or the first
//! diagnostic (`LINE:COL: message`). All failures are reported at once, each naming its file and case.

use discovery::relabel::Arguments;
use relabel::{Relabeler, Target};
use river::ast::Stmt;
use river::decode::{decode_block_body, decode_block_body_validated};
use river::eval::Scope;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Expect {
    #[serde(default)]
    output: Option<Vec<Target>>,
    #[serde(default)]
    error: Option<String>,
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/relabel")
}

fn label_text(src: &str, b: &river::ast::Block) -> String {
    b.label
        .map(|s| src[s.start as usize + 1..s.end as usize - 1].to_string())
        .unwrap_or_default()
}

/// Runs one file; returns (cases run, failures).
fn run_file(path: &Path) -> (usize, Vec<String>) {
    let src = std::fs::read_to_string(path).expect("read case file");
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let (file, diags) = river::parse(&src);
    if !diags.is_empty() {
        return (0, vec![format!("{name}: does not parse: {diags:?}")]);
    }
    let lines = river::span::LineIndex::new(&src);
    let scope = Scope::with_stdlib();
    let mut cases: BTreeMap<String, &river::ast::Block> = BTreeMap::new();
    let mut expects: BTreeMap<String, &river::ast::Block> = BTreeMap::new();
    let mut failures = Vec::new();
    for stmt in file.top_level() {
        let Stmt::Block(b) = stmt else {
            failures.push(format!("{name}: only blocks are allowed at the top level"));
            continue;
        };
        let label = label_text(&src, b);
        let map = match b.name_string(&file).as_str() {
            "discovery.relabel" => &mut cases,
            "expect" => &mut expects,
            other => {
                failures.push(format!("{name}: unknown block {other}"));
                continue;
            }
        };
        if map.insert(label.clone(), b).is_some() {
            failures.push(format!("{name}: case {label:?} given twice"));
        }
    }
    for label in expects.keys() {
        if !cases.contains_key(label) {
            failures.push(format!("{name}: expect {label:?} has no case"));
        }
    }
    let mut run = 0;
    for (label, block) in &cases {
        let at = format!("{name}: case {label:?}");
        let Some(expect_block) = expects.get(label) else {
            failures.push(format!("{at}: no expect block"));
            continue;
        };
        let expect: Expect = match decode_block_body(expect_block, &file, &scope) {
            Ok(e) => e,
            Err(d) => {
                failures.push(format!("{at}: bad expect block: {d:?}"));
                continue;
            }
        };
        run += 1;
        let decoded = decode_block_body_validated::<Arguments>(block, &file, &scope);
        match (decoded, expect.output, expect.error) {
            (Ok(args), Some(want), None) => {
                let got = args.rules().apply(&args.targets);
                if got != want {
                    failures.push(format!(
                        "{at}:\n    got  {}\n    want {}",
                        show(&got),
                        show(&want)
                    ));
                }
                // A reused relabeler (warm scratch buffers) must give the same result again.
                let mut r = Relabeler::new(args.rules());
                let first = r.process_all(&args.targets);
                let second = r.process_all(&args.targets);
                if first != got || second != got {
                    failures.push(format!("{at}: a reused relabeler gave {}", show(&second)));
                }
            }
            (Err(diags), None, Some(want)) => {
                let got = diags
                    .iter()
                    .next()
                    .map(|d| {
                        let p = lines.position(&src, d.span.start);
                        format!("{}:{}: {}", p.line, p.column, d.message)
                    })
                    .unwrap_or_default();
                if got != want {
                    let all: Vec<String> = diags
                        .iter()
                        .map(|d| {
                            let p = lines.position(&src, d.span.start);
                            format!("{}:{}: {}", p.line, p.column, d.message)
                        })
                        .collect();
                    failures.push(format!(
                        "{at}:\n    got error  {got}\n    want error {want}\n    all errors {all:?}"
                    ));
                }
            }
            (Ok(args), None, Some(want)) => failures.push(format!(
                "{at}: decoded (output {}), want error {want}",
                show(&args.rules().apply(&args.targets))
            )),
            (Err(diags), Some(_), None) => {
                let msgs: Vec<String> = diags
                    .iter()
                    .map(|d| {
                        let p = lines.position(&src, d.span.start);
                        format!("{}:{}: {}", p.line, p.column, d.message)
                    })
                    .collect();
                failures.push(format!("{at}: unexpected error {msgs:?}"))
            }
            _ => failures.push(format!("{at}: expect needs exactly one of output, error")),
        }
    }
    (run, failures)
}

fn show(ts: &[Target]) -> String {
    let parts: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[test]
fn relabel_conformance_suite() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .expect("read testdata/relabel")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "river"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files");
    let mut total = 0;
    let mut failures = Vec::new();
    for f in &files {
        let (n, mut fails) = run_file(f);
        total += n;
        failures.append(&mut fails);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} relabel cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every action must have cases.
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for action in relabel::Action::ALL {
        if action != relabel::Action::Replace {
            assert!(
                all.contains(&format!("action = \"{action}\""))
                    || all.contains(&format!("\"{action}\"")),
                "no case uses action {action}"
            );
        }
    }
    println!("{total} relabel cases passed");
}
