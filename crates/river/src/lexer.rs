//! The lexer: source text → [`Token`]s, with Go-style terminator insertion.
//!
//! A newline (or the end of input, or a comment running to the end of the line) ends a statement only right
//! after an identifier, literal, `)`, `]` or `}`. Comments are recorded on the side for the formatter.
//! Lexical errors are reported with the reference implementation's messages and positions.

use crate::ast::{Comment, CommentKind};
use crate::diag::Diagnostic;
use crate::span::Span;
use crate::token::{Tok, Token};
use nom::bytes::complete::take_while;
use nom::character::complete::digit0;
use nom::IResult;

/// The UTF-8 byte order mark.
const BOM: &str = "\u{FEFF}";

/// Splits a River source into tokens.
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    insert_term: bool,
    /// Lexical errors found so far, in source order.
    pub diags: Vec<Diagnostic>,
    /// Comments found so far, in source order.
    pub comments: Vec<Comment>,
}

/// Byte classes for the hot scanning loops (one table lookup per byte instead of several comparisons).
const IDENT: u8 = 1;
/// Bytes a double-quoted string loop must stop at: `"`, `'`, `\\`, newline, NUL and 0xEF (a possible BOM).
const STR_STOP: u8 = 2;
/// Blanks skipped between tokens (a newline is handled separately: it may be a terminator).
const BLANK: u8 = 4;
/// A newline: skipped like a blank unless a terminator is due.
const NEWLINE: u8 = 8;
/// An ASCII byte that starts an identifier: a letter or `_`.
const IDENT_START: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[b] |= IDENT;
        }
        if matches!(c, b'"' | b'\'' | b'\\' | b'\n' | 0 | 0xEF) {
            t[b] |= STR_STOP;
        }
        if matches!(c, b' ' | b'\t' | b'\r') {
            t[b] |= BLANK;
        }
        if c == b'\n' {
            t[b] |= NEWLINE;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            t[b] |= IDENT_START;
        }
        b += 1;
    }
    t
};

/// The token of each byte that is a whole token by itself whatever follows it (`=` is one unless `=`
/// follows), with whether a terminator may follow it; `None` for every other byte.
static SINGLE: [Option<(Tok, bool)>; 256] = {
    let mut t = [None; 256];
    t[b'{' as usize] = Some((Tok::LCurly, false));
    t[b'}' as usize] = Some((Tok::RCurly, true));
    t[b'(' as usize] = Some((Tok::LParen, false));
    t[b')' as usize] = Some((Tok::RParen, true));
    t[b'[' as usize] = Some((Tok::LBrack, false));
    t[b']' as usize] = Some((Tok::RBrack, true));
    t[b',' as usize] = Some((Tok::Comma, false));
    t[b'+' as usize] = Some((Tok::Add, false));
    t[b'-' as usize] = Some((Tok::Sub, false));
    t[b'*' as usize] = Some((Tok::Mul, false));
    t[b'%' as usize] = Some((Tok::Mod, false));
    t[b'^' as usize] = Some((Tok::Pow, false));
    t[b'=' as usize] = Some((Tok::Assign, false));
    t
};

/// The token of an identifier-shaped word: a keyword (`true`, `false`, `null`) or an identifier.
#[inline(always)]
fn word_kind(word: &[u8]) -> Tok {
    // Only 4- and 5-byte words can be keywords: most identifiers skip the comparisons.
    match word.len() {
        4 | 5 => match word {
            b"true" | b"false" => Tok::Bool,
            b"null" => Tok::Null,
            _ => Tok::Ident,
        },
        _ => Tok::Ident,
    }
}

/// The index of the first byte at or after `i` whose class has none of `class`'s bits (or `bytes.len()`).
#[inline(always)]
fn skip_class(bytes: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        if CLASS[b as usize] & class == 0 {
            return i;
        }
        i += 1;
    }
    i
}

/// The index of the first byte at or after `i` whose class has any of `class`'s bits (or `bytes.len()`).
#[inline(always)]
fn find_class(bytes: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        if CLASS[b as usize] & class != 0 {
            return i;
        }
        i += 1;
    }
    i
}

