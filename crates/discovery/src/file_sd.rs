//! Prometheus file_sd target files: `[{targets: [...], labels: {...}}]` in JSON or YAML.

use relabel::{is_valid_label_name, Target};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The label holding the file a target came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";
/// The label holding a target's address.
pub const ADDRESS_LABEL: &str = "__address__";

/// Why a target file was refused. The text names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The OS refused or failed the read.
    #[error("failed to read {path:?}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The content is not a valid target list.
    #[error("failed to parse {path:?}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with a position where the parser gives one.
        message: String,
    },
    /// The name does not end in `.json`, `.yml` or `.yaml`.
    #[error("{path:?}: unsupported file extension, expected .json, .yml or .yaml")]
    Extension {
        /// The file.
        path: String,
    },
}

/// The format a file name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.json`
    Json,
    /// `.yml` / `.yaml`
    Yaml,
}

impl Format {
    /// From the extension, ignoring case as the reference does.
    pub fn of(path: &str) -> Option<Format> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yml" | "yaml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// One target group as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[serde(default)]
    targets: Vec<Scalar>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Scalar>>,
}

/// A string, or (in YAML) another scalar taken as its text, as the reference's YAML decoder does.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a target file's content into targets: one per entry of each group's `targets`, with the group's
/// labels, `__address__` and `__meta_filepath` (= `path`).
pub fn parse(path: &str, content: &str) -> Result<Vec<Target>, FileError> {
    let parse_err = |message: String| FileError::Parse {
        path: path.to_string(),
        message,
    };
    let groups: Vec<Option<Group>> = match Format::of(path) {
        Some(Format::Json) => {
            if content.trim().is_empty() {
                // Also what the reference says for an empty JSON file.
                return Err(parse_err("unexpected end of JSON input".into()));
            }
            serde_json::from_str(content).map_err(|e| parse_err(e.to_string()))?
        }
        Some(Format::Yaml) => {
            // An empty YAML document is an empty list, as in the reference.
            let doc = serde_yaml_ng::from_str::<Option<Vec<Option<Group>>>>(content)
                .map_err(|e| parse_err(e.to_string()))?;
            doc.unwrap_or_default()
        }
        None => {
            return Err(FileError::Extension {
                path: path.to_string(),
            })
        }
    };
    let mut targets = Vec::new();
    for group in groups {
        let Some(group) = group else {
            return Err(parse_err("nil target group item found".into()));
        };
        let labels = group.labels.unwrap_or_default();
        if let Some(bad) = labels.keys().find(|n| !is_valid_label_name(n)) {
            return Err(parse_err(format!("{bad:?} is not a valid label name")));
        }
        for address in group.targets {
            let pairs = labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.0.as_str()))
                .chain([(FILEPATH_LABEL, path), (ADDRESS_LABEL, address.0.as_str())]);
            targets.push(Target::from_pairs(pairs));
        }
    }
    Ok(targets)
}

/// Reads and parses a target file.
pub fn read(path: &Path) -> Result<Vec<Target>, FileError> {
    let name = path.display().to_string();
    let content = std::fs::read_to_string(path).map_err(|error| FileError::Io {
        path: name.clone(),
        error,
    })?;
    parse(&name, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Target) -> Vec<(String, String)> {
        t.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn json_groups_become_targets_with_their_labels() {
        let content = r#"[
            {"targets": ["a:1", "b:2"], "labels": {"env": "prod", "__address__": "ignored"}},
            {"targets": ["c:3"]}
        ]"#;
        let ts = parse("/sd/x.json", content).unwrap();
        assert_eq!(ts.len(), 3);
        assert_eq!(
            labels(&ts[0]),
            [
                ("__address__".into(), "a:1".into()),
                ("__meta_filepath".into(), "/sd/x.json".into()),
                ("env".into(), "prod".into())
            ]
        );
        assert_eq!(ts[2].get("__address__"), Some("c:3"));
        assert_eq!(ts[2].len(), 2);
    }

    #[test]
    fn yaml_groups_scalars_and_empty_documents() {
        let content = "- targets: ['a:1']\n  labels:\n    port: 8080\n    on: true\n";
        let ts = parse("x.YML", content).unwrap();
        assert_eq!(ts[0].get("port"), Some("8080"));
        assert_eq!(ts[0].get("on"), Some("true"));
        assert!(parse("x.yaml", "").unwrap().is_empty());
        assert!(parse("x.yaml", "# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn bad_content_is_an_error_naming_the_file() {
        for (path, content, want) in [
            ("f.json", "", "unexpected end of JSON input"),
            ("f.json", "[{\"targets\": [\"a\"]", "EOF"),
            ("f.json", "[null]", "nil target group item found"),
            ("f.json", "[{\"targetz\": []}]", "unknown field"),
            (
                "f.json",
                "[{\"targets\": [], \"labels\": {\"a-b\": \"x\"}}]",
                "not a valid label name",
            ),
            ("f.yaml", "- targets: [a\n", "f.yaml"),
            ("f.yaml", "- targets: {a: 1}\n", "f.yaml"),
        ] {
            let err = parse(path, content).unwrap_err().to_string();
            assert!(
                err.contains(path) && err.contains(want),
                "{path} {content:?}: {err}"
            );
        }
        assert!(matches!(
            parse("f.txt", "[]"),
            Err(FileError::Extension { .. })
        ));
    }
}
