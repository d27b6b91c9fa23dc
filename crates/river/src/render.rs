//! Rendering diagnostics for people.
//!
//! The one-line form (`file:line:col: message`) is [`SourceFile::one_line`] and [`Diagnostics::summary`].
//! [`pretty`] draws the reference printer's layout: a header, the source lines around the range with a
//! ` | ` gutter, and carets under the range:
//!
//! ```text
//! Error: t.river:2:1: attribute "a" may only be provided once
//!
//! 1 | a = 1
//! 2 | a = 2
//!   | ^^^^^
//! 3 |
//! ```
//!
//! Layout rules (those of the reference printer unless noted): one line of context on each side; line numbers
//! right-aligned to the widest shown; tabs (and vertical tabs) drawn as 4 spaces; a range over several lines
//! gets a rail (`|  _` under its first line, `| ` beside the lines it covers, `| |_` under its last line); a
//! blank line between diagnostics. Columns count characters, as in the header (**Decision**, see the language
//! notes). Where the reference left gaps, we choose:
//! - a range at the end of a line or of the file (e.g. "expected expression, got EOF") gets one caret just
//!   past the last character, instead of none;
//! - a tab inside a range gets carets (`^^^^`), except in the leading whitespace of the last line of a
//!   multi-line range, which continues the rail (`|_____^`) whether it is tabs or spaces;
//! - carets follow display width (a wide character gets two), and control characters are drawn as `�` so a
//!   config file cannot send escape sequences to the terminal.

use crate::diag::{Diagnostic, Diagnostics, Severity, SourceFile};
use std::fmt::Write as _;
use unicode_width::UnicodeWidthChar;

/// How many columns a tab takes in the rendered source.
const TAB_WIDTH: usize = 4;
/// Lines of context shown before and after the range.
const CONTEXT: usize = 1;

/// Whether to decorate the output with ANSI colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colour {
    /// Plain text (files, pipes, `NO_COLOR`).
    #[default]
    Never,
    /// ANSI escapes: the severity in bold red (error) or yellow (warning), the message in bold, the carets in
    /// the severity's colour.
    Always,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

impl Colour {
    fn on(self) -> bool {
        self == Colour::Always
    }
}

fn severity_style(s: Severity) -> (&'static str, &'static str) {
    // (bold header style, plain caret style)
    match s {
        Severity::Error => ("\x1b[1;31m", "\x1b[31m"),
        Severity::Warning => ("\x1b[1;33m", "\x1b[33m"),
    }
}

/// Renders every diagnostic of `diags` (whose spans point into `file`) in the pretty form, separated by blank
/// lines. The result ends with a newline unless `diags` is empty.
pub fn pretty(file: &SourceFile, diags: &Diagnostics, colour: Colour) -> String {
    let mut out = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_diagnostic(&mut out, file, d, colour);
    }
    out
}

/// Renders one diagnostic in the pretty form (header, blank line, source excerpt), ending with a newline.
pub fn pretty_diagnostic(file: &SourceFile, d: &Diagnostic, colour: Colour) -> String {
    let mut out = String::new();
    write_diagnostic(&mut out, file, d, colour);
    out
}

/// The largest char boundary of `s` that is `<= offset` (clamped to `s.len()`).
fn floor_boundary(s: &str, offset: usize) -> usize {
    let mut o = offset.min(s.len());
    while o > 0 && !s.is_char_boundary(o) {
        o -= 1;
    }
    o
}

