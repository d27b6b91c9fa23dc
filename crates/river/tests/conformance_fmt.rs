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

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Comments and line breaks inserted at random places in the conformance configs: whenever the result still
/// parses, its formatted form parses, keeps every comment, and formats to itself.
#[test]
fn comments_and_line_breaks_anywhere_are_kept_and_stable() {
    let dir = valid_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance data missing"
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
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut checked, mut failures) = (0, Vec::new());
    for path in &inputs {
        let src = std::fs::read_to_string(path).expect("read .river");
        for round in 0..6 {
            let mut s = src.clone();
            for _ in 0..3 {
                // Insert after punctuation or at a blank, alternating by round.
                let spots: Vec<usize> = s
                    .char_indices()
                    .filter_map(|(i, c)| match (round % 2, c) {
                        (0, ' ' | '\n') => Some(i),
                        (1, ',' | '(' | '[' | '{' | '=' | '+' | ')' | ']' | '}' | '.') => {
                            Some(i + 1)
                        }
                        _ => None,
                    })
                    .collect();
                if spots.is_empty() {
                    break;
                }
                let at = spots[rng.below(spots.len())];
                let at_eol = s.as_bytes().get(at) == Some(&b'\n');
                let text = match rng.below(6) {
                    0 if at_eol => " // line comment",
                    1 if at_eol => "\n// own line\n",
                    2 => "\n",
                    3 => "\n\n",
                    4 => " /* multi\n line */ ",
                    _ => " /* block */ ",
                };
                s.insert_str(at, text);
            }
            let (file, diags) = river::parse(&s);
            if diags.has_errors() {
                continue;
            }
            checked += 1;
            let out = river::format::format_file(&file);
            let (again_file, again_diags) = river::parse(&out);
            let problem = if again_diags.has_errors() {
                Some("output does not parse")
            } else if again_file.comments.len() != file.comments.len() {
                Some("comments lost")
            } else if river::format::format_file(&again_file) != out {
                Some("not idempotent")
            } else {
                None
            };
            if let Some(p) = problem {
                failures.push(format!(
                    "{} ({p}):\n{s}\n---- formatted:\n{out}",
                    path.display()
                ));
            }
        }
    }
    println!(
        "fmt mutations: {checked} parsed variants checked, {} failures",
        failures.len()
    );
    assert!(checked > 1000, "too few mutated inputs parsed ({checked})");
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
