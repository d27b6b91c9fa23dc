//! `discovery.relabel`: applies relabelling rules to a target list.

use async_trait::async_trait;
use flow::{ComponentError, Context, ExportsHandle, Health, HealthState, TypedComponent};
use relabel::{targets_to_value, Relabeler, Rule, Rules, Target};
use river::decode::{Block, Validate};
use river::{Capsule, Value};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::lock;

/// The `discovery.relabel` block.
///
/// ```river
/// discovery.relabel "pods" {
///   targets = discovery.file.pods.targets
///   rule {
///     source_labels = ["__meta_kubernetes_pod_annotation_pyroscope_io_scrape"]
///     regex         = "true"
///     action        = "keep"
///   }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Arguments {
    /// The targets to relabel.
    pub targets: Vec<Target>,
    /// The rules, applied in order.
    #[serde(default)]
    pub rule: Vec<Block<Rule>>,
}

impl Validate for Arguments {}

impl Arguments {
    /// The rules as a shareable list.
    pub fn rules(&self) -> Rules {
        Rules::new(self.rule.iter().map(|b| b.0.clone()).collect())
    }
}

/// What the UI shows under "debug info".
#[derive(Serialize)]
struct DebugInfo {
    /// Targets in `targets`.
    input_targets: usize,
    /// Targets exported in `output`.
    output_targets: usize,
    /// Targets a rule dropped.
    dropped_targets: usize,
    /// How many rules.
    rules: usize,
    /// How long the last relabelling pass took.
    last_pass_duration: river::types::Duration,
    /// How many passes ran (one at build, one per argument change).
    passes: u64,
}

/// The `discovery.relabel` component.
pub struct DiscoveryRelabel {
    exports: ExportsHandle,
    span: tracing::Span,
    state: Mutex<State>,
    health: Health,
}

struct State {
    relabeler: Relabeler,
    input: usize,
    output: usize,
    last_pass: Duration,
    passes: u64,
}

impl DiscoveryRelabel {
    /// Relabels `args.targets` and publishes `output` and `rules`.
    fn pass(&self, args: &Arguments) {
        let _entered = self.span.enter();
        let value = {
            let mut st = lock(&self.state);
            let rules = args.rules();
            if st.relabeler.rules() != &rules {
                st.relabeler = Relabeler::new(rules.clone());
            }
            let started = Instant::now();
            let output = st.relabeler.process_all(&args.targets);
            st.last_pass = started.elapsed();
            st.input = args.targets.len();
            st.output = output.len();
            st.passes += 1;
            tracing::debug!(
                input = st.input,
                output = st.output,
                rules = rules.len(),
                elapsed_us = st.last_pass.as_micros() as u64,
                "relabelled targets"
            );
            exports_value(&output, rules)
        };
        // Publish without our lock: the runtime may hold its own lock while asking for our debug info.
        self.exports.publish_value(value);
    }
}

/// `{ output = [...], rules = capsule }`.
fn exports_value(output: &[Target], rules: Rules) -> Value {
    let mut obj = river::Object::with_capacity(2);
    obj.insert("output".to_string(), targets_to_value(output));
    obj.insert("rules".to_string(), Value::Capsule(Capsule::new(rules)));
    Value::object(obj)
}

#[async_trait]
impl TypedComponent for DiscoveryRelabel {
    const NAME: &'static str = "discovery.relabel";
    type Arguments = Arguments;

    fn build(ctx: Context, args: Arguments) -> Result<Self, ComponentError> {
        let component = DiscoveryRelabel {
            exports: ctx.exports.clone(),
            span: ctx.span.clone(),
            state: Mutex::new(State {
                relabeler: Relabeler::new(args.rules()),
                input: 0,
                output: 0,
                last_pass: Duration::ZERO,
                passes: 0,
            }),
            // Arguments that decode are rules that apply: nothing can go wrong after that.
            health: Health::new(HealthState::Healthy, "relabelling targets"),
        };
        component.pass(&args);
        Ok(component)
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        // All the work happens in build and update.
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, args: Arguments) -> Result<(), ComponentError> {
        self.pass(&args);
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        Some(self.health.clone())
    }

    fn debug_info(&self) -> Option<Value> {
        let st = lock(&self.state);
        let info = DebugInfo {
            input_targets: st.input,
            output_targets: st.output,
            dropped_targets: st.input - st.output,
            rules: st.relabeler.rules().len(),
            last_pass_duration: river::types::Duration::from_std(st.last_pass)
                .unwrap_or(river::types::Duration::from_secs(0)),
            passes: st.passes,
        };
        river::encode::to_value(&info).ok()
    }
}
