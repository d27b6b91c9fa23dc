//! Evaluating a load's nodes on several threads: a node is evaluated as soon as everything it depends on in
//! the pass is done, so independent nodes (separate pipelines, the members of a fan-in) are evaluated at the
//! same time while every node still sees the exports of its dependencies.
//!
//! The loading task hands its worker to the runtime for the duration (`block_in_place`) and evaluates with
//! the controller's [`Helpers`], plain threads kept for this, which enter the runtime's context (so
//! components may spawn tasks from `build`). The load report comes out in the same order as a one-thread
//! pass would give it: by each node's position in the dependency order.

use crate::controller::{DeferredStarts, EvaluationClock, Generation, LoadReport, Shared};
use crate::graph::Declared;
use crate::{Graph, LoadDiagnostics, Registry, Sources};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

/// Passes with fewer nodes than this are evaluated on the loading task: sharing them out would cost more
/// than it saves.
const MIN_PARALLEL_NODES: usize = 64;

/// At most this many evaluation threads.
const MAX_THREADS: usize = 8;

/// How many threads may evaluate a pass of `nodes` nodes, or `None` to evaluate it on the loading task.
/// `configured` is [`crate::ControllerOptions::evaluation_threads`] (0: up to one per core, for passes of at
/// least [`MIN_PARALLEL_NODES`] nodes).
pub(crate) fn threads_for(nodes: usize, configured: usize) -> Option<usize> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    // A current-thread runtime cannot lend its only thread to the runtime while the pass runs.
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return None;
    }
    let threads = match configured {
        0 if nodes < MIN_PARALLEL_NODES => return None,
        0 => cores(),
        n => n,
    }
    .min(MAX_THREADS);
    (threads > 1).then_some(threads)
}

/// The cores this process may use, read once: `available_parallelism` reads the cgroup's CPU quota from
/// files on every call.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// What the threads of a pass share: the nodes ready to evaluate that no thread has taken, and how many
/// nodes are done. A thread takes from here only when the node it evaluated released none for it to go on
/// with (in a chain, every node releases the next), so the threads rarely meet here.
///
/// Each thread has a share of the nodes, a contiguous range of graph indices (nodes declared near each
/// other, which mostly refer to each other), and takes the ready nodes of its share first, those of the
/// others only when its own run out: a thread then mostly works on the same part of memory, which it
/// keeps in its own cache, rather than pulling lines back and forth with the other threads.
struct Queue {
    /// Per thread, the nodes of its share whose dependencies in the pass are all done, the most recently
    /// released last.
    ready: Vec<Vec<usize>>,
    /// Nodes of the pass done, as the threads last reported them.
    done: usize,
    /// A thread panicked: the others stop taking nodes.
    aborted: bool,
}

impl Queue {
    /// A ready node for `thread`: of its own share if there is one, else of the share with the most.
    fn take(&mut self, thread: usize) -> Option<usize> {
        if let Some(node) = self.ready.get_mut(thread).and_then(Vec::pop) {
            return Some(node);
        }
        self.ready.iter_mut().max_by_key(|r| r.len())?.pop()
    }
}

/// The thread of `threads` whose share holds node `node` of a graph of `nodes` nodes: the nodes are cut into
/// contiguous ranges of about equal size.
fn share_of(node: usize, threads: usize, nodes: usize) -> usize {
    node * threads / nodes.max(1)
}

/// What one thread's evaluations added to the load report.
struct Local {
    report: LoadReport,
    starts: DeferredStarts,
    /// (rank, thread, entries) of each node whose evaluation added to `report`.
    segments: Vec<(usize, Segment)>,
}

/// The entries of one node's evaluation in its thread's [`Local::report`].
struct Segment {
    started: Range<usize>,
    updated: Range<usize>,
    diagnostics: Range<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One pass, shared by its threads.
struct Pass {
    shared: Arc<Shared>,
    generation: Arc<Generation>,
    full_pass: bool,
    now: SystemTime,
    threads: usize,
    /// Whether each node (by graph index) is in the pass.
    in_pass: Vec<bool>,
    /// Per node, how many of its dependencies in the pass are not done yet.
    remaining: Vec<AtomicU32>,
    /// How many nodes the pass has.
    size: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
    handle: tokio::runtime::Handle,
}

/// Ends the pass for every thread if the one holding this unwinds (a component's `build` panicked), so that
/// nobody waits for nodes that will never be done.
struct AbortOnPanic<'a>(&'a Pass);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.queue).aborted = true;
            self.0.wake.notify_all();
        }
    }
}

