//! Loading the config path into the controller: the first load, SIGHUP and `/-/reload` all go through
//! [`Reloader::reload`], which reads the path again every time.

use crate::{output, ExitCode};
use flow::{Controller, LoadDiagnostics, LoadReport, SourceError, Sources};
use river::render::Colour;
use std::fmt;
use std::path::PathBuf;

/// Reads the config path and loads it.
#[derive(Clone)]
pub struct Reloader {
    path: PathBuf,
    controller: Controller,
}

/// Why a (re)load was rejected. The running graph is unchanged.
#[derive(Debug)]
pub enum ReloadError {
    /// The config could not be read.
    Read(SourceError),
    /// The config has errors (syntax, unknown components, references, cycles, ...).
    Rejected(LoadDiagnostics),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Read(e) => write!(f, "{e}"),
            ReloadError::Rejected(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for ReloadError {}

impl ReloadError {
    /// Prints the error to standard error: diagnostics in the pretty form with the source lines.
    pub fn print(&self, colour: Colour) {
        let diags = match self {
            ReloadError::Read(SourceError::Syntax(d)) | ReloadError::Rejected(d) => d,
            ReloadError::Read(e) => return output::error(e),
        };
        // Consecutive diagnostics of one file are rendered together.
        let mut i = 0;
        while i < diags.0.len() {
            let file = &diags.0[i].file;
            let mut group = river::Diagnostics(Vec::new());
            while i < diags.0.len() && diags.0[i].file.name() == file.name() {
                group.push(diags.0[i].diagnostic.clone());
                i += 1;
            }
            output::diagnostics(file, &group, colour);
        }
    }

    /// The exit code of a failed first load.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ReloadError::Read(SourceError::Syntax(_)) | ReloadError::Rejected(_) => {
                ExitCode::Problems
            }
            ReloadError::Read(_) => ExitCode::Failure,
        }
    }
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish()
    }
}

impl Reloader {
    /// Loads `path` into `controller` on each [`Reloader::reload`].
    pub fn new(path: PathBuf, controller: Controller) -> Self {
        Reloader { path, controller }
    }

    /// Reads the config path again and loads it. Concurrent reloads are serialized by the controller.
    pub async fn reload(&self) -> Result<LoadReport, ReloadError> {
        let path = self.path.clone();
        // Reading and parsing touch the disk: keep them off the async workers.
        let sources = tokio::task::spawn_blocking(move || Sources::read(&path))
            .await
            .map_err(|e| {
                ReloadError::Read(SourceError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            })?
            .map_err(ReloadError::Read)?;
        self.controller
            .load(sources)
            .await
            .map_err(ReloadError::Rejected)
    }
}

/// Logs what an accepted load could not apply (components that failed to evaluate or build).
pub fn log_warnings(report: &LoadReport) {
    for d in report.diagnostics.iter() {
        tracing::warn!(problem = %d, "component could not be applied; it keeps its last good config");
    }
    if !report.started.is_empty() || !report.stopped.is_empty() || !report.updated.is_empty() {
        tracing::info!(
            started = report.started.len(),
            updated = report.updated.len(),
            stopped = report.stopped.len(),
            "components changed"
        );
    }
}
