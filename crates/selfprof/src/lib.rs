//! A small CPU sampler for the process itself, writing pprof profiles.
//!
//! While a profile runs, the process CPU timer (`setitimer(ITIMER_PROF)`) raises SIGPROF at the requested
//! frequency on whichever thread is using CPU, and the handler unwinds that thread's stack into a ring of
//! slots allocated when the profile starts (atomics only, nothing allocated or locked in the handler; a full
//! ring drops and counts samples). The profiling thread drains the ring every
//! [`DRAIN_EVERY`] into a map of identical stacks. At the end the unique addresses are symbolized once and
//! written as a pprof `Profile`: by default with function names from the ELF symbol tables (milliseconds),
//! or on request through the DWARF debug info with inlined frames, files and lines ([`Symbols::Lines`], far
//! more costly: see `symtab.rs`).
//!
//! Nothing stays allocated between profiles: the ring, the stack map and the symbol caches live only as long
//! as one profile.
//!
//! This is the only crate of the workspace with `unsafe` code (the signal handler, the timer and the ring's
//! lifetime); every block says why it is sound.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

/// The pprof protobuf messages (shared with the rest of the workspace).
pub use pyroscope::pprof::proto;
mod sampler;
mod symtab;

use std::collections::HashMap;
use std::ffi::c_void;
use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use sampler::{Sampler, StartError, MAX_FRAMES};

/// How often the profiling thread moves samples from the ring into the stack map.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// The highest sampling frequency accepted (the kernel's timer resolution makes more meaningless).
pub const MAX_FREQUENCY: u32 = 1000;

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another profile is running in this process (the timer and the signal are process-wide).
    #[error("a CPU profile is already running in this process")]
    Busy,
    /// No sampler for this platform.
    #[error("CPU profiling is only available on Linux (x86_64, aarch64)")]
    Unsupported,
    /// A frequency outside 1 to [`MAX_FREQUENCY`] Hz.
    #[error("sampling frequency must be from 1 to {MAX_FREQUENCY} Hz, got {0}")]
    BadFrequency(u32),
    /// Installing the signal handler or arming the timer failed.
    #[error("starting the CPU timer failed: {0}")]
    Os(#[from] std::io::Error),
}

/// A running CPU profile. Call [`Session::collect`] at least every [`DRAIN_EVERY`] (or samples are dropped
/// once the ring fills), then [`Session::finish`]. Dropping it stops sampling.
pub struct Session {
    sampler: Sampler,
    stacks: HashMap<Box<[usize]>, u64>,
    frequency: u32,
    started: Instant,
    start_time: SystemTime,
}

impl Session {
    /// Starts sampling the process's CPU at `frequency` Hz.
    pub fn start(frequency: u32) -> Result<Session, Error> {
        if !(1..=MAX_FREQUENCY).contains(&frequency) {
            return Err(Error::BadFrequency(frequency));
        }
        let period = Duration::from_nanos(1_000_000_000 / u64::from(frequency));
        let sampler = Sampler::start(period, ring_slots(frequency)).map_err(|e| match e {
            StartError::Busy => Error::Busy,
            StartError::Unsupported => Error::Unsupported,
            StartError::Os(e) => Error::Os(e),
        })?;
        Ok(Session {
            sampler,
            stacks: HashMap::new(),
            frequency,
            started: Instant::now(),
            start_time: SystemTime::now(),
        })
    }

    /// Moves the samples recorded so far into the stack map.
    pub fn collect(&mut self) {
        let stacks = &mut self.stacks;
        self.sampler
            .ring()
            .drain(|stack| match stacks.get_mut(stack) {
                Some(n) => *n += 1,
                None => {
                    stacks.insert(stack.into(), 1);
                }
            });
    }

    /// Stops sampling and returns what was sampled (not yet symbolized).
    pub fn finish(mut self) -> Report {
        self.sampler.stop();
        self.collect();
        let ring = self.sampler.ring();
        Report {
            dropped: ring.dropped(),
            shallow: ring.shallow(),
            stacks: self.stacks.into_iter().collect(),
            frequency: self.frequency,
            duration: self.started.elapsed(),
            start_time: self.start_time,
        }
    }
}

