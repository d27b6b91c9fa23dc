//! A task that is polled on the spot first and only becomes a runtime task once something wakes it.
//!
//! Most components spend their life waiting: a passthrough's `run` waits for cancellation, a scraper's for
//! its next tick. Spawning a runtime task for each of 5,000 of them costs more than evaluating them. A
//! [`LazyTask`] polls its future once where it is started; if that leaves it waiting, the future is parked
//! with the waker it registered, and the first wake-up spawns it onto the runtime, where it carries on as any
//! task. A future that is never woken again (until it is stopped) never costs a task at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many first polls one runtime task makes: few enough that the runtime's workers share a big load's
/// starts (and one slow start does not hold up many others), many enough that a load of thousands of
/// components spawns a few dozen tasks instead of thousands.
const FIRST_POLLS_PER_TASK: usize = 64;

/// First polls not made yet (see [`start_all`]).
#[derive(Clone, Default)]
pub(crate) struct PendingStarts(Arc<std::sync::atomic::AtomicUsize>);

impl PendingStarts {
    /// How many of the first polls handed to [`start_all`] are not made yet.
    pub(crate) fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Makes `first_polls` in runtime tasks, [`FIRST_POLLS_PER_TASK`] to a task, counting them in `pending`
/// until made. Like spawning a task per future, it returns before any is polled; unlike it, a load of
/// thousands of components costs its caller one spawn.
pub(crate) fn start_all(runtime: &Handle, first_polls: Vec<FirstPoll>, pending: &PendingStarts) {
    start_all_with(runtime, first_polls, pending, |batch| {
        for first_poll in batch {
            first_poll.poll();
        }
    });
}

/// Like [`start_all`], for starts that are more than a first poll: `start` is called with batches of
/// `starts` in runtime tasks, and each is counted in `pending` until its batch is done.
pub(crate) fn start_all_with<T: Send + 'static>(
    runtime: &Handle,
    starts: Vec<T>,
    pending: &PendingStarts,
    start: impl Fn(Vec<T>) + Clone + Send + 'static,
) {
    use std::sync::atomic::Ordering;
    if starts.is_empty() {
        return;
    }
    pending.0.fetch_add(starts.len(), Ordering::AcqRel);
    let (spawner, pending) = (runtime.clone(), pending.clone());
    // One task spawns the others, so that the caller is not held up competing with the workers that
    // already make the first starts.
    runtime.spawn(async move {
        let mut starts = starts.into_iter().peekable();
        while starts.peek().is_some() {
            let batch: Vec<T> = starts.by_ref().take(FIRST_POLLS_PER_TASK).collect();
            let (pending, start) = (pending.clone(), start.clone());
            spawner.spawn(async move {
                // Counted off even if a start panics (ending this task): a settle must not wait forever.
                let _counted = Counted(&pending, batch.len());
                start(batch);
            });
        }
    });
}

