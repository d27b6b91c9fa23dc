//! `testdata/diagnostics/*.txt`: sectioned cases (`=== name`, `--- input`, optional `--- diagnostics`,
//! `--- output`, optional `--- summary`). The diagnostics (synthetic ones from `diagnostics`, else the parse
//! diagnostics of `input`) are rendered with `river::render::pretty` (no colour) for a file called `t.river`
//! and compared with `output`; `summary` is compared with the one-line summary.
//!
//! A synthetic diagnostic is `error|warning LINE:COL[-LINE:COL] message`: columns count characters and the end
//! is inclusive (like the reference printer's positions); a lone position stands for that one character.

use super::common::{files_with_suffix, parse_cases, read, rel, testdata_dir, Case, Report};
use river::render::{pretty, Colour};
use river::{Diagnostic, Diagnostics, SourceFile, Span};

const FILE_NAME: &str = "t.river";

/// Byte offset of 1-based `line`:`col` (characters) in `src`, and the length of the character there.
fn offset_of(src: &str, line: usize, col: usize) -> Option<(usize, usize)> {
    let line_start = if line == 1 {
        0
    } else {
        src.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    let rest = src.get(line_start..)?;
    // Only this line (with its newline, so the column just past the text is addressable).
    let rest = &rest[..rest.find('\n').map_or(rest.len(), |i| i + 1)];
    let mut chars = rest.char_indices();
    for _ in 1..col {
        chars.next()?;
    }
    let (i, c) = chars.next().unwrap_or((rest.len(), ' '));
    Some((line_start + i, c.len_utf8()))
}

fn parse_pos(s: &str) -> Option<(usize, usize)> {
    let (l, c) = s.split_once(':')?;
    Some((l.parse().ok()?, c.parse().ok()?))
}

/// Reads one synthetic diagnostic line.
fn synthetic(src: &str, line: &str) -> Result<Diagnostic, String> {
    let bad =
        || format!("bad diagnostic {line:?}: want `error|warning LINE:COL[-LINE:COL] message`");
    let (severity, rest) = line.split_once(' ').ok_or_else(bad)?;
    let (range, message) = rest.split_once(' ').ok_or_else(bad)?;
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (parse_pos(a).ok_or_else(bad)?, parse_pos(b).ok_or_else(bad)?),
        None => {
            let p = parse_pos(range).ok_or_else(bad)?;
            (p, p)
        }
    };
    let (start_off, _) =
        offset_of(src, start.0, start.1).ok_or_else(|| format!("{range}: outside the input"))?;
    let (end_off, end_len) =
        offset_of(src, end.0, end.1).ok_or_else(|| format!("{range}: outside the input"))?;
    let span = Span::new(start_off as u32, (end_off + end_len) as u32);
    match severity {
        "error" => Ok(Diagnostic::error(span, message)),
        "warning" => Ok(Diagnostic::warning(span, message)),
        _ => Err(bad()),
    }
}

fn run_case(case: &Case) -> Result<(), String> {
    let input = case.section("input").ok_or("case has no `--- input`")?;
    let want = case.section("output").ok_or("case has no `--- output`")?;
    let diags = match case.section("diagnostics") {
        Some(spec) => Diagnostics(
            spec.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| synthetic(input, l))
                .collect::<Result<_, _>>()?,
        ),
        None => river::parse(input).1,
    };
    let file = SourceFile::new(FILE_NAME, input);
    let got = pretty(&file, &diags, Colour::Never);
    let mut problems = String::new();
    if got != want {
        problems.push_str(&format!(
            "rendering differs\n--- want\n{want}--- got\n{got}"
        ));
    }
    if let Some(summary) = case.section("summary") {
        let got_summary = diags.summary(&file);
        if got_summary != summary.trim_end() {
            problems.push_str(&format!(
                "summary differs\nwant {}\ngot  {got_summary}\n",
                summary.trim_end()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Runs every diagnostics file.
pub fn run() {
    let mut report = Report::new("diagnostics");
    for path in files_with_suffix(&testdata_dir().join("diagnostics"), ".txt") {
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

/// The rendered outputs and synthetic messages, for the message-coverage check.
pub fn expected_messages() -> Vec<String> {
    let mut out = Vec::new();
    for path in files_with_suffix(&testdata_dir().join("diagnostics"), ".txt") {
        for case in parse_cases(&read(&path)).unwrap_or_default() {
            out.extend(case.section("output").map(str::to_string));
            out.extend(case.section("summary").map(str::to_string));
        }
    }
    out
}

#[test]
fn synthetic_positions_are_inclusive_character_ranges() {
    let src = "ab\né x\n";
    let d = synthetic(src, "error 2:1-2:3 m").unwrap();
    assert_eq!((d.span.start, d.span.end), (3, 7));
    let p = synthetic(src, "warning 2:1 m n").unwrap();
    assert_eq!(
        (p.span.start, p.span.end, p.message.as_str()),
        (3, 5, "m n")
    );
    assert!(synthetic(src, "error 9:1 m").is_err());
    assert!(synthetic(src, "fatal 1:1 m").is_err());
}
