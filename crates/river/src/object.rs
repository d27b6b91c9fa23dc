//! [`Object`]: the fields of a River object, in insertion order.
//!
//! Most objects have a handful of fields (a component's exports, a literal such as `{ job = "x" }`): those
//! are kept in a vector and looked up by comparing keys, which costs less than hashing the key (and needs
//! no hash table to allocate). An object that grows past [`SMALL`] fields becomes an [`IndexMap`] with the
//! standard library's randomly keyed hasher, so keys from files a user does not control cannot make lookups
//! slow.

use crate::value::Value;
use indexmap::IndexMap;
use smallvec::SmallVec;
use std::fmt;

/// Up to this many fields, an object is a vector searched in place.
const SMALL: usize = 8;

/// The fields of a small object. One is kept inline: it takes no more room than the map of a large object
/// does, and an object of one field (a component's exports such as `{ receiver = ... }`, built for every
/// publish) then needs no allocation of its own.
type Fields = SmallVec<[(String, Value); 1]>;

/// The room a small object takes when it outgrows its inline field: what a vector's first allocation holds.
const SPILL: usize = 4;

/// An insertion-ordered map of object fields (its methods are named like [`IndexMap`]'s).
#[derive(Clone)]
pub struct Object {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// At most [`SMALL`] fields, distinct keys.
    Small(Fields),
    Large(IndexMap<String, Value>),
}

impl Default for Object {
    fn default() -> Self {
        Object::new()
    }
}

impl Object {
    /// An empty object (allocates nothing).
    pub const fn new() -> Self {
        Object {
            repr: Repr::Small(Fields::new_const()),
        }
    }

    /// An empty object with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        let repr = if capacity <= SMALL {
            Repr::Small(Fields::with_capacity(capacity))
        } else {
            Repr::Large(IndexMap::with_capacity(capacity))
        };
        Object { repr }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Large(m) => m.len(),
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of field `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.repr {
            Repr::Small(v) => v.iter().find(|(k, _)| k == key).map(|(_, value)| value),
            Repr::Large(m) => m.get(key),
        }
    }

    /// The value of field `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match &mut self.repr {
            Repr::Small(v) => v.iter_mut().find(|(k, _)| k == key).map(|(_, value)| value),
            Repr::Large(m) => m.get_mut(key),
        }
    }

    /// Whether there is a field `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The field at position `index` (in insertion order).
    pub fn get_index(&self, index: usize) -> Option<(&String, &Value)> {
        match &self.repr {
            Repr::Small(v) => v.get(index).map(|(k, value)| (k, value)),
            Repr::Large(m) => m.get_index(index),
        }
    }

    /// Sets field `key`. A new key goes last; an existing one keeps its position and its old value is
    /// returned.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match &mut self.repr {
            Repr::Small(v) => {
                if let Some((_, old)) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(old, value));
                }
                if v.len() < SMALL {
                    // Leaving the inline field, grow as a vector would (straight to 4), not to 2 first.
                    if !v.spilled() && v.len() == v.inline_size() {
                        v.reserve_exact(SPILL - v.len());
                    }
                    v.push((key, value));
                    return None;
                }
                let mut map: IndexMap<String, Value> = std::mem::take(v).into_iter().collect();
                map.insert(key, value);
                self.repr = Repr::Large(map);
                None
            }
            Repr::Large(m) => m.insert(key, value),
        }
    }

    /// The value of field `key`, set to `default()` first (as the last field) if there is none.
    pub fn get_or_insert_with(&mut self, key: &str, default: impl FnOnce() -> Value) -> &mut Value {
        let at = match self.index_of(key) {
            Some(at) => at,
            None => {
                self.insert(key.to_string(), default());
                self.len() - 1
            }
        };
        match &mut self.repr {
            Repr::Small(v) => &mut v[at].1,
            Repr::Large(m) => &mut m[at],
        }
    }

    /// The position of field `key`.
    fn index_of(&self, key: &str) -> Option<usize> {
        match &self.repr {
            Repr::Small(v) => v.iter().position(|(k, _)| k == key),
            Repr::Large(m) => m.get_index_of(key),
        }
    }

    /// Removes field `key`, keeping the others in order.
    pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
        match &mut self.repr {
            Repr::Small(v) => {
                let at = v.iter().position(|(k, _)| k == key)?;
                Some(v.remove(at).1)
            }
            Repr::Large(m) => m.shift_remove(key),
        }
    }

    /// Sorts the fields by key.
    pub fn sort_keys(&mut self) {
        match &mut self.repr {
            Repr::Small(v) => v.sort_by(|a, b| a.0.cmp(&b.0)),
            Repr::Large(m) => m.sort_keys(),
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Small(v) => Iter(IterRepr::Small(v.iter())),
            Repr::Large(m) => Iter(IterRepr::Large(m.iter())),
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + DoubleEndedIterator {
        self.iter().map(|(k, _)| k)
    }

    /// The values in order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + DoubleEndedIterator {
        self.iter().map(|(_, value)| value)
    }
}

