//! The scenario file format (see `testdata/runtime/README.md`): parsing is strict, so a typo in a scenario
//! is an error naming its line rather than a silently skipped check.

use river::ast::{BinaryOp, Expr, ExprKind, File, Stmt};
use std::time::Duration;

/// One scenario file, parsed.
#[derive(Debug)]
pub struct Scenario {
    /// The file's name, for messages.
    pub name: String,
    /// `option:` lines.
    pub options: Options,
    /// `known-bug:` text: the scenario is expected to fail until the runtime is fixed.
    pub known_bug: Option<String>,
    /// Steps and expectations, in file order.
    pub items: Vec<Item>,
}

/// Controller settings a scenario may change.
#[derive(Debug, Clone)]
pub struct Options {
    pub stop_timeout: Duration,
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// How long a polled expectation may take to hold (unless it says `within`).
    pub deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stop_timeout: Duration::from_secs(5),
            restart_backoff: Duration::from_millis(10),
            max_restart_backoff: Duration::from_secs(30),
            deadline: Duration::from_secs(10),
        }
    }
}

/// A step or an expectation, with its 1-based line.
#[derive(Debug)]
pub struct Item {
    pub line: usize,
    /// The directive line as written (for messages).
    pub text: String,
    pub kind: ItemKind,
}

#[derive(Debug)]
pub enum ItemKind {
    Step(Step),
    Expect(Expect),
}

#[derive(Debug)]
pub enum Step {
    /// Load (or reload) a config: `(file name, text)` pairs. `None`: the previous config again.
    Load(Option<Vec<(String, String)>>),
    WriteFile(String, String),
    DeleteFile(String),
    Settle,
    Wait(Duration),
    Shutdown,
}

/// An expectation and, for those checked by polling, an optional `within` deadline.
#[derive(Debug)]
pub enum Expect {
    /// About the outcome of the last load.
    Load(LoadExpect),
    /// About the running graph; polled until it holds.
    State(StateExpect, Option<Duration>),
}

