//! Stage 1 of the formatter: walk the tree and write tokens, whitespace and comments as a layout stream.
//!
//! The stream is text with layout control bytes (see [`super::align`]): `\t` and `\v` end a cell, `\n` ends
//! a line, `\f` ends a line and all alignment runs, and text between two [`ESC`] bytes is taken literally.
//!
//! This follows the reference printer's model, because comment placement and blank lines depend on it:
//! whitespace requests are buffered and only written when the next token comes; before writing a token,
//! every comment group that starts at or before the token's *source position* is written first. Tokens
//! that have no position in the reference tree (`,` `.` `=` `(` `)`) are given an estimated one: where the
//! previous token ended plus the token's length. Comments therefore land where the reference put them,
//! except where its estimate made a comment move on every run (see the decisions in [`super`]): a call's
//! `)`, and `.` / `)` with a comment right before them, use their real positions.

use crate::ast::{Block, Body, CommentKind, Expr, ExprKind, File, LitKind, ObjectField, Stmt};
use crate::span::Span;
use std::borrow::Cow;
use std::cell::Cell;

/// Brackets literal text in the layout stream. Never part of valid UTF-8, so it cannot clash with text.
pub(super) const ESC: u8 = 0xFF;

/// The reference printer never writes more than one blank line.
const MAX_NEWLINES: i64 = 2;

/// Produces the layout stream for `file`.
pub(super) fn layout(file: &File) -> Vec<u8> {
    let src: &str = &file.source;
    let lines = Lines::new(src);
    let comments = comment_infos(file, &lines);
    let groups = comment_groups(src, &comments);
    let mut p = Printer {
        file,
        src,
        lines: &lines,
        out: Vec::with_capacity(src.len() + src.len() / 2 + 16),
        indent: 0,
        last_tok: LastTok::Other,
        ws: Vec::with_capacity(16),
        comments: &comments,
        groups: &groups,
        next_group: 0,
        pos: Pos { offset: 0, line: 1 },
        last: Pos { offset: 0, line: 0 },
        out_col: 1,
        breaks: 0,
        closer_break: false,
        marks: Vec::new(),
        mark_slot: None,
    };
    p.stmts(file.body);
    // Comments after the last statement.
    let end = Pos {
        offset: i64::MAX,
        line: i64::MAX,
    };
    p.flush(end, true);
    p.out
}

/// A comment prepared for printing.
struct CommentInfo<'a> {
    /// Source offset of the first byte.
    start: u32,
    /// End offset in the source (exclusive).
    end: u32,
    /// 1-based line of the first byte.
    line: i64,
    /// 1-based line of the last byte, computed the reference's way (see [`comment_infos`]).
    end_line: i64,
    /// The text as the reference holds it: carriage returns removed.
    text: Cow<'a, str>,
    is_block: bool,
}

fn comment_infos<'a>(file: &'a File, lines: &Lines) -> Vec<CommentInfo<'a>> {
    let src: &str = &file.source;
    file.comments
        .iter()
        .map(|c| {
            let text = strip_cr(c.span.text(src), c.kind == CommentKind::Block);
            let line = lines.line(c.span.start as i64);
            // The reference computes the end from the CR-less text length, so it can fall short for a block
            // comment with Windows line endings; follow it, since it decides the spacing after the comment.
            let end_line = lines.line(c.span.start as i64 + text.len() as i64 - 1);
            CommentInfo {
                start: c.span.start,
                end: c.span.end,
                line,
                end_line,
                text,
                is_block: c.kind == CommentKind::Block,
            }
        })
        .collect()
}

/// Removes carriage returns from a comment like the reference scanner (which keeps a `\r` directly between
/// `*` and the final `/` of a block comment).
fn strip_cr(text: &str, block: bool) -> Cow<'_, str> {
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    for (j, &b) in bytes.iter().enumerate() {
        let keep = b != b'\r'
            || (block
                && out.len() > 2
                && out.last() == Some(&b'*')
                && bytes.get(j + 1) == Some(&b'/'));
        if keep {
            out.push(b);
        }
    }
    // Only ASCII `\r` bytes were removed, so the text is still UTF-8.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Groups comments like the reference parser: consecutive comments with nothing but whitespace between them
