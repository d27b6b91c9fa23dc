//! pyroscope.write against real Connect Push servers on 127.0.0.1.

// Guards on the recording server are dropped (explicitly) before each await; clippy cannot see `drop`.
#![allow(clippy::await_holding_lock)]

mod common;

use common::*;
use std::time::{Duration, Instant};

const ID: &str = "pyroscope.write.default";

fn config(endpoints: &str) -> String {
    format!(
        "pyroscope.write \"default\" {{\n  external_labels = {{\"env\" = \"prod\", \"cluster\" = \"c1\"}}\n{endpoints}\n}}\n"
    )
}

fn endpoint(url: &str, extra: &str) -> String {
    format!("  endpoint {{\n    url = \"{url}\"\n    min_backoff_period = \"10ms\"\n    max_backoff_period = \"100ms\"\n    {extra}\n  }}\n")
}

#[tokio::test]
async fn push_request_matches_the_protocol() {
    let server = Server::start().await;
    let env = Env::new();
    env.load(&config(&endpoint(
        &format!("{}/", server.url),
        "headers = {\"X-Scope-OrgID\" = \"tenant-1\"}\n    remote_timeout = \"7s\"\n    bearer_token = \"tok\"",
    )))
    .await;
    let recv = env.receiver(ID);
    recv.append(labels("svc"), sample(1)).await.unwrap();
    server.wait_profiles(1, Duration::from_secs(10)).await;

    let got = server.state.received.lock().unwrap();
    let r = &got[0];
    let h = |k: &str| r.headers.get(k).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(h("content-type").as_deref(), Some("application/proto"));
    assert_eq!(h("connect-protocol-version").as_deref(), Some("1"));
    assert_eq!(h("connect-timeout-ms").as_deref(), Some("7000"));
    assert_eq!(h("x-scope-orgid").as_deref(), Some("tenant-1"));
    // The shared HTTP client settings apply (http-client crate).
    assert_eq!(h("authorization").as_deref(), Some("Bearer tok"));
    assert!(
        h("user-agent").unwrap().starts_with("Rill/"),
        "{:?}",
        h("user-agent")
    );
    assert_eq!(r.request.series.len(), 1);
    let s = &r.request.series[0];
    let pairs: Vec<(&str, &str)> = s
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    // Sorted; __address__ dropped; external labels override and are added.
    assert_eq!(
        pairs,
        [
            ("__name__", "process_cpu"),
            ("cluster", "c1"),
            ("env", "prod"),
            ("job", "j"),
            ("service_name", "svc")
        ]
    );
    assert_eq!(&s.samples[0].raw_profile[..], &[0x1f, 0x8b, 1]);
    let id = &s.samples[0].id;
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.matches('-').count(), 4, "{id}");
    drop(got);

    env.wait_stat(ID, 0, "sent_profiles", 1, Duration::from_secs(5))
        .await;
    let text = env.exposition();
    for name in [
        "pyroscope_write_sent_bytes_total{component_id=\"pyroscope.write.default\",endpoint=\"",
        "pyroscope_write_sent_profiles_total{",
        "pyroscope_write_dropped_profiles_total{",
        "pyroscope_write_dropped_bytes_total{",
        "pyroscope_write_retries_total{",
        "pyroscope_write_latency_bucket{",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    env.c.shutdown().await;
}

#[tokio::test]
async fn missing_service_name_is_rejected() {
    let server = Server::start().await;
    let env = Env::new();
    env.load(&format!(
        "pyroscope.write \"default\" {{\n{}}}\n",
        endpoint(&server.url, "")
    ))
    .await;
    let err = env
        .receiver(ID)
        .append(pyroscope::Labels::from_pairs([("job", "x")]), sample(1))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("service_name"), "{err}");
    env.c.shutdown().await;
}

#[tokio::test]
async fn retries_on_503_and_honours_retry_after() {
    let server = Server::start().await;
    server.script([Answer::Status {
        status: 503,
        body: String::new(),
        retry_after: Some("1".into()),
    }]);
    let env = Env::new();
    env.load(&config(&endpoint(&server.url, ""))).await;
    env.receiver(ID)
        .append(labels("svc"), sample(1))
        .await
        .unwrap();
    server.wait_profiles(2, Duration::from_secs(10)).await;
    let got = server.state.received.lock().unwrap();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    // Backoff alone would wait 10-20ms; the server asked for 1s, capped at this endpoint's
    // max_backoff_period (100ms). The next test waits the full second.
    assert!(gap >= Duration::from_millis(90), "{gap:?}");
    drop(got);
    env.wait_stat(ID, 0, "sent_profiles", 1, Duration::from_secs(5))
        .await;
    assert_eq!(env.endpoint_stat(ID, 0, "retries"), 1);
    assert_eq!(env.endpoint_stat(ID, 0, "dropped_profiles"), 0);
    env.c.shutdown().await;
}

