//! Metrics that components register.
//!
//! Every series a component creates carries a `component_id` label. Metric families are shared by name across
//! components (two `pyroscope.scrape` components both feed one `pyroscope_fanout_latency` family), so the
//! exposition has exactly one `# TYPE` line per name, and a component's series disappear when it is removed.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::TypedMetric;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The labels of a component's series: `component_id` first, then the component's own labels.
pub type SeriesLabels = Vec<(String, String)>;

/// Why a metric could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The name is already registered with another metric type.
    #[error("metric {0:?} is already registered with a different type")]
    TypeConflict(String),
    /// The name is not a valid Prometheus metric name.
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
}

/// How a family makes a new series: a plain function, so that every component registering a name agrees on
/// the family's type (closures would each have their own).
type Ctor<M> = fn() -> M;

/// A family stored type-erased: something that encodes, and can drop the series of one component.
trait ErasedFamily: Send + Sync {
    fn encode(&self, encoder: &mut DescriptorEncoder, name: &str) -> Result<(), std::fmt::Error>;
    fn remove_series(&self, labels: &SeriesLabels);
    fn as_any(&self) -> &dyn Any;
}

struct StoredFamily<M, C> {
    help: String,
    family: Family<SeriesLabels, M, C>,
}

impl<M, C> ErasedFamily for StoredFamily<M, C>
where
    M: EncodeMetric + TypedMetric + Send + Sync + 'static,
    C: MetricConstructor<M> + Clone + Send + Sync + 'static,
{
    fn encode(&self, encoder: &mut DescriptorEncoder, name: &str) -> Result<(), std::fmt::Error> {
        if self.family.is_empty() {
            return Ok(());
        }
        let metric = encoder.encode_descriptor(name, &self.help, None, M::TYPE)?;
        self.family.encode(metric)
    }
    fn remove_series(&self, labels: &SeriesLabels) {
        self.family.remove(labels);
    }
    fn as_any(&self) -> &dyn Any {
        &self.family
    }
}

#[derive(Default)]
struct HubState {
    families: BTreeMap<String, Arc<dyn ErasedFamily>>,
    /// Series created per component, so that they can be removed with it.
    series: BTreeMap<String, Vec<(String, SeriesLabels)>>,
}

/// All component metrics of one runtime. Cheap to clone. Register it once into the process registry with
/// [`MetricsHub::register`].
#[derive(Clone, Default)]
pub struct MetricsHub {
    state: Arc<Mutex<HubState>>,
}

impl std::fmt::Debug for MetricsHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("MetricsHub")
            .field("families", &st.families.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MetricsHub {
    /// An empty hub.
    pub fn new() -> Self {
        MetricsHub::default()
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handle a component with this ID registers its metrics through.
    pub fn for_component(&self, id: &str) -> ComponentMetrics {
        ComponentMetrics {
            hub: self.clone(),
            id: Arc::from(id),
        }
    }

    /// [`MetricsHub::for_component`] sharing the caller's copy of the ID.
    pub(crate) fn for_component_id(&self, id: Arc<str>) -> ComponentMetrics {
        ComponentMetrics {
            hub: self.clone(),
            id,
        }
    }

    /// Removes every series of a component (it was removed from the config).
    pub fn remove_component(&self, id: &str) {
        let mut st = self.lock();
        let Some(series) = st.series.remove(id) else {
            return;
        };
        for (name, labels) in series {
            if let Some(f) = st.families.get(&name) {
                f.remove_series(&labels);
            }
        }
    }

    /// Adds the component metrics to a process registry (as a collector, so families registered later are
    /// included too).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(HubCollector(self.clone())));
    }
}

#[derive(Debug)]
struct HubCollector(MetricsHub);

impl prometheus_client::collector::Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Snapshot the families so that encoding does not hold the hub's lock.
        let families: Vec<(String, Arc<dyn ErasedFamily>)> = self
            .0
            .lock()
            .families
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, family) in families {
            family.encode(&mut encoder, &name)?;
        }
        Ok(())
    }
}

/// What a component registers its metrics through ([`crate::Context::metrics`]).
#[derive(Clone)]
pub struct ComponentMetrics {
    hub: MetricsHub,
    id: Arc<str>,
}

impl std::fmt::Debug for ComponentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentMetrics({})", self.id)
    }
}

impl ComponentMetrics {
    /// Metrics for a component that is not run by a controller (tests, tools): its series go nowhere.
    pub fn detached(id: &str) -> Self {
        MetricsHub::new().for_component(id)
    }