/// Eight bytes at a time for the string scanning loop (SWAR): the helper maps a little-endian word of source
/// bytes to a mask with the high bit of each byte set where that byte has the property. Only the lowest
/// set bit is ever used (the number of bytes before the first match), so the borrow trick's false
/// positives above a real match do not matter.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in (at least the first of) the bytes of `w` that may stop a double-quoted string scan: a
/// control byte, a non-ASCII byte, `"`, `'` or `\` (a superset of [`STR_STOP`]).
#[inline(always)]
fn string_stop_mask(w: u64) -> u64 {
    let eq = |v: u8| {
        let x = w ^ (ONES * v as u64);
        x.wrapping_sub(ONES) & !x
    };
    (w.wrapping_sub(ONES * 0x20) & !w) | eq(b'"') | eq(b'\\') | eq(b'\'') | w
}

/// The eight bytes at `i` as a little-endian word, if there are eight.
#[inline(always)]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk = bytes.get(i..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*chunk))
}

/// The index of the first byte at or after `i` in [`STR_STOP`] (or `bytes.len()`).
#[inline(always)]
fn find_string_stop(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word_at(bytes, i) {
        let stop = string_stop_mask(w) & HIGH;
        if stop != 0 {
            // A candidate: the byte-class loop settles it (and skips candidates not in the class).
            i += (stop.trailing_zeros() / 8) as usize;
            match bytes.get(i) {
                Some(&b) if CLASS[b as usize] & STR_STOP != 0 => return i,
                _ => {
                    i += 1;
                    continue;
                }
            }
        }
        i += 8;
    }
    find_class(bytes, i, STR_STOP)
}

/// The offset of the first `*/` at or after `from` (`str::find` with a one-byte pattern is a memchr scan,
/// cheaper on short comments than a substring search).
fn find_block_comment_end(src: &str, mut from: usize) -> Option<usize> {
    loop {
        let star = from + src.get(from..)?.find('*')?;
        if src.as_bytes().get(star + 1) == Some(&b'/') {
            return Some(star);
        }
        from = star + 1;
    }
}

fn span(start: usize, end: usize) -> Span {
    Span::new(start as u32, end as u32)
}

/// Go's `%#U` rendering of a character: `U+0023 '#'`, or just `U+0007` when not printable.
pub(crate) fn describe_char(c: char) -> String {
    if c.is_control() || c == '\u{FEFF}' {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{}'", c as u32, c)
    }
}

/// Whether `c` may start an identifier: a Unicode letter or `_`.
pub fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && c.is_alphabetic())
}

/// Whether `c` may continue an identifier: a letter, a Unicode digit or `_`.
pub fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || (!c.is_ascii() && (c.is_alphabetic() || c.is_numeric()))
}

/// Whether `s` is a valid identifier (used to check block labels).
pub fn is_valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if is_ident_start(c)) && chars.all(is_ident_continue)
}

/// The identifier at the start of `input` (whose first character is a valid start), any characters.
fn unicode_ident_tail(input: &str) -> IResult<&str, &str> {
    let first = input.chars().next().map_or(0, char::len_utf8);
    let (rest, tail) = take_while(is_ident_continue)(&input[first..])?;
    Ok((rest, &input[..first + tail.len()]))
}

fn digits(input: &str) -> IResult<&str, &str> {
    digit0(input)
}

/// Length of the number literal at the start of `input` (which starts with a digit or `.digit`), its kind,
/// and whether it has an exponent marker without digits.
fn scan_number(input: &str) -> (usize, Tok, bool) {
    let mut tok = Tok::Number;
    let mut rest = input;
    if !rest.starts_with('.') {
        rest = digits(rest).map(|(r, _)| r).unwrap_or(rest);
    }
    if let Some(r) = rest.strip_prefix('.') {
        tok = Tok::Float;
        rest = digits(r).map(|(r, _)| r).unwrap_or(r);
    }
    let mut bad_exponent = false;
    if let Some(r) = rest.strip_prefix(['e', 'E']) {
        tok = Tok::Float;
        let r = r.strip_prefix(['+', '-']).unwrap_or(r);
        let (r, ds) = digits(r).unwrap_or((r, ""));
        bad_exponent = ds.is_empty();
        rest = r;
    }
    (input.len() - rest.len(), tok, bad_exponent)
}

