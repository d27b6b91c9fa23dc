//! The component contract: what a component implements and what the runtime gives it.

use async_trait::async_trait;
use river::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// An error a component reports from `build`, `run` or `update`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        ComponentError(msg.into())
    }
}

/// Health states, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Working as intended.
    Healthy,
    /// Not known yet.
    Unknown,
    /// Not working as intended.
    Unhealthy,
    /// Its run loop ended.
    Exited,
}

impl HealthState {
    /// The name used in the API and UI.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Unknown => "unknown",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Exited => "exited",
        }
    }
}

/// A health report: state, message and when it was last set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The state.
    pub state: HealthState,
    /// Why, for people.
    pub message: String,
    /// When the state was set.
    pub updated: SystemTime,
}

impl Health {
    /// A report stamped now.
    pub fn new(state: HealthState, message: impl Into<String>) -> Self {
        Self::at(state, message, SystemTime::now())
    }

    /// A report stamped `updated`.
    pub fn at(state: HealthState, message: impl Into<String>, updated: SystemTime) -> Self {
        Health {
            state,
            message: message.into(),
            updated,
        }
    }

    /// The least healthy of several reports; ties go to the newest.
    pub fn worst<'a>(reports: impl IntoIterator<Item = &'a Health>) -> Option<&'a Health> {
        reports
            .into_iter()
            .max_by(|a, b| a.state.cmp(&b.state).then(a.updated.cmp(&b.updated)))
    }
}

/// A running component instance, type-erased for the runtime.
///
/// Component authors implement [`crate::TypedComponent`] instead; the registry adapts it to this trait.
#[async_trait]
pub trait Component: Send + Sync + 'static {
    /// Runs until `cancel` fires. Returning early (with or without an error) marks the component exited and
    /// the runtime restarts it with backoff.
    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError>;

    /// Applies new arguments (already known to differ from the current ones). Called concurrently with `run`.
    async fn update(
        &self,
        args: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<(), ComponentError>;

    /// The component's own health report, if it keeps one.
    fn health(&self) -> Option<Health> {
        None
    }

    /// Debug information for the UI (never referenced by other components).
    fn debug_info(&self) -> Option<Value> {
        None
    }

    /// Called when cluster membership changes.
    async fn cluster_changed(&self) {}

    /// Serves a request under `/api/v0/component/<id>/`; the request's URI path is what follows that prefix
    /// (starting with `/`). `None` means the component serves no HTTP (the server answers 404).
    async fn handle_http(&self, _request: HttpRequest) -> Option<HttpResponse> {
        None
    }
}

/// An HTTP request handed to a component, body fully read.
pub type HttpRequest = http::Request<bytes::Bytes>;
/// A component's HTTP response.
pub type HttpResponse = http::Response<bytes::Bytes>;

/// What the runtime hands a component when it builds it.
#[derive(Clone)]
pub struct Context {
    /// The component's ID, e.g. `pyroscope.scrape.default`.
    pub id: ComponentId,
    /// Where every component's data directory is (`storage.path`): [`Context::data_dir`] is made from it
    /// when asked for, so that thousands of components do not each keep a copy of the path.
    pub(crate) storage: Arc<Path>,
    /// A tracing span carrying the ID; enter it (or instrument futures with it) for structured logs.
    pub span: tracing::Span,
    /// Publishes the component's exports.
    pub exports: crate::controller::ExportsHandle,
    /// Registers the component's metrics; every series gets a `component_id` label.
    pub metrics: crate::component_metrics::ComponentMetrics,
    /// Cluster membership and ownership ([`crate::cluster::Standalone`] when not clustered).
    pub cluster: std::sync::Arc<dyn crate::cluster::Cluster>,
}

impl Context {
    /// A private directory for the component's state: `<storage.path>/<id>` (created on first use by the
    /// component).
    pub fn data_dir(&self) -> PathBuf {
        data_dir(&self.storage, &self.id)
    }
}

/// `<storage>/<id>`, like `storage.join(id)` (an ID is never absolute) without parsing the path again.
pub(crate) fn data_dir(storage: &Path, id: &str) -> PathBuf {
    let base = storage.as_os_str();
    let mut dir = std::ffi::OsString::with_capacity(base.len() + 1 + id.len());
    dir.push(base);
    let ends_with_separator = base
        .as_encoded_bytes()
        .last()
        .is_some_and(|&b| std::path::is_separator(b as char));
    if !base.is_empty() && !ends_with_separator {
        dir.push(std::path::MAIN_SEPARATOR_STR);
    }
    dir.push(id);
    PathBuf::from(dir)
}

/// A component's ID, such as `pyroscope.scrape.default`: shared with the runtime's own copy rather than
/// copied for every use (a load of thousands of components names each in its context and in its report).
/// It reads as a `str` and compares with strings.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId(Arc<str>);

impl ComponentId {
    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string itself.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl std::ops::Deref for ComponentId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ComponentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ComponentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ComponentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<Arc<str>> for ComponentId {
    fn from(id: Arc<str>) -> Self {
        ComponentId(id)
    }
}

impl From<&str> for ComponentId {
    fn from(id: &str) -> Self {
        ComponentId(id.into())
    }
}

impl From<String> for ComponentId {
    fn from(id: String) -> Self {
        ComponentId(id.into())
    }
}

impl From<ComponentId> for String {
    fn from(id: ComponentId) -> Self {
        String::from(&*id.0)
    }
}

impl PartialEq<str> for ComponentId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for ComponentId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for ComponentId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<ComponentId> for str {
    fn eq(&self, other: &ComponentId) -> bool {
        *self == *other.0
    }
}

impl PartialEq<ComponentId> for &str {
    fn eq(&self, other: &ComponentId) -> bool {
        **self == *other.0
    }
}

impl PartialEq<ComponentId> for String {
    fn eq(&self, other: &ComponentId) -> bool {
        **self == *other.0
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::ComponentId;
    use std::collections::BTreeSet;

    #[test]
    fn a_component_id_reads_compares_and_prints_as_its_string() {
        let id = ComponentId::from("pyroscope.scrape.default");
        assert_eq!(id, "pyroscope.scrape.default");
        assert_eq!(id, "pyroscope.scrape.default".to_string());
        assert_eq!("pyroscope.scrape.default", id);
        assert_ne!(id, "pyroscope.scrape.other");
        assert_eq!(id.len(), "pyroscope.scrape.default".len());
        assert_eq!(id.to_string(), "pyroscope.scrape.default");
        assert_eq!(format!("{id:?}"), "\"pyroscope.scrape.default\"");
        assert_eq!(String::from(id.clone()), "pyroscope.scrape.default");
        // A clone shares the string rather than copying it.
        assert!(std::sync::Arc::ptr_eq(id.as_arc(), id.clone().as_arc()));
        // Looked up by `&str` in sets and maps keyed by IDs.
        let set: BTreeSet<ComponentId> = [id.clone()].into();
        assert!(set.contains("pyroscope.scrape.default"));
        assert_eq!(vec![id], ["pyroscope.scrape.default"]);
    }
}
