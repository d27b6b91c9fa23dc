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
use futures_util::future::CatchUnwind;
use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// How long the evaluator may spend in the first poll of an update before that component's updates are no
/// longer started by the evaluator.
const INLINE_BUDGET: Duration = Duration::from_millis(1);

type Outcome = Result<Result<(), ComponentError>, Box<dyn std::any::Any + Send>>;
type UpdateFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What a node keeps for as long as it is in the graph, shared with its component's task (one allocation
/// for all of it).
pub(crate) struct NodeShared {
    pub(crate) run_health: Mutex<RunHealth>,
    /// Set when the last `update` failed or panicked; cleared by a successful one.
    /// Boxed: rarely set, and every node keeps one.
    pub(crate) update_health: Mutex<Option<Box<Health>>>,
    pub(crate) counters: NodeCounters,
    /// The build whose exports handle may publish (see [`ExportsLicense`]); 0: none may.
    exports_build: AtomicU64,
}

/// What an exports handle needs to know whether it may still publish: the handle of a component that was
/// stopped, or whose build failed, must not overwrite the exports of its successor. One number per node
/// rather than a flag of its own per build (an allocation for each of thousands of components).
#[derive(Clone)]
pub(crate) struct ExportsLicense {
    node: Arc<NodeShared>,
    build: u64,
}

impl ExportsLicense {
    /// A license for build number `build` (never 0) of `node`, which is now the one that may publish.
    pub(crate) fn grant(node: Arc<NodeShared>, build: u64) -> Self {
        node.exports_build.store(build, Ordering::Release);
        ExportsLicense { node, build }
    }

    /// Whether this build may still publish.
    pub(crate) fn is_valid(&self) -> bool {
        self.node.exports_build.load(Ordering::Acquire) == self.build
    }

