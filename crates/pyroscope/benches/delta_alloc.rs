//! Heap figures of the client-side delta on `wide-allocs` (1 → 2): bytes allocated per delta, peak heap
//! during it, and the baseline kept per target.
//!
//! `cargo bench -p pyroscope --bench delta_alloc`

use pyroscope::pprof::delta::{Delta, DeltaComputer, DeltaKind};
use pyroscope::pprof::DEFAULT_MAX_DECOMPRESSED;
use std::path::PathBuf;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pprof")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn main() {
    // Criterion passes `--bench`; nothing to parse.
    let _profiler = dhat::Profiler::builder().testing().build();
    let first = fixture("wide-allocs-1.pb.gz");
    let second = fixture("wide-allocs-2.pb.gz");

    let before = dhat::HeapStats::get();
    let mut d = DeltaComputer::new(DeltaKind::Memory, DEFAULT_MAX_DECOMPRESSED);
    assert_eq!(d.next(&first).expect("decodes"), Delta::Withheld);
    let after_first = dhat::HeapStats::get();
    let retained = after_first.curr_bytes - before.curr_bytes;

    let Delta::Profile(out) = d.next(&second).expect("delta") else {
        panic!("no delta")
    };
    let after = dhat::HeapStats::get();
    let out_len = out.len();
    drop(out);
    println!(
        "input: {} bytes gzip ({} stacks in the baseline)",
        second.len(),
        d.baseline_len()
    );
    println!(
        "baseline retained per target after the first profile: {} bytes ({} by the estimate)",
        retained,
        d.baseline_bytes()
    );
    println!(
        "one delta: {} bytes allocated in {} allocations, peak heap {} bytes, output {} bytes gzip",
        after.total_bytes - after_first.total_bytes,
        after.total_blocks - after_first.total_blocks,
        after.max_bytes,
        out_len
    );
}