#[tokio::test]
async fn retry_after_is_waited_in_full_within_max_backoff() {
    let server = Server::start().await;
    server.script([Answer::Status {
        status: 429,
        body: String::new(),
        retry_after: Some("1".into()),
    }]);
    let env = Env::new();
    env.load(&config(
        "  endpoint {\n    url = \"URL\"\n    min_backoff_period = \"10ms\"\n    max_backoff_period = \"5s\"\n  }\n"
            .replace("URL", &server.url)
            .as_str(),
    ))
    .await;
    env.receiver(ID)
        .append(labels("svc"), sample(1))
        .await
        .unwrap();
    server.wait_profiles(2, Duration::from_secs(10)).await;
    let got = server.state.received.lock().unwrap();
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: {gap:?}"
    );
    drop(got);
    env.c.shutdown().await;
}

#[tokio::test]
async fn no_retry_on_invalid_argument_or_bare_400() {
    let server = Server::start().await;
    server.script([
        Answer::Status {
            status: 400,
            body: r#"{"code":"invalid_argument","message":"bad profile"}"#.into(),
            retry_after: None,
        },
        Answer::Status {
            status: 400,
            body: "<html>bad request</html>".into(),
            retry_after: None,
        },
    ]);
    let env = Env::new();
    env.load(&config(&endpoint(&server.url, ""))).await;
    let recv = env.receiver(ID);
    recv.append(labels("svc"), sample(1)).await.unwrap();
    env.wait_stat(ID, 0, "dropped_profiles", 1, Duration::from_secs(5))
        .await;
    recv.append(labels("svc"), sample(2)).await.unwrap();
    env.wait_stat(ID, 0, "dropped_profiles", 2, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.requests(), 2, "no retries");
    assert_eq!(env.endpoint_stat(ID, 0, "retries"), 0);
    let health = env.c.component(ID).unwrap().health;
    assert!(health.message.contains("bad request"), "{health:?}");
    assert!(env.exposition().contains(
        "pyroscope_write_dropped_bytes_total{component_id=\"pyroscope.write.default\",endpoint=\""
    ));
    env.c.shutdown().await;
}

#[tokio::test]
async fn stops_after_max_backoff_retries() {
    let server = Server::start().await;
    server.set_default(Answer::Status {
        status: 503,
        body: r#"{"code":"unavailable","message":"down"}"#.into(),
        retry_after: None,
    });
    let env = Env::new();
    env.load(&config(&endpoint(&server.url, "max_backoff_retries = 2")))
        .await;
    env.receiver(ID)
        .append(labels("svc"), sample(1))
        .await
        .unwrap();
    env.wait_stat(ID, 0, "dropped_profiles", 1, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.requests(), 3, "first attempt + 2 retries");
    assert_eq!(env.endpoint_stat(ID, 0, "retries"), 2);
    env.c.shutdown().await;
}

#[tokio::test]
async fn a_dead_endpoint_blocks_neither_the_healthy_one_nor_the_sender() {
    let healthy = Server::start().await;
    let hanging = Server::start().await;
    hanging.set_default(Answer::Hang);
    let env = Env::new();
    env.load(&config(&format!(
        "{}{}{}",
        endpoint(&dead_url(), "name = \"dead\"\n    max_backoff_retries = 0\n    queue_max_profiles = 50"),
        endpoint(&hanging.url, "name = \"hang\"\n    queue_max_profiles = 50\n    parallelism = 2\n    remote_timeout = \"30s\""),
        endpoint(&healthy.url, "name = \"ok\""),
    )))
    .await;
    let recv = env.receiver(ID);
    let started = Instant::now();
    for i in 0..200u32 {
        recv.append(labels("svc"), sample(i as u8)).await.unwrap();
    }
    // 200 appends did not wait for the dead endpoints.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    healthy.wait_profiles(200, Duration::from_secs(10)).await;
    // The bounded queues dropped the excess, and counted it.
    let dead_dropped = env.endpoint_stat(ID, 0, "dropped_profiles");
    let hang_dropped = env.endpoint_stat(ID, 1, "dropped_profiles");
    assert!(dead_dropped >= 140, "{dead_dropped}");
    assert!(hang_dropped >= 140, "{hang_dropped}");
    assert!(env.endpoint_stat(ID, 0, "queued_profiles") <= 50);
    assert!(env.endpoint_stat(ID, 1, "queued_profiles") <= 50);
    assert_eq!(env.endpoint_stat(ID, 2, "dropped_profiles"), 0);
    let health = env.c.component(ID).unwrap().health;
    assert!(
        health.message.contains("endpoint dead: cannot connect"),
        "{health:?}"
    );
    env.c.shutdown().await;
}

