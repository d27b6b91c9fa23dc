//! The `rill` command. (Being implemented.)
#![forbid(unsafe_code)]

fn main() {}
