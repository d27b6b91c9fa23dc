//! End-to-end tests of `rill run`: the real binary, real files, real signals, loopback HTTP.

mod common;

use common::{request, Agent};
use prost::Message;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

fn file_config(name: &str, path: &std::path::Path, extra: &str) -> String {
    format!(
        "local.file {name:?} {{\n\tfilename = {:?}\n{extra}}}\n",
        path.display().to_string()
    )
}

#[test]
fn endpoints_answer_with_their_status_codes_and_shapes() {
    let a = Agent::start("local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_ready();
    assert_eq!(a.get_text("/-/ready"), (200, "ready\n".into()));
    assert_eq!(a.get_text("/-/healthy"), (200, "healthy\n".into()));

    let list = a.get_json("/api/v0/web/components");
    let c = &list[0];
    for key in [
        "name",
        "type",
        "localID",
        "moduleID",
        "label",
        "referencesTo",
        "referencedBy",
    ] {
        assert!(c.get(key).is_some(), "{key} missing: {c}");
    }
    assert_eq!(c["type"], "block");
    assert_eq!(c["health"]["state"], "healthy");
    let one = a.get_json("/api/v0/web/components/local.file.host");
    assert!(
        one["arguments"].is_array() && one["exports"].is_array() && one["debugInfo"].is_array()
    );
    assert_eq!(a.get("/api/v0/web/components/nope.x").0, 404);
    let peers = a.get_json("/api/v0/web/peers");
    assert_eq!(peers[0]["isSelf"], true);

    let (status, metrics) = a.get_text("/metrics");
    assert_eq!(status, 200);
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "rill_config_last_load_successful 1",
        "rill_component_controller_running_components{health_type=\"healthy\"} 1",
    ] {
        assert!(metrics.contains(family), "{family}:\n{metrics}");
    }
    let (status, page) = a.get_text("/");
    assert_eq!(status, 200);
    assert!(page.contains("local.file.host"));
    assert_eq!(a.get("/component/local.file.host").0, 200);
    assert_eq!(a.get("/api/v0/component/local.file.host/x").0, 404);
    assert_eq!(a.get("/debug/pprof/goroutine").0, 404);
    // The default log format is logfmt.
    assert!(
        a.log().contains("level=info msg=\"config loaded\""),
        "{}",
        a.log()
    );
}

#[test]
fn sighup_applies_an_edited_config_and_keeps_unchanged_components() {
    let data = tempfile::tempdir().unwrap();
    let (fa, fb) = (data.path().join("a"), data.path().join("b"));
    std::fs::write(&fa, "A").unwrap();
    std::fs::write(&fb, "B").unwrap();
    let a = Agent::start(&file_config("a", &fa, ""));
    a.wait_ready();
    let started =
        a.get_json("/api/v0/web/components/local.file.a")["health"]["updatedTime"].clone();

    std::fs::write(
        &a.config,
        file_config("a", &fa, "") + "\n" + &file_config("b", &fb, ""),
    )
    .unwrap();
    a.signal("HUP");
    a.wait_for(|| a.component_ids().len() == 2, "local.file.b to start");
    assert_eq!(a.component_ids(), ["local.file.a", "local.file.b"]);
    // Not restarted: its run started before the reload and its health was not touched.
    let after = a.get_json("/api/v0/web/components/local.file.a")["health"]["updatedTime"].clone();
    assert_eq!(started, after);
    a.wait_for(
        || a.log().contains("msg=\"config reloaded\""),
        "the reload to be logged",
    );

    // Remove a: it is stopped, b runs on.
    std::fs::write(&a.config, file_config("b", &fb, "")).unwrap();
    a.signal("HUP");
    a.wait_for(
        || a.component_ids() == ["local.file.b"],
        "local.file.a to stop",
    );
}

