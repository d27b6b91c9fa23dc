//! Target discovery components.
//!
//! - `discovery.relabel` ([`DiscoveryRelabel`]): applies Prometheus relabelling rules to a target list and
//!   exports the result (`output`) and the rules themselves (`rules`, a [`::relabel::Rules`] capsule).
//! - `discovery.file` ([`DiscoveryFile`]): reads Prometheus file_sd files (JSON or YAML, globs allowed) and
//!   exports their targets (`targets`), following changes through file events and a refresh interval.
//!
//! Both publish only when their output changes, so a rewrite of a file with the same targets, or a
//! re-evaluation with the same arguments, re-evaluates nothing downstream.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod file;
pub mod file_sd;
pub mod relabel;
mod watch;

pub use file::DiscoveryFile;
pub use relabel::DiscoveryRelabel;

use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `discovery.relabel` and `discovery.file` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<DiscoveryRelabel>()?;
    registry.register::<DiscoveryFile>()?;
    Ok(())
}
