//! `testdata/decode/*.txt`: sectioned cases (`=== name`, `--- type`, `--- input`, then `--- expect` or
//! `--- errors`). The input's first block is decoded (with validation) into the Rust type named by `type`, one
//! of the types below, in the eval suite's scope. `expect` is the canonical print of the result ([`Show`]);
//! `errors` lists every diagnostic as `line:col: message` (columns in characters), or `line:col: ~text` when
//! the message only has to contain `text`.

use super::common::{
    files_with_suffix, line_col, parse_cases, read, rel, testdata_dir, Case, Report,
};
use river::ast::Stmt;
use river::decode::{decode_block_body_validated, Block, LabeledBlock, Validate};
use river::types::{Duration, OptionalSecret};
use river::{Capsule, Secret, Value};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A canonical one-line print of decoded values, independent of `Debug` details: structs as
/// `Name { field: value, ... }`, blocks as their body, labelled blocks as `"label" Body { ... }`, durations in
/// Go's form, secrets as `secret("...")` (so the content can be checked), capsules as `capsule("type")`.
pub trait Show {
    /// Appends the print of `self` to `out`.
    fn show(&self, out: &mut String);
}

fn show<T: Show + ?Sized>(v: &T) -> String {
    let mut s = String::new();
    v.show(&mut s);
    s
}

macro_rules! show_display {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
show_display!(i64, i32, u64, bool, Duration);

impl Show for f64 {
    fn show(&self, out: &mut String) {
        let _ = write!(out, "{self:?}");
    }
}

impl Show for String {
    fn show(&self, out: &mut String) {
        let _ = write!(out, "{self:?}");
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self, out: &mut String) {
        match self {
            None => out.push_str("None"),
            Some(v) => {
                out.push_str("Some(");
                v.show(out);
                out.push(')');
            }
        }
    }
}

impl<T: Show> Show for Vec<T> {
    fn show(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            v.show(out);
        }
        out.push(']');
    }
}

impl<T: Show> Show for BTreeMap<String, T> {
    fn show(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{k:?}: ");
            v.show(out);
        }
        out.push('}');
    }
}

impl<T: Show> Show for Block<T> {
    fn show(&self, out: &mut String) {
        self.0.show(out);
    }
}

impl<T: Show> Show for LabeledBlock<T> {
    fn show(&self, out: &mut String) {
        let _ = write!(out, "{:?} ", self.label);
        self.body.show(out);
    }
}

impl Show for Secret {
    fn show(&self, out: &mut String) {
        let _ = write!(out, "secret({:?})", self.expose());
    }
}

impl Show for OptionalSecret {
    fn show(&self, out: &mut String) {
        let kind = if self.is_secret() { "secret" } else { "plain" };
        let _ = write!(out, "{kind}({:?})", self.expose());
    }
}

impl Show for Capsule {
    fn show(&self, out: &mut String) {
        let _ = write!(out, "capsule({:?})", self.0.type_name());
    }
}

impl Show for Value {
    fn show(&self, out: &mut String) {
        match self {
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.show(out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{k:?}: ");
                    v.show(out);
                }
                out.push('}');
            }
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
    }
}

/// Declares a struct that decodes from River, validates with no check, and shows as `Name { field: ... }`.
macro_rules! target {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        $(#[$m])*
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        impl Show for $name {
            fn show(&self, out: &mut String) {
                out.push_str(concat!(stringify!($name), " {"));
                let mut _first = true;
                $(
                    out.push_str(if _first { " " } else { ", " });
                    _first = false;
                    out.push_str(concat!(stringify!($field), ": "));
                    self.$field.show(out);
                )*
                out.push_str(" }");
            }
        }
    };
}

macro_rules! no_validation {
    ($($t:ty),*) => {$( impl Validate for $t {} )*};
}

target!(
    struct Person {
        name: String,
        age: Option<i64>,
        #[serde(default)]
        nickname: String,
        #[serde(default)]
        admin: bool,
        #[serde(default)]
        tags: Vec<String>,
    }
);

target!(
    struct Numbers {
        #[serde(default)]
        int: i64,
        #[serde(default)]
        uint: u64,
        #[serde(default)]
        float: f64,
        #[serde(default)]
        small: i32,
        #[serde(default)]
        text: String,
        #[serde(default)]
        flag: bool,
    }
);

target!(
    #[serde(default)]
    struct Defaults {
        port: i64,
        host: String,
        enabled: bool,
        tags: Vec<String>,
    }
);

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            port: 8080,
            host: "localhost".into(),
            enabled: true,
            tags: vec!["default".into()],
        }
    }
}

target!(
    struct Parent {
        name: String,
        child: Block<Child>,
        extra: Option<Block<Child>>,
        #[serde(default)]
        rule: Vec<Block<Rule>>,
        #[serde(rename = "child.block", default)]
        dotted: Option<Block<Child>>,
    }
);

