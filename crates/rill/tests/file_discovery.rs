//! A real `rill run` with `discovery.file` feeding `pyroscope.scrape` (which stores with `pyroscope.file`),
//! while the test writes, rewrites, breaks and restores the file_sd file. Each target is its own loopback
//! fixture server serving a real goroutine profile and logging the requests it gets.
//!
//! What must hold: the scrape component's task set follows the file (a removed target stops being scraped,
//! an added one starts) while unchanged targets keep their task (never stopped and started again, their
//! status kept); a broken file makes `discovery.file` unhealthy with the error while the last good targets
//! keep being scraped; restoring it brings health back without touching the tasks.

mod common;

use common::{shared_dir, Agent};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fixture target: its address and the times it was asked for a goroutine profile.
struct Fixture {
    addr: String,
    hits: Arc<Mutex<Vec<Instant>>>,
}

impl Fixture {
    fn start(profile: Arc<Vec<u8>>) -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (profile, log) = (profile.clone(), log.clone());
                std::thread::spawn(move || serve(conn, &profile, &log));
            }
        });
        Fixture { addr, hits }
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// Keep-alive HTTP/1.1: `/debug/pprof/goroutine` gets the profile (and is logged), anything else a 404.
fn serve(conn: TcpStream, profile: &[u8], hits: &Mutex<Vec<Instant>>) {
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
            hits.lock().unwrap().push(Instant::now());
            profile
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

/// Replaces the file at once (written beside it under a name the pattern does not match, then renamed), so
/// the component never reads half a file.
fn write_atomically(path: &Path, content: &str) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn file_sd(targets: &[&Fixture]) -> String {
    let addrs: Vec<String> = targets.iter().map(|t| format!("{:?}", t.addr)).collect();
    format!(
        r#"[{{"targets": [{}], "labels": {{"service_name": "svc", "env": "test"}}}}]"#,
        addrs.join(", ")
    )
}

/// A River value as the API encodes it (`{"type": ..., "value": ...}`), as plain JSON.
fn plain(v: &Value) -> Value {
    match v["type"].as_str() {
        Some("object") => Value::Object(
            v["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| (f["key"].as_str().unwrap().to_string(), plain(&f["value"])))
                .collect(),
        ),
        Some("array") => Value::Array(v["value"].as_array().unwrap().iter().map(plain).collect()),
        _ => v["value"].clone(),
    }
}

/// A component's health and its debug info as plain JSON (attribute name -> value).
fn component(a: &Agent, id: &str) -> (Value, serde_json::Map<String, Value>) {
    let c = a.get_json(&format!("/api/v0/web/components/{id}"));
    let info = c["debugInfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attr| {
            (
                attr["name"].as_str().unwrap().to_string(),
                plain(&attr["value"]),
            )
        })
        .collect();
    (c["health"].clone(), info)
}

/// The scrape tasks by target address: (health, last_scrape).
fn tasks(a: &Agent) -> Vec<(String, String, String)> {
    let (_, info) = component(a, "pyroscope.scrape.s");
    let mut out: Vec<(String, String, String)> = info["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let url = t["url"].as_str().unwrap();
            let host = url.split("//").nth(1).and_then(|r| r.split('/').next());
            (
                host.unwrap_or(url).to_string(),
                t["health"].as_str().unwrap().to_string(),
                t["last_scrape"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn addresses(a: &Agent) -> Vec<String> {
    tasks(a).into_iter().map(|t| t.0).collect()
}

/// Started and stopped tasks, summed over the "scrape tasks updated" debug lines logged so far.
fn task_changes(a: &Agent) -> (usize, usize) {
    let field = |line: &str, name: &str| -> usize {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    a.log()
        .lines()
        .filter(|l| l.contains("scrape tasks updated"))
        .map(|l| (field(l, "started="), field(l, "stopped=")))
        .fold((0, 0), |(s, t), (a, b)| (s + a, t + b))
}

/// Waits until every fixture in `live` got at least two more requests than it had, and asserts that
/// those in `gone` got none.
fn scraped_on(a: &Agent, live: &[&Fixture], gone: &[&Fixture], what: &str) {
    let before: Vec<usize> = live.iter().map(|f| f.count()).collect();
    let gone_before: Vec<usize> = gone.iter().map(|f| f.count()).collect();
    a.wait_for(
        || live.iter().zip(&before).all(|(f, &n)| f.count() >= n + 2),
        what,
    );
    for (f, n) in gone.iter().zip(gone_before) {
        assert_eq!(f.count(), n, "{} is still scraped ({what})", f.addr);
    }
}

#[test]
fn scrape_tasks_follow_a_file_that_is_written_rewritten_broken_and_restored() {
    let profile = Arc::new(
        std::fs::read(shared_dir().join("fixtures/pprof/go-goroutine.pb.gz")).expect("fixture"),
    );
    let [a, b, c, d] = [(); 4].map(|_| Fixture::start(profile.clone()));
    let sd = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let file = sd.path().join("targets.json");
    write_atomically(&file, &file_sd(&[&a, &b, &c]));

    let agent = Agent::start(&format!(
        r#"logging {{
	level = "debug"
}}

discovery.file "f" {{
	files            = [{pattern:?}]
	refresh_interval = "1s"
}}

pyroscope.scrape "s" {{
	targets         = discovery.file.f.targets
	forward_to      = [pyroscope.file.store.receiver]
	scrape_interval = "1s"

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

pyroscope.file "store" {{
	directory = {store:?}
}}
"#,
        pattern = sd.path().join("*.json").display().to_string(),
        store = store.path().display().to_string(),
    ));
    agent.wait_ready();
    let mut abc = vec![a.addr.clone(), b.addr.clone(), c.addr.clone()];
    abc.sort();

    // Written: the three targets are scraped, one task each, and what they serve is stored.
    agent.wait_for(|| addresses(&agent) == abc, "three scrape tasks");
    scraped_on(
        &agent,
        &[&a, &b, &c],
        &[&d],
        "the written targets are scraped",
    );
    agent.wait_for(
        || {
            std::fs::read_dir(store.path().join("svc").join("goroutine"))
                .is_ok_and(|mut d| d.next().is_some())
        },
        "a stored goroutine profile",
    );
    // (Logged before the debug info shows the tasks; read from the pipe a moment later.)
    agent.wait_for(|| task_changes(&agent) == (3, 0), "three tasks started");

    // Rewritten: c removed, d added, a and b unchanged.
    write_atomically(&file, &file_sd(&[&a, &b, &d]));
    let mut abd = vec![a.addr.clone(), b.addr.clone(), d.addr.clone()];
    abd.sort();
    agent.wait_for(
        || addresses(&agent) == abd,
        "the task set to follow the file",
    );
    // The unchanged tasks kept their status: a restarted task would show no scrape yet.
    for (addr, health, last) in tasks(&agent) {
        if addr == a.addr || addr == b.addr {
            assert_eq!(health, "up", "{addr} lost its status");
            assert!(!last.is_empty(), "{addr} lost its status");
        }
    }
    // Exactly one task stopped (c's) and one started (d's): a and b were not touched.
    agent.wait_for(
        || task_changes(&agent) == (4, 1),
        "one task stopped and one started",
    );
    // A scrape of c that was in flight when its task stopped may still land; after that, none.
    std::thread::sleep(Duration::from_millis(200));
    scraped_on(
        &agent,
        &[&a, &b, &d],
        &[&c],
        "c stops, d starts, a and b go on",
    );
    assert_eq!(task_changes(&agent), (4, 1));

    // Broken: discovery.file reports the error; the last good targets keep being scraped.
    std::fs::write(&file, r#"[{"targets": ["#).unwrap();
    agent.wait_for(
        || component(&agent, "discovery.file.f").0["state"] == "unhealthy",
        "discovery.file to report the broken file",
    );
    let (health, info) = component(&agent, "discovery.file.f");
    let message = health["message"].as_str().unwrap();
    assert!(message.contains("targets.json"), "{health}");
    let files = info["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{info:?}");
    assert_eq!(files[0]["targets"], 3, "{info:?}");
    assert!(files[0]["last_error"].is_string(), "{info:?}");
    scraped_on(
        &agent,
        &[&a, &b, &d],
        &[&c],
        "the last good targets go on while the file is broken",
    );
    assert_eq!(addresses(&agent), abd);

    // Restored: healthy again, and the tasks were never touched.
    write_atomically(&file, &file_sd(&[&a, &b, &d]));
    agent.wait_for(
        || component(&agent, "discovery.file.f").0["state"] == "healthy",
        "discovery.file to be healthy again",
    );
    let (health, _) = component(&agent, "discovery.file.f");
    assert_eq!(health["message"], "3 targets from 1 files", "{health}");
    scraped_on(
        &agent,
        &[&a, &b, &d],
        &[&c],
        "scraping goes on after the restore",
    );
    assert_eq!(task_changes(&agent), (4, 1), "the tasks were restarted");
    assert_eq!(agent.get_text("/-/ready").0, 200);
}