/// The fields of an [`Object`] in order.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Small(std::slice::Iter<'a, (String, Value)>),
    Large(indexmap::map::Iter<'a, String, Value>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Small(it) => it.next().map(|(k, value)| (k, value)),
            IterRepr::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Small(it) => it.size_hint(),
            IterRepr::Large(it) => it.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Small(it) => it.next_back().map(|(k, value)| (k, value)),
            IterRepr::Large(it) => it.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Object {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The fields of an [`Object`] in order, owned.
pub struct IntoIter(IntoIterRepr);

enum IntoIterRepr {
    Small(smallvec::IntoIter<[(String, Value); 1]>),
    Large(indexmap::map::IntoIter<String, Value>),
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IntoIterRepr::Small(it) => it.next(),
            IntoIterRepr::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IntoIterRepr::Small(it) => it.size_hint(),
            IntoIterRepr::Large(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for Object {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        match self.repr {
            Repr::Small(v) => IntoIter(IntoIterRepr::Small(v.into_iter())),
            Repr::Large(m) => IntoIter(IntoIterRepr::Large(m.into_iter())),
        }
    }
}

impl Extend<(String, Value)> for Object {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, fields: I) {
        for (k, value) in fields {
            self.insert(k, value);
        }
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(fields: I) -> Self {
        let fields = fields.into_iter();
        let mut object = Object::with_capacity(fields.size_hint().0);
        object.extend(fields);
        object
    }
}

/// `object["key"]`: the value of field `key`; panics if there is none (as indexing an [`IndexMap`] does).
impl std::ops::Index<&str> for Object {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(value) => value,
            None => panic!("object has no field {key:?}"),
        }
    }
}

/// Equal when they have the same fields with equal values, in any order (as [`IndexMap`]s compare).
impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, value)| other.get(k).is_some_and(|o| o == value))
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> String {
        format!("k{i}")
    }

    #[test]
    fn one_field_is_inline_and_more_grow_as_a_vector_would() {
        let mut o = Object::new();
        let capacity = |o: &Object| match &o.repr {
            Repr::Small(v) => (v.spilled(), v.capacity()),
            Repr::Large(_) => (true, usize::MAX),
        };
        o.insert(key(0), Value::int(0));
        assert_eq!(capacity(&o), (false, 1));
        // The second field moves both to the heap with room for four, as a vector's first allocation has.
        o.insert(key(1), Value::int(1));
        assert_eq!(capacity(&o), (true, SPILL));
        for i in 2..SPILL {
            o.insert(key(i), Value::int(i as i64));
        }
        assert_eq!(capacity(&o), (true, SPILL));
        assert_eq!(Object::with_capacity(1).len(), 0);
        assert_eq!(capacity(&Object::with_capacity(1)), (false, 1));
    }

    #[test]
    fn fields_keep_insertion_order_and_positions_across_growth() {
        for n in [0, 1, SMALL, SMALL + 1, 3 * SMALL] {
            let mut o = Object::new();
            for i in (0..n).rev() {
                assert_eq!(o.insert(key(i), Value::int(i as i64)), None);
            }
            // Replacing keeps the position and returns the old value.
            if n > 0 {
                assert_eq!(o.insert(key(0), Value::int(-1)), Some(Value::int(0)));
            }
            let keys: Vec<String> = o.keys().cloned().collect();
            let expected: Vec<String> = (0..n).rev().map(key).collect();
            assert_eq!(keys, expected, "{n} fields");
            assert_eq!(o.len(), n);
            for i in 1..n {
                assert_eq!(o.get(&key(i)), Some(&Value::int(i as i64)));
            }
            assert_eq!(o.get("missing"), None);
            if n > 1 {
                assert_eq!(o.shift_remove(&key(n - 1)), Some(Value::int(n as i64 - 1)));
                assert_eq!(o.len(), n - 1);
                assert_eq!(o.get_index(0).map(|(k, _)| k.clone()), Some(key(n - 2)));
            }
        }
    }

    #[test]
    fn equality_ignores_order_and_representation() {
        let forward: Object = (0..SMALL + 2).map(|i| (key(i), Value::int(1))).collect();
        let mut backward = Object::new();
        for i in (0..SMALL + 2).rev() {
            backward.insert(key(i), Value::int(1));
        }
        assert_eq!(forward, backward);
        let small: Object = (0..3).map(|i| (key(i), Value::int(1))).collect();
        let mut grown: Object = (0..SMALL + 1).map(|i| (key(i), Value::int(1))).collect();
        for i in 3..SMALL + 1 {
            grown.shift_remove(&key(i));
        }
        assert_eq!(small, grown);
        grown.insert(key(0), Value::int(2));
        assert_ne!(small, grown);
    }
}
