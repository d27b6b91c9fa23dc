//! Client-side delta of cumulative profiles.
//!
//! Go's heap (`allocs`), block and mutex profiles are cumulative: every value only grows over the life of the
//! process. A server wants what happened since the last scrape, so for these profiles the scraper keeps the
//! previous values of each stack and forwards the difference, with `__delta__="false"` telling the server
//! not to compute a delta again.
//!
//! - The first profile of a target only sets the baseline: it is withheld ([`Delta::Withheld`]).
//! - Only the cumulative sample types are differenced (`alloc_objects`, `alloc_space` for memory;
//!   `contentions`, `delay` for block and mutex); others (`inuse_*`) pass through as they are.
//! - A sample whose values are all zero afterwards is dropped; locations, functions, mappings and strings
//!   nobody refers to any more are pruned. The output is gzip-compressed (fastest level), as the reference
//!   forwards it: receivers and servers that expect the reference's gzip framing keep working.
//! - A value smaller than its baseline means the counter restarted (the process restarted): the value itself
//!   is the delta, like a Prometheus counter reset (**Decision**; the reference sent negative values).
//! - A profile that fails to decode resets the baseline: the next good profile is withheld again.
//!
//! Memory: the baseline is one entry per distinct stack in a vector sorted by key, allocated to its exact
//! size — a 64-bit key and the two cumulative values, 24 bytes per stack (≈96 KB for the 4,000-stack
//! `wide-allocs` fixture), never the profile itself. A scraper keeps one per cumulative profile of every
//! target, so this is what its memory grows with.
//! Stacks are identified by content (function names, files, lines, addresses relative to their mapping, and
//! the sample's labels), not by location IDs, which a Go process renumbers in every profile it writes.

use super::proto::{Location, Profile, Sample};
use super::{decode, gz, InvalidKind, InvalidProfile};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// How many sample types are differenced at most (both kinds have exactly two).
const MAX_DELTA_TYPES: usize = 2;

/// Which cumulative profile this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeltaKind {
    /// Heap / allocs: `alloc_objects` and `alloc_space` are differenced.
    Memory,
    /// Block and mutex profiles: `contentions` and `delay` are differenced.
    Contention,
}

impl DeltaKind {
    /// The sample-type names that are cumulative.
    pub fn sample_types(self) -> &'static [&'static str] {
        match self {
            DeltaKind::Memory => &["alloc_objects", "alloc_space"],
            DeltaKind::Contention => &["contentions", "delay"],
        }
    }
}

/// What to forward for one scraped profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    /// The first profile (or the first after a reset): it only sets the baseline.
    Withheld,
    /// The difference to the previous profile: gzip-compressed pprof.
    Profile(Vec<u8>),
    /// The profile has none of the cumulative sample types: forward it unchanged.
    PassThrough,
}

