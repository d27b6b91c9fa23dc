//! File-system events for the directories of `discovery.file`'s patterns.
//!
//! As in the reference, the directory of each pattern is watched (so files appearing, changing, being
//! renamed over or deleted are all seen); an event wakes the component only if its path matches a pattern.
//! Directories whose own path contains glob characters are not watched: polling covers them.

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Watches the directories of some glob patterns.
pub(crate) struct DirWatcher {
    watcher: RecommendedWatcher,
    /// Directory → whether it is watched now.
    dirs: BTreeMap<PathBuf, bool>,
}

/// The directory to watch for a pattern, unless it has glob characters itself.
pub(crate) fn watch_dir(pattern: &str) -> Option<PathBuf> {
    let dir = match Path::new(pattern).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let text = dir.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        return None;
    }
    Some(dir)
}

impl DirWatcher {
    /// Starts watching for `patterns`. Fails only if the OS watcher cannot be created.
    pub(crate) fn new(patterns: &[String], wake: mpsc::Sender<()>) -> notify::Result<Self> {
        let globs: Vec<glob::Pattern> = patterns
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect();
        let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
            Ok(event) => {
                if is_relevant(&event, &globs) {
                    tracing::trace!(kind = ?event.kind, paths = ?event.paths, "target file event");
                    // Full means a wake-up is already pending; that refresh covers this event too.
                    let _ = wake.try_send(());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "file watcher error; refreshing");
                let _ = wake.try_send(());
            }
        })?;
        let dirs = patterns
            .iter()
            .filter_map(|p| watch_dir(p))
            .map(|d| (d, false))
            .collect();
        let mut w = DirWatcher { watcher, dirs };
        w.rewatch();
        Ok(w)
    }

    /// Watches the directories not watched yet (they may not have existed before).
    pub(crate) fn rewatch(&mut self) {
        for (dir, watched) in self.dirs.iter_mut() {
            if *watched {
                continue;
            }
            match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => *watched = true,
                Err(error) => tracing::debug!(
                    path = %dir.display(),
                    %error,
                    "cannot watch directory yet; relying on refresh_interval"
                ),
            }
        }
    }
}

/// Whether an event may change what the patterns match or what a matched file holds.
fn is_relevant(event: &Event, globs: &[glob::Pattern]) -> bool {
    let kind_matters = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_matters
        && event.paths.iter().any(|p| {
            globs
                .iter()
                .any(|g| g.matches_path(p) || matches_relative(g, p))
        })
}

/// Events carry absolute paths; a relative pattern is matched against the path relative to the working
/// directory.
fn matches_relative(g: &glob::Pattern, p: &Path) -> bool {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(|r| r.to_path_buf()))
        .is_some_and(|r| g.matches_path(&r) || g.matches_path(&Path::new(".").join(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::ModifyKind;

    #[test]
    fn directories_to_watch() {
        assert_eq!(watch_dir("/sd/*.json"), Some(PathBuf::from("/sd")));
        assert_eq!(watch_dir("x.json"), Some(PathBuf::from(".")));
        assert_eq!(watch_dir("/sd/*/x.json"), None);
    }

    #[test]
    fn only_events_on_matching_paths_are_relevant() {
        let globs = vec![glob::Pattern::new("/sd/*.json").unwrap()];
        let ev = |kind, p: &str| Event::new(kind).add_path(PathBuf::from(p));
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(is_relevant(&ev(modify, "/sd/a.json"), &globs));
        assert!(!is_relevant(&ev(modify, "/sd/a.yaml"), &globs));
        assert!(!is_relevant(
            &ev(
                EventKind::Access(AccessKind::Open(AccessMode::Read)),
                "/sd/a.json"
            ),
            &globs
        ));
    }
}
