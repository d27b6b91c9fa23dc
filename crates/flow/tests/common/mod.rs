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

pub use flow::testing::{Pass, PassArgs};

/// The exports of `test.pass`, for the other test components that export the same shape.
#[derive(Serialize)]
struct PassExports<'a> {
    output: &'a Value,
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

// ---------------------------------------------------------------------------------------------------------
// Components for the data-driven scenarios (testdata/runtime)
// ---------------------------------------------------------------------------------------------------------

use flow::{Health, HealthState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lifecycle events of `test.probe` components, per controller. A controller is told apart by its storage
/// path (the parent of every component's data directory), so concurrent tests never see each other's events.
fn events() -> &'static Mutex<HashMap<PathBuf, Vec<String>>> {
    static EVENTS: OnceLock<Mutex<HashMap<PathBuf, Vec<String>>>> = OnceLock::new();
    EVENTS.get_or_init(Default::default)
}

fn record(ctx: &Context, what: &str) {
    let key = ctx
        .data_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    events()
        .lock()
        .unwrap()
        .entry(key)
        .or_default()
        .push(format!("{what} {}", ctx.id));
}

/// Takes the events recorded so far by the probes of the controller whose storage path is `storage`.
pub fn take_events(storage: &Path) -> Vec<String> {
    events().lock().unwrap().remove(storage).unwrap_or_default()
}

/// Like `test.pass`, and records its lifecycle (`build`, `run`, `update`, `stop` + its ID) for
/// [`take_events`]. `update_delay` makes `update` take that long before it applies the new input;
/// `fail_build` makes building fail with that message; `fail_update` / `panic_update` make an `update` to
/// these arguments fail / panic with that message (without applying them); `unhealthy` makes the component
/// report itself unhealthy with that message; `stubborn` makes `run` ignore cancellation and keep
/// publishing its input every 10ms (a component that does not stop when asked).
pub struct Probe {
    ctx: Context,
    args: Mutex<ProbeArgs>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ProbeArgs {
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub update_delay: river::types::Duration,
    #[serde(default)]
    pub fail_build: String,
    #[serde(default)]
    pub panic_build: String,
    #[serde(default)]
    pub fail_update: String,
    #[serde(default)]
    pub panic_update: String,
    #[serde(default)]
    pub unhealthy: String,
    #[serde(default)]
    pub stubborn: bool,
}
impl Validate for ProbeArgs {}

#[async_trait]
impl TypedComponent for Probe {
    const NAME: &'static str = "test.probe";
    type Arguments = ProbeArgs;

    fn build(ctx: Context, args: ProbeArgs) -> Result<Self, ComponentError> {
        if !args.fail_build.is_empty() {
            return Err(ComponentError::new(args.fail_build));
        }
        if !args.panic_build.is_empty() {
            panic!("deliberate: {}", args.panic_build);
        }
        record(&ctx, "build");
        ctx.exports.publish(&PassExports {
            output: &args.input,
        })?;
        Ok(Probe {
            ctx,
            args: Mutex::new(args),
        })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        record(&self.ctx, "run");
        if self.args.lock().unwrap().stubborn {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let input = self.args.lock().unwrap().input.clone();
                self.ctx.exports.publish(&PassExports { output: &input })?;
            }
        }
        cancel.cancelled().await;
        record(&self.ctx, "stop");
        Ok(())
    }

    async fn update(&self, args: ProbeArgs) -> Result<(), ComponentError> {
        if let Some(delay) = args.update_delay.to_std() {
            tokio::time::sleep(delay).await;
        }
        if !args.panic_update.is_empty() {
            panic!("deliberate: {}", args.panic_update);
        }
        if !args.fail_update.is_empty() {
            return Err(ComponentError::new(args.fail_update));
        }
        self.ctx.exports.publish(&PassExports {
            output: &args.input,
        })?;
        *self.args.lock().unwrap() = args;
        record(&self.ctx, "update");
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        let args = self.args.lock().unwrap();
        (!args.unhealthy.is_empty())
            .then(|| Health::new(HealthState::Unhealthy, args.unhealthy.clone()))
    }
}

/// Reads a file and exports its text as `content`, re-reading it every 10ms (like `local.file`).
/// Building fails when the file cannot be read; a later failed read makes the component unhealthy.
pub struct FileReader {
    ctx: Context,
    state: Mutex<FileState>,
}

struct FileState {
    filename: String,
    error: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct FileArgs {
    pub filename: String,
}
impl Validate for FileArgs {}

#[derive(Serialize)]
struct FileExports {
    content: String,
}

impl FileReader {
    fn read(&self) {
        let filename = self.state.lock().unwrap().filename.clone();
        let result = std::fs::read_to_string(&filename);
        let error = match result {
            Ok(content) => self
                .ctx
                .exports
                .publish(&FileExports { content })
                .err()
                .map(|e| e.0),
            Err(e) => Some(format!("reading {filename}: {e}")),
        };
        self.state.lock().unwrap().error = error;
    }
}

#[async_trait]
impl TypedComponent for FileReader {
    const NAME: &'static str = "test.file";
    type Arguments = FileArgs;

    fn build(ctx: Context, args: FileArgs) -> Result<Self, ComponentError> {
        let content = std::fs::read_to_string(&args.filename)
            .map_err(|e| ComponentError::new(format!("reading {}: {e}", args.filename)))?;
        ctx.exports.publish(&FileExports { content })?;
        Ok(FileReader {
            ctx,
            state: Mutex::new(FileState {
                filename: args.filename,
                error: None,
            }),
        })
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(10)) => self.read(),
            }
        }
    }

    async fn update(&self, args: FileArgs) -> Result<(), ComponentError> {
        self.state.lock().unwrap().filename = args.filename;
        self.read();
        Ok(())
    }

    fn health(&self) -> Option<Health> {
        let state = self.state.lock().unwrap();
        Some(match &state.error {
            Some(e) => Health::new(HealthState::Unhealthy, e.clone()),
            None => Health::new(HealthState::Healthy, "read"),
        })
    }
}

/// `test.pass` under a name whose first segment is a standard-library namespace (`string`), for shadowing.
pub struct StringPass(Pass);

#[async_trait]
impl TypedComponent for StringPass {
    const NAME: &'static str = "string.pass";
    type Arguments = PassArgs;

    fn build(ctx: Context, args: PassArgs) -> Result<Self, ComponentError> {
        Pass::build(ctx, args).map(StringPass)
    }

    async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
        self.0.run(cancel).await
    }

    async fn update(&self, args: PassArgs) -> Result<(), ComponentError> {
        self.0.update(args).await
    }
}

/// [`registry`] plus the components the scenarios use.
pub fn scenario_registry() -> Arc<flow::Registry> {
    let mut r = flow::Registry::new();
    r.register::<Pass>().unwrap();
    r.register::<Lock>().unwrap();
    r.register::<Panicky>().unwrap();
    r.register::<Probe>().unwrap();
    r.register::<FileReader>().unwrap();
    r.register::<StringPass>().unwrap();
    Arc::new(r)
}
