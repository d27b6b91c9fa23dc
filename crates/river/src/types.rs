//! Argument types with River-specific decoding: [`Duration`] (Go duration strings), secrets
//! ([`Secret`], [`OptionalSecret`]) and typed capsules ([`TypedCapsule`]).

use crate::decode::{describe, stash_put, stash_take, type_message, RAW_MAGIC};
use crate::value::{Capsule, CapsuleValue, Secret, Value, ValueType};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

// ---------------------------------------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------------------------------------

/// A signed span of time with nanosecond precision, written as in Go's `time.ParseDuration` (`1h30m`, `1.5h`,
/// `300ms`, `2us`, `2µs`, `-1s`), plus the units `d` (24h) and `w` (7d). Displays in Go's form (`1m0s`, `15s`,
/// `1.5µs`, `0s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration {
    nanos: i64,
}

/// Why a duration string was rejected; the texts are Go's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed or overflowing.
    #[error("time: invalid duration {}", go_quote(.0))]
    Invalid(String),
    /// A number without unit, e.g. `5`.
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// An unknown unit.
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;
/// 1 << 63: the magnitude of the most negative duration.
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NANOSECOND,
        "us" | "µs" | "μs" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        "w" => WEEK,
        _ => return None,
    })
}

/// Go's `time.quote`: double quotes, `"` and `\` escaped, bytes outside printable ASCII as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c < ' ' || !c.is_ascii() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration { nanos: 0 };

    /// From nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Duration { nanos }
    }

    /// From milliseconds, saturating.
    pub const fn from_millis(ms: i64) -> Self {
        Duration {
            nanos: ms.saturating_mul(1_000_000),
        }
    }

    /// From seconds, saturating.
    pub const fn from_secs(s: i64) -> Self {
        Duration {
            nanos: s.saturating_mul(1_000_000_000),
        }
    }

    /// The length in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// The length in seconds, as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    /// True for durations below zero.
    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// As a standard duration; `None` when negative.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// As a standard duration, negative durations becoming zero.
    pub fn to_std_saturating(self) -> std::time::Duration {
        self.to_std().unwrap_or_default()
    }

    /// From a standard duration; `None` when longer than about 292 years.
    pub fn from_std(d: std::time::Duration) -> Option<Self> {
        i64::try_from(d.as_nanos()).ok().map(Duration::from_nanos)
    }

    /// Parses Go's duration syntax (plus `d` and `w`).
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let invalid = || DurationError::Invalid(input.to_string());
        let mut s = input.as_bytes();
        let mut neg = false;
        if let Some((&c, rest)) = s.split_first() {
            if c == b'-' || c == b'+' {
                neg = c == b'-';
                s = rest;
            }
        }
        if s == b"0" {
            return Ok(Duration::ZERO);
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        while !s.is_empty() {
            // The next character must be [0-9.].
            if !(s[0] == b'.' || s[0].is_ascii_digit()) {
                return Err(invalid());
            }
            // Integer part.
            let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut v: u64 = 0;
            for &b in &s[..digits] {
                if v > LIMIT / 10 {
                    return Err(invalid());
                }
                v = v * 10 + u64::from(b - b'0');
                if v > LIMIT {
                    return Err(invalid());
                }
            }
            let pre = digits > 0;
            s = &s[digits..];
            // Fraction.
            let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
            if s.first() == Some(&b'.') {
                s = &s[1..];
                let fd = s.iter().take_while(|b| b.is_ascii_digit()).count();
                let mut overflow = false;
                for &b in &s[..fd] {
                    if overflow {
                        continue;
                    }
                    // Further digits cannot matter at nanosecond precision (Go's leadingFraction).
                    if frac > (LIMIT - 1) / 10 {
                        overflow = true;
                        continue;
                    }
                    let y = frac * 10 + u64::from(b - b'0');
                    if y > LIMIT {
                        overflow = true;
                        continue;
                    }
                    frac = y;
                    scale *= 10.0;
                }
                post = fd > 0;
                s = &s[fd..];
            }
            if !pre && !post {
                return Err(invalid());
            }
            // Unit: everything up to the next digit or '.' (ASCII, so a char boundary).
            let ulen = s
                .iter()
                .take_while(|b| !(**b == b'.' || b.is_ascii_digit()))
                .count();
            if ulen == 0 {
                return Err(DurationError::MissingUnit(input.to_string()));
            }
            let unit_text = std::str::from_utf8(&s[..ulen]).unwrap_or("");
            s = &s[ulen..];
            let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
                unit: unit_text.to_string(),
                input: input.to_string(),
            })?;
            if v > LIMIT / unit {
                return Err(invalid());
            }
            v *= unit;
            if frac > 0 {
                v = v
                    .checked_add((frac as f64 * (unit as f64 / scale)) as u64)
                    .ok_or_else(invalid)?;
                if v > LIMIT {
                    return Err(invalid());
                }
            }
            total = total
                .checked_add(v)
                .filter(|t| *t <= LIMIT)
                .ok_or_else(invalid)?;
        }
        if neg {
            // -(1<<63) is representable.
            return Ok(Duration {
                nanos: (total as i128).wrapping_neg() as i64,
            });
        }
        i64::try_from(total)
            .map(Duration::from_nanos)
            .map_err(|_| invalid())
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, DurationError> {
        Duration::parse(s)
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

/// Appends `v / 10^prec` as a fraction (`.123`) without trailing zeros; returns the integer part.
fn fmt_frac(out: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
    let mut digits = Vec::with_capacity(prec);
    let mut printed = false;
    for _ in 0..prec {
        let d = v % 10;
        printed = printed || d != 0;
        if printed {
            digits.push(b'0' + d as u8);
        }
        v /= 10;
    }
    if printed {
        digits.push(b'.');
    }
    // `out` is built backwards.
    out.extend(digits);
    v
}

fn fmt_int(out: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        out.push(b'0');
        return;
    }
    while v > 0 {
        out.push(b'0' + (v % 10) as u8);
        v /= 10;
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut u = self.nanos.unsigned_abs();
        // Built in reverse, like Go's buffer filled from the end.
        let mut rev: Vec<u8> = Vec::with_capacity(32);
        if u < SECOND {
            rev.push(b's');
            let prec = if u == 0 {
                return f.write_str("0s");
            } else if u < MICROSECOND {
                rev.push(b'n');
                0
            } else if u < MILLISECOND {
                // "µ" reversed byte-wise.
                rev.extend_from_slice(&[0xB5, 0xC2]);
                3
            } else {
                rev.push(b'm');
                6
            };
            u = fmt_frac(&mut rev, u, prec);
            fmt_int(&mut rev, u);
        } else {
            rev.push(b's');
            u = fmt_frac(&mut rev, u, 9);
            fmt_int(&mut rev, u % 60);
            u /= 60;
            if u > 0 {
                rev.push(b'm');
                fmt_int(&mut rev, u % 60);
                u /= 60;
                if u > 0 {
                    rev.push(b'h');
                    fmt_int(&mut rev, u);
                }
            }
        }
        if self.nanos < 0 {
            rev.push(b'-');
        }
        rev.reverse();
        f.write_str(&String::from_utf8_lossy(&rev))
    }
}