impl<'a> Lexer<'a> {
    /// A lexer over `src`. A leading byte order mark is skipped.
    pub fn new(src: &'a str) -> Self {
        let pos = if src.starts_with(BOM) { BOM.len() } else { 0 };
        Lexer {
            src,
            pos,
            insert_term: false,
            diags: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// Skips the rest of the input: from now on only [`Tok::Eof`] at the end of the input is returned.
    pub(crate) fn stop(&mut self) {
        self.pos = self.src.len();
        self.insert_term = false;
    }

    /// The source being scanned.
    pub fn source(&self) -> &'a str {
        self.src
    }

    #[inline(never)]
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(span(offset, offset + 1), message));
    }

    fn peek_byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn char_at(&self, at: usize) -> Option<char> {
        self.src.get(at..).and_then(|s| s.chars().next())
    }

    /// Scans the next token. After [`Tok::Eof`] it keeps returning `Eof`.
    ///
    /// The common tokens (ASCII identifiers and keywords, single-byte punctuation) are scanned here, inlined
    /// into the caller; everything else (and every error) goes through [`Self::next_token_slow`].
    #[inline(always)]
    pub fn next_token(&mut self) -> Token {
        let bytes = self.src.as_bytes();
        let blanks = if self.insert_term {
            BLANK
        } else {
            BLANK | NEWLINE
        };
        let start = skip_class(bytes, self.pos, blanks);
        self.pos = start;
        if let Some(&b) = bytes.get(start) {
            if CLASS[b as usize] & IDENT_START != 0 {
                let end = skip_class(bytes, start + 1, IDENT);
                if bytes.get(end).is_none_or(|&c| c < 0x80) {
                    self.pos = end;
                    self.insert_term = true;
                    let kind = word_kind(&bytes[start..end]);
                    return Token {
                        kind,
                        span: span(start, end),
                    };
                }
            } else if let Some((kind, insert)) = SINGLE[b as usize] {
                if b != b'=' || bytes.get(start + 1) != Some(&b'=') {
                    self.pos = start + 1;
                    self.insert_term = insert;
                    return Token {
                        kind,
                        span: span(start, start + 1),
                    };
                }
            } else {
                match b {
                    b'"' => {
                        self.scan_string(start, b'"');
                        self.insert_term = true;
                        return Token {
                            kind: Tok::String,
                            span: span(start, self.pos),
                        };
                    }
                    // Only reachable when a terminator is due; blank skipping ate the other newlines.
                    b'\n' => {
                        self.pos = start + 1;
                        self.insert_term = false;
                        return Token {
                            kind: Tok::Terminator,
                            span: span(start, start + 1),
                        };
                    }
                    b'.' if !matches!(bytes.get(start + 1), Some(b'0'..=b'9')) => {
                        self.pos = start + 1;
                        self.insert_term = false;
                        return Token {
                            kind: Tok::Dot,
                            span: span(start, start + 1),
                        };
                    }
                    _ => {}
                }
            }
        }
        self.next_token_slow()
    }

    /// [`Self::next_token`] for every token.
    #[inline(never)]
    fn next_token_slow(&mut self) -> Token {
        loop {
            let bytes = self.src.as_bytes();
            // Newlines are blanks too unless a terminator is due.
            let blanks = if self.insert_term {
                BLANK
            } else {
                BLANK | NEWLINE
            };
            self.pos = skip_class(bytes, self.pos, blanks);
            let start = self.pos;
            let Some(&b) = bytes.get(start) else {
                if std::mem::take(&mut self.insert_term) {
                    return Token {
                        kind: Tok::Terminator,
                        span: span(start, start),
                    };
                }
                return Token {
                    kind: Tok::Eof,
                    span: span(start, start),
                };
            };
            let mut insert = false;
            let kind = match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    insert = true;
                    self.scan_identifier(start)
                }
                b'0'..=b'9' => {
                    insert = true;
                    self.scan_number_token(start)
                }
                b'.' if matches!(self.peek_byte(start + 1), Some(b'0'..=b'9')) => {
                    insert = true;
                    self.scan_number_token(start)
                }
                b'\n' => {
                    // Only reachable when a terminator is due; whitespace skipping ate the other newlines.
                    self.pos += 1;
                    self.insert_term = false;
                    return Token {
                        kind: Tok::Terminator,
                        span: span(start, start + 1),
                    };
                }
                b'"' => {
                    insert = true;
                    self.scan_string(start, b'"');
                    Tok::String
                }
                b'`' => {
                    insert = true;
                    self.scan_raw_string(start);
                    Tok::String
                }
                b'\'' => {
                    self.error(start, "illegal single-quoted string; use double quotes");
                    insert = true;
                    self.scan_string(start, b'\'');
                    Tok::Illegal
                }
                b'/' if matches!(self.peek_byte(start + 1), Some(b'/' | b'*')) => {
                    if self.insert_term && self.comment_ends_line(start) {
                        // The terminator comes first; the comment is scanned on the next call.
                        self.insert_term = false;
                        return Token {
                            kind: Tok::Terminator,
                            span: span(start, start),
                        };
                    }
                    self.scan_comment(start);
                    self.insert_term = false;
                    continue;
                }
                0 => {
                    self.pos += 1;
                    self.error(start, "illegal character NUL");
                    insert = self.insert_term;
                    Tok::Illegal
                }
                b if b < 0x80 => {
                    self.pos += 1;
                    self.scan_operator(start, b, &mut insert)
                }
                _ => {
                    let c = self.char_at(start).unwrap_or('\u{FFFD}');
                    if is_ident_start(c) {
                        insert = true;
                        self.scan_identifier(start)
                    } else {
                        self.pos += c.len_utf8();
                        if c == '\u{FEFF}' {
                            self.error(start, "illegal byte order mark");
                        } else {
                            self.error(start, format!("illegal character {}", describe_char(c)));
                        }
                        insert = self.insert_term;
                        Tok::Illegal
                    }
                }
            };
            self.insert_term = insert;
            return Token {
                kind,
                span: span(start, self.pos),
            };
        }
    }

    fn scan_operator(&mut self, start: usize, b: u8, insert: &mut bool) -> Tok {
        let next = self.peek_byte(self.pos);
        let two = |lexer: &mut Self, one: Tok, second: u8, both: Tok| {
            if next == Some(second) {
                lexer.pos += 1;
                both
            } else {
                one
            }
        };
        match b {
            b'|' | b'&' => {
                let (tok, msg) = if b == b'|' {
                    (Tok::Or, "missing second | in ||")
                } else {
                    (Tok::And, "missing second & in &&")
                };
                if next == Some(b) {
                    self.pos += 1;
                } else {
                    self.error(self.pos, msg);
                }
                tok
            }
            b'!' => two(self, Tok::Not, b'=', Tok::Neq),
            b'=' => two(self, Tok::Assign, b'=', Tok::Eq),
            b'<' => two(self, Tok::Lt, b'=', Tok::Lte),
            b'>' => two(self, Tok::Gt, b'=', Tok::Gte),
            b'+' => Tok::Add,
            b'-' => Tok::Sub,
            b'*' => Tok::Mul,
            b'/' => Tok::Div,
            b'%' => Tok::Mod,
            b'^' => Tok::Pow,
            b'{' => Tok::LCurly,
            b'}' => {
                *insert = true;
                Tok::RCurly
            }
            b'(' => Tok::LParen,
            b')' => {
                *insert = true;
                Tok::RParen
            }
            b'[' => Tok::LBrack,
            b']' => {
                *insert = true;
                Tok::RBrack
            }
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            _ => {
                self.error(
                    start,
                    format!("illegal character {}", describe_char(b as char)),
                );
                *insert = self.insert_term;
                Tok::Illegal
            }
        }
    }

    #[inline(always)]
    fn scan_identifier(&mut self, start: usize) -> Tok {
        let bytes = self.src.as_bytes();
        // ASCII fast path; the first character is known to be a valid start.
        let mut end = skip_class(bytes, start + 1, IDENT);
        if bytes.get(end).is_some_and(|b| *b >= 0x80)
            || bytes.get(start).is_some_and(|b| *b >= 0x80)
        {
            end = self.scan_unicode_identifier(start);
        }
        self.pos = end;
        word_kind(&bytes[start..end])
    }

    #[cold]
    #[inline(never)]
    fn scan_unicode_identifier(&self, start: usize) -> usize {
        let rest = &self.src[start..];
        let (after, _) = unicode_ident_tail(rest).unwrap_or((rest, ""));
        self.src.len() - after.len()
    }

    fn scan_number_token(&mut self, start: usize) -> Tok {
        let (len, tok, bad_exponent) = scan_number(&self.src[start..]);
        self.pos = start + len;
        if bad_exponent {
            self.error(start, "exponent has no digits");
        }
        tok
    }

    /// Reports a NUL byte or a stray BOM at `at`, if there is one; returns true when there was.
    #[inline(never)]
    fn check_bad_byte(&mut self, at: usize) -> bool {
        let bytes = self.src.as_bytes();
        match bytes.get(at) {
            Some(0) => {
                self.error(at, "illegal character NUL");
                true
            }
            Some(0xEF) if self.src[at..].starts_with(BOM) => {
                self.error(at, "illegal byte order mark");
                true
            }
            _ => false,
        }
    }

    fn scan_string(&mut self, start: usize, quote: u8) {
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            i = find_string_stop(bytes, i);
            match bytes.get(i) {
                None | Some(b'\n') => {
                    self.error(start, "string literal not terminated");
                    break;
                }
                Some(&b) if b == quote => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    i = self.scan_escape(i + 1);
                }
                Some(0 | 0xEF) => {
                    self.check_bad_byte(i);
                    i += if bytes[i] == 0 {
                        1
                    } else {
                        self.char_at(i).map_or(1, char::len_utf8)
                    };
                }
                Some(_) => i += 1,
            }
        }
        self.pos = i;
    }

    /// Validates the escape whose first character (after `\`) is at `at`; returns where scanning resumes.
    /// On an error it stops at the offending character without consuming it, like the reference.
    #[inline(never)]
    fn scan_escape(&mut self, at: usize) -> usize {
        let bytes = self.src.as_bytes();
        let (mut n, base, max, mut i) = match bytes.get(at) {
            Some(b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'"' | b'\'') => {
                return at + 1
            }
            Some(b'0'..=b'7') => (3, 8, 255u32, at),
            Some(b'x') => (2, 16, 255, at + 1),
            Some(b'u') => (4, 16, 0x10FFFF, at + 1),
            Some(b'U') => (8, 16, 0x10FFFF, at + 1),
            None => {
                self.error(at, "escape sequence not terminated");
                return at;
            }
            Some(_) => {
                self.error(at, "unknown escape sequence");
                return at;
            }
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = match bytes.get(i) {
                Some(&c) => (c as char).to_digit(16).filter(|&d| d < base),
                None => {
                    self.error(at, "escape sequence not terminated");
                    return i;
                }
            };
            let Some(d) = d else {
                let c = self.char_at(i).unwrap_or('\u{FFFD}');
                self.error(
                    at,
                    format!("illegal character {} in escape sequence", describe_char(c)),
                );
                return i;
            };
            x = x.saturating_mul(base).saturating_add(d);
            i += 1;
            n -= 1;
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            self.error(at, "escape sequence is invalid Unicode code point");
        }
        i
    }

    #[inline(never)]
    fn scan_raw_string(&mut self, start: usize) {
        match self.src[start + 1..].find('`') {
            Some(rel) => {
                let end = start + 1 + rel + 1;
                let body = &self.src[start + 1..end - 1];
                if body.bytes().any(|b| b == 0 || b == 0xEF) {
                    for i in start + 1..end - 1 {
                        self.check_bad_byte(i);
                    }
                }
                self.pos = end;
            }
            None => {
                self.error(start, "string literal not terminated");
                self.pos = self.src.len();
            }
        }
    }

    #[inline(never)]
    fn scan_comment(&mut self, start: usize) {
        let bytes = self.src.as_bytes();
        let (end, kind) = if bytes.get(start + 1) == Some(&b'/') {
            let end = self.src[start..]
                .find('\n')
                .map_or(self.src.len(), |i| start + i);
            (end, CommentKind::Line)
        } else {
            match find_block_comment_end(self.src, start + 2) {
                Some(i) => (i + 2, CommentKind::Block),
                None => {
                    self.error(start, "block comment not terminated");
                    (self.src.len(), CommentKind::Block)
                }
            }
        };
        // `contains` on bytes is a fast memchr scan; the byte-by-byte check only runs when one is found.
        let text = &bytes[start..end];
        if text.contains(&0) || text.contains(&0xEF) {
            for i in start..end {
                self.check_bad_byte(i);
            }
        }
        self.pos = end;
        // A line comment's text excludes a Windows line ending's `\r`.
        let text_end =
            if kind == CommentKind::Line && bytes.get(end.wrapping_sub(1)) == Some(&b'\r') {
                end - 1
            } else {
                end
            };
        self.comments.push(Comment {
            span: span(start, text_end),
            kind,
        });
    }

    /// Whether the comment starting at `start`, and any comments after it on the same line, run to the end
    /// of the line (or of the input), so that a due terminator can be inserted before them.
    #[inline(never)]
    fn comment_ends_line(&self, start: usize) -> bool {
        let bytes = self.src.as_bytes();
        let mut i = start;
        loop {
            // `i` is at a '/' that starts a comment.
            match bytes.get(i + 1) {
                Some(b'/') => return true,
                Some(b'*') => {}
                _ => return false,
            }
            let body_start = i + 2;
            let Some(rel) = find_block_comment_end(self.src, body_start).map(|e| e - body_start)
            else {
                return true; // unterminated: runs to the end of input
            };
            if self.src[body_start..body_start + rel].contains('\n') {
                return true;
            }
            i = body_start + rel + 2;
            while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r')) {
                i += 1;
            }
            match bytes.get(i) {
                None | Some(b'\n') => return true,
                Some(b'/') => {}
                Some(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        let mut l = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = l.next_token();
            out.push(t.kind);
            if t.kind == Tok::Eof {
                return out;
            }
        }
    }

    #[test]
    fn terminators_follow_value_tokens_only() {
        use Tok::*;
        assert_eq!(
            kinds("a = 1\n"),
            vec![Ident, Assign, Number, Terminator, Eof]
        );
        assert_eq!(
            kinds("a = [\n1,\n]"),
            vec![Ident, Assign, LBrack, Number, Comma, RBrack, Terminator, Eof]
        );
        assert_eq!(
            kinds("a // c\nb"),
            vec![Ident, Terminator, Ident, Terminator, Eof]
        );
        assert_eq!(kinds("a /* c */ b"), vec![Ident, Ident, Terminator, Eof]);
        assert_eq!(
            kinds("a /* c */ /* d */\nb"),
            vec![Ident, Terminator, Ident, Terminator, Eof]
        );
        assert_eq!(
            kinds("x = 1.5e3 .5 10"),
            vec![Ident, Assign, Float, Float, Number, Terminator, Eof]
        );
    }

    #[test]
    fn comments_are_recorded() {
        let mut l = Lexer::new("a // one\r\n/* two */");
        while l.next_token().kind != Tok::Eof {}
        let texts: Vec<_> = l
            .comments
            .iter()
            .map(|c| c.span.text("a // one\r\n/* two */"))
            .collect();
        assert_eq!(texts, vec!["// one", "/* two */"]);
    }

    #[test]
    fn lexical_errors_have_reference_messages() {
        let cases = [
            ("\"abc", "string literal not terminated", 0),
            ("\"a\\qb\"", "unknown escape sequence", 3),
            (
                "\"\\x4\"",
                "illegal character U+0022 '\"' in escape sequence",
                2,
            ),
            (
                "\"\\uD800\"",
                "escape sequence is invalid Unicode code point",
                2,
            ),
            (
                "\"\\400\"",
                "escape sequence is invalid Unicode code point",
                2,
            ),
            ("1e", "exponent has no digits", 0),
            ("#", "illegal character U+0023 '#'", 0),
            ("'a'", "illegal single-quoted string; use double quotes", 0),
            ("a | b", "missing second | in ||", 3),
            ("/* x", "block comment not terminated", 0),
            ("a\u{FEFF}", "illegal byte order mark", 1),
        ];
        for (src, msg, at) in cases {
            let mut l = Lexer::new(src);
            while l.next_token().kind != Tok::Eof {}
            let d = l
                .diags
                .first()
                .unwrap_or_else(|| panic!("no error for {src:?}"));
            assert_eq!((d.message.as_str(), d.span.start), (msg, at), "for {src:?}");
        }
    }

    #[test]
    fn accepts_single_quote_escape_and_bom() {
        let mut l = Lexer::new("\u{FEFF}a = \"it\\'s\"");
        while l.next_token().kind != Tok::Eof {}
        assert!(l.diags.is_empty(), "{:?}", l.diags);
    }
}
