//! Client-side delta of `wide-allocs` (about 4,000 stacks) against the cost of just gunzipping and decoding it.
//!
//! `cargo bench -p pyroscope --bench delta`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pyroscope::pprof::delta::{Delta, DeltaComputer, DeltaKind};
use pyroscope::pprof::{self, DEFAULT_MAX_DECOMPRESSED};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/pprof")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn bench(c: &mut Criterion) {
    let first = fixture("wide-allocs-1.pb.gz");
    let second = fixture("wide-allocs-2.pb.gz");
    let mut primed = DeltaComputer::new(DeltaKind::Memory, DEFAULT_MAX_DECOMPRESSED);
    assert_eq!(primed.next(&first).expect("first decodes"), Delta::Withheld);
    eprintln!(
        "baseline: {} stacks, about {} bytes",
        primed.baseline_len(),
        primed.baseline_bytes()
    );

    let mut group = c.benchmark_group("wide-allocs");
    group.bench_function("gunzip+decode", |b| {
        let mut scratch = Vec::new();
        b.iter(|| pprof::decode(&second, DEFAULT_MAX_DECOMPRESSED, &mut scratch).expect("decodes"))
    });
    group.bench_function("validate", |b| {
        let mut scratch = Vec::new();
        b.iter(|| pprof::validate(&second, None, &mut scratch).expect("valid"))
    });
    group.bench_function("delta (decode, difference, prune, encode, gzip)", |b| {
        b.iter_batched(
            || primed.clone(),
            |mut d| match d.next(&second).expect("delta") {
                Delta::Profile(p) => p,
                other => panic!("{other:?}"),
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
