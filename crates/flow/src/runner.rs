//! A running component: one task drives its `run` (restarted with backoff when it ends) and its `update`s.
//!
//! An `update` is started by the evaluator itself and polled once right there: most updates finish without
//! waiting (a passthrough publishes and returns), so a change travels down a chain within one evaluator pass
//! instead of bouncing between tasks at every hop. An update that has to wait is handed to the component's
//! task, which drives it to the end while the evaluator goes on; arguments arriving meanwhile are kept (the
//! newest only) and applied next. An update whose first poll takes long without waiting is not started by
//! the evaluator again: that component's updates all run in its own task from then on.

use crate::component::{Component, ComponentError, Health, HealthState};
use crate::controller::NodeCounters;
use crate::lazy_task::{FirstPoll, LazyTask};
use crate::registry::Arguments;
use futures_util::FutureExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long the evaluator may spend in the first poll of an update before that component's updates are no
/// longer started by the evaluator.
const INLINE_BUDGET: Duration = Duration::from_millis(1);

type Outcome = Result<Result<(), ComponentError>, Box<dyn std::any::Any + Send>>;
type UpdateFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What a node keeps for as long as it is in the graph, shared with its component's task (one allocation
/// for all of it).
pub(crate) struct NodeShared {
    pub(crate) run_health: Mutex<Health>,
    /// Set when the last `update` failed or panicked; cleared by a successful one.
    pub(crate) update_health: Mutex<Option<Health>>,
    pub(crate) counters: NodeCounters,
}

impl NodeShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(NodeShared {
            run_health: Mutex::new(Health::new(HealthState::Unknown, "not started")),
            update_health: Mutex::new(None),
            counters: NodeCounters::default(),
        })
    }
}

/// What a node's state shares with its component's task.
pub(crate) struct Shared {
    pub(crate) id: Arc<str>,
    pub(crate) component: Arc<dyn Component>,
    pub(crate) node: Arc<NodeShared>,
    slot: Mutex<Slot>,
    /// Wakes the task when there is an update for it to drive.
    work: Notify,
    /// Wakes those waiting for an update to finish.
    finished: Notify,
    /// Whether the evaluator may start this component's updates itself.
    inline: AtomicBool,
}

#[derive(Default)]
struct Slot {
    /// An update is in progress (in the evaluator's first poll or in the task).
    busy: bool,
    /// Started by the evaluator, waiting for the task to drive it on.
    handed_over: Option<(u64, UpdateFuture)>,
    /// Arguments that arrived while busy; only the newest are kept.
    queued: Option<(u64, Arguments)>,
    /// The number of the last arguments whose update finished (or were replaced by newer ones).
    done: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A started component.
pub(crate) struct Runner {
    pub(crate) cancel: CancellationToken,
    /// The component's task, once started.
    task: Option<LazyTask>,
    /// How to supervise `run`, until the task is started.
    backoff: Option<Backoff>,
    shared: Arc<Shared>,
    /// The number given to the latest arguments.
    generation: u64,
    pub(crate) alive: Arc<AtomicBool>,
}

/// An update that had not finished when it was handed over.
pub(crate) struct PendingUpdate {
    shared: Arc<Shared>,
    generation: u64,
}

impl PendingUpdate {
    /// Waits until the update (or a newer one) has finished.
    pub(crate) async fn finished(self) {
        loop {
            let notified = self.shared.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.shared.slot).done >= self.generation {
                return;
            }
            notified.await;
        }
    }
}

/// Settings for supervising `run`.
#[derive(Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl Runner {
    /// A runner whose task is not started yet ([`Runner::start`]). Updates submitted before it starts wait
    /// for it.
    pub(crate) fn new(
        shared: Arc<Shared>,
        cancel: CancellationToken,
        alive: Arc<AtomicBool>,
        backoff: Backoff,
    ) -> Runner {
        Runner {
            cancel,
            task: None,
            backoff: Some(backoff),
            shared,
            generation: 0,
            alive,
        }
    }

    /// Starts the component's task (once). The caller makes the returned first poll (see
    /// [`crate::lazy_task::start_all`]),
    /// which runs `run` up to its first wait; the task only becomes a runtime task once woken (see
    /// [`crate::lazy_task`]), so an idle component costs no runtime task of its own.
    pub(crate) fn start(&mut self, runtime: &Handle) -> Option<FirstPoll> {
        let backoff = self.backoff.take()?;
        set_health(
            &self.shared.node.run_health,
            HealthState::Healthy,
            "started".into(),
        );
        let (task, first_poll) = LazyTask::new(
            drive(self.shared.clone(), self.cancel.clone(), backoff),
            runtime,
        );
        self.task = Some(task);
        Some(first_poll)
    }

    /// Numbers the next arguments for [`submit`] (which must run without the controller's state locked: the
    /// update may publish exports).
    pub(crate) fn next_update(&mut self) -> (Arc<Shared>, u64) {
        self.generation += 1;
        (self.shared.clone(), self.generation)
    }
}