#[tokio::test]
async fn a_hanging_server_times_out_and_is_retried() {
    let server = Server::start().await;
    server.script([Answer::Hang]);
    let env = Env::new();
    env.load(&config(&endpoint(
        &server.url,
        "remote_timeout = \"200ms\"",
    )))
    .await;
    env.receiver(ID)
        .append(labels("svc"), sample(1))
        .await
        .unwrap();
    server.wait_profiles(2, Duration::from_secs(10)).await;
    env.wait_stat(ID, 0, "sent_profiles", 1, Duration::from_secs(5))
        .await;
    assert_eq!(env.endpoint_stat(ID, 0, "retries"), 1);
    env.c.shutdown().await;
}

#[tokio::test]
async fn all_queues_full_is_retryable_for_the_sender() {
    let env = Env::new();
    env.load(&config(&format!(
        "  endpoint {{\n    url = \"{}\"\n    queue_max_profiles = 1\n    parallelism = 1\n    max_backoff_retries = 0\n    min_backoff_period = \"10s\"\n    max_backoff_period = \"10s\"\n  }}\n",
        dead_url()
    )))
    .await;
    let recv = env.receiver(ID);
    // One is taken by the worker, one waits in the queue; then it is full.
    let mut errors = 0;
    for i in 0..5 {
        if let Err(e) = recv.append(labels("svc"), sample(i)).await {
            assert!(e.is_retryable(), "{e}");
            assert!(e.to_string().contains("queue full"), "{e}");
            errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(errors >= 3, "{errors}");
    assert_eq!(env.endpoint_stat(ID, 0, "dropped_profiles"), errors);
    env.c.shutdown().await;
}

#[tokio::test]
async fn updating_endpoints_keeps_the_receiver_and_the_queued_profiles() {
    let live = Server::start().await;
    let env = Env::new();
    let dead = dead_url();
    let slow = "min_backoff_period = \"30s\"\n    max_backoff_period = \"30s\"";
    env.load(&format!(
        "pyroscope.write \"default\" {{\n  endpoint {{\n    name = \"main\"\n    url = \"{dead}\"\n    {slow}\n  }}\n}}\n"
    ))
    .await;
    let recv = env.receiver(ID);
    for i in 0..10 {
        recv.append(labels("svc"), sample(i)).await.unwrap();
    }
    // Everything is stuck behind the dead URL (one batch waiting for its retry, the rest queued).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.endpoint_stat(ID, 0, "sent_profiles"), 0);

    env.load(&format!(
        "pyroscope.write \"default\" {{\n  endpoint {{\n    name = \"main\"\n    url = \"{}\"\n    {slow}\n  }}\n  endpoint {{\n    name = \"second\"\n    url = \"{}\"\n  }}\n}}\n",
        live.url, live.url
    ))
    .await;
    assert_eq!(env.receiver(ID), recv, "the receiver is the same capsule");
    // The ten queued for "main" arrive at its new URL; new profiles reach both endpoints at once.
    live.wait_profiles(10, Duration::from_secs(10)).await;
    recv.append(labels("svc"), sample(99)).await.unwrap();
    live.wait_profiles(12, Duration::from_secs(10)).await;
    env.wait_stat(ID, 0, "sent_profiles", 11, Duration::from_secs(5))
        .await;
    env.wait_stat(ID, 1, "sent_profiles", 1, Duration::from_secs(5))
        .await;
    env.c.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_the_queue() {
    let server = Server::start().await;
    server.set_default(Answer::Slow(Duration::from_millis(20)));
    let env = Env::new();
    env.load(&config(&endpoint(&server.url, "parallelism = 1")))
        .await;
    let recv = env.receiver(ID);
    for i in 0..100u8 {
        recv.append(labels(&format!("svc{i}")), sample(i))
            .await
            .unwrap();
    }
    assert!(server.profiles() < 100);
    env.c.shutdown().await;
    assert_eq!(
        server.profiles(),
        100,
        "queued profiles were flushed at shutdown"
    );
    let err = recv.append(labels("svc"), sample(1)).await.unwrap_err();
    assert!(err.to_string().contains("shutting down"), "{err}");
}