impl Pass {
    /// The thread whose share node `node` is in.
    fn share(&self, node: usize) -> usize {
        share_of(node, self.threads, self.in_pass.len())
    }

    /// Evaluates nodes as they become ready until the pass is done, as thread `thread` of the pass.
    fn work(&self, thread: usize) -> Local {
        let _runtime = self.handle.enter();
        let _abort = AbortOnPanic(self);
        // About this thread's share of the pass, reserved at once rather than grown (and copied) by doubling.
        let share = self.size / self.threads.max(1) + 1;
        let mut local = Local {
            report: LoadReport::default(),
            starts: DeferredStarts::collecting(self.shared.clone(), share),
            segments: Vec::new(),
        };
        if self.full_pass {
            local.report.started.reserve(share);
        }
        let graph = &self.generation.graph;
        // The next node this thread evaluates, released by the one it just evaluated.
        let mut next = None;
        // Nodes done since this thread last told the queue.
        let mut done = 0;
        let mut released = Vec::new();
        let mut clock = EvaluationClock::start();
        loop {
            let index = match next.take() {
                Some(index) => index,
                None => {
                    let mut q = lock(&self.queue);
                    q.done += std::mem::take(&mut done);
                    loop {
                        if q.aborted {
                            return local;
                        }
                        if let Some(i) = q.take(thread) {
                            break i;
                        }
                        if q.done >= self.size {
                            self.wake.notify_all();
                            drop(q);
                            return local;
                        }
                        q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                        // Waiting is not evaluating.
                        clock = EvaluationClock::start();
                    }
                }
            };
            if self.full_pass {
                self.generation.pass_started(index);
            }
            let r = &local.report;
            let before = (r.started.len(), r.updated.len(), r.diagnostics.len());
            let pending = self.shared.evaluate(
                &self.generation,
                index,
                self.full_pass,
                Some(&mut local.report),
                Some(&mut local.starts),
                self.now,
            );
            clock.lap(&mut local.starts);
            if let Some(pending) = pending {
                if !graph.dependants[index].is_empty() {
                    // Let dependants see the new exports, but never wait long for a slow component.
                    let wait = self.shared.update_wait();
                    let _ = self
                        .handle
                        .block_on(tokio::time::timeout(wait, pending.finished()));
                    clock = EvaluationClock::start();
                }
            }
            let r = &local.report;
            let after = (r.started.len(), r.updated.len(), r.diagnostics.len());
            if after != before {
                local.segments.push((
                    self.generation.rank[index],
                    Segment {
                        started: before.0..after.0,
                        updated: before.1..after.1,
                        diagnostics: before.2..after.2,
                    },
                ));
            }
            done += 1;
            for &d in &graph.dependants[index] {
                if self.in_pass[d] && self.remaining[d].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if next.is_none() {
                        next = Some(d);
                    } else {
                        released.push(d);
                    }
                }
            }
            // This thread goes on with one of the released nodes itself; the others go to the queue, for
            // whichever thread is free.
            if !released.is_empty() {
                let mut q = lock(&self.queue);
                for node in released.drain(..) {
                    let share = self.share(node);
                    q.ready[share].push(node);
                }
                q.done += std::mem::take(&mut done);
                drop(q);
                self.wake.notify_all();
            }
        }
    }
}

