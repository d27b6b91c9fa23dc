//! Regular expressions with Go (RE2) semantics on top of the `regex` crate, anchored the way Prometheus
//! anchors relabelling regexes, and Go's `Regexp.Expand` template expansion.
//!
//! The `regex` crate and Go's `regexp` share RE2's syntax and leftmost-first matching; the differences that
//! would change what a pasted rule matches are translated away before compiling:
//! - `\d`, `\w`, `\s` (and `\D`, `\W`, `\S`, `\b`, `\B`) are ASCII-only in Go, Unicode-aware in the crate;
//! - `\Q...\E` quotes literal text in Go, and is unknown to the crate;
//! - inside a character class, `[` (not starting `[:name:]`), `&` and `~` are plain characters in Go, while
//!   the crate reads them as nested classes and set operators.
//!
//! Octal escapes (`\12`) are accepted, as in Go.

use crate::backtrack::{Backtrack, MAX_TEXT};
use crate::fast::Fast;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A relabelling regex: the pattern as written, compiled as Prometheus does, `^(?s:PATTERN)$` (fully anchored;
/// `.` matches a newline too).
#[derive(Clone)]
pub struct Regexp {
    source: String,
    re: regex::Regex,
    /// The same pattern as a list of literal alternatives, when it is that simple (most rules).
    fast: Option<Fast>,
    /// For finding groups in ASCII text, when the pattern is not fast but simple enough (see
    /// [`crate::backtrack`]).
    bt: Option<Backtrack>,
}

/// Where the groups of the last [`Regexp::captures_read`] are.
#[derive(Clone, Debug)]
pub struct Locations {
    slow: regex::CaptureLocations,
    /// For `Regexp::bt`; `bt_used` says whether it holds the last match (else `slow` does).
    bt: Option<crate::backtrack::Scratch>,
    bt_used: bool,
    /// The fast alternative that matched, when the fast matcher was used.
    alt: usize,
    /// Length of the text that matched.
    len: usize,
}

/// Why a pattern did not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid regex {pattern:?}: {reason}")]
pub struct RegexError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The default relabelling regex, `(.*)`.
pub const DEFAULT_REGEX: &str = "(.*)";

/// The parts between the anchors of `^(?s:PATTERN)$` as parsed, for the matchers that take the pattern
/// apart ([`Fast`], [`Backtrack`]); `None` if the parse has another shape.
fn anchored_body(hir: &regex_syntax::hir::Hir) -> Option<&[regex_syntax::hir::Hir]> {
    use regex_syntax::hir::{HirKind, Look};
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let (first, rest) = parts.split_first()?;
    let (last, middle) = rest.split_last()?;
    if *first.kind() != HirKind::Look(Look::Start) || *last.kind() != HirKind::Look(Look::End) {
        return None;
    }
    Some(middle)
}

impl Regexp {
    /// Compiles `pattern` anchored, with Go semantics.
    pub fn new(pattern: &str) -> Result<Regexp, RegexError> {
        let wrapped = format!("^(?s:{})$", go_to_rust(pattern));
        let err = |reason: String| RegexError {
            pattern: pattern.to_string(),
            reason,
        };
        // Parse first for a one-line reason (the compile error repeats the translated pattern over lines).
        let hir = match regex_syntax::ParserBuilder::new()
            .octal(true)
            .build()
            .parse(&wrapped)
        {
            Ok(hir) => hir,
            Err(e) => {
                let reason = match &e {
                    regex_syntax::Error::Parse(e) => e.kind().to_string(),
                    regex_syntax::Error::Translate(e) => e.kind().to_string(),
                    other => other.to_string(),
                };
                return Err(err(reason));
            }
        };
        let re = regex::RegexBuilder::new(&wrapped)
            .octal(true)
            .build()
            .map_err(|e| err(e.to_string().replace('\n', " ")))?;
        let body = anchored_body(&hir);
        let fast = body.and_then(Fast::new);
        let bt = match (&fast, body) {
            (None, Some(body)) => Backtrack::new(body, re.captures_len()),
            _ => None,
        };
        Ok(Regexp {
            source: pattern.to_string(),
            re,
            fast,
            bt,
        })
    }

    /// The default, `(.*)`.
    pub fn default_regex() -> Regexp {
        // The default pattern is a constant that compiles.
        Regexp::new(DEFAULT_REGEX).unwrap_or_else(|_| unreachable!("the default regex compiles"))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.fast {
            Some(f) => f.find(text).is_some(),
            None => self.re.is_match(text),
        }
    }

    /// Room for the groups of this regex, for [`Regexp::captures_read`].
    pub fn locations(&self) -> Locations {
        Locations {
            slow: self.re.capture_locations(),
            bt: self.bt.as_ref().map(Backtrack::scratch),
            bt_used: false,
            alt: 0,
            len: 0,
        }
    }

    /// Matches all of `text`, recording where the groups are in `locs`. False when it does not match.
    pub fn captures_read(&self, locs: &mut Locations, text: &str) -> bool {
        match &self.fast {
            Some(f) => match f.find(text) {
                Some(alt) => {
                    locs.alt = alt;
                    locs.len = text.len();
                    true
                }
                None => false,
            },
            None => {
                if let (Some(bt), Some(scratch)) = (&self.bt, &mut locs.bt) {
                    if text.len() <= MAX_TEXT && text.is_ascii() {
                        locs.bt_used = true;
                        return bt.captures(text.as_bytes(), scratch);
                    }
                }
                locs.bt_used = false;
                self.re.captures_read(&mut locs.slow, text).is_some()
            }
        }
    }

    /// Where group `g` of the last successful [`Regexp::captures_read`] is.
    fn span(&self, locs: &Locations, g: usize) -> Option<(usize, usize)> {
        match (&self.fast, &locs.bt) {
            (Some(f), _) => f.group(locs.alt, locs.len, g),
            (None, Some(bt)) if locs.bt_used => {
                match (bt.slots.get(2 * g), bt.slots.get(2 * g + 1)) {
                    (Some(&s), Some(&e)) if s != usize::MAX && e != usize::MAX => Some((s, e)),
                    _ => None,
                }
            }
            (None, _) => locs.slow.get(g),
        }
    }

    /// Appends `template` expanded with the groups of the last successful [`Regexp::captures_read`] of `src`
    /// (Go's `Regexp.ExpandString`; see [`expand`]).
    pub fn expand(&self, locs: &Locations, src: &str, template: &str, dst: &mut String) {
        match &self.fast {
            None if !locs.bt_used => expand(&self.re, &locs.slow, src, template, dst),
            _ => expand_with(
                |name| self.re.capture_names().position(|n| n == Some(name)),
                |g| self.span(locs, g).map(|(s, e)| &src[s..e]),
                template,
                dst,
            ),
        }
    }

    /// `template` with its group references resolved against this regex, for [`Regexp::expand_template`].
    pub(crate) fn template(&self, template: &str) -> Template {
        let mut parts = Vec::new();
        let mut lit = String::new();
        parse_template(
            |name| self.re.capture_names().position(|n| n == Some(name)),
            template,
            |piece| match piece {
                Piece::Text(t) => lit.push_str(t),
                Piece::Group(g) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Group(g));
                }
            },
        );
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Template { parts }
    }

    /// Appends `t` expanded with the groups of the last successful [`Regexp::captures_read`] of `src`: the
    /// same text as [`Regexp::expand`] with the template `t` was made from.
    pub(crate) fn expand_template(
        &self,
        locs: &Locations,
        src: &str,
        t: &Template,
        dst: &mut String,
    ) {
        for part in &t.parts {
            match *part {
                Part::Lit(ref l) => dst.push_str(l),
                Part::Group(g) => {
                    if let Some((s, e)) = self.span(locs, g) {
                        dst.push_str(&src[s..e]);
                    }
                }
            }
        }
    }

    /// Whether the fast matcher handles this pattern (for tests).
    #[cfg(test)]
    pub(crate) fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The compiled (anchored, translated) regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.re
    }
}

