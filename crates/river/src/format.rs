//! The formatter: prints a parsed file in the reference printer's canonical layout (`agent fmt`).
//!
//! Users run `fmt` on configs that `agent fmt` / `alloy fmt` already formatted, so the output must match the
//! reference byte for byte, including its quirks. The reference is an elastic-tabstop printer, and exact
//! output depends on how it places comments and columns; we therefore follow its model in three stages:
//!
//! 1. `layout` walks the tree and writes tokens with layout control characters: `\v` ends an alignable
//!    cell (before `=`), `\t` ends an indentation or trailing-comment cell, `\n` ends a line that may align
//!    with the next, `\f` ends a line and every alignment run. Comments are placed by source position, the
//!    way the reference does it.
//! 2. `align` turns cells into aligned text: each column of a run of consecutive lines is padded to the
//!    widest cell of the run (the semantics of Go's `text/tabwriter` with the reference's settings).
//! 3. Trailing blanks are trimmed from every line (escaped text such as comments and strings excepted).
//!
//! **Decisions** (where the reference is wrong or unstable; none of them changes a conformance output):
//! - string literals and quoted object keys are printed byte for byte (the reference re-quoted keys with
//!   escapes doubled, and let a tab inside a string act as a column separator and trimmed blanks at the end
//!   of a raw string's lines);
//! - trailing blanks are trimmed from comment lines too (the reference kept them);
//! - a call with no arguments whose `)` is on another line prints `f()` (the reference printed `f(,)`, which
//!   does not parse);
//! - a comment before a call's `)` stays inside the call (the reference moved it after the call), and a
//!   comment inside an access chain (`a. /* c */ b`) or before a `)` stays put (the reference moved it
//!   right on every run);
//! - a comment inside a block name split over lines (`a.\n// c\nb {`) is written before the block (the
//!   reference wrote it before `{`, which does not parse);
//! - a closing bracket after a trailing comma always starts a line, even after a block comment;
//! - whether a statement or object field ends an alignment run depends on whether it *printed* over several
//!   lines, not on its source lines (they differ only when, e.g., `x = [\n]` collapses to `x = []`).
//!
//! - a raw string's Windows line endings print as `\n` (the reference kept the `\r`; the value is the same).
//!
//! The comment, bracket and run decisions keep `fmt` idempotent: the reference changed such files again on
//! a second run.

mod align;
mod layout;

use crate::ast::File;
use crate::diag::Diagnostics;

/// Formats a parsed file. The file must have parsed without errors. The output ends with one newline.
pub fn format_file(file: &File) -> String {
    let stream = layout::layout(file);
    let mut out = align::align(&stream);
    out.push(b'\n');
    match String::from_utf8(out) {
        Ok(s) => s,
        // Unreachable for a `str` source (only ASCII is inserted, escape bytes are removed); kept total.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Parses and formats `src`; returns the parse diagnostics if it does not parse.
pub fn format_source(src: &str) -> Result<String, Diagnostics> {
    let (file, diags) = crate::parse(src);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(format_file(&file))
}

#[cfg(test)]
mod tests {
    use super::format_source;

    fn fmt(src: &str) -> String {
        match format_source(src) {
            Ok(s) => s,
            Err(d) => panic!("parse failed: {d:?}"),
        }
    }

    #[test]
    fn aligns_attribute_runs_and_breaks_them_at_blank_lines() {
        let src = "a = 1\nlong_name = 2\n\nb = 3\ncc = 4\n";
        assert_eq!(fmt(src), "a         = 1\nlong_name = 2\n\nb  = 3\ncc = 4\n");
    }

    #[test]
    fn blocks_are_separated_and_indented_with_tabs() {
        let src = "a { \n  x = 1\n  yy = \"s\"\n}\nb \"l\" {}\n";
        assert_eq!(fmt(src), "a {\n\tx  = 1\n\tyy = \"s\"\n}\n\nb \"l\" { }\n");
    }

    #[test]
    fn trailing_comments_form_a_column() {
        let src = "a = 1 // one\nbbb = 22 // two\n";
        assert_eq!(fmt(src), "a   = 1  // one\nbbb = 22 // two\n");
    }

    #[test]
    fn multi_line_arrays_get_trailing_commas() {
        let src = "x = [1,\n  2,\n ]\ny = [1, 2]\nz = [1,\n 2]\n";
        assert_eq!(fmt(src), "x = [1,\n\t2,\n]\ny = [1, 2]\nz = [1,\n\t2]\n");
    }

    #[test]
    fn string_contents_are_kept() {
        let src = "a = \"x\ty\"\nb = {\"k\\\"q\" = 1}\nc = `raw  \n  text`\n";
        assert_eq!(fmt(src), src);
    }

    #[test]
    fn crlf_bom_and_trailing_space_are_normalised() {
        let src = "\u{FEFF}a = 1   \r\n// c \r\nb = 2\r\n";
        assert_eq!(fmt(src), "a = 1\n// c\nb = 2\n");
    }

    #[test]
    fn empty_and_comment_only_files() {
        // Like `agent fmt`, which always appends one newline.
        assert_eq!(fmt(""), "\n");
        assert_eq!(fmt("\n\n"), "\n");
        assert_eq!(fmt("\n// only\n\n\n/* two */\n"), "// only\n\n/* two */\n");
    }

    /// Formats twice: the first result must be stable.
    fn fmt_stable(src: &str) -> String {
        let once = fmt(src);
        assert_eq!(fmt(&once), once, "not idempotent for {src:?}");
        once
    }

    #[test]
    fn carriage_returns_before_a_raw_string_newline_all_go() {
        // Found by the fuzzer: only one `\r` went, so the next run changed the file again.
        assert_eq!(fmt_stable("c = `a\r\r\nb\r`\n"), "c = `a\nb\r`\n");
    }

    #[test]
    fn a_form_feed_in_a_comment_or_string_is_not_a_line_break() {
        // Found by the fuzzer: the next statement was glued onto the comment's line and no longer parsed.
        for src in [
            "a = 1 /*\x0c*/\nb = 2\n",
            "a = 1 //\x0c\nb = 2\n",
            "a = `\x0c`\nb = 2\n",
            "/* before */ a = 1 /*\x0cafter */\nb = 2 // x\n",
        ] {
            let out = fmt_stable(src);
            assert_eq!(out.lines().count(), 2, "{out:?}");
        }
    }

    #[test]
    fn a_block_comment_before_a_closing_bracket_that_moves_to_its_own_line_trails_the_line() {
        // Found by the round-trip property test: the comment first got a space, then a column on the
        // second run.
        let src = "a {\n  a= {a= a,a= { /* c */ a= a,\n\ta= a||\n\ta /* c */ }}\n}\n";
        assert_eq!(
            fmt_stable(src),
            "a {\n\ta = {a = a, a = { /* c */ a = a,\n\t\t\ta      = a || a,     /* c */\n\t\t},\n\t}\n}\n"
        );
        assert_eq!(
            fmt_stable("x = [1,\n2 /* c */ ]\n"),
            "x = [1,\n\t2 /* c */ ]\n"
        );
    }

    #[test]
    fn a_comment_before_a_parenthesis_stays_before_it() {
        // Found by the round-trip property test: the comment was written after `(`, then moved again.
        assert_eq!(
            fmt_stable("a = [a, // note\n(a)]\n"),
            "a = [a, // note\n\t(a)]\n"
        );
    }

    #[test]
    fn empty_call_on_two_lines_stays_valid() {
        assert_eq!(fmt("a = f(\n)\n"), "a = f()\n");
    }
}
