//! Decoding literal text (strings, numbers) into values.
//!
//! The lexer calls [`validate_string`] to report bad escapes at their position; evaluation calls
//! [`unquote`], [`parse_number`] and [`parse_float`] to turn literal text into values.

use crate::value::Number;
use std::borrow::Cow;

/// A problem with a literal's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LiteralError {
    /// Byte offset of the problem, relative to the start of the literal text (its opening quote).
    pub offset: usize,
    /// What is wrong, e.g. "unknown escape sequence".
    pub message: String,
}

/// Checks a double-quoted or backtick string literal (quotes included) without building its value.
///
/// Reports the first bad escape sequence. A missing closing quote is not reported here (the lexer knows
/// where the string ends and says "string literal not terminated" itself).
pub fn validate_string(lit: &str) -> Result<(), LiteralError> {
    if lit.starts_with('`') {
        return Ok(());
    }
    let content = lit.get(1..).unwrap_or("");
    if !content.contains('\\') {
        return Ok(());
    }
    decode_escapes(content, None).map(|_| ())
}

/// Returns the value of a string literal given with its quotes: escapes are decoded in `"..."`; in a
/// backtick raw string every `\r` is dropped (so CRLF becomes LF), as the reference does.
///
/// Borrows from `lit` when there is nothing to decode. Escapes that produce bytes which are not valid
/// UTF-8 (such as `"\xff"`) are replaced by U+FFFD, since River strings are UTF-8 text here.
pub fn unquote(lit: &str) -> Result<Cow<'_, str>, LiteralError> {
    if let Some(rest) = lit.strip_prefix('`') {
        let content = rest.strip_suffix('`').unwrap_or(rest);
        if content.contains('\r') {
            return Ok(Cow::Owned(content.replace('\r', "")));
        }
        return Ok(Cow::Borrowed(content));
    }
    let content = lit.get(1..).unwrap_or("");
    if !content.contains('\\') {
        let end = content.find('"').unwrap_or(content.len());
        return Ok(Cow::Borrowed(&content[..end]));
    }
    let mut buf = Vec::with_capacity(content.len());
    decode_escapes(content, Some(&mut buf))?;
    Ok(Cow::Owned(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// Walks the content after the opening `"` up to the closing quote (or the end), checking escapes and,
/// when `out` is given, writing the decoded bytes. Offsets in errors count from the opening quote.
fn decode_escapes(content: &str, mut out: Option<&mut Vec<u8>>) -> Result<(), LiteralError> {
    let bytes = content.as_bytes();
    let mut i = 0;
    // Start of the run of plain bytes not yet copied to `out`.
    let mut run = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                if let Some(o) = out.as_deref_mut() {
                    o.extend_from_slice(&bytes[run..i]);
                }
                i = decode_escape(content, i + 1, out.as_deref_mut())?;
                run = i;
            }
            _ => i += 1,
        }
    }
    if let Some(o) = out {
        o.extend_from_slice(&bytes[run..i.min(bytes.len())]);
    }
    Ok(())
}