#[test]
fn broken_configs_leave_the_running_graph_alone() {
    let a = Agent::start("local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_ready();
    let before = a.get_json("/api/v0/web/components/local.file.host");

    std::fs::write(&a.config, "local.file \"host\" {\n\tfilename = \n}\n").unwrap();
    a.signal("HUP");
    let name = a.config.display().to_string();
    let expected = format!("{name}:3:1: expected expression, got }}");
    a.wait_for(
        || a.log().contains("config reload failed"),
        "the failed reload to be logged",
    );
    assert!(a.log().contains(&expected), "{}", a.log());

    let (status, body) = request(&a.addr, "POST", "/-/reload");
    assert_eq!(status, 400);
    assert_eq!(String::from_utf8_lossy(&body), format!("{expected}\n"));
    let (status, body) = request(&a.addr, "GET", "/-/reload");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // Unknown component: also rejected, with its position.
    std::fs::write(&a.config, "local.fil \"host\" {\n}\n").unwrap();
    let (status, body) = request(&a.addr, "POST", "/-/reload");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400);
    assert!(
        body.starts_with(&format!(
            "{name}:1:1: cannot find the definition of component name \"local.fil\""
        )),
        "{body}"
    );

    let after = a.get_json("/api/v0/web/components/local.file.host");
    assert_eq!(before["health"], after["health"]);
    assert_eq!(before["arguments"], after["arguments"]);
    assert_eq!(a.get_text("/-/ready").0, 200);
    let (_, metrics) = a.get_text("/metrics");
    assert!(
        metrics.contains("rill_config_last_load_successful 0"),
        "{metrics}"
    );

    // Fixed again: accepted.
    std::fs::write(
        &a.config,
        "local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n",
    )
    .unwrap();
    let (status, body) = request(&a.addr, "GET", "/-/reload");
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "config reloaded\n")
    );
}

#[test]
fn a_failing_first_load_prints_diagnostics_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.river");
    std::fs::write(
        &path,
        "logging {\n\tlevel = \"info\" format = \"json\"\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "run",
            path.to_str().unwrap(),
            "--server.http.listen-addr",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let name = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "Error: {name}:2:17: expected TERMINATOR, got IDENT"
        )),
        "{stderr}"
    );
    // The pretty form shows the line with a caret.
    assert!(
        stderr.contains("2 |     level = \"info\" format = \"json\""),
        "{stderr}"
    );
    assert!(stderr.contains("^^^^^^"), "{stderr}");

    let missing = dir.path().join("missing.river");
    let out = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "run",
            missing.to_str().unwrap(),
            "--server.http.listen-addr",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.river"));
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut a = Agent::start("local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_ready();
    let started = Instant::now();
    a.signal("TERM");
    let status = a
        .wait_exit(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert_eq!(status.code(), Some(0), "{}", a.log());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(a.log().contains("msg=\"shutting down\""), "{}", a.log());
}

#[test]
fn sigint_exits_zero_too() {
    let mut a = Agent::start("local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_ready();
    a.signal("INT");
    let status = a
        .wait_exit(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert_eq!(status.code(), Some(0), "{}", a.log());
}

#[test]
fn a_signal_during_startup_is_handled_not_fatal() {
    // The HTTP server answers before the first load finishes; a stop sent the moment it listens must still
    // get a clean exit, not the default action of SIGTERM.
    let mut a = Agent::start("local.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_for(
        || a.log().contains("now listening for http traffic"),
        "the listening line",
    );
    a.signal("TERM");
    let status = a
        .wait_exit(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert_eq!(status.code(), Some(0), "{}", a.log());
}

fn decode_profile(gz: &[u8]) -> selfprof::proto::Profile {
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    selfprof::proto::Profile::decode(raw.as_slice()).expect("a pprof profile")
}

fn sample_types(p: &selfprof::proto::Profile) -> Vec<(String, String)> {
    p.sample_type
        .iter()
        .map(|t| {
            (
                p.string_table[t.r#type as usize].clone(),
                p.string_table[t.unit as usize].clone(),
            )
        })
        .collect()
}

#[test]
fn cpu_and_heap_profiles_decode() {
    // The agent holds this file's 4 MiB of content: jemalloc samples one allocation per 512 KiB on average,
    // so the heap profile is sure to have samples.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(4 << 20)).unwrap();
    let a = Agent::start(&format!(
        "local.file \"big\" {{\n\tfilename = {:?}\n}}\n",
        big.display().to_string()
    ));
    a.wait_ready();
    // Keep the process busy while it samples itself, so there is CPU to see.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (addr, stop) = (a.addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                request(&addr, "GET", "/metrics");
                request(&addr, "GET", "/");
            }
        })
    };
    let (status, body) = a.get("/debug/pprof/profile?seconds=1");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let p = decode_profile(&body);
    assert!(
        sample_types(&p).contains(&("cpu".into(), "nanoseconds".into())),
        "{:?}",
        sample_types(&p)
    );
    let samples: i64 = p.sample.iter().map(|s| s.value[0]).sum();
    assert!(samples > 0, "no CPU samples");
    assert!(p.duration_nanos >= 900_000_000, "{}", p.duration_nanos);
    assert!(!p.function.is_empty() && !p.location.is_empty());
    // Symbolized in the real binary: the agent's own functions are there by name.
    let names: Vec<&str> = p
        .function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("rill::")), "{names:?}");

    for path in ["/debug/pprof/heap", "/debug/pprof/allocs"] {
        let (status, body) = a.get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        let p = decode_profile(&body);
        assert_eq!(
            sample_types(&p),
            [("inuse_space".to_string(), "bytes".to_string())],
            "{path}"
        );
        assert!(!p.sample.is_empty(), "{path}: no heap samples");
        // Named from the symbol table: the 4 MiB of file content were read by local.file.
        let names: Vec<&str> = p
            .function
            .iter()
            .map(|f| p.string_table[f.name as usize].as_str())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("local_file::")),
            "{path}: {names:?}"
        );
    }
}

