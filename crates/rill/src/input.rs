//! Reading inputs (files or standard input) and writing files back atomically.

use river::{Diagnostic, SourceFile, Span};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// What can go wrong reading or writing inputs.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file (or standard input) could not be read.
    #[error("cannot read {name}: {source}")]
    Read {
        /// The file's name as given.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// A file could not be rewritten.
    #[error("cannot write {name}: {source}")]
    Write {
        /// The file's name as given.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// Standard output could not be written.
    #[error("cannot write to standard output: {0}")]
    Stdout(io::Error),
    /// `--write` asked to rewrite standard input.
    #[error("cannot use --write with standard input")]
    WriteStdin,
}

/// Where a River source comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`, or no file given).
    Stdin,
    /// A file path.
    File(PathBuf),
}

/// The name standard input has in diagnostics and listings.
pub const STDIN_NAME: &str = "<stdin>";

impl Input {
    /// The inputs named on the command line: `-` is standard input, and no file at all means standard input.
    pub fn from_args(files: &[PathBuf]) -> Vec<Input> {
        if files.is_empty() {
            return vec![Input::Stdin];
        }
        files
            .iter()
            .map(|p| {
                if p.as_os_str() == "-" {
                    Input::Stdin
                } else {
                    Input::File(p.clone())
                }
            })
            .collect()
    }

    /// The name shown in diagnostics: the path as given, or `<stdin>`.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => STDIN_NAME.to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Reads the whole input.
    pub fn read(&self) -> Result<Loaded, InputError> {
        let mut bytes = Vec::new();
        let res = match self {
            Input::Stdin => io::stdin().lock().read_to_end(&mut bytes).map(|_| ()),
            Input::File(p) => fs::read(p).map(|b| bytes = b),
        };
        res.map_err(|source| InputError::Read {
            name: self.name(),
            source,
        })?;
        Ok(Loaded::from_bytes(self.name(), bytes))
    }
}

/// A source read into memory.
#[derive(Debug)]
pub struct Loaded {
    /// The text with its name. Invalid UTF-8 is replaced by U+FFFD here (see `encoding_error`).
    pub file: SourceFile,
    /// Set when the bytes were not valid UTF-8: the input must then be rejected, never formatted or run.
    pub encoding_error: Option<Diagnostic>,
}

impl Loaded {
    /// Decodes `bytes` as UTF-8; a file that is not gets an error at its first invalid byte, as the
    /// reference scanner reports it. The text before that byte is unchanged, so the position is exact.
    pub fn from_bytes(name: String, bytes: Vec<u8>) -> Loaded {
        match String::from_utf8(bytes) {
            Ok(text) => Loaded {
                file: SourceFile::new(name, text),
                encoding_error: None,
            },
            Err(e) => {
                let at = u32::try_from(e.utf8_error().valid_up_to()).unwrap_or(u32::MAX);
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                Loaded {
                    file: SourceFile::new(name, text),
                    encoding_error: Some(Diagnostic::error(Span::at(at), "illegal UTF-8 encoding")),
                }
            }
        }
    }
}

/// Replaces the file at `path` with `contents` atomically: a temporary file in the same directory is written,
/// synced, given the original's permissions and renamed over it. A symlink is followed, so the link stays.
pub fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let target = fs::canonicalize(path)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let permissions = fs::metadata(&target)?.permissions();
    let mut tmp = tempfile::Builder::new()
        .prefix(".rill-fmt-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().set_permissions(permissions)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_and_nothing_mean_stdin() {
        assert_eq!(Input::from_args(&[]), vec![Input::Stdin]);
        let args = [PathBuf::from("a.river"), PathBuf::from("-")];
        assert_eq!(
            Input::from_args(&args),
            vec![Input::File("a.river".into()), Input::Stdin]
        );
        assert_eq!(Input::Stdin.name(), "<stdin>");
    }

    #[test]
    fn invalid_utf8_is_an_error_at_the_first_bad_byte() {
        let l = Loaded::from_bytes("f".into(), b"a = \"\xff\"\n".to_vec());
        let d = l.encoding_error.expect("an encoding error");
        assert_eq!(d.span, Span::at(5));
        assert_eq!(l.file.one_line(&d), "f:1:6: illegal UTF-8 encoding");
        assert!(Loaded::from_bytes("f".into(), b"a = 1".to_vec())
            .encoding_error
            .is_none());
    }

    #[test]
    fn atomic_write_keeps_permissions_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.river");
        fs::write(&real, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
            let link = dir.path().join("link.river");
            std::os::unix::fs::symlink(&real, &link).unwrap();
            write_atomically(&link, "new").unwrap();
            assert!(fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(
                fs::metadata(&real).unwrap().permissions().mode() & 0o777,
                0o640
            );
        }
        #[cfg(not(unix))]
        write_atomically(&real, "new").unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(".rill-fmt-")),
            "{names:?}"
        );
    }
}
