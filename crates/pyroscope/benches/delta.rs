//! Client-side delta per profile: the small profiles of a typical Go service (`go-allocs`, `go-mutex`,
//! `go-block`, what most targets send) and `wide-allocs` (about 4,000 stacks) against the cost of just
//! gunzipping and decoding it (issue 5: the delta should cost at most 3× that).
//!
//! The delta is given the decompressed protobuf, as the scraper does after validating the body (`plain`);
//! the `gzip input` figure includes decompressing it.
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

fn plain(gz: &[u8]) -> Vec<u8> {
    let mut scratch = Vec::new();
    pprof::uncompressed(gz, DEFAULT_MAX_DECOMPRESSED, &mut scratch)
        .expect("gunzips")
        .to_vec()
}

/// A computer that has seen `first`.
fn primed(kind: DeltaKind, first: &[u8]) -> DeltaComputer {
    let mut d = DeltaComputer::new(kind, DEFAULT_MAX_DECOMPRESSED);
    assert_eq!(d.next(first).expect("first decodes"), Delta::Withheld);
    d
}

fn delta_of(d: &mut DeltaComputer, data: &[u8]) -> Vec<u8> {
    match d.next(data).expect("delta") {
        Delta::Profile(p) => p,
        other => panic!("{other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    // The small profiles: what most targets send (allocs and block unchanged, as an idle service's are).
    for (name, kind, first, second) in [
        (
            "go-allocs",
            DeltaKind::Memory,
            "go-allocs.pb.gz",
            "go-allocs.pb.gz",
        ),
        (
            "go-mutex",
            DeltaKind::Contention,
            "go-mutex.pb.gz",
            "go-mutex-2.pb.gz",
        ),
        (
            "go-block",
            DeltaKind::Contention,
            "go-block.pb.gz",
            "go-block.pb.gz",
        ),
    ] {
        let (first, second) = (fixture(first), fixture(second));
        let second_plain = plain(&second);
        let base = primed(kind, &first);
        let mut group = c.benchmark_group(name);
        group.bench_function("gunzip+decode", |b| {
            let mut scratch = Vec::new();
            b.iter(|| {
                pprof::decode(&second, DEFAULT_MAX_DECOMPRESSED, &mut scratch).expect("decodes")
            })
        });
        group.bench_function("delta (plain input)", |b| {
            // The baseline is replaced by every delta: alternating the same input keeps the work the same.
            let mut d = base.clone();
            b.iter(|| {
                let out = delta_of(&mut d, &second_plain);
                d = base.clone();
                out
            })
        });
        group.finish();
    }

    let first = fixture("wide-allocs-1.pb.gz");
    let second = fixture("wide-allocs-2.pb.gz");
    let second_plain = plain(&second);
    let primed = primed(DeltaKind::Memory, &first);
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
    group.bench_function("delta (plain input)", |b| {
        b.iter_batched(
            || primed.clone(),
            |mut d| delta_of(&mut d, &second_plain),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("delta (gzip input)", |b| {
        b.iter_batched(
            || primed.clone(),
            |mut d| delta_of(&mut d, &second),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
