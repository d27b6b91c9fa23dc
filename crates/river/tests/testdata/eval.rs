//! `testdata/eval/*.txt`: one case per line, `EXPRESSION => EXPECTED`.
//!
//! EXPECTED is one of:
//! - a River expression, evaluated with no variables;
//! - `json: VALUE`, a JSON value read by `serde_json`, independent of the River implementation (integers are
//!   int, or uint above the int64 range; numbers with a fraction or exponent are float);
//! - `uint: N`, an unsigned integer;
//! - `error: MESSAGE` (the evaluation error's exact message), `error~: TEXT` (the message contains TEXT; used
//!   where only part of the message is specified) or `error` (any error).
//!
//! Values compare strictly: same types, same number kind int/uint/float, deep equality with object fields
//! compared regardless of order. Blank lines and lines starting with `#` are ignored.
//!
//! The expression is evaluated in a scope the harness defines (see [`scope`]), and the environment variable
//! `RILL_TESTDATA_ENV` is set to `Hello!`. A line `#! var NAME = EXPRESSION` adds a variable for the rest of
//! its file (evaluated in the scope so far), e.g. to shadow a standard library namespace.

use super::common::{files_with_suffix, read, rel, testdata_dir, Report};
use river::ast::{Expr, Stmt};
use river::eval::{eval_expr, Scope};
use river::{Number, Object, Value};

/// The environment variable the stdlib cases read, and its value.
pub const ENV_VAR: (&str, &str) = ("RILL_TESTDATA_ENV", "Hello!");

/// A capsule value for type-name and equality cases.
#[derive(Debug)]
struct TestCapsule;

impl river::CapsuleValue for TestCapsule {
    fn type_name(&self) -> &str {
        "testdata.Capsule"
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Object>(),
    )
}

/// The variables visible to the cases:
///
/// | name | value |
/// |---|---|
/// | `obj` | `{ a = 1, b = { c = [1, 2, 3] }, "with space" = true }` |
/// | `arr` | `[10, 20, 30]` |
/// | `key_value` | `{ object = { field1 = [15, 30, "Hello, world!"] } }` |
/// | `str_val` | `"hello"` |
/// | `int_val` | `42` (int) |
/// | `uint_val` | `7` (uint) |
/// | `float_val` | `2.5` |
/// | `null_val` | `null` |
/// | `secret_val` | secret `"s3cr3t"` |
/// | `capsule_val` | an opaque capsule |
pub fn scope() -> Scope {
    let vars: Vec<(&str, Value)> = vec![
        (
            "obj",
            obj(vec![
                ("a", Value::int(1)),
                (
                    "b",
                    obj(vec![(
                        "c",
                        Value::array(vec![Value::int(1), Value::int(2), Value::int(3)]),
                    )]),
                ),
                ("with space", Value::Bool(true)),
            ]),
        ),
        (
            "arr",
            Value::array(vec![Value::int(10), Value::int(20), Value::int(30)]),
        ),
        (
            "key_value",
            obj(vec![(
                "object",
                obj(vec![(
                    "field1",
                    Value::array(vec![
                        Value::int(15),
                        Value::int(30),
                        Value::string("Hello, world!"),
                    ]),
                )]),
            )]),
        ),
        ("str_val", Value::string("hello")),
        ("int_val", Value::int(42)),
        ("uint_val", Value::uint(7)),
        ("float_val", Value::float(2.5)),
        ("null_val", Value::Null),
        ("secret_val", Value::secret("s3cr3t")),
        (
            "capsule_val",
            Value::Capsule(river::Capsule::new(TestCapsule)),
        ),
    ];
    let mut scope = Scope::with_stdlib();
    for (k, v) in vars {
        scope.insert(k, v);
    }
    scope
}

/// A line of an eval file: a case, or a variable for the cases after it.
#[derive(Debug, Clone)]
pub enum Line {
    /// `EXPRESSION => EXPECTED`
    Case(EvalCase),
    /// `#! var NAME = EXPRESSION` (1-based line, name, expression)
    Var(usize, String, String),
}

