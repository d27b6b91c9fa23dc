//! Runs a parsed scenario against a real controller with the test components.

use super::parse::{
    Counter, Expect, ItemKind, LoadExpect, ReportList, Scenario, StateExpect, Step,
};
use crate::common;
use flow::{Controller, ControllerOptions, LoadReport, Sources};
use river::eval::{eval_expr, Scope};
use river::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long every polled expectation of a group must keep holding once they all held.
const QUIET: Duration = Duration::from_millis(30);

/// Runs `scenario` in a fresh tokio runtime, with loads evaluated on `evaluation_threads` threads (1: on the
/// loading task). `Err` is the first failed expectation (or broken step), naming the scenario's file and
/// line and the step it follows.
pub fn run(scenario: &Scenario, evaluation_threads: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("{}: cannot start a tokio runtime: {e}", scenario.name))?;
    let result = rt.block_on(async {
        let mut runner = Runner::new(scenario, evaluation_threads)?;
        let result = runner.run_items().await;
        runner.controller.shutdown().await;
        result
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

struct Runner<'a> {
    scenario: &'a Scenario,
    /// Holds the scenario's files (`$DIR`) and, under `data/`, the controller's storage.
    dir: tempfile::TempDir,
    storage: PathBuf,
    controller: Controller,
    last_config: Vec<(String, String)>,
    load: Option<LoadState>,
    /// The step the current expectations follow.
    step: Option<(usize, String)>,
    step_started: Instant,
    /// Polled expectations of the current group (item indices), re-checked when the group ends.
    group: Vec<usize>,
    /// Probe events taken but not yet matched by an `events` expectation.
    events: Vec<String>,
    /// The line of the group's last `events` expectation: no further event may arrive after it.
    events_line: Option<usize>,
}

struct LoadState {
    result: Result<LoadReport, Vec<String>>,
    /// Which diagnostics an `error`/`diagnostic` expectation has matched.
    matched: Vec<bool>,
}

impl LoadState {
    fn diagnostics(&self) -> Vec<String> {
        match &self.result {
            Ok(report) => report.diagnostics.iter().map(|d| d.to_string()).collect(),
            Err(diags) => diags.clone(),
        }
    }
}

impl<'a> Runner<'a> {
    fn new(scenario: &'a Scenario, evaluation_threads: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("rill-scenario-")
            .tempdir()
            .map_err(|e| format!("{}: cannot create a temp dir: {e}", scenario.name))?;
        let storage = dir.path().join("data");
        let o = &scenario.options;
        let options = ControllerOptions {
            storage_path: storage.clone(),
            stop_timeout: o.stop_timeout,
            restart_backoff: o.restart_backoff,
            max_restart_backoff: o.max_restart_backoff,
            evaluation_threads,
            ..ControllerOptions::default()
        };
        Ok(Runner {
            scenario,
            dir,
            storage,
            controller: Controller::new(common::scenario_registry(), options),
            last_config: Vec::new(),
            load: None,
            step: None,
            step_started: Instant::now(),
            group: Vec::new(),
            events: Vec::new(),
            events_line: None,
        })
    }

    fn fail(&self, line: usize, what: impl std::fmt::Display) -> String {
        let mut msg = format!("{}:{line}: {what}", self.scenario.name);
        if let Some((step_line, text)) = &self.step {
            msg.push_str(&format!("\n    (after `{text}` at line {step_line})"));
        }
        msg
    }

    async fn run_items(&mut self) -> Result<(), String> {
        for index in 0..self.scenario.items.len() {
            let item = &self.scenario.items[index];
            match &item.kind {
                ItemKind::Step(step) => {
                    self.end_group().await?;
                    self.step = Some((item.line, item.text.clone()));
                    self.step_started = Instant::now();
                    self.step(item.line, step).await?;
                }
                ItemKind::Expect(Expect::Load(e)) => self.check_load(item.line, e)?,
                ItemKind::Expect(Expect::State(e, within)) => {
                    let deadline = match within {
                        Some(d) => self.step_started + *d,
                        None => Instant::now() + self.scenario.options.deadline,
                    };
                    self.poll(item.line, e, deadline).await?;
                    if matches!(e, StateExpect::Events(..)) {
                        self.events_line = Some(item.line);
                    } else {
                        self.group.push(index);
                    }
                }
            }
        }
        self.end_group().await
    }

    /// Ends a group of expectations: every diagnostic of the last load must have been expected, and every
    /// polled expectation must still hold a moment later (nothing flaps or arrives late).
    async fn end_group(&mut self) -> Result<(), String> {
        if let Some(load) = &self.load {
            let unmatched: Vec<String> = load
                .diagnostics()
                .into_iter()
                .zip(&load.matched)
                .filter(|(_, m)| !**m)
                .map(|(d, _)| d)
                .collect();
            if !unmatched.is_empty() {
                let line = self.step.as_ref().map_or(0, |s| s.0);
                let verdict = if load.result.is_ok() {
                    "accepted with unexpected diagnostics"
                } else {
                    "rejected with unexpected errors"
                };
                return Err(self.fail(
                    line,
                    format!(
                        "the load was {verdict}:\n      {}",
                        unmatched.join("\n      ")
                    ),
                ));
            }
        }
        self.load = None;
        if self.group.is_empty() && self.events_line.is_none() {
            return Ok(());
        }
        tokio::time::sleep(QUIET).await;
        self.controller.settle().await;
        if let Some(line) = self.events_line.take() {
            self.events.extend(common::take_events(&self.storage));
            if !self.events.is_empty() {
                return Err(self.fail(
                    line,
                    format!(
                        "more probe events arrived afterwards: [{}]",
                        self.events.join(", ")
                    ),
                ));
            }
        }
        for index in std::mem::take(&mut self.group) {
            let item = &self.scenario.items[index];
            if let ItemKind::Expect(Expect::State(e, _)) = &item.kind {
                if let Err(e) = self.check_state(e) {
                    return Err(self.fail(
                        item.line,
                        format!(
                            "held at first but no longer {}ms later: {e}",
                            QUIET.as_millis()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn step(&mut self, line: usize, step: &Step) -> Result<(), String> {
        match step {
            Step::Load(files) => {
                if let Some(files) = files {
                    self.last_config = files.clone();
                }
                let dir = self.dir.path().display().to_string();
                let files: Vec<(String, String)> = self
                    .last_config
                    .iter()
                    .map(|(n, t)| (n.clone(), t.replace("$DIR", &dir)))
                    .collect();
                let result: Result<LoadReport, Vec<String>> = match Sources::parse(files) {
                    Err(diags) => Err(diags.iter().map(|d| d.to_string()).collect()),
                    Ok(sources) => self
                        .controller
                        .load(sources)
                        .await
                        .map_err(|diags| diags.iter().map(|d| d.to_string()).collect()),
                };
                let n = match &result {
                    Ok(r) => r.diagnostics.len(),
                    Err(d) => d.len(),
                };
                self.load = Some(LoadState {
                    result,
                    matched: vec![false; n],
                });
            }
            Step::WriteFile(name, content) => {
                // Written aside and renamed into place: a reader polling the file must never see it
                // truncated and half written (as editors save), or it would publish the empty text first.
                let path = self.dir.path().join(name);
                let file_name = path.file_name().unwrap_or_default().to_string_lossy();
                let aside = path.with_file_name(format!(".{file_name}.writing"));
                std::fs::write(&aside, content)
                    .and_then(|()| std::fs::rename(&aside, &path))
                    .map_err(|e| {
                        self.fail(line, format!("cannot write {}: {e}", path.display()))
                    })?;
            }
            Step::DeleteFile(name) => {
                let path = self.dir.path().join(name);
                std::fs::remove_file(&path).map_err(|e| {
                    self.fail(line, format!("cannot delete {}: {e}", path.display()))
                })?;
            }
            Step::Settle => self.controller.settle().await,
            Step::Wait(d) => tokio::time::sleep(*d).await,
            Step::Shutdown => self.controller.shutdown().await,
        }
        Ok(())
    }

    fn check_load(&mut self, line: usize, e: &LoadExpect) -> Result<(), String> {
        let Some(load) = &self.load else {
            return Err(self.fail(line, "no load to check: expectations about a load follow `config:` or `step: reload` directly"));
        };
        match e {
            LoadExpect::Error(want) | LoadExpect::Diagnostic(want) => {
                let rejected = matches!(e, LoadExpect::Error(_));
                if rejected != load.result.is_err() {
                    let got = if load.result.is_err() {
                        "rejected"
                    } else {
                        "accepted"
                    };
                    let all = load.diagnostics();
                    return Err(self.fail(
                        line,
                        format!(
                            "expected the load to be {}, but it was {got}; its diagnostics:\n      {}",
                            if rejected { "rejected" } else { "accepted" },
                            if all.is_empty() { "(none)".to_string() } else { all.join("\n      ") }
                        ),
                    ));
                }
                let all = load.diagnostics();
                let found = all
                    .iter()
                    .zip(&load.matched)
                    .position(|(d, m)| !*m && d == want);
                match found {
                    Some(i) => {
                        if let Some(load) = &mut self.load {
                            load.matched[i] = true;
                        }
                        Ok(())
                    }
                    None => Err(self.fail(
                        line,
                        format!(
                            "expected the diagnostic\n      {want}\n    but the load gave\n      {}",
                            if all.is_empty() { "(none)".to_string() } else { all.join("\n      ") }
                        ),
                    )),
                }
            }
            LoadExpect::Report(list, want) => {
                let report = match &load.result {
                    Ok(r) => r,
                    Err(diags) => {
                        return Err(self.fail(
                            line,
                            format!("the load was rejected:\n      {}", diags.join("\n      ")),
                        ))
                    }
                };
                let got = match list {
                    ReportList::Started => &report.started,
                    ReportList::Updated => &report.updated,
                    ReportList::Stopped => &report.stopped,
                };
                let (mut got, mut want) = (got.clone(), want.clone());
                got.sort();
                want.sort();
                if got != want {
                    return Err(self.fail(
                        line,
                        format!(
                            "the load {list:?} {} but expected {}",
                            show_ids(&got),
                            show_ids(&want)
                        )
                        .to_lowercase(),
                    ));
                }
                Ok(())
            }
        }
    }

    async fn poll(
        &mut self,
        line: usize,
        e: &StateExpect,
        deadline: Instant,
    ) -> Result<(), String> {
        loop {
            self.controller.settle().await;
            let result = if let StateExpect::Events(want, unordered) = e {
                self.events.extend(common::take_events(&self.storage));
                let same = if *unordered {
                    let (mut got, mut want) = (self.events.clone(), want.clone());
                    got.sort();
                    want.sort();
                    got == want
                } else {
                    &self.events == want
                };
                if same {
                    self.events.clear();
                    Ok(())
                } else {
                    Err(format!(
                        "probe events were [{}], expected [{}]",
                        self.events.join(", "),
                        want.join(", ")
                    ))
                }
            } else {
                self.check_state(e)
            };
            match result {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() >= deadline => {
                    let waited = Instant::now().duration_since(self.step_started);
                    let mut msg = format!(
                        "{why} (still, {}ms after the step started)",
                        waited.as_millis()
                    );
                    // A failed load usually explains a failed expectation about the graph.
                    if let Some(load) = &self.load {
                        let diags = load.diagnostics();
                        if !diags.is_empty() {
                            let verdict = if load.result.is_ok() {
                                "accepted"
                            } else {
                                "rejected"
                            };
                            msg.push_str(&format!(
                                "\n    note: the load was {verdict} with:\n      {}",
                                diags.join("\n      ")
                            ));
                        }
                    }
                    return Err(self.fail(line, msg));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn check_state(&self, e: &StateExpect) -> Result<(), String> {
        let c = &self.controller;
        match e {
            StateExpect::Exports { file, left, right } => {
                let src: &str = &file.source;
                let scope = self.exports_scope();
                let eval = |x| {
                    eval_expr(x, file, &scope)
                        .map_err(|err| format!("cannot evaluate `{}`: {err}", x.span.text(src)))
                };
                let (l, r) = (eval(left)?, eval(right)?);
                if l == r {
                    Ok(())
                } else {
                    Err(format!(
                        "`{}` is {l:?}, expected {r:?}",
                        left.span.text(src)
                    ))
                }
            }
            StateExpect::Count(counter, id, want) => {
                let counters = c
                    .counters(id)
                    .ok_or_else(|| format!("there is no component {id}"))?;
                let (name, got) = match counter {
                    Counter::Updates => ("updates", &counters.updates),
                    Counter::Runs => ("runs", &counters.runs),
                    Counter::Evaluations => ("evaluations", &counters.evaluations),
                };
                let got = got.load(Ordering::Relaxed);
                if got == *want {
                    Ok(())
                } else {
                    Err(format!("{id} has {name} == {got}, expected {want}"))
                }
            }
            StateExpect::Health(state, id, msg) => {
                let info = c
                    .component(id)
                    .ok_or_else(|| format!("there is no component {id}"))?;
                let h = info.health;
                let msg_ok = msg.as_deref().is_none_or(|m| h.message.contains(m));
                if h.state == *state && msg_ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{id} is {} ({:?}), expected {}{}",
                        h.state.as_str(),
                        h.message,
                        state.as_str(),
                        msg.as_ref()
                            .map(|m| format!(" with a message containing {m:?}"))
                            .unwrap_or_default()
                    ))
                }
            }
            StateExpect::Components(want) => {
                let got: Vec<String> = c.components().into_iter().map(|i| i.id).collect();
                if &got == want {
                    Ok(())
                } else {
                    Err(format!(
                        "the components are {}, expected {}",
                        show_ids(&got),
                        show_ids(want)
                    ))
                }
            }
            StateExpect::Absent(id) => {
                if c.component(id).is_some() || c.counters(id).is_some() {
                    Err(format!("{id} is still in the graph"))
                } else if let Some(v) = c.exports(id) {
                    Err(format!(
                        "{id} is gone but its exports {v:?} are still published"
                    ))
                } else {
                    Ok(())
                }
            }
            StateExpect::Events(..) => Ok(()),
        }
    }

    /// Every component's exports, nested by ID (`test.pass.a` → `{test = {pass = {a = ...}}}`), over the
    /// standard library: the scope `exports` expectations are evaluated in.
    fn exports_scope(&self) -> Scope {
        let exports: Vec<(String, Value)> = self
            .controller
            .components()
            .into_iter()
            .filter_map(|info| self.controller.exports(&info.id).map(|v| (info.id, v)))
            .collect();
        flow::controller::scope_from(&exports)
    }
}

fn show_ids<S: AsRef<str>>(ids: &[S]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
    }
}

/// Where the scenario files live.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/runtime")
}