fn write_diagnostic(out: &mut String, file: &SourceFile, d: &Diagnostic, colour: Colour) {
    let src = file.text();
    let (header_style, mark_style) = severity_style(d.severity);

    // Header: `Error: file:line:col: message`.
    if colour.on() {
        let _ = write!(
            out,
            "{header_style}{}: {RESET}{BOLD}{}{RESET}",
            d.severity,
            file.one_line(d)
        );
    } else {
        let _ = write!(out, "{}: {}", d.severity, file.one_line(d));
    }
    out.push('\n');
    out.push('\n');

    // Inclusive range: the start, and the first byte of the last character covered (the start when empty).
    let start = floor_boundary(src, d.span.start as usize);
    let end = floor_boundary(src, d.span.end as usize).max(start);
    let last = match src.get(start..end).and_then(|s| s.chars().next_back()) {
        Some(c) => end - c.len_utf8(),
        None => start,
    };
    let from = file.position(start as u32);
    let to = file.position(last as u32);
    let multiline = to.line > from.line;

    let lines = file.lines();
    let first_shown = from.line.saturating_sub(CONTEXT).max(1);
    let last_shown = (to.line + CONTEXT).min(lines.line_count()).max(to.line);
    let width = digits(last_shown);

    for n in first_shown..=last_shown {
        let text = src.get(lines.line_range(src, n - 1)).unwrap_or("");
        let _ = write!(out, "{n:>width$} | ");
        if multiline {
            if n > from.line && n <= to.line {
                styled(out, colour, mark_style, "| ");
            } else {
                out.push_str("  ");
            }
        }
        for c in text.chars() {
            match c {
                '\t' | '\x0b' => push_n(out, ' ', TAB_WIDTH),
                c if c.is_control() => out.push('\u{FFFD}'),
                c => out.push(c),
            }
        }
        out.push('\n');

        let marks = if n == from.line && !multiline {
            Some(Marks {
                lo: from.column,
                hi: to.column,
                blank: ' ',
                rail_to: 0,
            })
        } else if n == from.line {
            let len = text.chars().count();
            Some(Marks {
                lo: from.column,
                hi: len.max(from.column),
                blank: '_',
                rail_to: 0,
            })
        } else if multiline && n == to.line {
            let lead = text.chars().take_while(|c| c.is_whitespace()).count();
            // Keep at least the last cell a caret, even for a range ending in whitespace.
            let rail_to = lead.min(to.column.saturating_sub(1));
            Some(Marks {
                lo: 1,
                hi: to.column,
                blank: '_',
                rail_to,
            })
        } else {
            None
        };
        if let Some(m) = marks {
            push_n(out, ' ', width);
            out.push_str(" | ");
            let mut cells = String::new();
            if multiline {
                cells.push_str(if n == from.line { " _" } else { "|_" });
            }
            m.draw(&mut cells, text);
            styled(out, colour, mark_style, &cells);
            out.push('\n');
        }
    }
}

/// Which columns of one line to mark, and how.
struct Marks {
    /// First marked column (1-based, characters).
    lo: usize,
    /// Last marked column; `line length + 1` marks the end of the line.
    hi: usize,
    /// Drawn under unmarked columns before `lo`.
    blank: char,
    /// Columns `1..=rail_to` are drawn as rail (`_`) even though marked.
    rail_to: usize,
}

impl Marks {
    fn draw(&self, out: &mut String, text: &str) {
        let mut chars = text.chars();
        for col in 1..=self.hi {
            let w = match chars.next() {
                Some('\t' | '\x0b') => TAB_WIDTH,
                Some(c) if c.is_control() => 1,
                Some(c) => c.width().unwrap_or(0),
                None => 1, // past the end of the line: one cell for the newline / EOF
            };
            let mark = if col < self.lo {
                self.blank
            } else if col <= self.rail_to {
                '_'
            } else {
                '^'
            };
            push_n(out, mark, w);
        }
    }
}

fn styled(out: &mut String, colour: Colour, style: &str, s: &str) {
    if colour.on() {
        out.push_str(style);
        out.push_str(s);
        out.push_str(RESET);
    } else {
        out.push_str(s);
    }
}

