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
//!
//! Targets from one discovery mostly carry the same label names. The relabeler recognises a set of names it
//! has seen (a *schema*: the names are interned, so comparing pointers suffices) and keeps, per rule and
//! schema, what depends only on the names: where the rule's labels are, and what labelmap/labeldrop/labelkeep
//! do to each label. A target with a known schema then costs no name look-ups and no regex runs on names.

use crate::labels::{self, Names, Target};
use crate::regexp::{has_var, Locations, Template, DEFAULT_REGEX};
use crate::rule::{is_valid_label_name, Action, Rule};
use md5::{Digest, Md5};
use std::sync::{Arc, MutexGuard};

/// A name or value held by the builder: base label `i`'s name (or value), or a span of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Str {
    Base(u32),
    /// A name in `Builder::known`.
    Known(u32),
    Arena(u32, u32),
}

/// A label set by a rule. `name` is `Str::Base(i)` exactly when base label `i` has that name, else
/// `Str::Known(k)` exactly when known name `k` is that name.
#[derive(Clone, Copy, Debug)]
struct Added {
    name: Str,
    value: Str,
}

/// A label name resolved against the current target.
#[derive(Clone, Copy, Debug)]
enum Key<'a> {
    /// Base label `i`'s name.
    Base(u32),
    /// Known name `k`, which no base label has.
    Known(u32),
    /// Any other name (the known names are full): compared as text.
    Text(&'a str),
}

/// A name resolved once per schema: `Base` and `Known` as in [`Key`]; `Other` for text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Base(u32),
    Known(u32),
    Other,
}

impl Name {
    fn key(self, text: &str) -> Key<'_> {
        match self {
            Name::Base(i) => Key::Base(i),
            Name::Known(k) => Key::Known(k),
            Name::Other => Key::Text(text),
        }
    }
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
    /// Per known name, its rank in name order (for sorting new labels without comparing text).
    known_rank: Vec<u32>,
    /// The `add` entry of each base label and known name (`NONE`: none), so that finding one is a load.
    base_add: Vec<u32>,
    known_add: Vec<u32>,
}

const NONE: u32 = u32::MAX;

/// How many names `Builder::known` keeps; the rest go through the arena.
const KNOWN_NAMES: usize = 64;

impl Builder {
    fn reset(&mut self, base: &Target) {
        self.arena.clear();
        for a in &self.add {
            if let Str::Known(k) = a.name {
                self.known_add[k as usize] = NONE;
            }
        }
        self.add.clear();
        self.state.clear();
        self.state.resize(base.len(), 0);
        self.base_add.clear();
        self.base_add.resize(base.len(), NONE);
    }

    #[inline(always)]
    fn name<'a>(&'a self, base: &'a Target, s: Str) -> &'a str {
        match s {
            Str::Base(i) => base.name(i as usize),
            Str::Known(k) => &self.known[k as usize],
            Str::Arena(a, b) => &self.arena[a as usize..b as usize],
        }
    }

    #[inline(always)]
    fn value<'a>(&'a self, base: &'a Target, s: Str) -> &'a str {
        match s {
            Str::Base(i) => base.value(i as usize),
            Str::Known(k) => &self.known[k as usize],
            Str::Arena(a, b) => &self.arena[a as usize..b as usize],
        }
    }

    /// `name` resolved: a base label's, else a known name (added to them if there is room), else text.
    fn resolve(&mut self, base: &Target, name: &str) -> Name {
        if let Some(i) = base.position(name) {
            return Name::Base(i as u32);
        }
        if let Some(k) = self
            .known
            .iter()
            .position(|n| n.len() == name.len() && **n == *name)
        {
            return Name::Known(k as u32);
        }
        // The empty name (a rule without a target label) would only take a place.
        if self.known.len() < KNOWN_NAMES && !name.is_empty() {
            self.known.push(labels::names().intern(name));
            self.known_add.push(NONE);
            // Ranks are redone whenever a name joins (at most KNOWN_NAMES times).
            let mut order: Vec<u32> = (0..self.known.len() as u32).collect();
            order.sort_unstable_by(|&x, &y| self.known[x as usize].cmp(&self.known[y as usize]));
            self.known_rank.resize(self.known.len(), 0);
            for (rank, &k) in order.iter().enumerate() {
                self.known_rank[k as usize] = rank as u32;
            }
            return Name::Known(self.known.len() as u32 - 1);
        }
        Name::Other
    }