impl TryFrom<std::time::Duration> for Duration {
    type Error = DurationError;
    fn try_from(d: std::time::Duration) -> Result<Self, DurationError> {
        Duration::from_std(d).ok_or_else(|| DurationError::Invalid(format!("{d:?}")))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1m30s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                Duration::parse(s).map_err(E::custom)
            }
        }
        // River converts numbers to strings here, so `5` reports a missing unit as in the reference.
        d.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------------------

/// Hands a value to a River serializer through the stash; other serializers get `placeholder`.
fn serialize_raw<S: Serializer, P: Serialize + ?Sized>(
    s: S,
    v: Value,
    placeholder: &P,
) -> Result<S::Ok, S::Error> {
    stash_put(v);
    let r = s.serialize_newtype_struct(RAW_MAGIC, placeholder);
    let _ = stash_take();
    r
}

impl Serialize for Secret {
    /// River serializers get the secret; every other serializer sees only `(secret)`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_raw(s, Value::Secret(self.clone()), "(secret)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// A string or a secret becomes a secret.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or secret")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
                match stash_take() {
                    Some(Value::Secret(s)) => Ok(s),
                    Some(Value::String(s)) => Ok(Secret::new(s)),
                    Some(Value::Null) => Ok(Secret::new("")),
                    Some(other) => Err(E::custom(type_message(ValueType::Capsule, &other))),
                    None => Err(E::custom("expected a string or secret")),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Secret, E> {
                Ok(Secret::new(s))
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Secret, D::Error> {
                d.deserialize_str(self)
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V)
    }
}

/// A value that may or may not be sensitive: a plain string stays readable, a secret stays a secret.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct OptionalSecret {
    value: String,
    is_secret: bool,
}

