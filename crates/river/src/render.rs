//! Rendering diagnostics for people. (Being implemented.)