    fn intern(&mut self, text: &str) -> Str {
        let a = self.arena.len() as u32;
        self.arena.push_str(text);
        Str::Arena(a, self.arena.len() as u32)
    }

    /// The `add` entry for `key`.
    #[inline(always)]
    fn find_add(&self, base: &Target, key: Key) -> Option<usize> {
        match key {
            Key::Base(i) => {
                Some(self.base_add[i as usize] as usize).filter(|&j| j != NONE as usize)
            }
            Key::Known(k) => {
                Some(self.known_add[k as usize] as usize).filter(|&j| j != NONE as usize)
            }
            Key::Text(t) => self.add.iter().position(|a| match a.name {
                Str::Arena(..) => self.name(base, a.name) == t,
                Str::Base(_) | Str::Known(_) => false,
            }),
        }
    }

    /// The value of `key` as a reference, `None` when it is missing.
    #[inline(always)]
    fn get_ref(&self, base: &Target, key: Key) -> Option<Str> {
        if let Some(i) = self.find_add(base, key) {
            return Some(self.add[i].value);
        }
        match key {
            Key::Base(i)
                if self.state[i as usize] & DELETED == 0 && !base.value(i as usize).is_empty() =>
            {
                Some(Str::Base(i))
            }
            _ => None,
        }
    }

    fn get<'a>(&'a self, base: &'a Target, key: Key) -> &'a str {
        match self.get_ref(base, key) {
            Some(v) => self.value(base, v),
            None => "",
        }
    }

    /// Sets `key` to `value` (copied, unless it is the base value already there).
    fn set(&mut self, base: &Target, key: Key, value: &str) {
        if value.is_empty() {
            // An empty label is the same as a missing one.
            self.del(base, key);
            return;
        }
        let v = match key {
            Key::Base(i) if **base.value(i as usize) == *value => Str::Base(i),
            _ => self.intern(value),
        };
        self.put(base, key, v);
    }

    /// Sets `key` to a value the builder holds.
    fn set_ref(&mut self, base: &Target, key: Key, value: Str) {
        if self.value(base, value).is_empty() {
            self.del(base, key);
            return;
        }
        self.put(base, key, value);
    }

    fn put(&mut self, base: &Target, key: Key, value: Str) {
        if let Some(i) = self.find_add(base, key) {
            self.add[i].value = value;
            return;
        }
        let at = self.add.len() as u32;
        let name = match key {
            Key::Base(i) => {
                self.state[i as usize] |= IN_ADD;
                self.base_add[i as usize] = at;
                Str::Base(i)
            }
            Key::Known(k) => {
                self.known_add[k as usize] = at;
                Str::Known(k)
            }
            Key::Text(t) => self.intern(t),
        };
        self.add.push(Added { name, value });
    }

    fn del(&mut self, base: &Target, key: Key) {
        if let Some(i) = self.find_add(base, key) {
            self.add.remove(i);
            match key {
                Key::Base(b) => self.base_add[b as usize] = NONE,
                Key::Known(k) => self.known_add[k as usize] = NONE,
                Key::Text(_) => {}
            }
            // The entries after it moved down one.
            for (j, a) in self.add.iter().enumerate().skip(i) {
                match a.name {
                    Str::Base(b) => self.base_add[b as usize] = j as u32,
                    Str::Known(k) => self.known_add[k as usize] = j as u32,
                    Str::Arena(..) => {}
                }
            }
        }
        if let Key::Base(i) = key {
            // Names not in the base need no record: without an `add` entry they read as missing anyway.
            self.state[i as usize] = DELETED;
        }
    }

    /// Whether the result would equal `base`.
    fn unchanged(&self, base: &Target) -> bool {
        self.add.iter().all(|a| match (a.name, a.value) {
            (Str::Base(i), Str::Base(j)) if i == j => true,
            (Str::Base(i), v) => **base.value(i as usize) == *self.value(base, v),
            _ => false,
        }) && self
            .state
            .iter()
            .all(|&s| s & DELETED == 0 || s & IN_ADD != 0)
    }
}

