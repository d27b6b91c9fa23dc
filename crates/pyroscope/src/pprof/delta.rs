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
//!
//! Cost: a scraper computes thousands of deltas a second, so the profile is not decoded into owned
//! messages. [`view`] reads the protobuf once, leaving strings in the input; stacks are keyed with XXH3
//! over bytes hashed once per string, function, mapping and location; the output protobuf is written
//! directly (strings and unchanged locations copied as bytes) into buffers that are kept per thread, like
//! every other scratch vector here. What the delta allocates per profile is its gzip output and, when the
//! number of stacks changed, the new baseline.

use super::proto::{Label, ValueType};
use super::{classify, gz, uncompressed, InvalidKind, InvalidProfile};
use std::cell::RefCell;
use view::{Span, Tables};
use xxhash_rust::xxh3::xxh3_64;

// The unit tests below use these through `super::*`.
#[cfg(test)]
use super::decode;
#[cfg(test)]
use std::collections::HashMap;

#[cfg(test)]
mod reference;
mod view;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: u64,
    values: [i64; MAX_DELTA_TYPES],
}

thread_local! {
    /// Scratch of the delta, per thread: a scraper's worker threads compute every target's deltas, so
    /// memory follows the number of threads, not of targets.
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

/// Scratch buffers above this size are not kept for the next profile.
const KEEP_SCRATCH_BYTES: usize = 16 << 20;

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
        let result = WORK.with(|cell| match cell.try_borrow_mut() {
            Ok(mut work) => {
                let r = self.run(data, &mut work);
                work.trim();
                r
            }
            // Not reachable (nothing here calls back into a delta), but never a panic.
            Err(_) => self.run(data, &mut Work::default()),
        });
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn run(&mut self, data: &[u8], work: &mut Work) -> Result<Delta, InvalidProfile> {
        let Work { gunzip, scratch } = work;
        let plain = uncompressed(data, self.limit, gunzip)?;
        self.apply(plain, scratch)
    }

    /// Differences a profile against the baseline, updates the baseline, and writes the delta.
    fn apply(&mut self, plain: &[u8], s: &mut Scratch) -> Result<Delta, InvalidProfile> {
        s.tables.read(plain).map_err(|e| {
            InvalidProfile::new(classify(plain).unwrap_or(InvalidKind::Protobuf(e.to_string())))
        })?;
        let Scratch {
            tables: t,
            str_hash,
            fn_hash,
            map_hash,
            loc_hash,
            functions,
            mappings,
            locations,
            words,
            label_hashes,
            keyed,
            keep,
            keep_loc,
            keep_fn,
            keep_map,
            remap,
            next,
            out,
        } = s;
        let strings = Strings {
            buf: plain,
            spans: &t.strings,
        };
        if strings.spans.first().is_some_and(|s| s.end > s.start) {
            return Err(inconsistent(
                "the first string of the string table is not empty".into(),
            ));
        }

        let mut delta_idx = [0usize; MAX_DELTA_TYPES];
        let mut n_delta = 0;
        for (i, st) in t.sample_type.iter().enumerate() {
            let name = strings.get(st.r#type)?;
            if n_delta < MAX_DELTA_TYPES
                && self
                    .kind
                    .sample_types()
                    .iter()
                    .any(|n| n.as_bytes() == name)
            {
                delta_idx[n_delta] = i;
                n_delta += 1;
            }
        }
        let delta_idx = &delta_idx[..n_delta];
        if delta_idx.is_empty() {
            return Ok(Delta::PassThrough);
        }
        let n_types = t.sample_type.len();
        if let Some(smp) = t.samples.iter().find(|s| s.values.len() != n_types) {
            return Err(inconsistent(format!(
                "a sample has {} values for {n_types} sample types",
                smp.values.len()
            )));
        }

        // ----- keys: every string, function, mapping and location hashed once -----
        str_hash.clear();
        str_hash.resize(t.strings.len(), None);
        let mut sh = |idx: i64| -> Result<u64, InvalidProfile> {
            let i = strings.index(idx)?;
            Ok(*str_hash[i].get_or_insert_with(|| xxh3_64(strings.at(i))))
        };
        fn_hash.clear();
        for f in &t.functions {
            let mut w = Words::new(words);
            w.push(sh(f.name)?);
            w.push(sh(f.system_name)?);
            w.push(sh(f.filename)?);
            fn_hash.push(w.finish());
        }
        map_hash.clear();
        for m in &t.mappings {
            let mut w = Words::new(words);
            w.push(sh(m.filename)?);
            w.push(sh(m.build_id)?);
            map_hash.push(w.finish());
        }
        functions.build(t.functions.iter().map(|f| f.id));
        mappings.build(t.mappings.iter().map(|m| m.id));
        locations.build(t.locations.iter().map(|l| l.id));
        loc_hash.clear();
        for loc in &t.locations {
            let (start, mhash) = if loc.mapping_id == 0 {
                (0, 0)
            } else {
                let m = mappings.get(loc.mapping_id).ok_or_else(|| {
                    inconsistent(format!(
                        "location {} refers to unknown mapping {}",
                        loc.id, loc.mapping_id
                    ))
                })?;
                (t.mappings[m].memory_start, map_hash[m])
            };
            let mut w = Words::new(words);
            w.push(mhash);
            w.push(loc.address.wrapping_sub(start));
            w.push(u64::from(loc.is_folded));
            for line in &t.lines[loc.lines.range()] {
                let f = functions.get(line.function_id).ok_or_else(|| {
                    inconsistent(format!(
                        "location {} refers to unknown function {}",
                        loc.id, line.function_id
                    ))
                })?;
                w.push(fn_hash[f]);
                w.push(line.line as u64);
                w.push(line.column as u64);
            }
            loc_hash.push(w.finish());
        }
        keyed.clear();
        for (i, smp) in t.samples.iter().enumerate() {
            // Labels as a set: their order in the record does not matter.
            label_hashes.clear();
            for l in &t.labels[smp.labels.range()] {
                let mut w = Words::new(words);
                w.push(sh(l.key)?);
                w.push(sh(l.str)?);
                w.push(l.num as u64);
                w.push(sh(l.num_unit)?);
                label_hashes.push(w.finish());
            }
            label_hashes.sort_unstable();
            let mut w = Words::new(words);
            w.push(smp.locs.len() as u64);
            for id in &t.loc_ids[smp.locs.range()] {
                let l = locations.get(*id).ok_or_else(|| {
                    inconsistent(format!("a sample refers to unknown location {id}"))
                })?;
                w.push(loc_hash[l]);
            }
            w.push(label_hashes.len() as u64);
            for h in label_hashes.iter() {
                w.push(*h);
            }
            keyed.push((w.finish(), i as u32));
        }

        // ----- difference, stack by stack, in key order (that of the baseline) -----
        // Records of the same stack merge into the first (the delta is per stack, not per record): sorted by
        // (key, index), they are adjacent, the first one first.
        keyed.sort_unstable();
        keep.clear();
        keep.resize(t.samples.len(), false);
        next.clear();
        let had_baseline = self.baseline.is_some();
        let previous: &[Entry] = self.baseline.as_deref().unwrap_or(&[]);
        let mut p = 0usize;
        let mut g = 0usize;
        while g < keyed.len() {
            let (key, first) = (keyed[g].0, keyed[g].1 as usize);
            let target = t.samples[first].values.range();
            g += 1;
            while g < keyed.len() && keyed[g].0 == key {
                let other = t.samples[keyed[g].1 as usize].values.range();
                for (a, b) in target.clone().zip(other) {
                    t.values[a] = t.values[a].saturating_add(t.values[b]);
                }
                g += 1;
            }
            let values = &mut t.values[target];
            let mut current = [0i64; MAX_DELTA_TYPES];
            for (k, &idx) in delta_idx.iter().enumerate() {
                current[k] = values[idx];
            }
            while p < previous.len() && previous[p].key < key {
                p += 1;
            }
            let prev = previous.get(p).filter(|e| e.key == key).map(|e| e.values);
            next.push(Entry {
                key,
                values: current,
            });
            for (k, &idx) in delta_idx.iter().enumerate() {
                let prev = prev.map_or(0, |v| v[k]);
                values[idx] = if current[k] >= prev {
                    current[k].wrapping_sub(prev)
                } else {
                    current[k]
                };
            }
            keep[first] = values.iter().any(|v| *v != 0);
        }
        // Keys are unique and sorted; stacks absent now leave the baseline. The same number of stacks (the
        // usual case) reuses the allocation.
        match &mut self.baseline {
            Some(b) if b.len() == next.len() => b.copy_from_slice(next),
            b => *b = Some(next.as_slice().into()),
        }
        if !had_baseline {
            return Ok(Delta::Withheld);
        }

        // ----- prune: what the kept samples refer to -----
        keep_loc.clear();
        keep_loc.resize(t.locations.len(), false);
        for (smp, _) in t.samples.iter().zip(keep.iter()).filter(|(_, k)| **k) {
            for id in &t.loc_ids[smp.locs.range()] {
                if let Some(l) = locations.get(*id) {
                    keep_loc[l] = true;
                }
            }
        }
        keep_fn.clear();
        keep_fn.resize(t.functions.len(), false);
        keep_map.clear();
        keep_map.resize(t.mappings.len(), false);
        for (loc, _) in t.locations.iter().zip(keep_loc.iter()).filter(|(_, k)| **k) {
            if let Some(m) = mappings.get(loc.mapping_id) {
                keep_map[m] = true;
            }
            for line in &t.lines[loc.lines.range()] {
                if let Some(f) = functions.get(line.function_id) {
                    keep_fn[f] = true;
                }
            }
        }

        // Strings: mark what is referenced, then renumber.
        remap.clear();
        remap.resize(t.strings.len(), UNUSED);
        {
            let mut mark = |idx: i64| -> Result<(), InvalidProfile> {
                let i = strings.index(idx)?;
                remap[i] = 0;
                Ok(())
            };
            mark(0)?;
            for st in t.sample_type.iter().chain(t.scalars.period_type.iter()) {
                mark(st.r#type)?;
                mark(st.unit)?;
            }
            for (smp, _) in t.samples.iter().zip(keep.iter()).filter(|(_, k)| **k) {
                for l in &t.labels[smp.labels.range()] {
                    mark(l.key)?;
                    mark(l.str)?;
                    mark(l.num_unit)?;
                }
            }
            for (m, _) in t.mappings.iter().zip(keep_map.iter()).filter(|(_, k)| **k) {
                mark(m.filename)?;
                mark(m.build_id)?;
            }
            for (f, _) in t.functions.iter().zip(keep_fn.iter()).filter(|(_, k)| **k) {
                mark(f.name)?;
                mark(f.system_name)?;
                mark(f.filename)?;
            }
            for c in &t.comments {
                mark(*c)?;
            }
            let sc = &t.scalars;
            for idx in [
                sc.drop_frames,
                sc.keep_frames,
                sc.default_sample_type,
                sc.doc_url,
            ] {
                mark(idx)?;
            }
        }
        for (n, r) in remap.iter_mut().filter(|r| **r != UNUSED).enumerate() {
            *r = n as u32;
        }

        // ----- write the delta, in field order, as prost would encode the pruned profile -----
        // Every string index left was checked by `mark`.
        let r = |idx: i64| u64::from(remap[idx as usize]);
        let vt = |o: &mut Vec<u8>, vt: &ValueType| {
            put_u64(o, 1, r(vt.r#type));
            put_u64(o, 2, r(vt.unit));
        };
        out.clear();
        out.reserve(plain.len());
        for st in &t.sample_type {
            put_message(out, 1, |o| vt(o, st));
        }
        for (smp, _) in t.samples.iter().zip(keep.iter()).filter(|(_, k)| **k) {
            // The length first, so that the sample is written in one go: its location IDs (most of it)
            // are copied from the input when they came packed.
            let ids = &t.loc_ids[smp.locs.range()];
            let values = &t.values[smp.values.range()];
            let labels = &t.labels[smp.labels.range()];
            let ids_len = match smp.locs_packed {
                Some(s) => s.end - s.start,
                None => ids.iter().map(|v| varint_len(*v)).sum(),
            };
            let values_len: usize = values.iter().map(|v| varint_len(*v as u64)).sum();
            let mut len = packed_len(ids_len) + packed_len(values_len);
            for l in labels {
                len += 1 + 1 + label_len(l, r);
            }
            put_varint(out, (2 << 3) | DELIMITED);
            put_varint(out, len as u64);
            match smp.locs_packed {
                Some(s) => put_bytes(out, 1, &plain[s.start..s.end]),
                None => put_packed(out, 1, ids.iter().copied()),
            }
            put_packed(out, 2, values.iter().map(|v| *v as u64));
            for l in labels {
                put_message(out, 3, |o| put_label(o, l, r));
            }
        }
        for (m, _) in t.mappings.iter().zip(keep_map.iter()).filter(|(_, k)| **k) {
            put_message(out, 3, |o| {
                put_u64(o, 1, m.id);
                put_u64(o, 2, m.memory_start);
                put_u64(o, 3, m.memory_limit);
                put_u64(o, 4, m.file_offset);
                put_u64(o, 5, r(m.filename));
                put_u64(o, 6, r(m.build_id));
                put_u64(o, 7, u64::from(m.has_functions));
                put_u64(o, 8, u64::from(m.has_filenames));
                put_u64(o, 9, u64::from(m.has_line_numbers));
                put_u64(o, 10, u64::from(m.has_inline_frames));
            });
        }
        for (loc, _) in t.locations.iter().zip(keep_loc.iter()).filter(|(_, k)| **k) {
            if loc.plain {
                // Nothing in a location refers to strings: its bytes are what re-encoding would write.
                put_bytes(out, 4, &plain[loc.raw.start..loc.raw.end]);
                continue;
            }
            put_message(out, 4, |o| {
                put_u64(o, 1, loc.id);
                put_u64(o, 2, loc.mapping_id);
                put_u64(o, 3, loc.address);
                for line in &t.lines[loc.lines.range()] {
                    put_message(o, 4, |o| {
                        put_u64(o, 1, line.function_id);
                        put_u64(o, 2, line.line as u64);
                        put_u64(o, 3, line.column as u64);
                    });
                }
                put_u64(o, 5, u64::from(loc.is_folded));
            });
        }
        for (f, _) in t.functions.iter().zip(keep_fn.iter()).filter(|(_, k)| **k) {
            put_message(out, 5, |o| {
                put_u64(o, 1, f.id);
                put_u64(o, 2, r(f.name));
                put_u64(o, 3, r(f.system_name));
                put_u64(o, 4, r(f.filename));
                put_u64(o, 5, f.start_line as u64);
            });
        }
        for (i, _) in remap.iter().enumerate().filter(|(_, r)| **r != UNUSED) {
            put_bytes(out, 6, strings.at(i));
        }
        let sc = &t.scalars;
        put_u64(out, 7, r(sc.drop_frames));
        put_u64(out, 8, r(sc.keep_frames));
        put_u64(out, 9, sc.time_nanos as u64);
        put_u64(out, 10, sc.duration_nanos as u64);
        if let Some(pt) = &sc.period_type {
            put_message(out, 11, |o| vt(o, pt));
        }
        put_u64(out, 12, sc.period as u64);
        put_packed(out, 13, t.comments.iter().map(|c| r(*c)));
        put_u64(out, 14, r(sc.default_sample_type));
        put_u64(out, 15, r(sc.doc_url));

        let mut compressed = Vec::new();
        gz::gzip_into(out, &mut compressed);
        Ok(Delta::Profile(compressed))
    }
}

/// Per-thread scratch: the decompressed input and everything [`DeltaComputer::apply`] fills.
#[derive(Default)]
struct Work {
    gunzip: Vec<u8>,
    scratch: Scratch,
}

impl Work {
    /// Drops buffers a rare large profile made large, so that they do not stay for the life of the thread.
    fn trim(&mut self) {
        if self.gunzip.capacity() > KEEP_SCRATCH_BYTES {
            self.gunzip = Vec::new();
        }
        if self.scratch.capacity_bytes() > KEEP_SCRATCH_BYTES {
            self.scratch = Scratch::default();
        }
    }
}

const UNUSED: u32 = u32::MAX;

#[derive(Default)]
struct Scratch {
    tables: Tables,
    /// XXH3 of each string, computed when first needed.
    str_hash: Vec<Option<u64>>,
    fn_hash: Vec<u64>,
    map_hash: Vec<u64>,
    loc_hash: Vec<u64>,
    functions: IdIndex,
    mappings: IdIndex,
    locations: IdIndex,
    /// The bytes a key is hashed from.
    words: Vec<u8>,
    label_hashes: Vec<u64>,
    /// (stack key, sample index).
    keyed: Vec<(u64, u32)>,
    keep: Vec<bool>,
    keep_loc: Vec<bool>,
    keep_fn: Vec<bool>,
    keep_map: Vec<bool>,
    /// New index of each kept string, [`UNUSED`] for the pruned ones.
    remap: Vec<u32>,
    next: Vec<Entry>,
    /// The encoded (uncompressed) delta: only its gzip form leaves.
    out: Vec<u8>,
}

impl Scratch {
    fn capacity_bytes(&self) -> usize {
        self.tables.capacity_bytes()
            + self.str_hash.capacity() * 16
            + (self.fn_hash.capacity() + self.map_hash.capacity() + self.loc_hash.capacity()) * 8
            + self.functions.capacity_bytes()
            + self.mappings.capacity_bytes()
            + self.locations.capacity_bytes()
            + self.words.capacity()
            + self.label_hashes.capacity() * 8
            + self.keyed.capacity() * 16
            + self.keep.capacity()
            + self.keep_loc.capacity()
            + self.keep_fn.capacity()
            + self.keep_map.capacity()
            + self.remap.capacity() * 4
            + self.next.capacity() * std::mem::size_of::<Entry>()
            + self.out.capacity()
    }
}

/// The string table: byte ranges of the input.
struct Strings<'a> {
    buf: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Strings<'a> {
    #[inline]
    fn index(&self, idx: i64) -> Result<usize, InvalidProfile> {
        usize::try_from(idx)
            .ok()
            .filter(|i| *i < self.spans.len())
            .ok_or_else(|| inconsistent(format!("string index {idx} out of range")))
    }

    /// The bytes of string `i` (in range).
    #[inline]
    fn at(&self, i: usize) -> &'a [u8] {
        let s = self.spans[i];
        &self.buf[s.start..s.end]
    }

    #[inline]
    fn get(&self, idx: i64) -> Result<&'a [u8], InvalidProfile> {
        self.index(idx).map(|i| self.at(i))
    }
}

/// The input of one key: 64-bit words, hashed with XXH3 (keys identify stacks, so the hash must be one
/// whose collisions are negligible; XXH3 is, and is fast on short inputs). The words are written into a
/// buffer kept at its size, so that adding one is a store, not a `Vec` extension.
struct Words<'a> {
    buf: &'a mut Vec<u8>,
    len: usize,
}