    /// Ends this build's right to publish (a later build's is left alone).
    pub(crate) fn revoke(&self) {
        let _ = self.node.exports_build.compare_exchange(
            self.build,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

impl NodeShared {
    /// `now`: when the node was created (a load creates thousands at once and reads the clock once).
    pub(crate) fn new(now: SystemTime) -> Arc<Self> {
        Arc::new(NodeShared {
            run_health: Mutex::new(RunHealth::at(HealthState::Unknown, "not started", now)),
            update_health: Mutex::new(None),
            counters: NodeCounters::default(),
            exports_build: AtomicU64::new(0),
        })
    }
}

impl NodeShared {
    /// Reports the component's run as started at `now` (its task starts now, or right after the load that
    /// built it).
    pub(crate) fn started(&self, now: SystemTime) {
        *lock(&self.run_health) = RunHealth::at(HealthState::Healthy, "started", now);
    }
}

/// The health of a component's run: a [`Health`] whose message is mostly one of the runtime's own constants,
/// kept without allocating it (every component is "started" once).
pub(crate) struct RunHealth {
    state: HealthState,
    message: Cow<'static, str>,
    updated: SystemTime,
}

impl RunHealth {
    fn new(state: HealthState, message: impl Into<Cow<'static, str>>) -> Self {
        Self::at(state, message, SystemTime::now())
    }

    fn at(state: HealthState, message: impl Into<Cow<'static, str>>, updated: SystemTime) -> Self {
        RunHealth {
            state,
            message: message.into(),
            updated,
        }
    }

    /// The report.
    pub(crate) fn to_health(&self) -> Health {
        Health {
            state: self.state,
            message: self.message.clone().into_owned(),
            updated: self.updated,
        }
    }
}

/// What a node's state shares with its component's task.
pub(crate) struct Shared {
    pub(crate) id: Arc<str>,
    pub(crate) component: Arc<dyn Component>,
    pub(crate) node: Arc<NodeShared>,
    slot: Mutex<Slot>,
    /// Wakes the task when there is an update for it to drive (it looks at the slot after registering).
    work: AtomicWaker,
    /// Set, with the slot locked, whenever the slot may have gained something for the task to take; cleared
    /// by the task when it finds nothing there. Spares an idle component's task the lock at every poll.
    work_waiting: AtomicBool,
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
    shared: Arc<Shared>,
    /// The number given to the latest arguments.
    generation: u64,
    /// Revoked when the runner is stopped.
    pub(crate) exports: ExportsLicense,
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
        exports: ExportsLicense,
    ) -> Runner {
        Runner {
            cancel,
            task: None,
            shared,
            generation: 0,
            exports,
        }
    }

    /// Starts the component's task (once). The caller makes the returned first poll (see
    /// [`crate::lazy_task::start_all`]),
    /// which runs `run` up to its first wait; the task only becomes a runtime task once woken (see
    /// [`crate::lazy_task`]), so an idle component costs no runtime task of its own.
    /// `now`: the time to report the start at (a load starts thousands of components and reads the clock
    /// once).
    /// `backoff`: how to supervise `run` (given here rather than kept by every runner until it starts).
    pub(crate) fn start(
        &mut self,
        runtime: &Handle,
        now: SystemTime,
        backoff: Backoff,
    ) -> Option<FirstPoll> {
        if self.task.is_some() {
            return None;
        }
        self.shared.node.started(now);
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
            shared.work_waiting.store(true, Ordering::Release);
            drop(slot);
            shared.work.wake();
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
            let mut slot = lock(&shared.slot);
            slot.handed_over = Some((generation, update));
            shared.work_waiting.store(true, Ordering::Release);
            drop(slot);
            shared.work.wake();
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
    *lock(&shared.node.update_health) =
        message.map(|m| Box::new(Health::new(HealthState::Unhealthy, m)));
    let more = {
        let mut slot = lock(&shared.slot);
        slot.busy = false;
        slot.done = slot.done.max(generation);
        let more = slot.queued.is_some();
        if more {
            shared.work_waiting.store(true, Ordering::Release);
        }
        more
    };
    shared.finished.notify_waiters();
    if more {
        shared.work.wake();
    }
}

/// The next update for the task to drive, if any (none once cancelled: a stopped component applies nothing).
fn next_update(shared: &Shared, cancel: &CancellationToken) -> Option<(u64, UpdateFuture)> {
    // The task registered its waker before: whoever sets the flag after this wakes it.
    if !shared.work_waiting.load(Ordering::Acquire) {
        return None;
    }
    let mut slot = lock(&shared.slot);
    if slot.handed_over.is_none() && (slot.busy || slot.queued.is_none()) {
        shared.work_waiting.store(false, Ordering::Relaxed);
        return None;
    }
    if cancel.is_cancelled() {
        return None;
    }
    if let Some(handed_over) = slot.handed_over.take() {
        return Some(handed_over);
    }
    let (generation, args) = slot.queued.take()?;
    slot.busy = true;
    drop(slot);
    shared.node.counters.updates.fetch_add(1, Ordering::Relaxed);
    Some((generation, update_future(shared.component.clone(), args)))
}

/// A run of the component. It borrows the component from the task's own state rather than owning a clone
/// of it: the component's boxed future is then the only allocation.
type RunFuture<'a> = CatchUnwind<
    AssertUnwindSafe<Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send + 'a>>>,
>;

/// `d` in whole milliseconds, at least 1 unless zero, at most `u32::MAX` (49 days).
fn millis(d: Duration) -> u32 {
    let floor = u128::from(!d.is_zero());
    d.as_millis().clamp(floor, u128::from(u32::MAX)) as u32
}

/// The component's task: runs it, restarting it with backoff when its run ends or panics, and drives the
/// updates handed to it, until cancelled.
async fn drive(shared: Arc<Shared>, cancel: CancellationToken, backoff: Backoff) {
    let mut drive = Drive {
        shared: &shared,
        cancel: &cancel,
        delay_ms: millis(backoff.first),
        max_delay_ms: millis(backoff.max),
        run: None,
        restart: None,
        update: None,
        cancelled: None,
    };
    drive.start_run();
    std::future::poll_fn(|cx| drive.poll(cx)).await
}

/// The state of a component's task, polled by hand rather than through `select!`: that would keep a future
/// for every branch in the task (472 bytes in all, against 160 now), while most of them are only needed
/// once something went wrong.
struct Drive<'a> {
    shared: &'a Shared,
    cancel: &'a CancellationToken,
    /// How long to wait before the next restart, and at most, in milliseconds (24 bytes less in every
    /// component's task than two `Duration`s).
    delay_ms: u32,
    max_delay_ms: u32,
    run: Option<RunFuture<'a>>,
    /// Boxed, like `cancelled`, to keep the task small: only a component that exited needs it.
    restart: Option<Pin<Box<tokio::time::Sleep>>>,
    update: Option<(u64, UpdateFuture)>,
    /// Set up once something has to notice cancellation that `run` returning would not tell: a restart
    /// pending, or an update to drop while `run` is still returning.
    cancelled: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
}

impl<'a> Drive<'a> {
    /// Starts `run`; one that panics before it even returns its future has exited like any other.
    fn start_run(&mut self) {
        if self
            .shared
            .node
            .counters
            .runs
            .fetch_add(1, Ordering::Relaxed)
            > 0
        {
            set_health(
                &self.shared.node.run_health,
                HealthState::Healthy,
                "restarted",
            );
        }
        // The run stops when the component does: it gets the component's own token.
        let shared: &'a Shared = self.shared;
        let token = self.cancel.clone();
        match std::panic::catch_unwind(AssertUnwindSafe(|| shared.component.run(token))) {
            Ok(run) => self.run = Some(AssertUnwindSafe(run).catch_unwind()),
            Err(payload) => self.exited(Err(payload)),
        }
    }

    fn poll(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        // Registered before looking at the slot, so that an update arriving meanwhile wakes the task again.
        self.shared.work.register(cx.waker());
        loop {
            if self.update.is_none() {
                self.update = next_update(self.shared, self.cancel);
            }
            if let Some(run) = &mut self.run {
                if let Poll::Ready(outcome) = Pin::new(run).poll(cx) {
                    self.run = None;
                    if self.cancel.is_cancelled() {
                        set_health(&self.shared.node.run_health, HealthState::Exited, "stopped");
                        return Poll::Ready(());
                    }
                    self.exited(outcome);
                    continue;
                }
            }
            if let Some(restart) = &mut self.restart {
                if restart.as_mut().poll(cx).is_ready() {
                    self.restart = None;
                    if self.cancel.is_cancelled() {
                        return Poll::Ready(());
                    }
                    self.start_run();
                    continue;
                }
            }
            if self.run.is_none() || self.update.is_some() {
                let cancel = self.cancel;
                let cancelled = self
                    .cancelled
                    .get_or_insert_with(|| Box::pin(cancel.cancelled()));
                if cancelled.as_mut().poll(cx).is_ready() {
                    // Like a stopped task: an unfinished update is dropped; `run` is given the chance to
                    // return.
                    self.update = None;
                    self.restart = None;
                    if self.run.is_none() {
                        return Poll::Ready(());
                    }
                    continue;
                }
            }
            if let Some((_, update)) = &mut self.update {
                if let Poll::Ready(outcome) = update.as_mut().poll(cx) {
                    if let Some((generation, _)) = self.update.take() {
                        finish(self.shared, generation, outcome);
                    }
                    continue;
                }
            }
            return Poll::Pending;
        }
    }

    /// Records why `run` ended and schedules its restart.
    fn exited(&mut self, outcome: Outcome) {
        let why = match outcome {
            Ok(Ok(())) => "run exited without an error".to_string(),
            Ok(Err(e)) => format!("run exited with error: {e}"),
            Err(payload) => format!("run panicked: {}", panic_message(payload.as_ref())),
        };
        let delay = Duration::from_millis(u64::from(self.delay_ms));
        tracing::error!(component = %self.shared.id, reason = %why, backoff = ?delay, "component exited; restarting");
        set_health(&self.shared.node.run_health, HealthState::Exited, why);
        self.restart = Some(Box::pin(tokio::time::sleep(delay)));
        self.delay_ms = self.delay_ms.saturating_mul(2).min(self.max_delay_ms);
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
            work: AtomicWaker::new(),
            work_waiting: AtomicBool::new(false),
            finished: Notify::new(),
            inline: AtomicBool::new(true),
        })
    }
}

