//! The harness of the data-driven runtime scenarios in `testdata/runtime/` (format: its README.md).

pub mod parse;
pub mod run;

/// How a scenario ended, judged against its `known-bug:` line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Failed as its `known-bug:` line says it does (the failure is kept for the report).
    KnownBug(String),
}

/// Parses and runs one scenario file. A scenario marked `known-bug:` must fail: once the runtime is fixed it
/// passes, and the marker has to go.
pub fn judge(name: &str, text: &str) -> Result<Verdict, String> {
    let scenario = parse::parse(name, text)?;
    // Every scenario holds both when loads evaluate on the loading task and when they evaluate independent
    // nodes on several threads.
    let result = run::run(&scenario, 1).and_then(|()| {
        run::run(&scenario, 3).map_err(|e| format!("{e}\n    (with loads evaluated on 3 threads)"))
    });
    match (result, &scenario.known_bug) {
        (Ok(()), None) => Ok(Verdict::Passed),
        (Err(e), None) => Err(e),
        (Err(e), Some(_)) => Ok(Verdict::KnownBug(e)),
        (Ok(()), Some(bug)) => Err(format!(
            "{name}: passes now although marked `known-bug: {bug}`; remove the marker"
        )),
    }
}
