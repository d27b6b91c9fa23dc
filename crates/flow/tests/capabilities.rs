//! The optional capabilities and services a component gets: metrics, HTTP, cluster membership.

use async_trait::async_trait;
use flow::{
    Cluster, ComponentError, Context, Controller, ControllerOptions, HttpRequest, HttpResponse,
    Peer, PeerState, Registry, Sources, TypedComponent,
};
use prometheus_client::metrics::counter::Counter;
use river::decode::Validate;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Counts `hits` in a metric, answers HTTP with its ID and the path, and records cluster changes.
struct Service {
    ctx: Context,
    hits: Counter,
    cluster_changes: AtomicU64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
struct ServiceArgs {
    hits: u64,
}
impl Validate for ServiceArgs {}

#[async_trait]
impl TypedComponent for Service {
    const NAME: &'static str = "test.service";
    type Arguments = ServiceArgs;

    fn build(ctx: Context, args: ServiceArgs) -> Result<Self, ComponentError> {
        let hits: Counter = ctx
            .metrics
            .metric("test_service_hits_total", "Hits.", Counter::default)
            .map_err(|e| ComponentError::new(e.to_string()))?;
        hits.inc_by(args.hits);
        Ok(Service {
            ctx,
            hits,
            cluster_changes: AtomicU64::new(0),
        })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, args: ServiceArgs) -> Result<(), ComponentError> {
        self.hits.inc_by(args.hits);
        Ok(())
    }

    async fn cluster_changed(&self) {
        self.cluster_changes.fetch_add(1, Ordering::SeqCst);
        // The hook sees the same cluster service the controller was given.
        let owned = self.ctx.cluster.owns(b"anything");
        self.hits.inc_by(if owned { 100 } else { 1000 });
    }

    async fn handle_http(&self, request: HttpRequest) -> Option<HttpResponse> {
        let body = format!("{} {}", self.ctx.id, request.uri().path());
        Some(http::Response::new(bytes::Bytes::from(body)))
    }
}

/// A cluster of which this node owns nothing once `shrunk` is set.
#[derive(Debug, Default)]
struct TestCluster {
    shrunk: AtomicBool,
}

impl Cluster for TestCluster {
    fn enabled(&self) -> bool {
        true
    }
    fn owns(&self, _key: &[u8]) -> bool {
        !self.shrunk.load(Ordering::SeqCst)
    }
    fn peers(&self) -> Vec<Peer> {
        vec![Peer {
            name: "a".into(),
            addr: "127.0.0.1:1".into(),
            is_self: true,
            state: PeerState::Participant,
        }]
    }
}

fn controller(cluster: Arc<TestCluster>) -> Controller {
    let mut registry = Registry::new();
    registry.register::<Service>().unwrap();
    let options = ControllerOptions {
        storage_path: std::env::temp_dir().join("rill-flow-capabilities"),
        cluster,
        ..ControllerOptions::default()
    };
    Controller::new(Arc::new(registry), options)
}

fn sources(text: &str) -> Sources {
    Sources::parse([("main.river", text)]).unwrap()
}

fn exposition(c: &Controller) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    c.register_metrics(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn component_metrics_carry_the_id_and_leave_with_the_component() {
    let c = controller(Arc::default());
    c.load(sources(
        "test.service \"a\" {\n  hits = 2\n}\ntest.service \"b\" {\n  hits = 5\n}\n",
    ))
    .await
    .unwrap();
    let text = exposition(&c);
    assert_eq!(
        text.matches("# TYPE test_service_hits counter").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("test_service_hits_total{component_id=\"test.service.a\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("test_service_hits_total{component_id=\"test.service.b\"} 5"),
        "{text}"
    );

    c.load(sources("test.service \"b\" {\n  hits = 5\n}\n"))
        .await
        .unwrap();
    let text = exposition(&c);
    assert!(!text.contains("test.service.a"), "{text}");
    assert!(
        text.contains("component_id=\"test.service.b\"} 5"),
        "{text}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn http_requests_reach_the_named_component_only() {
    let c = controller(Arc::default());
    c.load(sources("test.service \"a\" {\n  hits = 0\n}\n"))
        .await
        .unwrap();
    let request = http::Request::builder()
        .uri("/status")
        .body(bytes::Bytes::new())
        .unwrap();
    let response = c.handle_http("test.service.a", request).await.unwrap();
    assert_eq!(response.body().as_ref(), b"test.service.a /status");
    let request = http::Request::new(bytes::Bytes::new());
    assert!(c.handle_http("test.service.zzz", request).await.is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn cluster_changes_reach_every_component_with_the_shared_service() {
    let cluster = Arc::new(TestCluster::default());
    let c = controller(cluster.clone());
    c.load(sources(
        "test.service \"a\" {\n  hits = 0\n}\ntest.service \"b\" {\n  hits = 0\n}\n",
    ))
    .await
    .unwrap();
    assert!(c.cluster().enabled());
    c.cluster_changed();
    wait_for("the first change", || {
        let t = exposition(&c);
        t.contains("component_id=\"test.service.a\"} 100")
            && t.contains("component_id=\"test.service.b\"} 100")
    })
    .await;
    cluster.shrunk.store(true, Ordering::SeqCst);
    c.cluster_changed();
    wait_for("the second change", || {
        exposition(&c).contains("component_id=\"test.service.a\"} 1100")
    })
    .await;
    c.shutdown().await;
}