impl OptionalSecret {
    /// A non-sensitive value.
    pub fn plain(value: impl Into<String>) -> Self {
        OptionalSecret {
            value: value.into(),
            is_secret: false,
        }
    }

    /// A sensitive value.
    pub fn secret(value: impl Into<String>) -> Self {
        OptionalSecret {
            value: value.into(),
            is_secret: true,
        }
    }

    /// Whether the value is sensitive.
    pub fn is_secret(&self) -> bool {
        self.is_secret
    }

    /// The text. Callers must not log it when [`is_secret`](Self::is_secret).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The value as a string, if it is not sensitive.
    pub fn as_plain(&self) -> Option<&str> {
        (!self.is_secret).then_some(self.value.as_str())
    }

    /// The value as a [`Value`]: a string or a secret.
    pub fn to_value(&self) -> Value {
        if self.is_secret {
            Value::secret(&self.value)
        } else {
            Value::string(&self.value)
        }
    }
}

impl fmt::Debug for OptionalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret {
            f.write_str("(secret)")
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

impl fmt::Display for OptionalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret {
            f.write_str("(secret)")
        } else {
            f.write_str(&self.value)
        }
    }
}

impl From<Secret> for OptionalSecret {
    fn from(s: Secret) -> Self {
        OptionalSecret::secret(s.expose())
    }
}

impl From<OptionalSecret> for Secret {
    fn from(s: OptionalSecret) -> Self {
        Secret::new(s.value)
    }
}

impl Serialize for OptionalSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_secret {
            serialize_raw(s, Value::secret(&self.value), "(secret)")
        } else {
            s.serialize_str(&self.value)
        }
    }
}

impl<'de> Deserialize<'de> for OptionalSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OptionalSecret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or secret")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OptionalSecret, E> {
                match stash_take() {
                    Some(Value::Secret(s)) => Ok(OptionalSecret::secret(s.expose())),
                    Some(Value::String(s)) => Ok(OptionalSecret::plain(&*s)),
                    Some(Value::Null) => Ok(OptionalSecret::default()),
                    // Numbers convert to strings like any string field.
                    Some(Value::Number(n)) => Ok(OptionalSecret::plain(n.to_string())),
                    Some(other) => Err(E::custom(type_message(ValueType::String, &other))),
                    None => Err(E::custom("expected a string or secret")),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OptionalSecret, E> {
                Ok(OptionalSecret::plain(s))
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<OptionalSecret, D::Error> {
                d.deserialize_str(self)
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Capsules
// ---------------------------------------------------------------------------------------------------------

impl Serialize for Capsule {
    /// River serializers get the capsule; other serializers see `capsule("type name")`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = format!("capsule({:?})", self.0.type_name());
        serialize_raw(s, Value::Capsule(self.clone()), &text)
    }
}

/// A capsule known to hold a `T`, e.g. `forward_to: Vec<TypedCapsule<Receiver>>`.
pub struct TypedCapsule<T> {
    capsule: Capsule,
    _t: PhantomData<fn() -> T>,
}

impl<T: CapsuleValue> TypedCapsule<T> {
    /// Wraps a value.
    pub fn new(v: T) -> Self {
        TypedCapsule {
            capsule: Capsule::new(v),
            _t: PhantomData,
        }
    }

    /// Wraps a capsule if it holds a `T`.
    pub fn from_capsule(capsule: Capsule) -> Option<Self> {
        capsule.downcast_ref::<T>()?;
        Some(TypedCapsule {
            capsule,
            _t: PhantomData,
        })
    }

    /// The value.
    pub fn get(&self) -> &T {
        match self.capsule.downcast_ref::<T>() {
            Some(v) => v,
            // Constructors check the type, so this cannot happen.
            None => unreachable!("TypedCapsule holds a different type"),
        }
    }

    /// The untyped capsule.
    pub fn capsule(&self) -> &Capsule {
        &self.capsule
    }
}

impl<T> Clone for TypedCapsule<T> {
    fn clone(&self) -> Self {
        TypedCapsule {
            capsule: self.capsule.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> PartialEq for TypedCapsule<T> {
    fn eq(&self, other: &Self) -> bool {
        self.capsule == other.capsule
    }
}

impl<T> fmt::Debug for TypedCapsule<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.capsule, f)
    }
}

impl<T: CapsuleValue> std::ops::Deref for TypedCapsule<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.get()
    }
}