/// The per-target state of the delta computation.
#[derive(Clone, Debug)]
pub struct DeltaComputer {
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

impl DeltaComputer {
    /// A computer for one target's profile of this kind; decompressed profiles larger than `limit` bytes are
    /// refused.
    pub fn new(kind: DeltaKind, limit: usize) -> Self {
        DeltaComputer {
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
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes a profile, gzip-compressed through a per-thread buffer and deflate state.
fn encode_gzip(p: &Profile) -> Vec<u8> {
    let len = prost::Message::encoded_len(p);
    ENCODED.with(|buf| {
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

#[cfg(test)]
mod tests {
    use super::super::proto::*;
    use super::super::tests::fixture;
    use super::super::{gzip, DEFAULT_MAX_DECOMPRESSED};
    use super::*;
    use std::collections::BTreeMap;

    /// Values per stack, keyed by resolved text (independent of the hashing under test).
    fn by_stack(p: &Profile) -> BTreeMap<String, Vec<i64>> {
        let s = |i: i64| p.string_table[i as usize].clone();
        let funcs: HashMap<u64, &Function> = p.function.iter().map(|f| (f.id, f)).collect();
        let locs: HashMap<u64, &Location> = p.location.iter().map(|l| (l.id, l)).collect();
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for sample in &p.sample {
            let mut key = String::new();
            for id in &sample.location_id {
                let l = locs[id];
                key.push_str(&format!("{:x}", l.address));
                for line in &l.line {
                    key.push_str(&format!(
                        "|{}:{}",
                        s(funcs[&line.function_id].name),
                        line.line
                    ));
                }
                key.push(';');
            }
            let mut labels: Vec<String> = sample
                .label
                .iter()
                .map(|l| format!("{}={}/{}{}", s(l.key), s(l.str), l.num, s(l.num_unit)))
                .collect();
            labels.sort();
            key.push_str(&labels.join(","));
            let e = out
                .entry(key)
                .or_insert_with(|| vec![0; sample.value.len()]);
            for (a, b) in e.iter_mut().zip(&sample.value) {
                *a += b;
            }
        }
        out
    }

    fn decoded(data: &[u8]) -> Profile {
        decode(data, DEFAULT_MAX_DECOMPRESSED, &mut Vec::new()).unwrap()
    }

    fn type_names(p: &Profile) -> Vec<String> {
        p.sample_type
            .iter()
            .map(|t| p.string_table[t.r#type as usize].clone())
            .collect()
    }

    /// delta(first, second) + first == second for the cumulative types; the others equal `second`'s.
    fn check_pair(kind: DeltaKind, first: &str, second: &str) {
        let (a, b) = (fixture(first), fixture(second));
        let mut d = DeltaComputer::new(kind, DEFAULT_MAX_DECOMPRESSED);
        assert_eq!(d.next(&a).unwrap(), Delta::Withheld);
        let Delta::Profile(out) = d.next(&b).unwrap() else {
            panic!("no delta profile");
        };
        // Deltas are forwarded gzip-compressed, as the reference does.
        assert!(super::super::is_gzip(&out));
        let (pa, pb, pd) = (decoded(&a), decoded(&b), decoded(&out));
        assert_eq!(type_names(&pd), type_names(&pb));
        let names = type_names(&pb);
        let cumulative: Vec<bool> = names
            .iter()
            .map(|n| kind.sample_types().contains(&n.as_str()))
            .collect();
        let (sa, sb, sd) = (by_stack(&pa), by_stack(&pb), by_stack(&pd));
        let mut compared = 0;
        for (stack, vb) in &sb {
            let va = sa.get(stack).cloned().unwrap_or_else(|| vec![0; vb.len()]);
            let expected: Vec<i64> = vb
                .iter()
                .zip(&va)
                .zip(&cumulative)
                .map(|((b, a), c)| {
                    if !*c {
                        *b
                    } else if b >= a {
                        b - a
                    } else {
                        *b
                    }
                })
                .collect();
            match sd.get(stack) {
                Some(vd) => {
                    assert_eq!(vd, &expected, "{stack}");
                    for (k, c) in cumulative.iter().enumerate() {
                        if *c && vb[k] >= va[k] {
                            compared += 1;
                            assert_eq!(vd[k] + va[k], vb[k], "{stack}");
                        }
                    }
                }
                None => assert!(
                    expected.iter().all(|v| *v == 0),
                    "{stack} dropped but {expected:?}"
                ),
            }
        }
        // Nothing in the delta that the second profile lacks.
        for stack in sd.keys() {
            assert!(sb.contains_key(stack), "{stack}");
        }
        assert!(compared > 0);
        // Every location, function and string left is referenced.
        assert!(pd.location.len() <= pb.location.len());
        assert!(pd.string_table.len() <= pb.string_table.len());
        assert_eq!(pd.string_table[0], "");
    }

    #[test]
    fn wide_allocs_delta_readds_to_the_second_profile() {
        check_pair(
            DeltaKind::Memory,
            "wide-allocs-1.pb.gz",
            "wide-allocs-2.pb.gz",
        );
        let mut d = DeltaComputer::new(DeltaKind::Memory, DEFAULT_MAX_DECOMPRESSED);
        d.next(&fixture("wide-allocs-1.pb.gz")).unwrap();
        assert!(d.baseline_len() > 3000, "{}", d.baseline_len());
    }

    #[test]
    fn mutex_delta_readds_to_the_second_profile() {
        check_pair(DeltaKind::Contention, "go-mutex.pb.gz", "go-mutex-2.pb.gz");
    }

    #[test]
    fn the_same_profile_twice_gives_an_empty_delta_for_cumulative_types() {
        let a = fixture("go-mutex-2.pb.gz");
        let mut d = DeltaComputer::new(DeltaKind::Contention, DEFAULT_MAX_DECOMPRESSED);
        d.next(&a).unwrap();
        let Delta::Profile(out) = d.next(&a).unwrap() else {
            panic!()
        };
        let p = decoded(&out);
        assert!(p.sample.is_empty(), "{:?}", p.sample);
        assert!(p.location.is_empty() && p.function.is_empty());
        // Only the strings of sample types / period type (and "") remain.
        assert!(p.string_table.len() <= 1 + 2 * (p.sample_type.len() + 1));
    }

    #[test]
    fn a_decode_error_resets_the_baseline() {
        let a = fixture("go-mutex.pb.gz");
        let mut d = DeltaComputer::new(DeltaKind::Contention, DEFAULT_MAX_DECOMPRESSED);
        d.next(&a).unwrap();
        assert!(d.next(b"<html>").is_err());
        assert_eq!(d.baseline_len(), 0);
        assert_eq!(d.next(&a).unwrap(), Delta::Withheld);
        assert!(matches!(d.next(&a).unwrap(), Delta::Profile(_)));
    }

    #[test]
    fn a_profile_without_cumulative_types_passes_through() {
        let mut d = DeltaComputer::new(DeltaKind::Memory, DEFAULT_MAX_DECOMPRESSED);
        assert_eq!(
            d.next(&fixture("go-cpu.pb.gz")).unwrap(),
            Delta::PassThrough
        );
    }

    // ----- property test over generated profiles -----

    use proptest::prelude::*;

    /// A memory-like profile: stacks over a small function set, with labels and duplicate records.
    fn build(stacks: &[(Vec<u8>, u8, [i64; 4])], id_offset: u64) -> Profile {
        let mut st: Vec<String> = vec![
            "".into(),
            "alloc_objects".into(),
            "count".into(),
            "alloc_space".into(),
            "bytes".into(),
            "inuse_objects".into(),
            "inuse_space".into(),
            "size".into(),
        ];
        let fbase = st.len() as i64;
        for f in 0..8 {
            st.push(format!("main.f{f}"));
        }
        let function = (0..8u64)
            .map(|f| Function {
                id: f + 1 + id_offset,
                name: fbase + f as i64,
                ..Default::default()
            })
            .collect();
        // Location i calls function i; IDs shifted by `id_offset` as a Go process would renumber them.
        let location = (0..8u64)
            .map(|f| Location {
                id: 100 + f + id_offset,
                address: 0x1000 + f,
                line: vec![Line {
                    function_id: f + 1 + id_offset,
                    line: 10,
                    column: 0,
                }],
                ..Default::default()
            })
            .collect();
        let sample = stacks
            .iter()
            .map(|(frames, size, v)| Sample {
                location_id: frames
                    .iter()
                    .map(|f| 100 + u64::from(*f % 8) + id_offset)
                    .collect(),
                value: v.to_vec(),
                label: vec![Label {
                    key: 7,
                    num: i64::from(*size % 3),
                    ..Default::default()
                }],
            })
            .collect();
        let vt = |t, u| ValueType { r#type: t, unit: u };
        Profile {
            sample_type: vec![vt(1, 2), vt(3, 4), vt(5, 2), vt(6, 4)],
            sample,
            location,
            function,
            string_table: st,
            period_type: Some(vt(3, 4)),
            period: 512,
            ..Default::default()
        }
    }

    proptest! {
        #[test]
        fn delta_plus_previous_is_current(
            stacks in proptest::collection::vec(
                (proptest::collection::vec(0u8..8, 1..5), 0u8..3, [0i64..1000, 0i64..1000, 0i64..50, 0i64..50]),
                0..40),
            growth in proptest::collection::vec([0i64..100, 0i64..100, 0i64..50, 0i64..50], 40),
            offset in 0u64..50,
        ) {
            let first = build(&stacks, 0);
            let grown: Vec<_> = stacks
                .iter()
                .zip(&growth)
                .map(|((f, s, v), g)| (f.clone(), *s, [v[0] + g[0], v[1] + g[1], g[2], g[3]]))
                .collect();
            let second = build(&grown, offset);
            let mut d = DeltaComputer::new(DeltaKind::Memory, DEFAULT_MAX_DECOMPRESSED);
            prop_assert_eq!(d.next(&prost::Message::encode_to_vec(&first)).unwrap(), Delta::Withheld);
            let Delta::Profile(out) = d.next(&gzip(&prost::Message::encode_to_vec(&second))).unwrap() else {
                panic!("no delta");
            };
            let delta = by_stack(&decoded(&out));
            let (a, b) = (by_stack(&first), by_stack(&second));
            for (stack, vb) in &b {
                let va = &a[stack];
                let want = [vb[0] - va[0], vb[1] - va[1], vb[2], vb[3]];
                match delta.get(stack) {
                    Some(vd) => prop_assert_eq!(vd.as_slice(), &want[..]),
                    None => prop_assert!(want.iter().all(|v| *v == 0)),
                }
            }
            prop_assert!(delta.keys().all(|k| b.contains_key(k)));
        }
    }
}
