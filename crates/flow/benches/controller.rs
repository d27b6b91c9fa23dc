//! Runtime benchmarks (figures printed, not asserted): `cargo bench -p flow --bench controller`.
//!
//! 1. Load + evaluate a generated 5,000-component config (chains and fan-in), against the time to parse it,
//!    and the heap bytes each allocates per component (a load's time goes mostly into writing them).
//! 2. Reload the same config unchanged (no component may be updated), against the parse time.
//! 3. An export change at the root of a 1,000-long chain: time until the leaf has it, per hop.
//! 4. 10,000 idle components: heap bytes per component (counting allocator), and no deadlock.
//!
//! `RILL_BENCH=load,chain` (any of `load`, `chain`, `idle`; `load` covers the reload too) runs only those
//! scenarios, e.g. to profile one of them (`graph`: only the graph build of the load's config, 500 times). `RILL_BENCH_ROUNDS` (default 12) sets how many fresh controllers the
//! load scenario loads into: the first runs in a cold process, the best of the others is the figure.
//! `RILL_BENCH_THREADS` sets `ControllerOptions::evaluation_threads` (1: evaluate on the loading task).
//! `RILL_BENCH_PAUSE_MS` idles that long between load rounds, as a process does between reloads: the next
//! load then finds its memory out of the caches (slower on a shared machine, where others evict it).

#[path = "../tests/common/mod.rs"]
mod common;

use flow::{Controller, ControllerOptions, Graph, Sources};
use river::Value;
use std::alloc::{GlobalAlloc, Layout};

// The allocator the `rill` binary runs with (glibc's malloc spends much of a big load consolidating the
// chunks freed by the previous config, which says little about the runtime).
#[cfg(not(target_os = "linux"))]
use std::alloc::System;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
#[cfg(target_os = "linux")]
use tikv_jemallocator::Jemalloc as System;

struct Counting;

/// Live heap bytes, summed over these counters. Each of the first 64 threads to allocate owns a counter, on a
/// cache line of its own, and updates it with a plain load and store: the `rill` binary counts nothing, and an
/// atomic read-modify-write (`lock xadd`) on every allocation would add a full barrier to each; one counter
/// for all would also have the threads of a parallel load pass pull its line from each other. Later threads
/// share [`OVERFLOW`].
static LIVE: [PaddedCounter; 64] = [const { PaddedCounter::new() }; 64];
static OVERFLOW: PaddedCounter = PaddedCounter::new();
static THREADS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// One thread's counts.
#[repr(align(128))]
struct PaddedCounter {
    /// Live bytes: allocated minus freed.
    live: AtomicIsize,
    /// Bytes allocated (a reallocation counts its new size), and allocations made.
    allocated: AtomicIsize,
    allocations: AtomicIsize,
}

impl PaddedCounter {
    const fn new() -> Self {
        PaddedCounter {
            live: AtomicIsize::new(0),
            allocated: AtomicIsize::new(0),
            allocations: AtomicIsize::new(0),
        }
    }
}