/// One eval case.
#[derive(Debug, Clone)]
pub struct EvalCase {
    /// 1-based line in its file.
    pub line: usize,
    /// The expression under test.
    pub expr: String,
    /// What it must give.
    pub expect: Expect,
}

/// What an eval case must give.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A value, written in River.
    Value(String),
    /// A value written in JSON.
    Json(String),
    /// An unsigned integer.
    Uint(u64),
    /// Any error.
    AnyError,
    /// An error with exactly this message.
    Error(String),
    /// An error whose message contains this text.
    ErrorContains(String),
}

/// Reads the cases of one eval file.
pub fn read_cases(text: &str) -> Result<Vec<EvalCase>, String> {
    Ok(read_lines(text)?
        .into_iter()
        .filter_map(|l| match l {
            Line::Case(c) => Some(c),
            Line::Var(..) => None,
        })
        .collect())
}

/// Reads the cases and variable lines of one eval file.
pub fn read_lines(text: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(var) = t.strip_prefix("#! var ") {
            let Some((name, expr)) = var.split_once('=') else {
                return Err(format!("line {}: want `#! var NAME = EXPRESSION`", i + 1));
            };
            out.push(Line::Var(
                i + 1,
                name.trim().to_string(),
                expr.trim().to_string(),
            ));
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((expr, expect)) = t.split_once(" => ") else {
            return Err(format!(
                "line {}: want `EXPRESSION => EXPECTED`, got {t:?}",
                i + 1
            ));
        };
        let expect = expect.trim();
        let expect = if expect == "error" {
            Expect::AnyError
        } else if let Some(j) = expect.strip_prefix("json: ") {
            Expect::Json(j.to_string())
        } else if let Some(u) = expect.strip_prefix("uint: ") {
            match u.trim().parse() {
                Ok(u) => Expect::Uint(u),
                Err(_) => return Err(format!("line {}: bad uint {u:?}", i + 1)),
            }
        } else if let Some(m) = expect.strip_prefix("error: ") {
            Expect::Error(m.to_string())
        } else if let Some(m) = expect.strip_prefix("error~: ") {
            Expect::ErrorContains(m.to_string())
        } else {
            Expect::Value(expect.to_string())
        };
        out.push(Line::Case(EvalCase {
            line: i + 1,
            expr: expr.trim().to_string(),
            expect,
        }));
    }
    Ok(out)
}

/// Parses `text` as one expression (through an attribute) and evaluates it in `scope`.
fn evaluate(text: &str, scope: &Scope) -> Result<Result<Value, String>, String> {
    let src = format!("v = {text}\n");
    let (file, diags) = river::parse(&src);
    if let Some(d) = diags.iter().next() {
        return Err(format!(
            "does not parse: {} (at byte {})",
            d.message, d.span.start
        ));
    }
    let expr: &Expr = match file.top_level() {
        [Stmt::Attribute(a)] => &a.value,
        _ => return Err("does not parse as one attribute".to_string()),
    };
    Ok(eval_expr(expr, &file, scope).map_err(|e| e.message))
}

/// Strict equality: same type, same number kind, deep; object fields compared regardless of order.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x, y) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Uint(x), Number::Uint(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
            _ => false,
        },
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Secret(x), Value::Secret(y)) => x.expose() == y.expose(),
        _ => false,
    }
}

