//! Component names and their rules.

use std::fmt;

/// A validated component name such as `pyroscope.scrape`: dot-separated segments, each matching
/// `[A-Za-z][0-9A-Za-z_]*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentName(String);

/// Why a component name was refused at registration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A segment is empty or has a character outside `[A-Za-z][0-9A-Za-z_]*`.
    #[error("invalid component name {0:?}: segments must match [A-Za-z][0-9A-Za-z_]*")]
    Invalid(String),
    /// The same name was registered twice.
    #[error("component {0:?} is registered twice")]
    Duplicate(String),
    /// One name is a dotted prefix of another (`a.b` and `a.b.c`), which would make references ambiguous.
    #[error("component {0:?} conflicts with {1:?}: one name is a prefix of the other")]
    PrefixConflict(String, String),
}

impl ComponentName {
    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let valid = name.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if valid {
            Ok(ComponentName(name.to_string()))
        } else {
            Err(NameError::Invalid(name.to_string()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is a dotted prefix of `other` or the other way round.
    pub fn conflicts_with(&self, other: &ComponentName) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        let prefix = |short: &str, long: &str| {
            long.len() > short.len()
                && long.starts_with(short)
                && long.as_bytes()[short.len()] == b'.'
        };
        prefix(a, b) || prefix(b, a)
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(ComponentName::new("pyroscope.scrape").is_ok());
        assert!(ComponentName::new("local.file").is_ok());
        for bad in ["", "a..b", "1a", "a.b-c", ".a", "a."] {
            assert_eq!(
                ComponentName::new(bad),
                Err(NameError::Invalid(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_conflicts_are_detected() {
        let n = |s| ComponentName::new(s).unwrap();
        assert!(n("a.b").conflicts_with(&n("a.b.c")));
        assert!(n("a.b.c").conflicts_with(&n("a.b")));
        assert!(!n("a.b").conflicts_with(&n("a.bc")));
        assert!(!n("a.b").conflicts_with(&n("a.b")));
    }

    #[test]
    fn suggestions_find_typos_only() {
        let names = ["pyroscope.scrape", "pyroscope.write", "local.file"];
        assert_eq!(suggest("pyroscope.scrap", names), Some("pyroscope.scrape"));
        assert_eq!(suggest("pyroscope.wirte", names), Some("pyroscope.write"));
        assert_eq!(suggest("prometheus.remote_write", names), None);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Typed registration
// ---------------------------------------------------------------------------------------------------------

use crate::component::{Component, ComponentError, Context, Health, HttpRequest, HttpResponse};
use async_trait::async_trait;
use river::decode::Validate;
use river::eval::Scope;
use river::{Diagnostics, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a component author implements. The registry adapts it to the runtime's [`Component`].
///
/// `Arguments` decode from the component's block (see [`river::decode`]); they are compared with the
/// previous ones so that `update` is only called when something changed, and serialized for the UI
/// (secrets redacted by their own `Serialize`).
#[async_trait]
pub trait TypedComponent: Sized + Send + Sync + 'static {
    /// The River name, e.g. `local.file`.
    const NAME: &'static str;
    /// The decoded block.
    type Arguments: DeserializeOwned
        + Validate
        + Serialize
        + PartialEq
        + Clone
        + Send
        + Sync
        + 'static;

    /// Builds the component from its first valid arguments. Publish initial exports here.
    fn build(ctx: Context, args: Self::Arguments) -> Result<Self, ComponentError>;

    /// Runs until `cancel` fires.
    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError>;

    /// Applies changed arguments while `run` goes on.
    async fn update(&self, args: Self::Arguments) -> Result<(), ComponentError>;

    /// The component's own health report.
    fn health(&self) -> Option<Health> {
        None
    }

    /// Debug information for the UI.
    fn debug_info(&self) -> Option<Value> {
        None
    }

    /// Called when cluster membership changes.
    async fn cluster_changed(&self) {}

    /// Serves HTTP under `/api/v0/component/<id>/` (see [`Component::handle_http`]).
    async fn handle_http(&self, _request: HttpRequest) -> Option<HttpResponse> {
        None
    }
}

/// Decoded arguments, type-erased.
pub trait DynArguments: Any + Send + Sync {
    /// Whether these equal `other` (false when the types differ).
    fn same_as(&self, other: &dyn DynArguments) -> bool;
    /// The arguments as a riverjson body for the UI (secrets redacted).
    fn to_riverjson(&self) -> serde_json::Value;
    /// Upcast for downcasting.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + PartialEq + Send + Sync + 'static> DynArguments for T {
    fn same_as(&self, other: &dyn DynArguments) -> bool {
        other
            .as_any()
            .downcast_ref::<T>()
            .is_some_and(|o| o == self)
    }
    fn to_riverjson(&self) -> serde_json::Value {
        river::riverjson::marshal_body(self).unwrap_or(serde_json::Value::Null)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Shared, type-erased arguments.
pub type Arguments = Arc<dyn DynArguments>;

type DecodeFn = dyn Fn(&river::ast::Block, &river::ast::File, &Scope) -> Result<Arguments, Diagnostics>
    + Send
    + Sync;
type BuildFn = dyn Fn(Context, Arc<dyn Any + Send + Sync>) -> Result<Arc<dyn Component>, ComponentError>
    + Send
    + Sync;

/// A registered component type.
pub struct Registration {
    name: ComponentName,
    decode: Box<DecodeFn>,
    build: Box<BuildFn>,
}

impl Registration {
    /// The registration of `C`.
    pub fn of<C: TypedComponent>() -> Result<Self, NameError> {
        Ok(Registration {
            name: ComponentName::new(C::NAME)?,
            decode: Box::new(|block, file, scope| {
                let args: C::Arguments =
                    river::decode::decode_block_body_validated(block, file, scope)?;
                Ok(Arc::new(args) as Arguments)
            }),
            build: Box::new(|ctx, args| {
                let args = downcast_args::<C>(args)?;
                Ok(Arc::new(Adapter(C::build(ctx, args)?)) as Arc<dyn Component>)
            }),
        })
    }

    /// The component name.
    pub fn name(&self) -> &ComponentName {
        &self.name
    }

    /// Evaluates and decodes a block of this component (a node of `file`).
    pub fn decode(
        &self,
        block: &river::ast::Block,
        file: &river::ast::File,
        scope: &Scope,
    ) -> Result<Arguments, Diagnostics> {
        (self.decode)(block, file, scope)
    }

    /// Builds an instance from decoded arguments.
    pub fn build(
        &self,
        ctx: Context,
        args: Arguments,
    ) -> Result<Arc<dyn Component>, ComponentError> {
        (self.build)(ctx, args)
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .finish()
    }
}

/// Recovers typed arguments. The runtime keeps the last good arguments to compare with the next ones, so the
/// component gets its own copy unless the runtime's was the last reference.
fn downcast_args<C: TypedComponent>(
    args: Arc<dyn Any + Send + Sync>,
) -> Result<C::Arguments, ComponentError> {
    args.downcast::<C::Arguments>()
        .map(Arc::unwrap_or_clone)
        .map_err(|_| {
            ComponentError::new(format!(
                "internal error: wrong argument type for {}",
                C::NAME
            ))
        })
}

struct Adapter<C>(C);

/// What `async_trait` makes of an `async fn` returning `T`.
type BoxedFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

#[async_trait]
impl<C: TypedComponent> Component for Adapter<C> {
    // `run` and `update` hand out the component's own futures rather than wrapping them in a box of their
    // own: one allocation and one level of polling less for every run and update.
    fn run<'a, 'b>(
        &'a self,
        cancel: CancellationToken,
    ) -> BoxedFuture<'b, Result<(), ComponentError>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.0.run(cancel)
    }

    fn update<'a, 'b>(
        &'a self,
        args: Arc<dyn Any + Send + Sync>,
    ) -> BoxedFuture<'b, Result<(), ComponentError>>
    where
        'a: 'b,
        Self: 'b,
    {
        match downcast_args::<C>(args) {
            Ok(args) => self.0.update(args),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn health(&self) -> Option<Health> {
        self.0.health()
    }

    fn debug_info(&self) -> Option<Value> {
        self.0.debug_info()
    }

    async fn cluster_changed(&self) {
        self.0.cluster_changed().await
    }

    async fn handle_http(&self, request: HttpRequest) -> Option<HttpResponse> {
        self.0.handle_http(request).await
    }
}

/// The set of component types a runtime can build. The binary registers the built-ins; an embedder starts
/// from those and adds its own.
#[derive(Debug, Default)]
pub struct Registry {
    /// Each name's position in `registrations`.
    entries: BTreeMap<String, usize>,
    registrations: Vec<Arc<Registration>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `C`. Registering a name twice, or a name that is a dotted prefix of another, is an error.
    pub fn register<C: TypedComponent>(&mut self) -> Result<&mut Self, NameError> {
        let reg = Registration::of::<C>()?;
        if self.entries.contains_key(reg.name.as_str()) {
            return Err(NameError::Duplicate(reg.name.to_string()));
        }
        if let Some(other) = self
            .registrations
            .iter()
            .find(|r| r.name.conflicts_with(&reg.name))
        {
            return Err(NameError::PrefixConflict(
                reg.name.to_string(),
                other.name.to_string(),
            ));
        }
        self.entries
            .insert(reg.name.to_string(), self.registrations.len());
        self.registrations.push(Arc::new(reg));
        Ok(self)
    }

    /// The registration for a name.
    pub fn get(&self, name: &str) -> Option<&Arc<Registration>> {
        self.position(name).and_then(|i| self.at(i))
    }

    /// Where the registration for `name` is, for [`Registry::at`].
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.entries.get(name).copied()
    }

    /// The registration at `position` (see [`Registry::position`]).
    pub(crate) fn at(&self, position: usize) -> Option<&Arc<Registration>> {
        self.registrations.get(position)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

impl crate::graph::NameCatalog for Registry {
    fn is_component(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
    fn component_names(&self) -> Vec<&str> {
        self.names().collect()
    }
    fn is_stdlib(&self, name: &str) -> bool {
        river::stdlib::is_stdlib_name(name)
    }
}