impl PartialEq for Regexp {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Regexp {}

impl fmt::Debug for Regexp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regexp({:?})", self.source)
    }
}

impl Serialize for Regexp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Regexp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Compiled inside the visitor, so that River reports an error at the regex's own position.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Regexp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a regular expression")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Regexp, E> {
                Regexp::new(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

const ASCII_DIGIT: &str = "0-9";
const ASCII_WORD: &str = "0-9A-Za-z_";
// Go's \s: [\t\n\f\r ] (no \v).
const ASCII_SPACE: &str = r"\t\n\x0C\r ";

/// Rewrites a Go pattern into an equivalent pattern for the `regex` crate (see the module docs). Anything it
/// does not recognise is copied, so syntax errors are still reported by the crate.
pub(crate) fn go_to_rust(pat: &str) -> String {
    let mut out = String::with_capacity(pat.len() + 8);
    let mut chars = pat.chars().peekable();
    let mut in_class = false;
    // Just after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::replace(&mut class_start, false);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class = match e {
                    'd' => Some((false, ASCII_DIGIT)),
                    'D' => Some((true, ASCII_DIGIT)),
                    'w' => Some((false, ASCII_WORD)),
                    'W' => Some((true, ASCII_WORD)),
                    's' => Some((false, ASCII_SPACE)),
                    'S' => Some((true, ASCII_SPACE)),
                    _ => None,
                };
                if let Some((negated, set)) = class {
                    match (in_class, negated) {
                        (true, false) => out.push_str(set),
                        _ => {
                            out.push_str(if negated { "[^" } else { "[" });
                            out.push_str(set);
                            out.push(']');
                        }
                    }
                    continue;
                }
                match e {
                    'b' | 'B' if !in_class => {
                        out.push_str("(?-u:\\");
                        out.push(e);
                        out.push(')');
                    }
                    'Q' if !in_class => {
                        // Literal text up to `\E` or the end.
                        let mut lit = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            lit.push(q);
                        }
                        out.push_str(&regex::escape(&lit));
                    }
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            '[' => {
                if chars.peek() == Some(&':') {
                    // `[:name:]`: copy through the closing `:]`.
                    out.push('[');
                    let mut prev = '[';
                    for n in chars.by_ref() {
                        out.push(n);
                        if prev == ':' && n == ']' {
                            break;
                        }
                        prev = n;
                    }
                } else {
                    out.push_str("\\[");
                }
            }
            ']' if in_class && at_class_start => out.push_str("\\]"),
            ']' if in_class => {
                out.push(']');
                in_class = false;
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Appends Go's `Regexp.ExpandString(template, src, match)` to `dst`: `$name` / `${name}` refer to capture
/// groups (`$1x` is the group named `1x`, not group 1 then `x`), `$$` is a literal `$`, a malformed `$` is
/// kept, and a group that does not exist or did not take part in the match expands to nothing.
pub fn expand(
    re: &regex::Regex,
    locs: &regex::CaptureLocations,
    src: &str,
    template: &str,
    dst: &mut String,
) {
    expand_with(
        |name| re.capture_names().position(|n| n == Some(name)),
        |g| locs.get(g).map(|(s, e)| &src[s..e]),
        template,
        dst,
    )
}

/// [`expand`] for the default regex `(.*)`, whose groups 0 and 1 are the whole value: no capture search.
pub fn expand_whole(src: &str, template: &str, dst: &mut String) {
    expand_with(|_| None, |g| (g <= 1).then_some(src), template, dst)
}

fn expand_with<'s>(
    index_of: impl Fn(&str) -> Option<usize>,
    group: impl Fn(usize) -> Option<&'s str>,
    template: &str,
    dst: &mut String,
) {
    parse_template(index_of, template, |piece| match piece {
        Piece::Text(t) => dst.push_str(t),
        Piece::Group(g) => {
            if let Some(text) = group(g) {
                dst.push_str(text);
            }
        }
    });
}

/// A piece of a template: text to copy, or a group to insert.
enum Piece<'t> {
    Text(&'t str),
    Group(usize),
}

/// Splits a template into pieces, as Go's `Regexp.Expand` reads it; a name no group has is dropped.
fn parse_template<'t>(
    index_of: impl Fn(&str) -> Option<usize>,
    template: &'t str,
    mut out: impl FnMut(Piece<'t>),
) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out(Piece::Text(&rest[..i]));
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out(Piece::Text("$"));
            rest = after;
            continue;
        }
        let Some((name, after)) = extract(rest) else {
            out(Piece::Text("$"));
            continue;
        };
        rest = after;
        let index = match parse_group_number(name) {
            Some(n) => Some(n),
            None => index_of(name),
        };
        if let Some(g) = index {
            out(Piece::Group(g));
        }
    }
    out(Piece::Text(rest));
}