/// Samples for `duration`, or until `stop` receives a message or its sender is dropped, at `frequency` Hz.
/// Blocks the calling thread (which drains the ring meanwhile).
pub fn profile(
    duration: Duration,
    frequency: u32,
    stop: &mpsc::Receiver<()>,
) -> Result<Report, Error> {
    let mut session = Session::start(frequency)?;
    let deadline = Instant::now() + duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match stop.recv_timeout(left.min(DRAIN_EVERY)) {
            Err(mpsc::RecvTimeoutError::Timeout) => session.collect(),
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(session.finish())
}

/// Slots in the ring: enough for every CPU to be busy for four drain intervals.
fn ring_slots(frequency: u32) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_drain = (frequency as usize * DRAIN_EVERY.as_millis() as usize).div_ceil(1000);
    (per_drain * cpus * 4).clamp(64, 8192)
}

/// The bytes the ring of a profile at `frequency` Hz takes (allocated for the profile's duration only).
pub fn ring_bytes(frequency: u32) -> usize {
    ring_slots(frequency) * (MAX_FRAMES * std::mem::size_of::<usize>() + 4)
}

/// Names the functions of a profile made elsewhere in this process (e.g. a jemalloc heap profile) whose
/// locations carry mappings and addresses but no lines, from the ELF symbol tables of the mapped files, as
/// [`Symbols::Names`] does. Locations that already have lines are left alone.
pub fn add_function_names(profile: &mut proto::Profile) {
    symtab::add_function_names(profile);
}

/// How addresses become names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Symbols {
    /// Function names from the symbol tables of the mapped objects; inlined functions count in their caller,
    /// no files or lines. A few milliseconds and a few MB per profile.
    #[default]
    Names,
    /// Function names, inlined frames, source files and lines from the DWARF debug info
    /// (`backtrace::resolve`, its caches cleared afterwards). Costly in a large binary: hundreds of
    /// milliseconds and tens of MB of heap per profile.
    Lines,
}

/// A finished profile: identical stacks aggregated, addresses not yet symbolized.
pub struct Report {
    stacks: Vec<(Box<[usize]>, u64)>,
    dropped: u64,
    shallow: u64,
    frequency: u32,
    duration: Duration,
    start_time: SystemTime,
}

impl Report {
    /// Samples recorded.
    pub fn samples(&self) -> u64 {
        self.stacks.iter().map(|(_, n)| n).sum()
    }

    /// Samples dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Distinct stacks.
    pub fn unique_stacks(&self) -> usize {
        self.stacks.len()
    }

    /// How long the profile ran.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Symbolizes the stacks and builds the pprof profile: sample types `samples/count` and
    /// `cpu/nanoseconds`, period type `cpu/nanoseconds`, one mapping per executable file mapping, functions
    /// named as `symbols` says.
    pub fn to_profile(&self, symbols: Symbols) -> proto::Profile {
        let mut b = Builder::default();
        b.string(""); // Index 0 is always the empty string.
        let maps = symtab::mappings();
        for (i, m) in maps.iter().enumerate() {
            let filename = b.string(&m.path);
            b.mappings.push(proto::Mapping {
                id: i as u64 + 1,
                memory_start: m.start,
                memory_limit: m.end,
                file_offset: m.offset,
                filename,
                has_functions: true,
                has_filenames: symbols == Symbols::Lines,
                has_line_numbers: symbols == Symbols::Lines,
                has_inline_frames: symbols == Symbols::Lines,
                ..Default::default()
            });
        }
        b.maps = maps;
        if symbols == Symbols::Names {
            let mut addrs: Vec<usize> = self
                .stacks
                .iter()
                .flat_map(|(s, _)| s.iter().copied())
                .collect();
            addrs.sort_unstable();
            addrs.dedup();
            b.names = Some(symtab::resolve_all(&addrs, &b.maps));
        }
        let samples_count = proto::ValueType {
            r#type: b.string("samples"),
            unit: b.string("count"),
        };
        let cpu_ns = proto::ValueType {
            r#type: b.string("cpu"),
            unit: b.string("nanoseconds"),
        };
        let period = 1_000_000_000 / i64::from(self.frequency);
        let mut sample = Vec::with_capacity(self.stacks.len());
        for (stack, count) in &self.stacks {
            let location_id = stack.iter().map(|&addr| b.location(addr)).collect();
            let n = *count as i64;
            sample.push(proto::Sample {
                location_id,
                value: vec![n, n * period],
                label: Vec::new(),
            });
        }
        if symbols == Symbols::Lines {
            // The symbol caches (parsed debug info of every object file) would otherwise stay for good.
            backtrace::clear_symbol_cache();
        }
        let mut comment = Vec::new();
        if self.dropped > 0 {
            comment.push(b.string(&format!(
                "{} samples dropped: the sample buffer was full",
                self.dropped
            )));
        }
        if self.shallow > 0 {
            comment.push(b.string(&format!(
                "{} samples could not be unwound past the interrupted function",
                self.shallow
            )));
        }
        let time_nanos = self
            .start_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        proto::Profile {
            sample_type: vec![samples_count, cpu_ns],
            sample,
            mapping: b.mappings,
            location: b.locations,
            function: b.functions,
            string_table: b.strings,
            time_nanos,
            duration_nanos: self.duration.as_nanos() as i64,
            period_type: Some(cpu_ns),
            period,
            comment,
            ..Default::default()
        }
    }

