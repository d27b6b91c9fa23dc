//! Applying rules to targets, with Prometheus's `labels.Builder` semantics and without allocating for
//! targets that come out unchanged.
//!
//! The working state mirrors Prometheus's builder: the input target (`base`) plus an ordered list of labels
//! set (`add`) and the base labels deleted. `get` looks at `add`, then the deletions, then `base`; setting an
//! empty value deletes; labelmap/labeldrop/labelkeep walk a snapshot (base labels not overridden, then the
//! added ones in order), so rules see exactly what they would see in Prometheus, including which of two
//! labels mapped to the same name wins.
//!
//! Names and values set are kept as references to a base label's name or value where they are equal to one,
//! else as spans of a per-target arena, so that working on a target copies a few bytes and allocates nothing.
//! Only a changed target is built, once, at the end: its labels share the input's strings (and names seen
//! before, interned), so a new string is allocated only for a value that is new.

use crate::labels::{self, Label, Names, Target};
use crate::regexp::{expand_whole, has_var, Locations, DEFAULT_REGEX};
use crate::rule::{is_valid_label_name, Action, Rule};
use md5::{Digest, Md5};
use std::fmt::Write as _;
use std::sync::{Arc, MutexGuard};

/// A name or value held by the builder: base label `i`'s name (or value), or a span of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Str {
    Base(u32),
    /// A name in `Builder::known`.
    Known(u32),
    Arena(u32, u32),
}

/// A label set by a rule. `name` is `Str::Base(i)` exactly when base label `i` has that name.
#[derive(Clone, Copy, Debug)]
struct Added {
    name: Str,
    value: Str,
}

/// Base label state bits.
const DELETED: u8 = 1;
/// An `add` entry has this base label's name.
const IN_ADD: u8 = 2;

/// Prometheus's `labels.Builder` over a borrowed target.
#[derive(Default)]
struct Builder {
    arena: String,
    add: Vec<Added>,
    /// Per base label: `DELETED` / `IN_ADD`.
    state: Vec<u8>,
    /// Names the rules gave labels that targets did not have (`service_name`), kept across targets so
    /// that adding one is a comparison, not a copy and a look-up in the shared table.
    known: Vec<Arc<str>>,
}

/// How many names `Builder::known` keeps; the rest go through the arena.
const KNOWN_NAMES: usize = 64;

impl Builder {
    fn reset(&mut self, base: &Target) {
        self.arena.clear();
        self.add.clear();
        self.state.clear();
        self.state.resize(base.len(), 0);
    }

    fn name<'a>(&'a self, base: &'a Target, s: Str) -> &'a str {
        match s {
            Str::Base(i) => &base.labels()[i as usize].0,
            Str::Known(k) => &self.known[k as usize],
            Str::Arena(a, b) => &self.arena[a as usize..b as usize],
        }
    }

    fn value<'a>(&'a self, base: &'a Target, s: Str) -> &'a str {
        match s {
            Str::Base(i) => &base.labels()[i as usize].1,
            Str::Known(k) => &self.known[k as usize],
            Str::Arena(a, b) => &self.arena[a as usize..b as usize],
        }
    }

    /// A name no base label has.
    fn new_name(&mut self, name: &str) -> Str {
        if let Some(k) = self
            .known
            .iter()
            .position(|n| n.len() == name.len() && **n == *name)
        {
            return Str::Known(k as u32);
        }
        if self.known.len() < KNOWN_NAMES {
            self.known.push(labels::names().intern(name));
            return Str::Known(self.known.len() as u32 - 1);
        }
        self.intern(name)
    }

    fn intern(&mut self, text: &str) -> Str {
        let a = self.arena.len() as u32;
        self.arena.push_str(text);
        Str::Arena(a, self.arena.len() as u32)
    }

    /// The `add` entry for `name`, where `at` is its base position.
    fn find_add(&self, base: &Target, name: &str, at: Option<usize>) -> Option<usize> {
        match at {
            Some(i) if self.state[i] & IN_ADD != 0 => {
                self.add.iter().position(|a| a.name == Str::Base(i as u32))
            }
            Some(_) => None,
            None => self.add.iter().position(|a| match a.name {
                Str::Arena(..) | Str::Known(_) => self.name(base, a.name) == name,
                Str::Base(_) => false,
            }),
        }
    }

