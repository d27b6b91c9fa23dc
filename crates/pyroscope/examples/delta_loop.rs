//! Runs N client-side deltas of a fixture pair (decompressed input, as the scraper passes it), for CPU-time
//! and instruction counts that a loaded machine's wall-clock noise does not blur:
//!
//! ```text
//! cargo build --release -p pyroscope --example delta_loop
//! perf stat -e task-clock target/release/examples/delta_loop memory go-allocs.pb.gz go-allocs.pb.gz 6000
//! valgrind --tool=callgrind target/release/examples/delta_loop contention go-mutex.pb.gz go-mutex-2.pb.gz 200
//! ```
//!
//! `KIND` is `memory` or `contention`; a fifth argument `gzip` times only the gzip of the delta's output.
use pyroscope::pprof::delta::{Delta, DeltaComputer, DeltaKind};
use pyroscope::pprof::{self, DEFAULT_MAX_DECOMPRESSED};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let kind = if a[1] == "memory" {
        DeltaKind::Memory
    } else {
        DeltaKind::Contention
    };
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/pprof/"
    );
    let read = |n: &str| {
        let gz = std::fs::read(format!("{dir}{n}")).unwrap();
        let mut s = Vec::new();
        pprof::uncompressed(&gz, DEFAULT_MAX_DECOMPRESSED, &mut s)
            .unwrap()
            .to_vec()
    };
    let (first, second) = (read(&a[2]), read(&a[3]));
    let n: usize = a[4].parse().unwrap();
    let mut base = DeltaComputer::new(kind, DEFAULT_MAX_DECOMPRESSED);
    assert_eq!(base.next(&first).unwrap(), Delta::Withheld);
    let mut total = 0;
    if a.get(5).map(String::as_str) == Some("gzip") {
        // Only the gzip of the delta's output, as often.
        let Delta::Profile(p) = base.clone().next(&second).unwrap() else {
            panic!()
        };
        let mut s = Vec::new();
        let out = pprof::uncompressed(&p, DEFAULT_MAX_DECOMPRESSED, &mut s)
            .unwrap()
            .to_vec();
        eprintln!("delta output: {} bytes, {} gzip", out.len(), p.len());
        for _ in 0..n {
            total += pprof::gzip(&out).len();
        }
        println!("{total}");
        return;
    }
    for _ in 0..n {
        let mut d = base.clone();
        if let Delta::Profile(p) = d.next(&second).unwrap() {
            total += p.len();
        }
    }
    println!("{total}");
}
