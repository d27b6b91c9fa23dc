//! Relabelling throughput and allocations (figures printed, not asserted):
//! `cargo bench -p relabel --bench relabel` (`-- reshaping` or `-- unchanging` for one pass).
//!
//! 10,000 Kubernetes-like targets (12 labels each) through 10 typical rules, on one thread:
//! 1. a full pass where the rules reshape every target (keep, replace, labelmap, labeldrop, ...);
//! 2. a full pass where no rule changes any target (all 10 rules keep it as it is): allocations per target
//!    must be 0 (a counting global allocator counts them).

use relabel::{Relabeler, Rule, Rules, Target};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TARGETS: usize = 10_000;

fn targets() -> Vec<Target> {
    (0..TARGETS)
        .map(|i| {
            let ns = format!("ns{}", i % 20);
            let app = format!("app{}", i % 50);
            Target::from_pairs([
                (
                    "__address__",
                    format!("10.{}.{}.{}:4100", i / 65536, (i / 256) % 256, i % 256),
                ),
                ("__meta_kubernetes_namespace", ns),
                ("__meta_kubernetes_pod_name", format!("{app}-{i:06x}")),
                ("__meta_kubernetes_pod_container_name", app.clone()),
                (
                    "__meta_kubernetes_pod_container_port_number",
                    "4100".to_string(),
                ),
                ("__meta_kubernetes_pod_label_app", app.clone()),
                ("__meta_kubernetes_pod_label_team", format!("team{}", i % 7)),
                (
                    "__meta_kubernetes_pod_node_name",
                    format!("node{}", i % 100),
                ),
                ("__meta_kubernetes_pod_phase", "Running".to_string()),
                (
                    "__meta_kubernetes_pod_annotation_pyroscope_io_scrape",
                    (if i % 10 == 0 { "false" } else { "true" }).to_string(),
                ),
                (
                    "__meta_kubernetes_pod_uid",
                    format!("{i:08x}-0000-0000-0000-000000000000"),
                ),
                ("job", "kubernetes-pods".to_string()),
            ])
        })
        .collect()
}

fn rule(f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule::default();
    f(&mut r);
    r
}

fn regex(s: &str) -> relabel::Regexp {
    relabel::Regexp::new(s).expect("bench regex compiles")
}

fn labels(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|s| s.to_string()).collect())
}

/// Ten rules of a typical Kubernetes pod pipeline.
fn reshaping_rules() -> Rules {
    use relabel::Action::*;
    Rules::new(vec![
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_annotation_pyroscope_io_scrape"]);
            r.regex = regex("true");
            r.action = Keep;
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_phase"]);
            r.regex = regex("Pending|Succeeded|Failed|Completed");
            r.action = Drop;
        }),
        rule(|r| {
            r.source_labels = labels(&[
                "__meta_kubernetes_namespace",
                "__meta_kubernetes_pod_container_name",
            ]);
            r.separator = "/".into();
            r.target_label = "service_name".into();
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_namespace"]);
            r.target_label = "namespace".into();
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_name"]);
            r.target_label = "pod".into();
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_node_name"]);
            r.target_label = "node".into();
        }),
        rule(|r| {
            r.source_labels =
                labels(&["__address__", "__meta_kubernetes_pod_container_port_number"]);
            r.regex = regex(r"([^:]+)(?::\d+)?;(\d+)");
            r.replacement = "$1:$2".into();
            r.target_label = "__address__".into();
        }),
        rule(|r| {
            r.regex = regex("__meta_kubernetes_pod_label_(.+)");
            r.action = LabelMap;
        }),
        rule(|r| {
            r.source_labels = labels(&["__address__"]);
            r.modulus = 4;
            r.target_label = "__tmp_shard".into();
            r.action = HashMod;
        }),
        rule(|r| {
            r.regex = regex("__meta_kubernetes_pod_uid|__tmp_.*");
            r.action = LabelDrop;
        }),
    ])
}

/// Ten rules that keep every target as it is (filters that pass, replaces that match nothing or write the
/// value already there, label rules that match no label).
fn unchanging_rules() -> Rules {
    use relabel::Action::*;
    Rules::new(vec![
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_phase"]);
            r.regex = regex("Running");
            r.action = Keep;
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_phase"]);
            r.regex = regex("Pending|Succeeded|Failed");
            r.action = Drop;
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_namespace"]);
            r.regex = regex("kube-system");
            r.target_label = "namespace".into();
        }),
        rule(|r| {
            r.source_labels = labels(&["job"]);
            r.target_label = "job".into();
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_container_port_number"]);
            r.target_label = "__meta_kubernetes_pod_container_port_number".into();
            r.action = KeepEqual;
        }),
        rule(|r| {
            r.source_labels = labels(&["__meta_kubernetes_pod_label_app"]);
            r.target_label = "__meta_kubernetes_pod_container_name".into();
            r.action = KeepEqual;
        }),
        rule(|r| {
            r.regex = regex("__meta_docker_(.+)");
            r.action = LabelMap;
        }),
        rule(|r| {
            r.regex = regex("__tmp_.*");
            r.action = LabelDrop;
        }),
        rule(|r| {
            r.source_labels = labels(&["job"]);
            r.target_label = "job".into();
            r.action = Lowercase;
        }),
        rule(|r| {
            r.source_labels = labels(&["__address__"]);
            r.regex = regex("");
            r.action = Drop;
        }),
    ])
}

/// This thread's CPU time in nanoseconds (Linux `schedstat`), so that figures on a shared machine count our
/// work and not the time spent waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn measure(name: &str, rules: Rules, input: &[Target]) {
    let mut r = Relabeler::new(rules);
    let mut out = Vec::with_capacity(input.len());
    // Warm up: scratch buffers and regex caches reach their steady size.
    r.process_into(input, &mut out);
    let kept = out.len();
    let unchanged = out
        .iter()
        .filter(|t| input.iter().any(|i| i.ptr_eq(t)))
        .count()
        .min(kept);
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    const ROUNDS: u32 = 20;
    let mut allocs = 0;
    let mut best_cpu = u64::MAX;
    for _ in 0..ROUNDS {
        let cpu_before = thread_cpu_ns();
        let before = ALLOCS.load(Ordering::Relaxed);
        let start = Instant::now();
        r.process_into(input, &mut out);
        let took = start.elapsed();
        let after = ALLOCS.load(Ordering::Relaxed);
        if let (Some(a), Some(b)) = (cpu_before, thread_cpu_ns()) {
            best_cpu = best_cpu.min(b - a);
        }
        // Reading the CPU clock allocates; `after` was taken before it.
        allocs = after - before;
        best = best.min(took);
        total += took;
        std::hint::black_box(&out);
    }
    println!(
        "{name}: {} targets x {} rules -> {kept} kept ({unchanged} unchanged): CPU best {:.2} ms; wall best {:.2} ms, mean {:.2} ms per pass; {allocs} allocations per pass ({:.2} per target)",
        input.len(),
        r.rules().len(),
        best_cpu as f64 / 1e6,
        best.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3 / f64::from(ROUNDS),
        allocs as f64 / input.len() as f64,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a word that is not a flag picks one pass (`-- reshaping`, for profiling).
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let input = targets();
    let passes = [
        ("reshaping", reshaping_rules as fn() -> Rules),
        ("unchanging", unchanging_rules),
    ];
    for (name, rules) in passes {
        if only.as_deref().is_none_or(|o| o == name) {
            measure(name, rules(), &input);
        }
    }
}