    /// The value of `name` as a reference, `None` when it is missing.
    fn get_ref(&self, base: &Target, name: &str) -> Option<Str> {
        let at = base.position(name);
        if let Some(i) = self.find_add(base, name, at) {
            return Some(self.add[i].value);
        }
        match at {
            Some(i) if self.state[i] & DELETED == 0 && !base.labels()[i].1.is_empty() => {
                Some(Str::Base(i as u32))
            }
            _ => None,
        }
    }

    fn get<'a>(&'a self, base: &'a Target, name: &str) -> &'a str {
        let at = base.position(name);
        if let Some(i) = self.find_add(base, name, at) {
            return self.value(base, self.add[i].value);
        }
        match at {
            Some(i) if self.state[i] & DELETED == 0 => &base.labels()[i].1,
            _ => "",
        }
    }

    /// Sets `name` to `value` (copied, unless it is the base value already there).
    fn set(&mut self, base: &Target, name: &str, value: &str) {
        if value.is_empty() {
            // An empty label is the same as a missing one.
            self.del(base, name);
            return;
        }
        let at = base.position(name);
        let v = match at {
            Some(i) if *base.labels()[i].1 == *value => Str::Base(i as u32),
            _ => self.intern(value),
        };
        self.put(base, name, at, v);
    }

    /// Sets `name` to a value the builder holds.
    fn set_ref(&mut self, base: &Target, name: &str, value: Str) {
        if self.value(base, value).is_empty() {
            self.del(base, name);
            return;
        }
        let at = base.position(name);
        self.put(base, name, at, value);
    }

    fn put(&mut self, base: &Target, name: &str, at: Option<usize>, value: Str) {
        if let Some(i) = self.find_add(base, name, at) {
            self.add[i].value = value;
            return;
        }
        let name = match at {
            Some(i) => {
                self.state[i] |= IN_ADD;
                Str::Base(i as u32)
            }
            None => self.new_name(name),
        };
        self.add.push(Added { name, value });
    }

    fn del(&mut self, base: &Target, name: &str) {
        self.del_at(base, name, base.position(name));
    }

    /// `del` where `at` is the base position of `name`.
    fn del_at(&mut self, base: &Target, name: &str, at: Option<usize>) {
        if let Some(i) = self.find_add(base, name, at) {
            self.add.remove(i);
        }
        if let Some(i) = at {
            // Names not in the base need no record: without an `add` entry they read as missing anyway.
            self.state[i] = DELETED;
        }
    }

    /// Whether the result would equal `base`.
    fn unchanged(&self, base: &Target) -> bool {
        self.add.iter().all(|a| match (a.name, a.value) {
            (Str::Base(i), Str::Base(j)) if i == j => true,
            (Str::Base(i), v) => *base.labels()[i as usize].1 == *self.value(base, v),
            _ => false,
        }) && self
            .state
            .iter()
            .all(|&s| s & DELETED == 0 || s & IN_ADD != 0)
    }
}

/// Reusable buffers for one thread of relabelling.
#[derive(Default)]
struct Scratch {
    b: Builder,
    /// Snapshot of `b` for label walks.
    snap_add: Vec<Added>,
    snap_state: Vec<u8>,
    joined: String,
    name_buf: String,
    value_buf: String,
    /// Names of added labels, as the walk over them goes.
    walk_name: String,
    /// The labels of a changed target, before it is built.
    out: Vec<Label>,
    /// Order of `b.add` by name.
    order: Vec<u32>,
}

