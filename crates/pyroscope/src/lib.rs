//! Profile plumbing shared by Rill's profile components.
//!
//! - [`Labels`]: a sorted label set, the identity of a profile series.
//! - [`Receiver`]: what a `forward_to` list carries — a capsule around a shared [`Appender`]. `pyroscope.write`,
//!   `pyroscope.file` and others export one; `pyroscope.scrape` and `pyroscope.receive_http` send to them.
//! - [`fanout`]: sends one batch to several receivers at once.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod labels;
pub mod pprof;
pub mod push;
pub mod receiver;
pub mod size;

pub use labels::{Label, Labels};
pub use receiver::{fanout, AppendError, Appender, FanoutError, RawSample, Receiver};
pub use size::ByteSize;