/// Applies new arguments. Returns `None` when the update finished right away, otherwise what to wait on to
/// see it finish.
pub(crate) fn submit(
    shared: &Arc<Shared>,
    generation: u64,
    args: Arguments,
) -> Option<PendingUpdate> {
    let pending = Some(PendingUpdate {
        shared: shared.clone(),
        generation,
    });
    {
        let mut slot = lock(&shared.slot);
        if slot.busy || !shared.inline.load(Ordering::Relaxed) {
            // Superseded arguments count as done: whoever waits for them waits for the newest.
            if let Some((replaced, _)) = slot.queued.replace((generation, args)) {
                slot.done = slot.done.max(replaced);
            }
            drop(slot);
            shared.work.notify_one();
            return pending;
        }
        slot.busy = true;
    }
    shared.node.counters.updates.fetch_add(1, Ordering::Relaxed);
    let mut update = update_future(shared.component.clone(), args);
    let started = Instant::now();
    let mut cx = TaskContext::from_waker(Waker::noop());
    // A panic in the first poll is caught by the future itself (catch_unwind).
    let polled = update.as_mut().poll(&mut cx);
    if started.elapsed() > INLINE_BUDGET {
        shared.inline.store(false, Ordering::Relaxed);
    }
    match polled {
        Poll::Ready(outcome) => {
            finish(shared, generation, outcome);
            None
        }
        Poll::Pending => {
            lock(&shared.slot).handed_over = Some((generation, update));
            shared.work.notify_one();
            pending
        }
    }
}

fn update_future(component: Arc<dyn Component>, args: Arguments) -> UpdateFuture {
    Box::pin(
        std::panic::AssertUnwindSafe(async move { component.update(args).await }).catch_unwind(),
    )
}

/// Records how an update ended and lets waiters and the task know.
fn finish(shared: &Shared, generation: u64, outcome: Outcome) {
    let message = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("failed to update: {e}")),
        Err(payload) => Some(format!(
            "update panicked: {}",
            panic_message(payload.as_ref())
        )),
    };
    if let Some(message) = &message {
        tracing::error!(component = %shared.id, error = %message, "component update failed");
    }
    *lock(&shared.node.update_health) = message.map(|m| Health::new(HealthState::Unhealthy, m));
    let more = {
        let mut slot = lock(&shared.slot);
        slot.busy = false;
        slot.done = slot.done.max(generation);
        slot.queued.is_some()
    };
    shared.finished.notify_waiters();
    if more {
        shared.work.notify_one();
    }
}

/// The next update for the task to drive, if any.
fn next_update(shared: &Shared) -> Option<(u64, UpdateFuture)> {
    let mut slot = lock(&shared.slot);
    if let Some(handed_over) = slot.handed_over.take() {
        return Some(handed_over);
    }
    if slot.busy {
        return None;
    }
    let (generation, args) = slot.queued.take()?;
    slot.busy = true;
    drop(slot);
    shared.node.counters.updates.fetch_add(1, Ordering::Relaxed);
    Some((generation, update_future(shared.component.clone(), args)))
}

type RunFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

fn run_future(shared: &Shared, cancel: &CancellationToken) -> RunFuture {
    if shared.node.counters.runs.fetch_add(1, Ordering::Relaxed) > 0 {
        set_health(
            &shared.node.run_health,
            HealthState::Healthy,
            "restarted".into(),
        );
    }
    let component = shared.component.clone();
    // The run stops when the component does: it gets the component's own token.
    let token = cancel.clone();
    Box::pin(std::panic::AssertUnwindSafe(async move { component.run(token).await }).catch_unwind())
}

/// The component's task: runs it, restarting it with backoff when its run ends or panics, and drives the
/// updates handed to it, until cancelled.
async fn drive(shared: Arc<Shared>, cancel: CancellationToken, backoff: Backoff) {
    let mut delay = backoff.first;
    let mut run: Option<RunFuture> = Some(run_future(&shared, &cancel));
    let mut restart: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut update: Option<(u64, UpdateFuture)> = None;
    loop {
        if cancel.is_cancelled() {
            // Like a stopped task: an unfinished update is dropped; `run` is given the chance to return.
            update = None;
            restart = None;
        } else if update.is_none() {
            update = next_update(&shared);
        }
        tokio::select! {
            outcome = async { run.as_mut().expect("guarded").await }, if run.is_some() => {
                run = None;
                if cancel.is_cancelled() {
                    set_health(&shared.node.run_health, HealthState::Exited, "stopped".into());
                    return;
                }
                let why = match outcome {
                    Ok(Ok(())) => "run exited without an error".to_string(),
                    Ok(Err(e)) => format!("run exited with error: {e}"),
                    Err(payload) => format!("run panicked: {}", panic_message(payload.as_ref())),
                };
                tracing::error!(component = %shared.id, reason = %why, backoff = ?delay, "component exited; restarting");
                set_health(&shared.node.run_health, HealthState::Exited, why);
                restart = Some(Box::pin(tokio::time::sleep(delay)));
                delay = (delay * 2).min(backoff.max);
            }
            _ = async { restart.as_mut().expect("guarded").await }, if restart.is_some() => {
                restart = None;
                run = Some(run_future(&shared, &cancel));
            }
            outcome = async { update.as_mut().expect("guarded").1.as_mut().await }, if update.is_some() => {
                if let Some((generation, _)) = update.take() {
                    finish(&shared, generation, outcome);
                }
            }
            _ = shared.work.notified(), if !cancel.is_cancelled() => {}
            _ = cancel.cancelled(), if run.is_none() => return,
            // Wakes up to drop an unfinished update while `run` is still returning.
            _ = cancel.cancelled(), if run.is_some() && update.is_some() => {}
        }
    }
}

