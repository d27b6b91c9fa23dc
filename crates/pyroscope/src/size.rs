//! Byte sizes as users write them: `"1GiB"`, `"512MB"`, `"64KiB"`, or a plain number of bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A number of bytes, written with an optional unit: `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) or
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024). Units are case-insensitive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const UNITS: [(&str, u64); 10] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("", 1),
];

impl ByteSize {
    /// This many bytes.
    pub const fn bytes(n: u64) -> Self {
        ByteSize(n)
    }

    /// This many MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    /// This many GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n << 30)
    }

    /// The number of bytes.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses `"1GiB"`, `"1.5 GB"`, `"1024"`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let bad = || {
            format!(
                "invalid size {text:?}: expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        };
        let mult = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(bad)?;
        if num.is_empty() {
            return Err(bad());
        }
        let bytes = if let Ok(n) = num.parse::<u64>() {
            n.checked_mul(mult)
                .ok_or_else(|| format!("size {text:?} is too large"))?
        } else {
            let f: f64 = num.parse().map_err(|_| bad())?;
            let b = f * mult as f64;
            if !b.is_finite() || b >= u64::MAX as f64 {
                return Err(format!("size {text:?} is too large"));
            }
            b as u64
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly, e.g. `1GiB`, `1500B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, mult) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= mult && self.0 & (mult - 1) == 0 {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"1GiB\" or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                ByteSize::parse(s).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<ByteSize, E> {
                if n < 0.0 || !n.is_finite() {
                    return Err(E::custom("a size cannot be negative"));
                }
                Ok(ByteSize(n as u64))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let p = |s| ByteSize::parse(s).map(|b| b.0);
        assert_eq!(p("1GiB"), Ok(1 << 30));
        assert_eq!(p("1gib"), Ok(1 << 30));
        assert_eq!(p("512MB"), Ok(512_000_000));
        assert_eq!(p("64 KiB"), Ok(65536));
        assert_eq!(p("1.5KiB"), Ok(1536));
        assert_eq!(p("1024"), Ok(1024));
        assert_eq!(p("10B"), Ok(10));
        assert!(p("GiB").is_err());
        assert!(p("1 parsec").unwrap_err().contains("invalid size"));
        assert!(p("-1GiB").is_err());
        assert!(p("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn displays_exact_binary_units() {
        assert_eq!(ByteSize::gib(1).to_string(), "1GiB");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
    }
}
