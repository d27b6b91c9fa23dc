//! Prometheus-compatible target relabelling.
//!
//! - [`Target`]: an immutable, sorted label set, cheap to clone (names shared by targets that have the same).
//! - [`Rule`]: one `rule { ... }` block, decoded and validated with Prometheus's checks and messages.
//! - [`Rules`]: a list of rules; also the `rules` capsule that `discovery.relabel` exports and other
//!   components take (as `TypedCapsule<Rules>`).
//! - [`Relabeler`]: applies rules to targets with Prometheus's exact semantics (`model/relabel`), reusing its
//!   buffers so that targets no rule changes cost no allocation.
//!
//! Regexes are fully anchored (`^(?s:REGEX)$`) and follow Go's RE2 semantics (see [`regexp`]);
//! replacements expand like Go's `Regexp.Expand` (`$1`, `${1}`, `${name}`; `$1x` is the group named `1x`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backtrack;
mod fast;
mod labels;
#[cfg(test)]
mod model_tests;
mod process;
pub mod regexp;
mod rule;

pub use labels::{targets_to_value, Target};
pub use process::Relabeler;
pub use regexp::{Locations, RegexError, Regexp};
pub use rule::{
    is_valid_label_name, is_valid_label_template, Action, Rule, DEFAULT_REPLACEMENT,
    DEFAULT_SEPARATOR,
};

use std::fmt;
use std::sync::Arc;

/// An ordered list of rules, shared. As a capsule it compares by content, so re-exporting the same rules does
/// not re-evaluate the components that take them.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Rules(Arc<[Rule]>);

impl Rules {
    /// Rules from a list.
    pub fn new(rules: Vec<Rule>) -> Self {
        Rules(rules.into())
    }

    /// The rules, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Rule> {
        self.0.iter()
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rules as a slice.
    pub fn as_slice(&self) -> &[Rule] {
        &self.0
    }

    /// Applies the rules to every target (a fresh [`Relabeler`]; keep one to reuse its buffers).
    pub fn apply(&self, targets: &[Target]) -> Vec<Target> {
        Relabeler::new(self.clone()).process_all(targets)
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// The capsule's type name, shown in the UI and in type errors.
pub const RULES_CAPSULE_NAME: &str = "relabel.Rules";

impl river::CapsuleValue for Rules {
    fn type_name(&self) -> &str {
        RULES_CAPSULE_NAME
    }
    fn capsule_eq(&self, other: &dyn river::CapsuleValue) -> bool {
        other
            .as_any()
            .downcast_ref::<Rules>()
            .is_some_and(|o| o == self)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
