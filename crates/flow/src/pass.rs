//! Evaluating a load's nodes on several threads: a node is evaluated as soon as everything it depends on in
//! the pass is done, so independent nodes (separate pipelines, the members of a fan-in) are evaluated at the
//! same time while every node still sees the exports of its dependencies.
//!
//! The loading task hands its worker to the runtime for the duration (`block_in_place`) and waits for the
//! evaluation threads, which are plain threads inside the runtime's context (so components may spawn tasks
//! from `build`). The load report comes out in the same order as a one-thread pass would give it: by each
//! node's position in the dependency order.

use crate::controller::{DeferredStarts, LoadReport, Shared};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Passes with fewer nodes than this are evaluated on the loading task: starting threads would cost more
/// than they save.
const MIN_PARALLEL_NODES: usize = 64;

/// At most this many evaluation threads.
const MAX_THREADS: usize = 8;

/// Unless a number of threads is configured, the loading thread evaluates alone until its evaluations have
/// taken this long on average: nodes cheaper than that (a passthrough takes a few microseconds) are
/// evaluated faster by one thread than by several taking turns at the controller's state.
const HELPERS_AFTER_AVERAGE: Duration = Duration::from_micros(100);

/// How many threads may evaluate a pass of `nodes` nodes, or `None` to evaluate it on the loading task.
/// `configured` is [`crate::ControllerOptions::evaluation_threads`] (0: up to one per core, for big passes
/// only, see [`HELPERS_AFTER_AVERAGE`]).
pub(crate) fn threads_for(nodes: usize, configured: usize) -> Option<usize> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    // A current-thread runtime cannot lend its only thread to the runtime while the pass runs.
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return None;
    }
    let threads = match configured {
        0 if nodes < MIN_PARALLEL_NODES => return None,
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
    .min(MAX_THREADS);
    (threads > 1).then_some(threads)
}

/// The nodes ready to evaluate and what is left of the pass.
struct Queue {
    /// Nodes whose dependencies in the pass are all done, the most recently released last: a thread goes on
    /// with what the node it just evaluated released, while that node's exports are still in its cache.
    ready: Vec<usize>,
    /// For each node, how many of its dependencies in the pass are not done yet.
    remaining: Vec<u32>,
    /// Nodes of the pass not done yet.
    left: usize,
    /// A thread panicked: the others stop taking nodes.
    aborted: bool,
    /// By rank: which thread evaluated the node and what it added to that thread's report.
    outputs: Vec<Option<Segment>>,
}

/// What one thread's evaluations added to the load report.
struct Local {
    report: LoadReport,
    starts: DeferredStarts,
}

/// The entries of one node's evaluation in its thread's [`Local::report`].
struct Segment {
    thread: usize,
    started: Range<usize>,
    updated: Range<usize>,
    diagnostics: Range<usize>,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends the pass for every thread if the one holding this unwinds (a component's `build` panicked), so that
/// nobody waits for nodes that will never be done.
struct AbortOnPanic<'a> {
    queue: &'a Mutex<Queue>,
    wake: &'a Condvar,
}

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.queue).aborted = true;
            self.wake.notify_all();
        }
    }
}

