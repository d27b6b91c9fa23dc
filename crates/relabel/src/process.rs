//! Applying rules to targets, with Prometheus's `labels.Builder` semantics and without allocating for
//! targets that come out unchanged.
//!
//! The working state mirrors Prometheus's builder: the input target (`base`) plus an ordered list of labels
//! set (`add`) and a list of names deleted (`del`). `get` looks at `add`, then `del`, then `base`; setting an
//! empty value deletes; labelmap/labeldrop/labelkeep walk a snapshot (base labels not overridden, then the
//! added ones in order), so rules see exactly what they would see in Prometheus, including which of two
//! labels mapped to the same name wins. Scratch strings are reused across targets, so a steady-state pass
//! allocates only for targets that change.

use crate::labels::{Label, Target};
use crate::regexp::{expand, expand_whole, DEFAULT_REGEX};
use crate::rule::{is_valid_label_name, Action, Rule};
use md5::{Digest, Md5};
use std::fmt::Write as _;
use std::sync::Arc;

/// A list of string pairs whose buffers are kept when cleared.
#[derive(Default)]
struct Pairs {
    items: Vec<(String, String)>,
    len: usize,
}

impl Pairs {
    fn clear(&mut self) {
        self.len = 0;
    }
    fn as_slice(&self) -> &[(String, String)] {
        &self.items[..self.len]
    }
    fn position(&self, name: &str) -> Option<usize> {
        self.as_slice().iter().position(|(n, _)| n == name)
    }
    fn push(&mut self, name: &str, value: &str) {
        if let Some((n, v)) = self.items.get_mut(self.len) {
            n.clear();
            n.push_str(name);
            v.clear();
            v.push_str(value);
        } else {
            self.items.push((name.to_string(), value.to_string()));
        }
        self.len += 1;
    }
    fn set_value(&mut self, i: usize, value: &str) {
        let v = &mut self.items[i].1;
        v.clear();
        v.push_str(value);
    }
    /// Removes item `i`, keeping the order of the others (its buffers move past the end for reuse).
    fn remove(&mut self, i: usize) {
        self.items[i..self.len].rotate_left(1);
        self.len -= 1;
    }
    fn copy_from(&mut self, other: &Pairs) {
        self.clear();
        for (n, v) in other.as_slice() {
            self.push(n, v);
        }
    }
}

/// Prometheus's `labels.Builder` over a borrowed target.
#[derive(Default)]
struct Builder {
    add: Pairs,
    /// Deleted names (values unused).
    del: Pairs,
}

impl Builder {
    fn reset(&mut self) {
        self.add.clear();
        self.del.clear();
    }

    fn get<'a>(&'a self, base: &'a Target, name: &str) -> &'a str {
        // `del` does not lose a name that is set again, so `add` is looked at first.
        if let Some(i) = self.add.position(name) {
            return &self.add.as_slice()[i].1;
        }
        if self.del.position(name).is_some() {
            return "";
        }
        base.get(name).unwrap_or("")
    }

    fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            // An empty label is the same as a missing one.
            self.del(name);
            return;
        }
        match self.add.position(name) {
            Some(i) => self.add.set_value(i, value),
            None => self.add.push(name, value),
        }
    }

    fn del(&mut self, name: &str) {
        if let Some(i) = self.add.position(name) {
            self.add.remove(i);
        }
        self.del.push(name, "");
    }

    /// Whether the result would equal `base`.
    fn unchanged(&self, base: &Target) -> bool {
        self.add
            .as_slice()
            .iter()
            .all(|(n, v)| base.get(n) == Some(v.as_str()))
            && self
                .del
                .as_slice()
                .iter()
                .all(|(n, _)| self.add.position(n).is_some() || base.get(n).is_none())
    }

    /// The resulting target; shares `base` when nothing changed.
    fn finish(&self, base: &Target) -> Target {
        if self.unchanged(base) {
            return base.clone();
        }
        let mut labels: Vec<Label> = Vec::with_capacity(base.len() + self.add.len);
        for (n, v) in base.labels() {
            let gone = self.del.position(n).is_some() || self.add.position(n).is_some();
            if !gone {
                labels.push((n.clone(), v.clone()));
            }
        }
        for (n, v) in self.add.as_slice() {
            let name = match base
                .labels()
                .binary_search_by(|(bn, _)| (**bn).cmp(n.as_str()))
            {
                Ok(i) => base.labels()[i].0.clone(),
                Err(_) => Arc::from(n.as_str()),
            };
            labels.push((name, Arc::from(v.as_str())));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        Target::from_sorted(labels)
    }
}

/// Reusable buffers for one thread of relabelling.
#[derive(Default)]
struct Scratch {
    b: Builder,
    /// Snapshot of `b` for label walks.
    snap_add: Pairs,
    snap_del: Pairs,
    joined: String,
    name_buf: String,
    value_buf: String,
}

