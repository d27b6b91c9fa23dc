//! Real profiles of this test process: a CPU-busy thread must show up by name.

use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use selfprof::{proto, Error, Session, Symbols};

/// The sampler is process-wide and tests run on parallel threads.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[inline(never)]
fn selfprof_test_busy_work(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..10_000u64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

fn busy_thread() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = std::thread::spawn({
        let stop = stop.clone();
        move || selfprof_test_busy_work(&stop)
    });
    (stop, handle)
}

/// User + system CPU time of this process so far (/proc ticks are 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().expect("ticks"))
        .collect();
    Duration::from_millis((f[0] + f[1]) * 10)
}

fn decode(gz: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("gzip");
    proto::Profile::decode(raw.as_slice()).expect("a pprof profile")
}

fn function_names(p: &proto::Profile) -> Vec<&str> {
    p.function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect()
}

#[test]
fn a_busy_thread_shows_up_by_name_file_and_line() {
    let _serial = serial();
    let (stop, worker) = busy_thread();
    let (_keep, rx) = mpsc::channel();
    let cpu_before = process_cpu();
    let report = selfprof::profile(Duration::from_secs(1), 100, &rx).expect("profile");
    let cpu = process_cpu() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();

    // One sample per 10 ms of CPU the process used (the machine may be shared, so not per 10 ms of wall
    // time); allow for timer slack and the tick granularity of /proc.
    let expected = cpu.as_millis() as u64 / 10;
    assert!(
        report.samples() >= 10 && report.samples() * 10 >= expected * 7,
        "{} samples for {cpu:?} of CPU",
        report.samples()
    );
    assert_eq!(report.dropped(), 0);
    check_names(
        &decode(&report.to_gzip_pprof(Symbols::Names)),
        report.samples(),
    );
    let p = decode(&report.to_gzip_pprof(Symbols::Lines));
    let st = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(st(0), "");
    let types: Vec<_> = p
        .sample_type
        .iter()
        .map(|t| (st(t.r#type), st(t.unit)))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    let period = p.period_type.as_ref().expect("period type");
    assert_eq!((st(period.r#type), st(period.unit)), ("cpu", "nanoseconds"));
    assert_eq!(p.period, 10_000_000);
    assert!(p.duration_nanos >= 1_000_000_000, "{}", p.duration_nanos);
    assert!(p.time_nanos > 0);

    let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total as u64, report.samples());
    for s in &p.sample {
        assert_eq!(s.value[1], s.value[0] * p.period);
        assert!(!s.location_id.is_empty());
        for id in &s.location_id {
            assert!(*id >= 1 && *id as usize <= p.location.len());
        }
    }

    let names = function_names(&p);
    assert!(
        names.iter().any(|n| n.ends_with("selfprof_test_busy_work")),
        "{names:?}"
    );
    // The handler's own frames are cut off: stacks start at the interrupted function.
    assert!(
        !names
            .iter()
            .any(|n| n.contains("on_sigprof") || n.contains("trace_unsynchronized")),
        "{names:?}"
    );
    // Most samples are in the busy function or what it calls (in a debug build, `wrapping_mul` and
    // `black_box` are calls).
    let busy = p
        .function
        .iter()
        .find(|f| st(f.name).ends_with("selfprof_test_busy_work"))
        .unwrap();
    assert!(
        st(busy.filename).ends_with("tests/profile.rs"),
        "{}",
        st(busy.filename)
    );
    let on_busy: i64 = p
        .sample
        .iter()
        .filter(|s| {
            s.location_id.iter().any(|id| {
                p.location[*id as usize - 1]
                    .line
                    .iter()
                    .any(|l| l.function_id == busy.id && l.line > 0)
            })
        })
        .map(|s| s.value[0])
        .sum();
    if on_busy * 2 <= total {
        let leaves: Vec<_> = p
            .sample
            .iter()
            .map(|s| {
                let leaf = &p.location[s.location_id[0] as usize - 1];
                let f = leaf
                    .line
                    .first()
                    .map(|l| &p.function[l.function_id as usize - 1]);
                (f.map(|f| st(f.name)), s.value[0])
            })
            .collect();
        panic!("{on_busy} of {total} samples in the busy function; leaves: {leaves:?}");
    }
    // Stacks go beyond the leaf: thread start-up frames are there.
    assert!(p.sample.iter().any(|s| s.location_id.len() > 3));
}

/// The cheap symbolization: function names only, from the symbol table.
fn check_names(p: &proto::Profile, samples: u64) {
    let st = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(
        p.sample.iter().map(|s| s.value[0]).sum::<i64>() as u64,
        samples
    );
    let names = function_names(p);
    assert!(
        names.iter().any(|n| n.ends_with("selfprof_test_busy_work")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("on_sigprof") || n.contains("trace_unsynchronized")),
        "{names:?}"
    );
    assert!(p.function.iter().all(|f| st(f.filename).is_empty()));
    // Every location lies in a mapping, and this test binary is one of them.
    assert!(p
        .location
        .iter()
        .all(|l| l.mapping_id >= 1 && l.line.len() == 1));
    let exe = std::env::current_exe().unwrap();
    assert!(
        p.mapping
            .iter()
            .any(|m| std::path::Path::new(st(m.filename)) == exe),
        "{:?}",
        p.mapping.iter().map(|m| st(m.filename)).collect::<Vec<_>>()
    );
    // Most samples are in the busy function or what it calls.
    let busy: Vec<u64> = p
        .function
        .iter()
        .filter(|f| st(f.name).ends_with("selfprof_test_busy_work"))
        .map(|f| f.id)
        .collect();
    let on_busy: i64 = p
        .sample
        .iter()
        .filter(|s| {
            s.location_id
                .iter()
                .any(|id| busy.contains(&p.location[*id as usize - 1].line[0].function_id))
        })
        .map(|s| s.value[0])
        .sum();
    assert!(on_busy as u64 * 2 > samples, "{on_busy} of {samples}");
}

#[test]
fn one_profile_at_a_time() {
    let _serial = serial();
    let first = Session::start(100).expect("first");
    assert!(matches!(Session::start(100), Err(Error::Busy)));
    let (_keep, rx) = mpsc::channel();
    assert!(matches!(
        selfprof::profile(Duration::from_millis(10), 100, &rx),
        Err(Error::Busy)
    ));
    drop(first.finish());
    // Free again once the first one ended.
    Session::start(100).expect("second").finish();
}

#[test]
fn zero_length_and_bad_frequency() {
    let _serial = serial();
    let (_keep, rx) = mpsc::channel();
    let report = selfprof::profile(Duration::ZERO, 100, &rx).expect("profile");
    let p = decode(&report.to_gzip_pprof(Symbols::Names));
    assert_eq!(p.sample_type.len(), 2);
    assert_eq!(
        p.sample.iter().map(|s| s.value[0]).sum::<i64>() as u64,
        report.samples()
    );
    for bad in [0, selfprof::MAX_FREQUENCY + 1] {
        assert!(matches!(Session::start(bad), Err(Error::BadFrequency(f)) if f == bad));
    }
}

#[test]
fn a_dropped_sender_ends_the_profile_early() {
    let _serial = serial();
    let (stop, worker) = busy_thread();
    let (tx, rx) = mpsc::channel::<()>();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(tx);
    });
    let report = selfprof::profile(Duration::from_secs(30), 100, &rx).expect("profile");
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(report.duration() < Duration::from_secs(5));
    assert!(report.samples() > 0);
}

/// A thread that reads the clock all the time: on Linux that runs in the kernel's vDSO.
fn selfprof_test_clock_reader(stop: &AtomicBool) -> u64 {
    let start = std::time::Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(black_box(start.elapsed().as_nanos() as u64));
    }
    n
}

#[test]
fn samples_in_the_vdso_lie_in_a_mapping_named_after_it() {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    if !maps.lines().any(|l| l.ends_with("[vdso]")) {
        eprintln!("no vDSO in this process: nothing to check");
        return;
    }
    let _serial = serial();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let stop = stop.clone();
        move || selfprof_test_clock_reader(&stop)
    });
    let (_keep, rx) = mpsc::channel();
    let report = selfprof::profile(Duration::from_secs(1), 100, &rx).expect("profile");
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    let p = decode(&report.to_gzip_pprof(Symbols::Names));
    let st = |i: i64| p.string_table[i as usize].as_str();
    assert!(p
        .location
        .iter()
        .all(|l| l.mapping_id >= 1 && l.line.len() == 1));
    let vdso = p
        .mapping
        .iter()
        .find(|m| st(m.filename) == "[vdso]")
        .expect("a [vdso] mapping");
    let in_vdso: Vec<&str> = p
        .location
        .iter()
        .filter(|l| l.mapping_id == vdso.id)
        .map(|l| st(p.function[l.line[0].function_id as usize - 1].name))
        .collect();
    assert!(!in_vdso.is_empty(), "no sample in the vDSO");
    assert!(in_vdso.iter().all(|n| *n == "[vdso]"), "{in_vdso:?}");
}
