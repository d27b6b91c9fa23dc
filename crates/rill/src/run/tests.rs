//! The HTTP app driven without sockets: requests go straight into [`super::server::router`].

use super::server::{router, AppState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use flow::{
    ComponentError, Context, ControllerOptions, HealthState, HttpRequest, HttpResponse,
    TypedComponent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A component that serves HTTP: it echoes the method, path, query and body it was handed.
struct Echo;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
struct EchoArgs {
    greeting: String,
}

impl river::decode::Validate for EchoArgs {}

#[async_trait::async_trait]
impl TypedComponent for Echo {
    const NAME: &'static str = "test.echo";
    type Arguments = EchoArgs;

    fn build(_ctx: Context, _args: EchoArgs) -> Result<Self, ComponentError> {
        Ok(Echo)
    }
    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }
    async fn update(&self, _args: EchoArgs) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn handle_http(&self, request: HttpRequest) -> Option<HttpResponse> {
        let body = format!(
            "{} {} {}",
            request.method(),
            request.uri(),
            String::from_utf8_lossy(request.body())
        );
        Some(http::Response::new(bytes::Bytes::from(body)))
    }
}

struct App {
    state: AppState,
    app: Router,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn app(config: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.river");
    std::fs::write(&path, config).unwrap();
    let mut registry = flow::Registry::new();
    local_file::register(&mut registry).unwrap();
    registry.register::<Echo>().unwrap();
    let options = ControllerOptions {
        storage_path: dir.path().join("data"),
        ..ControllerOptions::default()
    };
    let state = AppState::with_parts(Arc::new(registry), options, path.clone(), |_| {});
    App {
        app: router(state.clone()),
        state,
        config: path,
        _dir: dir,
    }
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const ECHO: &str = "test.echo \"a\" {\n\tgreeting = \"hi\"\n}\n";

#[tokio::test]
async fn ready_only_after_the_first_load() {
    let a = app(ECHO);
    let (status, body) = get(&a.app, "/-/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    a.state.reloader().reload().await.unwrap();
    assert_eq!(
        get(&a.app, "/-/ready").await,
        (StatusCode::OK, "ready\n".into())
    );
    assert_eq!(
        get(&a.app, "/-/healthy").await,
        (StatusCode::OK, "healthy\n".into())
    );
}

#[tokio::test]
async fn healthy_lists_unhealthy_components() {
    let a = app("local.file \"gone\" {\n\tfilename = \"/nonexistent/rill-test\"\n}\n");
    a.state.reloader().reload().await.unwrap();
    let (status, body) = get(&a.app, "/-/healthy").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.starts_with("unhealthy components:\nlocal.file.gone (unhealthy): "),
        "{body}"
    );
}

#[tokio::test]
async fn reload_accepts_good_and_rejects_bad_configs_with_positions() {
    let a = app(ECHO);
    a.state.reloader().reload().await.unwrap();
    write(
        &a.config,
        &format!("{ECHO}\ntest.echo \"b\" {{\n\tgreeting = \"yo\"\n}}\n"),
    );
    let (status, body) = send(
        &a.app,
        Request::post("/-/reload").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "config reloaded\n")
    );
    assert_eq!(a.state.controller().components().len(), 2);

    write(&a.config, "test.echo \"a\" {\n\tgreeting = \n}\n");
    let (status, body) = get(&a.app, "/-/reload").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let name = a.config.display().to_string();
    assert_eq!(body, format!("{name}:3:1: expected expression, got }}\n"));
    // The running graph is unchanged.
    let ids: Vec<String> = a
        .state
        .controller()
        .components()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["test.echo.a", "test.echo.b"]);

    write(&a.config, "test.echo \"a\" {\n\tgreeting = nope.x.y\n}\n");
    let (status, body) = get(&a.app, "/-/reload").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains(":2:13: component \"nope.x.y\" does not exist"),
        "{body}"
    );
}

#[tokio::test]
async fn reload_that_cannot_apply_a_component_says_so_and_keeps_its_last_good_arguments() {
    let a = app(ECHO);
    a.state.reloader().reload().await.unwrap();
    // The graph is valid, but `a`'s new arguments are not (an array where a string goes); `b` is new and good.
    write(
        &a.config,
        "test.echo \"a\" {\n\tgreeting = [1]\n}\n\ntest.echo \"b\" {\n\tgreeting = \"yo\"\n}\n",
    );
    let (status, body) = get(&a.app, "/-/reload").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let name = a.config.display().to_string();
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("config reloaded with 1 problem (those components are unhealthy and keep their last good arguments, if any):")
    );
    let problem = lines.next().unwrap_or_default();
    assert!(problem.starts_with(&format!("{name}:2:13: ")), "{body}");
    assert_eq!(lines.next(), None, "{body}");
    let components = a.state.controller().components();
    let ids: Vec<&str> = components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["test.echo.a", "test.echo.b"]);
    // `a` runs on with its last good arguments, marked unhealthy; `b` started.
    assert_eq!(components[0].health.state, HealthState::Unhealthy);
    assert!(
        components[0]
            .health
            .message
            .starts_with("failed to evaluate config: "),
        "{:?}",
        components[0].health
    );
    assert_eq!(components[1].health.state, HealthState::Healthy);
}

