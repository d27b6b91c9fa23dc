//! The `local.file` component: exports the content of a file on disk and follows its changes.
//!
//! ```river
//! local.file "token" {
//!   filename  = "/var/run/secrets/token"
//!   is_secret = true
//! }
//! ```
//!
//! - The file is read when the component is built; if that first read fails, the build fails (the node shows
//!   the error and the rest of the graph runs on).
//! - `content` is published at build and again whenever it changes (never twice the same). Changes are
//!   noticed by file-system events (`detector = "fsnotify"`, the default) or polling (`"poll"`); with events,
//!   the file is also re-read every `poll_frequency`, so a missed event never stalls updates.
//! - A later read failure makes the component unhealthy (with the file name and the OS error) and keeps the
//!   last exports; the next successful read makes it healthy again.
//! - With `is_secret = true`, `content` is a `secret`: never shown in the UI, the debug info or the logs.
//!
//! Content must be UTF-8 (River strings are): a file that is not is reported as a read error rather than
//! silently altered (**Decision**; the reference passes the bytes through).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod watch;

pub use args::{Arguments, Detector, DEFAULT_POLL_FREQUENCY};

use async_trait::async_trait;
use flow::{ComponentError, Context, ExportsHandle, Health, HealthState, TypedComponent};
use river::types::OptionalSecret;
use river::Value;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long to wait after a file event before reading, so that a write in progress is read whole and a burst
/// of events costs one read (the reference waits the same 30 ms).
pub const EVENT_DEBOUNCE: Duration = Duration::from_millis(30);

/// The shortest polling period used, whatever `poll_frequency` says, so that a tiny value cannot turn polling
/// into a busy loop.
pub const MIN_POLL_PERIOD: Duration = Duration::from_millis(10);

/// Why the file could not be read. The text names the file and the OS error, never the content.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS refused or failed the read.
    #[error("failed to read file {path:?}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("failed to read file {path:?}: content is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
}

/// Turns raw bytes into content, or the error naming the file.
fn decode_content(path: &Path, read: std::io::Result<Vec<u8>>) -> Result<String, ReadError> {
    let bytes = read.map_err(|error| ReadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The exports: `content`, a string or a secret.
#[derive(Serialize)]
struct Exports {
    content: OptionalSecret,
}

/// What the UI shows under "debug info". Never the content.
#[derive(Serialize)]
struct DebugInfo<'a> {
    filename: &'a str,
    detector: &'static str,
    poll_frequency: river::types::Duration,
    is_secret: bool,
    /// RFC 3339 time of the last successful read.
    last_read: Option<String>,
    /// The last read error, while the file cannot be read.
    last_error: Option<&'a str>,
    /// How many times the file was read (successfully or not).
    read_count: u64,
    /// How many times new content was published (an unchanged re-read publishes nothing).
    publish_count: u64,
}

/// The `local.file` component.
pub struct LocalFile {
    shared: Arc<Shared>,
    /// Tells the run loop to re-watch after an update.
    config: tokio_watch::Sender<Arguments>,
}

struct Shared {
    exports: ExportsHandle,
    span: tracing::Span,
    /// Held across "decide whether to publish" and "publish", so that two reads cannot publish out of order.
    /// Never held while waiting for I/O, and the runtime never takes it, so it cannot deadlock with the
    /// runtime's own lock (which is held while it asks for our health).
    publish: Mutex<()>,
    state: Mutex<State>,
}

struct State {
    args: Arguments,
    /// Bumped by every update; a read started under an older generation is dropped, so a slow read of the
    /// previous file can never overwrite the new file's content.
    generation: u64,
    /// The content last published, with the secrecy it was published with.
    published: Option<(String, bool)>,
    health: Health,
    last_read: Option<SystemTime>,
    last_error: Option<String>,
    read_count: u64,
    publish_count: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The file name and generation a read should use now.
    fn snapshot(&self) -> (PathBuf, u64) {
        let st = lock(&self.state);
        (PathBuf::from(&st.args.filename), st.generation)
    }

    /// Reads the file now (async) and applies the result.
    async fn reload(&self) {
        let (path, generation) = self.snapshot();
        let read = tokio::fs::read(&path).await;
        self.apply(generation, decode_content(&path, read));
    }

    /// Records a read: publishes changed content, or reports the error. Returns the error, if any.
    fn apply(&self, generation: u64, read: Result<String, ReadError>) -> Option<String> {
        let _publishing = lock(&self.publish);
        let mut st = lock(&self.state);
        if st.generation != generation {
            return None;
        }
        st.read_count += 1;
        match read {
            Ok(content) => {
                st.last_read = Some(SystemTime::now());
                st.last_error = None;
                if st.health.state != HealthState::Healthy {
                    if st.published.is_some() {
                        tracing::info!(path = %st.args.filename, "file is readable again");
                    }
                    st.health = Health::new(HealthState::Healthy, "read file");
                }
                let is_secret = st.args.is_secret;
                let unchanged = st
                    .published
                    .as_ref()
                    .is_some_and(|(c, s)| *s == is_secret && *c == content);
                if unchanged {
                    return None;
                }
                let exports = Exports {
                    content: if is_secret {
                        OptionalSecret::secret(content.as_str())
                    } else {
                        OptionalSecret::plain(content.as_str())
                    },
                };
                tracing::debug!(path = %st.args.filename, "publishing new content");
                st.published = Some((content, is_secret));
                st.publish_count += 1;
                // Publish without our state lock: the runtime may be waiting on it (for `health`) while
                // holding its own lock, which publishing takes.
                drop(st);
                if let Err(e) = self.exports.publish(&exports) {
                    tracing::error!(error = %e, "failed to publish exports");
                }
                None
            }
            Err(error) => {
                let message = error.to_string();
                if st.health.state != HealthState::Unhealthy || st.health.message != message {
                    tracing::error!(path = %st.args.filename, error = %message, "failed to read file");
                    st.health = Health::new(HealthState::Unhealthy, message.clone());
                }
                st.last_error = Some(message.clone());
                Some(message)
            }
        }
    }
}

#[async_trait]
impl TypedComponent for LocalFile {
    const NAME: &'static str = "local.file";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let _entered = ctx.span.enter();
        let shared = Arc::new(Shared {
            exports: ctx.exports.clone(),
            span: ctx.span.clone(),
            publish: Mutex::new(()),
            state: Mutex::new(State {
                args: args.clone(),
                generation: 0,
                published: None,
                health: Health::new(HealthState::Unknown, "not read yet"),
                last_read: None,
                last_error: None,
                read_count: 0,
                publish_count: 0,
            }),
        });
        // The first read decides whether the component can be built at all, as in the reference.
        let path = PathBuf::from(&args.filename);
        let read = decode_content(&path, std::fs::read(&path));
        if let Some(message) = shared.apply(0, read) {
            return Err(ComponentError::new(message));
        }
        let (config, _) = tokio_watch::channel(args);
        Ok(LocalFile { shared, config })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let span = self.shared.span.clone();
        self.run_loop(cancel).instrument(span).await;
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        let span = self.shared.span.clone();
        self.apply_update(args).instrument(span).await;
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        Some(lock(&self.shared.state).health.clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.shared.state);
        let info = DebugInfo {
            filename: &st.args.filename,
            detector: st.args.detector.as_str(),
            poll_frequency: st.args.poll_frequency,
            is_secret: st.args.is_secret,
            last_read: st
                .last_read
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            last_error: st.last_error.as_deref(),
            read_count: st.read_count,
            publish_count: st.publish_count,
        };
        river::encode::to_value(&info).ok()
    }
}