/// and no blank line. A group is written as a whole once its first comment is due.
fn comment_groups(src: &str, comments: &[CommentInfo<'_>]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=comments.len() {
        let joined = match (comments.get(i - 1), comments.get(i)) {
            (Some(prev), Some(cur)) => {
                let between = src
                    .get(prev.end as usize..cur.start as usize)
                    .unwrap_or("x");
                let prev_end_line =
                    prev.line + prev.text.bytes().filter(|&b| b == b'\n').count() as i64;
                cur.line <= prev_end_line + 1
                    && between
                        .bytes()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            }
            _ => false,
        };
        if !joined {
            groups.push(start..i);
            start = i;
        }
    }
    groups
}

/// Line starts of the source, with a cursor: the printer asks for lines in nearly increasing order, so most
/// lookups hit the cursor's line or the next one instead of searching.
struct Lines {
    /// Offset of each line's first byte; always starts with 0.
    starts: Vec<usize>,
    /// Index of the line of the last lookup.
    hint: Cell<usize>,
}

impl Lines {
    fn new(src: &str) -> Self {
        let mut starts = Vec::with_capacity(src.len() / 24 + 1);
        starts.push(0);
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines {
            starts,
            hint: Cell::new(0),
        }
    }

    /// 1-based line of a byte offset (offsets before the start count as line 1, past the end as the last).
    fn line(&self, offset: i64) -> i64 {
        let off = offset.max(0) as usize;
        let starts = &self.starts;
        let hint = self.hint.get().min(starts.len().saturating_sub(1));
        // The line is the last start <= off. Gallop from the hint to a window holding it, then search it.
        let index = if starts.get(hint).is_some_and(|&s| s <= off) {
            let mut lo = hint;
            let mut step = 1;
            loop {
                let probe = lo + step;
                match starts.get(probe) {
                    Some(&s) if s <= off => {
                        lo = probe;
                        step *= 2;
                    }
                    _ => break,
                }
            }
            let hi = (lo + step).min(starts.len());
            lo + starts
                .get(lo..hi)
                .map_or(1, |w| w.partition_point(|&s| s <= off))
                - 1
        } else {
            let mut hi = hint;
            let mut step = 1;
            while hi > 0 {
                let probe = hi.saturating_sub(step);
                if starts.get(probe).is_some_and(|&s| s <= off) {
                    break;
                }
                hi = probe;
                step *= 2;
            }
            let lo = hi.saturating_sub(step);
            lo + starts
                .get(lo..hi)
                .map_or(1, |w| w.partition_point(|&s| s <= off))
                .max(1)
                - 1
        };
        self.hint.set(index);
        index as i64 + 1
    }
}

/// Buffered whitespace requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ws {
    /// A request cancelled by comment placement.
    Ignore,
    /// A space.
    Blank,
    /// End of an alignable cell (before `=`).
    VTab,
    /// End of a line that may align with the next.
    Newline,
    /// End of a line and of all alignment runs.
    Formfeed,
    /// One more level of indentation from the next line on.
    Indent,
    /// One level less.
    Unindent,
}

impl Ws {
    fn byte(self) -> u8 {
        match self {
            Ws::Blank => b' ',
            Ws::VTab => 0x0B,
            Ws::Newline => b'\n',
            Ws::Formfeed => 0x0C,
            Ws::Ignore | Ws::Indent | Ws::Unindent => 0,
        }
    }
}

/// What was written last, for the two token pairs that would lex differently when glued together.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LastTok {
    /// An integer literal: a following `.` needs a space (`1 .x`, not the float `1.`).
    Number,
    /// `/`: a following `*` needs a space (not a comment opener).
    Div,
    /// A whitespace request.
    Space,
    /// Anything else.
    Other,
}

/// A position in source space: byte offset and 1-based line (0 = not yet known).
#[derive(Clone, Copy, Debug)]
struct Pos {
    offset: i64,
    line: i64,
}

/// How a piece of text goes into the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKind {
    /// Tokens and identifiers: written as is.
    Plain,
    /// String literals: kept byte for byte, so escaped; raw newlines still end layout lines.
    Str,
    /// Comments: escaped as a whole, like the reference.
    Comment,
}