target!(
    struct Child {
        attr: bool,
        #[serde(default)]
        value: i64,
    }
);

target!(
    struct Rule {
        action: String,
        inner: Option<Block<Child>>,
    }
);

target!(
    struct Endpoints {
        #[serde(default)]
        endpoint: Vec<LabeledBlock<Endpoint>>,
        single: Option<LabeledBlock<Endpoint>>,
        maybe: Option<Block<MaybeLabel>>,
    }
);

target!(
    struct Endpoint {
        url: String,
    }
);

target!(
    struct MaybeLabel {
        #[serde(rename = "$label")]
        label: Option<String>,
        #[serde(default)]
        x: i64,
    }
);

target!(
    struct Profiling {
        #[serde(rename = "profile.memory")]
        memory: Option<Block<Toggle>>,
        #[serde(rename = "profile.process_cpu")]
        cpu: Option<Block<Toggle>>,
        #[serde(rename = "profile.custom", default)]
        custom: Vec<LabeledBlock<Custom>>,
    }
);

target!(
    struct Toggle {
        enabled: bool,
    }
);

target!(
    struct Custom {
        path: String,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        delta: bool,
    }
);

target!(
    struct Pipeline {
        #[serde(default)]
        stage: Vec<Stage>,
    }
);

/// The kinds of `stage.*` block, in source order.
#[derive(Debug, Deserialize)]
pub enum Stage {
    /// `stage.json { }`
    #[serde(rename = "json")]
    Json(Block<JsonStage>),
    /// `stage.regex { }`
    #[serde(rename = "regex")]
    Regex(Block<RegexStage>),
    /// `stage.labels { }`
    #[serde(rename = "labels")]
    Labels(Block<LabelsStage>),
}

impl Show for Stage {
    fn show(&self, out: &mut String) {
        let (name, body) = match self {
            Stage::Json(b) => ("Json", show(b)),
            Stage::Regex(b) => ("Regex", show(b)),
            Stage::Labels(b) => ("Labels", show(b)),
        };
        let _ = write!(out, "{name}({body})");
    }
}

target!(
    struct JsonStage {
        expressions: BTreeMap<String, String>,
    }
);
target!(
    struct RegexStage {
        expression: String,
    }
);
target!(
    struct LabelsStage {
        values: BTreeMap<String, String>,
    }
);

target!(
    struct Timing {
        interval: Duration,
        timeout: Option<Duration>,
    }
);

impl Validate for Timing {
    fn validate(&self) -> Result<(), String> {
        match self.timeout {
            Some(t) if t > self.interval => Err("timeout must not be greater than interval".into()),
            _ => Ok(()),
        }
    }
}

target!(
    struct Auth {
        username: String,
        password: Secret,
        #[serde(default)]
        token: OptionalSecret,
        other: Option<OptionalSecret>,
    }
);

target!(
    struct Receivers {
        receiver: Capsule,
        #[serde(default)]
        forward_to: Vec<Capsule>,
    }
);

target!(
    struct Target {
        key: Key,
    }
);
target!(
    struct Key {
        object: KeyObject,
    }
);
target!(
    struct KeyObject {
        field1: Vec<i64>,
    }
);
target!(
    struct Text {
        key: String,
    }
);

target!(
    struct Maps {
        #[serde(default)]
        labels: BTreeMap<String, String>,
        any: Option<Value>,
    }
);

no_validation!(
    Person,
    Numbers,
    Defaults,
    Parent,
    Child,
    Rule,
    Endpoints,
    Endpoint,
    MaybeLabel,
    Profiling,
    Toggle,
    Custom,
    Pipeline,
    JsonStage,
    RegexStage,
    LabelsStage,
    Auth,
    Receivers,
    Target,
    Key,
    KeyObject,
    Text,
    Maps
);

/// The outcome of decoding: the canonical print, or the diagnostics as `line:col: message`.
type Outcome = Result<String, Vec<String>>;

fn decode_as<T>(src: &str) -> Result<Outcome, String>
where
    T: serde::de::DeserializeOwned + Validate + Show,
{
    let (file, diags) = river::parse(src);
    if let Some(d) = diags.iter().next() {
        let (l, c) = line_col(src, d.span.start);
        return Err(format!("input does not parse: {l}:{c}: {}", d.message));
    }
    let Some(Stmt::Block(block)) = file.top_level().first() else {
        return Err("input must start with a block whose body is decoded".into());
    };
    let scope = super::eval::scope();
    Ok(
        match decode_block_body_validated::<T>(block, &file, &scope) {
            Ok(v) => Ok(show(&v)),
            Err(diags) => {
                let mut lines: Vec<(usize, usize, String)> = diags
                    .iter()
                    .map(|d| {
                        let (l, c) = line_col(src, d.span.start);
                        (l, c, d.message.clone())
                    })
                    .collect();
                lines.sort();
                Err(lines
                    .into_iter()
                    .map(|(l, c, m)| format!("{l}:{c}: {m}"))
                    .collect())
            }
        },
    )
}

