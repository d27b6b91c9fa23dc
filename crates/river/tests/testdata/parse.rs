//! `testdata/parse/`: files that must parse cleanly (optionally with an expected syntax-tree dump) and files
//! whose complete list of diagnostics is given by `// ERROR line:col: message` annotations.

use super::common::{files_with_suffix, line_col, read, rel, testdata_dir, Report};
use river::ast::{Body, Expr, ExprKind, File, Stmt};
use std::fmt::Write as _;

/// Every `valid/*.river` parses with no diagnostics; when `NAME.ast` exists the tree dump must equal it.
pub fn valid() {
    let dir = testdata_dir().join("parse/valid");
    let mut report = Report::new("parse/valid");
    for path in files_with_suffix(&dir, ".river") {
        let src = read(&path);
        let (file, diags) = river::parse(&src);
        let mut problems = String::new();
        for d in diags.iter() {
            let (l, c) = line_col(&src, d.span.start);
            let _ = writeln!(problems, "unexpected diagnostic {l}:{c}: {}", d.message);
        }
        let ast_path = path.with_extension("ast");
        if problems.is_empty() && ast_path.exists() {
            let want = read(&ast_path);
            let got = dump_body(file.body, &file);
            if got.trim_end() != want.trim_end() {
                let _ = writeln!(
                    problems,
                    "syntax tree differs from {}\n--- want\n{want}--- got\n{got}",
                    rel(&ast_path)
                );
            }
        }
        report.check(
            rel(&path),
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems)
            },
        );
    }
    report.finish();
}

/// An expected diagnostic from an annotation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub col: usize,
    /// The exact message.
    pub message: String,
}

