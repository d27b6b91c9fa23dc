//! Rill's component runtime.
//!
//! A config (one file, or every `*.river` file of a directory) is turned into a [`graph::Graph`]: one node per
//! top-level block, edges from each reference to the component it names. The controller
//! evaluates nodes in dependency order, builds and updates components, and propagates export changes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod component;
pub mod component_metrics;
pub mod controller;
pub mod graph;
mod lazy_task;
mod logging;
pub mod metrics;
mod pass;
pub mod registry;
mod runner;
pub mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use cluster::{Cluster, Peer, PeerState, Standalone};
pub use component::{
    Component, ComponentError, ComponentId, Context, Health, HealthState, HttpRequest, HttpResponse,
};
pub use component_metrics::{ComponentFamily, ComponentMetrics, MetricsError, MetricsHub};
pub use controller::{
    ComponentInfo, Controller, ControllerOptions, CountersHandle, ExportsHandle, LoadReport,
};
pub use graph::{Adjacency, Graph, Node, NodeKind, Reference};
pub use logging::LoggingConfig;
pub use registry::{ComponentName, NameError};
pub use registry::{Registration, Registry, TypedComponent};
pub use source::{LoadDiagnostic, LoadDiagnostics, SourceError, Sources};
