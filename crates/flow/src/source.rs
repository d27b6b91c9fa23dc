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

/// Why a config could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// What was being read.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory holds no `*.river` file.
    #[error("{0}: no .river files in this directory")]
    EmptyDirectory(std::path::PathBuf),
    /// A file is not valid UTF-8 or does not parse.
    #[error("{0}")]
    Syntax(LoadDiagnostics),
}

impl Sources {
    /// Reads a config: one file, or every `*.river` file directly in a directory (in name order), merged.
    pub fn read(path: &std::path::Path) -> Result<Sources, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let paths = if meta.is_dir() {
            let mut paths: Vec<_> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "river") && p.is_file())
                .collect();
            paths.sort();
            if paths.is_empty() {
                return Err(SourceError::EmptyDirectory(path.to_path_buf()));
            }
            paths
        } else {
            vec![path.to_path_buf()]
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut diags = LoadDiagnostics::default();
        for p in paths {
            let bytes = std::fs::read(&p).map_err(|source| SourceError::Io {
                path: p.clone(),
                source,
            })?;
            let name = p.display().to_string();
            let (ast, file_diags) = river::parser::parse_bytes(&bytes);
            let source = SourceFile::new(name, ast.source.to_string());
            for d in file_diags {
                diags.push(&source, d);
            }
            files.push(ParsedFile {
                source,
                ast: Arc::new(ast),
            });
        }
        if diags.has_errors() {
            return Err(SourceError::Syntax(diags));
        }
        Ok(Sources { files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_merges_its_river_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("rill-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.river"), "logging { }\n").unwrap();
        std::fs::write(dir.join("a.river"), "// first\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a config").unwrap();
        let s = Sources::read(&dir).unwrap();
        let names: Vec<_> = s
            .files
            .iter()
            .map(|f| f.source.name().rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.river", "b.river"]);

        std::fs::write(dir.join("c.river"), "x = \n}").unwrap();
        match Sources::read(&dir) {
            Err(SourceError::Syntax(d)) => assert!(d
                .to_string()
                .contains("c.river:2:1: expected expression, got }")),
            other => panic!("{other:?}"),
        }
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            Sources::read(&empty),
            Err(SourceError::EmptyDirectory(_))
        ));
        assert!(matches!(
            Sources::read(&dir.join("missing.river")),
            Err(SourceError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
