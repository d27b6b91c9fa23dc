//! The prost-based delta the borrowed one replaced, kept as the reference model: the tests below check that
//! [`super::DeltaComputer`] gives what this gives (the same profile once decoded, the same errors and
//! withheld profiles) for every fixture pair and for generated and corrupted inputs.
//!
//! The model is the former implementation unchanged but for its names.

#![allow(dead_code)]

use super::super::proto::{Location, Profile, Sample};
use super::super::{decode, gz, InvalidKind, InvalidProfile};
use super::{Delta, DeltaKind, MAX_DELTA_TYPES};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// The per-target state of the delta computation.
#[derive(Clone, Debug)]
pub struct ReferenceComputer {
    kind: DeltaKind,
    limit: usize,
    /// Cumulative values per stack key, sorted by key; `None` until the first good profile.
    baseline: Option<Box<[Entry]>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u64,
    values: [i64; MAX_DELTA_TYPES],
}

impl ReferenceComputer {
    /// A computer for one target's profile of this kind; decompressed profiles larger than `limit` bytes are
    /// refused.
    pub fn new(kind: DeltaKind, limit: usize) -> Self {
        ReferenceComputer {
            kind,
            limit,
            baseline: None,
        }
    }

    /// Forgets the baseline: the next profile is withheld.
    pub fn reset(&mut self) {
        self.baseline = None;
    }

    /// How many stacks the baseline holds.
    pub fn baseline_len(&self) -> usize {
        self.baseline.as_ref().map_or(0, |b| b.len())
    }

    /// How many bytes the baseline occupies.
    pub fn baseline_bytes(&self) -> usize {
        self.baseline
            .as_ref()
            .map_or(0, |b| std::mem::size_of_val::<[Entry]>(b))
    }