impl Scratch {
    /// The resulting target; shares `base` when nothing changed.
    fn finish(&mut self, base: &Target) -> Target {
        if self.b.unchanged(base) {
            return base.clone();
        }
        let Scratch { b, out, order, .. } = self;
        // Locked only when a label gets a name the target did not have.
        let mut names = None;
        order.clear();
        order.extend(0..b.add.len() as u32);
        order.sort_unstable_by(|&x, &y| {
            b.name(base, b.add[x as usize].name)
                .cmp(b.name(base, b.add[y as usize].name))
        });
        out.clear();
        out.reserve(base.len() + b.add.len());
        let labels = base.labels();
        let mut adds = order.iter().map(|&i| b.add[i as usize]).peekable();
        for (i, (n, v)) in labels.iter().enumerate() {
            if b.state[i] != 0 {
                continue;
            }
            while let Some(a) = adds.next_if(|a| b.name(base, a.name) < &**n) {
                out.push(materialize(b, base, &mut names, a));
            }
            out.push((n.clone(), v.clone()));
        }
        for a in adds {
            out.push(materialize(b, base, &mut names, a));
        }
        Target::from_sorted_iter(out.drain(..))
    }
}

/// An added label as shared strings.
fn materialize(
    b: &Builder,
    base: &Target,
    names: &mut Option<MutexGuard<'static, Names>>,
    a: Added,
) -> Label {
    let labels = base.labels();
    let name = match a.name {
        Str::Base(i) => labels[i as usize].0.clone(),
        Str::Known(k) => b.known[k as usize].clone(),
        Str::Arena(..) => {
            let text = b.name(base, a.name);
            names.get_or_insert_with(labels::names).intern(text)
        }
    };
    let value = match a.value {
        Str::Base(i) => labels[i as usize].1.clone(),
        Str::Known(k) => b.known[k as usize].clone(),
        Str::Arena(..) => {
            let text = b.value(base, a.value);
            // A value copied from another label (`namespace` from `__meta_kubernetes_namespace`).
            match labels
                .iter()
                .find(|(_, v)| v.len() == text.len() && **v == *text)
            {
                Some((_, v)) => v.clone(),
                None => Arc::from(text),
            }
        }
    };
    (name, value)
}

/// Applies a list of rules to targets. Owns scratch space, so keep one per thread and reuse it.
pub struct Relabeler {
    rules: crate::Rules,
    /// One per rule.
    prep: Vec<Prepared>,
    scratch: Scratch,
}

impl Relabeler {
    /// A relabeler for `rules`.
    pub fn new(rules: crate::Rules) -> Self {
        let prep = rules.iter().map(Prepared::new).collect();
        Relabeler {
            rules,
            prep,
            scratch: Scratch::default(),
        }
    }

    /// The rules applied.
    pub fn rules(&self) -> &crate::Rules {
        &self.rules
    }

    /// The relabelled target, or `None` when a rule drops it. A target that no rule changes comes back
    /// sharing the input's storage.
    pub fn process(&mut self, target: &Target) -> Option<Target> {
        self.scratch.b.reset(target);
        for (rule, p) in self.rules.iter().zip(self.prep.iter_mut()) {
            if !apply(rule, p, target, &mut self.scratch) {
                return None;
            }
        }
        Some(self.scratch.finish(target))
    }

    /// Relabels every target, keeping the ones not dropped, in order.
    pub fn process_all(&mut self, targets: &[Target]) -> Vec<Target> {
        let mut out = Vec::with_capacity(targets.len());
        self.process_into(targets, &mut out);
        out
    }

    /// Like [`Relabeler::process_all`], into `out` (cleared first), so its buffer can be reused.
    pub fn process_into(&mut self, targets: &[Target], out: &mut Vec<Target>) {
        out.clear();
        out.extend(targets.iter().filter_map(|t| self.process(t)));
    }
}

/// What a rule needs per target, worked out once.
struct Prepared {
    /// Sized for the rule's regex.
    locs: Locations,
    /// `target_label` or `replacement` refer to groups.
    vars: bool,
    /// The regex is the default `(.*)`.
    default_regex: bool,
    /// Replace with `(.*)`, `$1` and a plain target label: the value is the joined source values.
    copies_value: bool,
    /// `target_label` is a valid label name.
    valid_target: bool,
    /// `source_labels` and `target_label` from the shared name table: a target's labels have the same
    /// copies, so looking them up compares pointers, not text.
    sources: Vec<Arc<str>>,
    target: Arc<str>,
}