/// A description that shows number kinds, for failure messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Number(Number::Int(i)) => format!("{i} (int)"),
        Value::Number(Number::Uint(u)) => format!("{u} (uint)"),
        Value::Number(Number::Float(f)) => format!("{f:?} (float)"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => {
            format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!("{k:?} = {}", describe(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => format!("{other:?}"),
    }
}

/// Converts JSON to a River value: integers become int (uint above the int64 range), other numbers float.
pub fn from_json(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::int(i)
            } else if let Some(u) = n.as_u64() {
                Value::uint(u)
            } else {
                Value::float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::string(s),
        serde_json::Value::Array(a) => Value::array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::object(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

fn compare(want: &Value, got: &Value) -> Result<(), String> {
    if same(want, got) {
        Ok(())
    } else {
        Err(format!("want {}\ngot  {}", describe(want), describe(got)))
    }
}

fn run_case(case: &EvalCase, scope: &Scope, empty: &Scope) -> Result<(), String> {
    let got = evaluate(&case.expr, scope)?;
    match (&case.expect, got) {
        (Expect::Json(j), Ok(got)) => match serde_json::from_str::<serde_json::Value>(j) {
            Ok(want) => compare(&from_json(&want), &got),
            Err(e) => Err(format!("bad JSON in expectation: {e}")),
        },
        (Expect::Uint(u), Ok(got)) => compare(&Value::uint(*u), &got),
        (Expect::Json(want) | Expect::Value(want), Err(e)) => {
            Err(format!("want {want}\ngot error: {e}"))
        }
        (Expect::Uint(u), Err(e)) => Err(format!("want uint {u}\ngot error: {e}")),
        (Expect::AnyError, Err(_)) => Ok(()),
        (Expect::AnyError, Ok(v)) => Err(format!("want an error\ngot value: {}", describe(&v))),
        (Expect::Value(want_src), Ok(got)) => {
            let want = match evaluate(want_src, empty) {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    return Err(format!(
                        "expected value `{want_src}` fails to evaluate: {e}"
                    ))
                }
                Err(e) => return Err(format!("expected value `{want_src}` {e}")),
            };
            compare(&want, &got)
        }
        (Expect::Error(m), Err(e)) if *m == e => Ok(()),
        (Expect::ErrorContains(m), Err(e)) if e.contains(m.as_str()) => Ok(()),
        (Expect::Error(m) | Expect::ErrorContains(m), Err(e)) => {
            Err(format!("want error: {m}\ngot error:  {e}"))
        }
        (Expect::Error(m) | Expect::ErrorContains(m), Ok(v)) => {
            Err(format!("want error: {m}\ngot value:  {}", describe(&v)))
        }
    }
}

/// Runs every eval file.
pub fn run() {
    std::env::set_var(ENV_VAR.0, ENV_VAR.1);
    let empty = Scope::new();
    let mut report = Report::new("eval");
    for path in files_with_suffix(&testdata_dir().join("eval"), ".txt") {
        let lines = match read_lines(&read(&path)) {
            Ok(c) => c,
            Err(e) => {
                report.fail(rel(&path), e);
                continue;
            }
        };
        let mut scope = scope();
        for line in &lines {
            match line {
                Line::Case(case) => {
                    let loc = format!("{}:{}: {}", rel(&path), case.line, case.expr);
                    report.check(loc, run_case(case, &scope, &empty));
                }
                Line::Var(n, name, expr) => match evaluate(expr, &scope) {
                    Ok(Ok(v)) => scope.insert(name.as_str(), v),
                    Ok(Err(e)) | Err(e) => {
                        report.fail(format!("{}:{n}: #! var {name}", rel(&path)), e)
                    }
                },
            }
        }
    }
    report.finish();
}

/// Environment variables naming the file and line of the case a child process runs.
const ISOLATED_FILE: &str = "RILL_TESTDATA_ISOLATED_FILE";
const ISOLATED_LINE: &str = "RILL_TESTDATA_ISOLATED_LINE";
/// Marks the child's verdict on its standard output.
const VERDICT: &str = "ISOLATED-CASE-VERDICT:";

/// Runs every case of `testdata/eval-isolated/*.txt` in its own child process (this test binary, running the
/// ignored test `test_name`), so that a crash such as a stack overflow fails that case instead of aborting
/// the whole test binary.
pub fn run_isolated(test_name: &str) {
    std::env::set_var(ENV_VAR.0, ENV_VAR.1);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => panic!("cannot find the test binary: {e}"),
    };
    let mut report = Report::new("eval-isolated");
    for path in files_with_suffix(&testdata_dir().join("eval-isolated"), ".txt") {
        let cases = match read_cases(&read(&path)) {
            Ok(c) => c,
            Err(e) => {
                report.fail(rel(&path), e);
                continue;
            }
        };
        for case in &cases {
            let loc = format!("{}:{}: {:.60}", rel(&path), case.line, case.expr);
            let output = std::process::Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    test_name,
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ISOLATED_FILE, &path)
                .env(ISOLATED_LINE, case.line.to_string())
                .output();
            let result = match output {
                Err(e) => Err(format!("cannot run the child process: {e}")),
                Ok(out) => {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    match stdout.split_once(VERDICT) {
                        Some((_, verdict)) if verdict.trim_start().starts_with("ok") => Ok(()),
                        Some((_, verdict)) => Err(verdict.trim().to_string()),
                        None => {
                            let stderr = String::from_utf8_lossy(&out.stderr);
                            let tail: Vec<&str> = stderr
                                .lines()
                                .filter(|l| !l.trim().is_empty())
                                .rev()
                                .take(3)
                                .collect();
                            Err(format!(
                                "evaluation crashed ({}): {}",
                                out.status,
                                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                            ))
                        }
                    }
                }
            };
            report.check(loc, result);
        }
    }
    report.finish();
}

/// The child side of [`run_isolated`]: runs the one case named by the environment and prints the verdict.
/// Does nothing when run directly.
pub fn run_isolated_child() {
    let (Ok(file), Ok(line)) = (std::env::var(ISOLATED_FILE), std::env::var(ISOLATED_LINE)) else {
        return;
    };
    let cases = read_cases(&read(std::path::Path::new(&file))).unwrap_or_default();
    let Some(case) = cases.iter().find(|c| c.line.to_string() == line) else {
        println!("{VERDICT} no case at {file}:{line}");
        return;
    };
    match run_case(case, &scope(), &Scope::new()) {
        Ok(()) => println!("{VERDICT} ok"),
        Err(e) => println!("{VERDICT} {e}"),
    }
}

/// Every case expression of the eval files, for the standard library coverage check.
pub fn expressions() -> Vec<String> {
    let mut out = Vec::new();
    for path in files_with_suffix(&testdata_dir().join("eval"), ".txt") {
        out.extend(
            read_cases(&read(&path))
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.expr),
        );
    }
    out
}