/// Reads the `// ERROR line:col: message` annotations of a file.
pub fn annotations(src: &str) -> Result<Vec<Expected>, String> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let Some(idx) = line.find("// ERROR ") else {
            continue;
        };
        let rest = &line[idx + "// ERROR ".len()..];
        let parsed = (|| {
            let (pos, msg) = rest.split_once(": ")?;
            let (l, c) = pos.split_once(':')?;
            Some(Expected {
                line: l.trim().parse().ok()?,
                col: c.trim().parse().ok()?,
                message: msg.trim_end().to_string(),
            })
        })();
        match parsed {
            Some(e) => out.push(e),
            None => {
                return Err(format!(
                    "line {}: malformed annotation, want `// ERROR line:col: message`",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

/// 1-based line and column (in characters; an invalid UTF-8 byte counts as one) of byte `offset` in `bytes`.
fn line_col_bytes(bytes: &[u8], offset: u32) -> (usize, usize) {
    let offset = (offset as usize).min(bytes.len());
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    (
        line,
        String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1,
    )
}

/// Every `invalid/*.river` yields exactly the annotated diagnostics (position and message), no more, no fewer.
/// Files are read as bytes and parsed with `parse_bytes`, so invalid UTF-8 can be tested too.
pub fn invalid() {
    let dir = testdata_dir().join("parse/invalid");
    let mut report = Report::new("parse/invalid");
    for path in files_with_suffix(&dir, ".river") {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut want = match annotations(&text) {
            Ok(w) if w.is_empty() => {
                report.fail(
                    rel(&path),
                    "no `// ERROR line:col: message` annotation in an invalid file",
                );
                continue;
            }
            Ok(w) => w,
            Err(e) => {
                report.fail(rel(&path), e);
                continue;
            }
        };
        let (_, diags) = river::parser::parse_bytes(&bytes);
        let mut got: Vec<Expected> = diags
            .iter()
            .map(|d| {
                let (line, col) = line_col_bytes(&bytes, d.span.start);
                Expected {
                    line,
                    col,
                    message: d.message.clone(),
                }
            })
            .collect();
        want.sort();
        got.sort();
        report.check(rel(&path), compare_diags(&want, &got));
    }
    report.finish();
}

fn compare_diags(want: &[Expected], got: &[Expected]) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let mut s = String::new();
    for w in want.iter().filter(|w| !got.contains(w)) {
        let _ = writeln!(s, "missing    {}:{}: {}", w.line, w.col, w.message);
    }
    for g in got.iter().filter(|g| !want.contains(g)) {
        let _ = writeln!(s, "unexpected {}:{}: {}", g.line, g.col, g.message);
    }
    if s.is_empty() {
        let _ = writeln!(
            s,
            "same diagnostics but different counts: want {want:?}, got {got:?}"
        );
    }
    Err(s)
}

/// A compact dump of a body: one statement per line, blocks indented, expressions as S-expressions.
pub fn dump_body(body: Body, file: &File) -> String {
    let mut out = String::new();
    dump_body_into(&mut out, body, file, 0);
    out
}

fn dump_body_into(out: &mut String, body: Body, file: &File, depth: usize) {
    let src: &str = &file.source;
    for stmt in file.stmts(body) {
        let indent = "  ".repeat(depth);
        match stmt {
            Stmt::Attribute(a) => {
                let _ = writeln!(
                    out,
                    "{indent}{} = {}",
                    a.name.text(src),
                    dump_expr(&a.value, file)
                );
            }
            Stmt::Block(b) => {
                let label = b
                    .label
                    .map(|l| format!(" {}", l.text(src)))
                    .unwrap_or_default();
                let _ = writeln!(out, "{indent}block {}{label} {{", b.name_string(file));
                dump_body_into(out, b.body, file, depth + 1);
                let _ = writeln!(out, "{indent}}}");
            }
        }
    }
}

/// An expression as an S-expression: literals and identifiers as written, `[a b]` arrays, `{k=v k2=v2}`
/// objects, `(. x f)` access, `(index x i)`, `(call f args...)`, `(op a b)`, `(paren x)`.
pub fn dump_expr(e: &Expr, file: &File) -> String {
    let src: &str = &file.source;
    let sub = |id| dump_expr(file.expr(id), file);
    match e.kind {
        ExprKind::Ident | ExprKind::Literal(_) => e.span.text(src).to_string(),
        ExprKind::Array(items) => {
            format!(
                "[{}]",
                file.exprs(items)
                    .iter()
                    .map(|i| dump_expr(i, file))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        ExprKind::Object(fields) => format!(
            "{{{}}}",
            file.fields(fields)
                .iter()
                .map(|f| format!("{}={}", f.key.text(src), dump_expr(&f.value, file)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        ExprKind::Access(x, name) => format!("(. {} {})", sub(x), name.text(src)),
        ExprKind::Index(x, i) => format!("(index {} {})", sub(x), sub(i)),
        ExprKind::Call(call) => {
            let mut s = format!("(call {}", sub(call.func));
            for a in file.exprs(call.args) {
                s.push(' ');
                s.push_str(&dump_expr(a, file));
            }
            s.push(')');
            s
        }
        ExprKind::Unary(op, x) => format!("({} {})", op.as_str(), sub(x)),
        ExprKind::Binary(op, l, r) => format!("({} {} {})", op.as_str(), sub(l), sub(r)),
        ExprKind::Paren(x) => format!("(paren {})", sub(x)),
    }
}

#[test]
fn annotations_are_read() {
    let src = "a = 1 b = 2 // ERROR 1:7: expected TERMINATOR, got IDENT\n// ERROR 3:1: x: y\n";
    let a = annotations(src).unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[0],
        Expected {
            line: 1,
            col: 7,
            message: "expected TERMINATOR, got IDENT".into()
        }
    );
    assert_eq!(a[1].message, "x: y");
    assert!(annotations("// ERROR nope\n").is_err());
}

#[test]
fn byte_positions_count_characters() {
    let b = "ab\néx".as_bytes();
    assert_eq!(line_col_bytes(b, 0), (1, 1));
    assert_eq!(line_col_bytes(b, 3), (2, 1));
    assert_eq!(line_col_bytes(b, 5), (2, 2));
    let bad = b"a\xffb";
    assert_eq!(line_col_bytes(bad, 2), (1, 3));
}
