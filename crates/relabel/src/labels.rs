//! Label sets (targets): immutable, sorted by name, cheap to clone.

use river::Value;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// A target: a set of labels with unique names, sorted by name.
///
/// The names and the values are two shared lists: targets with the same label names (most targets of one
/// discovery) share one list of names, and cloning a target shares both, so passing a target through rules
/// that leave it alone costs no allocation, and building one that a rule changed costs one (its values).
/// An input label may have an empty value (it is kept, as in the reference); relabelling treats it as
/// missing and never produces one.
#[derive(Clone, Default)]
pub struct Target {
    names: Arc<[Arc<str>]>,
    values: Arc<[Arc<str>]>,
}

impl Target {
    /// A target from labels in any order. Later duplicates replace earlier ones.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels: Vec<(Arc<str>, Arc<str>)> = Vec::new();
        let mut names = names();
        for (n, v) in pairs {
            let (n, v) = (n.as_ref(), v.as_ref());
            match labels.binary_search_by(|(ln, _)| (**ln).cmp(n)) {
                Ok(i) => labels[i].1 = Arc::from(v),
                Err(i) => labels.insert(i, (names.intern(n), Arc::from(v))),
            }
        }
        let list = names.list(labels.iter().map(|(n, _)| n));
        Target {
            names: list,
            values: labels.into_iter().map(|(_, v)| v).collect(),
        }
    }

    /// A target from a list of names (sorted, unique) and their values, in the same order.
    pub(crate) fn from_parts<I>(names: Arc<[Arc<str>]>, values: I) -> Self
    where
        I: Iterator<Item = Arc<str>> + ExactSizeIterator,
    {
        let values: Arc<[Arc<str>]> = values.collect();
        debug_assert_eq!(names.len(), values.len());
        Target { names, values }
    }

    /// The value of a label, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| &*self.values[i])
    }

    /// The index of a label.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        // Label names share long prefixes (`__meta_kubernetes_pod_...`), which makes ordered comparisons
        // costly; for typical sizes a scan that compares lengths first is faster.
        if self.names.len() <= 32 {
            return self
                .names
                .iter()
                // Names from the shared table are found by address; others by text.
                .position(|n| {
                    n.len() == name.len() && (n.as_ptr() == name.as_ptr() || **n == *name)
                });
        }
        self.names.binary_search_by(|n| (**n).cmp(name)).ok()
    }

    /// The label names, sorted (shared by targets with the same names).
    pub(crate) fn names(&self) -> &Arc<[Arc<str>]> {
        &self.names
    }

    /// The name of label `i`.
    pub(crate) fn name(&self, i: usize) -> &Arc<str> {
        &self.names[i]
    }

    /// The value of label `i`.
    pub(crate) fn value(&self, i: usize) -> &Arc<str> {
        &self.values[i]
    }

    /// `(name, value)` pairs, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.names
            .iter()
            .zip(self.values.iter())
            .map(|(n, v)| (&**n, &**v))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether both share the same storage (a cheap "certainly equal").
    pub fn ptr_eq(&self, other: &Target) -> bool {
        Arc::ptr_eq(&self.values, &other.values) && Arc::ptr_eq(&self.names, &other.names)
    }

    /// The target as a River object (`map(string)`).
    pub fn to_value(&self) -> Value {
        let mut obj = river::value::Object::with_capacity(self.len());
        for (n, v) in self.names.iter().zip(self.values.iter()) {
            obj.insert(n.to_string(), Value::String(v.clone()));
        }
        Value::object(obj)
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        // Arc<str> compares addresses before text.
        self.ptr_eq(other) || (self.names == other.names && self.values == other.values)
    }
}

impl Eq for Target {}

impl Hash for Target {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (n, v) in self.iter() {
            n.hash(state);
            v.hash(state);
        }
    }
}

/// Label by label: name, then value.
impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// FNV-1a, for short strings.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Label names, shared by every target that has them.
///
/// Thousands of targets carry the same dozen names; one copy of each saves memory and keeps the names hot in
/// the cache when rules look labels up. Targets with the same names share one list of them too, whichever
/// order they are made in (several discoveries may interleave). Names and lists no target uses any more are
/// purged whenever their set has doubled since the last purge, so odd inputs cannot make it grow without
/// bound.
pub(crate) struct Names {
    set: HashSet<Arc<str>, BuildHasherDefault<Fnv>>,
    purge_at: usize,
    /// Lists of names, by a hash of their names' addresses (names are interned, so the addresses say it all).
    lists: HashMap<u64, Vec<NameList>, BuildHasherDefault<Fnv>>,
    list_count: usize,
    lists_purge_at: usize,
}

/// A shared list of label names.
type NameList = Arc<[Arc<str>]>;

const MIN_PURGE_AT: usize = 1024;