/// Stops a runner: cancels it and waits (at most `timeout`) for its run to return; a component that does
/// not stop in time is abandoned.
pub(crate) async fn stop(runner: Runner, timeout: Duration, id: &str) {
    runner.exports.revoke();
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

pub(crate) fn set_health(
    h: &Mutex<RunHealth>,
    state: HealthState,
    message: impl Into<Cow<'static, str>>,
) {
    *lock(h) = RunHealth::new(state, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn backoff_delays_are_whole_milliseconds_and_never_round_to_zero() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_micros(500)), 1);
        assert_eq!(millis(Duration::from_micros(1_500)), 1);
        assert_eq!(millis(Duration::from_secs(30)), 30_000);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    /// A runner for `component` under `id`, its task started as the controller starts it.
    fn started(id: &str, component: Arc<dyn Component>, backoff: Backoff) -> Runner {
        let node = NodeShared::new(SystemTime::now());
        let shared = Shared::new(Arc::from(id), component, node.clone());
        let mut r = Runner::new(
            shared,
            CancellationToken::new(),
            ExportsLicense::grant(node, 1),
        );
        let runtime = Handle::current();
        if let Some(first_poll) = r.start(&runtime, SystemTime::now(), backoff) {
            crate::lazy_task::start_all(&runtime, vec![first_poll], &Default::default());
        }
        r
    }

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
        let backoff = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
        };
        let r = started("test.blocking.a", component.clone(), backoff);
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

    /// `run` returns at once (counting); `update` waits until cancelled, noting when its future is dropped.
    struct Flaky {
        runs: AtomicU32,
        updates_dropped: Arc<AtomicU32>,
    }

    struct DropFlag(Arc<AtomicU32>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[async_trait]
    impl Component for Flaky {
        async fn run(&self, _cancel: CancellationToken) -> Result<(), ComponentError> {
            self.runs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        async fn update(
            &self,
            _args: Arc<dyn std::any::Any + Send + Sync>,
        ) -> Result<(), ComponentError> {
            let _flag = DropFlag(self.updates_dropped.clone());
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    fn flaky(first: Duration, max: Duration) -> (Runner, Arc<Flaky>) {
        let component = Arc::new(Flaky {
            runs: AtomicU32::new(0),
            updates_dropped: Arc::new(AtomicU32::new(0)),
        });
        let r = started("test.flaky.a", component.clone(), Backoff { first, max });
        (r, component)
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_returns_is_restarted_with_backoff() {
        let (r, c) = flaky(Duration::from_millis(1), Duration::from_millis(4));
        until("restarts", || c.runs.load(Ordering::Relaxed) >= 4).await;
        assert!(r.shared.node.counters.runs.load(Ordering::Relaxed) >= 4);
        let health = lock(&r.shared.node.run_health).to_health();
        assert!(
            health.message == "restarted" || health.message == "run exited without an error",
            "{health:?}"
        );
        stop(r, Duration::from_secs(5), "test.flaky.a").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_during_backoff_and_with_an_update_in_the_task_ends_the_task() {
        let hour = Duration::from_secs(3600);
        let (mut r, c) = flaky(hour, hour);
        until("the first exit", || {
            lock(&r.shared.node.run_health).state == HealthState::Exited
        })
        .await;
        let (shared, generation) = r.next_update();
        let pending = submit(&shared, generation, args()).expect("the update waits");
        let task_ended = tokio::time::timeout(Duration::from_secs(5), async {
            stop(r, Duration::from_secs(60), "test.flaky.a").await;
        });
        task_ended
            .await
            .expect("stopped without waiting for the backoff");
        tokio::time::timeout(Duration::from_secs(5), pending.finished())
            .await
            .expect("whoever waits for the update is let go");
        // Dropped by the task, or with the slot when the task was stopped before it took it.
        drop(shared);
        assert_eq!(c.updates_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(c.runs.load(Ordering::Relaxed), 1);
    }

    /// `run` panics before returning its future the first time, then waits for cancellation.
    struct PanicsEarly {
        calls: AtomicU32,
    }

    #[async_trait]
    impl Component for PanicsEarly {
        fn run<'a, 'b>(
            &'a self,
            cancel: CancellationToken,
        ) -> Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send + 'b>>
        where
            'a: 'b,
            Self: 'b,
        {
            if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
                panic!("before the future");
            }
            Box::pin(async move {
                cancel.cancelled().await;
                Ok(())
            })
        }
        async fn update(
            &self,
            _args: Arc<dyn std::any::Any + Send + Sync>,
        ) -> Result<(), ComponentError> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_panics_before_returning_its_future_is_restarted() {
        let component = Arc::new(PanicsEarly {
            calls: AtomicU32::new(0),
        });
        let backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        let r = started("test.early.a", component.clone(), backoff);
        until("the restart", || {
            lock(&r.shared.node.run_health).message == "restarted"
        })
        .await;
        assert_eq!(component.calls.load(Ordering::Relaxed), 2);
        stop(r, Duration::from_secs(5), "test.early.a").await;
    }
}