impl<'a> Words<'a> {
    #[inline]
    fn new(buf: &'a mut Vec<u8>) -> Self {
        if buf.len() < 1024 {
            buf.resize(1024, 0);
        }
        Words { buf, len: 0 }
    }

    #[inline]
    fn push(&mut self, w: u64) {
        if self.len + 8 > self.buf.len() {
            self.grow();
        }
        self.buf[self.len..self.len + 8].copy_from_slice(&w.to_le_bytes());
        self.len += 8;
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.buf.len() * 2;
        self.buf.resize(n, 0);
    }

    #[inline]
    fn finish(&self) -> u64 {
        xxh3_64(&self.buf[..self.len])
    }
}

fn inconsistent(msg: String) -> InvalidProfile {
    InvalidProfile::new(InvalidKind::Inconsistent(msg))
}

/// An index from table IDs (locations, functions, mappings) to positions; dense IDs (Go numbers from 1) use a
/// vector, others a sorted list. Its vectors are reused from one profile to the next.
#[derive(Default)]
struct IdIndex {
    dense: bool,
    positions: Vec<u32>,
    sorted: Vec<(u64, u32)>,
}

impl IdIndex {
    const NONE: u32 = u32::MAX;

    fn build(&mut self, ids: impl ExactSizeIterator<Item = u64> + Clone) {
        let n = ids.len();
        let max = ids.clone().max().unwrap_or(0);
        self.positions.clear();
        self.sorted.clear();
        // With duplicate IDs the last one wins (dense), or the one the binary search finds (sorted).
        self.dense = max <= (n as u64).saturating_mul(2).saturating_add(16);
        if self.dense {
            self.positions.resize(max as usize + 1, Self::NONE);
            for (pos, id) in ids.enumerate() {
                self.positions[id as usize] = pos as u32;
            }
        } else {
            self.sorted
                .extend(ids.enumerate().map(|(p, id)| (id, p as u32)));
            self.sorted.sort_unstable();
        }
    }

