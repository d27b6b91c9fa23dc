//! The `rule` block: one relabelling step, decoded and validated as Prometheus validates it.

use crate::regexp::{self, Regexp, DEFAULT_REGEX};
use river::decode::Validate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Set `target_label` to `replacement` (expanded) if `regex` matches the joined source values.
    #[default]
    Replace,
    /// Drop the target unless `regex` matches.
    Keep,
    /// Drop the target if `regex` matches.
    Drop,
    /// Drop the target unless the joined source values equal the value of `target_label`.
    KeepEqual,
    /// Drop the target if the joined source values equal the value of `target_label`.
    DropEqual,
    /// Set `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name given by `replacement`.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the joined source values in lower case.
    Lowercase,
    /// Set `target_label` to the joined source values in upper case.
    Uppercase,
}

impl Action {
    /// Every action, in documentation order.
    pub const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The River spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Parses an action name, ignoring case as the reference does.
    pub fn parse(text: &str) -> Result<Action, String> {
        let lower = text.to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| format!("unrecognized action type {}", river::parser::go_quote(text)))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so that River reports an error at the value's own position.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a relabel action")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Action, E> {
                Action::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// The default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}
fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

/// One `rule` block.
///
/// ```river
/// rule {
///   source_labels = ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_name"]
///   separator     = "/"        // default ";"
///   regex         = "(.*)"     // default "(.*)", fully anchored
///   target_label  = "instance"
///   replacement   = "$1"       // default "$1"
///   action        = "replace"  // default "replace"
///   modulus       = 0          // hashmod only
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rule {
    /// Labels whose values are joined with `separator` into the value the rule looks at. `None` when the
    /// attribute is not written (labeldrop/labelkeep forbid writing it at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    /// Put between the source values.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Matched against the joined value (or label names for labelmap/labeldrop/labelkeep).
    #[serde(default = "Regexp::default_regex")]
    pub regex: Regexp,
    /// For hashmod.
    #[serde(default)]
    pub modulus: u64,
    /// The label written (replace, hashmod, lowercase, uppercase) or compared (keepequal, dropequal).
    #[serde(default)]
    pub target_label: String,
    /// What replace writes and labelmap renames to; `$1`, `${name}` refer to capture groups.
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// What the rule does.
    #[serde(default)]
    pub action: Action,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            source_labels: None,
            separator: default_separator(),
            regex: Regexp::default_regex(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prometheus's `relabelTarget`: `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`, a label name that may contain
/// `$1` / `${name}` references.
pub fn is_valid_label_template(name: &str) -> bool {
    static RE: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$",
        )
        .ok()
    });
    RE.as_ref().is_some_and(|re| re.is_match(name))
}

impl Validate for Rule {
    /// Prometheus's checks and messages, in its order.
    fn validate(&self) -> Result<(), String> {
        let a = self.action;
        if a == Action::HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let writes = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if writes && self.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        let invalid_target = || {
            Err(format!(
                "{} is invalid 'target_label' for {a} action",
                river::parser::go_quote(&self.target_label)
            ))
        };
        let plain_target = matches!(
            a,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        );
        if a == Action::Replace && !is_valid_label_template(&self.target_label) {
            return invalid_target();
        }
        if (plain_target || a == Action::HashMod) && !is_valid_label_name(&self.target_label) {
            return invalid_target();
        }
        if plain_target && self.replacement != DEFAULT_REPLACEMENT {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == Action::LabelMap && !is_valid_label_template(&self.replacement) {
            return Err(format!(
                "{} is invalid 'replacement' for {a} action",
                river::parser::go_quote(&self.replacement)
            ));
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (self.source_labels.is_some()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

impl Rule {
    /// Whether `target_label` or `replacement` refer to capture groups.
    pub(crate) fn templates_have_vars(&self) -> bool {
        regexp::has_var(&self.target_label) || regexp::has_var(&self.replacement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_case_insensitively() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Ok(a));
            assert_eq!(Action::parse(&a.as_str().to_uppercase()), Ok(a));
        }
        assert_eq!(
            Action::parse("bogus"),
            Err(r#"unrecognized action type "bogus""#.to_string())
        );
    }

    #[test]
    fn label_names_and_templates() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("a-b"));
        assert!(is_valid_label_template("${1}"));
        assert!(is_valid_label_template("pre_$1_post"));
        assert!(!is_valid_label_template("a-$1"));
        assert!(!is_valid_label_template("$"));
    }
}