/// A set of label names seen, and what depends only on them.
struct Schema {
    names: Arc<[Arc<str>]>,
    hash: u64,
    /// Identifies this schema in the rules' caches (a slot reused for another schema gets a new one).
    gen: u64,
    /// Per known name: how many of the names sort before it (`u32::MAX`: not worked out yet).
    known_slot: Vec<u32>,
    /// The names of the labels the last changed target got that the schema does not have, in the order
    /// rules set them, and the order that sorts them (as indices into that list).
    new_names: Vec<Str>,
    new_order: Vec<u32>,
}

/// How many schemas the relabeler remembers (targets of a few shapes, interleaved, all stay known).
const SCHEMAS: usize = 8;

#[derive(Default)]
struct Schemas {
    list: Vec<Schema>,
    /// The slot replaced next when all are in use.
    victim: usize,
    last_gen: u64,
}

impl Schemas {
    /// The slot of `t`'s schema, remembering it if it is new.
    fn find(&mut self, t: &Target) -> usize {
        let names = t.names();
        // Targets from one source mostly share their list of names.
        if let Some(i) = self.list.iter().position(|s| Arc::ptr_eq(&s.names, names)) {
            return i;
        }
        let mut hash = names.len() as u64;
        for n in names.iter() {
            // Names are interned: the address identifies the text.
            let addr = Arc::as_ptr(n) as *const u8 as usize as u64;
            hash = (hash ^ addr).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let same = |s: &Schema| {
            s.hash == hash
                && s.names.len() == names.len()
                && s.names
                    .iter()
                    .zip(names.iter())
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if let Some(i) = self.list.iter().position(same) {
            return i;
        }
        self.last_gen += 1;
        let schema = Schema {
            names: names.clone(),
            hash,
            gen: self.last_gen,
            known_slot: Vec::new(),
            new_names: Vec::new(),
            new_order: Vec::new(),
        };
        if self.list.len() < SCHEMAS {
            self.list.push(schema);
            return self.list.len() - 1;
        }
        let i = self.victim;
        self.victim = (i + 1) % SCHEMAS;
        self.list[i] = schema;
        i
    }
}

/// Lists of names changed targets were given, for the next target that gets the same names.
#[derive(Default)]
struct NameLists {
    list: Vec<Arc<[Arc<str>]>>,
    victim: usize,
    /// The list found last, tried first.
    last: usize,
    /// Scratch: the addresses of the names looked for.
    addrs: Vec<usize>,
}

/// The address of a name's text.
fn addr(n: &Arc<str>) -> usize {
    Arc::as_ptr(n) as *const u8 as usize
}

/// How many lists `NameLists` keeps.
const NAME_LISTS: usize = 16;

impl NameLists {
    /// The shared list of `names` (as the builder holds them).
    fn get(
        &mut self,
        b: &Builder,
        base: &Target,
        names: &[Str],
        lock: &mut Option<MutexGuard<'static, Names>>,
    ) -> Arc<[Arc<str>]> {
        // Names are interned, so a list has a name when it has its address (arena names: its text).
        self.addrs.clear();
        self.addrs.extend(names.iter().map(|&s| match s {
            Str::Base(i) => addr(base.name(i as usize)),
            Str::Known(k) => addr(&b.known[k as usize]),
            Str::Arena(..) => 0,
        }));
        let addrs = &self.addrs;
        let same = |l: &Arc<[Arc<str>]>| {
            l.len() == names.len()
                && l.iter()
                    .zip(addrs)
                    .zip(names)
                    .all(|((a, &p), &s)| addr(a) == p || (p == 0 && **a == *b.name(base, s)))
        };
        if same(base.names()) {
            return base.names().clone();
        }
        if let Some(l) = self.list.get(self.last).filter(|l| same(l)) {
            return l.clone();
        }
        if let Some(i) = self.list.iter().position(same) {
            self.last = i;
            return self.list[i].clone();
        }
        let l: Arc<[Arc<str>]> = names
            .iter()
            .map(|&s| match s {
                Str::Base(i) => base.name(i as usize).clone(),
                Str::Known(k) => b.known[k as usize].clone(),
                Str::Arena(..) => lock
                    .get_or_insert_with(labels::names)
                    .intern(b.name(base, s)),
            })
            .collect();
        if self.list.len() < NAME_LISTS {
            self.last = self.list.len();
            self.list.push(l.clone());
        } else {
            self.last = self.victim;
            self.list[self.victim] = l.clone();
            self.victim = (self.victim + 1) % NAME_LISTS;
        }
        l
    }
}

/// Reusable buffers for one thread of relabelling.
#[derive(Default)]
struct Scratch {
    b: Builder,
    /// Snapshot of `b` for label walks.
    snap_add: Vec<Added>,
    /// Base labels a walk visits.
    todo: Vec<u32>,
    joined: String,
    name_buf: String,
    value_buf: String,
    /// Names of added labels, as the walk over them goes.
    walk_name: String,
    /// The labels of a changed target, before it is built.
    out_names: Vec<Str>,
    out_values: Vec<Arc<str>>,
    lists: NameLists,
    /// Added labels with new names: (how many base names sort before, `add` index), in name order.
    news: Vec<(u32, u32)>,
    sorted: Vec<(u32, u32)>,
    values: Values,
}

/// Values rules made recently, shared by the targets that get them (`service_name="ns/app"` for every pod
/// of an app): a small two-way table, so it stays small and a miss costs one replacement.
struct Values(Vec<Option<Arc<str>>>);

const VALUE_SLOTS: usize = 1024;

impl Default for Values {
    fn default() -> Self {
        Values(vec![None; VALUE_SLOTS])
    }
}

impl Values {
    fn get(&mut self, text: &str) -> Arc<str> {
        let mut h = labels::Fnv::default();
        std::hash::Hasher::write(&mut h, text.as_bytes());
        // Slots come in pairs; the newer entry of a pair is first.
        let i = ((std::hash::Hasher::finish(&h) as usize) % VALUE_SLOTS) & !1;
        for j in [i, i + 1] {
            if let Some(v) = &self.0[j] {
                if **v == *text {
                    return v.clone();
                }
            }
        }
        let v: Arc<str> = Arc::from(text);
        self.0[i + 1] = self.0[i].replace(v.clone());
        v
    }
}

impl Scratch {
    /// The resulting target; shares `base` when nothing changed.
    fn finish(&mut self, base: &Target, schema: &mut Schema) -> Target {
        if self.b.unchanged(base) {
            return base.clone();
        }
        let Scratch {
            b,
            out_names,
            out_values,
            lists,
            news,
            sorted,
            values,
            ..
        } = self;
        let base_names = &**base.names();
        news.clear();
        for (j, a) in b.add.iter().enumerate() {
            let slot = match a.name {
                Str::Base(_) => continue,
                Str::Known(k) => {
                    let k = k as usize;
                    if schema.known_slot.len() <= k {
                        schema.known_slot.resize(k + 1, u32::MAX);
                    }
                    if schema.known_slot[k] == u32::MAX {
                        let n = &*b.known[k];
                        schema.known_slot[k] = base_names.partition_point(|l| **l < *n) as u32;
                    }
                    schema.known_slot[k]
                }
                Str::Arena(..) => {
                    let n = b.name(base, a.name);
                    base_names.partition_point(|l| **l < *n) as u32
                }
            };
            news.push((slot, j as u32));
        }
        // Targets of one schema mostly get the same new names in the same order: their sorted order is
        // remembered (for known names; arena spans say nothing about the text).
        let same_names = news.len() == schema.new_names.len()
            && news
                .iter()
                .zip(&schema.new_names)
                .all(|(&(_, j), &n)| b.add[j as usize].name == n && matches!(n, Str::Known(_)));
        if same_names {
            sorted.clear();
            sorted.extend(schema.new_order.iter().map(|&p| news[p as usize]));
            std::mem::swap(news, sorted);
        } else {
            schema.new_names.clear();
            schema
                .new_names
                .extend(news.iter().map(|&(_, j)| b.add[j as usize].name));
            schema.new_order.clear();
            schema.new_order.extend(0..news.len() as u32);
            schema.new_order.sort_unstable_by(|&x, &y| {
                let ((sx, x), (sy, y)) = (news[x as usize], news[y as usize]);
                sx.cmp(&sy).then_with(|| {
                    let (x, y) = (b.add[x as usize].name, b.add[y as usize].name);
                    match (x, y) {
                        (Str::Known(x), Str::Known(y)) => {
                            b.known_rank[x as usize].cmp(&b.known_rank[y as usize])
                        }
                        _ => b.name(base, x).cmp(b.name(base, y)),
                    }
                })
            });
            sorted.clear();
            sorted.extend(schema.new_order.iter().map(|&p| news[p as usize]));
            std::mem::swap(news, sorted);
        }
        out_names.clear();
        out_values.clear();
        let mut new = news.iter().peekable();
        for i in 0..base.len() {
            while let Some(&(_, j)) = new.next_if(|&&(slot, _)| slot as usize <= i) {
                let a = b.add[j as usize];
                out_names.push(a.name);
                out_values.push(materialize(b, base, values, a.value));
            }
            let s = b.state[i];
            if s & IN_ADD != 0 {
                let a = b.add[b.base_add[i] as usize];
                out_names.push(a.name);
                out_values.push(materialize(b, base, values, a.value));
            } else if s & DELETED == 0 {
                out_names.push(Str::Base(i as u32));
                out_values.push(base.value(i).clone());
            }
        }
        for &(_, j) in new {
            let a = b.add[j as usize];
            out_names.push(a.name);
            out_values.push(materialize(b, base, values, a.value));
        }
        // Locked only when a label gets a name neither the target nor the known names have.
        let mut lock = None;
        let names = lists.get(b, base, out_names, &mut lock);
        Target::from_parts(names, out_values.drain(..))
    }
}

/// A value set by a rule, as a shared string.
fn materialize(b: &Builder, base: &Target, values: &mut Values, value: Str) -> Arc<str> {
    match value {
        Str::Base(i) => base.value(i as usize).clone(),
        Str::Known(k) => b.known[k as usize].clone(),
        Str::Arena(..) => {
            let text = b.value(base, value);
            // A value copied from another label (`namespace` from `__meta_kubernetes_namespace`).
            match (0..base.len())
                .map(|i| base.value(i))
                .find(|v| v.len() == text.len() && ***v == *text)
            {
                Some(v) => v.clone(),
                None => values.get(text),
            }
        }
    }
}

/// Applies a list of rules to targets. Owns scratch space, so keep one per thread and reuse it.
pub struct Relabeler {
    rules: crate::Rules,
    /// One per rule.
    prep: Vec<Prepared>,
    scratch: Scratch,
    schemas: Schemas,
}

impl Relabeler {
    /// A relabeler for `rules`.
    pub fn new(rules: crate::Rules) -> Self {
        let prep = rules.iter().map(Prepared::new).collect();
        Relabeler {
            rules,
            prep,
            scratch: Scratch::default(),
            schemas: Schemas::default(),
        }
    }

    /// The rules applied.
    pub fn rules(&self) -> &crate::Rules {
        &self.rules
    }

    /// The relabelled target, or `None` when a rule drops it. A target that no rule changes comes back
    /// sharing the input's storage.
    pub fn process(&mut self, target: &Target) -> Option<Target> {
        let slot = self.schemas.find(target);
        let schema = &mut self.schemas.list[slot];
        self.scratch.b.reset(target);
        for (rule, p) in self.rules.iter().zip(self.prep.iter_mut()) {
            if p.caches.len() <= slot {
                p.caches.resize_with(slot + 1, RuleCache::default);
            }
            let cache = &mut p.caches[slot];
            if cache.gen != schema.gen {
                cache.fill(
                    schema.gen,
                    target,
                    &p.sources,
                    &p.target,
                    &mut self.scratch.b,
                );
            }
            if !apply(rule, p, slot, target, &mut self.scratch) {
                return None;
            }
        }
        Some(self.scratch.finish(target, schema))
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

/// What a labelmap/labeldrop/labelkeep rule does to a label, by its name.
#[derive(Clone, Copy, Debug)]
enum Walk {
    Nothing,
    Delete,
    /// labelmap: copy the value to this name (`Name::Other`: expand the name again).
    Map(Name),
}

/// What a rule keeps about one schema.
#[derive(Default)]
struct RuleCache {
    /// The schema's `gen`; 0 before the first fill.
    gen: u64,
    sources: Vec<Name>,
    target: Option<Name>,
    /// labelmap/labeldrop/labelkeep, per base label (filled on first use).
    base_walk: Vec<Walk>,
    /// The base labels whose walk does something.
    base_active: Vec<u32>,
    base_walk_ready: bool,
    /// The same per known name.
    known_walk: Vec<Option<Walk>>,
}

impl RuleCache {
    fn fill(
        &mut self,
        gen: u64,
        base: &Target,
        sources: &[Arc<str>],
        target: &str,
        b: &mut Builder,
    ) {
        self.gen = gen;
        self.sources.clear();
        for s in sources {
            let n = b.resolve(base, s);
            self.sources.push(n);
        }
        self.target = Some(b.resolve(base, target));
        self.base_walk.clear();
        self.base_active.clear();
        self.base_walk_ready = false;
        self.known_walk.clear();
    }
}

/// What a rule needs per target, worked out once.
struct Prepared {
    /// Sized for the rule's regex.
    locs: Locations,
    /// `target_label` or `replacement` refer to groups.
    vars: bool,
    /// `target_label` refers to groups.
    target_vars: bool,
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
    /// `target_label` and `replacement` resolved against the regex.
    target_t: Template,
    replacement_t: Template,
    /// Per schema slot.
    caches: Vec<RuleCache>,
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
            target_vars: has_var(&rule.target_label),
            default_regex,
            copies_value: default_regex
                && matches!(rule.replacement.as_str(), "$1" | "${1}")
                && !has_var(&rule.target_label),
            target_t: rule.regex.template(&rule.target_label),
            replacement_t: rule.regex.template(&rule.replacement),
            caches: Vec::new(),
        }
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// Applies one rule. Returns false when the target is dropped.
fn apply(rule: &Rule, p: &mut Prepared, slot: usize, base: &Target, s: &mut Scratch) -> bool {
    let Prepared {
        locs,
        caches,
        sources,
        target,
        ..
    } = p;
    let cache = &mut caches[slot];
    let Scratch {
        b,
        snap_add,
        todo,
        joined,
        name_buf,
        value_buf,
        walk_name,
        ..
    } = s;
    // With one source label the value is read in place (and stored by reference when it is stored as is).
    let single = match (&cache.sources[..], &sources[..]) {
        ([one], [text]) => Some(b.get_ref(base, one.key(text))),
        _ => None,
    };
    if single.is_none() {
        joined.clear();
        for (i, (n, text)) in cache.sources.iter().zip(sources.iter()).enumerate() {
            if i > 0 {
                joined.push_str(&rule.separator);
            }
            joined.push_str(b.get(base, n.key(text)));
        }
    }
    let tkey = cache.target.unwrap_or(Name::Other).key(target);
    match rule.action {
        Action::Replace if p.copies_value => {
            // Checked as the general path would: the target label is a valid name.
            if p.valid_target {
                match single {
                    Some(Some(v)) => b.set_ref(base, tkey, v),
                    Some(None) => b.del(base, tkey),
                    None => b.set(base, tkey, joined),
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
                b.set(base, tkey, value_buf);
                return true;
            }
            match single {
                Some(Some(v)) => b.set_ref(base, tkey, v),
                Some(None) => b.del(base, tkey),
                None => b.set(base, tkey, joined),
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
            if b.get(base, tkey) == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if b.get(base, tkey) != val {
                return false;
            }
        }
        Action::Replace => {
            // Prometheus's fast path: nothing to match or expand.
            if val.is_empty() && p.default_regex && !p.vars {
                b.set(base, tkey, &rule.replacement);
                return true;
            }
            value_buf.clear();
            // Capture positions are only searched for when a template needs them (the costly part).
            if !p.vars {
                if !re.is_match(val) {
                    return true;
                }
                value_buf.push_str(&rule.replacement);
            } else if p.default_regex {
                p.replacement_t.expand_whole(val, value_buf);
            } else {
                if !re.captures_read(locs, val) {
                    return true;
                }
                re.expand_template(locs, val, &p.replacement_t, value_buf);
            }
            if !p.target_vars {
                if p.valid_target {
                    b.set(base, tkey, value_buf);
                }
                return true;
            }
            name_buf.clear();
            if p.default_regex {
                p.target_t.expand_whole(val, name_buf);
            } else {
                re.expand_template(locs, val, &p.target_t, name_buf);
            }
            if !is_valid_label_name(name_buf) {
                return true;
            }
            let n = b.resolve(base, name_buf);
            b.set(base, n.key(name_buf), value_buf);
        }
        // Handled above.
        Action::Lowercase | Action::Uppercase => {}
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..]);
            let m = u64::from_be_bytes(last8) % rule.modulus;
            value_buf.clear();
            push_u64(value_buf, m);
            b.set(base, tkey, value_buf);
        }
        Action::LabelMap | Action::LabelDrop | Action::LabelKeep => {
            let base_names = &**base.names();
            if !cache.base_walk_ready {
                cache.base_walk.clear();
                cache.base_active.clear();
                for (i, n) in base_names.iter().enumerate() {
                    let w = walk_for(rule, locs, &p.replacement_t, n, b, base, name_buf);
                    cache.base_walk.push(w);
                    if !matches!(w, Walk::Nothing) {
                        cache.base_active.push(i as u32);
                    }
                }
                cache.base_walk_ready = true;
            }
            // The walk sees the labels as they were before it (neither deleted nor set, then the set ones).
            snap_add.clone_from(&b.add);
            todo.clear();
            todo.extend(
                cache
                    .base_active
                    .iter()
                    .filter(|&&i| b.state[i as usize] == 0),
            );
            for &i in todo.iter() {
                let name = &base_names[i as usize];
                step(
                    rule,
                    locs,
                    &p.replacement_t,
                    cache.base_walk[i as usize],
                    (name, Key::Base(i)),
                    Str::Base(i),
                    b,
                    base,
                    name_buf,
                );
            }
            for a in snap_add.iter() {
                let w = match a.name {
                    Str::Base(i) => cache.base_walk[i as usize],
                    Str::Known(k) => {
                        let k = k as usize;
                        if cache.known_walk.len() <= k {
                            cache.known_walk.resize(k + 1, None);
                        }
                        match cache.known_walk[k] {
                            Some(w) => w,
                            None => {
                                let n = b.known[k].clone();
                                let w =
                                    walk_for(rule, locs, &p.replacement_t, &n, b, base, name_buf);
                                cache.known_walk[k] = Some(w);
                                w
                            }
                        }
                    }
                    Str::Arena(..) => {
                        walk_name.clear();
                        walk_name.push_str(b.name(base, a.name));
                        walk_for(rule, locs, &p.replacement_t, walk_name, b, base, name_buf)
                    }
                };
                if matches!(w, Walk::Nothing) {
                    continue;
                }
                if let Str::Known(k) = a.name {
                    walk_name.clear();
                    walk_name.push_str(&b.known[k as usize]);
                }
                let key = match a.name {
                    Str::Base(i) => Key::Base(i),
                    Str::Known(k) => Key::Known(k),
                    Str::Arena(..) => Key::Text(walk_name),
                };
                let name = match a.name {
                    Str::Base(i) => &*base_names[i as usize],
                    Str::Known(_) | Str::Arena(..) => walk_name.as_str(),
                };
                step(
                    rule,
                    locs,
                    &p.replacement_t,
                    w,
                    (name, key),
                    a.value,
                    b,
                    base,
                    name_buf,
                );
            }
        }
    }
    true
}

/// What labelmap/labeldrop/labelkeep do to a label named `name`.
fn walk_for(
    rule: &Rule,
    locs: &mut Locations,
    replacement: &Template,
    name: &str,
    b: &mut Builder,
    base: &Target,
    name_buf: &mut String,
) -> Walk {
    let re = &rule.regex;
    match rule.action {
        // The cheap test first: most names do not match.
        Action::LabelMap if re.is_match(name) && re.captures_read(locs, name) => {
            name_buf.clear();
            re.expand_template(locs, name, replacement, name_buf);
            Walk::Map(b.resolve(base, name_buf))
        }
        Action::LabelDrop if re.is_match(name) => Walk::Delete,
        Action::LabelKeep if !re.is_match(name) => Walk::Delete,
        _ => Walk::Nothing,
    }
}

/// Applies `w` to the label `(name, key)` with value `value`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn step(
    rule: &Rule,
    locs: &mut Locations,
    replacement: &Template,
    w: Walk,
    (name, key): (&str, Key),
    value: Str,
    b: &mut Builder,
    base: &Target,
    name_buf: &mut String,
) {
    match w {
        Walk::Nothing => {}
        Walk::Delete => b.del(base, key),
        Walk::Map(Name::Other) => {
            // A name that is not kept resolved: expanded again.
            if rule.regex.captures_read(locs, name) {
                name_buf.clear();
                rule.regex
                    .expand_template(locs, name, replacement, name_buf);
                b.set_ref(base, Key::Text(name_buf), value);
            }
        }
        Walk::Map(n) => b.set_ref(base, n.key(""), value),
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
