//! An example of embedding Rill: the `example.ticker` component and a registry that includes it.
//!
//! `example.ticker` counts up every `interval` and exports `count` and a `message` built from its `prefix`.
//! Any other component can refer to them, e.g. `input = example.ticker.fast.message`.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use flow::{ComponentError, Context, Health, HealthState, TypedComponent};
use river::decode::Validate;
use river::types::Duration;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The arguments of `example.ticker`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct TickerArgs {
    /// How often to count up.
    pub interval: Duration,
    /// Prepended to the count in `message`.
    pub prefix: String,
}

impl Default for TickerArgs {
    fn default() -> Self {
        TickerArgs {
            interval: Duration::from_secs(1),
            prefix: "tick".into(),
        }
    }
}

impl Validate for TickerArgs {
    fn validate(&self) -> Result<(), String> {
        if self.interval.as_nanos() <= 0 {
            return Err("interval must be greater than 0".into());
        }
        Ok(())
    }
}

/// The exports of `example.ticker`.
#[derive(Debug, Serialize)]
pub struct TickerExports {
    /// Ticks so far.
    pub count: u64,
    /// `"<prefix> <count>"`.
    pub message: String,
}

/// The `example.ticker` component.
pub struct Ticker {
    ctx: Context,
    args: watch::Sender<TickerArgs>,
    count: Mutex<u64>,
}

impl Ticker {
    fn publish(&self, count: u64, prefix: &str) -> Result<(), ComponentError> {
        self.ctx.exports.publish(&TickerExports {
            count,
            message: format!("{prefix} {count}"),
        })
    }
}

#[async_trait]
impl TypedComponent for Ticker {
    const NAME: &'static str = "example.ticker";
    type Arguments = TickerArgs;

    fn build(ctx: Context, args: TickerArgs) -> Result<Self, ComponentError> {
        let ticker = Ticker {
            ctx,
            args: watch::Sender::new(args.clone()),
            count: Mutex::new(0),
        };
        ticker.publish(0, &args.prefix)?;
        Ok(ticker)
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let mut args_rx = self.args.subscribe();
        loop {
            let interval = args_rx.borrow_and_update().interval.to_std_saturating();
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                // New arguments restart the wait with the new interval.
                _ = args_rx.changed() => continue,
                _ = tokio::time::sleep(interval) => {}
            }
            let count = {
                let mut c = self
                    .count
                    .lock()
                    .map_err(|_| ComponentError::new("counter lock poisoned"))?;
                *c += 1;
                *c
            };
            let prefix = self.args.borrow().prefix.clone();
            self.publish(count, &prefix)?;
            tracing::debug!(parent: &self.ctx.span, count, "tick");
        }
    }

    async fn update(&self, args: TickerArgs) -> Result<(), ComponentError> {
        let count = *self
            .count
            .lock()
            .map_err(|_| ComponentError::new("counter lock poisoned"))?;
        self.publish(count, &args.prefix)?;
        self.args.send_replace(args);
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        Some(Health::new(HealthState::Healthy, "ticking"))
    }
}

/// The registry this program runs configs with: its own component (plus any built-ins it wants).
pub fn registry() -> Arc<flow::Registry> {
    let mut registry = flow::Registry::new();
    // An embedder registers the built-in component crates it wants here as well, e.g.
    // `registry.register::<local_file::LocalFile>()`.
    registry
        .register::<Ticker>()
        .expect("example.ticker is a valid, unique name");
    Arc::new(registry)
}