struct Printer<'a> {
    file: &'a File,
    src: &'a str,
    lines: &'a Lines,
    out: Vec<u8>,
    indent: usize,
    last_tok: LastTok,
    ws: Vec<Ws>,
    comments: &'a [CommentInfo<'a>],
    groups: &'a [std::ops::Range<usize>],
    next_group: usize,
    /// Estimated source position of the end of the last text written.
    pos: Pos,
    /// Source position after the last text (token or comment) written.
    last: Pos,
    /// 1-based column in the output; indentation is written when text starts at column 1.
    out_col: i64,
    /// Line breaks written so far (layout and literal), to tell whether a statement printed on one line.
    breaks: u64,
    /// A closing bracket was asked to start a new line (after a trailing comma).
    closer_break: bool,
    /// `breaks` when the first token after each open [`Printer::mark`] request was written.
    marks: Vec<u64>,
    /// The mark waiting for its first token.
    mark_slot: Option<usize>,
}

impl<'a> Printer<'a> {
    // ---- positions -------------------------------------------------------------------------------------

    fn line(&self, offset: i64) -> i64 {
        self.lines.line(offset)
    }

    /// The reference's `EndPos` line: the line of a node's last byte.
    fn end_line(&self, span: Span) -> i64 {
        self.line(span.end as i64 - 1)
    }

    /// Sets the source position of the next token.
    fn at(&mut self, offset: u32) {
        self.pos = Pos {
            offset: offset as i64,
            line: self.line(offset as i64),
        };
    }

