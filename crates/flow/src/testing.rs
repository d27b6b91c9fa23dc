//! Helpers for tests of components and of crates that embed the runtime (feature `testing`): a component
//! that passes its input through, and a bounded wait.

use crate::{ComponentError, Context, TypedComponent};
use async_trait::async_trait;
use river::decode::Validate;
use river::Value;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exports its input unchanged: `test.pass "x" { input = ... }` → `test.pass.x.output`.
pub struct Pass {
    ctx: Context,
}

/// The arguments of [`Pass`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PassArgs {
    /// Any value; exported as `output`.
    #[serde(default)]
    pub input: Value,
}
impl Validate for PassArgs {}

#[derive(Serialize)]
struct PassExports<'a> {
    output: &'a Value,
}

#[async_trait]
impl TypedComponent for Pass {
    const NAME: &'static str = "test.pass";
    type Arguments = PassArgs;

    fn build(ctx: Context, args: PassArgs) -> Result<Self, ComponentError> {
        ctx.exports.publish(&PassExports {
            output: &args.input,
        })?;
        Ok(Pass { ctx })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, args: PassArgs) -> Result<(), ComponentError> {
        self.ctx.exports.publish(&PassExports {
            output: &args.input,
        })
    }
}

/// Waits until `f` holds, checking every 5 ms; panics naming `what` after 5 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}
