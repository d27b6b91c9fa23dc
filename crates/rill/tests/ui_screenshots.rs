//! The UI as a browser shows it: headless Chromium renders the pages of a running `rill run` to PNG, and
//! the images must show a real page (many colours, mostly not blank).
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the test is skipped locally and fails in CI
//! (`CI` set). Set `RILL_SCREENSHOTS=<dir>` to keep the PNGs.

mod common;

use common::Agent;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file())
}

/// Renders `url` to `out` (1280×900).
fn screenshot(browser: &Path, url: &str, out: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed on {url}: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium hung on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (distinct colours, share of pixels that are not the background colour).
fn image_stats(png_path: &Path) -> (usize, f64, (u32, u32)) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let mut counts = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(p.to_vec()).or_insert(0usize) += 1;
    }
    let background = counts.values().max().copied().unwrap_or(0);
    let share = 1.0 - background as f64 / pixels.len() as f64;
    (counts.len(), share, (info.width, info.height))
}

#[test]
fn pages_render_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: chromium is not installed");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let target = data.path().join("target.txt");
    std::fs::write(&target, "hello").unwrap();
    let paths = data.path().join("paths.txt");
    std::fs::write(&paths, target.display().to_string()).unwrap();
    let token = data.path().join("token");
    std::fs::write(&token, "s3cr3t").unwrap();
    let config = format!(
        "local.file \"paths\" {{\n\tfilename = {p:?}\n}}\n\n\
         local.file \"target\" {{\n\tfilename = local.file.paths.content\n}}\n\n\
         local.file \"copy\" {{\n\tfilename = local.file.paths.content\n\tpoll_frequency = \"10s\"\n}}\n\n\
         local.file \"token\" {{\n\tfilename = {t:?}\n\tis_secret = true\n}}\n\n\
         local.file \"missing\" {{\n\tfilename = \"/nonexistent/rill/file\"\n}}\n\n\
         logging {{\n\tlevel = \"info\"\n}}\n",
        p = paths.display().to_string(),
        t = token.display().to_string(),
    );
    let a = Agent::start(&config);
    a.wait_ready();
    let keep = std::env::var_os("RILL_SCREENSHOTS").map(PathBuf::from);
    let out_dir = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| out_dir.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    for (name, path) in [
        ("index", "/"),
        ("component", "/component/local.file.paths"),
        ("missing", "/component/local.file.missing"),
    ] {
        let out = dir.join(format!("{name}.png"));
        screenshot(&browser, &format!("http://{}{path}", a.addr), &out);
        let (colours, share, size) = image_stats(&out);
        assert_eq!(size, (1280, 900), "{name}");
        assert!(colours > 20, "{name}: only {colours} colours: blank page?");
        assert!(
            share > 0.03,
            "{name}: {share:.3} of pixels drawn: blank page?"
        );
    }
}
