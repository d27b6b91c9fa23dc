//! The on-disk store: layout, atomic writes, the index of what is held, and eviction.
//!
//! Layout under the root directory:
//!
//! ```text
//! <service_name>/<profile type>/<timestamp>-<series id>.pb.gz     one profile, gzip pprof
//! <service_name>/<profile type>/<series id>.labels.json           the labels of that series
//! .tmp/                                                           files being written (never read)
//! ```
//!
//! A file is written under `.tmp/` and renamed into place, so a profile is either absent or complete, even if
//! the process is killed mid-write. `.tmp/` is emptied when the store opens.

use pyroscope::Labels;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TMP_DIR: &str = ".tmp";
const PROFILE_SUFFIX: &str = ".pb.gz";
const LABELS_SUFFIX: &str = ".labels.json";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("{op} {path:?}: {error}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// One stored profile.
#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    size: u64,
    /// The series directory key, to drop its labels file with its last profile.
    series: SeriesKey,
}

/// A series within one directory: `(relative dir, series id)`.
type SeriesKey = (PathBuf, String);

/// What the store knows of one series.
#[derive(Clone, Debug, Default)]
pub struct SeriesInfo {
    /// The labels, as recorded in its labels file (empty if that file was lost).
    pub labels: String,
    /// Profiles held.
    pub profiles: u64,
    /// Bytes held.
    pub bytes: u64,
    /// The newest profile's time (microseconds since the epoch).
    pub newest_micros: u64,
}

/// Outcome of one write.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written.
    pub bytes: u64,
    /// Profiles deleted to make room or because they expired.
    pub evicted: u64,
}

/// The store. Not synchronized: the component guards it with a mutex.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Profiles by (timestamp in µs, sequence), oldest first.
    index: BTreeMap<(u64, u64), Entry>,
    series: HashMap<SeriesKey, SeriesInfo>,
    total: u64,
    /// The last timestamp handed out, so names are unique and ordered even within one microsecond.
    last_micros: u64,
    seq: u64,
    tmp_seq: u64,
}

/// A path segment from a label value: readable, never `.`/`..`, never containing a separator.
pub fn path_segment(value: &str) -> String {
    let mut s: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = s.replace('.', "_");
        if s.is_empty() {
            s.push('_');
        }
    }
    s
}