    /// Takes the next cumulative profile (gzip-compressed or not) and says what to forward.
    pub fn next(&mut self, data: &[u8]) -> Result<Delta, InvalidProfile> {
        let mut scratch = Vec::new();
        let result = decode(data, self.limit, &mut scratch).and_then(|mut p| {
            drop(std::mem::take(&mut scratch));
            self.apply(&mut p)
        });
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Differences a decoded profile in place against the baseline, updates the baseline, and encodes.
    fn apply(&mut self, p: &mut Profile) -> Result<Delta, InvalidProfile> {
        let strings = &p.string_table;
        let mut delta_idx: Vec<usize> = Vec::with_capacity(MAX_DELTA_TYPES);
        for (i, st) in p.sample_type.iter().enumerate() {
            let name = string(strings, st.r#type)?;
            if self.kind.sample_types().contains(&name) && delta_idx.len() < MAX_DELTA_TYPES {
                delta_idx.push(i);
            }
        }
        if delta_idx.is_empty() {
            return Ok(Delta::PassThrough);
        }
        let n_types = p.sample_type.len();
        if let Some(s) = p.sample.iter().find(|s| s.value.len() != n_types) {
            return Err(inconsistent(format!(
                "a sample has {} values for {n_types} sample types",
                s.value.len()
            )));
        }

        let keys = sample_keys(p)?;

        // Merge samples with the same key into the first one (the delta is per stack, not per record).
        let mut first: HashMap<u64, usize, KeyHasher> =
            HashMap::with_capacity_and_hasher(p.sample.len(), KeyHasher::default());
        let mut keep = vec![true; p.sample.len()];
        for i in 0..p.sample.len() {
            match first.get(&keys[i]) {
                None => {
                    first.insert(keys[i], i);
                }
                Some(&j) => {
                    keep[i] = false;
                    let (a, b) = (
                        std::mem::take(&mut p.sample[i].value),
                        &mut p.sample[j].value,
                    );
                    for (x, y) in b.iter_mut().zip(a) {
                        *x = x.saturating_add(y);
                    }
                }
            }
        }
        drop(first);

        let had_baseline = self.baseline.is_some();
        let previous: &[Entry] = self.baseline.as_deref().unwrap_or(&[]);
        let mut next: Vec<Entry> = Vec::with_capacity(keep.iter().filter(|k| **k).count());
        for (i, s) in p.sample.iter_mut().enumerate() {
            if !keep[i] {
                continue;
            }
            let mut current = [0i64; MAX_DELTA_TYPES];
            for (k, &idx) in delta_idx.iter().enumerate() {
                current[k] = s.value[idx];
            }
            let prev = previous
                .binary_search_by_key(&keys[i], |e| e.key)
                .ok()
                .map(|j| previous[j].values);
            next.push(Entry {
                key: keys[i],
                values: current,
            });
            for (k, &idx) in delta_idx.iter().enumerate() {
                let prev = prev.map_or(0, |v| v[k]);
                s.value[idx] = if current[k] >= prev {
                    current[k] - prev
                } else {
                    current[k]
                };
            }
            if s.value.iter().all(|v| *v == 0) {
                keep[i] = false;
            }
        }
        // Keys are unique (duplicates were merged above); stacks absent now leave the baseline.
        next.sort_unstable_by_key(|e| e.key);
        self.baseline = Some(next.into_boxed_slice());
        if !had_baseline {
            return Ok(Delta::Withheld);
        }

        let mut i = 0;
        p.sample.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        prune(p)?;
        Ok(Delta::Profile(encode_gzip(p)))
    }
}

thread_local! {
    /// The encoded (uncompressed) delta, reused: only its gzip form leaves.
    static REFERENCE_ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes a profile, gzip-compressed through a per-thread buffer and deflate state.
fn encode_gzip(p: &Profile) -> Vec<u8> {
    let len = prost::Message::encoded_len(p);
    REFERENCE_ENCODED.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        buf.reserve(len);
        // A Vec grows as needed, so encoding cannot run out of room.
        let _ = prost::Message::encode(p, &mut *buf);
        let mut out = Vec::new();
        gz::gzip_into(&buf, &mut out);
        if buf.capacity() > 16 << 20 {
            *buf = Vec::new();
        }
        out
    })
}

fn inconsistent(msg: String) -> InvalidProfile {
    InvalidProfile {
        content_type: None,
        kind: InvalidKind::Inconsistent(msg),
    }
}

fn string(strings: &[String], idx: i64) -> Result<&str, InvalidProfile> {
    usize::try_from(idx)
        .ok()
        .and_then(|i| strings.get(i))
        .map(String::as_str)
        .ok_or_else(|| inconsistent(format!("string index {idx} out of range")))
}

/// A hasher for keys that already are 64-bit hashes.
#[derive(Default, Clone, Copy, Debug)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = v as u64;
    }
}

type KeyHasher = BuildHasherDefault<PassThroughHasher>;

/// A strong, deterministic 64-bit hasher (SipHash-1-3 with fixed keys): keys identify stacks, so collisions
/// must be negligible.
fn hasher() -> std::hash::DefaultHasher {
    std::hash::DefaultHasher::new()
}

/// An index from table IDs (locations, functions, mappings) to positions; dense IDs (Go numbers from 1) use a
/// vector, others a sorted list.
enum IdIndex {
    Dense(Vec<u32>),
    Sorted(Vec<(u64, u32)>),
}

impl IdIndex {
    const NONE: u32 = u32::MAX;

    fn new(ids: impl ExactSizeIterator<Item = u64> + Clone) -> Self {
        let n = ids.len();
        let max = ids.clone().max().unwrap_or(0);
        if max <= (n as u64).saturating_mul(2).saturating_add(16) {
            let mut v = vec![Self::NONE; max as usize + 1];
            for (pos, id) in ids.enumerate() {
                v[id as usize] = pos as u32;
            }
            IdIndex::Dense(v)
        } else {
            let mut v: Vec<(u64, u32)> = ids.enumerate().map(|(p, id)| (id, p as u32)).collect();
            v.sort_unstable();
            IdIndex::Sorted(v)
        }
    }

