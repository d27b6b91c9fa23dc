//! The shared HTTP client settings in `pyroscope.scrape`: HTTPS with a generated CA, a certificate for
//! another name, basic auth and a bearer token file that is rotated.

mod common;

use common::*;
use std::time::Duration;

fn config(key: &str, targets: &str, extra: &str) -> String {
    format!(
        r#"
test.recorder "out" {{ key = "{key}" }}
pyroscope.scrape "c" {{
  targets         = [{targets}]
  forward_to      = [test.recorder.out.receiver]
  scrape_interval = "300ms"
  {extra}
  profiling_config {{
    profile.memory {{ enabled = false }}
    profile.block {{ enabled = false }}
    profile.mutex {{ enabled = false }}
    profile.process_cpu {{ enabled = false }}
  }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_are_verified_against_the_configured_ca() {
    let ca = Ca::new();
    let good = Target::start_with(go_handler, Some(ca.server(&["127.0.0.1"])), None).await;
    let wrong_name =
        Target::start_with(go_handler, Some(ca.server(&["other.example"])), None).await;
    let env = Env::new();
    let targets = format!(
        r#"{{"__address__" = "{}", "service_name" = "good"}}, {{"__address__" = "{}", "service_name" = "wrong"}}"#,
        good.address(),
        wrong_name.address()
    );
    let extra = format!(
        "scheme = \"https\"\n  tls_config {{\n    ca_pem = {}\n  }}",
        river::parser::go_quote(&ca.pem)
    );
    let report = env.load(&config("tls", &targets, &extra)).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("both scraped", Duration::from_secs(5), || {
        env.all_targets_reported("pyroscope.scrape.c")
    })
    .await;
    let targets = env.targets("pyroscope.scrape.c");
    let good_t = targets
        .iter()
        .find(|t| t["labels"]["service_name"] == "good")
        .unwrap();
    assert_eq!(good_t["health"], "up", "{good_t}");
    assert!(good_t["url"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    let wrong_t = targets
        .iter()
        .find(|t| t["labels"]["service_name"] == "wrong")
        .unwrap();
    assert_eq!(wrong_t["health"], "down");
    let err = wrong_t["last_error"].as_str().unwrap();
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
    eventually("profiles over TLS", Duration::from_secs(5), || {
        !recorded("tls", "test.recorder.out").is_empty()
    })
    .await;
    assert_eq!(
        recorded("tls", "test.recorder.out")[0].1,
        fixture("go-goroutine.pb.gz")
    );
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_a_rotated_bearer_token_file_are_sent() {
    let basic = Target::start_with(go_handler, None, Some("Basic dXNlcjpwYXNz".into())).await;
    let env = Env::new();
    let targets = format!(
        r#"{{"__address__" = "{}", "service_name" = "basic"}}"#,
        basic.address()
    );
    env.load(&config(
        "auth",
        &targets,
        "basic_auth {\n    username = \"user\"\n    password = \"pass\"\n  }",
    ))
    .await;
    eventually("basic auth accepted", Duration::from_secs(5), || {
        env.targets("pyroscope.scrape.c")
            .first()
            .is_some_and(|t| t["health"] == "up")
    })
    .await;

    // Bearer token from a file; the server wants the rotated token.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "old").unwrap();
    let bearer = Target::start_with(go_handler, None, Some("Bearer new".into())).await;
    let targets = format!(
        r#"{{"__address__" = "{}", "service_name" = "bearer"}}"#,
        bearer.address()
    );
    let extra = format!(
        "bearer_token_file = {}",
        river::parser::go_quote(&token.display().to_string())
    );
    env.load(&config("auth", &targets, &extra)).await;
    eventually("old token refused", Duration::from_secs(5), || {
        env.targets("pyroscope.scrape.c")
            .first()
            .is_some_and(|t| t["last_error"] == "server returned HTTP status (401) Unauthorized")
    })
    .await;
    std::fs::write(&token, "new").unwrap();
    eventually(
        "rotated token accepted without a reload",
        Duration::from_secs(5),
        || {
            env.targets("pyroscope.scrape.c")
                .first()
                .is_some_and(|t| t["health"] == "up")
        },
    )
    .await;
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_auth_settings_are_rejected_on_the_component() {
    let env = Env::new();
    let cfg = config(
        "conflict",
        "",
        "bearer_token = \"t\"\n  basic_auth {\n    username = \"u\"\n  }",
    );
    let sources = flow::Sources::parse([("main.river", cfg.as_str())]).unwrap();
    let text = match env.c.load(sources).await {
        Ok(r) => r.diagnostics.to_string(),
        Err(d) => d.to_string(),
    };
    assert!(
        text.contains("main.river:3:1: at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured"),
        "{text}"
    );
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_is_the_name_verified_and_sent_as_sni() {
    let ca = Ca::new();
    // Known by a name its address does not have, as behind a proxy that routes TLS by name.
    let target = Target::start_with(go_handler, Some(ca.server(&["scrape.example"])), None).await;
    let env = Env::new();
    let targets = format!(
        r#"{{"__address__" = "{}", "service_name" = "named"}}"#,
        target.address()
    );
    let extra = format!(
        "scheme = \"https\"\n  tls_config {{\n    ca_pem = {}\n    server_name = \"scrape.example\"\n  }}",
        river::parser::go_quote(&ca.pem)
    );
    let report = env.load(&config("sni", &targets, &extra)).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("profiles over TLS", Duration::from_secs(5), || {
        !recorded("sni", "test.recorder.out").is_empty()
    })
    .await;
    assert_eq!(env.target_status("pyroscope.scrape.c", "named").0, "up");
    let names = target.server_names.lock().unwrap().clone();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|n| n.as_deref() == Some("scrape.example")),
        "{names:?}"
    );
    env.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_reuse_one_keep_alive_connection_per_target_over_http_and_https() {
    let plain = Target::go().await;
    let ca = Ca::new();
    let secure = Target::start_with(go_handler, Some(ca.server(&["127.0.0.1"])), None).await;
    let wrong_name =
        Target::start_with(go_handler, Some(ca.server(&["other.example"])), None).await;
    let env = Env::new();
    let report = env
        .load(&config(
            "keepalive-http",
            &format!(r#"{{"__address__" = "{}"}}"#, plain.address()),
            "",
        ))
        .await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    // HTTPS with HTTP/2 disabled takes the lean HTTP/1.1 path, TLS verification included.
    let tls = format!(
        "scheme = \"https\"\n  enable_http2 = false\n  tls_config {{\n    ca_pem = {}\n  }}",
        river::parser::go_quote(&ca.pem)
    );
    let second = config(
        "keepalive-https",
        &format!(
            r#"{{"__address__" = "{}", "service_name" = "good"}}, {{"__address__" = "{}", "service_name" = "wrong"}}"#,
            secure.address(),
            wrong_name.address()
        ),
        &tls,
    )
    .replace("pyroscope.scrape \"c\"", "pyroscope.scrape \"s\"")
    .replace("test.recorder \"out\"", "test.recorder \"out2\"")
    .replace("test.recorder.out.receiver", "test.recorder.out2.receiver");
    let env2 = Env::new();
    let report = env2.load(&second).await;
    assert!(report.diagnostics.is_empty(), "{}", report.diagnostics);
    eventually("five scrapes of each", Duration::from_secs(10), || {
        plain.hits_of("/debug/pprof/goroutine") >= 5
            && secure.hits_of("/debug/pprof/goroutine") >= 5
    })
    .await;
    // One profile type per target, scraped one at a time: one connection carries every scrape.
    assert_eq!(plain.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(secure.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    let targets = env2.targets("pyroscope.scrape.s");
    let wrong = targets
        .iter()
        .find(|t| t["labels"]["service_name"] == "wrong")
        .unwrap();
    assert_eq!(wrong["health"], "down");
    let err = wrong["last_error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "Get \"https://{}/debug/pprof/goroutine\": error sending request for url (https://{}/debug/pprof/goroutine): client error (Connect): ",
            wrong_name.address(),
            wrong_name.address()
        )),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
    assert!(recorded("keepalive-http", "test.recorder.out").len() >= 5);
    assert!(recorded("keepalive-https", "test.recorder.out2").len() >= 5);
    env.c.shutdown().await;
    env2.c.shutdown().await;
}
