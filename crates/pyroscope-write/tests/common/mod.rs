//! A real Connect Push server on 127.0.0.1:0 and a controller running pyroscope.write.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flow::{Controller, ControllerOptions, MetricsHub, Sources};
use prost::Message;
use pyroscope::push::PushRequest;
use pyroscope::{Labels, RawSample, Receiver};
use river::types::TypedCapsule;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Ok,
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// Never answers.
    Hang,
    /// Answers OK after a delay.
    Slow(Duration),
}

pub struct Received {
    pub headers: HeaderMap,
    pub request: PushRequest,
    pub at: Instant,
}

#[derive(Default)]
pub struct ServerState {
    pub script: Mutex<VecDeque<Answer>>,
    pub default: Mutex<Option<Answer>>,
    pub received: Mutex<Vec<Received>>,
}

pub struct Server {
    pub url: String,
    pub state: Arc<ServerState>,
    _task: tokio::task::JoinHandle<()>,
}

async fn push(State(st): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match PushRequest::decode(&body[..]) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    st.received.lock().unwrap().push(Received {
        headers,
        request,
        at: Instant::now(),
    });
    let answer = st
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| st.default.lock().unwrap().clone())
        .unwrap_or(Answer::Ok);
    match answer {
        Answer::Ok => ok(),
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            ok()
        }
        Answer::Hang => {
            std::future::pending::<()>().await;
            ok()
        }
        Answer::Status {
            status,
            body,
            retry_after,
        } => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
    }
}

fn ok() -> Response {
    ([("content-type", "application/proto")], Vec::<u8>::new()).into_response()
}

impl Server {
    pub async fn start() -> Server {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new()
            .route("/push.v1.PusherService/Push", axum::routing::post(push))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            url: format!("http://{addr}"),
            state,
            _task: task,
        }
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    pub fn set_default(&self, a: Answer) {
        *self.state.default.lock().unwrap() = Some(a);
    }

    pub fn requests(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Profiles received, over all requests.
    pub fn profiles(&self) -> usize {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.request.series)
            .map(|s| s.samples.len())
            .sum()
    }

    pub async fn wait_profiles(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.profiles() < n {
            assert!(
                Instant::now() < deadline,
                "server got {} profiles, expected {n}",
                self.profiles()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A port nobody listens on.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub c: Controller,
    pub metrics: MetricsHub,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = flow::Registry::new();
        pyroscope_write::register(&mut registry).unwrap();
        let metrics = MetricsHub::new();
        let options = ControllerOptions {
            storage_path: dir.path().join("data"),
            metrics: metrics.clone(),
            ..ControllerOptions::default()
        };
        Env {
            c: Controller::new(Arc::new(registry), options),
            dir,
            metrics,
        }
    }

    pub async fn load(&self, config: &str) {
        let sources = Sources::parse([("main.river", config)]).expect("config parses");
        let report = self.c.load(sources).await.expect("config is accepted");
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    }

    pub fn receiver(&self, id: &str) -> Receiver {
        let exports = self.c.exports(id).expect("exports");
        let river::Value::Object(obj) = exports else {
            panic!("exports are not an object: {exports:?}");
        };
        let cap: TypedCapsule<Receiver> =
            river::decode::decode_value(obj.get("receiver").expect("receiver")).unwrap();
        cap.get().clone()
    }

    /// A number in the debug info of endpoint `i`.
    pub fn endpoint_stat(&self, id: &str, i: usize, key: &str) -> u64 {
        let info = self.c.component(id).unwrap().debug_info;
        let eps = &field(&info, "endpoints")["value"];
        let ep = &eps[i];
        field(ep, key)["value"]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} not a number in {ep}"))
    }

    pub fn exposition(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    pub async fn wait_stat(&self, id: &str, i: usize, key: &str, want: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.endpoint_stat(id, i, key);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{key} is {got}, expected {want}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn field<'a>(rj: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    rj["value"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["key"] == key))
        .map(|f| &f["value"])
        .unwrap_or_else(|| panic!("no field {key} in {rj}"))
}

pub fn labels(service: &str) -> Labels {
    Labels::from_pairs([
        ("service_name", service),
        ("__name__", "process_cpu"),
        ("__address__", "10.0.0.1:6060"),
        ("job", "j"),
        ("env", "dev"),
    ])
}

pub fn sample(n: u8) -> Vec<RawSample> {
    vec![RawSample::new(vec![0x1f, 0x8b, n])]
}