impl LocalFile {
    /// Switches to new arguments: reads the (possibly new) file at once, then has the run loop re-watch.
    async fn apply_update(&self, args: Arguments) {
        let generation = {
            let mut st = lock(&self.shared.state);
            st.generation += 1;
            st.args = args.clone();
            st.generation
        };
        tracing::info!(path = %args.filename, detector = %args.detector, "arguments updated");
        // A read error is reported as health, not as an update error, so that it clears when the file comes
        // back (an update error would stick until the next update).
        let path = PathBuf::from(&args.filename);
        let read = tokio::fs::read(&path).await;
        self.shared.apply(generation, decode_content(&path, read));
        self.config.send_replace(args);
    }

    /// Watches and re-reads until cancelled; re-configures whenever `update` changes the arguments.
    async fn run_loop(&self, cancel: CancellationToken) {
        let mut config = self.config.subscribe();
        loop {
            let args = config.borrow_and_update().clone();
            let path = PathBuf::from(&args.filename);
            // Capacity 1: pending wake-ups coalesce.
            let (wake_tx, mut wake) = mpsc::channel::<()>(1);
            let mut watcher = match args.detector {
                Detector::Poll => None,
                Detector::Fsnotify => match watch::FileWatcher::new(&path, wake_tx.clone()) {
                    Ok(w) => Some(w),
                    Err(error) => {
                        tracing::warn!(path = %args.filename, %error, "cannot watch for file events; polling only");
                        None
                    }
                },
            };
            let period = args.poll_frequency.to_std_saturating().max(MIN_POLL_PERIOD);
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tracing::debug!(path = %args.filename, detector = %args.detector, ?period, "watching file");
            // A change between the last read and the watch being set up would otherwise wait for the next
            // poll; this read is cheap and publishes nothing if the content is the same.
            self.shared.reload().await;

            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = config.changed() => {
                        if changed.is_err() {
                            // The component is being dropped; nothing more will change.
                            cancel.cancelled().await;
                            return;
                        }
                        break;
                    }
                    _ = ticker.tick() => {
                        if let Some(w) = watcher.as_mut() {
                            w.rewatch();
                        }
                        self.shared.reload().await;
                    }
                    Some(()) = wake.recv() => {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(EVENT_DEBOUNCE) => {}
                        }
                        // Events that arrived while waiting are covered by the read below.
                        while wake.try_recv().is_ok() {}
                        // The file may have been re-created: watch the new one (its old watch ended).
                        if let Some(w) = watcher.as_mut() {
                            w.rewatch();
                        }
                        self.shared.reload().await;
                    }
                }
            }
        }
    }
}

/// Registers `local.file` in a registry.
pub fn register(registry: &mut flow::Registry) -> Result<(), flow::NameError> {
    registry.register::<LocalFile>().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_name_the_file_and_the_os_error() {
        let path = Path::new("/nonexistent/dir/token");
        let err = decode_content(path, std::fs::read(path)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("failed to read file \"/nonexistent/dir/token\": "),
            "{text}"
        );
        assert!(text.contains("os error"), "{text}");
    }

    #[test]
    fn invalid_utf8_is_an_error_without_the_content() {
        let err = decode_content(Path::new("f"), Ok(b"ok\xffsecret".to_vec())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not valid UTF-8") && text.contains("offset 2"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
