//! Shared helpers of the testdata harnesses: finding files, reading the sectioned case format, collecting
//! failures so that one run reports every broken case, and matching message patterns.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The crate's `testdata/` directory.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Files directly in `dir` whose name ends with `suffix`, sorted by name.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
            })
            .collect(),
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    out.sort();
    out
}

/// The path from the crate root (`testdata/...`), for messages.
pub fn rel(path: &Path) -> String {
    let base = testdata_dir();
    let shown = path.strip_prefix(&base).unwrap_or(path);
    format!("testdata/{}", shown.display())
}

/// Reads a file as UTF-8 text, failing the test with the path if it is not.
pub fn read(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// One case of a sectioned file:
///
/// ```text
/// === case name
/// --- section
/// section text
/// ```
#[derive(Debug, Clone)]
pub struct Case {
    /// The name after `===`.
    pub name: String,
    /// 1-based line of the `===` header in the file.
    pub line: usize,
    /// Sections in order: name after `---` and the text (each line ends with `\n`; trailing blank lines are
    /// dropped so that cases can be separated by blank lines).
    pub sections: Vec<(String, String)>,
}

impl Case {
    /// The text of the section called `name`, if present.
    pub fn section(&self, name: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// Parses the sectioned case format. Lines before the first `===` are a free-form header (comments).
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let mut cases: Vec<Case> = Vec::new();
    let mut current_section: Option<(String, String)> = None;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line_trimmed = line.strip_suffix('\r').unwrap_or(line);
        if let Some(name) = line_trimmed.strip_prefix("=== ") {
            if let (Some(case), Some(sec)) = (cases.last_mut(), current_section.take()) {
                case.sections.push(finish_section(sec));
            }
            cases.push(Case {
                name: name.trim().to_string(),
                line: line_no,
                sections: Vec::new(),
            });
        } else if let Some(name) = line_trimmed.strip_prefix("--- ") {
            let Some(case) = cases.last_mut() else {
                return Err(format!(
                    "line {line_no}: section before the first `=== name`"
                ));
            };
            if let Some(sec) = current_section.take() {
                case.sections.push(finish_section(sec));
            }
            current_section = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current_section.as_mut() {
            body.push_str(line);
            body.push('\n');
        } else if !cases.is_empty()
            && !line_trimmed.trim().is_empty()
            && !line_trimmed.starts_with('#')
        {
            return Err(format!(
                "line {line_no}: text outside a `--- section`: {line_trimmed:?}"
            ));
        }
    }
    if let (Some(case), Some(sec)) = (cases.last_mut(), current_section.take()) {
        case.sections.push(finish_section(sec));
    }
    Ok(cases)
}

fn finish_section((name, mut body): (String, String)) -> (String, String) {
    while body.ends_with("\n\n") {
        body.pop();
    }
    if body == "\n" {
        body.clear();
    }
    (name, body)
}

/// Collects case results of one suite and fails once at the end with every failure listed.
pub struct Report {
    suite: &'static str,
    total: usize,
    failures: Vec<String>,
}

impl Report {
    /// A report for `suite`.
    pub fn new(suite: &'static str) -> Self {
        Report {
            suite,
            total: 0,
            failures: Vec::new(),
        }
    }

    /// Records a passing case.
    pub fn pass(&mut self) {
        self.total += 1;
    }

    /// Records a failing case: `location` names the file (and line) and case.
    pub fn fail(&mut self, location: impl Into<String>, detail: impl AsRef<str>) {
        self.total += 1;
        let mut s = location.into();
        for line in detail.as_ref().lines() {
            s.push_str("\n    ");
            s.push_str(line);
        }
        self.failures.push(s);
    }

    /// Records `Ok` as a pass and `Err(detail)` as a failure.
    pub fn check(&mut self, location: impl Into<String>, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(),
            Err(detail) => self.fail(location, detail),
        }
    }

    /// Prints the summary and panics when any case failed.
    pub fn finish(self) {
        let passed = self.total - self.failures.len();
        println!(
            "testdata suite {}: {passed}/{} cases passed",
            self.suite, self.total
        );
        if self.failures.is_empty() {
            return;
        }
        let mut msg = format!(
            "testdata suite {}: {} of {} cases failed:\n",
            self.suite,
            self.failures.len(),
            self.total
        );
        for f in &self.failures {
            let _ = writeln!(msg, "\n  {f}");
        }
        panic!("{msg}");
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub fn line_col(src: &str, offset: u32) -> (usize, usize) {
    let p = river::span::LineIndex::new(src).position(src, offset);
    (p.line, p.column)
}

/// Whether `pattern` matches a substring of `message`. Patterns are literal text with placeholders:
/// `%d` an integer, `%q` a double-quoted string with escapes, `%s` any non-empty text, `%%` a percent sign.
pub fn pattern_matches(pattern: &str, message: &str) -> bool {
    let pat = tokenize_pattern(pattern);
    let msg: Vec<char> = message.chars().collect();
    (0..=msg.len()).any(|start| match_from(&pat, &msg, start))
}

#[derive(Debug, PartialEq)]
enum PatTok {
    Lit(char),
    Int,
    Quoted,
    Any,
}

fn tokenize_pattern(pattern: &str) -> Vec<PatTok> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('d') => {
                    chars.next();
                    out.push(PatTok::Int);
                }
                Some('q') => {
                    chars.next();
                    out.push(PatTok::Quoted);
                }
                Some('s') => {
                    chars.next();
                    out.push(PatTok::Any);
                }
                Some('%') => {
                    chars.next();
                    out.push(PatTok::Lit('%'));
                }
                _ => out.push(PatTok::Lit('%')),
            }
        } else {
            out.push(PatTok::Lit(c));
        }
    }
    out
}

