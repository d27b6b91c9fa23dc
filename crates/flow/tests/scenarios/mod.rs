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
    match (run::run(&scenario), &scenario.known_bug) {
        (Ok(()), None) => Ok(Verdict::Passed),
        (Err(e), None) => Err(e),
        (Err(e), Some(_)) => Ok(Verdict::KnownBug(e)),
        (Ok(()), Some(bug)) => Err(format!(
            "{name}: passes now although marked `known-bug: {bug}`; remove the marker"
        )),
    }
}
