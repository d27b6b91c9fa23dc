//! Config sources: parsed files, and diagnostics that know which file they belong to.

use river::ast::File;
use river::{Diagnostic, SourceFile};
use std::fmt;
use std::sync::Arc;

/// One parsed config file.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    /// The file's name and text (for positions).
    pub source: SourceFile,
    /// Its syntax tree.
    pub ast: Arc<File>,
}

/// The parsed files that make up one config. A directory's `*.river` files are merged into one config.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The files, in name order.
    pub files: Vec<ParsedFile>,
}

impl Sources {
    /// Parses `(name, text)` pairs. Every syntax error of every file is returned; the config is only usable
    /// when there are none.
    pub fn parse<I, N, T>(files: I) -> Result<Sources, LoadDiagnostics>
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: Into<String>,
    {
        let mut out = Sources::default();
        let mut diags = LoadDiagnostics::default();
        for (name, text) in files {
            let source = SourceFile::new(name, text);
            let (ast, file_diags) = river::parse(source.text());
            for d in file_diags {
                diags.push(&source, d);
            }
            out.files.push(ParsedFile {
                source,
                ast: Arc::new(ast),
            });
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok(out)
        }
    }
}

/// A diagnostic together with the file it is about.
#[derive(Clone, Debug)]
pub struct LoadDiagnostic {
    /// The file (for its name and the position of the span).
    pub file: SourceFile,
    /// What and where.
    pub diagnostic: Diagnostic,
}

impl fmt::Display for LoadDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file.one_line(&self.diagnostic))
    }
}

/// Diagnostics from loading a config, possibly over several files.
#[derive(Clone, Debug, Default)]
pub struct LoadDiagnostics(pub Vec<LoadDiagnostic>);

impl LoadDiagnostics {
    /// Adds a diagnostic about `file`.
    pub fn push(&mut self, file: &SourceFile, diagnostic: Diagnostic) {
        self.0.push(LoadDiagnostic {
            file: file.clone(),
            diagnostic,
        });
    }

    /// True when any is an error.
    pub fn has_errors(&self) -> bool {
        self.0
            .iter()
            .any(|d| d.diagnostic.severity == river::Severity::Error)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, LoadDiagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for LoadDiagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadDiagnostics {}
