//! The `logging` config block: `logging { level = "info", format = "logfmt" }`.
//!
//! The runtime decodes and validates it like any block and hands the result to the program embedding the
//! runtime (which owns the log subscriber) through [`crate::ControllerOptions::on_logging`]. A config without
//! the block gets the defaults, so removing it on reload resets logging.

use serde::{Deserialize, Serialize};

/// Log levels, from most to least verbose.
pub const LEVELS: &[&str] = &["debug", "info", "warn", "error"];
/// Log formats.
pub const FORMATS: &[&str] = &["logfmt", "json"];

/// The decoded `logging` block.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `logfmt` or `json`.
    pub format: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: "logfmt".into(),
        }
    }
}

impl river::decode::Validate for LoggingConfig {
    fn validate(&self) -> Result<(), String> {
        if !LEVELS.contains(&self.level.as_str()) {
            return Err(format!(
                "unrecognized log level {:?}; must be one of {}",
                self.level,
                LEVELS.join(", ")
            ));
        }
        if !FORMATS.contains(&self.format.as_str()) {
            return Err(format!(
                "unrecognized log format {:?}; must be one of {}",
                self.format,
                FORMATS.join(", ")
            ));
        }
        Ok(())
    }
}