/// Evaluates the nodes of `order` (a dependency order of `generation`'s nodes) on up to `threads` threads,
/// adding to `report` and `starts` as [`Shared::evaluate`] does. `full_pass`: `order` is every node.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_in_parallel(
    shared: &Arc<Shared>,
    generation: &Arc<Generation>,
    order: &[usize],
    threads: usize,
    full_pass: bool,
    report: &mut LoadReport,
    starts: &mut DeferredStarts,
    now: SystemTime,
) {
    let dependencies = &generation.graph.dependencies;
    let n = generation.rank.len();
    let mut in_pass = vec![false; n];
    for &i in order.iter().filter(|&&i| i < n) {
        in_pass[i] = true;
    }
    let mut remaining = Vec::with_capacity(n);
    remaining.resize_with(n, || AtomicU32::new(0));
    let mut ready = vec![Vec::new(); threads];
    let mut size = 0;
    // Reversed, so that the first roots in dependency order are taken first.
    for &i in order.iter().rev().filter(|&&i| i < n) {
        let waiting = dependencies[i].iter().filter(|&&d| in_pass[d]).count();
        remaining[i] = AtomicU32::new(u32::try_from(waiting).unwrap_or(u32::MAX));
        if waiting == 0 {
            ready[share_of(i, threads, n)].push(i);
        }
        size += 1;
    }
    let pass = Arc::new(Pass {
        shared: shared.clone(),
        generation: generation.clone(),
        full_pass,
        now,
        threads,
        in_pass,
        remaining,
        size,
        queue: Mutex::new(Queue {
            ready,
            done: 0,
            aborted: false,
        }),
        wake: Condvar::new(),
        handle: tokio::runtime::Handle::current(),
    });
    let locals: Vec<Local> = tokio::task::block_in_place(|| {
        let helpers: Vec<Arc<HelperJob<Local>>> = (1..threads)
            .filter_map(|thread| {
                let pass = pass.clone();
                shared.helpers().submit(move || pass.work(thread))
            })
            .collect();
        // The loading thread is the first evaluation thread (the runtime has its worker meanwhile).
        let mut locals = vec![pass.work(0)];
        let mut panic = None;
        for job in helpers {
            match job.finish() {
                Some(Ok(local)) => locals.push(*local),
                Some(Err(payload)) => panic = Some(payload),
                None => {}
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        locals
    });
    merge(locals, n, report, starts);
}

/// Builds the graph of `sources` as [`crate::Graph::build`] does. For a config big enough to be evaluated on
/// several threads (`configured` as in [`threads_for`]), a helper thread resolves the references of the
/// second half of the nodes while the loading thread resolves the first: with a pass that shares the
/// evaluation, resolving them was most of what the loading thread did alone.
pub(crate) fn build_graph(
    sources: &Arc<Sources>,
    registry: &Arc<Registry>,
    helpers: &Helpers,
    configured: usize,
) -> Result<Graph, LoadDiagnostics> {
    let declared = Declared::new(sources, registry.as_ref());
    let n = declared.len();
    if threads_for(n, configured).is_none_or(|t| t < 2) {
        let all = declared.resolve(sources, registry.as_ref(), 0..n);
        return declared.finish(sources, registry.as_ref(), vec![all]);
    }
    let declared = Arc::new(declared);
    let split = n / 2;
    let second = {
        let (declared, sources, registry) = (declared.clone(), sources.clone(), registry.clone());
        helpers.submit(move || declared.resolve(&sources, registry.as_ref(), split..n))
    };
    let mut parts = vec![declared.resolve(sources, registry.as_ref(), 0..split)];
    // A part no helper took, or that panicked, is resolved by `finish` here.
    if let Some(Some(Ok(part))) = second.map(|job| job.finish()) {
        parts.push(*part);
    }
    // Every job has dropped its reference by now (a job's captures go before it is marked done).
    let declared = Arc::try_unwrap(declared).unwrap_or_else(|shared| (*shared).clone());
    declared.finish(sources, registry.as_ref(), parts)
}

/// A controller's evaluation threads besides the loading thread, started with the controller and idle
/// between loads: a thread started for each load would start late (starting a thread takes longer than
/// evaluating dozens of nodes) and with empty allocation caches. They end when the controller is dropped.
pub(crate) struct Helpers {
    jobs: Mutex<HelperQueue>,
    available: Condvar,
    /// How many helper threads were started.
    threads: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct HelperQueue {
    jobs: std::collections::VecDeque<Arc<dyn QueuedJob>>,
    /// The controller is gone: the threads end.
    closed: bool,
}

/// Work handed to a helper thread (a pass's share of a load, or part of a graph's references), whose result
/// `T` the submitter takes with [`HelperJob::finish`].
pub(crate) struct HelperJob<T> {
    state: Mutex<JobState<T>>,
    changed: Condvar,
}

enum JobState<T> {
    /// Waiting for a helper thread.
    Queued(Box<dyn FnOnce() -> T + Send>),
    Running,
    /// Boxed: a thread's report is much bigger than the other states.
    Done(std::thread::Result<Box<T>>),
    /// The submitter was done before a helper took it.
    Dropped,
}

/// A job as the helper threads see it, whatever its result.
trait QueuedJob: Send + Sync {
    /// Runs the job on this thread, unless it was dropped meanwhile.
    fn run(&self);
}

impl<T: Send> QueuedJob for HelperJob<T> {
    fn run(&self) {
        // Taken in a statement of its own: the guard of a `match` scrutinee lives to the end of the match,
        // and putting back what was not queued would then wait for it forever.
        let taken = std::mem::replace(&mut *lock(&self.state), JobState::Running);
        let work = match taken {
            JobState::Queued(work) => work,
            other => {
                *lock(&self.state) = other;
                return;
            }
        };
        // A panicking `build` is handed back to the pass, which carries it to the loading task. The work's
        // captures are dropped before it is marked done.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        *lock(&self.state) = JobState::Done(result.map(Box::new));
        self.changed.notify_all();
    }
}

impl Helpers {
    /// Helper threads for a controller whose loads may be evaluated on up to `threads` threads (see
    /// [`threads_for`]; `configured` as there): one fewer than that, the loading thread being the first.
    pub(crate) fn start(configured: usize) -> Arc<Helpers> {
        let helpers = Arc::new(Helpers {
            jobs: Mutex::new(HelperQueue::default()),
            available: Condvar::new(),
            threads: Default::default(),
        });
        let wanted = threads_for(MIN_PARALLEL_NODES, configured).map_or(0, |t| t - 1);
        for i in 1..=wanted {
            let serving = helpers.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rill-eval-{i}"))
                .spawn(move || serving.serve());
            match spawned {
                Ok(_) => {
                    helpers.threads.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // The loading thread evaluates what no helper takes.
                    tracing::warn!(error = %e, "could not start an evaluation thread");
                    break;
                }
            }
        }
        helpers
    }

    /// Ends the threads once they are done with what they are doing.
    pub(crate) fn close(&self) {
        lock(&self.jobs).closed = true;
        self.available.notify_all();
    }

    /// Queues `work` for a helper thread; `None` if there is none.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<Arc<HelperJob<T>>> {
        if self.threads.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let job = Arc::new(HelperJob {
            state: Mutex::new(JobState::Queued(Box::new(work))),
            changed: Condvar::new(),
        });
        let mut queue = lock(&self.jobs);
        if queue.closed {
            return None;
        }
        queue.jobs.push_back(job.clone() as Arc<dyn QueuedJob>);
        drop(queue);
        self.available.notify_one();
        Some(job)
    }

    /// A helper thread: runs queued jobs, one at a time, until the controller is gone.
    fn serve(&self) {
        loop {
            let job = {
                let mut queue = lock(&self.jobs);
                loop {
                    if queue.closed {
                        return;
                    }
                    if let Some(job) = queue.jobs.pop_front() {
                        break job;
                    }
                    queue = self
                        .available
                        .wait(queue)
                        .unwrap_or_else(|e| e.into_inner());
                }
            };
            job.run();
        }
    }
}

impl<T> HelperJob<T> {
    /// What the job's thread made, once it is done; `None` if no helper had taken it (it never will).
    pub(crate) fn finish(&self) -> Option<std::thread::Result<Box<T>>> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, JobState::Dropped) {
                JobState::Queued(_) | JobState::Dropped => return None,
                JobState::Done(result) => return Some(result),
                JobState::Running => {
                    *state = JobState::Running;
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// Appends every thread's entries to `report` in rank order, and their components to `starts`. `nodes`: how
/// many nodes the graph has (every rank is below it).
fn merge(locals: Vec<Local>, nodes: usize, report: &mut LoadReport, starts: &mut DeferredStarts) {
    let parts = locals
        .into_iter()
        .map(|mut local| {
            starts.first_polls.append(&mut local.starts.first_polls);
            starts.runners.append(&mut local.starts.runners);
            (
                std::mem::take(&mut local.report),
                std::mem::take(&mut local.segments),
            )
        })
        .collect();
    merge_reports(parts, nodes, report);
}

/// Appends the entries of each thread's report (with the segments saying which node added which) to
/// `report` in rank order. The threads that took part come in any order, and not every thread of the pass
/// need be among them (a helper the pass did not wait for).
fn merge_reports(
    parts: Vec<(LoadReport, Vec<(usize, Segment)>)>,
    nodes: usize,
    report: &mut LoadReport,
) {
    // Each node has its own rank: place (part, segment) by rank rather than sort.
    let mut at_rank = vec![(u32::MAX, u32::MAX); nodes];
    for (p, (_, segments)) in parts.iter().enumerate() {
        for (i, (rank, _)) in segments.iter().enumerate() {
            if let (Some(at), Ok(p), Ok(i)) =
                (at_rank.get_mut(*rank), u32::try_from(p), u32::try_from(i))
            {
                *at = (p, i);
            }
        }
    }
    let mut lists: Vec<_> = parts
        .into_iter()
        .map(|(r, segments)| {
            let diagnostics: Vec<_> = r.diagnostics.0.into_iter().map(Some).collect();
            (r.started, r.updated, diagnostics, segments)
        })
        .collect();
    report
        .started
        .reserve(lists.iter().map(|l| l.0.len()).sum());
    for &(p, i) in at_rank.iter().filter(|&&(p, _)| p != u32::MAX) {
        let Some((started, updated, diagnostics, segments)) = lists.get_mut(p as usize) else {
            continue;
        };
        let Some((_, s)) = segments.get(i as usize) else {
            continue;
        };
        if let Some(names) = started.get_mut(s.started.clone()) {
            report.started.extend(names.iter_mut().map(std::mem::take));
        }
        if let Some(names) = updated.get_mut(s.updated.clone()) {
            report.updated.extend(names.iter_mut().map(std::mem::take));
        }
        if let Some(found) = diagnostics.get_mut(s.diagnostics.clone()) {
            report
                .diagnostics
                .0
                .extend(found.iter_mut().filter_map(Option::take));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's report that started `names`, the node of rank `ranks[k]` having started `names[k]`.
    fn part(names: &[&str], ranks: &[usize]) -> (LoadReport, Vec<(usize, Segment)>) {
        let mut report = LoadReport::default();
        let mut segments = Vec::new();
        for (k, (name, &rank)) in names.iter().zip(ranks).enumerate() {
            report.started.push(crate::ComponentId::from(*name));
            segments.push((
                rank,
                Segment {
                    started: k..k + 1,
                    updated: 0..0,
                    diagnostics: 0..0,
                },
            ));
        }
        (report, segments)
    }

    #[test]
    fn reports_merge_in_rank_order_whichever_threads_took_part() {
        // Threads 0 and 2 of three evaluated nodes; thread 1 never ran.
        let parts = vec![
            part(&["a", "d"], &[0, 3]),
            part(&["c", "b", "e"], &[2, 1, 4]),
        ];
        let mut report = LoadReport::default();
        merge_reports(parts, 5, &mut report);
        assert_eq!(report.started, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_helper_goes_on_after_a_job_dropped_before_it_was_taken() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let _entered = rt.enter();
        let helpers = Helpers::start(2);
        // The helper is kept busy, so that the next job is still queued when its submitter is done with it.
        let (release, busy) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let first = helpers
            .submit(move || started.send(()).is_ok() && busy.recv().is_ok())
            .unwrap();
        running
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let dropped = helpers.submit(|| 0u8).unwrap();
        assert!(dropped.finish().is_none(), "no helper took it yet");
        release.send(()).unwrap();
        assert!(matches!(first.finish(), Some(Ok(ok)) if *ok));
        // The helper skips the dropped job and takes the next one.
        let (done, ran) = std::sync::mpsc::channel();
        let _next = helpers.submit(move || done.send(()).is_ok()).unwrap();
        assert!(
            ran.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
            "the helper never took the job after the dropped one"
        );
        helpers.close();
    }
}
