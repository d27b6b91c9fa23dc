//! File-system event detection for one file.
//!
//! The parent directory is watched (so deletion, re-creation and atomic renames over the file are seen) and
//! so is the file itself (so a change behind a symlink, e.g. a Kubernetes secret volume, is seen too).
//! Events are coalesced into a capacity-1 channel: a burst of writes wakes the component once.

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Watches one file and signals `wake` when it may have changed.
pub(crate) struct FileWatcher {
    watcher: RecommendedWatcher,
    file: PathBuf,
    dir: PathBuf,
    dir_watched: bool,
}

impl FileWatcher {
    /// Starts watching `file`. Fails only if the OS watcher cannot be created; a file or directory that
    /// cannot be watched yet is retried by [`FileWatcher::rewatch`].
    pub(crate) fn new(file: &Path, wake: mpsc::Sender<()>) -> notify::Result<Self> {
        let name: Option<OsString> = file.file_name().map(OsString::from);
        let target = file.to_path_buf();
        let log_path = file.display().to_string();
        let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
            Ok(event) => {
                if is_relevant(&event, &target, name.as_deref()) {
                    tracing::trace!(path = %log_path, kind = ?event.kind, "file event");
                    // Full means a wake-up is already pending; that one read covers this event too.
                    let _ = wake.try_send(());
                }
            }
            Err(error) => {
                // We cannot tell whether the error concerns our file: re-read to find out.
                tracing::warn!(path = %log_path, %error, "file watcher error; re-reading the file");
                let _ = wake.try_send(());
            }
        })?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut w = FileWatcher {
            watcher,
            file: file.to_path_buf(),
            dir,
            dir_watched: false,
        };
        w.rewatch();
        Ok(w)
    }

    /// (Re-)establishes the watches: the directory if it was not watched yet (it may not have existed), and
    /// the file itself, whose watch ends when it is deleted or replaced.
    pub(crate) fn rewatch(&mut self) {
        if !self.dir_watched {
            match self.watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
                Ok(()) => self.dir_watched = true,
                Err(error) => tracing::warn!(
                    path = %self.dir.display(),
                    %error,
                    "failed to watch directory; relying on polling"
                ),
            }
        }
        // The old watch (if any) may point at a deleted inode; replace it with one on the current file.
        let _ = self.watcher.unwatch(&self.file);
        if let Err(error) = self.watcher.watch(&self.file, RecursiveMode::NonRecursive) {
            tracing::debug!(path = %self.file.display(), %error, "failed to watch file");
        }
    }
}

/// Whether an event may mean the content of `target` changed.
fn is_relevant(event: &Event, target: &Path, name: Option<&std::ffi::OsStr>) -> bool {
    let kind_matters = match event.kind {
        // Opening or reading (our own reads included) changes nothing; closing after a write does.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    // Directory events name the entry; file events name the watched path.
    kind_matters
        && event
            .paths
            .iter()
            .any(|p| p == target || (name.is_some() && p.file_name() == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn only_changes_of_our_file_are_relevant() {
        let target = Path::new("/etc/app/token");
        let name = target.file_name();
        let ev = |kind, p: &str| Event::new(kind).add_path(PathBuf::from(p));
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(is_relevant(&ev(modify, "/etc/app/token"), target, name));
        assert!(is_relevant(
            &ev(EventKind::Create(CreateKind::File), "/etc/app/token"),
            target,
            name
        ));
        assert!(!is_relevant(&ev(modify, "/etc/app/other"), target, name));
        assert!(!is_relevant(
            &ev(
                EventKind::Access(AccessKind::Open(AccessMode::Read)),
                "/etc/app/token"
            ),
            target,
            name
        ));
        assert!(is_relevant(
            &ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/etc/app/token"
            ),
            target,
            name
        ));
    }
}
