//! The examples of `docs/language.md` are true:
//!
//! - every ```` ```river ```` block parses and is already formatted (`rill fmt` prints it unchanged);
//! - every ```` ```river-before ```` block formats to the `river` block that follows it;
//! - every line `EXPRESSION => RESULT` of a ```` ```river-eval ```` block evaluates (with the standard library)
//!   to `RESULT`, a River expression, compared strictly (same type and number kind, deep), or fails with
//!   exactly `error: MESSAGE`;
//! - every standard library name is documented, and every function is called in an example.

use river::ast::Stmt;
use river::eval::{eval_expr, Scope};
use river::{Number, Value};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/language.md");
    std::fs::read_to_string(path).expect("docs/language.md")
}

struct Fence {
    kind: String,
    /// 1-based line of the first content line.
    line: usize,
    text: String,
}

fn fences(doc: &str) -> Vec<Fence> {
    let mut out = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in doc.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(kind)) => {
                open = Some(Fence {
                    kind: kind.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(f), _) => {
                f.text.push_str(line);
                f.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "unclosed code block");
    out
}

fn evaluate(expr: &str, scope: &Scope) -> Result<Result<Value, String>, String> {
    let src = format!("v = {expr}\n");
    let (file, diags) = river::parse(&src);
    if let Some(d) = diags.iter().next() {
        return Err(format!("{expr:?} does not parse: {}", d.message));
    }
    match file.top_level() {
        [Stmt::Attribute(a)] => Ok(eval_expr(&a.value, &file, scope).map_err(|e| e.message)),
        _ => Err(format!("{expr:?} is not one expression")),
    }
}

/// Strict equality: same type, same number kind, deep.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x, y) {
            (Number::Int(x), Number::Int(y)) => x == y,
            (Number::Uint(x), Number::Uint(y)) => x == y,
            (Number::Float(x), Number::Float(y)) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// Checks one `EXPRESSION => RESULT` line.
fn check_eval(line: &str, scope: &Scope) -> Result<(), String> {
    let (expr, want) = line
        .split_once(" => ")
        .ok_or_else(|| format!("no ` => ` in {line:?}"))?;
    let got = evaluate(expr, scope)?;
    match (want.strip_prefix("error: "), got) {
        (Some(message), Err(got)) if got == message => Ok(()),
        (Some(message), got) => Err(format!("{expr}: want error {message:?}, got {got:?}")),
        (None, Err(e)) => Err(format!("{expr}: want {want}, got error {e:?}")),
        (None, Ok(got)) => {
            let want_value = evaluate(want, scope)?
                .map_err(|e| format!("{expr}: the expected value {want} fails: {e}"))?;
            if same(&want_value, &got) {
                Ok(())
            } else {
                Err(format!("{expr}: want {want_value:?}, got {got:?}"))
            }
        }
    }
}

fn format(src: &str) -> Result<String, String> {
    river::format::format_source(src).map_err(|d| format!("does not parse: {d:?}"))
}

#[test]
fn the_examples_of_the_language_guide_are_true() {
    // The variable the `env` examples read (nothing else in this test binary uses the environment).
    std::env::set_var("RILL_DOC_EXAMPLE", "hello");
    std::env::remove_var("RILL_DOC_UNSET");
    let doc = doc();
    let fences = fences(&doc);
    let scope = Scope::with_stdlib();
    let mut failures = Vec::new();
    let mut counts = [0usize; 3];
    for (i, f) in fences.iter().enumerate() {
        match f.kind.as_str() {
            "river" => {
                counts[0] += 1;
                match format(&f.text) {
                    Ok(out) if out == f.text => {}
                    Ok(out) => failures.push(format!(
                        "line {}: not formatted; rill fmt prints:\n{out}",
                        f.line
                    )),
                    Err(e) => failures.push(format!("line {}: {e}", f.line)),
                }
            }
            "river-before" => {
                counts[1] += 1;
                let Some(after) = fences.get(i + 1).filter(|n| n.kind == "river") else {
                    failures.push(format!("line {}: no river block follows", f.line));
                    continue;
                };
                match format(&f.text) {
                    Ok(out) if out == after.text => {}
                    Ok(out) => failures.push(format!(
                        "line {}: formats to\n{out}\nnot to the block at line {}",
                        f.line, after.line
                    )),
                    Err(e) => failures.push(format!("line {}: {e}", f.line)),
                }
            }
            "river-eval" => {
                for (j, line) in f.text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    counts[2] += 1;
                    if let Err(e) = check_eval(line, &scope) {
                        failures.push(format!("line {}: {e}", f.line + j));
                    }
                }
            }
            "text" | "sh" | "" => {}
            other => failures.push(format!("line {}: unknown block kind {other:?}", f.line)),
        }
    }
    assert!(
        failures.is_empty(),
        "docs/language.md:\n{}",
        failures.join("\n")
    );
    assert!(
        counts.iter().all(|&n| n > 0),
        "each kind of example is used: {counts:?}"
    );
}

/// Whether `text` calls `name(` with `name` not part of a longer (dotted) name.
fn calls(text: &str, name: &str) -> bool {
    let pattern = format!("{name}(");
    text.match_indices(&pattern).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

#[test]
fn every_standard_library_name_is_documented_with_an_example() {
    let doc = doc();
    let examples: String = fences(&doc)
        .into_iter()
        .filter(|f| f.kind == "river-eval")
        .map(|f| f.text)
        .collect();
    let names = river::stdlib::names();
    assert!(names.len() > 40, "{names:?}");
    let mut missing = Vec::new();
    for name in &names {
        if !doc.contains(&format!("`{name}")) {
            missing.push(format!("{name} is not documented"));
        }
        let is_constant = name.starts_with("constants.");
        if is_constant && !examples.contains(name.as_str()) {
            missing.push(format!("{name} has no example"));
        }
        if !is_constant && !calls(&examples, name) {
            missing.push(format!("{name} is not called in an example"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn call_detection_ignores_longer_names() {
    assert!(calls("x = concat([1])", "concat"));
    assert!(!calls("array.concat([1])", "concat"));
    assert!(calls("array.concat([1])", "array.concat"));
    assert!(!calls("my_env(1)", "env"));
}