#[derive(Debug)]
pub enum LoadExpect {
    /// The load was rejected with this diagnostic (`file:line:col: message`).
    Error(String),
    /// The load was accepted with this diagnostic.
    Diagnostic(String),
    /// Exactly these components were started / updated / stopped by it (in any order).
    Report(ReportList, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportList {
    Started,
    Updated,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Updates,
    Runs,
    Evaluations,
}

#[derive(Debug)]
pub enum StateExpect {
    /// `LEFT == RIGHT`, both River expressions evaluated over every component's exports. The parsed file is
    /// kept with the expressions because they are its nodes.
    Exports { file: File, left: Expr, right: Expr },
    /// A counter of a component.
    Count(Counter, String, u64),
    /// The combined health of a component, and a substring of its message.
    Health(flow::HealthState, String, Option<String>),
    /// The IDs of the graph's nodes, in source order.
    Components(Vec<String>),
    /// The component is not in the graph and has no exports.
    Absent(String),
    /// The lifecycle events the probes recorded since the last `events` expectation, in order (or, when
    /// the flag is set, in any order).
    Events(Vec<String>, bool),
}

/// Parses a scenario file. Errors say `name:line: what`.
pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
    let lines: Vec<&str> = text.lines().collect();
    let err = |line: usize, msg: String| format!("{name}:{line}: {msg}");
    let mut scenario = Scenario {
        name: name.to_string(),
        options: Options::default(),
        known_bug: None,
        items: Vec::new(),
    };
    let mut loaded = false;
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            return Err(err(
                line_no,
                "indented text outside a `config:`, `step: reload` or `step: write file` body"
                    .into(),
            ));
        }
        let Some((directive, rest)) = line.split_once(':') else {
            return Err(err(
                line_no,
                format!("expected `directive: ...`, got {line:?}"),
            ));
        };
        let rest = rest.trim();
        // A body: the following lines indented by two spaces (blank lines included, trailing ones dropped).
        let body = |i: &mut usize| -> Result<Option<String>, String> {
            let mut out: Vec<&str> = Vec::new();
            while *i < lines.len() {
                let l = lines[*i];
                if l.trim().is_empty() {
                    out.push("");
                } else if let Some(stripped) = l.strip_prefix("  ") {
                    out.push(stripped);
                } else if l.starts_with(' ') || l.starts_with('\t') {
                    return Err(err(*i + 1, "body lines are indented by two spaces".into()));
                } else {
                    break;
                }
                *i += 1;
            }
            while out.last() == Some(&"") {
                out.pop();
            }
            Ok((!out.is_empty()).then(|| out.join("\n")))
        };
        let kind = match directive {
            "option" => {
                if loaded || !scenario.items.is_empty() {
                    return Err(err(line_no, "options come before the first step".into()));
                }
                let (key, value) = rest
                    .split_once(' ')
                    .ok_or_else(|| err(line_no, "expected `option: NAME DURATION`".into()))?;
                let d = duration(value).map_err(|e| err(line_no, e))?;
                match key {
                    "stop_timeout" => scenario.options.stop_timeout = d,
                    "restart_backoff" => scenario.options.restart_backoff = d,
                    "max_restart_backoff" => scenario.options.max_restart_backoff = d,
                    "deadline" => scenario.options.deadline = d,
                    other => return Err(err(line_no, format!("unknown option {other:?}"))),
                }
                continue;
            }
            "known-bug" => {
                if rest.is_empty() {
                    return Err(err(line_no, "`known-bug:` needs a description".into()));
                }
                scenario.known_bug = Some(rest.to_string());
                continue;
            }
            "config" => {
                if !rest.is_empty() {
                    return Err(err(line_no, "`config:` takes no argument".into()));
                }
                if loaded {
                    return Err(err(
                        line_no,
                        "only the first load is `config:`; later ones are `step: reload`".into(),
                    ));
                }
                let text =
                    body(&mut i)?.ok_or_else(|| err(line_no, "`config:` needs a body".into()))?;
                loaded = true;
                ItemKind::Step(Step::Load(Some(split_files(&text))))
            }
            "step" => {
                let (verb, arg) = rest.split_once(' ').unwrap_or((rest, ""));
                let arg = arg.trim();
                let step = match (verb, arg) {
                    ("reload", "") => {
                        if !loaded {
                            return Err(err(line_no, "the first load is `config:`".into()));
                        }
                        let text = body(&mut i)?.ok_or_else(|| {
                            err(
                                line_no,
                                "`step: reload` needs a body (or say `step: reload unchanged`)"
                                    .into(),
                            )
                        })?;
                        Step::Load(Some(split_files(&text)))
                    }
                    ("reload", "unchanged") => {
                        if !loaded {
                            return Err(err(line_no, "nothing loaded yet to reload".into()));
                        }
                        Step::Load(None)
                    }
                    ("write", arg) if arg.starts_with("file ") => {
                        let file = file_name(arg.trim_start_matches("file ").trim())
                            .map_err(|e| err(line_no, e))?;
                        Step::WriteFile(file, body(&mut i)?.unwrap_or_default())
                    }
                    ("delete", arg) if arg.starts_with("file ") => {
                        let file = file_name(arg.trim_start_matches("file ").trim())
                            .map_err(|e| err(line_no, e))?;
                        Step::DeleteFile(file)
                    }
                    ("settle", "") => Step::Settle,
                    ("wait", d) => Step::Wait(duration(d).map_err(|e| err(line_no, e))?),
                    ("shutdown", "") => Step::Shutdown,
                    _ => return Err(err(line_no, format!("unknown step {rest:?}"))),
                };
                ItemKind::Step(step)
            }
            "expect" => {
                if scenario.items.is_empty() {
                    return Err(err(line_no, "an expectation needs a step before it".into()));
                }
                ItemKind::Expect(expectation(rest).map_err(|e| err(line_no, e))?)
            }
            other => return Err(err(line_no, format!("unknown directive {other:?}"))),
        };
        if !matches!(
            kind,
            ItemKind::Step(Step::WriteFile(..)) | ItemKind::Step(Step::DeleteFile(_))
        ) && !loaded
        {
            return Err(err(
                line_no,
                "the first step that runs anything is `config:`".into(),
            ));
        }
        scenario.items.push(Item {
            line: line_no,
            text: line.to_string(),
            kind,
        });
    }
    if !scenario
        .items
        .iter()
        .any(|it| matches!(it.kind, ItemKind::Expect(_)))
    {
        return Err(format!("{name}: a scenario needs at least one `expect:`"));
    }
    Ok(scenario)
}

/// A config body is one file (`main.river`) unless `--- NAME` lines start further files.
fn split_files(text: &str) -> Vec<(String, String)> {
    let mut files = vec![("main.river".to_string(), String::new())];
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("--- ") {
            if files.len() == 1 && files[0].1.is_empty() {
                files[0].0 = name.trim().to_string();
            } else {
                files.push((name.trim().to_string(), String::new()));
            }
            continue;
        }
        if let Some(last) = files.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    files
}

fn file_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') || s.contains('\\') || s == "." || s == ".." {
        return Err(format!("a file name without directories, got {s:?}"));
    }
    Ok(s.to_string())
}

pub fn duration(s: &str) -> Result<Duration, String> {
    river::types::Duration::parse(s.trim())
        .ok()
        .and_then(|d| d.to_std())
        .ok_or_else(|| format!("expected a duration such as 200ms, got {s:?}"))
}

/// Splits a trailing `within DURATION` off.
fn within(s: &str) -> Result<(&str, Option<Duration>), String> {
    match s.rsplit_once(" within ") {
        Some((head, d)) => Ok((head.trim_end(), Some(duration(d)?))),
        None => Ok((s, None)),
    }
}