    /// The offset of the first token at or after `from`, skipping blanks and comments.
    fn token_after(&self, from: u32) -> u32 {
        let bytes = self.src.as_bytes();
        let mut i = from as usize;
        while let Some(&b) = bytes.get(i) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    i = self.src[i..].find('\n').map_or(bytes.len(), |n| i + n);
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = self
                        .src
                        .get(i + 2..)
                        .and_then(|s| s.find("*/"))
                        .map_or(bytes.len(), |n| i + 2 + n + 2);
                }
                _ => break,
            }
        }
        i.min(u32::MAX as usize) as u32
    }

    /// Whether a comment starts between two offsets (only blanks, comments and punctuation can be there).
    fn comment_between(&self, from: u32, to: u32) -> bool {
        self.src
            .get(from as usize..to as usize)
            .is_some_and(|s| s.contains('/'))
    }

    // ---- writing ---------------------------------------------------------------------------------------

    fn space(&mut self, w: Ws) {
        if w != Ws::Ignore {
            self.ws.push(w);
            self.last_tok = LastTok::Space;
        }
    }

    /// Writes punctuation or an operator.
    fn token(&mut self, text: &str) {
        let first = text.as_bytes().first().copied();
        let glue = match self.last_tok {
            LastTok::Number => first == Some(b'.'),
            LastTok::Div => first == Some(b'*'),
            _ => false,
        };
        if glue {
            self.ws.clear();
            self.ws.push(Ws::Blank);
        }
        self.last_tok = if text == "/" {
            LastTok::Div
        } else {
            LastTok::Other
        };
        self.emit(text, TextKind::Plain);
    }

    fn ident(&mut self, text: &str) {
        self.last_tok = LastTok::Other;
        self.emit(text, TextKind::Plain);
    }

    fn literal(&mut self, text: &str, kind: LitKind) {
        self.last_tok = if kind == LitKind::Number {
            LastTok::Number
        } else {
            LastTok::Other
        };
        let how = match kind {
            LitKind::String | LitKind::RawString => TextKind::Str,
            _ => TextKind::Plain,
        };
        self.emit(text, how);
    }

    /// Writes due comments and pending whitespace, then `text` at the current source position.
    fn emit(&mut self, text: &str, how: TextKind) {
        let next = self.pos;
        self.flush(next, false);
        if let Some(slot) = self.mark_slot.take() {
            if let Some(m) = self.marks.get_mut(slot) {
                *m = self.breaks;
            }
        }
        self.write_text(next, text, how);
    }

    /// Starts measuring a construct at the next token (comments and whitespace before it excluded).
    /// Marks nest: a construct's first token is written before any construct inside it starts.
    fn mark(&mut self) -> usize {
        self.marks.push(self.breaks);
        self.mark_slot = Some(self.marks.len() - 1);
        self.marks.len() - 1
    }

    /// Ends the measure started by [`Printer::mark`]: whether the construct printed over several lines.
    fn printed_multi_line(&mut self, slot: usize) -> bool {
        let start = self.marks.get(slot).copied().unwrap_or(self.breaks);
        self.marks.truncate(slot);
        if self.mark_slot.is_some_and(|s| s >= slot) {
            self.mark_slot = None;
        }
        self.breaks > start
    }

    fn comment_due(&self, next: Pos) -> bool {
        self.groups
            .get(self.next_group)
            .and_then(|g| self.comments.get(g.start))
            .is_some_and(|c| (c.start as i64) <= next.offset)
    }

    /// Writes the comments due before a token at `next`, or else the pending whitespace.
    fn flush(&mut self, next: Pos, eof: bool) {
        if self.comment_due(next) {
            self.inject_comments(next, eof);
        } else if !eof {
            self.write_ws(self.ws.len());
        }
    }

    fn inject_comments(&mut self, next: Pos, eof: bool) {
        let breaks_before = self.breaks;
        let mut last_comment = None;
        while self.comment_due(next) {
            let Some(group) = self.groups.get(self.next_group).cloned() else {
                break;
            };
            self.next_group += 1;
            for i in group {
                let comments = self.comments;
                if let Some(c) = comments.get(i) {
                    self.comment_prefix(next, c);
                    let at = Pos {
                        offset: c.start as i64,
                        line: c.line,
                    };
                    self.write_text(at, &c.text, TextKind::Comment);
                    last_comment = Some(c);
                }
            }
        }
        if let Some(c) = last_comment {
            let broke = self.breaks != breaks_before;
            self.comment_suffix(next, eof, c, broke);
        }
    }

    /// Whitespace before a comment: a separator when it trails a token on the same line, else the pending
    /// indentation changes and the source's line breaks (at most one blank line).
    fn comment_prefix(&mut self, next: Pos, c: &CommentInfo<'_>) {
        if self.out.is_empty() {
            return;
        }
        if c.line == self.last.line {
            // A trailing comment is a new cell (`\t`), aligned with the comments of neighbouring lines; a
            // block comment followed by more code on its line just gets a space.
            // A closing bracket after a trailing comma starts a line (see `comment_suffix`), so a comment
            // before it ends the line and is written as the next run will see it.
            let next_starts_line = self.closer_break && self.ws.contains(&Ws::Formfeed);
            let sep = if c.line == next.line && !next_starts_line {
                b' '
            } else {
                b'\t'
            };
            self.write_byte(sep, 1);
        } else {
            // Apply leading indentation changes; cancel the first other request, write nothing else yet.
            let mut count = 0;
            for i in 0..self.ws.len() {
                match self.ws[i] {
                    Ws::Indent | Ws::Unindent => continue,
                    Ws::Blank | Ws::VTab | Ws::Newline | Ws::Formfeed => self.ws[i] = Ws::Ignore,
                    Ws::Ignore => {}
                }
                count = i;
                break;
            }
            self.write_ws(count);
            let newlines = if self.last.line > 0 {
                c.line - self.last.line
            } else {
                0
            };
            if newlines > 0 {
                self.write_byte(0x0C, newlines.min(MAX_NEWLINES) as usize);
            }
        }
    }

    /// Whitespace after the last comment written before a token at `next`.
    fn comment_suffix(&mut self, next: Pos, eof: bool, c: &CommentInfo<'_>, broke: bool) {
        if eof {
            return;
        }
        if c.is_block && next.line == c.end_line {
            self.write_byte(b' ', 1);
        }
        let newlines = next.line - self.last.line;
        let mut dropped_ff = false;
        for w in &mut self.ws {
            match *w {
                Ws::Blank | Ws::VTab | Ws::Newline => *w = Ws::Ignore,
                Ws::Formfeed => {
                    dropped_ff = true;
                    *w = Ws::Ignore;
                }
                Ws::Indent | Ws::Unindent | Ws::Ignore => {}
            }
        }
        self.write_ws(self.ws.len());
        if newlines > 0 {
            let ch = if dropped_ff { 0x0C } else { b'\n' };
            self.write_byte(ch, newlines.min(MAX_NEWLINES) as usize);
        } else if dropped_ff && self.closer_break && !broke {
            // Decision: a closing bracket after a trailing comma starts a line even when a comment on the
            // previous line's end was in the source right before it (the reference printed `x, /* c */ }`,
            // and a second run then dropped the comma).
            self.write_byte(0x0C, 1);
        }
    }

    /// Writes `text` whose source position is `at`, indenting first if it starts a line.
    fn write_text(&mut self, at: Pos, text: &str, how: TextKind) {
        if self.out_col == 1 {
            self.write_indent();
        }
        self.pos = at;
        match how {
            TextKind::Plain => self.out.extend_from_slice(text.as_bytes()),
            TextKind::Str => self.write_escaped_lines(text, false),
            TextKind::Comment => self.write_escaped_lines(text, true),
        }
        // Advance positions by the text as the reference holds it (tokens have no line breaks).
        let bytes = text.as_bytes();
        let mut newlines = 0i64;
        let mut last_nl = 0usize;
        if how != TextKind::Plain {
            for (i, &b) in bytes.iter().enumerate() {
                // Decision: only `\n` is a line break, as in the source. The reference also counted a
                // form feed inside a comment or string, then glued the next line's code onto it.
                if b == b'\n' {
                    newlines += 1;
                    last_nl = i;
                }
            }
        }
        self.pos.offset += bytes.len() as i64;
        self.breaks += newlines as u64;
        if newlines > 0 {
            self.pos.line += newlines;
            self.out_col = (bytes.len() - last_nl) as i64;
        } else {
            self.out_col += bytes.len() as i64;
        }
        self.last = self.pos;
    }

    /// Writes text literally. A string literal's raw newlines (and a `\r` before them) are written outside the
    /// escape so they still end layout lines as in the reference; a comment stays one escaped piece, with
    /// trailing blanks removed from its lines.
    fn write_escaped_lines(&mut self, text: &str, comment: bool) {
        self.out.push(ESC);
        let mut rest = text;
        loop {
            match rest.find('\n') {
                Some(i) => {
                    let mut line = &rest[..i];
                    // Every `\r` before the newline goes (a raw string's value drops them all), so that
                    // `\r\r\n` does not become `\r\n` and then `\n` on the next run.
                    line = line.trim_end_matches('\r');
                    if comment {
                        line = line.trim_end_matches([' ', '\t']);
                        self.out.extend_from_slice(line.as_bytes());
                        self.out.push(b'\n');
                    } else {
                        self.out.extend_from_slice(line.as_bytes());
                        self.out.push(ESC);
                        self.out.push(b'\n');
                        self.out.push(ESC);
                    }
                    rest = &rest[i + 1..];
                }
                None => {
                    if comment {
                        rest = rest.trim_end_matches([' ', '\t']);
                    }
                    self.out.extend_from_slice(rest.as_bytes());
                    break;
                }
            }
        }
        self.out.push(ESC);
    }

    fn write_indent(&mut self) {
        let depth = self.indent;
        self.out.resize(self.out.len() + depth, b'\t');
        self.pos.offset += depth as i64;
        self.out_col += depth as i64;
    }

    /// Writes a whitespace byte `n` times.
    fn write_byte(&mut self, ch: u8, n: usize) {
        if self.out_col == 1 {
            self.write_indent();
        }
        self.out.resize(self.out.len() + n, ch);
        self.pos.offset += n as i64;
        if ch == b'\n' || ch == 0x0C {
            self.pos.line += n as i64;
            self.breaks += n as u64;
            self.out_col = 1;
        } else {
            self.out_col += n as i64;
        }
    }

    /// Writes the first `n` pending whitespace requests.
    fn write_ws(&mut self, n: usize) {
        let n = n.min(self.ws.len());
        for i in 0..n {
            match self.ws[i] {
                Ws::Ignore => {}
                Ws::Indent => self.indent += 1,
                Ws::Unindent => self.indent = self.indent.saturating_sub(1),
                w => self.write_byte(w.byte(), 1),
            }
        }
        if n == self.ws.len() {
            self.ws.clear();
        } else {
            self.ws.drain(..n);
        }
    }

    // ---- the walk --------------------------------------------------------------------------------------

    fn stmts(&mut self, body: Body) {
        let mut prev: Option<&Stmt> = None;
        for stmt in self.file.stmts(body) {
            if let Some(prev) = prev {
                if matches!(stmt, Stmt::Block(_)) {
                    // Blocks are always preceded by a blank line.
                    self.space(Ws::Formfeed);
                } else if self.line(stmt.span().start as i64) - self.end_line(prev.span()) > 1 {
                    // Keep (one) blank line from the source.
                    self.space(Ws::Formfeed);
                }
            }
            let mark = self.mark();
            match stmt {
                Stmt::Attribute(a) => {
                    self.at(a.name.start);
                    self.ident(a.name.text(self.src));
                    self.space(Ws::VTab);
                    self.token("=");
                    self.space(Ws::Blank);
                    self.expr(&a.value);
                }
                Stmt::Block(b) => self.block(b),
            }
            // A statement printed over several lines ends the alignment run. (The reference looks at the
            // source lines, which differs only when a statement collapses to one line, e.g. `x = [\n]`, and
            // then made a second formatting change the output.)
            if self.printed_multi_line(mark) {
                self.space(Ws::Formfeed);
            } else {
                self.space(Ws::Newline);
            }
            prev = Some(stmt);
        }
    }

    fn block(&mut self, b: &Block) {
        // The name as written, unless spaces or comments sit between its parts.
        let written = b.name_span(self.file).text(self.src);
        let joined;
        let name = if written
            .bytes()
            .all(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'/'))
        {
            written
        } else {
            joined = b.name_string(self.file);
            joined.as_str()
        };
        // Decision: the joined name sits at its last part, so comments inside a name split over lines
        // (`a.\n// c\nb {`) are written before the block. The reference used the first part, which put
        // them between the name and `{` and printed a file that does not parse.
        self.at(b.name(self.file).last().map_or(b.span.start, |s| s.start));
        self.ident(name);
        if let Some(label) = b.label {
            self.space(Ws::Blank);
            self.at(label.start);
            self.ident(label.text(self.src));
        }
        self.space(Ws::Blank);
        self.at(b.lbrace);
        self.token("{");
        self.space(Ws::Indent);
        if b.body.is_empty() {
            self.space(Ws::Blank);
        } else {
            self.space(Ws::Formfeed);
            self.stmts(b.body);
        }
        self.space(Ws::Unindent);
        self.at(b.rbrace);
        self.token("}");
    }

    fn expr(&mut self, e: &Expr) {
        let file = self.file;
        match e.kind {
            ExprKind::Ident => {
                self.at(e.span.start);
                self.ident(e.span.text(self.src));
            }
            ExprKind::Literal(kind) => {
                self.at(e.span.start);
                self.literal(e.span.text(self.src), kind);
            }
            ExprKind::Array(items) => self.array(e.span, file.exprs(items)),
            ExprKind::Object(fields) => self.object(e.span, file.fields(fields)),
            ExprKind::Access(value, name) => {
                let value = file.expr(value);
                self.expr(value);
                // The reference estimates where `.` and the name are, which moves a comment inside a chain
                // further right on every run; with a comment there, use the real positions.
                let exact = self.comment_between(value.span.end, name.start);
                if exact {
                    let dot = self.token_after(value.span.end);
                    self.at(dot);
                }
                self.token(".");
                if exact {
                    self.at(name.start);
                }
                self.ident(name.text(self.src));
            }
            ExprKind::Index(value, index) => {
                let (value, index) = (file.expr(value), file.expr(index));
                self.expr(value);
                let lbrack = self.token_after(value.span.end);
                self.at(lbrack);
                self.token("[");
                self.expr(index);
                self.at(e.span.end.saturating_sub(1));
                self.token("]");
            }
            ExprKind::Call(call) => self.call(e.span, file.expr(call.func), file.exprs(call.args)),
            ExprKind::Unary(op, value) => {
                self.at(e.span.start);
                self.token(op.as_str());
                self.expr(file.expr(value));
            }
            ExprKind::Binary(op, left, right) => {
                let (left, right) = (file.expr(left), file.expr(right));
                self.expr(left);
                self.space(Ws::Blank);
                let op_at = self.token_after(left.span.end);
                self.at(op_at);
                self.token(op.as_str());
                self.space(Ws::Blank);
                self.expr(right);
            }
            ExprKind::Paren(inner) => {
                // Without its own position a comment before `(` would be written after it, and move again
                // on the next run.
                self.at(e.span.start);
                self.token("(");
                let inner = file.expr(inner);
                self.expr(inner);
                // As for `.`: the estimated position of `)` makes a comment before it unstable.
                let rparen = e.span.end.saturating_sub(1);
                if self.comment_between(inner.span.end, rparen) {
                    self.at(rparen);
                }
                self.token(")");
            }
        }
    }

    /// Whether two offsets are on different source lines.
    fn different_lines(&self, a: i64, b: i64) -> bool {
        self.line(a) != self.line(b)
    }

    fn array(&mut self, span: Span, items: &[Expr]) {
        let rbrack = span.end.saturating_sub(1);
        self.at(span.start);
        self.token("[");
        let mut prev = span.start as i64;
        for (i, item) in items.iter().enumerate() {
            let own_line = self.different_lines(prev, item.span.start as i64);
            if own_line {
                // Indent before the line break so that comments before the item are indented too.
                self.space(Ws::Indent);
                self.space(Ws::Formfeed);
            } else if i > 0 {
                self.space(Ws::Blank);
            }
            prev = item.span.end as i64 - 1;
            self.expr(item);
            if i + 1 < items.len() {
                self.token(",");
            }
            if own_line {
                self.space(Ws::Unindent);
            }
        }
        if !items.is_empty() && self.different_lines(prev, rbrack as i64) {
            self.token(",");
            self.space(Ws::Indent);
            self.space(Ws::Formfeed);
            self.space(Ws::Unindent);
            self.closer_break = true;
        }
        self.at(rbrack);
        self.token("]");
        self.closer_break = false;
    }

    fn object(&mut self, span: Span, fields: &[ObjectField]) {
        let rcurly = span.end.saturating_sub(1);
        self.at(span.start);
        self.token("{");
        self.space(Ws::Indent);
        let mut prev = span.start as i64;
        let mut prev_multi_line: Option<bool> = None;
        for (i, field) in fields.iter().enumerate() {
            if self.different_lines(prev, field.key.start as i64) {
                // Align `=` with the previous field unless that one's value printed over several lines.
                let aligned = prev_multi_line == Some(false);
                self.space(if aligned { Ws::Newline } else { Ws::Formfeed });
            } else if i > 0 {
                self.space(Ws::Blank);
            }
            // The reference measures from the end of the key's name (without quotes for a quoted key).
            prev = if field.quoted {
                field.key.start as i64 + field.key.len() as i64 - 3
            } else {
                field.key.end as i64 - 1
            };
            self.at(field.key.start);
            let key = field.key.text(self.src);
            if field.quoted {
                self.literal(key, LitKind::String);
            } else {
                self.ident(key);
            }
            self.space(Ws::VTab);
            self.token("=");
            self.space(Ws::Blank);
            let mark = self.mark();
            self.expr(&field.value);
            prev_multi_line = Some(self.printed_multi_line(mark));
            if i + 1 < fields.len() {
                self.token(",");
            }
        }
        if !fields.is_empty() && self.different_lines(prev, rcurly as i64) {
            self.token(",");
            self.space(Ws::Formfeed);
            self.closer_break = true;
        }
        self.space(Ws::Unindent);
        self.at(rcurly);
        self.token("}");
        self.closer_break = false;
    }

    fn call(&mut self, span: Span, callee: &Expr, args: &[Expr]) {
        let rparen = span.end.saturating_sub(1) as i64;
        self.expr(callee);
        self.token("(");
        let mut prev = self.token_after(callee.span.end) as i64;
        for (i, arg) in args.iter().enumerate() {
            let own_line = self.different_lines(prev, arg.span.start as i64);
            if own_line {
                self.space(Ws::Formfeed);
                self.space(Ws::Indent);
            }
            self.expr(arg);
            prev = arg.span.end as i64 - 1;
            if i + 1 < args.len() {
                self.token(",");
                self.space(Ws::Blank);
            }
            if own_line {
                self.space(Ws::Unindent);
            }
        }
        // Decision: no trailing comma without arguments (the reference printed `f(,)`).
        if !args.is_empty() && self.different_lines(prev, rparen) {
            self.token(",");
            // Indented like the arguments, for comments before `)` (as the reference does before `]`).
            self.space(Ws::Indent);
            self.space(Ws::Formfeed);
            self.space(Ws::Unindent);
            self.closer_break = true;
        }
        // Decision: `)` has its source position, so comments before it stay inside the call. The reference
        // estimated it from the last argument, moved such comments after the call, and a second run then
        // added a blank line before them.
        self.at(rparen as u32);
        self.token(")");
        self.closer_break = false;
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;
    use crate::span::LineIndex;

    #[test]
    fn line_cursor_agrees_with_the_line_index_in_any_query_order() {
        let src = "a\n\nbb\nccc\n\n\n\nd\ne\n".repeat(40);
        let index = LineIndex::new(&src);
        let lines = Lines::new(&src);
        let mut x: u64 = 7;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = (x % (src.len() as u64 + 3)) as i64;
            let expect = index.line_of(off.min(src.len() as i64) as u32) as i64 + 1;
            assert_eq!(lines.line(off), expect, "offset {off}");
        }
        assert_eq!(lines.line(-5), 1);
    }
}
