//! Diagnostics: what went wrong, where, and how to show it to a person.
//!
//! The pretty renderer (source lines with carets) lives in [`crate::render`].

use crate::span::{LineIndex, Position, Span};
use std::fmt;
use std::sync::Arc;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something to look at; does not stop a config from loading.
    Warning,
    /// The config is rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        })
    }
}

/// One problem found in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious it is.
    pub severity: Severity,
    /// Where in the source it is.
    pub span: Span,
    /// What is wrong, in the reference implementation's words where it has them.
    pub message: String,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
        }
    }
}

/// A named source text with its line index, shared cheaply.
#[derive(Clone, Debug)]
pub struct SourceFile {
    inner: Arc<SourceInner>,
}

#[derive(Debug)]
struct SourceInner {
    name: String,
    text: String,
    lines: LineIndex,
}

impl SourceFile {
    /// A source called `name` (usually its path) with contents `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let lines = LineIndex::new(&text);
        SourceFile {
            inner: Arc::new(SourceInner {
                name: name.into(),
                text,
                lines,
            }),
        }
    }

    /// The name shown in diagnostics.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The full text.
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// The line index of the text.
    pub fn lines(&self) -> &LineIndex {
        &self.inner.lines
    }

    /// The position of a byte offset.
    pub fn position(&self, offset: u32) -> Position {
        self.inner.lines.position(&self.inner.text, offset)
    }

    /// `name:line:col: message` for one diagnostic (column in characters).
    pub fn one_line(&self, d: &Diagnostic) -> String {
        let p = self.position(d.span.start);
        format!("{}:{}:{}: {}", self.name(), p.line, p.column, d.message)
    }
}

/// A list of diagnostics for one source file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }

    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterate over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// Sort by position (stable, so equal positions keep their order).
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| d.span.start);
    }

    /// The reference's one-line summary: the first diagnostic, plus ` (and N more diagnostics)`.
    pub fn summary(&self, file: &SourceFile) -> String {
        match self.0.split_first() {
            None => String::new(),
            Some((first, rest)) => {
                let mut s = file.one_line(first);
                if !rest.is_empty() {
                    s.push_str(&format!(" (and {} more diagnostics)", rest.len()));
                }
                s
            }
        }
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.0.extend(iter)
    }
}
