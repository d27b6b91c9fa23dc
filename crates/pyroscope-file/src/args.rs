//! The arguments of `pyroscope.file`.

use pyroscope::ByteSize;
use river::decode::Validate;
use river::types::Duration;
use serde::{Deserialize, Serialize};

/// The default `retention`: one day.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// The default `max_size`: 1 GiB.
pub const DEFAULT_MAX_SIZE: ByteSize = ByteSize::gib(1);

fn default_retention() -> Duration {
    DEFAULT_RETENTION
}

fn default_max_size() -> ByteSize {
    DEFAULT_MAX_SIZE
}

/// The `pyroscope.file` block.
///
/// ```river
/// pyroscope.file "local" {
///   directory = "/var/lib/rill/profiles" // default: the component's data directory
///   retention = "24h"                     // default "24h"
///   max_size  = "1GiB"                    // default "1GiB"
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Arguments {
    /// Where profiles are stored; empty means the component's data directory.
    #[serde(default)]
    pub directory: String,
    /// How long a profile is kept.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    /// The most the stored profiles may take on disk; the oldest are deleted beyond it.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
}

impl Default for Arguments {
    fn default() -> Self {
        Arguments {
            directory: String::new(),
            retention: DEFAULT_RETENTION,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

impl Validate for Arguments {
    fn validate(&self) -> Result<(), String> {
        if self.retention.as_nanos() <= 0 {
            return Err("retention must be greater than 0".into());
        }
        if self.max_size.as_u64() == 0 {
            return Err("max_size must be greater than 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<Arguments, String> {
        let src = format!("pyroscope.file \"a\" {{\n{body}\n}}\n");
        river::decode::decode_first_block_validated::<Arguments>(&src).map_err(|d| {
            d.iter()
                .map(|d| d.message.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    #[test]
    fn defaults_apply() {
        assert_eq!(decode("").unwrap(), Arguments::default());
    }

    #[test]
    fn every_argument_decodes() {
        let a = decode("directory = \"/x\"\nretention = \"2h\"\nmax_size = \"512MiB\"").unwrap();
        assert_eq!(a.directory, "/x");
        assert_eq!(a.retention, Duration::from_secs(7200));
        assert_eq!(a.max_size, ByteSize::mib(512));
        let a = decode("max_size = 4096").unwrap();
        assert_eq!(a.max_size, ByteSize(4096));
    }

    #[test]
    fn bad_values_are_rejected_with_a_reason() {
        assert!(decode("retention = \"0s\"")
            .unwrap_err()
            .contains("retention must be greater than 0"));
        assert!(decode("max_size = \"0B\"")
            .unwrap_err()
            .contains("max_size must be greater than 0"));
        let err = decode("max_size = \"lots\"").unwrap_err();
        assert!(err.contains("invalid size \"lots\""), "{err}");
    }
}