/// Applies a list of rules to targets. Owns scratch space, so keep one per thread and reuse it.
pub struct Relabeler {
    rules: crate::Rules,
    /// One per rule, sized for its regex.
    locs: Vec<regex::CaptureLocations>,
    scratch: Scratch,
}

impl Relabeler {
    /// A relabeler for `rules`.
    pub fn new(rules: crate::Rules) -> Self {
        let locs = rules
            .iter()
            .map(|r| r.regex.regex().capture_locations())
            .collect();
        Relabeler {
            rules,
            locs,
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
        self.scratch.b.reset();
        for (rule, locs) in self.rules.iter().zip(self.locs.iter_mut()) {
            if !apply(rule, locs, target, &mut self.scratch) {
                return None;
            }
        }
        Some(self.scratch.b.finish(target))
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

/// Applies one rule. Returns false when the target is dropped.
fn apply(rule: &Rule, locs: &mut regex::CaptureLocations, base: &Target, s: &mut Scratch) -> bool {
    let Scratch {
        b,
        snap_add,
        snap_del,
        joined,
        name_buf,
        value_buf,
    } = s;
    joined.clear();
    if let Some(sources) = &rule.source_labels {
        for (i, name) in sources.iter().enumerate() {
            if i > 0 {
                joined.push_str(&rule.separator);
            }
            joined.push_str(b.get(base, name));
        }
    }
    let val = joined.as_str();
    let re = rule.regex.regex();
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
            if b.get(base, &rule.target_label) == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if b.get(base, &rule.target_label) != val {
                return false;
            }
        }
        Action::Replace => {
            // Prometheus's fast path: nothing to match or expand.
            if val.is_empty() && rule.regex.as_str() == DEFAULT_REGEX && !rule.templates_have_vars()
            {
                b.set(&rule.target_label, &rule.replacement);
                return true;
            }
            name_buf.clear();
            value_buf.clear();
            // Capture positions are only searched for when a template needs them (the costly part).
            if !rule.templates_have_vars() {
                if !re.is_match(val) {
                    return true;
                }
                name_buf.push_str(&rule.target_label);
                value_buf.push_str(&rule.replacement);
            } else if rule.regex.as_str() == DEFAULT_REGEX {
                expand_whole(val, &rule.target_label, name_buf);
                expand_whole(val, &rule.replacement, value_buf);
            } else {
                if re.captures_read(locs, val).is_none() {
                    return true;
                }
                expand(re, locs, val, &rule.target_label, name_buf);
                expand(re, locs, val, &rule.replacement, value_buf);
            }
            if !is_valid_label_name(name_buf) {
                return true;
            }
            if value_buf.is_empty() {
                b.del(name_buf);
            } else {
                b.set(name_buf, value_buf);
            }
        }
        Action::Lowercase => {
            value_buf.clear();
            go_lower(val, value_buf);
            b.set(&rule.target_label, value_buf);
        }
        Action::Uppercase => {
            value_buf.clear();
            go_upper(val, value_buf);
            b.set(&rule.target_label, value_buf);
        }
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..]);
            let m = u64::from_be_bytes(last8) % rule.modulus;
            value_buf.clear();
            let _ = write!(value_buf, "{m}");
            b.set(&rule.target_label, value_buf);
        }
        Action::LabelMap | Action::LabelDrop | Action::LabelKeep => {
            snap_add.copy_from(&b.add);
            snap_del.copy_from(&b.del);
            for (n, v) in base.labels() {
                if snap_del.position(n).is_some() || snap_add.position(n).is_some() {
                    continue;
                }
                label_step(rule, locs, n, v, b, name_buf);
            }
            for (n, v) in snap_add.as_slice() {
                label_step(rule, locs, n, v, b, name_buf);
            }
        }
    }
    true
}

/// labelmap/labeldrop/labelkeep for one label.
fn label_step(
    rule: &Rule,
    locs: &mut regex::CaptureLocations,
    name: &str,
    value: &str,
    b: &mut Builder,
    name_buf: &mut String,
) {
    let re = rule.regex.regex();
    match rule.action {
        // The cheap test first: most names do not match.
        Action::LabelMap if re.is_match(name) && re.captures_read(locs, name).is_some() => {
            name_buf.clear();
            expand(re, locs, name, &rule.replacement, name_buf);
            b.set(name_buf, value);
        }
        Action::LabelDrop if re.is_match(name) => b.del(name),
        Action::LabelKeep if !re.is_match(name) => b.del(name),
        _ => {}
    }
}

/// Go's `strings.ToLower`: each character's simple lower-case mapping.
fn go_lower(s: &str, out: &mut String) {
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
fn go_upper(s: &str, out: &mut String) {
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