#[tokio::test]
async fn component_api_has_the_reference_shape() {
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("token");
    write(&secret_file, "s3cr3t-rill-token\n");
    let a = app(&format!(
        "{ECHO}\nlocal.file \"f\" {{\n\tfilename = {:?}\n\tis_secret = true\n}}\n\ntest.echo \"c\" {{\n\tgreeting = local.file.f.content\n}}\n",
        secret_file.display().to_string()
    ));
    a.state.reloader().reload().await.unwrap();
    let (status, body) = get(&a.app, "/api/v0/web/components").await;
    assert_eq!(status, StatusCode::OK);
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 3);
    let keys: Vec<&str> = list[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "type",
            "localID",
            "moduleID",
            "label",
            "referencesTo",
            "referencedBy",
            "health"
        ]
    );

    let (status, body) = get(&a.app, "/api/v0/web/components/local.file.f").await;
    assert_eq!(status, StatusCode::OK);
    let c: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(c["name"], "local.file");
    assert_eq!(c["label"], "f");
    assert_eq!(c["localID"], "local.file.f");
    assert_eq!(c["referencedBy"], serde_json::json!(["test.echo.c"]));
    assert_eq!(c["health"]["state"], "healthy");
    assert!(c["health"]["updatedTime"].as_str().unwrap().ends_with('Z'));
    let content = c["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "content")
        .unwrap();
    assert_eq!(content["type"], "attr");
    assert_eq!(
        content["value"],
        serde_json::json!({"type": "capsule", "value": "(secret)"})
    );
    let args = c["arguments"].as_array().unwrap();
    assert!(args
        .iter()
        .any(|a| a["name"] == "filename" && a["type"] == "attr"));
    assert!(c["debugInfo"].is_array());
    // The secret never appears, not even where it was passed on.
    let (_, dependant) = get(&a.app, "/api/v0/web/components/test.echo.c").await;
    let (_, page) = get(&a.app, "/component/test.echo.c").await;
    let (_, source_page) = get(&a.app, "/component/local.file.f").await;
    let (_, index) = get(&a.app, "/").await;
    for text in [&body, &dependant, &page, &source_page, &index] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    let (status, _) = get(&a.app, "/api/v0/web/components/nope.x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&a.app, "/api/v0/web/peers").await;
    assert_eq!(status, StatusCode::OK);
    let peers: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(peers[0]["isSelf"], true);
    assert_eq!(peers[0]["state"], "participant");
}

#[tokio::test]
async fn component_http_is_dispatched_with_the_rest_of_the_path() {
    let a = app(&format!(
        "{ECHO}\nlocal.file \"f\" {{\n\tfilename = \"/etc/hostname\"\n}}\n"
    ));
    a.state.reloader().reload().await.unwrap();
    let (status, body) = send(
        &a.app,
        Request::post("/api/v0/component/test.echo.a/x/y?z=1")
            .body(Body::from("payload"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "POST /x/y?z=1 payload")
    );
    assert_eq!(
        get(&a.app, "/api/v0/component/test.echo.a").await.1,
        "GET / "
    );
    assert_eq!(
        get(&a.app, "/api/v0/component/test.echo.a/").await.1,
        "GET / "
    );
    for missing in [
        "/api/v0/component/local.file.f/x",
        "/api/v0/component/nope.x/y",
    ] {
        assert_eq!(
            get(&a.app, missing).await.0,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

#[tokio::test]
async fn metrics_have_process_controller_and_component_families() {
    let a = app(ECHO);
    a.state.reloader().reload().await.unwrap();
    let (status, body) = get(&a.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "rill_config_last_load_successful 1",
        "rill_component_controller_running_components{health_type=\"healthy\"} 1",
        "rill_build_info{version=",
    ] {
        assert!(body.contains(name), "{name} missing from\n{body}");
    }
}

#[tokio::test]
async fn profile_types_we_cannot_produce_say_why() {
    let a = app(ECHO);
    for (uri, status, text) in [
        (
            "/debug/pprof/goroutine",
            StatusCode::NOT_FOUND,
            "specific to Go",
        ),
        (
            "/debug/pprof/delta_mutex",
            StatusCode::NOT_FOUND,
            "not available",
        ),
        (
            "/debug/pprof/nope",
            StatusCode::NOT_FOUND,
            "unknown profile",
        ),
        (
            "/debug/pprof/profile?seconds=0",
            StatusCode::BAD_REQUEST,
            "seconds must be",
        ),
        (
            "/debug/pprof/profile?seconds=abc",
            StatusCode::BAD_REQUEST,
            "seconds must be",
        ),
    ] {
        let (got, body) = get(&a.app, uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert!(
            body.contains(text) && body.lines().count() == 1,
            "{uri}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cpu_profile_waits_then_is_refused() {
    let a = app(ECHO);
    let first = tokio::spawn({
        let app = a.app.clone();
        async move { get(&app, "/debug/pprof/profile?seconds=4").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&a.app, "/debug/pprof/profile?seconds=1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(started.elapsed() >= super::profiling::CPU_QUEUE_WAIT);
    let (status, _) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn ui_pages_render_components_and_the_graph() {
    let a = app(&format!(
        "{ECHO}\ntest.echo \"b\" {{\n\tgreeting = \"x\"\n}}\n"
    ));
    a.state.reloader().reload().await.unwrap();
    let (status, page) = get(&a.app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<a href=\"component/test.echo.a\">test.echo.a</a>"),
        "{page}"
    );
    assert!(page.contains("<svg class=\"graph\""));
    let (status, page) = get(&a.app, "/component/test.echo.a").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(
            "<span class=\"attr\">greeting</span> = <span class=\"str\">&quot;hi&quot;</span>"
        ),
        "{page}"
    );
    let (status, _) = get(&a.app, "/component/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, css) = get(&a.app, "/ui/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("svg.graph"));
}

#[tokio::test]
async fn peers_page_says_when_clustering_is_off() {
    let a = app(ECHO);
    let (status, page) = get(&a.app, "/peers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Clustering is off"), "{page}");
    assert!(page.contains("(this node)"), "{page}");
    assert!(
        page.contains("<span class=\"badge participant\">participant</span>"),
        "{page}"
    );
}
