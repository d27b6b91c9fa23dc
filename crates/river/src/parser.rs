//! The parser. (Being implemented.)

use crate::ast::{Body, File};
use crate::diag::Diagnostics;

/// Parses `src` into a file and the diagnostics found. The file holds whatever could be recovered.
pub fn parse(src: &str) -> (File, Diagnostics) {
    (File { source: src.into(), body: Body::default(), comments: Vec::new() }, Diagnostics::new())
}