impl Prepared {
    fn new(rule: &Rule) -> Prepared {
        let default_regex = rule.regex.as_str() == DEFAULT_REGEX;
        let mut names = labels::names();
        Prepared {
            valid_target: is_valid_label_name(&rule.target_label),
            sources: rule
                .source_labels
                .iter()
                .flatten()
                .map(|n| names.intern(n))
                .collect(),
            target: names.intern(&rule.target_label),
            locs: rule.regex.locations(),
            vars: rule.templates_have_vars(),
            default_regex,
            copies_value: default_regex
                && matches!(rule.replacement.as_str(), "$1" | "${1}")
                && !has_var(&rule.target_label),
        }
    }
}

/// Applies one rule. Returns false when the target is dropped.
fn apply(rule: &Rule, p: &mut Prepared, base: &Target, s: &mut Scratch) -> bool {
    let locs = &mut p.locs;
    let Scratch {
        b,
        snap_add,
        snap_state,
        joined,
        name_buf,
        value_buf,
        walk_name,
        ..
    } = s;
    // With one source label the value is read in place (and stored by reference when it is stored as is).
    let single = match &p.sources[..] {
        [one] => Some(b.get_ref(base, one)),
        _ => None,
    };
    if single.is_none() {
        joined.clear();
        for (i, name) in p.sources.iter().enumerate() {
            if i > 0 {
                joined.push_str(&rule.separator);
            }
            joined.push_str(b.get(base, name));
        }
    }
    let target = &*p.target;
    match rule.action {
        Action::Replace if p.copies_value => {
            // Checked as the general path would: the target label is a valid name.
            if p.valid_target {
                match single {
                    Some(Some(v)) => b.set_ref(base, target, v),
                    Some(None) => b.del(base, target),
                    None => b.set(base, target, joined),
                }
            }
            return true;
        }
        Action::Lowercase | Action::Uppercase => {
            let lower = rule.action == Action::Lowercase;
            let val = match single {
                Some(Some(v)) => b.value(base, v),
                Some(None) => "",
                None => joined.as_str(),
            };
            let in_case = val.is_ascii()
                && !val.bytes().any(|c| {
                    if lower {
                        c.is_ascii_uppercase()
                    } else {
                        c.is_ascii_lowercase()
                    }
                });
            if !in_case {
                value_buf.clear();
                if lower {
                    go_lower(val, value_buf);
                } else {
                    go_upper(val, value_buf);
                }
                b.set(base, target, value_buf);
                return true;
            }
            match single {
                Some(Some(v)) => b.set_ref(base, target, v),
                Some(None) => b.del(base, target),
                None => b.set(base, target, joined),
            }
            return true;
        }
        _ => {}
    }
    let val = match single {
        Some(Some(v)) => b.value(base, v),
        Some(None) => "",
        None => joined.as_str(),
    };
    let re = &rule.regex;
    match rule.action {
        Action::Drop => {
            if re.is_match(val) {
                return false;
            }
        }
        Action::Keep => {
            if !re.is_match(val) {
                return false;
            }
        }
        Action::DropEqual => {
            if b.get(base, target) == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if b.get(base, target) != val {
                return false;
            }
        }
        Action::Replace => {
            // Prometheus's fast path: nothing to match or expand.
            if val.is_empty() && p.default_regex && !p.vars {
                b.set(base, target, &rule.replacement);
                return true;
            }
            name_buf.clear();
            value_buf.clear();
            // Capture positions are only searched for when a template needs them (the costly part).
            if !p.vars {
                if !re.is_match(val) {
                    return true;
                }
                name_buf.push_str(&rule.target_label);
                value_buf.push_str(&rule.replacement);
            } else if p.default_regex {
                expand_whole(val, &rule.target_label, name_buf);
                expand_whole(val, &rule.replacement, value_buf);
            } else {
                if !re.captures_read(locs, val) {
                    return true;
                }
                re.expand(locs, val, &rule.target_label, name_buf);
                re.expand(locs, val, &rule.replacement, value_buf);
            }
            if !is_valid_label_name(name_buf) {
                return true;
            }
            b.set(base, name_buf, value_buf);
        }
        // Handled above.
        Action::Lowercase | Action::Uppercase => {}
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..]);
            let m = u64::from_be_bytes(last8) % rule.modulus;
            value_buf.clear();
            let _ = write!(value_buf, "{m}");
            b.set(base, target, value_buf);
        }
        Action::LabelMap | Action::LabelDrop | Action::LabelKeep => {
            snap_add.clone_from(&b.add);
            snap_state.clone_from(&b.state);
            for (i, (n, _)) in base.labels().iter().enumerate() {
                if snap_state[i] != 0 {
                    continue;
                }
                label_step(
                    rule,
                    locs,
                    base,
                    (n, Some(i)),
                    Str::Base(i as u32),
                    b,
                    name_buf,
                );
            }
            for a in snap_add.iter() {
                walk_name.clear();
                walk_name.push_str(b.name(base, a.name));
                let at = match a.name {
                    Str::Base(i) => Some(i as usize),
                    Str::Arena(..) | Str::Known(_) => None,
                };
                label_step(rule, locs, base, (walk_name, at), a.value, b, name_buf);
            }
        }
    }
    true
}