fn push_n(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    /// Renders one error whose range runs from the first occurrence of `from` to the end of the first
    /// occurrence of `to` at or after it.
    fn render_between(src: &str, from: &str, to: &str) -> String {
        let s = src.find(from).unwrap();
        let e = s + src[s..].find(to).unwrap() + to.len();
        render_span(src, s, e)
    }

    fn render_span(src: &str, s: usize, e: usize) -> String {
        let file = SourceFile::new("t.river", src);
        let d = Diagnostic::error(Span::new(s as u32, e as u32), "synthetic error");
        pretty(&file, &Diagnostics(vec![d]), Colour::Never)
    }

    #[test]
    fn spec_example_duplicate_attribute() {
        let src = "a = 1\na = 2\n";
        let file = SourceFile::new("t.river", src);
        let d = Diagnostic::error(
            Span::new(6, 11),
            "attribute \"a\" may only be provided once",
        );
        let got = pretty(&file, &Diagnostics(vec![d]), Colour::Never);
        let want = "Error: t.river:2:1: attribute \"a\" may only be provided once\n\
                    \n\
                    1 | a = 1\n\
                    2 | a = 2\n  | ^^^^^\n\
                    3 | \n";
        assert_eq!(got, want);
    }

    #[test]
    fn tabs_are_four_spaces_and_carets_follow_them() {
        // Reference test "highlight on same line": `attr` after a leading tab.
        let src = "test.block \"label\" {\n\tattr       = 1\n\tother_attr = 2\n}";
        let got = render_between(src, "attr", "attr");
        let want = "Error: t.river:2:2: synthetic error\n\
                    \n\
                    1 | test.block \"label\" {\n\
                    2 |     attr       = 1\n  |     ^^^^\n\
                    3 |     other_attr = 2\n";
        assert_eq!(got, want);
    }

    #[test]
    fn tab_inside_a_range_gets_carets() {
        let got = render_between("a =\t1\n", "a", "1");
        assert_eq!(
            got,
            "Error: t.river:1:1: synthetic error\n\n1 | a =    1\n  | ^^^^^^^^\n2 | \n"
        );
    }

    #[test]
    fn empty_span_gets_one_caret() {
        // Reference test "end positions should be optional".
        let got = render_span("foo,bar", 3, 3);
        assert_eq!(
            got,
            "Error: t.river:1:4: synthetic error\n\n1 | foo,bar\n  |    ^\n"
        );
    }

    #[test]
    fn line_numbers_are_padded_to_the_widest() {
        let src = "LINE_1\nLINE_2\nLINE_3\nLINE_4\nLINE_5\nLINE_6\nLINE_7\nLINE_8\nLINE_9\nLINE_10\nLINE_11";
        let got = render_between(src, "LINE_9", "LINE_9");
        let want = "Error: t.river:9:1: synthetic error\n\
                    \n \
                    8 | LINE_8\n \
                    9 | LINE_9\n   | ^^^^^^\n\
                    10 | LINE_10\n";
        assert_eq!(got, want);
    }

    #[test]
    fn multiline_range_from_line_start() {
        let src = "FILE_BEGIN\nSTART\nTEXT\n\tTEXT\n\t\tTEXT\n\t\t\tDONE after\nFILE_END";
        let got = render_between(src, "START", "DONE");
        let want = "Error: t.river:2:1: synthetic error\n\
                    \n\
                    1 |   FILE_BEGIN\n\
                    2 |   START\n  |  _^^^^^\n\
                    3 | | TEXT\n\
                    4 | |     TEXT\n\
                    5 | |         TEXT\n\
                    6 | |             DONE after\n  | |_____________^^^^\n\
                    7 |   FILE_END\n";
        assert_eq!(got, want);
    }

    #[test]
    fn multiline_range_from_mid_line() {
        let src = "FILE_BEGIN\nbefore START\nTEXT\n\tTEXT\n\t\tTEXT\n\t\t\tDONE after\nFILE_END";
        let got = render_between(src, "START", "DONE");
        let want = "Error: t.river:2:8: synthetic error\n\
                    \n\
                    1 |   FILE_BEGIN\n\
                    2 |   before START\n  |  ________^^^^^\n\
                    3 | | TEXT\n\
                    4 | |     TEXT\n\
                    5 | |         TEXT\n\
                    6 | |             DONE after\n  | |_____________^^^^\n\
                    7 |   FILE_END\n";
        assert_eq!(got, want);
    }

    #[test]
    fn multiline_block_with_space_indent_and_empty_line_inside() {
        // A whole block; its closing brace is indented with spaces, which become rail too.
        let src = "a {\n  b {\n\n  }\n}\n";
        let got = render_between(src, "b {", "}");
        let want = "Error: t.river:2:3: synthetic error\n\
                    \n\
                    1 |   a {\n\
                    2 |     b {\n  |  ___^^^\n\
                    3 | | \n\
                    4 | |   }\n  | |___^\n\
                    5 |   }\n";
        assert_eq!(got, want);
    }

    #[test]
    fn unicode_columns_count_characters_and_carets_follow_width() {
        // `é` is two bytes but one column; `日本` are two wide characters.
        let src = "s = \"é\" + 日本\n";
        let got = render_between(src, "日", "本");
        let want = "Error: t.river:1:11: synthetic error\n\n1 | s = \"é\" + 日本\n  |           ^^^^\n2 | \n";
        assert_eq!(got, want);
    }

    #[test]
    fn span_at_eof_gets_a_caret_past_the_end() {
        let src = "a = ";
        let got = render_span(src, 4, 4);
        assert_eq!(
            got,
            "Error: t.river:1:5: synthetic error\n\n1 | a = \n  |     ^\n"
        );
    }

    #[test]
    fn span_at_eof_after_trailing_newline_shows_the_empty_last_line() {
        let src = "a = 1\nb = (\n";
        let got = render_span(src, src.len(), src.len());
        assert_eq!(
            got,
            "Error: t.river:3:1: synthetic error\n\n2 | b = (\n3 | \n  | ^\n"
        );
    }

    #[test]
    fn span_on_empty_line_and_empty_file() {
        let got = render_span("a = 1\n\nb = 2\n", 6, 6);
        assert_eq!(
            got,
            "Error: t.river:2:1: synthetic error\n\n1 | a = 1\n2 | \n  | ^\n3 | b = 2\n"
        );
        assert_eq!(
            render_span("", 0, 0),
            "Error: t.river:1:1: synthetic error\n\n1 | \n  | ^\n"
        );
    }

    #[test]
    fn span_ending_with_a_newline_is_multiline_only_if_it_reaches_the_next_line() {
        // Covering `b = 2\n`: the last character is the newline on line 2, drawn as one cell past the text.
        let got = render_span("a = 1\nb = 2\nc = 3", 6, 12);
        assert_eq!(
            got,
            "Error: t.river:2:1: synthetic error\n\n1 | a = 1\n2 | b = 2\n  | ^^^^^^\n3 | c = 3\n"
        );
    }

    #[test]
    fn crlf_line_endings_are_not_shown() {
        let got = render_between("a = 1\r\nb = 2\r\n", "b", "2");
        assert_eq!(
            got,
            "Error: t.river:2:1: synthetic error\n\n1 | a = 1\n2 | b = 2\n  | ^^^^^\n3 | \n"
        );
    }

    #[test]
    fn control_characters_are_replaced() {
        let got = render_between("a = \"\x1b[31m\"", "a", "a");
        assert_eq!(
            got,
            "Error: t.river:1:1: synthetic error\n\n1 | a = \"\u{FFFD}[31m\"\n  | ^\n"
        );
    }

    #[test]
    fn out_of_range_and_mid_character_spans_do_not_panic() {
        let got = render_span("é", 1, 99);
        assert_eq!(got, "Error: t.river:1:1: synthetic error\n\n1 | é\n  | ^\n");
        let got = render_span("ab", 50, 60);
        assert_eq!(
            got,
            "Error: t.river:1:3: synthetic error\n\n1 | ab\n  |   ^\n"
        );
    }

    #[test]
    fn several_diagnostics_are_separated_by_a_blank_line() {
        let src = "old_field = 15\n3 & 4";
        let file = SourceFile::new("file_a", src);
        let diags = Diagnostics(vec![
            Diagnostic::warning(Span::new(0, 9), "old_field is deprecated"),
            Diagnostic::error(Span::new(17, 17), "unrecognized operator &"),
        ]);
        let want = "Warning: file_a:1:1: old_field is deprecated\n\
                    \n\
                    1 | old_field = 15\n  | ^^^^^^^^^\n\
                    2 | 3 & 4\n\
                    \n\
                    Error: file_a:2:3: unrecognized operator &\n\
                    \n\
                    1 | old_field = 15\n\
                    2 | 3 & 4\n  |   ^\n";
        assert_eq!(pretty(&file, &diags, Colour::Never), want);
        assert_eq!(pretty(&file, &Diagnostics::new(), Colour::Never), "");
    }

    #[test]
    fn colour_marks_severity_message_and_carets() {
        let file = SourceFile::new("f", "x = 1\n");
        let err = Diagnostic::error(Span::new(0, 1), "bad");
        let want = "\x1b[1;31mError: \x1b[0m\x1b[1mf:1:1: bad\x1b[0m\n\n1 | x = 1\n  | \x1b[31m^\x1b[0m\n2 | \n";
        assert_eq!(pretty_diagnostic(&file, &err, Colour::Always), want);
        let warn = Diagnostic::warning(Span::new(4, 5), "meh");
        let got = pretty_diagnostic(&file, &warn, Colour::Always);
        assert!(
            got.starts_with("\x1b[1;33mWarning: \x1b[0m\x1b[1mf:1:5: meh\x1b[0m\n"),
            "{got:?}"
        );
        assert!(got.contains("  | \x1b[33m    ^\x1b[0m\n"), "{got:?}");
    }

    #[test]
    fn colour_multiline_rails() {
        let file = SourceFile::new("f", "a {\n}\n");
        let d = Diagnostic::error(Span::new(0, 5), "m");
        let got = pretty_diagnostic(&file, &d, Colour::Always);
        let want = "\x1b[1;31mError: \x1b[0m\x1b[1mf:1:1: m\x1b[0m\n\n\
                    1 |   a {\n  | \x1b[31m _^^^\x1b[0m\n\
                    2 | \x1b[31m| \x1b[0m}\n  | \x1b[31m|_^\x1b[0m\n\
                    3 |   \n";
        assert_eq!(got, want);
    }
}
