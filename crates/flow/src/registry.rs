//! Component names and their rules.

use std::fmt;

/// A validated component name such as `pyroscope.scrape`: dot-separated segments, each matching
/// `[A-Za-z][0-9A-Za-z_]*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentName(String);

/// Why a component name was refused at registration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A segment is empty or has a character outside `[A-Za-z][0-9A-Za-z_]*`.
    #[error("invalid component name {0:?}: segments must match [A-Za-z][0-9A-Za-z_]*")]
    Invalid(String),
    /// The same name was registered twice.
    #[error("component {0:?} is registered twice")]
    Duplicate(String),
    /// One name is a dotted prefix of another (`a.b` and `a.b.c`), which would make references ambiguous.
    #[error("component {0:?} conflicts with {1:?}: one name is a prefix of the other")]
    PrefixConflict(String, String),
}

impl ComponentName {
    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let valid = name.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if valid {
            Ok(ComponentName(name.to_string()))
        } else {
            Err(NameError::Invalid(name.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is a dotted prefix of `other` or the other way round.
    pub fn conflicts_with(&self, other: &ComponentName) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        let prefix = |short: &str, long: &str| {
            long.len() > short.len()
                && long.starts_with(short)
                && long.as_bytes()[short.len()] == b'.'
        };
        prefix(a, b) || prefix(b, a)
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(ComponentName::new("pyroscope.scrape").is_ok());
        assert!(ComponentName::new("local.file").is_ok());
        for bad in ["", "a..b", "1a", "a.b-c", ".a", "a."] {
            assert_eq!(
                ComponentName::new(bad),
                Err(NameError::Invalid(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_conflicts_are_detected() {
        let n = |s| ComponentName::new(s).unwrap();
        assert!(n("a.b").conflicts_with(&n("a.b.c")));
        assert!(n("a.b.c").conflicts_with(&n("a.b")));
        assert!(!n("a.b").conflicts_with(&n("a.bc")));
        assert!(!n("a.b").conflicts_with(&n("a.b")));
    }

    #[test]
    fn suggestions_find_typos_only() {
        let names = ["pyroscope.scrape", "pyroscope.write", "local.file"];
        assert_eq!(suggest("pyroscope.scrap", names), Some("pyroscope.scrape"));
        assert_eq!(suggest("pyroscope.wirte", names), Some("pyroscope.write"));
        assert_eq!(suggest("prometheus.remote_write", names), None);
    }
}