/// labelmap/labeldrop/labelkeep for one label (its name and base position).
fn label_step(
    rule: &Rule,
    locs: &mut Locations,
    base: &Target,
    (name, at): (&str, Option<usize>),
    value: Str,
    b: &mut Builder,
    name_buf: &mut String,
) {
    let re = &rule.regex;
    match rule.action {
        // The cheap test first: most names do not match.
        Action::LabelMap if re.is_match(name) && re.captures_read(locs, name) => {
            name_buf.clear();
            re.expand(locs, name, &rule.replacement, name_buf);
            b.set_ref(base, name_buf, value);
        }
        Action::LabelDrop if re.is_match(name) => b.del_at(base, name, at),
        Action::LabelKeep if !re.is_match(name) => b.del_at(base, name, at),
        _ => {}
    }
}

/// Go's `strings.ToLower`: each character's simple lower-case mapping.
pub(crate) fn go_lower(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        return;
    }
    for c in s.chars() {
        // U+0130 has a one-character simple mapping; Rust gives its two-character full one.
        if c == '\u{130}' {
            out.push('i');
            continue;
        }
        let mut m = c.to_lowercase();
        match (m.next(), m.next()) {
            (Some(l), None) => out.push(l),
            _ => out.push(c),
        }
    }
}

/// Go's `strings.ToUpper`: each character's simple upper-case mapping (`ß` stays `ß`).
pub(crate) fn go_upper(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_uppercase())));
        return;
    }
    for c in s.chars() {
        // Greek letters with ypogegrammeni: the simple mapping is the title-case letter.
        let simple = match c as u32 {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => char::from_u32(c as u32 + 8),
            0x1FB3 => Some('\u{1FBC}'),
            0x1FC3 => Some('\u{1FCC}'),
            0x1FF3 => Some('\u{1FFC}'),
            _ => None,
        };
        if let Some(u) = simple {
            out.push(u);
            continue;
        }
        let mut m = c.to_uppercase();
        match (m.next(), m.next()) {
            (Some(u), None) => out.push(u),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_mapping_uses_simple_mappings_like_go() {
        let lower = |s: &str| {
            let mut o = String::new();
            go_lower(s, &mut o);
            o
        };
        let upper = |s: &str| {
            let mut o = String::new();
            go_upper(s, &mut o);
            o
        };
        assert_eq!(lower("AbC"), "abc");
        assert_eq!(lower("ÀΣİ"), "àσi");
        assert_eq!(upper("straße"), "STRAßE");
        assert_eq!(upper("ᾀ"), "ᾈ");
        assert_eq!(upper("àbc"), "ÀBC");
    }
}