/// Evaluates the nodes of `order` (a dependency order) on up to `threads` threads, adding to `report` and
/// `starts` as [`Shared::evaluate`] does. With `eager`, every thread works from the start; otherwise the
/// loading thread starts alone and the others join once nodes prove slow enough to share.
pub(crate) fn evaluate_in_parallel(
    shared: &Arc<Shared>,
    order: &[usize],
    threads: usize,
    eager: bool,
    report: &mut LoadReport,
    starts: &mut DeferredStarts,
) {
    let (dependencies, dependants, rank) = shared.pass_plan();
    let n = rank.len();
    let mut in_pass = vec![false; n];
    for &i in order.iter().filter(|&&i| i < n) {
        in_pass[i] = true;
    }
    let mut remaining = vec![0u32; n];
    let mut ready = Vec::new();
    let mut size = 0;
    // Reversed, so that the first roots in dependency order are taken first.
    for &i in order.iter().rev().filter(|&&i| i < n) {
        let waiting = dependencies[i].iter().filter(|&&d| in_pass[d]).count();
        remaining[i] = u32::try_from(waiting).unwrap_or(u32::MAX);
        if waiting == 0 {
            ready.push(i);
        }
        size += 1;
    }
    let mut outputs = Vec::new();
    outputs.resize_with(n, || None);
    let queue = Mutex::new(Queue {
        ready,
        remaining,
        left: size,
        aborted: false,
        outputs,
    });
    let wake = Condvar::new();
    let handle = tokio::runtime::Handle::current();

    let work = |thread: usize, local: &mut Local, after_each: &mut dyn FnMut()| {
        let _abort = AbortOnPanic {
            queue: &queue,
            wake: &wake,
        };
        loop {
            let index = {
                let mut q = lock(&queue);
                loop {
                    if q.aborted {
                        return;
                    }
                    if let Some(i) = q.ready.pop() {
                        break i;
                    }
                    if q.left == 0 {
                        return;
                    }
                    q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            shared.pass_started(index);
            let r = &local.report;
            let before = (r.started.len(), r.updated.len(), r.diagnostics.len());
            let pending = shared.evaluate(index, Some(&mut local.report), Some(&mut local.starts));
            if let Some(pending) = pending {
                if !dependants[index].is_empty() {
                    // Let dependants see the new exports, but never wait long for a slow component.
                    let wait = shared.update_wait();
                    let _ = handle.block_on(tokio::time::timeout(wait, pending.finished()));
                }
            }
            let r = &local.report;
            let after = (r.started.len(), r.updated.len(), r.diagnostics.len());
            let mut q = lock(&queue);
            if after != before {
                q.outputs[rank[index]] = Some(Segment {
                    thread,
                    started: before.0..after.0,
                    updated: before.1..after.1,
                    diagnostics: before.2..after.2,
                });
            }
            q.left -= 1;
            let mut released = 0;
            for &d in &dependants[index] {
                if in_pass[d] {
                    q.remaining[d] = q.remaining[d].saturating_sub(1);
                    if q.remaining[d] == 0 {
                        q.ready.push(d);
                        released += 1;
                    }
                }
            }
            // This thread takes one of the released nodes itself; the others go to sleeping threads.
            if q.left == 0 || released > 1 {
                wake.notify_all();
            }
            drop(q);
            after_each();
        }
    };

    let local = |shared: &Arc<Shared>| Local {
        report: LoadReport::default(),
        starts: DeferredStarts::collecting(shared.clone()),
    };
    let locals: Vec<Local> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (handle, work, local) = (&handle, &work, &local);
            let helper = |thread: usize| {
                let shared = shared.clone();
                scope.spawn(move || {
                    let _runtime = handle.enter();
                    let mut mine = local(&shared);
                    work(thread, &mut mine, &mut || {});
                    mine
                })
            };
            let mut helpers = Vec::new();
            if eager {
                helpers.extend((1..threads).map(helper));
            }
            // The loading thread is the first evaluation thread (the runtime has its worker meanwhile).
            let _runtime = handle.enter();
            let mut mine = local(shared);
            let started = Instant::now();
            let mut evaluated = 0u32;
            work(0, &mut mine, &mut || {
                evaluated += 1;
                if helpers.is_empty() && started.elapsed() >= HELPERS_AFTER_AVERAGE * evaluated {
                    helpers.extend((1..threads).map(helper));
                }
            });
            let mut locals = vec![mine];
            let mut panic = None;
            for worker in helpers {
                match worker.join() {
                    Ok(local) => locals.push(local),
                    Err(payload) => panic = Some(payload),
                }
            }
            if let Some(payload) = panic {
                std::panic::resume_unwind(payload);
            }
            locals
        })
    });
    let outputs = std::mem::take(&mut lock(&queue).outputs);
    merge(locals, outputs, report, starts);
}

/// Appends every thread's entries to `report` in rank order (`outputs` is by rank), and their components to
/// `starts`.
fn merge(
    locals: Vec<Local>,
    outputs: Vec<Option<Segment>>,
    report: &mut LoadReport,
    starts: &mut DeferredStarts,
) {
    let mut parts = Vec::with_capacity(locals.len());
    for mut local in locals {
        starts.first_polls.append(&mut local.starts.first_polls);
        let r = local.report;
        let diagnostics: Vec<_> = r.diagnostics.0.into_iter().map(Some).collect();
        parts.push((r.started, r.updated, diagnostics));
    }
    for s in outputs.into_iter().flatten() {
        let Some((started, updated, diagnostics)) = parts.get_mut(s.thread) else {
            continue;
        };
        if let Some(names) = started.get_mut(s.started) {
            report.started.extend(names.iter_mut().map(std::mem::take));
        }
        if let Some(names) = updated.get_mut(s.updated) {
            report.updated.extend(names.iter_mut().map(std::mem::take));
        }
        if let Some(found) = diagnostics.get_mut(s.diagnostics) {
            report
                .diagnostics
                .0
                .extend(found.iter_mut().filter_map(Option::take));
        }
    }
}