impl Shared {
    pub(crate) fn new(
        id: Arc<str>,
        component: Arc<dyn Component>,
        node: Arc<NodeShared>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            id,
            component,
            node,
            slot: Mutex::new(Slot::default()),
            work: Notify::new(),
            finished: Notify::new(),
            inline: AtomicBool::new(true),
        })
    }
}

/// Stops a runner: cancels it and waits (at most `timeout`) for its run to return; a component that does
/// not stop in time is abandoned.
pub(crate) async fn stop(runner: Runner, timeout: Duration, id: &str) {
    runner.alive.store(false, Ordering::Release);
    runner.cancel.cancel();
    let Some(task) = runner.task else {
        // Never started: nothing runs.
        finish_abandoned(&runner.shared, runner.generation);
        return;
    };
    if !task.stop(timeout).await {
        tracing::warn!(
            component = id,
            ?timeout,
            "component did not stop in time; abandoning it"
        );
    }
    finish_abandoned(&runner.shared, runner.generation);
}

/// Nobody applies what was left of a stopped runner's updates; whoever waits for them must not wait forever.
fn finish_abandoned(shared: &Shared, generation: u64) {
    let mut slot = lock(&shared.slot);
    slot.done = slot.done.max(generation);
    drop(slot);
    shared.finished.notify_waiters();
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

pub(crate) fn set_health(h: &Mutex<Health>, state: HealthState, message: String) {
    *lock(h) = Health::new(state, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU32;

    /// `update` blocks the thread for `block` and counts; `run` waits for cancellation.
    struct Blocking {
        block: Duration,
        applied: AtomicU32,
    }

    #[async_trait]
    impl Component for Blocking {
        async fn run(&self, cancel: CancellationToken) -> Result<(), ComponentError> {
            cancel.cancelled().await;
            Ok(())
        }
        async fn update(
            &self,
            _args: Arc<dyn std::any::Any + Send + Sync>,
        ) -> Result<(), ComponentError> {
            std::thread::sleep(self.block);
            self.applied.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn runner(block: Duration) -> (Runner, Arc<Blocking>) {
        let component = Arc::new(Blocking {
            block,
            applied: AtomicU32::new(0),
        });
        let shared = Shared::new(
            Arc::from("test.blocking.a"),
            component.clone(),
            NodeShared::new(),
        );
        let backoff = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
        };
        let mut r = Runner::new(
            shared,
            CancellationToken::new(),
            Arc::new(AtomicBool::new(true)),
            backoff,
        );
        if let Some(first_poll) = r.start(&Handle::current()) {
            crate::lazy_task::start_all(&Handle::current(), vec![first_poll], &Default::default());
        }
        (r, component)
    }

    fn args() -> Arguments {
        Arc::new(1u32)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_updates_finish_inline() {
        let (mut r, c) = runner(Duration::ZERO);
        for _ in 0..3 {
            let (shared, generation) = r.next_update();
            assert!(submit(&shared, generation, args()).is_none());
        }
        assert_eq!(c.applied.load(Ordering::Relaxed), 3);
        assert_eq!(r.shared.node.counters.updates.load(Ordering::Relaxed), 3);
        stop(r, Duration::from_secs(5), "test.blocking.a").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_update_that_blocks_long_moves_to_the_component_task() {
        let (mut r, c) = runner(Duration::from_millis(5));
        let (shared, generation) = r.next_update();
        // The first one ran inline, and took too long to be run inline again.
        assert!(submit(&shared, generation, args()).is_none());
        assert!(!shared.inline.load(Ordering::Relaxed));
        let (shared, generation) = r.next_update();
        let pending = submit(&shared, generation, args()).expect("handed to the task");
        tokio::time::timeout(Duration::from_secs(5), pending.finished())
            .await
            .expect("the task applies it");
        assert_eq!(c.applied.load(Ordering::Relaxed), 2);
        stop(r, Duration::from_secs(5), "test.blocking.a").await;
    }
}
