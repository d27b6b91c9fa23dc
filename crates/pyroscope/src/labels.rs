//! Label sets.

use std::fmt;
use std::sync::Arc;

/// The label holding the profile type (`process_cpu`, `memory`, ...).
pub const NAME_LABEL: &str = "__name__";
/// The label telling the server whether the profile still needs a delta computed (`"false"`: it is a delta).
pub const DELTA_LABEL: &str = "__delta__";
/// The service a profile belongs to.
pub const SERVICE_NAME_LABEL: &str = "service_name";

/// One label. Names and values are shared, so copying a label set copies pointers, not text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The name.
    pub name: Arc<str>,
    /// The value.
    pub value: Arc<str>,
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name, self.value)
    }
}

/// A set of labels sorted by name, each name at most once.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// An empty set.
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// A set from pairs; a later pair wins over an earlier one with the same name.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut set = Labels::new();
        for (n, v) in pairs {
            set.set(n.as_ref(), v.as_ref());
        }
        set
    }

    /// The value of a label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].value.as_ref())
    }

    /// Sets a label (replacing its value if present).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Ok(i) => {
                if *self.0[i].value != *value {
                    self.0[i].value = Arc::from(value);
                }
            }
            Err(i) => self.0.insert(
                i,
                Label {
                    name: Arc::from(name),
                    value: Arc::from(value),
                },
            ),
        }
    }

    /// Sets a label only if it is absent.
    pub fn set_default(&mut self, name: &str, value: &str) {
        if let Err(i) = self.position(name) {
            self.0.insert(
                i,
                Label {
                    name: Arc::from(name),
                    value: Arc::from(value),
                },
            );
        }
    }

    /// Removes a label, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Arc<str>> {
        self.position(name).ok().map(|i| self.0.remove(i).value)
    }

    /// Keeps the labels for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        self.0.retain(|l| keep(l));
    }

    /// Drops internal labels (`__*`) except `__name__` and `__delta__`: what is forwarded and pushed.
    pub fn without_internal(&self) -> Labels {
        let mut out = self.clone();
        out.retain(|l| !is_internal(&l.name));
        out
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The Prometheus-style text `{a="b", c="d"}` (values escaped as Go's `%q` would), the form clustering
    /// hashes.
    pub fn canonical(&self) -> String {
        self.to_string()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|l| (*l.name).cmp(name))
    }
}

/// Whether a label is internal and must not leave the process.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("__") && name != NAME_LABEL && name != DELTA_LABEL
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, &*l.value)?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_later_wins() {
        let l = Labels::from_pairs([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(l.to_string(), r#"{a="2", b="3"}"#);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn set_default_and_remove() {
        let mut l = Labels::from_pairs([("job", "x")]);
        l.set_default("job", "y");
        l.set_default("instance", "h:80");
        assert_eq!(l.to_string(), r#"{instance="h:80", job="x"}"#);
        assert_eq!(l.remove("job").as_deref(), Some("x"));
        assert_eq!(l.remove("job"), None);
    }

    #[test]
    fn internal_labels_are_dropped_except_name_and_delta() {
        let l = Labels::from_pairs([
            ("__address__", "h:80"),
            ("__name__", "memory"),
            ("__delta__", "false"),
            ("__meta_x", "y"),
            ("service_name", "svc"),
        ]);
        assert_eq!(
            l.without_internal().to_string(),
            r#"{__delta__="false", __name__="memory", service_name="svc"}"#
        );
    }

    #[test]
    fn canonical_form_escapes_values() {
        let l = Labels::from_pairs([("a", "q\"uote\n")]);
        assert_eq!(l.canonical(), r#"{a="q\"uote\n"}"#);
    }
}