    /// A metric family of this component, e.g. a histogram with an `endpoint` label. The family is shared
    /// by name with other components; its metric type must match theirs. Counters may be named with or
    /// without their `_total` suffix.
    pub fn family<M>(
        &self,
        name: &str,
        help: &str,
        constructor: fn() -> M,
    ) -> Result<ComponentFamily<M>, MetricsError>
    where
        M: EncodeMetric + TypedMetric + Send + Sync + 'static,
    {
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_string()));
        }
        // The encoder appends `_total` to counters; accept the exposed name too.
        let name = match M::TYPE {
            prometheus_client::metrics::MetricType::Counter => {
                name.strip_suffix("_total").unwrap_or(name)
            }
            _ => name,
        };
        let mut st = self.hub.lock();
        let stored = st
            .families
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(StoredFamily {
                    help: help.to_string(),
                    family: Family::<SeriesLabels, M, Ctor<M>>::new_with_constructor(constructor),
                })
            })
            .clone();
        let family = stored
            .as_any()
            .downcast_ref::<Family<SeriesLabels, M, Ctor<M>>>()
            .ok_or_else(|| MetricsError::TypeConflict(name.to_string()))?
            .clone();
        Ok(ComponentFamily {
            name: Arc::from(name),
            family,
            owner: self.clone(),
        })
    }

    /// A single metric of this component (no labels but `component_id`).
    pub fn metric<M>(
        &self,
        name: &str,
        help: &str,
        constructor: fn() -> M,
    ) -> Result<M, MetricsError>
    where
        M: EncodeMetric + TypedMetric + Clone + Send + Sync + 'static,
    {
        Ok(self.family(name, help, constructor)?.get(&[]))
    }

    /// The component's ID.
    pub fn component_id(&self) -> &str {
        &self.id
    }
}

/// One metric family as seen by one component: series get `component_id` plus the labels asked for.
#[derive(Clone)]
pub struct ComponentFamily<M> {
    name: Arc<str>,
    family: Family<SeriesLabels, M, Ctor<M>>,
    owner: ComponentMetrics,
}

impl<M> std::fmt::Debug for ComponentFamily<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComponentFamily({}, {})", self.name, self.owner.id)
    }
}

impl<M: Clone> ComponentFamily<M> {
    /// The series with these extra labels (created on first use). Keep the returned metric: it is a handle
    /// to the shared series.
    pub fn get(&self, labels: &[(&str, &str)]) -> M {
        let mut key: SeriesLabels = Vec::with_capacity(labels.len() + 1);
        key.push(("component_id".to_string(), String::from(&*self.owner.id)));
        key.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let metric = self.family.get_or_create(&key).clone();
        let mut st = self.owner.hub.lock();
        let series = st.series.entry(String::from(&*self.owner.id)).or_default();
        if !series.iter().any(|(n, l)| **n == *self.name && *l == key) {
            series.push((self.name.to_string(), key));
        }
        metric
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;

    fn exposition(hub: &MetricsHub) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        hub.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn families_are_shared_by_name_and_labelled_by_component() {
        let hub = MetricsHub::new();
        let a = hub.for_component("test.a");
        let b = hub.for_component("test.b");
        let ca: Counter = a
            .metric("things_total", "Things.", Counter::default)
            .unwrap();
        let fb = b
            .family::<Counter>("things_total", "Things.", Counter::default)
            .unwrap();
        ca.inc();
        fb.get(&[("endpoint", "x")]).inc_by(2);
        let text = exposition(&hub);
        assert_eq!(text.matches("# TYPE things counter").count(), 1, "{text}");
        assert!(
            text.contains("things_total{component_id=\"test.a\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("things_total{component_id=\"test.b\",endpoint=\"x\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn removing_a_component_removes_its_series_only() {
        let hub = MetricsHub::new();
        let a = hub.for_component("test.a");
        let b = hub.for_component("test.b");
        let h = |c: &ComponentMetrics| {
            c.metric::<Histogram>("latency_seconds", "Latency.", || Histogram::new([0.1, 1.0]))
                .unwrap()
        };
        h(&a).observe(0.5);
        h(&b).observe(0.05);
        hub.remove_component("test.a");
        let text = exposition(&hub);
        assert!(!text.contains("test.a"), "{text}");
        assert!(text.contains("component_id=\"test.b\""), "{text}");
    }

    #[test]
    fn type_conflicts_and_bad_names_are_errors() {
        let hub = MetricsHub::new();
        let a = hub.for_component("test.a");
        a.metric::<Counter>("x", "X.", Counter::default).unwrap();
        let err = a
            .metric::<Histogram>("x", "X.", || Histogram::new([1.0]))
            .unwrap_err();
        assert_eq!(err, MetricsError::TypeConflict("x".into()));
        assert_eq!(
            a.metric::<Counter>("1x", "X.", Counter::default)
                .unwrap_err(),
            MetricsError::InvalidName("1x".into())
        );
    }
}