impl Names {
    /// The shared copy of `name`.
    pub(crate) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.set.get(name) {
            return n.clone();
        }
        if self.set.len() >= self.purge_at {
            // Unused lists hold names too: they go first.
            self.purge_lists();
            self.set.retain(|n| Arc::strong_count(n) > 1);
            self.purge_at = (self.set.len() * 2).max(MIN_PURGE_AT);
        }
        let n: Arc<str> = Arc::from(name);
        self.set.insert(n.clone());
        n
    }

    /// The shared list of these (interned) names.
    pub(crate) fn list<'a>(
        &mut self,
        names: impl ExactSizeIterator<Item = &'a Arc<str>> + Clone,
    ) -> NameList {
        let mut h = Fnv::default();
        for n in names.clone() {
            h.write_usize(n.as_ptr() as usize);
        }
        let key = h.finish();
        let same = |l: &NameList| {
            l.len() == names.len() && l.iter().zip(names.clone()).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if let Some(l) = self
            .lists
            .get(&key)
            .and_then(|b| b.iter().find(|l| same(l)))
        {
            return l.clone();
        }
        if self.list_count >= self.lists_purge_at {
            self.purge_lists();
        }
        let l: NameList = names.cloned().collect();
        self.lists.entry(key).or_default().push(l.clone());
        self.list_count += 1;
        l
    }

    /// Drops the lists only this table holds.
    fn purge_lists(&mut self) {
        self.lists.retain(|_, b| {
            b.retain(|l| Arc::strong_count(l) > 1);
            !b.is_empty()
        });
        self.list_count = self.lists.values().map(Vec::len).sum();
        self.lists_purge_at = (self.list_count * 2).max(MIN_PURGE_AT);
    }
}

static NAMES: LazyLock<Mutex<Names>> = LazyLock::new(|| {
    Mutex::new(Names {
        set: HashSet::default(),
        purge_at: MIN_PURGE_AT,
        lists: HashMap::default(),
        list_count: 0,
        lists_purge_at: MIN_PURGE_AT,
    })
});

/// The name table, locked.
pub(crate) fn names() -> MutexGuard<'static, Names> {
    // The table is always consistent (a panic cannot leave it half-updated), so a poisoned lock is usable.
    NAMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A list of targets as a River array (`list(map(string))`).
pub fn targets_to_value(targets: &[Target]) -> Value {
    Value::array(targets.iter().map(Target::to_value).collect())
}

/// `{a="1", b="2"}`, the Prometheus notation.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Target;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
                let mut pairs: Vec<(String, String)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    pairs.push((k, v));
                }
                Ok(Target::from_pairs(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_unique() {
        let t = Target::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            [("a", "1"), ("b", "3"), ("c", "")]
        );
        assert_eq!(t.get("b"), Some("3"));
        assert_eq!(t.get("c"), Some(""));
        assert_eq!(t.get("d"), None);
        assert_eq!(t.to_string(), r#"{a="1", b="3", c=""}"#);
    }

    #[test]
    fn names_are_shared_and_unused_ones_purged() {
        let a = Target::from_pairs([("shared_name_x", "1")]);
        let b = Target::from_pairs([("shared_name_x", "2")]);
        assert!(Arc::ptr_eq(a.name(0), b.name(0)));
        // Many names no target keeps: the table does not keep them all.
        for i in 0..10 * MIN_PURGE_AT {
            drop(Target::from_pairs([(format!("gone_{i}"), "v")]));
        }
        assert!(names().set.len() < 3 * MIN_PURGE_AT);
        assert!(names().list_count < 3 * MIN_PURGE_AT);
        let c = Target::from_pairs([("shared_name_x", "3")]);
        assert!(Arc::ptr_eq(a.name(0), c.name(0)));
    }

    #[test]
    fn targets_with_the_same_names_share_them() {
        let a = Target::from_pairs([("x", "1"), ("y", "2")]);
        // Made in between (here, or by another test's thread): no matter.
        let other = Target::from_pairs([("x", "1"), ("z", "2")]);
        let b = Target::from_pairs([("y", "3"), ("x", "4")]);
        assert!(Arc::ptr_eq(a.names(), b.names()));
        assert!(!Arc::ptr_eq(a.names(), other.names()));
        assert_ne!(a, b);
        assert!(!a.ptr_eq(&b));
        let c = Target::from_pairs([("x", "1"), ("y", "2")]);
        assert_eq!(a, c);
        assert!(!a.ptr_eq(&c) && a.ptr_eq(&a.clone()));
    }

    fn hash_of(t: &Target) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    proptest::proptest! {
        /// A target holds what a sorted map of its pairs holds (later duplicates winning), and compares,
        /// orders and hashes as the list of its pairs does.
        #[test]
        fn targets_match_a_sorted_map(
            a in proptest::collection::vec(("[abc_]{0,3}", "[xy]{0,2}"), 0..8),
            b in proptest::collection::vec(("[abc_]{0,3}", "[xy]{0,2}"), 0..8),
        ) {
            use std::collections::BTreeMap;
            let model = |pairs: &[(String, String)]| -> Vec<(String, String)> {
                pairs.iter().cloned().collect::<BTreeMap<_, _>>().into_iter().collect()
            };
            let (ta, tb) = (Target::from_pairs(a.clone()), Target::from_pairs(b.clone()));
            let (ma, mb) = (model(&a), model(&b));
            let got: Vec<(String, String)> =
                ta.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            proptest::prop_assert_eq!(&got, &ma);
            proptest::prop_assert_eq!(ta.len(), ma.len());
            for (n, v) in &ma {
                proptest::prop_assert_eq!(ta.get(n), Some(v.as_str()));
            }
            proptest::prop_assert_eq!(ta.get("zz"), None);
            proptest::prop_assert_eq!(ta == tb, ma == mb);
            proptest::prop_assert_eq!(ta.cmp(&tb), ma.cmp(&mb));
            // The same pairs in another order: an equal target with an equal hash.
            let mut rev = ma.clone();
            rev.reverse();
            let tr = Target::from_pairs(rev);
            proptest::prop_assert_eq!(&tr, &ta);
            let (h1, h2) = (hash_of(&ta), hash_of(&tr));
            proptest::prop_assert_eq!(h1, h2);
        }
    }

    #[test]
    fn json_round_trip() {
        let t: Target = serde_json::from_str(r#"{"z":"1","a":"x"}"#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"a":"x","z":"1"}"#);
    }
}