    fn get(&self, id: u64) -> Option<usize> {
        match self {
            IdIndex::Dense(v) => usize::try_from(id)
                .ok()
                .and_then(|i| v.get(i))
                .filter(|p| **p != Self::NONE)
                .map(|p| *p as usize),
            IdIndex::Sorted(v) => v
                .binary_search_by_key(&id, |(i, _)| *i)
                .ok()
                .map(|i| v[i].1 as usize),
        }
    }
}

/// One key per sample: its stack by content, plus its labels.
fn sample_keys(p: &Profile) -> Result<Vec<u64>, InvalidProfile> {
    let strings = &p.string_table;
    let str_hash = |idx: i64, h: &mut std::hash::DefaultHasher| -> Result<(), InvalidProfile> {
        string(strings, idx)?.hash(h);
        Ok(())
    };
    let mut function_hash = Vec::with_capacity(p.function.len());
    for f in &p.function {
        let mut h = hasher();
        str_hash(f.name, &mut h)?;
        str_hash(f.system_name, &mut h)?;
        str_hash(f.filename, &mut h)?;
        function_hash.push(h.finish());
    }
    let functions = IdIndex::new(p.function.iter().map(|f| f.id));
    let mappings = IdIndex::new(p.mapping.iter().map(|m| m.id));
    let mut mapping_hash = Vec::with_capacity(p.mapping.len());
    for m in &p.mapping {
        let mut h = hasher();
        str_hash(m.filename, &mut h)?;
        str_hash(m.build_id, &mut h)?;
        mapping_hash.push(h.finish());
    }
    let mut location_hash = Vec::with_capacity(p.location.len());
    for loc in &p.location {
        location_hash.push(location_key(
            loc,
            p,
            &functions,
            &function_hash,
            &mappings,
            &mapping_hash,
        )?);
    }
    let locations = IdIndex::new(p.location.iter().map(|l| l.id));

    let mut keys = Vec::with_capacity(p.sample.len());
    let mut label_hashes: Vec<u64> = Vec::new();
    for s in &p.sample {
        keys.push(sample_key(
            s,
            strings,
            &locations,
            &location_hash,
            &mut label_hashes,
        )?);
    }
    Ok(keys)
}

fn location_key(
    loc: &Location,
    p: &Profile,
    functions: &IdIndex,
    function_hash: &[u64],
    mappings: &IdIndex,
    mapping_hash: &[u64],
) -> Result<u64, InvalidProfile> {
    let mut h = hasher();
    let (start, mhash) = if loc.mapping_id == 0 {
        (0, 0)
    } else {
        let m = mappings.get(loc.mapping_id).ok_or_else(|| {
            inconsistent(format!(
                "location {} refers to unknown mapping {}",
                loc.id, loc.mapping_id
            ))
        })?;
        (p.mapping[m].memory_start, mapping_hash[m])
    };
    mhash.hash(&mut h);
    loc.address.wrapping_sub(start).hash(&mut h);
    loc.is_folded.hash(&mut h);
    for line in &loc.line {
        let f = functions.get(line.function_id).ok_or_else(|| {
            inconsistent(format!(
                "location {} refers to unknown function {}",
                loc.id, line.function_id
            ))
        })?;
        function_hash[f].hash(&mut h);
        line.line.hash(&mut h);
        line.column.hash(&mut h);
    }
    Ok(h.finish())
}

fn sample_key(
    s: &Sample,
    strings: &[String],
    locations: &IdIndex,
    location_hash: &[u64],
    label_hashes: &mut Vec<u64>,
) -> Result<u64, InvalidProfile> {
    let mut h = hasher();
    s.location_id.len().hash(&mut h);
    for id in &s.location_id {
        let l = locations
            .get(*id)
            .ok_or_else(|| inconsistent(format!("a sample refers to unknown location {id}")))?;
        location_hash[l].hash(&mut h);
    }
    // Labels as a set: their order in the record does not matter.
    label_hashes.clear();
    for l in &s.label {
        let mut lh = hasher();
        string(strings, l.key)?.hash(&mut lh);
        string(strings, l.str)?.hash(&mut lh);
        l.num.hash(&mut lh);
        string(strings, l.num_unit)?.hash(&mut lh);
        label_hashes.push(lh.finish());
    }
    label_hashes.sort_unstable();
    label_hashes.hash(&mut h);
    Ok(h.finish())
}

