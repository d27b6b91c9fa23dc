//! Data-driven runtime scenarios: every `testdata/runtime/*.scenario` file is run against a real controller
//! with the test components of `common`. Set `RILL_SCENARIO=substring` to run only matching files.

mod common;
mod scenarios;

use scenarios::{judge, run::testdata_dir, Verdict};

/// Keeps the deliberate panics of the test components (`test.panicky`, `panic_update`) out of the output;
/// any other panic is reported as usual.
fn quiet_component_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info
                .payload_as_str()
                .is_some_and(|m| m == "test panic" || m.starts_with("deliberate: "));
            if !deliberate {
                default(info);
            }
        }));
    });
}

#[test]
fn runtime_scenarios() {
    quiet_component_panics();
    let dir = testdata_dir();
    let filter = std::env::var("RILL_SCENARIO").ok();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the scenario files in {}",
        dir.display()
    );

    let selected: Vec<(String, &std::path::PathBuf)> = files
        .iter()
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), p)
        })
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    let ran = selected.len();

    // Scenarios are independent (each has its own controller, runtime and directory) and mostly wait, so a
    // few run at a time; results are reported in file order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((name, path)) = selected.get(i) else {
                    return;
                };
                let started = std::time::Instant::now();
                let verdict = match std::fs::read_to_string(path) {
                    Ok(text) => judge(name, &text),
                    Err(e) => Err(format!("{name}: {e}")),
                };
                let ms = started.elapsed().as_millis();
                results.lock().unwrap().push((i, ms, verdict));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);

    let (mut failures, mut known) = (Vec::new(), Vec::new());
    for (i, ms, verdict) in results {
        let name = &selected[i].0;
        match verdict {
            Ok(Verdict::Passed) => eprintln!("ok        {name} ({ms}ms)"),
            Ok(Verdict::KnownBug(e)) => {
                eprintln!("known bug {name} ({ms}ms)");
                known.push(e);
            }
            Err(e) => {
                eprintln!("FAILED    {name} ({ms}ms)");
                failures.push(e);
            }
        }
    }
    assert!(ran > 0, "no scenario matches RILL_SCENARIO={filter:?}");
    for e in &known {
        eprintln!("\nknown bug, failing as expected:\n  {e}");
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n\n"));
}

/// The harness itself: strict parsing, and failures that name file, line and step.
mod harness {
    use super::scenarios::{judge, parse::parse, Verdict};

    #[test]
    fn unknown_or_malformed_directives_are_errors() {
        let cases = [
            (
                "config:\n  test.pass \"a\" { }\nexpect: exprots test.pass.a.output == null\n",
                "t:3: unknown expectation \"exprots\"",
            ),
            (
                "config:\n  test.pass \"a\" { }\nstep: relaod\nexpect: runs test.pass.a == 1\n",
                "t:3: unknown step \"relaod\"",
            ),
            (
                "confg:\n  test.pass \"a\" { }\n",
                "t:1: unknown directive \"confg\"",
            ),
            (
                "config:\n  test.pass \"a\" { }\n",
                "t: a scenario needs at least one `expect:`",
            ),
            (
                "config:\n test.pass \"a\" { }\nexpect: runs test.pass.a == 1\n",
                "t:2: body lines are indented by two spaces",
            ),
            (
                "config:\n  x\nexpect: exports test.pass.a.output\n",
                "t:3: expected `EXPR == EXPR`, got \"test.pass.a.output\"",
            ),
            (
                "config:\n  x\nexpect: exports test.pass.a.output == [1,\n",
                "t:3: not a River expression",
            ),
            (
                "config:\n  x\nexpect: error 3 boom\n",
                "t:3: expected `[FILE:]LINE:COL`, got \"3\"",
            ),
            (
                "config:\n  x\nexpect: runs test.pass.a == many\n",
                "t:3: expected a count, got \"many\"",
            ),
            (
                "config:\n  x\nexpect: healthy test.pass.a \"unterminated\n",
                "t:3: the message is a quoted River string",
            ),
            (
                "config:\n  x\noption: deadline 1s\nexpect: runs a == 1\n",
                "t:3: options come before the first step",
            ),
            (
                "step: reload\n  x\nexpect: runs a == 1\n",
                "t:1: the first load is `config:`",
            ),
            (
                "config:\n  x\nexpect: runs a == 1 within soon\n",
                "t:3: expected a duration such as 200ms, got \"soon\"",
            ),
        ];
        for (text, want) in cases {
            let err = parse("t", text).expect_err(text);
            assert!(
                err.starts_with(want),
                "{text:?}\n  gave {err:?}\n  want {want:?}"
            );
        }
    }

    const WRONG: &str = "option: deadline 100ms
config:
  test.pass \"a\" { input = 1 }
step: reload
  test.pass \"a\" { input = 2 }
expect: exports test.pass.a.output == 2
expect: exports test.pass.a.output == 3
";

    #[test]
    fn a_wrong_expectation_fails_naming_file_line_and_step() {
        let err = judge("wrong.scenario", WRONG).unwrap_err();
        assert!(
            err.starts_with("wrong.scenario:7: `test.pass.a.output` is 2, expected 3"),
            "{err}"
        );
        assert!(err.contains("(after `step: reload` at line 4)"), "{err}");
    }

    #[test]
    fn unexpected_diagnostics_fail_the_scenario() {
        let rejected = "config:\n  test.pass \"a\" { input = nope.x }\nexpect: components none\n";
        let err = judge("r.scenario", rejected).unwrap_err();
        assert!(
            err.contains("the load was rejected with unexpected errors"),
            "{err}"
        );
        assert!(
            err.contains("main.river:1:25: component \"nope.x\" does not exist or is out of scope"),
            "{err}"
        );

        let accepted = "config:\n  test.pass \"a\" { input = 1 }\nexpect: error 1:1 boom\n";
        let err = judge("a.scenario", accepted).unwrap_err();
        assert!(
            err.contains("a.scenario:3: expected the load to be rejected, but it was accepted"),
            "{err}"
        );
    }

    #[test]
    fn a_known_bug_must_fail() {
        let failing = format!("known-bug: a reason\n{WRONG}");
        assert!(matches!(judge("k", &failing), Ok(Verdict::KnownBug(_))));
        let passing = "known-bug: fixed meanwhile\nconfig:\n  test.pass \"a\" { input = 1 }\nexpect: exports test.pass.a.output == 1\n";
        let err = judge("k", passing).unwrap_err();
        assert!(err.contains("passes now although marked"), "{err}");
    }
}
