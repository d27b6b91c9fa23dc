//! Running the real `rill run` in a temporary directory and talking to it over loopback HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `rill run`; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub addr: String,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

/// The shared reference data beside the repository (`<repo>/../shared`).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// How long anything in these tests may take before it counts as hung.
pub const PATIENCE: Duration = Duration::from_secs(20);

impl Agent {
    /// Writes `config` to `<tmp>/config.river` and starts `rill run` on it, listening on a free port.
    /// Returns once the listen address is logged (the config may not be loaded yet).
    pub fn start(config: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.river");
        std::fs::write(&path, config).unwrap();
        Agent::start_at(dir, path)
    }

    /// Like [`Agent::start`], with more flags for `rill run`.
    pub fn start_with_args(config: &str, args: &[String]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.river");
        std::fs::write(&path, config).unwrap();
        Agent::start_at_with(dir, path, args)
    }

    /// Starts `rill run` on `config` (a file or directory) with `dir` as working directory.
    pub fn start_at(dir: tempfile::TempDir, config: PathBuf) -> Agent {
        Agent::start_with_all(dir, config, "127.0.0.1:0", &[])
    }

    /// Like [`Agent::start_at`], listening on `listen` (e.g. a port the config refers to).
    pub fn start_listening(dir: tempfile::TempDir, config: PathBuf, listen: &str) -> Agent {
        Agent::start_with_all(dir, config, listen, &[])
    }

    /// Like [`Agent::start_at`], with more flags for `rill run`.
    pub fn start_at_with(dir: tempfile::TempDir, config: PathBuf, args: &[String]) -> Agent {
        Agent::start_with_all(dir, config, "127.0.0.1:0", args)
    }

    /// Starts `rill run` on `config`, listening on `listen`, with more flags.
    pub fn start_with_all(
        dir: tempfile::TempDir,
        config: PathBuf,
        listen: &str,
        args: &[String],
    ) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
            .arg("run")
            .arg(&config)
            .args(["--server.http.listen-addr", listen])
            .args(args)
            .arg("--storage.path")
            .arg(dir.path().join("data"))
            .current_dir(dir.path())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rill");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("addr="))
                {
                    let _ = tx.send(addr.to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("rill did not log its address:\n{}", log.lock().unwrap())
        });
        Agent {
            child,
            addr,
            config,
            dir,
            log,
        }
    }

    /// Everything logged on standard error so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `/-/ready` answers 200.
    pub fn wait_ready(&self) {
        self.wait_for(|| self.get("/-/ready").0 == 200, "ready");
    }

    /// Polls `cond` every 10 ms until it holds.
    pub fn wait_for(&self, mut cond: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        request(&self.addr, "GET", path)
    }

    /// GET `path` as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let (s, b) = self.get(path);
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    /// GET `path` as JSON (status must be 200).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (s, b) = self.get_text(path);
        assert_eq!(s, 200, "{path}: {b}");
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{path}: {e}: {b}"))
    }

    /// Sends a signal with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The IDs of the running components.
    pub fn component_ids(&self) -> Vec<String> {
        self.get_json("/api/v0/web/components")
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["localID"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request (so the body is never chunked and the server closes the connection).
pub fn request(addr: &str, method: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, raw[split + 4..].to_vec())
}
