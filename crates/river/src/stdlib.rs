//! The standard library. (Being implemented.)

use crate::eval::Scope;
use std::sync::{Arc, OnceLock};

/// The shared standard-library scope.
pub fn scope() -> Arc<Scope> {
    static SCOPE: OnceLock<Arc<Scope>> = OnceLock::new();
    SCOPE.get_or_init(|| Arc::new(Scope::new())).clone()
}

/// Whether `name` is a top-level standard-library identifier (a function, namespace or `constants`).
pub fn is_stdlib_name(name: &str) -> bool {
    scope().lookup(name).is_some()
}
