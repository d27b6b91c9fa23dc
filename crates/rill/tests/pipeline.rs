//! Two real `rill run` processes: A scrapes a fixture target and pushes with `pyroscope.write` to B's
//! `pyroscope.receive_http`; B stores with `pyroscope.file`. What B stored must be what A fetched (or its
//! client-side delta), with the expected labels.

mod common;

use common::{shared_dir, Agent};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(shared_dir().join("fixtures/pprof").join(name)).expect("fixture profile")
}

/// Serves `/debug/pprof/goroutine` (always the same profile) and `/debug/pprof/mutex` (two consecutive
/// cumulative profiles, alternating) over keep-alive HTTP/1.1.
fn start_target() -> String {
    start_counting_target().0
}

/// Like [`start_target`], also returning the number of goroutine profiles served so far.
fn start_counting_target() -> (String, Arc<AtomicUsize>) {
    let goroutine = Arc::new(fixture("go-goroutine.pb.gz"));
    let mutex = Arc::new([fixture("go-mutex.pb.gz"), fixture("go-mutex-2.pb.gz")]);
    let served = Arc::new(AtomicUsize::new(0));
    let goroutines = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counter = goroutines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (goroutine, mutex, served, counter) = (
                goroutine.clone(),
                mutex.clone(),
                served.clone(),
                counter.clone(),
            );
            std::thread::spawn(move || serve(conn, &goroutine, &mutex, &served, &counter));
        }
    });
    (addr, goroutines)
}

fn serve(
    conn: TcpStream,
    goroutine: &[u8],
    mutex: &[Vec<u8>; 2],
    served: &AtomicUsize,
    goroutines: &AtomicUsize,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim_end().is_empty() {
                break;
            }
        }
        let body: &[u8] = if path.starts_with("/debug/pprof/goroutine") {
            goroutines.fetch_add(1, Ordering::SeqCst);
            goroutine
        } else if path.starts_with("/debug/pprof/mutex") {
            &mutex[served.fetch_add(1, Ordering::SeqCst) % 2]
        } else {
            b""
        };
        let status = if body.is_empty() {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body).is_err() {
            return;
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The stored profiles of one type: (profile file, labels of its series).
fn stored(dir: &Path, profile_type: &str) -> Vec<(PathBuf, BTreeMap<String, String>)> {
    let dir = dir.join("svc").join(profile_type);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out = vec![];
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".pb.gz") else {
            continue;
        };
        let series = stem.rsplit('-').next().unwrap();
        let labels = std::fs::read_to_string(dir.join(format!("{series}.labels.json")))
            .expect("labels beside the profile");
        out.push((path, serde_json::from_str(&labels).expect("labels JSON")));
    }
    out.sort();
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn contentions(raw_gz: &[u8]) -> i64 {
    use prost::Message;
    let p = selfprof::proto::Profile::decode(gunzip(raw_gz).as_slice()).expect("pprof");
    p.sample.iter().map(|s| s.value[0]).sum()
}

#[test]
fn a_scrapes_and_pushes_to_b_which_stores_what_a_fetched() {
    let target = start_target();
    let store = tempfile::tempdir().unwrap();
    let b_port = free_port();
    let b = Agent::start(&format!(
        r#"pyroscope.receive_http "in" {{
	http {{
		listen_address = "127.0.0.1"
		listen_port    = {b_port}
	}}
	forward_to = [pyroscope.file.store.receiver]
}}

pyroscope.file "store" {{
	directory = {store:?}
}}
"#,
        store = store.path().display().to_string()
    ));
    b.wait_ready();
    let a = Agent::start(&format!(
        r#"pyroscope.scrape "a" {{
	targets = [{{
		"__address__" = "{target}",
		"service_name" = "svc",
		"team" = "scraped",
		"__meta_source" = "static",
	}}]
	forward_to      = [pyroscope.write.b.receiver]
	scrape_interval = "2s"

	profiling_config {{
		profile.memory {{
			enabled = false
		}}
		profile.block {{
			enabled = false
		}}
		profile.process_cpu {{
			enabled = false
		}}
	}}
}}

pyroscope.write "b" {{
	external_labels = {{"env" = "test", "team" = "external"}}

	endpoint {{
		url = "http://127.0.0.1:{b_port}"
	}}
}}
"#
    ));
    a.wait_ready();

    // The goroutine profile is forwarded as fetched; the mutex profile as the difference of two scrapes.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (goroutines, mutexes) = loop {
        let g = stored(store.path(), "goroutine");
        let m = stored(store.path(), "mutex");
        if !g.is_empty() && !m.is_empty() {
            break (g, m);
        }
        assert!(
            Instant::now() < deadline,
            "B stored nothing yet\n--- A:\n{}\n--- B:\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let (path, labels) = &goroutines[0];
    assert_eq!(
        std::fs::read(path).unwrap(),
        fixture("go-goroutine.pb.gz"),
        "stored bytes differ from the fetched ones"
    );
    let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        *labels,
        expect(&[
            ("__name__", "goroutine"),
            ("env", "test"),
            ("instance", target.as_str()),
            ("job", "pyroscope.scrape.a"),
            ("service_name", "svc"),
            ("team", "external"),
        ])
    );

    let (path, labels) = &mutexes[0];
    assert_eq!(labels.get("__delta__").map(String::as_str), Some("false"));
    assert_eq!(labels.get("__name__").map(String::as_str), Some("mutex"));
    assert!(!labels
        .keys()
        .any(|k| k.starts_with("__meta") || k == "__address__"));
    let (first, second) = (fixture("go-mutex.pb.gz"), fixture("go-mutex-2.pb.gz"));
    let delta = contentions(&std::fs::read(path).unwrap());
    let expected = (contentions(&second) - contentions(&first)).abs();
    assert_eq!(
        delta.abs(),
        expected,
        "the stored mutex profile is not the delta"
    );
}

#[test]
fn scraping_keeps_its_schedule_while_the_write_endpoint_is_down() {
    let (target, goroutines) = start_counting_target();
    // Nobody listens on this port: every push fails and is retried with backoff.
    let dead = free_port();
    let a = Agent::start(&format!(
        r#"pyroscope.scrape "a" {{
	targets         = [{{"__address__" = "{target}", "service_name" = "svc"}}]
	forward_to      = [pyroscope.write.down.receiver]
	scrape_interval = "2s"

	profiling_config {{
		profile.memory {{
			enabled = false
		}}
		profile.block {{
			enabled = false
		}}
		profile.mutex {{
			enabled = false
		}}
		profile.process_cpu {{
			enabled = false
		}}
	}}
}}

pyroscope.write "down" {{
	endpoint {{
		url                = "http://127.0.0.1:{dead}"
		min_backoff_period = "100ms"
		max_backoff_period = "200ms"
	}}
}}
"#
    ));
    a.wait_ready();
    a.wait_for(
        || goroutines.load(Ordering::SeqCst) >= 1,
        "the first scrape",
    );
    let (first, at) = (goroutines.load(Ordering::SeqCst), Instant::now());
    a.wait_for(
        || goroutines.load(Ordering::SeqCst) >= first + 3,
        "three more scrapes on schedule",
    );
    let elapsed = at.elapsed();
    // Three intervals of 2 s, with slack for a loaded machine; a scrape loop stalled by the writer would
    // not get there before the harness's patience runs out.
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}");
    let (_, metrics) = a.get_text("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pyroscope_write_retries_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert_eq!(a.get_text("/-/ready").0, 200);
}