/// Takes `.1` starts off the count of `.0` when dropped.
struct Counted<'a>(&'a PendingStarts, usize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        (self.0)
            .0
            .fetch_sub(self.1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A started future: parked after its first poll, or a runtime task since it was woken.
pub(crate) struct LazyTask {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where a woken future is spawned (wake-ups may come from any thread, inside a runtime or not).
    runtime: Handle,
    state: Mutex<State>,
    /// Notified when the state leaves [`State::Busy`] (for [`LazyTask::stop`]).
    settled: Notify,
}

enum State {
    /// Not polled yet.
    Unpolled(BoxFuture),
    /// Being polled for the first time, or being handed to the runtime; `woken` if a wake-up arrived
    /// meanwhile.
    Busy { woken: bool },
    /// Waiting, with nothing to wake it yet.
    Parked(BoxFuture),
    /// Woken: a runtime task drives it.
    Spawned(JoinHandle<()>),
    /// Finished, or taken over by [`LazyTask::stop`].
    Done,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LazyTask {
    /// A task for `future`, not polled yet: [`FirstPoll::poll`] does that, wherever its caller is (for
    /// instance once a lock the future may need is released). `runtime` is where a woken future is spawned.
    pub(crate) fn new(
        future: impl Future<Output = ()> + Send + 'static,
        runtime: &Handle,
    ) -> (Self, FirstPoll) {
        let inner = Arc::new(Inner {
            runtime: runtime.clone(),
            state: Mutex::new(State::Unpolled(Box::pin(future))),
            settled: Notify::new(),
        });
        (
            LazyTask {
                inner: inner.clone(),
            },
            FirstPoll(inner),
        )
    }

    /// [`LazyTask::new`] and the first poll, on this thread.
    #[cfg(test)]
    fn start(future: impl Future<Output = ()> + Send + 'static, runtime: &Handle) -> Self {
        let (task, first) = Self::new(future, runtime);
        first.poll();
        task
    }

    /// Waits at most `timeout` for the future to finish (its owner has told it to stop), driving it here if
    /// nothing else does: never polled, or parked. A first poll in progress elsewhere is waited for.
    /// Returns whether it finished in time.
    pub(crate) async fn stop(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.finish()).await.is_ok()
    }

    async fn finish(self) {
        let state = loop {
            let settled = self.inner.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let mut state = lock(&self.inner.state);
                if !matches!(*state, State::Busy { .. }) {
                    break std::mem::replace(&mut *state, State::Done);
                }
            }
            settled.await;
        };
        match state {
            State::Unpolled(future) | State::Parked(future) => future.await,
            State::Spawned(task) => {
                let _ = task.await;
            }
            State::Busy { .. } | State::Done => {}
        }
    }

    /// Whether it has become a runtime task (for tests).
    #[cfg(test)]
    fn is_spawned(&self) -> bool {
        matches!(*lock(&self.inner.state), State::Spawned(_))
    }
}

/// The first poll of a [`LazyTask`], to be made once.
pub(crate) struct FirstPoll(Arc<Inner>);

impl FirstPoll {
    /// Polls the future once on this thread (inside the runtime); what it then waits for decides when it
    /// becomes a runtime task. Does nothing if the task was stopped before. A panic in the poll ends the
    /// future (as it would end a task) and does not reach the caller, which may have more first polls to
    /// make.
    pub(crate) fn poll(self) {
        let inner = self.0;
        let taken = std::mem::replace(&mut *lock(&inner.state), State::Busy { woken: false });
        let State::Unpolled(mut future) = taken else {
            *lock(&inner.state) = taken;
            return;
        };
        let waker = Waker::from(inner.clone());
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            future.as_mut().poll(&mut Context::from_waker(&waker))
        }));
        let mut state = lock(&inner.state);
        match polled {
            // Woken while it was being polled: it has something to do right away.
            Ok(Poll::Pending) if matches!(*state, State::Busy { woken: true }) => {
                drop(state);
                inner.hand_over(future);
                return;
            }
            Ok(Poll::Pending) => *state = State::Parked(future),
            Ok(Poll::Ready(())) | Err(_) => *state = State::Done,
        }
        drop(state);
        inner.settled.notify_waiters();
    }
}

impl Inner {
    /// Spawns `future` (the state is [`State::Busy`]): outside the lock, since a runtime that is shutting
    /// down drops the future right there, and whatever that drops may wake this task again.
    fn hand_over(&self, future: BoxFuture) {
        let task = self.runtime.spawn(future);
        *lock(&self.state) = State::Spawned(task);
        self.settled.notify_waiters();
    }
}