/// Every expected error message of the eval files, for the message-coverage check.
pub fn expected_messages() -> Vec<String> {
    let mut out = Vec::new();
    for path in files_with_suffix(&testdata_dir().join("eval"), ".txt") {
        for case in read_cases(&read(&path)).unwrap_or_default() {
            match case.expect {
                Expect::Error(m) | Expect::ErrorContains(m) => out.push(m),
                Expect::Value(_) | Expect::Json(_) | Expect::Uint(_) | Expect::AnyError => {}
            }
        }
    }
    out
}

#[test]
fn eval_lines_are_read() {
    let cases = read_cases("# c\n\n1 + 1 => 2\nx => error: identifier \"x\" does not exist\n1/0 => error~: divide by zero\n").unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[0].line, 3);
    assert!(matches!(&cases[1].expect, Expect::Error(m) if m == "identifier \"x\" does not exist"));
    assert!(matches!(&cases[2].expect, Expect::ErrorContains(m) if m == "divide by zero"));
    assert!(read_cases("no arrow\n").is_err());
}

#[test]
fn strict_equality_keeps_number_kinds_apart() {
    assert!(same(&Value::int(3), &Value::int(3)));
    assert!(!same(&Value::int(3), &Value::float(3.0)));
    assert!(!same(&Value::int(3), &Value::uint(3)));
    let a = obj(vec![("x", Value::int(1)), ("y", Value::Null)]);
    let b = obj(vec![("y", Value::Null), ("x", Value::int(1))]);
    assert!(same(&a, &b));
    assert!(!same(
        &Value::array(vec![Value::int(1)]),
        &Value::array(vec![])
    ));
}