thread_local! {
    /// This thread's counter in [`LIVE`] (`usize::MAX`: not chosen yet). Const-initialized and without a
    /// destructor, so it is safe to use from the allocator.
    static COUNTER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Counts `delta` live bytes, and `allocated` bytes written into by a new allocation (0 for a free).
fn count(delta: isize, allocated: isize) {
    let index = COUNTER
        .try_with(|c| {
            if c.get() == usize::MAX {
                c.set(THREADS_SEEN.fetch_add(1, Ordering::Relaxed));
            }
            c.get()
        })
        .unwrap_or(usize::MAX);
    let add = |c: &AtomicIsize, d: isize| c.store(c.load(Ordering::Relaxed) + d, Ordering::Relaxed);
    match LIVE.get(index) {
        // Only this thread writes its counter, so no update is lost.
        Some(own) => {
            add(&own.live, delta);
            if allocated > 0 {
                add(&own.allocated, allocated);
                add(&own.allocations, 1);
            }
        }
        None => {
            OVERFLOW.live.fetch_add(delta, Ordering::Relaxed);
            if allocated > 0 {
                OVERFLOW.allocated.fetch_add(allocated, Ordering::Relaxed);
                OVERFLOW.allocations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Live heap bytes of the whole process (allocated by any thread, freed by any thread).
fn live_bytes() -> isize {
    LIVE.iter()
        .chain([&OVERFLOW])
        .map(|c| c.live.load(Ordering::Relaxed))
        .sum()
}

/// Bytes allocated and allocations made so far by the whole process.
fn allocated() -> (isize, isize) {
    LIVE.iter().chain([&OVERFLOW]).fold((0, 0), |(b, n), c| {
        (
            b + c.allocated.load(Ordering::Relaxed),
            n + c.allocations.load(Ordering::Relaxed),
        )
    })
}

// SAFETY: defers to the underlying allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize, l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize), 0);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count(n as isize - l.size() as isize, n as isize);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Chains of 10 plus a fan-in node per chain that refers to every member.
fn generated_config(components: usize) -> String {
    let mut s = String::new();
    let chains = components / 11;
    for c in 0..chains {
        s.push_str(&format!("test.pass \"c{c}_0\" {{\n\tinput = {{ chain = {c}, step = 0, tags = [\"a\", \"b\"] }}\n}}\n\n"));
        for i in 1..10 {
            s.push_str(&format!(
                "test.pass \"c{c}_{i}\" {{\n\tinput = test.pass.c{c}_{}.output\n}}\n\n",
                i - 1
            ));
        }
        let all: Vec<String> = (0..10)
            .map(|i| format!("test.pass.c{c}_{i}.output"))
            .collect();
        s.push_str(&format!(
            "test.pass \"fan{c}\" {{\n\tinput = [\n\t\t{},\n\t]\n}}\n\n",
            all.join(",\n\t\t")
        ));
    }
    s
}

fn options() -> ControllerOptions {
    ControllerOptions {
        storage_path: std::env::temp_dir().join("rill-bench"),
        // `RILL_BENCH_THREADS=1` evaluates loads on the loading task only (default: one thread per core).
        evaluation_threads: std::env::var("RILL_BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..ControllerOptions::default()
    }
}

/// CPU time used so far by every thread of this process, including threads that have exited (the load's
/// evaluation threads); zero where there is no such clock. Unlike wall-clock time it is barely affected by
/// other processes competing for the CPUs.
fn process_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    return cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID);
    #[cfg(not(target_os = "linux"))]
    Duration::ZERO
}

/// CPU time used so far by the calling thread (the one that loads), as [`process_cpu`].
fn thread_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    return cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID);
    #[cfg(not(target_os = "linux"))]
    Duration::ZERO
}

/// Minor page faults of this process so far (a page the allocator had handed back to the system, or never
/// had, is faulted in when first written); zero where unknown.
fn page_faults() -> i64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: an all-zero rusage is valid, and `usage` is writable for the duration of the call.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            return usage.ru_minflt;
        }
    }
    0
}

#[cfg(target_os = "linux")]
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How many times the load scenario parses the config to time it.
const PARSE_RUNS: usize = 15;

fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (best, out.expect("n > 0"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("RILL_BENCH").unwrap_or_default();
    let runs = |name: &str| only.is_empty() || only.split(',').any(|s| s == name);
    rt.block_on(async {
      // For instruction counts (callgrind): `parse-once` parses the config and exits, `load-once` also loads
      // it and waits until every component has started (its `run` polled). The difference between the two totals is the cost
      // of load + evaluate + start without the parse.
      if only == "parse-once" || only == "load-once" {
        let text = generated_config(5_000);
        let sources = Sources::parse([("bench.river", text.as_str())]).expect("parses");
        if only == "load-once" {
            let c = Controller::new(common::registry(), options());
            c.load(sources).await.expect("loads");
            // Every component has started (its `run` was polled) once the controller has settled.
            c.settle().await;
            std::process::exit(0);
        }
        drop(sources);
        std::process::exit(0);
      }
      // `graph` builds the graph of the load's config 500 times and exits: to profile the build alone.
      if only == "graph" {
        let text = generated_config(5_000);
        let sources = Sources::parse([("bench.river", text.as_str())]).expect("parses");
        let registry = common::registry();
        let (best, _) = best_of(500, || Graph::build(&sources, registry.as_ref()).expect("builds"));
        println!("graph build: {:.3} ms (best of 500)", best.as_secs_f64() * 1e3);
        std::process::exit(0);
      }
      if runs("load") {
        // 1 and 2.
        let text = generated_config(5_000);
        // Both figures are the best of a dozen or so runs: on a shared machine a run of a few milliseconds is
        // often slowed by others, and the best one is what the code itself costs.
        let (parse, _) = best_of(PARSE_RUNS, || Sources::parse([("bench.river", text.as_str())]).expect("parses"));
        let nodes = Sources::parse([("bench.river", text.as_str())]).map(|s| s.files[0].ast.body.len()).unwrap_or(0);
        let cpu = process_cpu();
        for _ in 0..5 {
            let _ = Sources::parse([("bench.river", text.as_str())]).expect("parses");
        }
        let parse_cpu = (process_cpu() - cpu) / 5;
        // The part of the load no evaluation thread can share: names, references and the dependency order.
        let parsed = Sources::parse([("bench.river", text.as_str())]).expect("parses");
        let registry = common::registry();
        let (graph_build, _) = best_of(PARSE_RUNS, || Graph::build(&parsed, registry.as_ref()).expect("builds"));
        drop(parsed);
        // Each round loads into a fresh controller and reloads it unchanged. The first round runs in a cold
        // process (every page of the graph is faulted in for the first time); later rounds reuse memory the
        // allocator kept, as the parse timings above do. Both are printed; the ratios use the best round.
        let rounds: usize = std::env::var("RILL_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12).max(1);
        let mut loads = Vec::new();
        // Per warm round, the load against a parse timed right before it, in the same stretch of the
        // machine's load: steadier than two figures taken seconds apart.
        let mut round_ratios = Vec::new();
        // The same warm rounds' parse and load times on their own (ms), for their medians.
        let (mut round_parses, mut round_loads) = (Vec::new(), Vec::new());
        // The same rounds' parse inside the load's timing (ms).
        let mut window_parses = Vec::new();
        // Heap bytes and allocations of the last round's parse and load.
        let (mut load_allocated, mut parse_allocated) = ((0, 0), (0, 0));
        // The same once every component's task has started (its runner is made after the load returns, on
        // the runtime's workers, and its `run` polled): heap bytes and allocations, and CPU time per round.
        let mut started_allocated = (0, 0);
        let mut started_cpus = Vec::new();
        // Minor page faults of each warm round's parse and load.
        let (mut parse_faults, mut load_faults) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let (round_parse, _) = best_of(3, || Sources::parse([("bench.river", text.as_str())]).expect("parses"));
            let c = Controller::new(common::registry(), options());
            let (t, cpu, own) = (Instant::now(), process_cpu(), thread_cpu());
            let before_parse = allocated();
            let faults_before_parse = page_faults();
            let sources = Sources::parse([("bench.river", text.as_str())]).expect("parses");
            let in_window_parse = t.elapsed();
            let faults_before_load = page_faults();
            let before_load = allocated();
            parse_allocated = (before_load.0 - before_parse.0, before_load.1 - before_parse.1);
            c.load(sources).await.expect("loads");
            let (load, load_cpu) = (t.elapsed(), process_cpu() - cpu);
            if round > 0 {
                parse_faults.push(faults_before_load - faults_before_parse);
                load_faults.push(page_faults() - faults_before_load);
            }
            let after_load = allocated();
            load_allocated = (after_load.0 - before_load.0, after_load.1 - before_load.1);
            let own = thread_cpu() - own;
            if round > 0 {
                round_ratios.push(load.as_secs_f64() / round_parse.as_secs_f64());
                round_parses.push(round_parse.as_secs_f64() * 1e3);
                round_loads.push(load.as_secs_f64() * 1e3);
                window_parses.push(in_window_parse.as_secs_f64() * 1e3);
            }
            c.settle().await;
            let after_start = allocated();
            started_allocated = (after_start.0 - before_load.0, after_start.1 - before_load.1);
            if round > 0 {
                started_cpus.push(process_cpu() - cpu);
            }
            let (t, cpu) = (Instant::now(), process_cpu());
            let sources = Sources::parse([("bench.river", text.as_str())]).expect("parses");
            let report = c.load(sources).await.expect("reloads");
            let (reload, reload_cpu) = (t.elapsed(), process_cpu() - cpu);
            assert!(report.updated.is_empty(), "an unchanged reload updated {:?}", report.updated);
            c.shutdown().await;
            drop(c);
            if let Some(ms) = std::env::var("RILL_BENCH_PAUSE_MS").ok().and_then(|v| v.parse().ok()) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            loads.push((load, load_cpu, reload, reload_cpu, own));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let x = |d: Duration, base: Duration| d.as_secs_f64() / base.as_secs_f64();
        type Round = (Duration, Duration, Duration, Duration, Duration);
        let best = |f: fn(&Round) -> Duration, from: usize| {
            loads[from.min(loads.len() - 1)..].iter().map(f).min().unwrap_or_default()
        };
        let (cold_load, cold_load_cpu) = (loads[0].0, loads[0].1);
        let (load, load_cpu, own_cpu) = (best(|l| l.0, 1), best(|l| l.1, 1), best(|l| l.4, 1));
        let (reload, reload_cpu) = (best(|l| l.2, 0), best(|l| l.3, 0));
        println!("config: {nodes} components, {} KiB; {rounds} rounds of load + unchanged reload", text.len() / 1024);
        println!("parse:            {:>9.2} ms  (best of {PARSE_RUNS})", ms(parse));
        println!(
            "load + evaluate:  {:>9.2} ms  ({:.1}x parse; includes parse; best warm round)",
            ms(load),
            x(load, parse)
        );
        round_ratios.sort_by(f64::total_cmp);
        if let Some(median) = round_ratios.get(round_ratios.len() / 2) {
            println!(
                "load + evaluate against the parse timed just before it: {median:.2}x (median of {} warm rounds; best {:.2}x)",
                round_ratios.len(),
                round_ratios[0]
            );
        }
        round_parses.sort_by(f64::total_cmp);
        round_loads.sort_by(f64::total_cmp);
        if let (Some(p), Some(l)) = (round_parses.get(round_parses.len() / 2), round_loads.get(round_loads.len() / 2)) {
            window_parses.sort_by(f64::total_cmp);
            let w = window_parses.get(window_parses.len() / 2).copied().unwrap_or_default();
            println!("medians of those rounds: parse {p:.2} ms, load + evaluate {l:.2} ms (of which its own parse {w:.2} ms)");
        }
        // Nearly all of a load's time is writing its nodes' new state into memory that is not in the cache:
        // the bytes it allocates say more about its cost than its instructions do.
        let per_node = |(bytes, n): (isize, isize)| (bytes as f64 / nodes.max(1) as f64, n as f64 / nodes.max(1) as f64);
        let ((pb, pn), (lb, ln)) = (per_node(parse_allocated), per_node(load_allocated));
        println!("heap allocated per component: parse {pb:.0} bytes in {pn:.1} allocations; load + evaluate (without the parse) {lb:.0} bytes in {ln:.1}");
        let (sb, sn) = per_node(started_allocated);
        started_cpus.sort_unstable();
        let started_cpu = started_cpus.get(started_cpus.len() / 2).copied().unwrap_or_default();
        println!(
            "with every component's task started too (runners made on the runtime's workers after the load): {sb:.0} bytes in {sn:.1} allocations per component; CPU time (all threads, parse included) {:.2} ms, median",
            started_cpu.as_secs_f64() * 1e3
        );
        parse_faults.sort_unstable();
        load_faults.sort_unstable();
        if let (Some(p), Some(l)) = (parse_faults.get(parse_faults.len() / 2), load_faults.get(load_faults.len() / 2)) {
            println!("minor page faults (median of the warm rounds): parse {p}, load + evaluate (without the parse) {l}");
        }
        println!("of which graph build (names, references, order; one thread): {:.2} ms (best of {PARSE_RUNS})", ms(graph_build));
        println!(
            "first load:       {:>9.2} ms  ({:.1}x parse; cold process)",
            ms(cold_load),
            x(cold_load, parse)
        );
        println!(
            "unchanged reload: {:>9.2} ms  ({:.1}x parse; includes parse; 0 updates)",
            ms(reload),
            x(reload, parse)
        );
        println!(
            "CPU time (all threads): parse {:.2} ms, load + evaluate {:.2} ms ({:.1}x; first load {:.1}x), unchanged reload {:.2} ms ({:.1}x)",
            ms(parse_cpu),
            ms(load_cpu),
            x(load_cpu, parse_cpu),
            x(cold_load_cpu, parse_cpu),
            ms(reload_cpu),
            x(reload_cpu, parse_cpu)
        );
        println!(
            "CPU time of load + evaluate on the loading thread: {:.2} ms ({:.1}x parse); the rest ran on the runtime's workers and evaluation threads",
            ms(own_cpu),
            x(own_cpu, parse_cpu)
        );
      }

      if runs("chain") {
        // 3.
        let hops = 1_000;
        let mut chain = String::from("test.pass \"n0\" { input = 0 }\n");
        for i in 1..=hops {
            chain.push_str(&format!("test.pass \"n{i}\" {{ input = test.pass.n{}.output }}\n", i - 1));
        }
        let c = Controller::new(common::registry(), options());
        c.load(Sources::parse([("chain.river", chain.as_str())]).expect("parses")).await.expect("loads");
        c.settle().await;
        let leaf = format!("test.pass.n{hops}");
        let mut per_hop = Vec::new();
        for round in 1..=5 {
            let changed = chain.replacen("input = 0", &format!("input = {round}"), 1);
            let t = Instant::now();
            c.load(Sources::parse([("chain.river", changed.as_str())]).expect("parses")).await.expect("loads");
            loop {
                let out = c.exports(&leaf).and_then(|e| match e {
                    Value::Object(o) => o.get("output").cloned(),
                    _ => None,
                });
                if out == Some(Value::int(round)) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            per_hop.push(t.elapsed() / hops as u32);
        }
        per_hop.sort();
        println!("chain of {hops}: root change reaches the leaf at {:.1} µs per hop (median of 5, reload included)",
            per_hop[2].as_secs_f64() * 1e6);
        c.shutdown().await;
      }

      if runs("idle") {
        // 4.
        let idle = 10_000;
        let mut text = String::new();
        for i in 0..idle {
            text.push_str(&format!("test.pass \"idle{i}\" {{ input = {i} }}\n"));
        }
        let before = live_bytes();
        let sources = Sources::parse([("idle.river", text.as_str())]).expect("parses");
        let parsed = live_bytes();
        let c = Controller::new(common::registry(), options());
        c.load(sources).await.expect("loads");
        c.settle().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = live_bytes();
        let per = (after - before) as f64 / idle as f64;
        let runtime = (after - parsed) as f64 / idle as f64;
        println!("{idle} idle components: {:.0} bytes of heap per component (config source and AST included)", per);
        println!("{idle} idle components: {:.0} bytes of heap per component of runtime overhead (without the parsed sources)", runtime);
        let t = Instant::now();
        c.shutdown().await;
        println!("shutdown of {idle} components: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
      }
    });
}