/// A template resolved against one regex ([`Regexp::template`]): expanding it is copying.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Lit(String),
    Group(usize),
}

impl Template {
    /// Appends the template expanded for the default regex `(.*)` matching `src` (groups 0 and 1 are all of
    /// it): [`expand_whole`] with the template this was made from.
    pub(crate) fn expand_whole(&self, src: &str, dst: &mut String) {
        for part in &self.parts {
            match *part {
                Part::Lit(ref l) => dst.push_str(l),
                Part::Group(g) if g <= 1 => dst.push_str(src),
                Part::Group(_) => {}
            }
        }
    }
}

/// Whether a template refers to any group (Prometheus: "contains `$`").
pub fn has_var(template: &str) -> bool {
    template.contains('$')
}

/// Go's `extract`: the name after a `$` (braced or not) and the text after it.
fn extract(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let mut rest = &body[end..];
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    Some((name, rest))
}

/// Go: `unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'`.
fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    static LETTER_OR_DIGIT: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{Nd}]$").ok());
    let mut buf = [0u8; 4];
    LETTER_OR_DIGIT
        .as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut buf)))
}

/// Go: a name of ASCII digits without a leading zero (and below 1e8) is a group number.
fn parse_group_number(name: &str) -> Option<usize> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    let mut n: usize = 0;
    for b in name.bytes() {
        if n >= 100_000_000 {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The backtracker finds the regex crate's groups on any ASCII text.
        #[test]
        fn backtracker_agrees_on_random_text(
            p in 0usize..12,
            t in "[a-c:;0-9 ._\n-]{0,14}",
        ) {
            let patterns = [
                r"([^:]+)(?::\d+)?;(\d+)",
                r"(.*?)(;*)(\d+)?",
                r"([a-c]*)(.)?(b|c\d)?",
                r"(?i)(A+|B)(\W?)(.*)",
                r"(\w+)\W(.*)",
                r"(?s)(.)(.*)(\n)?",
                r"(a|ab)(c|bcd)?(d*)",
                r"(a*?)(a+)(b{1,2})?",
                r"((a)|b)?(;|\d{2,3})?(x{2})?",
                r"(.*)(a|;)(.*?)",
                r"([^;]*);([^;]*);?(.*)",
                r"(?:(a)|(b)|(c))(\d?)(\d??)",
            ];
            let re = Regexp::new(patterns[p]).unwrap();
            prop_assert!(re.bt.is_some());
            let mut locs = re.locations();
            let mut slow = re.regex().capture_locations();
            let want = re.regex().captures_read(&mut slow, &t).is_some();
            prop_assert_eq!(re.captures_read(&mut locs, &t), want);
            if want {
                for g in 0..slow.len() {
                    prop_assert_eq!(re.span(&locs, g), slow.get(g), "group {}", g);
                }
            }
        }
    }

    fn exp(pattern: &str, text: &str, template: &str) -> Option<String> {
        let re = Regexp::new(pattern).unwrap();
        let mut locs = re.regex().capture_locations();
        re.regex().captures_read(&mut locs, text)?;
        let mut out = String::new();
        expand(re.regex(), &locs, text, template, &mut out);
        Some(out)
    }

    #[test]
    fn matching_is_anchored_and_dot_matches_newlines() {
        let re = Regexp::new("b+").unwrap();
        assert!(re.is_match("bbb"));
        assert!(!re.is_match("abbb"));
        assert!(!re.is_match("bbba"));
        assert!(Regexp::new("a.b").unwrap().is_match("a\nb"));
        // Alternation stays inside the anchors.
        let re = Regexp::new("a|b").unwrap();
        assert!(re.is_match("a") && re.is_match("b") && !re.is_match("ab"));
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert!(!Regexp::new(r"\d").unwrap().is_match("٣"));
        assert!(Regexp::new(r"\d").unwrap().is_match("3"));
        assert!(!Regexp::new(r"\w+").unwrap().is_match("é"));
        assert!(Regexp::new(r"\W").unwrap().is_match("é"));
        assert!(Regexp::new(r"[\d\s]+").unwrap().is_match("1 2"));
        assert!(!Regexp::new(r"\s").unwrap().is_match("\u{0B}"));
        assert!(Regexp::new(r"[^\D]").unwrap().is_match("7"));
        assert!(Regexp::new(r"[\W]").unwrap().is_match("-"));
        assert!(Regexp::new(r"a\b.*").unwrap().is_match("a b"));
    }

    #[test]
    fn go_only_syntax_is_translated() {
        assert!(Regexp::new(r"\Qa.b\E+").unwrap().is_match("a.bb"));
        assert!(!Regexp::new(r"\Qa.b\E").unwrap().is_match("axb"));
        assert!(Regexp::new(r"[a[]+").unwrap().is_match("a[a"));
        assert!(Regexp::new(r"[]a]+").unwrap().is_match("]a"));
        assert!(Regexp::new(r"[^]a]").unwrap().is_match("b"));
        assert!(Regexp::new(r"[[:alpha:]]+").unwrap().is_match("abc"));
        assert!(Regexp::new(r"[a&&b]+").unwrap().is_match("a&b"));
        assert!(Regexp::new(r"\101").unwrap().is_match("A"));
    }

    #[test]
    fn bad_patterns_get_a_one_line_reason() {
        let e = Regexp::new("(abc").unwrap_err();
        assert_eq!(e.pattern, "(abc");
        assert!(!e.reason.contains('\n'), "{e}");
        assert!(e.to_string().starts_with("invalid regex \"(abc\": "), "{e}");
        assert!(Regexp::new("a{2,1}").is_err());
        assert!(Regexp::new("*").is_err());
    }

    /// The fast matcher gives the regex crate's answers (match and every group's span) on the patterns it
    /// takes, and declines the others.
    #[test]
    fn fast_matcher_agrees_with_the_regex() {
        let fast = [
            "",
            "(.*)",
            ".*",
            ".+",
            "(.+)",
            "true",
            "Running",
            "Pending|Succeeded|Failed|Completed",
            "__meta_kubernetes_pod_uid|__tmp_.*",
            "__meta_kubernetes_pod_label_(.+)",
            "__tmp_.*",
            "a|ab|abc",
            "ab|a",
            "(a)|(b)",
            "(a)(b)?",
            "(?i)ab",
            "x(y(z.*))",
            "(?P<name>foo)_(.*)",
            "a.*|ab",
            "(?:a|b)(c|d)",
            "[ab]c",
            "a()b",
            "(a|)(.*)",
            "é(.+)",
            "a.*?",
            "(?s:.)*",
            "a??(a)?",
            "(a(.*))?",
        ];
        let slow = [
            "a.b", ".*a", "a{2}", "a+", r"\d+", "[a-z]+", r"a\b.*", "(?m)^a", "a.{2,}", "(a)+",
        ];
        for p in fast {
            assert!(Regexp::new(p).unwrap().is_fast(), "{p:?} should be fast");
        }
        for p in slow {
            assert!(
                !Regexp::new(p).unwrap().is_fast(),
                "{p:?} should use the regex"
            );
        }
        let texts = [
            "",
            "a",
            "ab",
            "abc",
            "b",
            "c",
            "ac",
            "bd",
            "true",
            "True",
            "TRUE",
            "Running",
            "Failed",
            "Completed",
            "Completedx",
            "__tmp_",
            "__tmp_x",
            "__meta_kubernetes_pod_uid",
            "__meta_kubernetes_pod_label_",
            "__meta_kubernetes_pod_label_app",
            "xyz",
            "xy",
            "xyzzz",
            "foo_bar",
            "foo_",
            "aB",
            "Ab",
            "é",
            "éé",
            "a\nb",
            "\n",
            "aab",
        ];
        for p in fast {
            let re = Regexp::new(p).unwrap();
            let mut locs = re.locations();
            let mut slow = re.regex().capture_locations();
            for t in texts {
                let want = re.regex().captures_read(&mut slow, t).is_some();
                assert_eq!(re.is_match(t), want, "{p:?} on {t:?}");
                assert_eq!(re.captures_read(&mut locs, t), want, "{p:?} on {t:?}");
                if !want {
                    continue;
                }
                for g in 0..slow.len() {
                    let mut got = String::new();
                    re.expand(&locs, t, &format!("<${{{g}}}>"), &mut got);
                    let w = slow.get(g).map_or("", |(s, e)| &t[s..e]);
                    assert_eq!(got, format!("<{w}>"), "{p:?} on {t:?}, group {g}");
                }
            }
        }
    }

    /// A template resolved once expands as Go expands the text of it, on fast and regex-crate patterns.
    #[test]
    fn compiled_templates_expand_as_go() {
        let templates = [
            "$2$1",
            "${1}x",
            "$1x",
            "$1-$2",
            "<$first>",
            "${first}s",
            "$$1",
            "$",
            "${1",
            "$-",
            "$0$5",
            "$01",
            "[$1]",
            "$é",
            "plain",
            "",
            "$first$1$$",
            "a$1b$2c",
            "${2}${1}",
            "$$$1",
        ];
        let cases = [
            ("(a)(b)", "ab"),
            ("(?P<first>a)b", "ab"),
            ("(a)|(b)", "b"),
            ("(.*)", "xyz"),
            ("(.*)", ""),
            ("a(.*)", "abc"),
            (r"([^:]+):(\d+)", "h:80"),
            (r"(?P<first>[a-z]+)-(\d)?", "ab-"),
        ];
        for (p, t) in cases {
            let re = Regexp::new(p).unwrap();
            let mut locs = re.locations();
            assert!(re.captures_read(&mut locs, t), "{p:?} on {t:?}");
            for tpl in templates {
                let mut want = String::new();
                re.expand(&locs, t, tpl, &mut want);
                let mut got = String::new();
                re.expand_template(&locs, t, &re.template(tpl), &mut got);
                assert_eq!(got, want, "{p:?} on {t:?} with {tpl:?}");
                if p == DEFAULT_REGEX {
                    let mut whole = String::new();
                    re.template(tpl).expand_whole(t, &mut whole);
                    assert_eq!(whole, want, "{tpl:?} on {t:?}, whole");
                }
            }
        }
    }

    /// Patterns the literal matcher does not take: on ASCII text the backtracker finds the groups the regex
    /// crate finds (every span); other text, and patterns with assertions, go to the regex crate.
    #[test]
    fn ascii_groups_agree_with_the_unicode_regex() {
        let patterns = [
            r"([^:]+)(?::\d+)?;(\d+)",
            r"(.+?)(\d*)",
            r"(?i)(k+)(s?)",
            r"([a-z]+)\.(.*)",
            r"(\w+)\W(\S*)\s?",
            r"(a|ab)(c|bcd)(d*)",
            r"(?m)^(a)$",
            r"(x)?\b(y*)",
            r"[[:alpha:]]+(\d{1,3})",
            r"(é|e)(.)",
            r"(.)(.)(.)",
        ];
        let texts = [
            "",
            "a",
            "10.0.0.1:80;8080",
            "10.0.0.1;8080",
            "abc123",
            "KKs",
            "kS",
            "a.b.c",
            "ab_1-x y",
            "abcd",
            "abcdd",
            "a",
            "xyy",
            "yy",
            "x",
            "abc1234",
            "e9",
            "a\nb",
            "::;1",
            "é9",
            "ﬀx",
            "aKz",
        ];
        for p in patterns {
            let re = Regexp::new(p).unwrap();
            assert!(!re.is_fast(), "{p:?}");
            let takes = !matches!(p, r"(?m)^(a)$" | r"(x)?\b(y*)");
            assert_eq!(re.bt.is_some(), takes, "{p:?} backtracker");
            let mut locs = re.locations();
            let mut slow = re.regex().capture_locations();
            for t in texts {
                let want = re.regex().captures_read(&mut slow, t).is_some();
                assert_eq!(re.captures_read(&mut locs, t), want, "{p:?} on {t:?}");
                assert_eq!(locs.bt_used, takes && t.is_ascii(), "{p:?} on {t:?}");
                if want {
                    for g in 0..slow.len() {
                        assert_eq!(re.span(&locs, g), slow.get(g), "{p:?} on {t:?} group {g}");
                    }
                }
            }
        }
        // Assertions and repeated groups are left to the regex crate.
        for p in [r"(?m)^(a)$", r"(ab)+", r"a\b(.*)", r"(a|b){2}"] {
            assert!(Regexp::new(p).unwrap().bt.is_none(), "{p:?}");
        }
    }

    /// Patterns that make a plain backtracker take exponential (or high polynomial) time: each state is
    /// entered once, so these finish at once, with the regex crate's answer.
    #[test]
    fn backtracker_is_bounded_on_ambiguous_patterns() {
        let many_a = "a".repeat(200);
        let cases = [
            ("a?".repeat(20) + &"a".repeat(20), "a".repeat(20)),
            (r"(.*)(.*)(.*)(.*)(.*)x".to_string(), many_a.clone()),
            (
                r"(a|aa)(a|aa)(a|aa)(a|aa)(a|aa)(a|aa)(a|aa)(a|aa)b".to_string(),
                "a".repeat(16),
            ),
            (r"(.*?)(a*)(.*)".to_string(), many_a),
        ];
        for (p, t) in &cases {
            let re = Regexp::new(p).unwrap();
            assert!(re.bt.is_some(), "{p:?}");
            let mut locs = re.locations();
            let mut slow = re.regex().capture_locations();
            let want = re.regex().captures_read(&mut slow, t).is_some();
            assert_eq!(re.captures_read(&mut locs, t), want, "{p:?}");
            assert!(locs.bt_used);
            if want {
                for g in 0..slow.len() {
                    assert_eq!(re.span(&locs, g), slow.get(g), "{p:?} group {g}");
                }
            }
        }
    }

    #[test]
    fn expansion_follows_go() {
        assert_eq!(exp("(a)(b)", "ab", "$2$1").as_deref(), Some("ba"));
        assert_eq!(exp("(a)(b)", "ab", "${1}x").as_deref(), Some("ax"));
        // `$1x` names group "1x", which does not exist.
        assert_eq!(exp("(a)(b)", "ab", "$1x").as_deref(), Some(""));
        assert_eq!(exp("(a)(b)", "ab", "$1-$2").as_deref(), Some("a-b"));
        assert_eq!(
            exp("(?P<first>a)b", "ab", "<$first>").as_deref(),
            Some("<a>")
        );
        assert_eq!(
            exp("(?P<first>a)b", "ab", "${first}s").as_deref(),
            Some("as")
        );
        assert_eq!(exp("(a)", "a", "$$1").as_deref(), Some("$1"));
        assert_eq!(exp("(a)", "a", "$").as_deref(), Some("$"));
        assert_eq!(exp("(a)", "a", "${1").as_deref(), Some("${1"));
        assert_eq!(exp("(a)", "a", "$-").as_deref(), Some("$-"));
        assert_eq!(exp("(a)", "a", "$0$5").as_deref(), Some("a"));
        assert_eq!(exp("(a)", "a", "$01").as_deref(), Some(""));
        assert_eq!(exp("(a)|(b)", "b", "[$1]").as_deref(), Some("[]"));
        assert_eq!(exp("(a)", "a", "$é").as_deref(), Some(""));
    }
}
