//! The signal-handler side: a process CPU timer (`setitimer(ITIMER_PROF)`) raises SIGPROF on whichever thread
//! is using CPU; the handler unwinds that thread's stack into a slot of a ring allocated when the profile
//! starts. The handler never allocates, locks or blocks: it claims a slot with one compare-and-swap, writes
//! the frames with atomic stores and publishes the slot with a release store. A full ring drops the sample
//! and counts it. The profiling thread drains the ring every ~100 ms, so its size does not depend on how long
//! the profile runs.
//!
//! Unwinding uses libgcc's `_Unwind_Backtrace` (through `backtrace::trace_unsynchronized`, as pprof-rs
//! does), which reads `.eh_frame` and needs no frame pointers. Caveat: it is not formally async-signal-safe.
//! On glibc ≥ 2.35 the lookup of a PC's unwind table (`_dl_find_object`) takes no lock; on older glibc it
//! goes through `dl_iterate_phdr`, which takes the loader lock, so a SIGPROF landing in a thread that holds
//! that lock (inside `dlopen`, or while it unwinds itself) could deadlock that thread. Rill does not dlopen
//! after start-up, and panics unwind rarely; pprof-rs carries the same risk.

use std::ffi::{c_int, c_void};
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The deepest stack kept; deeper stacks keep their innermost frames.
pub(crate) const MAX_FRAMES: usize = 64;

/// Slot states: free, being written by a handler, or (any other value) ready with that many frames.
const FREE: u32 = 0;
const WRITING: u32 = u32::MAX;

/// Samples waiting for the profiling thread.
pub(crate) struct Ring {
    state: Box<[AtomicU32]>,
    /// `MAX_FRAMES` addresses per slot, leaf first: the interrupted PC, then return addresses minus one (so
    /// each points into its call instruction).
    frames: Box<[AtomicUsize]>,
    next: AtomicUsize,
    dropped: AtomicU64,
    /// Samples whose unwinding never reached the interrupted frame; they keep only the interrupted PC.
    shallow: AtomicU64,
}

impl Ring {
    pub(crate) fn new(slots: usize) -> Ring {
        let slots = slots.max(1);
        Ring {
            state: (0..slots).map(|_| AtomicU32::new(FREE)).collect(),
            frames: (0..slots * MAX_FRAMES)
                .map(|_| AtomicUsize::new(0))
                .collect(),
            next: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            shallow: AtomicU64::new(0),
        }
    }