#[test]
fn secrets_never_show_in_api_pages_or_logs() {
    let data = tempfile::tempdir().unwrap();
    let token = data.path().join("token");
    std::fs::write(&token, "s3cr3t-agent-token").unwrap();
    let config = file_config("token", &token, "\tis_secret = true\n")
        + "\nlogging {\n\tlevel = \"debug\"\n}\n\nlocal.file \"user\" {\n\tfilename = local.file.token.content\n}\n";
    let a = Agent::start(&config);
    a.wait_ready();
    let mut seen = String::new();
    for path in [
        "/api/v0/web/components",
        "/api/v0/web/components/local.file.token",
        "/api/v0/web/components/local.file.user",
        "/",
        "/component/local.file.token",
        "/component/local.file.user",
        "/-/healthy",
        "/metrics",
    ] {
        seen.push_str(&a.get_text(path).1);
    }
    // A reload error about the block that uses the secret must not quote it either.
    let (_, reload) = a.get_text("/-/reload");
    seen.push_str(&reload);
    seen.push_str(&a.log());
    assert!(seen.contains("(secret)"), "the secret is shown redacted");
    assert!(!seen.contains("s3cr3t"), "{seen}");
}

#[test]
fn the_logging_block_switches_to_json() {
    let a = Agent::start("logging {\n\tformat = \"json\"\n}\n\nlocal.file \"host\" {\n\tfilename = \"/etc/hostname\"\n}\n");
    a.wait_ready();
    a.wait_for(
        || a.log().contains("\"msg\":\"config loaded\""),
        "a JSON log line",
    );
    let line = a
        .log()
        .lines()
        .find(|l| l.contains("config loaded"))
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "info");
    assert!(v["ts"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_directory_config_merges_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("a.river"),
        "local.file \"a\" {\n\tfilename = \"/etc/hostname\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        conf.join("b.river"),
        "local.file \"b\" {\n\tfilename = \"/etc/hostname\"\n}\n",
    )
    .unwrap();
    let a = Agent::start_at(dir, conf);
    a.wait_ready();
    assert_eq!(a.component_ids(), ["local.file.a", "local.file.b"]);
}

#[test]
fn the_quickstart_scrapes_the_agent_itself_and_stores_its_profiles() {
    // The quickstart as shipped, with its target moved from 127.0.0.1:12345 to a free port so that tests
    // can run beside a real agent.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped = std::fs::read_to_string(root.join("examples/quickstart.river")).unwrap();
    assert!(shipped.contains("\"127.0.0.1:12345\""), "{shipped}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("quickstart.river");
    std::fs::write(&config, shipped.replace("127.0.0.1:12345", &listen)).unwrap();
    let a = Agent::start_listening(dir, config, &listen);
    a.wait_ready();
    assert_eq!(a.get_text("/-/healthy").0, 200, "{}", a.log());

    // The first CPU profile lands one phase (< 10 s) plus its 9 s of sampling after the start; the deadline
    // only guards against a hang.
    let store = a
        .dir
        .path()
        .join("data/pyroscope.file.local/rill/process_cpu");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let profile = loop {
        let found = std::fs::read_dir(&store).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".pb.gz"))
        });
        if let Some(path) = found {
            eprintln!("first CPU profile stored after {:?}", started.elapsed());
            break path;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU profile stored in {}:\n{}",
            store.display(),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&profile).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let decoded = selfprof::proto::Profile::decode(raw.as_slice()).expect("a pprof profile");
    assert!(!decoded.sample_type.is_empty(), "{decoded:?}");
    // The scrape reports the target up in its debug info.
    let scrape = a.get_json("/api/v0/web/components/pyroscope.scrape.self");
    assert!(scrape.to_string().contains("\"up\""), "{scrape}");
}
