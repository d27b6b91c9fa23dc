//! The components built into the `rill` binary.

use std::sync::Arc;

/// The registry of built-in components. An embedder builds its own from [`flow::Registry::new`] and
/// registers these plus its own.
pub fn builtin_registry() -> Arc<flow::Registry> {
    let mut registry = flow::Registry::new();
    local_file::register(&mut registry).expect("built-in component names are valid and unique");
    pyroscope_scrape::register(&mut registry)
        .expect("built-in component names are valid and unique");
    discovery::register(&mut registry).expect("built-in component names are valid and unique");
    pyroscope_write::register(&mut registry)
        .expect("built-in component names are valid and unique");
    pyroscope_receive_http::register(&mut registry)
        .expect("built-in component names are valid and unique");
    pyroscope_file::register(&mut registry).expect("built-in component names are valid and unique");
    Arc::new(registry)
}