    /// The profile as Go's `net/http/pprof` serves it: gzip-compressed protobuf.
    pub fn to_gzip_pprof(&self, symbols: Symbols) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(&self.to_profile(symbols));
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 3),
            flate2::Compression::default(),
        );
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(&raw);
        gz.finish().unwrap_or_default()
    }
}

/// Interns strings, functions and locations while a profile is built.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<usize, u64>,
    mappings: Vec<proto::Mapping>,
    maps: Vec<symtab::Mapping>,
    /// Names from the symbol tables ([`Symbols::Names`]), or `None` to resolve through DWARF.
    names: Option<HashMap<usize, String>>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        self.functions.push(proto::Function {
            id,
            name: key.0,
            system_name: key.0,
            filename: key.1,
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }

    /// The location of `addr` (a PC inside the instruction of interest), symbolized on first sight.
    fn location(&mut self, addr: usize) -> u64 {
        if let Some(&id) = self.location_ids.get(&addr) {
            return id;
        }
        let line = match &self.names {
            Some(names) => {
                let name = names
                    .get(&addr)
                    .cloned()
                    .unwrap_or_else(|| format!("{addr:#x}"));
                vec![proto::Line {
                    function_id: self.function(&name, ""),
                    line: 0,
                    column: 0,
                }]
            }
            None => self.dwarf_lines(addr),
        };
        let id = self.locations.len() as u64 + 1;
        let a = addr as u64;
        let mapping_id = self
            .maps
            .iter()
            .position(|m| m.start <= a && a < m.end)
            .map_or(0, |i| i as u64 + 1);
        self.locations.push(proto::Location {
            id,
            mapping_id,
            address: addr as u64,
            line,
            is_folded: false,
        });
        self.location_ids.insert(addr, id);
        id
    }

    /// The (possibly inlined) lines of `addr` from the debug info, innermost first.
    fn dwarf_lines(&mut self, addr: usize) -> Vec<proto::Line> {
        let mut symbols = Vec::new();
        // `resolve` looks up `addr - 1` (it expects return addresses); the stored addresses already point
        // into the instruction, so pass one past it. Inlined frames come innermost first, as pprof wants.
        backtrace::resolve(addr.wrapping_add(1) as *mut c_void, |sym| {
            let name = match sym.name() {
                // `{:#}` leaves out the hash suffix of Rust symbols.
                Some(n) => format!("{n:#}"),
                None => format!("{addr:#x}"),
            };
            let file = sym
                .filename()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            symbols.push((name, file, sym.lineno().unwrap_or(0)));
        });
        symbols
            .iter()
            .map(|(name, file, line)| proto::Line {
                function_id: self.function(name, file),
                line: i64::from(*line),
                column: 0,
            })
            .collect()
    }
}