/// Decodes one escape whose first character (after the backslash) is at `start`; returns the index after it.
fn decode_escape(
    content: &str,
    start: usize,
    out: Option<&mut Vec<u8>>,
) -> Result<usize, LiteralError> {
    // +1: offsets are relative to the opening quote, which `content` excludes.
    let err = |message: String| LiteralError {
        offset: start + 1,
        message,
    };
    let bytes = content.as_bytes();
    let Some(&c) = bytes.get(start) else {
        return Err(err("escape sequence not terminated".into()));
    };
    let simple = match c {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'"' => Some(b'"'),
        // Decision: `\'` is accepted (the reference's documentation promises it).
        b'\'' => Some(b'\''),
        _ => None,
    };
    if let Some(b) = simple {
        if let Some(o) = out {
            o.push(b);
        }
        return Ok(start + 1);
    }
    let (digits_start, n, base, max) = match c {
        b'0'..=b'7' => (start, 3, 8, 255),
        b'x' => (start + 1, 2, 16, 255),
        b'u' => (start + 1, 4, 16, char::MAX as u32),
        b'U' => (start + 1, 8, 16, char::MAX as u32),
        _ => return Err(err("unknown escape sequence".into())),
    };
    let mut x: u32 = 0;
    for k in 0..n {
        let pos = digits_start + k;
        let Some(ch) = content.get(pos..).and_then(|s| s.chars().next()) else {
            return Err(err("escape sequence not terminated".into()));
        };
        match ch.to_digit(16).filter(|&d| d < base) {
            Some(d) => x = x * base + d,
            None => {
                return Err(err(format!(
                    "illegal character {} in escape sequence",
                    go_sharp_u(ch)
                )))
            }
        }
    }
    if x > max || (0xD800..0xE000).contains(&x) {
        return Err(err("escape sequence is invalid Unicode code point".into()));
    }
    if let Some(o) = out {
        if c == b'u' || c == b'U' {
            // Checked above: in range and not a surrogate.
            let ch = char::from_u32(x).unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut tmp = [0u8; 4];
            o.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        } else {
            // Octal and \x escapes are single bytes (x <= 255 checked above).
            o.push(x as u8);
        }
    }
    Ok(digits_start + n)
}

/// Go's `%#U` rendering of a character: `U+0067 'g'` (the quoted form only when printable).
pub(crate) fn go_sharp_u(ch: char) -> String {
    if ch.is_control() {
        format!("U+{:04X}", ch as u32)
    } else {
        format!("U+{:04X} '{}'", ch as u32, ch)
    }
}

/// Decodes an integer literal (`LitKind::Number`) like Go's `strconv.ParseInt(lit, 0, 64)`: a leading zero
/// means octal (`010` is 8). Text that is not a valid int64 is tried as uint64, then as a float (so `09`
/// is the float 9 and `99999999999999999999` the float 1e20).
pub fn parse_number(text: &str) -> Result<Number, LiteralError> {
    let (digits, radix) = match text.strip_prefix('0') {
        Some(rest) if !rest.is_empty() => (rest, 8),
        _ => (text, 10),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(u) = u64::from_str_radix(digits, radix) {
            return Ok(match i64::try_from(u) {
                Ok(i) => Number::Int(i),
                Err(_) => Number::Uint(u),
            });
        }
    }
    parse_float(text).map(Number::Float)
}

