//! The web UI: server-rendered pages, no scripts, no build step. `/` lists the components with their health
//! and draws the graph; `/component/{id}` shows one component's health, references both ways, arguments,
//! exports and debug info (secrets are already redacted in what the runtime hands out); `/peers` lists the
//! cluster's nodes.

pub mod graph;
pub mod html;

use super::server::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use flow::{ComponentInfo, HealthState, PeerState};
use html::{escape, path_segment, river_body};
use std::fmt::Write as _;

const STYLE: &str = include_str!("style.css");

/// The UI's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/component/{id}", get(component))
        .route("/peers", get(peers))
        .route("/ui/style.css", get(style))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
        .into_response()
}

fn page(title: &str, root: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Rill</title><link rel=\"stylesheet\" href=\"{root}ui/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"{root}\">Rill</a><nav>\
         <a href=\"{root}\">Components</a><a href=\"{root}peers\">Peers</a>\
         <a href=\"{root}api/v0/web/components\">API</a>\
         <a href=\"{root}metrics\">Metrics</a><a href=\"{root}debug/pprof/\">Profiles</a></nav>\
         <span class=\"version\">v{version}</span></header><main>{body}</main></body></html>\n",
        title = escape(title),
        version = env!("CARGO_PKG_VERSION"),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn badge(state: HealthState) -> String {
    format!("<span class=\"badge {s}\">{s}</span>", s = state.as_str())
}

async fn index(State(s): State<AppState>) -> Response {
    let components = s.controller().components();
    let mut body = String::new();
    body.push_str("<h1>Components</h1>");
    if !s.controller().is_loaded() {
        body.push_str("<p class=\"note\">The config is not loaded yet.</p>");
    }
    // Counts by health, worst first.
    body.push_str("<div class=\"summary\">");
    for state in [
        HealthState::Exited,
        HealthState::Unhealthy,
        HealthState::Unknown,
        HealthState::Healthy,
    ] {
        let n = components
            .iter()
            .filter(|c| c.health.state == state)
            .count();
        let _ = write!(
            body,
            "<div class=\"count {s}\"><b>{n}</b><span>{s}</span></div>",
            s = state.as_str()
        );
    }
    body.push_str("</div>");
    body.push_str("<table class=\"components\"><thead><tr><th>Health</th><th>Component</th><th>Message</th><th>Refers to</th><th>Referenced by</th></tr></thead><tbody>");
    for c in &components {
        let _ = write!(
            body,
            "<tr><td>{badge}</td><td><a href=\"component/{seg}\">{id}</a></td><td class=\"msg\">{msg}</td><td class=\"num\">{to}</td><td class=\"num\">{by}</td></tr>",
            badge = badge(c.health.state),
            seg = escape(&path_segment(&c.id)),
            id = escape(&c.id),
            msg = escape(&c.health.message),
            to = c.references_to.len(),
            by = c.referenced_by.len(),
        );
    }
    if components.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"note\">No components.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str("<h2>Graph</h2>");
    graph_section(&mut body, &components, "component/", None);
    page("Components", "", &body)
}

/// The cluster's nodes as this one sees them (only this node when clustering is off).
async fn peers(State(s): State<AppState>) -> Response {
    let cluster = s.controller().cluster();
    let peers = cluster.peers();
    let mut body = String::from("<h1>Peers</h1>");
    if !cluster.enabled() {
        body.push_str("<p class=\"note\">Clustering is off (<code>--cluster.enabled</code>): this node scrapes every target.</p>");
    }
    body.push_str("<div class=\"summary\">");
    for state in [
        PeerState::Participant,
        PeerState::Viewer,
        PeerState::Terminating,
    ] {
        let n = peers.iter().filter(|p| p.state == state).count();
        let _ = write!(
            body,
            "<div class=\"count {s}\"><b>{n}</b><span>{s}</span></div>",
            s = state.as_str()
        );
    }
    body.push_str("</div>");
    body.push_str("<table class=\"components peers\"><thead><tr><th>Node</th><th>Address</th><th>State</th></tr></thead><tbody>");
    for p in &peers {
        let _ = write!(
            body,
            "<tr><td>{name}{me}</td><td><code>{addr}</code></td><td><span class=\"badge {state}\">{state}</span></td></tr>",
            name = escape(&p.name),
            me = if p.is_self { " <span class=\"note\">(this node)</span>" } else { "" },
            addr = escape(&p.addr),
            state = p.state.as_str(),
        );
    }
    body.push_str("</tbody></table>");
    page("Peers", "", &body)
}

fn graph_section(body: &mut String, nodes: &[ComponentInfo], prefix: &str, selected: Option<&str>) {
    if nodes.len() > graph::MAX_NODES {
        let _ = write!(
            body,
            "<p class=\"note\">{} components: too many to draw.</p>",
            nodes.len()
        );
        return;
    }
    if nodes.is_empty() {
        body.push_str("<p class=\"note\">Nothing to draw.</p>");
        return;
    }
    body.push_str("<div class=\"graph-wrap\">");
    body.push_str(&graph::svg(nodes, prefix, selected));
    body.push_str("</div><p class=\"legend\">An arrow goes from a component to each component that refers to it (reads its exports).</p>");
}

async fn component(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(c) = s.controller().component(&id) else {
        let mut resp = page(
            "Not found",
            "../",
            &format!(
                "<h1>Not found</h1><p>There is no component <code>{}</code>. <a href=\"../\">All components</a></p>",
                escape(&id)
            ),
        );
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"crumbs\"><a href=\"../\">Components</a> / {id}</p>\
         <h1>{id} {badge}</h1>\
         <dl class=\"facts\"><dt>Component</dt><dd><code>{name}</code></dd>{label}\
         <dt>Health</dt><dd>{msg}</dd><dt>Since</dt><dd>{since}</dd></dl>",
        id = escape(&c.id),
        badge = badge(c.health.state),
        name = escape(&c.name),
        label = if c.label.is_empty() {
            String::new()
        } else {
            format!("<dt>Label</dt><dd><code>{}</code></dd>", escape(&c.label))
        },
        msg = escape(&c.health.message),
        since = humantime::format_rfc3339_seconds(c.health.updated),
    );
    body.push_str("<div class=\"refs\">");
    refs_list(&mut body, "Refers to", &c.references_to);
    refs_list(&mut body, "Referenced by", &c.referenced_by);
    body.push_str("</div>");
    section(&mut body, "Arguments", &c.arguments);
    section(&mut body, "Exports", &super::api::value_as_body(&c.exports));
    section(
        &mut body,
        "Debug info",
        &super::api::value_as_body(&c.debug_info),
    );

    // The neighbourhood: this component and those it touches.
    let all = s.controller().components();
    let near: Vec<ComponentInfo> = all
        .into_iter()
        .filter(|n| {
            n.id == c.id || c.references_to.contains(&n.id) || c.referenced_by.contains(&n.id)
        })
        .map(|mut n| {
            // Only the edges that touch this component.
            if n.id != c.id {
                n.references_to.retain(|r| *r == c.id);
            }
            n
        })
        .collect();
    body.push_str("<h2>Neighbours</h2>");
    graph_section(&mut body, &near, "", Some(&c.id));
    page(&c.id, "../", &body)
}

fn refs_list(body: &mut String, title: &str, ids: &[String]) {
    let _ = write!(body, "<section><h3>{title}</h3>");
    if ids.is_empty() {
        body.push_str("<p class=\"note\">None.</p>");
    } else {
        body.push_str("<ul>");
        for r in ids {
            let _ = write!(
                body,
                "<li><a href=\"{}\">{}</a></li>",
                escape(&path_segment(r)),
                escape(r)
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");
}

fn section(body: &mut String, title: &str, riverjson: &serde_json::Value) {
    let text = river_body(riverjson);
    let _ = write!(body, "<h2>{title}</h2>");
    if text.is_empty() {
        body.push_str("<p class=\"note\">None.</p>");
    } else {
        let _ = write!(body, "<pre class=\"river\">{text}</pre>");
    }
}