/// A stable 64-bit FNV-1a hash of the labels, as 16 hex digits (stable across runs and builds).
pub fn series_id(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for l in labels {
        for b in l
            .name
            .bytes()
            .chain([0xff])
            .chain(l.value.bytes())
            .chain([0xfe])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// `20240102T150405.123456Z`: sortable, readable, and valid in file names everywhere.
fn format_timestamp(micros: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(micros);
    humantime::format_rfc3339_micros(t)
        .to_string()
        .replace(['-', ':'], "")
}

fn parse_timestamp(text: &str) -> Option<u64> {
    // 20240102T150405.123456Z → 2024-01-02T15:04:05.123456Z
    let b = text.as_bytes();
    if b.len() != 23 || b[8] != b'T' {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..]
    );
    let t = humantime::parse_rfc3339(&rfc).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_micros()).ok()
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn is_gzip(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

impl Store {
    /// Opens (creating) a store at `root`: empties `.tmp/` and indexes the profiles already there.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(io("cannot create directory", root))?;
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            // Leftovers of writes interrupted by a crash: never complete, never visible.
            std::fs::remove_dir_all(&tmp).map_err(io("cannot clean", &tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io("cannot create directory", &tmp))?;
        let mut store = Store {
            root: root.to_path_buf(),
            index: BTreeMap::new(),
            series: HashMap::new(),
            total: 0,
            last_micros: 0,
            seq: 0,
            tmp_seq: 0,
        };
        store.scan()?;
        Ok(store)
    }

    fn scan(&mut self) -> Result<(), StoreError> {
        let root = self.root.clone();
        for service in read_dirs(&root)? {
            if service.file_name().is_some_and(|n| n == TMP_DIR) {
                continue;
            }
            for ptype in read_dirs(&service)? {
                let rel = ptype.strip_prefix(&root).unwrap_or(&ptype).to_path_buf();
                let entries =
                    std::fs::read_dir(&ptype).map_err(io("cannot read directory", &ptype))?;
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(sid) = name.strip_suffix(LABELS_SUFFIX) {
                        let labels = std::fs::read_to_string(e.path()).unwrap_or_default();
                        self.series
                            .entry((rel.clone(), sid.to_string()))
                            .or_default()
                            .labels = labels_text(&labels);
                        continue;
                    }
                    let Some(stem) = name.strip_suffix(PROFILE_SUFFIX) else {
                        continue;
                    };
                    let Some((ts, sid)) = stem.split_once('-') else {
                        continue;
                    };
                    let Some(micros) = parse_timestamp(ts) else {
                        continue;
                    };
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    self.insert(micros, rel.clone(), sid.to_string(), e.path(), size);
                }
            }
        }
        self.last_micros = self.index.keys().next_back().map_or(0, |k| k.0);
        Ok(())
    }

    fn insert(&mut self, micros: u64, dir: PathBuf, sid: String, path: PathBuf, size: u64) {
        self.seq += 1;
        let key = (dir, sid);
        let info = self.series.entry(key.clone()).or_default();
        info.profiles += 1;
        info.bytes += size;
        info.newest_micros = info.newest_micros.max(micros);
        self.total += size;
        self.index.insert(
            (micros, self.seq),
            Entry {
                path,
                size,
                series: key,
            },
        );
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes held.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Profiles held.
    pub fn profiles(&self) -> usize {
        self.index.len()
    }

    /// The oldest and newest profile times.
    pub fn span(&self) -> Option<(SystemTime, SystemTime)> {
        let first = self.index.keys().next()?.0;
        let last = self.index.keys().next_back()?.0;
        Some((
            UNIX_EPOCH + Duration::from_micros(first),
            UNIX_EPOCH + Duration::from_micros(last),
        ))
    }

    /// The series held: `(relative directory, series id, info)`, sorted.
    pub fn series(&self) -> Vec<(&Path, &str, &SeriesInfo)> {
        let mut v: Vec<_> = self
            .series
            .iter()
            .filter(|(_, i)| i.profiles > 0)
            .map(|((d, s), i)| (d.as_path(), s.as_str(), i))
            .collect();
        v.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        v
    }

    /// Writes one profile of a series (gzip-compressing it if it is not already), then enforces the limits.
    pub fn write(
        &mut self,
        labels: &Labels,
        raw: &[u8],
        retention: Duration,
        max_size: u64,
    ) -> Result<WriteOutcome, StoreError> {
        let service = path_segment(
            labels
                .get(pyroscope::labels::SERVICE_NAME_LABEL)
                .unwrap_or("unknown"),
        );
        let ptype = path_segment(
            labels
                .get(pyroscope::labels::NAME_LABEL)
                .unwrap_or("unknown"),
        );
        let rel = PathBuf::from(&service).join(&ptype);
        let dir = self.root.join(&rel);
        let sid = series_id(labels);
        let micros = now_micros().max(self.last_micros + 1);
        self.last_micros = micros;

        std::fs::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        let key = (rel.clone(), sid.clone());
        if self.series.get(&key).is_none_or(|i| i.labels.is_empty()) {
            let text = labels_json(labels);
            self.atomic_write(&dir.join(format!("{sid}{LABELS_SUFFIX}")), text.as_bytes())?;
            self.series.entry(key).or_default().labels = labels_text(&text);
        }

        let path = dir.join(format!(
            "{}-{sid}{PROFILE_SUFFIX}",
            format_timestamp(micros)
        ));
        let size = if is_gzip(raw) {
            self.atomic_write(&path, raw)?
        } else {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 3),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(raw);
            let gz = enc.finish().unwrap_or_default();
            self.atomic_write(&path, &gz)?
        };
        self.insert(micros, rel, sid, path, size);
        let evicted = self.enforce(retention, max_size);
        Ok(WriteOutcome {
            bytes: size,
            evicted,
        })
    }

    /// Writes a file under `.tmp/` and renames it into place. Returns its size.
    fn atomic_write(&mut self, path: &Path, data: &[u8]) -> Result<u64, StoreError> {
        self.tmp_seq += 1;
        let tmp_dir = self.root.join(TMP_DIR);
        let tmp = tmp_dir.join(format!("{}-{}", std::process::id(), self.tmp_seq));
        let result = std::fs::write(&tmp, data).map_err(io("cannot write", &tmp));
        let result = match result {
            Err(StoreError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                // Someone removed .tmp/ under us; make it again once.
                std::fs::create_dir_all(&tmp_dir)
                    .map_err(io("cannot create directory", &tmp_dir))?;
                std::fs::write(&tmp, data).map_err(io("cannot write", &tmp))
            }
            other => other,
        };
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Err(error) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::Io {
                op: "cannot rename into",
                path: path.to_path_buf(),
                error,
            });
        }
        Ok(data.len() as u64)
    }

    /// Deletes the oldest profiles while the store is over `max_size` and those older than `retention`.
    /// Returns how many were deleted.
    pub fn enforce(&mut self, retention: Duration, max_size: u64) -> u64 {
        let cutoff =
            now_micros().saturating_sub(u64::try_from(retention.as_micros()).unwrap_or(u64::MAX));
        let mut evicted = 0;
        while let Some((&key, entry)) = self.index.first_key_value() {
            if self.total <= max_size && key.0 >= cutoff {
                break;
            }
            let entry = entry.clone();
            self.index.remove(&key);
            self.total -= entry.size;
            if let Err(e) = std::fs::remove_file(&entry.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %entry.path.display(), error = %e, "cannot delete old profile");
                }
            }
            evicted += 1;
            if let Some(info) = self.series.get_mut(&entry.series) {
                info.profiles -= 1;
                info.bytes -= entry.size;
                if info.profiles == 0 {
                    let (dir, sid) = &entry.series;
                    let _ = std::fs::remove_file(
                        self.root.join(dir).join(format!("{sid}{LABELS_SUFFIX}")),
                    );
                    self.series.remove(&entry.series);
                }
            }
        }
        evicted
    }
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(io("cannot read directory", dir))?;
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// The labels file: a JSON object of label name → value, sorted, one per line for people and `jq`.
fn labels_json(labels: &Labels) -> String {
    let map: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|l| {
            (
                l.name.to_string(),
                serde_json::Value::String(l.value.to_string()),
            )
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&map).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The labels of a labels file in the canonical `{a="b"}` form, for debug info.
fn labels_text(json: &str) -> String {
    let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) else {
        return String::new();
    };
    Labels::from_pairs(
        map.iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
    )
    .canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(svc: &str) -> Labels {
        Labels::from_pairs([
            ("service_name", svc),
            ("__name__", "process_cpu"),
            ("env", "prod"),
        ])
    }

    #[test]
    fn timestamps_round_trip_and_sort() {
        let m = 1_704_207_845_123_456;
        let t = format_timestamp(m);
        assert_eq!(t, "20240102T150405.123456Z");
        assert_eq!(parse_timestamp(&t), Some(m));
        assert!(format_timestamp(m) < format_timestamp(m + 1));
        assert_eq!(parse_timestamp("garbage"), None);
    }

    #[test]
    fn path_segments_are_safe() {
        assert_eq!(path_segment("ns/container"), "ns_container");
        assert_eq!(path_segment(".."), "__");
        assert_eq!(path_segment(""), "_");
        assert_eq!(path_segment("my-app.v2"), "my-app.v2");
    }

    #[test]
    fn series_ids_are_stable_and_distinct() {
        assert_eq!(series_id(&labels("a")), series_id(&labels("a")));
        assert_ne!(series_id(&labels("a")), series_id(&labels("b")));
        // Fixed value: the id must not change between builds, or files would stop matching their labels.
        assert_eq!(
            series_id(&Labels::from_pairs([("a", "b")])),
            series_id(&Labels::from_pairs([("a", "b")]))
        );
        assert_eq!(series_id(&Labels::new()), "cbf29ce484222325");
    }

    #[test]
    fn writes_layout_and_reopens_with_the_same_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let l = labels("my/app");
        s.write(&l, b"\x1f\x8bgzipped", Duration::from_secs(3600), 1 << 30)
            .unwrap();
        s.write(&l, b"plain", Duration::from_secs(3600), 1 << 30)
            .unwrap();
        let type_dir = dir.path().join("my_app/process_cpu");
        let mut names: Vec<String> = std::fs::read_dir(&type_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let sid = series_id(&l);
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[2], format!("{sid}.labels.json"));
        assert!(names[0].ends_with(&format!("-{sid}.pb.gz")), "{names:?}");
        let labels_file = std::fs::read_to_string(type_dir.join(&names[2])).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&labels_file).unwrap();
        assert_eq!(parsed["service_name"], "my/app");
        // The plain body was compressed; the gzip one kept as is.
        let second = std::fs::read(type_dir.join(&names[1])).unwrap();
        assert!(is_gzip(&second));
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&second[..]), &mut out)
            .unwrap();
        assert_eq!(out, "plain");
        assert_eq!(
            std::fs::read(type_dir.join(&names[0])).unwrap(),
            b"\x1f\x8bgzipped"
        );

        let total = s.total_bytes();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.profiles(), 2);
        assert_eq!(s.total_bytes(), total);
        let series = s.series();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].1, sid);
        assert_eq!(series[0].2.labels, l.canonical());
    }

    #[test]
    fn size_limit_deletes_the_oldest_and_their_labels_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let body = vec![0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0]; // 10 bytes
        let hour = Duration::from_secs(3600);
        s.write(&labels("old"), &body, hour, 25).unwrap();
        s.write(&labels("mid"), &body, hour, 25).unwrap();
        let out = s.write(&labels("new"), &body, hour, 25).unwrap();
        assert_eq!(out.evicted, 1);
        assert_eq!(s.total_bytes(), 20);
        assert!(!dir
            .path()
            .join("old/process_cpu")
            .read_dir()
            .unwrap()
            .any(|_| true));
        assert_eq!(
            dir.path()
                .join("mid/process_cpu")
                .read_dir()
                .unwrap()
                .count(),
            2
        );
    }

    #[test]
    fn retention_deletes_expired_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let body = b"\x1f\x8b..";
        s.write(&labels("a"), body, Duration::from_secs(3600), 1 << 20)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.enforce(Duration::from_millis(10), 1 << 20), 1);
        assert_eq!(s.profiles(), 0);
        assert_eq!(s.total_bytes(), 0);
    }

    #[test]
    fn interrupted_writes_are_cleaned_and_never_indexed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".tmp")).unwrap();
        std::fs::write(dir.path().join(".tmp/123-1"), b"half").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.profiles(), 0);
        assert_eq!(dir.path().join(".tmp").read_dir().unwrap().count(), 0);
    }
}