    /// Records the current thread's stack, from the frame interrupted at `pc` outwards. Runs in the signal
    /// handler: atomics only, no allocation, no locks, no panics (all indexing is checked with `get`).
    fn record(&self, pc: usize) {
        let slots = self.state.len();
        let idx = self.next.fetch_add(1, Ordering::Relaxed) % slots;
        let Some(state) = self.state.get(idx) else {
            return;
        };
        // Acquire pairs with the drain's release of FREE: its reads of this slot are done.
        if state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(slot) = self.frames.get(idx * MAX_FRAMES..(idx + 1) * MAX_FRAMES) else {
            state.store(FREE, Ordering::Release);
            return;
        };
        let mut len = 0;
        let mut reached = false;
        // SAFETY: `trace_unsynchronized` is only unsafe because it does not take backtrace's global lock; we
        // must not take locks in a signal handler, and unwinding the current thread's own stack needs no
        // synchronization with other threads. The closure neither allocates nor panics. See the module
        // comment for the loader-lock caveat of `_Unwind_Backtrace`.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                let ip = frame.ip() as usize;
                if !reached {
                    // Frames of this handler and the signal trampoline come first: skip to the interrupted
                    // frame, whose IP is exactly the PC saved in the signal context.
                    reached = ip == pc;
                    if !reached {
                        return true;
                    }
                }
                if ip == 0 {
                    return false;
                }
                let addr = if len == 0 { ip } else { ip - 1 };
                match slot.get(len) {
                    Some(cell) => cell.store(addr, Ordering::Relaxed),
                    None => return false,
                }
                len += 1;
                len < MAX_FRAMES
            });
        }
        if len == 0 {
            // The unwinder could not get from the handler to the interrupted frame (e.g. code without unwind
            // tables): the PC alone still says where the CPU went.
            if let Some(cell) = slot.first() {
                cell.store(pc, Ordering::Relaxed);
            }
            len = 1;
            self.shallow.fetch_add(1, Ordering::Relaxed);
        }
        // Release publishes the frames to the drain's acquire load.
        state.store(len as u32, Ordering::Release);
    }

    /// Hands every ready sample to `f` and frees its slot. Only the profiling thread calls this.
    pub(crate) fn drain(&self, mut f: impl FnMut(&[usize])) {
        let mut buf = [0usize; MAX_FRAMES];
        for (idx, state) in self.state.iter().enumerate() {
            let n = state.load(Ordering::Acquire);
            if n == FREE || n == WRITING {
                continue;
            }
            let n = (n as usize).min(MAX_FRAMES);
            let base = idx * MAX_FRAMES;
            for (j, b) in buf[..n].iter_mut().enumerate() {
                *b = self.frames[base + j].load(Ordering::Relaxed);
            }
            state.store(FREE, Ordering::Release);
            f(&buf[..n]);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn shallow(&self) -> u64 {
        self.shallow.load(Ordering::Relaxed)
    }
}

/// The ring of the running profile, or null.
static ACTIVE: AtomicPtr<Ring> = AtomicPtr::new(ptr::null_mut());
/// Handlers currently between loading `ACTIVE` and being done with the ring.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// One sampler at a time: the timer and the signal are process-wide.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Whether this platform has a sampler (Linux on x86_64 or aarch64: where the interrupted PC is read from
/// the signal context).
pub(crate) const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// Why a sampler could not start.
pub(crate) enum StartError {
    Busy,
    Unsupported,
    Os(io::Error),
}

/// The running sampler. Dropping it stops the timer and frees the ring.
pub(crate) struct Sampler {
    ring: *mut Ring,
    stopped: bool,
}

// SAFETY: `Sampler` only holds a pointer to a `Ring` it owns (made by `Box::into_raw`); `Ring` is all atomics
// and therefore `Sync`, so moving the owner to another thread is sound.
unsafe impl Send for Sampler {}

impl Sampler {
    /// Starts sampling every `period` of process CPU time into a ring of `slots` samples.
    pub(crate) fn start(period: Duration, slots: usize) -> Result<Sampler, StartError> {
        if !SUPPORTED {
            return Err(StartError::Unsupported);
        }
        if BUSY
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(StartError::Busy);
        }
        if let Err(e) = install_handler() {
            BUSY.store(false, Ordering::Release);
            return Err(StartError::Os(e));
        }
        let ring = Box::into_raw(Box::new(Ring::new(slots)));
        ACTIVE.store(ring, Ordering::SeqCst);
        let sampler = Sampler {
            ring,
            stopped: false,
        };
        // On failure, dropping `sampler` undoes the above.
        set_timer(period).map_err(StartError::Os)?;
        Ok(sampler)
    }

    pub(crate) fn ring(&self) -> &Ring {
        // SAFETY: `ring` came from `Box::into_raw` in `start` and is freed only in `drop`, which takes the
        // sampler by value; no one holds a mutable reference to it (everything in it is atomic).
        unsafe { &*self.ring }
    }

    /// Stops the timer and waits until no handler uses the ring. Samples already recorded stay in the ring.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // Disarming cannot fail with valid arguments; if it did, handlers still find `ACTIVE` null below.
        let _ = set_timer(Duration::ZERO);
        ACTIVE.store(ptr::null_mut(), Ordering::SeqCst);
        // A handler increments IN_HANDLER before it loads ACTIVE (both SeqCst): once the count is zero after
        // the store above, no handler can still see this ring. Handlers take microseconds.
        while IN_HANDLER.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: `stop` guarantees no handler references the ring any more and `ACTIVE` no longer points to
        // it; `ring` came from `Box::into_raw` and is freed exactly once, here.
        drop(unsafe { Box::from_raw(self.ring) });
        BUSY.store(false, Ordering::Release);
    }
}

