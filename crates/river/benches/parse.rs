//! Language benchmarks (figures printed, not asserted): `cargo bench -p river --bench parse`.
//!
//! On a generated, realistic config (hundreds of components, nested blocks, comments, arrays of objects,
//! long strings): lexing alone, lex+parse and format throughput in MB/s (criterion's `thrpt`), and the heap
//! memory of the syntax tree against the source size (counting allocator), and throughput per CPU second of
//! the benchmark thread (steadier than wall time on a shared machine), printed once before the runs.
//! Targets: parse ≥ 150 MB/s on one core; syntax tree ≤ 3× the source size.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocations and reallocations made, to report how many a parse costs.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time consumed by this thread so far, in nanoseconds (Linux `schedstat`; `None` elsewhere).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// A profiling pipeline config of `components` scrape/relabel/write groups, laid out like real files:
/// comments, labels, nested and repeated blocks, arrays of objects, references, long strings, expressions.
fn realistic_config(components: usize) -> String {
    let mut s = String::from(
        "// Generated benchmark config: a profiling pipeline.\n\nlogging {\n\tlevel  = \"info\"\n\tformat = \"logfmt\"\n}\n\n",
    );
    for i in 0..components {
        let _ = write!(
            s,
            r#"/*
 * Team {i}: scrape the service pods, relabel, and write to two backends.
 */
discovery.kubernetes "pods_{i}" {{
	role = "pod"

	namespaces {{
		names = ["team-{i}", "shared", "monitoring"]
	}}

	selectors {{
		role  = "pod"
		label = "app.kubernetes.io/name=service-{i},tier in (backend, worker)"
	}}
}}

discovery.relabel "pods_{i}" {{
	targets = discovery.kubernetes.pods_{i}.targets

	rule {{
		source_labels = ["__meta_kubernetes_pod_label_app", "__meta_kubernetes_namespace"]
		separator     = ";"
		regex         = "(service-{i});(team-.*)"
		target_label  = "service_name" // what Pyroscope shows
		action        = "replace"
	}}

	rule {{
		source_labels = ["__meta_kubernetes_pod_phase"]
		regex         = "Pending|Succeeded|Failed|Completed"
		action        = "drop"
	}}
}}

pyroscope.scrape "svc_{i}" {{
	targets = concat(discovery.relabel.pods_{i}.output, [
		{{"__address__" = "10.0.{a}.{b}:4040", "service_name" = "static-{i}", "env" = "prod"}},
		{{"__address__" = "10.1.{a}.{b}:4040", "service_name" = "static-{i}", "env" = "staging"}},
	])
	forward_to      = [pyroscope.write.primary.receiver, pyroscope.write.backup.receiver]
	scrape_interval = "15s"
	scrape_timeout  = "{t}s"
	delta_profiling_duration = "14s"

	profiling_config {{
		profile.process_cpu {{
			enabled = true
		}}

		profile.memory {{
			enabled = true
			path    = "/debug/pprof/allocs"
			delta   = false
		}}

		profile.custom "fgprof_{i}" {{
			enabled = {even}
			path    = "/debug/fgprof?seconds=" + format("%d", 10 * {m} + 4)
			delta   = true
		}}
	}}
}}

"#,
            a = i / 250,
            b = i % 250,
            t = 5 + i % 10,
            even = i % 2 == 0,
            m = i % 7,
        );
    }
    s.push_str(
        r#"pyroscope.write "primary" {
	endpoint {
		url = env("PYROSCOPE_URL")
		basic_auth {
			username = "tenant-1"
			password = local.file.token.content
		}
		headers = {
			"X-Scope-OrgID" = "tenant-1",
			"User-Agent"    = "rill/0.1 (+https://example.invalid/rill; a rather long header value to make the line long)",
		}
	}
	external_labels = {"cluster" = "eu-west-1", "region" = constants.os + "-" + constants.arch}
}

pyroscope.write "backup" {
	endpoint {
		url = "http://pyroscope-backup.monitoring.svc.cluster.local:4040"
	}
}

local.file "token" {
	filename  = "/var/run/secrets/pyroscope/token"
	is_secret = true
}
"#,
    );
    s
}

fn benches(c: &mut Criterion) {
    let src = realistic_config(400);
    let (file, diags) = river::parse(&src);
    assert!(
        !diags.has_errors(),
        "the generated config must parse: {diags:?}"
    );
    drop(file);

    // Heap bytes held by the parsed file: the tree alone, and with the file's own copy of the source.
    let before = LIVE.load(Ordering::Relaxed);
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let (file, _) = river::parse(&src);
    let total = LIVE.load(Ordering::Relaxed) - before;
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let tree = total - src.len() as isize;
    let mb = src.len() as f64 / 1e6;
    println!(
        "source: {:.2} MB ({} lines); syntax tree: {:.2} MB = {:.2}x the source (with the file's copy of the \
         source: {:.2}x); {} heap allocations per parse",
        mb,
        src.lines().count(),
        tree as f64 / 1e6,
        tree as f64 / src.len() as f64,
        total as f64 / src.len() as f64,
        allocs,
    );

    // The machine may be shared: CPU time of this thread is a steadier measure than wall time.
    if let Some(t0) = thread_cpu_ns() {
        let runs = 30;
        let t = |f: &dyn Fn()| {
            let start = thread_cpu_ns().unwrap_or(t0);
            for _ in 0..runs {
                f();
            }
            (thread_cpu_ns().unwrap_or(start) - start) as f64 / 1e9
        };
        let lex = t(&|| {
            let mut lexer = river::lexer::Lexer::new(black_box(&src));
            while lexer.next_token().kind != river::token::Tok::Eof {}
        });
        let parse = t(&|| drop(black_box(river::parse(black_box(&src)))));
        let fmt = t(&|| drop(black_box(river::format::format_file(black_box(&file)))));
        let mbs = |secs: f64| mb * runs as f64 / secs;
        println!(
            "per CPU second of this thread ({runs} runs each): lex {:.0} MB/s, lex+parse (and drop) {:.0} MB/s, \
             format {:.0} MB/s",
            mbs(lex),
            mbs(parse),
            mbs(fmt)
        );
    }

    let mut g = c.benchmark_group("river");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("lex", |b| {
        b.iter(|| {
            let mut lexer = river::lexer::Lexer::new(black_box(&src));
            let mut n = 0usize;
            while lexer.next_token().kind != river::token::Tok::Eof {
                n += 1;
            }
            n
        })
    });
    g.bench_function("lex+parse", |b| b.iter(|| river::parse(black_box(&src))));
    g.bench_function("format", |b| {
        b.iter(|| river::format::format_file(black_box(&file)))
    });
    g.finish();
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