/// Decodes `src` into the harness type called `ty`.
fn decode_named(ty: &str, src: &str) -> Result<Outcome, String> {
    match ty {
        "Person" => decode_as::<Person>(src),
        "Numbers" => decode_as::<Numbers>(src),
        "Defaults" => decode_as::<Defaults>(src),
        "Parent" => decode_as::<Parent>(src),
        "Endpoints" => decode_as::<Endpoints>(src),
        "Profiling" => decode_as::<Profiling>(src),
        "Pipeline" => decode_as::<Pipeline>(src),
        "Timing" => decode_as::<Timing>(src),
        "Auth" => decode_as::<Auth>(src),
        "Receivers" => decode_as::<Receivers>(src),
        "Target" => decode_as::<Target>(src),
        "Text" => decode_as::<Text>(src),
        "Maps" => decode_as::<Maps>(src),
        other => Err(format!("unknown target type {other:?}")),
    }
}

/// Whether an actual diagnostic line matches an expected one (`~` after the position: substring match).
fn line_matches(want: &str, got: &str) -> bool {
    let split = |s: &str| -> Option<(String, String)> {
        let mut parts = s.splitn(3, ':');
        let (l, c, m) = (parts.next()?, parts.next()?, parts.next()?);
        Some((
            format!("{l}:{c}"),
            m.strip_prefix(' ').unwrap_or(m).to_string(),
        ))
    };
    match (split(want), split(got)) {
        (Some((wp, wm)), Some((gp, gm))) => {
            wp == gp
                && wm
                    .strip_prefix('~')
                    .map_or(wm == gm, |part| gm.contains(part))
        }
        _ => false,
    }
}

fn run_case(case: &Case) -> Result<(), String> {
    let ty = case
        .section("type")
        .map(str::trim)
        .ok_or("case has no `--- type`")?;
    let input = case.section("input").ok_or("case has no `--- input`")?;
    let got = decode_named(ty, input)?;
    match (case.section("expect"), case.section("errors"), got) {
        (Some(want), None, Ok(got)) => {
            if want.trim() == got {
                Ok(())
            } else {
                Err(format!("want {}\ngot  {got}", want.trim()))
            }
        }
        (Some(want), None, Err(diags)) => Err(format!(
            "want {}\ngot errors:\n  {}",
            want.trim(),
            diags.join("\n  ")
        )),
        (None, Some(want), Err(diags)) => {
            let want: Vec<&str> = want
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            if want.len() == diags.len() && want.iter().zip(&diags).all(|(w, g)| line_matches(w, g))
            {
                Ok(())
            } else {
                Err(format!(
                    "want errors:\n  {}\ngot errors:\n  {}",
                    want.join("\n  "),
                    diags.join("\n  ")
                ))
            }
        }
        (None, Some(want), Ok(got)) => Err(format!(
            "want errors:\n  {}\ngot  {got}",
            want.trim().replace('\n', "\n  ")
        )),
        _ => Err("case needs exactly one of `--- expect` and `--- errors`".into()),
    }
}

/// Runs every decode file.
pub fn run() {
    let mut report = Report::new("decode");
    for path in files_with_suffix(&testdata_dir().join("decode"), ".txt") {
        match parse_cases(&read(&path)) {
            Ok(cases) => {
                for case in &cases {
                    report.check(
                        format!("{}:{}: {}", rel(&path), case.line, case.name),
                        run_case(case),
                    );
                }
            }
            Err(e) => report.fail(rel(&path), e),
        }
    }
    report.finish();
}

/// Every expected error message of the decode files, for the message-coverage check.
pub fn expected_messages() -> Vec<String> {
    let mut out = Vec::new();
    for path in files_with_suffix(&testdata_dir().join("decode"), ".txt") {
        for case in parse_cases(&read(&path)).unwrap_or_default() {
            for line in case.section("errors").unwrap_or("").lines() {
                let msg = line.splitn(3, ':').nth(2).unwrap_or("").trim_start();
                out.push(msg.trim_start_matches('~').to_string());
            }
        }
    }
    out
}

#[test]
fn diagnostic_lines_match() {
    assert!(line_matches(
        "2:3: unrecognized attribute name \"zz\"",
        "2:3: unrecognized attribute name \"zz\""
    ));
    assert!(!line_matches(
        "2:3: unrecognized attribute name \"zz\"",
        "2:4: unrecognized attribute name \"zz\""
    ));
    assert!(line_matches(
        "2:14: ~missing unit",
        "2:14: time: missing unit in duration \"5\""
    ));
    assert!(!line_matches("2:14: ~missing unit", "2:14: something else"));
}
