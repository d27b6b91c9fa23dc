//! River, the configuration language of Rill (and of Grafana Agent Flow / Alloy).
//!
//! The pipeline is: [`lexer`] → [`parser`] → [`ast`] (with spans and comments) → [`eval`] against a scope →
//! [`Value`]s → [`decode`] into typed argument structs via serde. [`mod@format`] prints a file back in canonical
//! layout; [`render`] shows [`diag::Diagnostic`]s to people.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
pub mod decode;
pub mod diag;
pub mod encode;
pub mod eval;
pub mod format;
pub mod lexer;
pub mod literal;
pub mod object;
pub mod ops;
pub mod parser;
pub mod render;
pub mod riverjson;
pub mod span;
pub mod stdlib;
pub mod token;
pub mod types;
pub mod value;

pub use diag::{Diagnostic, Diagnostics, Severity, SourceFile};
pub use parser::parse;
pub use span::{Position, Span};
pub use value::{Capsule, CapsuleValue, Function, Number, Object, Secret, Value, ValueType};