/// The last path segment of a Rust type name, for messages.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

impl<T> Serialize for TypedCapsule<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.capsule.serialize(s)
    }
}

impl<'de, T: CapsuleValue> Deserialize<'de> for TypedCapsule<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<fn() -> T>);
        impl<'de, T: CapsuleValue> Visitor<'de> for V<T> {
            type Value = TypedCapsule<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a capsule holding {}", short_type_name::<T>())
            }
            fn visit_unit<E: de::Error>(self) -> Result<TypedCapsule<T>, E> {
                let expected = || format!("expected capsule({:?})", short_type_name::<T>());
                match stash_take() {
                    Some(Value::Capsule(c)) => {
                        let described = describe(&Value::Capsule(c.clone()));
                        TypedCapsule::from_capsule(c)
                            .ok_or_else(|| E::custom(format!("{}, got {described}", expected())))
                    }
                    Some(v @ Value::Secret(_)) => {
                        Err(E::custom(format!("{}, got {}", expected(), describe(&v))))
                    }
                    Some(v) => Err(E::custom(type_message(ValueType::Capsule, &v))),
                    None => Err(E::custom("capsules can only be decoded from River values")),
                }
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                _d: D,
            ) -> Result<TypedCapsule<T>, D::Error> {
                Err(de::Error::custom(
                    "capsules can only be decoded from River values",
                ))
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_value;
    use crate::encode::to_value;

    fn parse(s: &str) -> Result<i64, String> {
        Duration::parse(s)
            .map(Duration::as_nanos)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_go_durations() {
        let s = 1_000_000_000i64;
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5 * s),
            ("30s", 30 * s),
            ("1478s", 1478 * s),
            ("-5s", -5 * s),
            ("+5s", 5 * s),
            ("-0s", 0),
            ("5.0s", 5 * s),
            ("5.6s", 5 * s + 600_000_000),
            ("5.s", 5 * s),
            (".5s", s / 2),
            ("1.0s", s),
            ("1.00s", s),
            ("1.004s", s + 4_000_000),
            ("100.00100s", 100 * s + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * s),
            ("15m", 15 * 60 * s),
            ("16h", 16 * 3600 * s),
            ("3h30m", (3 * 3600 + 30 * 60) * s),
            ("10.5s4m", 4 * 60 * s + 10 * s + s / 2),
            ("-2m3.4s", -(2 * 60 * s + 3 * s + 400_000_000)),
            (
                "1h2m3s4ms5us6ns",
                3600 * s + 2 * 60 * s + 3 * s + 4_000_000 + 5_000 + 6,
            ),
            (
                "39h9m14.425s",
                39 * 3600 * s + 9 * 60 * s + 14 * s + 425_000_000,
            ),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * s),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036.854775807s", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * s),
            (
                "0.830103483285477580700h",
                49 * 60 * s + 48 * s + 372_539_827,
            ),
            ("1.5h", 5400 * s),
            ("2d", 2 * 86_400 * s),
            ("1w", 7 * 86_400 * s),
            ("1w1d1h", (8 * 86_400 + 3600) * s),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn rejects_like_go() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d1", r#"time: missing unit in duration "1d1""#),
            ("1y", r#"time: unknown unit "y" in duration "1y""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "9223372036.854775808s",
                r#"time: invalid duration "9223372036.854775808s""#,
            ),
            (
                "-9223372036854775809ns",
                r#"time: invalid duration "-9223372036854775809ns""#,
            ),
            (
                "1µ",
                r#"time: unknown unit "\xc2\xb5" in duration "1\xc2\xb5""#,
            ),
            ("1 s", r#"time: unknown unit " s" in duration "1 s""#),
            ("1\"s", r#"time: unknown unit "\"s" in duration "1\"s""#),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want.to_string()), "{input}");
        }
    }

    #[test]
    fn displays_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60 * 1_000_000_000 + 5_000_000_000, "4m5s"),
            (4 * 60 * 1_000_000_000 + 5_001_000_000, "4m5.001s"),
            (
                5 * 3600 * 1_000_000_000 + 6 * 60 * 1_000_000_000 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60 * 1_000_000_000 + 1, "8m0.000000001s"),
            (60 * 1_000_000_000, "1m0s"),
            (15 * 1_000_000_000, "15s"),
            (86_400 * 1_000_000_000, "24h0m0s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (-1_500, "-1.5µs"),
        ];
        for (nanos, want) in cases {
            assert_eq!(Duration::from_nanos(*nanos).to_string(), *want, "{nanos}");
        }
        // Display round-trips through the parser.
        for (nanos, _) in cases {
            let d = Duration::from_nanos(*nanos);
            assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }
    }

    #[test]
    fn std_conversions() {
        assert_eq!(
            Duration::from_secs(2).to_std(),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(Duration::from_secs(-2).to_std(), None);
        assert_eq!(
            Duration::from_secs(-2).to_std_saturating(),
            std::time::Duration::ZERO
        );
        assert_eq!(
            Duration::from_std(std::time::Duration::from_millis(1500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            Duration::from_std(std::time::Duration::from_secs(u64::MAX)),
            None
        );
    }

    #[test]
    fn duration_serde() {
        assert_eq!(
            decode_value::<Duration>(&Value::string("1m30s")),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            decode_value::<Duration>(&Value::int(5))
                .unwrap_err()
                .message,
            r#"time: missing unit in duration "5""#
        );
        assert_eq!(
            to_value(&Duration::from_secs(60)),
            Ok(Value::string("1m0s"))
        );
        assert_eq!(
            serde_json::to_string(&Duration::from_millis(300)).unwrap(),
            "\"300ms\""
        );
    }

    #[test]
    fn secret_decoding_rules() {
        assert_eq!(
            decode_value::<Secret>(&Value::string("a")).map(|s| s.expose().to_string()),
            Ok("a".into())
        );
        assert_eq!(
            decode_value::<Secret>(&Value::secret("b")).map(|s| s.expose().to_string()),
            Ok("b".into())
        );
        assert_eq!(
            decode_value::<String>(&Value::secret("b"))
                .unwrap_err()
                .message,
            "secrets may not be converted into strings"
        );
        let o = decode_value::<OptionalSecret>(&Value::string("p")).unwrap();
        assert_eq!((o.is_secret(), o.as_plain()), (false, Some("p")));
        let o = decode_value::<OptionalSecret>(&Value::secret("q")).unwrap();
        assert_eq!((o.is_secret(), o.as_plain(), o.expose()), (true, None, "q"));
        assert_eq!(format!("{o} {o:?}"), "(secret) (secret)");
        // Other formats can give secrets too (e.g. JSON strings).
        let s: Secret = serde_json::from_str("\"zz\"").unwrap();
        assert_eq!(s.expose(), "zz");
        let o: OptionalSecret = serde_json::from_str("\"zz\"").unwrap();
        assert!(!o.is_secret());
    }

    #[test]
    fn secrets_never_leak_through_serializers() {
        let s = Secret::new("hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"(secret)\"");
        assert_eq!(
            serde_json::to_string(&OptionalSecret::secret("hunter2")).unwrap(),
            "\"(secret)\""
        );
        assert_eq!(
            serde_json::to_string(&OptionalSecret::plain("visible")).unwrap(),
            "\"visible\""
        );
        // River serializers keep the secret as a secret value.
        match to_value(&s) {
            Ok(Value::Secret(x)) => assert_eq!(x.expose(), "hunter2"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            to_value(&OptionalSecret::plain("v")),
            Ok(Value::string("v"))
        );
    }

    #[derive(Debug)]
    struct Recv(u8);
    impl CapsuleValue for Recv {
        fn type_name(&self) -> &str {
            "test.Recv"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn typed_capsules() {
        let c = Capsule::new(Recv(7));
        let t = decode_value::<TypedCapsule<Recv>>(&Value::Capsule(c.clone())).unwrap();
        assert_eq!(t.get().0, 7);
        assert_eq!(t.capsule(), &c);
        assert_eq!(to_value(&t), Ok(Value::Capsule(c.clone())));
        assert_eq!(
            decode_value::<TypedCapsule<Recv>>(&Value::secret("x"))
                .unwrap_err()
                .message,
            r#"expected capsule("Recv"), got capsule("secret")"#
        );
        assert!(TypedCapsule::<Recv>::from_capsule(Capsule::new(Recv(1))).is_some());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#""capsule(\"test.Recv\")""#
        );
        assert!(serde_json::from_str::<TypedCapsule<Recv>>("1").is_err());
    }
}