impl Wake for Inner {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        match &mut *state {
            State::Busy { woken } => *woken = true,
            State::Parked(_) => {
                if let State::Parked(future) =
                    std::mem::replace(&mut *state, State::Busy { woken: false })
                {
                    drop(state);
                    self.hand_over(future);
                }
            }
            // A task polls with its own waker; whatever registered this one is stale.
            State::Unpolled(_) | State::Spawned(_) | State::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::Notify;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_future_that_finishes_at_once_never_becomes_a_task() {
        let ran = Arc::new(AtomicU32::new(0));
        let r = ran.clone();
        let task = LazyTask::start(
            async move {
                r.fetch_add(1, Ordering::Relaxed);
            },
            &Handle::current(),
        );
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        assert!(!task.is_spawned());
        assert!(task.stop(Duration::from_secs(1)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_future_is_parked_until_woken_then_runs_as_a_task() {
        let notify = Arc::new(Notify::new());
        let steps = Arc::new(AtomicU32::new(0));
        let (n, s) = (notify.clone(), steps.clone());
        let task = LazyTask::start(
            async move {
                for _ in 0..3 {
                    n.notified().await;
                    s.fetch_add(1, Ordering::Relaxed);
                }
            },
            &Handle::current(),
        );
        assert!(!task.is_spawned(), "nothing woke it yet");
        for want in 1..=3 {
            notify.notify_one();
            crate::testing::eventually("the step ran", || steps.load(Ordering::Relaxed) == want)
                .await;
            assert!(task.is_spawned());
        }
        assert!(task.stop(Duration::from_secs(5)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_up_from_a_plain_thread_spawns_it_on_the_runtime() {
        let notify = Arc::new(Notify::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let n = notify.clone();
        let task = LazyTask::start(
            async move {
                n.notified().await;
                // Runs as a task of the runtime: timers work.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send(());
            },
            &Handle::current(),
        );
        std::thread::spawn(move || notify.notify_one())
            .join()
            .expect("thread");
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("finishes")
            .expect("sent");
        assert!(task.stop(Duration::from_secs(1)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_future_woken_during_its_first_poll_is_spawned_right_away() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut first = true;
        let mut tx = Some(tx);
        let task = LazyTask::start(
            std::future::poll_fn(move |cx| {
                if std::mem::take(&mut first) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
                Poll::Ready(())
            }),
            &Handle::current(),
        );
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("polled again")
            .expect("sent");
        assert!(task.stop(Duration::from_secs(1)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_drives_a_parked_future_to_its_end_and_gives_up_on_one_that_does_not_end() {
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let ended = Arc::new(AtomicU32::new(0));
        let e = ended.clone();
        let task = LazyTask::start(
            async move {
                n.notified().await;
                e.fetch_add(1, Ordering::Relaxed);
            },
            &Handle::current(),
        );
        // The owner's stop signal: delivered while stop drives it.
        let stopper = tokio::spawn({
            let notify = notify.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                notify.notify_one();
            }
        });
        assert!(task.stop(Duration::from_secs(5)).await);
        assert_eq!(ended.load(Ordering::Relaxed), 1);
        stopper.await.expect("stopper");

        let stuck = LazyTask::start(std::future::pending::<()>(), &Handle::current());
        assert!(!stuck.stop(Duration::from_millis(20)).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stop_waits_for_a_first_poll_in_progress_on_another_thread() {
        let ended = Arc::new(Mutex::new(None));
        let e = ended.clone();
        let (task, first_poll) = LazyTask::new(
            async move {
                // The first poll holds its thread, as a `run` doing setup work before its first wait.
                std::thread::sleep(Duration::from_millis(100));
                *e.lock().expect("lock") = Some(std::time::Instant::now());
            },
            &Handle::current(),
        );
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let poller = std::thread::spawn(move || {
            let _ = started_tx.send(());
            first_poll.poll();
        });
        started_rx.recv().expect("poller started");
        std::thread::sleep(Duration::from_millis(20));
        assert!(task.stop(Duration::from_secs(5)).await);
        let stopped = std::time::Instant::now();
        let ended = ended.lock().expect("lock").expect("the future ended");
        assert!(
            ended <= stopped,
            "stop returned before the first poll ended"
        );
        poller.join().expect("poller");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_first_poll_ends_that_future_only() {
        let (bad, bad_poll) =
            LazyTask::new(async { panic!("first poll panics") }, &Handle::current());
        let ran = Arc::new(AtomicU32::new(0));
        let r = ran.clone();
        let (good, good_poll) = LazyTask::new(
            async move {
                r.fetch_add(1, Ordering::Relaxed);
            },
            &Handle::current(),
        );
        bad_poll.poll();
        good_poll.poll();
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        assert!(bad.stop(Duration::from_secs(1)).await);
        assert!(good.stop(Duration::from_secs(1)).await);
    }
}