/// Drops locations, functions and mappings no sample refers to, then unused strings (renumbering the rest).
fn prune(p: &mut Profile) -> Result<(), InvalidProfile> {
    let locations = IdIndex::new(p.location.iter().map(|l| l.id));
    let mut keep_loc = vec![false; p.location.len()];
    for s in &p.sample {
        for id in &s.location_id {
            if let Some(i) = locations.get(*id) {
                keep_loc[i] = true;
            }
        }
    }
    let mut i = 0;
    p.location.retain(|_| {
        i += 1;
        keep_loc[i - 1]
    });

    let functions = IdIndex::new(p.function.iter().map(|f| f.id));
    let mappings = IdIndex::new(p.mapping.iter().map(|m| m.id));
    let mut keep_fn = vec![false; p.function.len()];
    let mut keep_map = vec![false; p.mapping.len()];
    for l in &p.location {
        if let Some(m) = mappings.get(l.mapping_id) {
            keep_map[m] = true;
        }
        for line in &l.line {
            if let Some(f) = functions.get(line.function_id) {
                keep_fn[f] = true;
            }
        }
    }
    let mut i = 0;
    p.function.retain(|_| {
        i += 1;
        keep_fn[i - 1]
    });
    let mut i = 0;
    p.mapping.retain(|_| {
        i += 1;
        keep_map[i - 1]
    });

    // Strings: mark what is referenced, then renumber.
    let n = p.string_table.len();
    let mut used = vec![false; n];
    let mut mark = |idx: i64| -> Result<(), InvalidProfile> {
        let i = usize::try_from(idx)
            .ok()
            .filter(|i| *i < n)
            .ok_or_else(|| inconsistent(format!("string index {idx} out of range")))?;
        used[i] = true;
        Ok(())
    };
    mark(0)?;
    for st in p.sample_type.iter().chain(p.period_type.iter()) {
        mark(st.r#type)?;
        mark(st.unit)?;
    }
    for s in &p.sample {
        for l in &s.label {
            mark(l.key)?;
            mark(l.str)?;
            mark(l.num_unit)?;
        }
    }
    for m in &p.mapping {
        mark(m.filename)?;
        mark(m.build_id)?;
    }
    for f in &p.function {
        mark(f.name)?;
        mark(f.system_name)?;
        mark(f.filename)?;
    }
    for c in &p.comment {
        mark(*c)?;
    }
    mark(p.drop_frames)?;
    mark(p.keep_frames)?;
    mark(p.default_sample_type)?;
    mark(p.doc_url)?;

    let mut remap = vec![0i64; n];
    let mut next = 0i64;
    for (i, u) in used.iter().enumerate() {
        if *u {
            remap[i] = next;
            next += 1;
        }
    }
    let mut i = 0;
    p.string_table.retain(|_| {
        i += 1;
        used[i - 1]
    });
    // Every index was checked by `mark`.
    let r = |idx: &mut i64| *idx = remap[*idx as usize];
    for st in p.sample_type.iter_mut().chain(p.period_type.iter_mut()) {
        r(&mut st.r#type);
        r(&mut st.unit);
    }
    for s in &mut p.sample {
        for l in &mut s.label {
            r(&mut l.key);
            r(&mut l.str);
            r(&mut l.num_unit);
        }
    }
    for m in &mut p.mapping {
        r(&mut m.filename);
        r(&mut m.build_id);
    }
    for f in &mut p.function {
        r(&mut f.name);
        r(&mut f.system_name);
        r(&mut f.filename);
    }
    for c in &mut p.comment {
        r(c);
    }
    r(&mut p.drop_frames);
    r(&mut p.keep_frames);
    r(&mut p.default_sample_type);
    r(&mut p.doc_url);
    Ok(())
}