/// Decodes a float literal (`LitKind::Float`) like Go's `strconv.ParseFloat(lit, 64)`; a value too large
/// for float64 is an error, as in the reference.
pub fn parse_float(text: &str) -> Result<f64, LiteralError> {
    match text.parse::<f64>() {
        Ok(f) if f.is_infinite() => Err(LiteralError {
            offset: 0,
            message: format!("parsing {text:?}: value out of range"),
        }),
        Ok(f) => Ok(f),
        Err(_) => Err(LiteralError {
            offset: 0,
            message: format!("parsing {text:?}: invalid syntax"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unq(s: &str) -> Result<String, (usize, String)> {
        unquote(s)
            .map(|c| c.into_owned())
            .map_err(|e| (e.offset, e.message))
    }

    #[test]
    fn plain_strings_borrow() {
        assert!(matches!(unquote(r#""hello""#), Ok(Cow::Borrowed("hello"))));
        assert!(matches!(unquote("`a\\nb`"), Ok(Cow::Borrowed("a\\nb"))));
        assert_eq!(unq(r#""""#).unwrap(), "");
    }

    #[test]
    fn simple_escapes() {
        assert_eq!(
            unq(r#""\a\b\f\n\r\t\v\\\"""#).unwrap(),
            "\u{7}\u{8}\u{c}\n\r\t\u{b}\\\""
        );
        assert_eq!(unq(r#""it\'s""#).unwrap(), "it's");
        assert_eq!(unq(r#""a\tb""#).unwrap(), "a\tb");
    }

    #[test]
    fn numeric_escapes() {
        assert_eq!(unq(r#""\101\x42\u0043\U00000044""#).unwrap(), "ABCD");
        assert_eq!(unq(r#""\u00e9\U0001F600""#).unwrap(), "é😀");
        // Two \x bytes forming valid UTF-8 make one character, as in Go.
        assert_eq!(unq(r#""\xc3\xa9""#).unwrap(), "é");
        assert_eq!(unq(r#""\xff""#).unwrap(), "\u{FFFD}");
        assert_eq!(unq(r#""\377""#).unwrap(), "\u{FFFD}");
        assert_eq!(unq(r#""\000""#).unwrap(), "\0");
    }

    #[test]
    fn escape_errors_point_after_the_backslash() {
        assert_eq!(unq(r#""ab\q""#), Err((4, "unknown escape sequence".into())));
        assert_eq!(
            unq(r#""\400""#),
            Err((2, "escape sequence is invalid Unicode code point".into()))
        );
        assert_eq!(
            unq(r#""\uD800""#),
            Err((2, "escape sequence is invalid Unicode code point".into()))
        );
        assert_eq!(
            unq(r#""\U00110000""#),
            Err((2, "escape sequence is invalid Unicode code point".into()))
        );
        assert_eq!(
            unq(r#""\x4g""#),
            Err((2, "illegal character U+0067 'g' in escape sequence".into()))
        );
        assert_eq!(
            unq(r#""\x4""#),
            Err((2, "illegal character U+0022 '\"' in escape sequence".into()))
        );
        assert_eq!(
            unq(r#""\18""#),
            Err((2, "illegal character U+0038 '8' in escape sequence".into()))
        );
        // Unterminated literal (the lexer reports that part): the escape runs into the end.
        assert_eq!(
            unq("\"abc\\"),
            Err((5, "escape sequence not terminated".into()))
        );
        assert_eq!(
            unq("\"\\u12"),
            Err((2, "escape sequence not terminated".into()))
        );
        assert_eq!(validate_string(r#""ok\n""#), Ok(()));
        assert_eq!(validate_string(r#""\z""#).map_err(|e| e.offset), Err(2));
        assert_eq!(validate_string("`\\z`"), Ok(()));
    }

    #[test]
    fn raw_strings_drop_carriage_returns() {
        assert_eq!(unq("`a\r\nb\r\n`").unwrap(), "a\nb\n");
        assert_eq!(unq("`\\n\"`").unwrap(), "\\n\"");
    }

    #[test]
    fn numbers_follow_go_parse_int_base_zero() {
        let n = |s: &str| match parse_number(s).unwrap() {
            Number::Int(i) => format!("int {i}"),
            Number::Uint(u) => format!("uint {u}"),
            Number::Float(f) => format!("float {f:e}"),
        };
        assert_eq!(n("0"), "int 0");
        assert_eq!(n("42"), "int 42");
        assert_eq!(n("010"), "int 8");
        assert_eq!(n("00"), "int 0");
        assert_eq!(n("09"), "float 9e0");
        assert_eq!(n("9223372036854775807"), "int 9223372036854775807");
        assert_eq!(n("9223372036854775808"), "uint 9223372036854775808");
        assert_eq!(n("18446744073709551615"), "uint 18446744073709551615");
        assert_eq!(n("18446744073709551616"), "float 1.8446744073709552e19");
        // An octal literal too large for uint64 falls back to a decimal float, like Go.
        assert_eq!(n("07777777777777777777777"), "float 7.777777777777777e21");
        assert!(parse_number(&"9".repeat(400)).is_err());
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float("1.5"), Ok(1.5));
        assert_eq!(parse_float(".5"), Ok(0.5));
        assert_eq!(parse_float("5."), Ok(5.0));
        assert_eq!(parse_float("1e3"), Ok(1000.0));
        assert_eq!(parse_float("2E-2"), Ok(0.02));
        assert_eq!(parse_float("1e-400"), Ok(0.0));
        assert_eq!(
            parse_float("1e400").unwrap_err().message,
            "parsing \"1e400\": value out of range"
        );
    }
}