fn match_from(pat: &[PatTok], msg: &[char], pos: usize) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return true;
    };
    match first {
        PatTok::Lit(c) => msg.get(pos) == Some(c) && match_from(rest, msg, pos + 1),
        PatTok::Int => {
            let mut end = pos;
            if msg.get(end) == Some(&'-') {
                end += 1;
            }
            let digits_start = end;
            while msg.get(end).is_some_and(|c| c.is_ascii_digit()) {
                end += 1;
            }
            // Try every digit-run length so a following literal digit can still match.
            (digits_start + 1..=end)
                .rev()
                .any(|e| match_from(rest, msg, e))
        }
        PatTok::Quoted => {
            if msg.get(pos) != Some(&'"') {
                return false;
            }
            let mut i = pos + 1;
            while let Some(&c) = msg.get(i) {
                match c {
                    '\\' => i += 2,
                    '"' => return match_from(rest, msg, i + 1),
                    _ => i += 1,
                }
            }
            false
        }
        PatTok::Any => (pos + 1..=msg.len()).any(|e| match_from(rest, msg, e)),
    }
}

#[test]
fn patterns_match_placeholders() {
    assert!(pattern_matches(
        "index %d is out of range of array with length %d",
        "5 index 5 is out of range of array with length 2"
    ));
    assert!(!pattern_matches("index %d is out", "index x is out"));
    assert!(pattern_matches(
        "field %q does not exist",
        r#"field "a\"b" does not exist"#
    ));
    assert!(!pattern_matches(
        "field %q does not exist",
        "field a does not exist"
    ));
    assert!(pattern_matches(
        "expected %s, got %s",
        "expected }, got EOF"
    ));
    assert!(pattern_matches("100%% sure", "100% sure"));
    assert!(!pattern_matches(
        "expected TERMINATOR, got IDENT",
        "expected TERMINATOR, got EOF"
    ));
}

#[test]
fn sectioned_cases_parse() {
    let text = "# header\n\n=== one\n--- input\na = 1\n\n--- expect\nx\n\n=== two\n--- input\n\n";
    let cases = parse_cases(text).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].name, "one");
    assert_eq!(cases[0].line, 3);
    assert_eq!(cases[0].section("input"), Some("a = 1\n"));
    assert_eq!(cases[0].section("expect"), Some("x\n"));
    assert_eq!(cases[1].section("input"), Some(""));
    assert!(parse_cases("=== a\nstray\n").is_err());
}
