//! Components used only by the runtime's tests.
#![allow(dead_code)]

use async_trait::async_trait;
use flow::{ComponentError, Context, TypedComponent};
use river::decode::Validate;
use river::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// Exports its input unchanged: `test.pass "x" { input = ... }` → `test.pass.x.output`.
pub struct Pass {
    ctx: Context,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PassArgs {
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

/// Holds a named resource while it runs (like a port): building fails if the name is taken.
pub struct Lock {
    name: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LockArgs {
    pub name: String,
}
impl Validate for LockArgs {}

fn held() -> &'static Mutex<HashSet<String>> {
    static HELD: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

#[async_trait]
impl TypedComponent for Lock {
    const NAME: &'static str = "test.lock";
    type Arguments = LockArgs;

    fn build(_ctx: Context, args: LockArgs) -> Result<Self, ComponentError> {
        if !held().lock().unwrap().insert(args.name.clone()) {
            return Err(ComponentError::new(format!(
                "{} is already held",
                args.name
            )));
        }
        Ok(Lock { name: args.name })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        cancel.cancelled().await;
        // Releasing takes a moment, like closing a listener.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        held().lock().unwrap().remove(&self.name);
        Ok(())
    }

    async fn update(&self, _args: LockArgs) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// Panics in `run` the first `times` runs, then runs normally.
pub struct Panicky {
    remaining: Arc<Mutex<u32>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PanickyArgs {
    pub times: u32,
}
impl Validate for PanickyArgs {}

#[async_trait]
impl TypedComponent for Panicky {
    const NAME: &'static str = "test.panicky";
    type Arguments = PanickyArgs;

    fn build(_ctx: Context, args: PanickyArgs) -> Result<Self, ComponentError> {
        Ok(Panicky {
            remaining: Arc::new(Mutex::new(args.times)),
        })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        let panic_now = {
            let mut r = self.remaining.lock().unwrap();
            let p = *r > 0;
            *r = r.saturating_sub(1);
            p
        };
        if panic_now {
            panic!("test panic");
        }
        cancel.cancelled().await;
        Ok(())
    }

    async fn update(&self, _args: PanickyArgs) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// A registry with every test component.
pub fn registry() -> Arc<flow::Registry> {
    let mut r = flow::Registry::new();
    r.register::<Pass>().unwrap();
    r.register::<Lock>().unwrap();
    r.register::<Panicky>().unwrap();
    Arc::new(r)
}
