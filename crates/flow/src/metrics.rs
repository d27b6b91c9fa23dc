//! The controller's own metrics (names as in Agent Flow, with Rill's prefix).
//!
//! Register them with [`crate::Controller::register_metrics`] into the registry the program serves on
//! `/metrics`.

use crate::component::HealthState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Handles to the controller's metrics; cheap to clone (each metric is shared).
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    /// 1 while the controller is evaluating nodes.
    pub evaluating: Gauge,
    /// Time to evaluate one node (decode its arguments), in seconds.
    pub evaluation_seconds: Histogram,
    /// Nodes waiting to be re-evaluated.
    pub queue_size: Gauge,
    /// 1 if the last load was accepted, 0 if it was rejected.
    pub last_load_successful: Gauge,
    /// Rejected loads.
    pub load_failures: Counter,
    /// When the last accepted load finished (Unix seconds).
    pub last_load_success_timestamp: Gauge<f64, AtomicU64>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            evaluating: Gauge::default(),
            evaluation_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 12)),
            queue_size: Gauge::default(),
            last_load_successful: Gauge::default(),
            load_failures: Counter::default(),
            last_load_success_timestamp: Gauge::default(),
        }
    }
}

impl ControllerMetrics {
    /// Registers every metric, plus `collector` for the per-health component counts.
    pub(crate) fn register(
        &self,
        registry: &mut prometheus_client::registry::Registry,
        health: HealthCounts,
    ) {
        registry.register(
            "rill_component_controller_evaluating",
            "Whether the controller is evaluating components",
            self.evaluating.clone(),
        );
        registry.register(
            "rill_component_evaluation_seconds",
            "Time spent evaluating one component's arguments",
            self.evaluation_seconds.clone(),
        );
        registry.register(
            "rill_component_evaluation_queue_size",
            "Components waiting to be re-evaluated",
            self.queue_size.clone(),
        );
        registry.register(
            "rill_config_last_load_successful",
            "Whether the last configuration load was accepted",
            self.last_load_successful.clone(),
        );
        registry.register(
            "rill_config_load_failures",
            "Configuration loads that were rejected",
            self.load_failures.clone(),
        );
        registry.register(
            "rill_config_last_load_success_timestamp_seconds",
            "When the last accepted configuration load finished",
            self.last_load_success_timestamp.clone(),
        );
        registry.register_collector(Box::new(health));
    }
}

/// Computes `rill_component_controller_running_components{health_type}` at scrape time.
pub(crate) struct HealthCounts(pub(crate) Arc<dyn Fn() -> [(HealthState, i64); 4] + Send + Sync>);

impl std::fmt::Debug for HealthCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthCounts")
    }
}

impl Collector for HealthCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "rill_component_controller_running_components",
            "Components by health",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, count) in (self.0)() {
            let labels = [("health_type", state.as_str())];
            let gauge = ConstGauge::new(count);
            gauge.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