/// `[FILE:]LINE:COL MESSAGE` → `FILE:LINE:COL: MESSAGE` (FILE defaults to main.river).
fn located(s: &str) -> Result<String, String> {
    let (loc, msg) = s
        .split_once(' ')
        .ok_or_else(|| format!("expected `[FILE:]LINE:COL MESSAGE`, got {s:?}"))?;
    let parts: Vec<&str> = loc.split(':').collect();
    let (file, line, col) = match parts.as_slice() {
        [l, c] => ("main.river", *l, *c),
        [f, l, c] => (*f, *l, *c),
        _ => return Err(format!("expected `[FILE:]LINE:COL`, got {loc:?}")),
    };
    if line.parse::<u32>().is_err() || col.parse::<u32>().is_err() {
        return Err(format!("expected `[FILE:]LINE:COL`, got {loc:?}"));
    }
    Ok(format!("{file}:{line}:{col}: {}", msg.trim()))
}

fn id_list(s: &str) -> Result<Vec<String>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
    if ids.iter().any(|id| id.is_empty() || id.contains(' ')) {
        return Err(format!("expected `ID, ID, ...` or `none`, got {s:?}"));
    }
    Ok(ids)
}

fn one_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("expected one component ID, got {s:?}"));
    }
    Ok(s.to_string())
}

fn expectation(rest: &str) -> Result<Expect, String> {
    let (kind, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let arg = arg.trim();
    let load = |e| Ok(Expect::Load(e));
    match kind {
        "error" => return load(LoadExpect::Error(located(arg)?)),
        "diagnostic" => return load(LoadExpect::Diagnostic(located(arg)?)),
        "started" => return load(LoadExpect::Report(ReportList::Started, id_list(arg)?)),
        "updated" => return load(LoadExpect::Report(ReportList::Updated, id_list(arg)?)),
        "stopped" => return load(LoadExpect::Report(ReportList::Stopped, id_list(arg)?)),
        _ => {}
    }
    let (arg, deadline) = within(arg)?;
    let state = match kind {
        "exports" => exports(arg)?,
        "updates" | "runs" | "evaluations" => {
            let counter = match kind {
                "updates" => Counter::Updates,
                "runs" => Counter::Runs,
                _ => Counter::Evaluations,
            };
            let (id, n) = arg
                .split_once(" == ")
                .ok_or_else(|| format!("expected `{kind} ID == N`, got {arg:?}"))?;
            let n = n
                .trim()
                .parse()
                .map_err(|_| format!("expected a count, got {n:?}"))?;
            StateExpect::Count(counter, one_id(id.trim())?, n)
        }
        "healthy" | "unknown" | "unhealthy" | "exited" => {
            let state = match kind {
                "healthy" => flow::HealthState::Healthy,
                "unknown" => flow::HealthState::Unknown,
                "unhealthy" => flow::HealthState::Unhealthy,
                _ => flow::HealthState::Exited,
            };
            let (id, msg) = arg.split_once(' ').unwrap_or((arg, ""));
            let msg = msg.trim();
            let msg = if msg.is_empty() {
                None
            } else if msg.len() < 2 || !msg.starts_with('"') || !msg.ends_with('"') {
                return Err(format!("the message is a quoted River string, got {msg}"));
            } else {
                Some(
                    river::literal::unquote(msg)
                        .map_err(|e| format!("the message is a quoted River string: {e}"))?
                        .into_owned(),
                )
            };
            StateExpect::Health(state, one_id(id)?, msg)
        }
        "components" => StateExpect::Components(id_list(arg)?),
        "absent" => StateExpect::Absent(one_id(arg)?),
        "events" => StateExpect::Events(event_list(arg), false),
        "unordered" => match arg.strip_prefix("events ") {
            Some(list) => StateExpect::Events(event_list(list.trim()), true),
            None => return Err(format!("expected `unordered events ...`, got {rest:?}")),
        },
        other => return Err(format!("unknown expectation {other:?}")),
    };
    Ok(Expect::State(state, deadline))
}

fn event_list(s: &str) -> Vec<String> {
    if s == "none" {
        Vec::new()
    } else {
        s.split(',').map(|e| e.trim().to_string()).collect()
    }
}

/// `LEFT == RIGHT`, parsed with the real River parser.
fn exports(arg: &str) -> Result<StateExpect, String> {
    let src = format!("x = {arg}");
    let (file, diags) = river::parse(&src);
    if let Some(d) = diags.iter().next() {
        return Err(format!("not a River expression ({}): {arg}", d.message));
    }
    let expr = match file.top_level() {
        [Stmt::Attribute(a)] => a.value,
        _ => return Err(format!("expected `EXPR == EXPR`, got {arg:?}")),
    };
    match expr.kind {
        ExprKind::Binary(BinaryOp::Eq, left, right) => Ok(StateExpect::Exports {
            left: *file.expr(left),
            right: *file.expr(right),
            file,
        }),
        _ => Err(format!("expected `EXPR == EXPR`, got {arg:?}")),
    }
}
