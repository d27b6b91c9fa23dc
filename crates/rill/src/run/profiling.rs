//! The process's own profiles in pprof format (gzip-compressed protobuf), as Go's `net/http/pprof` serves
//! them, so Pyroscope (and `pyroscope.scrape` pointed at this process) can collect them.
//!
//! - CPU (`/debug/pprof/profile?seconds=N`): sampled at 100 Hz by `selfprof` (SIGPROF, a small ring
//!   allocated for the profile only, symbolized at the end). One CPU profile runs at a time (the sampler is
//!   process-wide): a request that arrives while one runs waits up to
//!   [`CPU_QUEUE_WAIT`] for it to end, then gets `409 Conflict`. A client that goes away ends its profile.
//! - Heap (`/debug/pprof/heap`, and `/debug/pprof/allocs`): jemalloc's sampled live heap
//!   (`inuse_space`). jemalloc keeps no cumulative allocation counts, so `allocs` serves the same profile.
//! - Everything else Go serves (goroutine, block, mutex, threadcreate, trace, delta_*) has no equivalent
//!   here and answers 404 with the reason.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// CPU sampling frequency (Go's default).
const CPU_HZ: u32 = 100;
/// The longest CPU profile served.
pub const MAX_SECONDS: u64 = 600;
/// How long a CPU profile request waits for a running one to end before it is refused.
pub const CPU_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Why a profile could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A bad `seconds` parameter.
    #[error("seconds must be a whole number from 1 to {MAX_SECONDS}")]
    BadSeconds,
    /// Another CPU profile is running.
    #[error("a CPU profile is already being taken; try again when it ends")]
    Busy,
    /// This profile type cannot be produced by this process.
    #[error("{0}")]
    Unavailable(String),
    /// Profiling failed.
    #[error("profiling failed: {0}")]
    Failed(String),
}

/// Serializes CPU profiles and heap dumps.
#[derive(Clone, Debug, Default)]
pub struct Profiler {
    cpu: Arc<Mutex<()>>,
}

impl Profiler {
    /// Parses the `seconds` query parameter (default 30, as Go's handler).
    pub fn parse_seconds(raw: Option<&str>) -> Result<u64, ProfileError> {
        match raw {
            None | Some("") => Ok(30),
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
                _ => Err(ProfileError::BadSeconds),
            },
        }
    }

    /// Samples the process's CPU for `duration` and returns the gzip pprof profile.
    pub async fn cpu(&self, duration: Duration) -> Result<Vec<u8>, ProfileError> {
        let permit: OwnedMutexGuard<()> =
            tokio::time::timeout(CPU_QUEUE_WAIT, self.cpu.clone().lock_owned())
                .await
                .map_err(|_| ProfileError::Busy)?;
        // Dropping `_stop` (the client went away) wakes the sampling thread early.
        let (_stop, stopped) = mpsc::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            let result = sample_cpu(duration, &stopped);
            drop(permit);
            result
        });
        task.await
            .map_err(|e| ProfileError::Failed(e.to_string()))?
    }

    /// The sampled live heap as a gzip pprof profile.
    pub async fn heap(&self) -> Result<Vec<u8>, ProfileError> {
        heap::dump().await
    }
}

fn sample_cpu(duration: Duration, stop: &mpsc::Receiver<()>) -> Result<Vec<u8>, ProfileError> {
    // Returns at the deadline, or early when the request is gone.
    let report = selfprof::profile(duration, CPU_HZ, stop).map_err(|e| match e {
        selfprof::Error::Busy => ProfileError::Busy,
        selfprof::Error::Unsupported => ProfileError::Unavailable(e.to_string()),
        e => ProfileError::Failed(e.to_string()),
    })?;
    if report.dropped() > 0 {
        tracing::warn!(
            dropped = report.dropped(),
            samples = report.samples(),
            "CPU profile dropped samples: its buffer was full"
        );
    }
    let t0 = std::time::Instant::now();
    let gz = report.to_gzip_pprof(selfprof::Symbols::Names);
    tracing::debug!(
        samples = report.samples(),
        stacks = report.unique_stacks(),
        bytes = gz.len(),
        encode_ms = t0.elapsed().as_secs_f64() * 1e3,
        "CPU profile taken"
    );
    Ok(gz)
}

/// Why a profile type Go serves is not available here, or `None` when it is.
pub fn unavailable_reason(name: &str) -> Option<String> {
    let reason = match name {
        "profile" | "heap" | "allocs" => return None,
        "goroutine" => "goroutine profiles are specific to Go; rill is written in Rust".to_string(),
        "block" | "mutex" | "threadcreate" | "trace" | "delta_block" | "delta_mutex" => {
            format!(
                "{name} profiles are not available: rill can serve profile (CPU), heap and allocs"
            )
        }
        "delta_heap" => "delta_heap is not available: use heap or allocs".to_string(),
        other => {
            format!("unknown profile {other:?}: rill can serve profile (CPU), heap and allocs")
        }
    };
    Some(reason)
}

#[cfg(target_os = "linux")]
mod heap {
    use super::ProfileError;

    pub async fn dump() -> Result<Vec<u8>, ProfileError> {
        let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
            return Err(ProfileError::Unavailable(
                "heap profiling is off: jemalloc was built without prof:true (see .cargo/config.toml)"
                    .into(),
            ));
        };
        let ctl = ctl.clone();
        let mut guard = ctl.lock_owned().await;
        if !guard.activated() {
            return Err(ProfileError::Unavailable(
                "heap profiling is not active".into(),
            ));
        }
        // Dumping writes a temporary file and names functions: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let gz = guard
                .dump_pprof()
                .map_err(|e| ProfileError::Failed(e.to_string()))?;
            super::name_functions(&gz)
        })
        .await
        .map_err(|e| ProfileError::Failed(e.to_string()))?
    }
}

/// Names the functions of an unsymbolized gzip pprof profile (addresses and mappings only, as jemalloc_pprof
/// writes it without its `symbolize` feature) from the symbol tables, as CPU profiles are named.
#[cfg(target_os = "linux")]
fn name_functions(gz: &[u8]) -> Result<Vec<u8>, ProfileError> {
    use std::io::{Read, Write};
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .map_err(|e| ProfileError::Failed(format!("reading the heap profile: {e}")))?;
    let mut profile = <selfprof::proto::Profile as prost::Message>::decode(raw.as_slice())
        .map_err(|e| ProfileError::Failed(format!("decoding the heap profile: {e}")))?;
    selfprof::add_function_names(&mut profile);
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = out.write_all(&prost::Message::encode_to_vec(&profile));
    Ok(out.finish().unwrap_or_default())
}

#[cfg(not(target_os = "linux"))]
mod heap {
    use super::ProfileError;

    pub async fn dump() -> Result<Vec<u8>, ProfileError> {
        Err(ProfileError::Unavailable(
            "heap profiles need jemalloc on Linux".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(Profiler::parse_seconds(None).unwrap(), 30);
        assert_eq!(Profiler::parse_seconds(Some("14")).unwrap(), 14);
        for bad in ["0", "-1", "1.5", "x", "601"] {
            assert!(Profiler::parse_seconds(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn unavailable_types_say_why() {
        assert_eq!(unavailable_reason("profile"), None);
        assert!(unavailable_reason("goroutine").unwrap().contains("Go"));
        assert!(unavailable_reason("delta_mutex")
            .unwrap()
            .contains("not available"));
        assert!(unavailable_reason("nope")
            .unwrap()
            .contains("unknown profile"));
    }
}
