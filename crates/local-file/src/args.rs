//! The arguments of `local.file` and how they decode.

use river::decode::Validate;
use river::types::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// How changes to the file are noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Detector {
    /// File-system events (inotify, FSEvents, ...), with polling at `poll_frequency` as a fallback.
    #[default]
    Fsnotify,
    /// Re-read the file every `poll_frequency`.
    Poll,
}

impl Detector {
    /// The River spelling: `fsnotify` or `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Fsnotify => "fsnotify",
            Detector::Poll => "poll",
        }
    }

    /// Parses the River spelling; the empty string means the default, as in the reference.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "" | "fsnotify" => Ok(Detector::Fsnotify),
            "poll" => Ok(Detector::Poll),
            other => Err(format!(
                "unrecognized detector {}, expected fsnotify or poll",
                river::parser::go_quote(other)
            )),
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Detector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Detector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, so that River reports an error at the value's own position.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Detector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a detector name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Detector, E> {
                Detector::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// The default `poll_frequency`: one minute.
pub const DEFAULT_POLL_FREQUENCY: Duration = Duration::from_secs(60);

fn default_poll_frequency() -> Duration {
    DEFAULT_POLL_FREQUENCY
}

/// The `local.file` block.
///
/// ```river
/// local.file "token" {
///   filename       = "/var/run/secrets/token"
///   detector       = "poll"   // or "fsnotify" (the default)
///   poll_frequency = "30s"    // default "1m"
///   is_secret      = true     // default false
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Arguments {
    /// The file to read and follow. Relative paths are relative to the process's working directory.
    pub filename: String,
    /// How changes are noticed.
    #[serde(default)]
    pub detector: Detector,
    /// How often the file is re-read: the only mechanism with `poll`, a safety net with `fsnotify`.
    #[serde(default = "default_poll_frequency")]
    pub poll_frequency: Duration,
    /// Whether the content is a secret: then it is exported as a `secret` and never shown.
    #[serde(default)]
    pub is_secret: bool,
}

impl Arguments {
    /// Arguments for `filename` with every default.
    pub fn new(filename: impl Into<String>) -> Self {
        Arguments {
            filename: filename.into(),
            detector: Detector::default(),
            poll_frequency: DEFAULT_POLL_FREQUENCY,
            is_secret: false,
        }
    }
}

impl Validate for Arguments {
    fn validate(&self) -> Result<(), String> {
        if self.poll_frequency.as_nanos() <= 0 {
            return Err("poll_frequency must be greater than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<Arguments, String> {
        let src = format!("local.file \"a\" {{\n{body}\n}}\n");
        river::decode::decode_first_block_validated::<Arguments>(&src).map_err(|d| {
            d.iter()
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    #[test]
    fn defaults_apply() {
        let args = decode(r#"filename = "/x""#).unwrap();
        assert_eq!(args, Arguments::new("/x"));
        assert_eq!(args.detector, Detector::Fsnotify);
        assert_eq!(args.poll_frequency, Duration::from_secs(60));
        assert!(!args.is_secret);
    }

    #[test]
    fn every_argument_decodes() {
        let args = decode(
            r#"filename = "f"
               detector = "poll"
               poll_frequency = "250ms"
               is_secret = true"#,
        )
        .unwrap();
        assert_eq!(args.detector, Detector::Poll);
        assert_eq!(args.poll_frequency, Duration::from_millis(250));
        assert!(args.is_secret);
        // The empty string means the default, as in the reference.
        let args = decode("filename = \"f\"\ndetector = \"\"").unwrap();
        assert_eq!(args.detector, Detector::Fsnotify);
    }

    #[test]
    fn an_unknown_detector_is_rejected_with_the_reference_message() {
        let err = decode("filename = \"f\"\ndetector = \"inotify\"").unwrap_err();
        assert!(
            err.contains(r#"unrecognized detector "inotify", expected fsnotify or poll"#),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_detector_is_reported_at_its_value() {
        let src = "local.file \"a\" {\n  filename = \"f\"\n  detector = \"inotify\"\n}\n";
        let diags = river::decode::decode_first_block_validated::<Arguments>(src).unwrap_err();
        let d = diags.iter().next().expect("one diagnostic");
        assert_eq!(
            &src[d.span.start as usize..d.span.end as usize],
            "\"inotify\""
        );
    }

    #[test]
    fn filename_is_required() {
        let err = decode("is_secret = true").unwrap_err();
        assert!(err.contains("filename"), "{err}");
    }

    #[test]
    fn poll_frequency_must_be_positive() {
        for bad in ["0s", "-1s"] {
            let err = decode(&format!("filename = \"f\"\npoll_frequency = \"{bad}\"")).unwrap_err();
            assert!(
                err.contains("poll_frequency must be greater than 0"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn detector_round_trips_through_its_spelling() {
        for d in [Detector::Fsnotify, Detector::Poll] {
            assert_eq!(Detector::parse(d.as_str()), Ok(d));
        }
    }
}
