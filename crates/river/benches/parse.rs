//! Language benchmarks (figures printed, not asserted): `cargo bench -p river --bench parse`.
//!
//! On a generated, realistic config (hundreds of components, nested blocks, comments, arrays of objects,
//! long strings): lexing alone, lex+parse and format throughput in MB/s (criterion's `thrpt`), and the heap
//! memory of the syntax tree against the source size (counting allocator), and throughput per CPU second of
//! the benchmark thread (steadier than wall time on a shared machine), printed once before the runs: the
//! median and best of 30 runs, each timed by itself with the thread's CPU clock, with the kernel's share of
//! that time and the page faults per run.
//! Targets: parse ≥ 150 MB/s on one core; syntax tree ≤ 3× the source size.
//!
//! Allocator: the bench runs on jemalloc, which the `rill` binary uses (with the options in
//! `.cargo/config.toml`). With glibc's malloc the memory of a dropped tree (and of the file's copy of the
//! source) goes back to the kernel, so every parse faults its ~1 MB of output in again, which on a VM can
//! be a third or more of the parse's CPU time and says little about the parser or about the agent. The
//! kernel share and page faults printed per run show what the allocator costs.
//!
//! `RIVER_BENCH_PARSES=N <the bench binary>` only parses N times and prints the median and best CPU time
//! per parse (for quick A/B runs). Instructions per parse, which do not depend on how busy the machine is:
//! `RIVER_BENCH_PARSES=5 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out
//! --toggle-collect='parse::parse_once' <the bench binary>`: the `Collected` total divided by 5.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

#[cfg(not(target_os = "linux"))]
use std::alloc::System as ALLOC_BACKEND;
/// The allocator the `rill` binary runs with (see the module docs).
#[cfg(target_os = "linux")]
use tikv_jemallocator::Jemalloc as ALLOC_BACKEND;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Allocations and reallocations made, to report how many a parse costs.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the underlying allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { ALLOC_BACKEND.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { ALLOC_BACKEND.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { ALLOC_BACKEND.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Timed runs of each workload for the per-run CPU figures.
const RUNS: usize = 30;

/// User and kernel CPU time of this thread so far, in clock ticks (Linux `/proc`; `None` elsewhere). Only
/// tick resolution: used for the kernel's share over all runs (page faults of the fresh memory a parse
/// writes), not for timing single runs.
fn thread_user_sys_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name: state is the 3rd field, minflt the 10th, utime the
    // 14th, stime the 15th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some((field(14)?, field(15)?, field(10)?))
}

/// The CPU time of this thread for each of [`RUNS`] runs of `f`, sorted (fastest first); `None` where the
/// platform has no thread CPU clock. `CLOCK_THREAD_CPUTIME_ID` has nanosecond resolution, so each run can
/// be timed by itself (schedstat only changes at scheduler ticks, which is coarser than one parse).
/// Timed runs: CPU seconds of each run, sorted, and over all runs the kernel's share of the CPU time and
/// the page faults per run, where known.
struct Runs {
    times: Vec<f64>,
    kernel: Option<(f64, u64)>,
}

fn cpu_times(f: &dyn Fn()) -> Option<Runs> {
    let mut times = Vec::with_capacity(RUNS);
    let ticks_before = thread_user_sys_ticks();
    for _ in 0..RUNS {
        let start = cpu_time::ThreadTime::try_now().ok()?;
        f();
        times.push(start.try_elapsed().ok()?.as_secs_f64());
    }
    let kernel_share = match (ticks_before, thread_user_sys_ticks()) {
        (Some((u0, s0, f0)), Some((u1, s1, f1))) if u1 + s1 > u0 + s0 => Some((
            (s1 - s0) as f64 / (u1 + s1 - u0 - s0) as f64,
            (f1 - f0) / RUNS as u64,
        )),
        _ => None,
    };
    times.sort_by(f64::total_cmp);
    Some(Runs {
        times,
        kernel: kernel_share,
    })
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
    // `RIVER_BENCH_PARSES=N`: only parse N times and exit (see this file's header).
    if let Some(n) = std::env::var("RIVER_BENCH_PARSES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        // A tree kept alive, as in the timed runs below (it is formatted there): the heap state then
        // matches theirs (freed trees are reused rather than handed back to the kernel and faulted in again).
        drop(river::parse(&src));
        let kept = river::parse(&src);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = cpu_time::ThreadTime::try_now().ok();
            parse_once(&src);
            if let Some(t) = start.and_then(|s| s.try_elapsed().ok()) {
                times.push(t.as_secs_f64() * 1e3);
            }
        }
        drop(kept);
        times.sort_by(f64::total_cmp);
        if let (Some(best), Some(median)) = (times.first(), times.get(times.len() / 2)) {
            eprintln!("{n} parses: CPU time per parse median {median:.3} ms, best {best:.3} ms");
        }
        std::process::exit(0);
    }
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

    // The machine may be shared: CPU time of this thread is a steadier measure than wall time. The median
    // run is the typical figure; the best run is the least disturbed one (by other processes' cache use).
    let lex = || {
        let mut lexer = river::lexer::Lexer::new(black_box(&src));
        while lexer.next_token().kind != river::token::Tok::Eof {}
    };
    let parse = || drop(black_box(river::parse(black_box(&src))));
    let fmt = || drop(black_box(river::format::format_file(black_box(&file))));
    for (name, f) in [
        ("lex", &lex as &dyn Fn()),
        ("lex+parse (and drop)", &parse),
        ("format", &fmt),
    ] {
        if let Some(Runs { times, kernel }) = cpu_times(f) {
            let (median, best) = (times[times.len() / 2], times[0]);
            let kernel = kernel.map_or(String::new(), |(k, faults)| {
                format!(
                    "; {:.0}% of it in the kernel, {faults} page faults per run",
                    k * 100.0
                )
            });
            println!(
                "{name}: per CPU second of this thread, median {:.0} MB/s, best {:.0} MB/s ({RUNS} runs timed \
                 one by one; median {:.3} ms{kernel})",
                mb / median,
                mb / best,
                median * 1e3,
            );
        }
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

/// One lex + parse + drop of `src`; not inlined, so callgrind can count its instructions by name.
#[inline(never)]
fn parse_once(src: &str) {
    drop(black_box(river::parse(black_box(src))));
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