    #[inline]
    fn get(&self, id: u64) -> Option<usize> {
        if self.dense {
            usize::try_from(id)
                .ok()
                .and_then(|i| self.positions.get(i))
                .filter(|p| **p != Self::NONE)
                .map(|p| *p as usize)
        } else {
            self.sorted
                .binary_search_by_key(&id, |(i, _)| *i)
                .ok()
                .map(|i| self.sorted[i].1 as usize)
        }
    }

    fn capacity_bytes(&self) -> usize {
        self.positions.capacity() * 4 + self.sorted.capacity() * 16
    }
}

// ----- protobuf writing (proto3: default values are not written) -----

const DELIMITED: u64 = 2;

#[inline]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    prost::encoding::encode_varint(v, out);
}

#[inline]
fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// A varint field, unless it is zero.
#[inline]
fn put_u64(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        put_varint(out, u64::from(tag) << 3);
        put_varint(out, v);
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(tag) << 3) | DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A length-delimited field written by `body`: one byte is reserved for the length, the body moved when
/// the length needs more.
#[inline]
fn put_message(out: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_varint(out, (u64::from(tag) << 3) | DELIMITED);
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    let width = varint_len(len as u64);
    if width > 1 {
        out.resize(out.len() + width - 1, 0);
        out.copy_within(at + 1..at + 1 + len, at + width);
    }
    let mut v = len as u64;
    for b in &mut out[at..at + width] {
        *b = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
        v >>= 7;
    }
}

/// A packed repeated number, unless empty.
#[inline]
fn put_packed(out: &mut Vec<u8>, tag: u32, values: impl Iterator<Item = u64> + Clone) {
    let len: usize = values.clone().map(varint_len).sum();
    if len == 0 {
        return;
    }
    put_varint(out, (u64::from(tag) << 3) | DELIMITED);
    put_varint(out, len as u64);
    for v in values {
        put_varint(out, v);
    }
}

/// The length of a packed field with `len` bytes of content (none if empty).
fn packed_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len
    }
}

/// The length of a label's message (always below 128: one byte of length).
fn label_len(l: &Label, r: impl Fn(i64) -> u64) -> usize {
    [r(l.key), r(l.str), l.num as u64, r(l.num_unit)]
        .iter()
        .filter(|v| **v != 0)
        .map(|v| 1 + varint_len(*v))
        .sum()
}

fn put_label(out: &mut Vec<u8>, l: &Label, r: impl Fn(i64) -> u64) {
    put_u64(out, 1, r(l.key));
    put_u64(out, 2, r(l.str));
    put_u64(out, 3, l.num as u64);
    put_u64(out, 4, r(l.num_unit));
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