/// Installs the SIGPROF handler once, for the life of the process. It stays installed between profiles (it
/// does nothing when no profile runs) so that a SIGPROF still pending when a profile stops cannot hit the
/// default action, which would kill the process.
fn install_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        // SAFETY: `sigaction` is plain data; all-zero is a valid starting value (empty flags, null handler),
        // and every field we rely on is set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigprof as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)
            as libc::sighandler_t;
        // SA_RESTART: system calls interrupted in other threads are restarted instead of failing with EINTR.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `sa_mask` is a valid, exclusively borrowed sigset_t; `sigemptyset` only writes to it.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and outlives the call; a null old-action pointer is allowed.
        // The handler it installs is async-signal-safe in the sense described in the module comment.
        if unsafe { libc::sigaction(libc::SIGPROF, &action, ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(())
    });
    result.map_err(io::Error::from_raw_os_error)
}

/// Arms the process CPU-time timer to fire every `period`, or disarms it for zero.
fn set_timer(period: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: period.as_secs() as libc::time_t,
        tv_usec: period.subsec_micros() as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: `timer` is a valid itimerval that outlives the call; a null old-value pointer is allowed.
    if unsafe { libc::setitimer(libc::ITIMER_PROF, &timer, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn on_sigprof(_signal: c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    let errno = errno_location();
    // SAFETY: the errno location of the current thread is always valid for reads and writes. The unwinder
    // may clobber errno, and the interrupted code must not see it change.
    let saved_errno = unsafe { *errno };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let ring = ACTIVE.load(Ordering::SeqCst);
    if !ring.is_null() {
        // SAFETY: `Sampler::stop` nulls ACTIVE and then waits for IN_HANDLER to drop to zero before the ring
        // is freed; this handler counted itself in before loading the pointer, so the ring is alive until
        // the decrement below. The kernel passes a valid ucontext_t as the third argument of an SA_SIGINFO
        // handler.
        unsafe {
            if let Some(pc) = interrupted_pc(context) {
                (*ring).record(pc);
            }
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *errno = saved_errno };
}

#[cfg(target_os = "linux")]
fn errno_location() -> *mut c_int {
    // SAFETY: `__errno_location` has no preconditions and is async-signal-safe.
    unsafe { libc::__errno_location() }
}

#[cfg(not(target_os = "linux"))]
fn errno_location() -> *mut c_int {
    // Never reached: the sampler does not start on other platforms. A thread-local dummy keeps it sound.
    thread_local!(static DUMMY: std::cell::Cell<c_int> = const { std::cell::Cell::new(0) });
    DUMMY.with(|d| d.as_ptr())
}

/// The PC at which the signal interrupted the thread.
///
/// # Safety
/// `context` is null or the `ucontext_t` the kernel passed to an SA_SIGINFO handler.
#[allow(unused_variables)]
unsafe fn interrupted_pc(context: *mut c_void) -> Option<usize> {
    if context.is_null() {
        return None;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        let uc = context as *const libc::ucontext_t;
        // SAFETY: the caller guarantees `context` is the kernel's ucontext_t; REG_RIP indexes its saved
        // general registers.
        let rip = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] };
        Some(rip as usize)
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        let uc = context as *const libc::ucontext_t;
        // SAFETY: the caller guarantees `context` is the kernel's ucontext_t.
        let pc = unsafe { (*uc).uc_mcontext.pc };
        Some(pc as usize)
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_when_full_and_frees_on_drain() {
        let ring = Ring::new(2);
        // Recording outside a signal handler: the PC is unknown, so every sample is shallow.
        for _ in 0..3 {
            ring.record(0x1234);
        }
        assert_eq!(ring.dropped(), 1);
        let mut seen = Vec::new();
        ring.drain(|s| seen.push(s.to_vec()));
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|s| !s.is_empty()));
        // Drained slots are free again.
        ring.record(0x1234);
        let mut again = 0;
        ring.drain(|_| again += 1);
        assert_eq!(again, 1);
    }
}
