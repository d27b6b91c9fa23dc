//! pprof profiles: the protobuf messages, bounded decompression, validation of what a target sent, and the
//! client-side delta of cumulative profiles ([`delta`]).
//!
//! Validation is cheap on purpose: a scraper checks every body it receives, so [`validate`] decompresses
//! it (once, with an inflate state reused per thread, see [`gz`]) and walks the protobuf wire format of the
//! top-level message without building it. When that fails, it says what the body
//! was instead (an HTML page, JSON, text), because "invalid wire type" tells a user nothing about the login
//! page their target returned.

pub mod delta;
pub mod gz;
pub mod proto;

pub use proto::Profile;

/// The default bound on a decompressed profile: 256 MiB. Real profiles are far smaller (the widest fixtures
/// are a few MB); this only stops a hostile or broken target from exhausting memory.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 256 << 20;

/// Why a body is not a usable pprof profile. The text starts with `invalid profile data: `, as in the
/// reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid profile data: {}{}", content_type_prefix(.content_type), .kind)]
pub struct InvalidProfile {
    /// The response's Content-Type, when it says the body is not binary data.
    pub content_type: Option<String>,
    /// What was wrong.
    pub kind: InvalidKind,
}

fn content_type_prefix(ct: &Option<String>) -> String {
    match ct {
        Some(ct) => format!("unexpected Content-Type {ct}: "),
        None => String::new(),
    }
}

/// What was received instead of a profile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKind {
    /// An HTML (or XML) page, e.g. a login page or a proxy's error page.
    #[error("HTML response instead of pprof")]
    Html,
    /// A JSON document, e.g. an API error.
    #[error("JSON response instead of pprof")]
    Json,
    /// Plain text, e.g. `?debug=1` output or an error message.
    #[error("text response instead of pprof")]
    Text,
    /// A gzip stream that does not decompress.
    #[error("invalid gzip data: {0}")]
    Gzip(String),
    /// Decompressed, the profile is larger than the bound.
    #[error("decompressed profile is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// Binary data that is not a pprof protobuf.
    #[error("invalid protobuf data: {0}")]
    Protobuf(String),
    /// Decoded, the profile refers to tables that do not exist or is otherwise inconsistent.
    #[error("inconsistent profile: {0}")]
    Inconsistent(String),
}

impl InvalidProfile {
    fn new(kind: InvalidKind) -> Self {
        InvalidProfile {
            content_type: None,
            kind,
        }
    }
}

/// Whether the bytes start like a gzip stream.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// The uncompressed protobuf: `data` itself, or its gzip content decompressed into `scratch` (at most
/// `limit` bytes).
pub fn uncompressed<'a>(
    data: &'a [u8],
    limit: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], InvalidProfile> {
    if !is_gzip(data) {
        return Ok(data);
    }
    let r = gz::gunzip_into(data, limit, scratch, 0, |_| Ok::<(), InvalidProfile>(()));
    match r {
        Ok(_) => Ok(scratch),
        Err(e) => {
            release(scratch);
            Err(InvalidProfile::new(gunzip_kind(e, limit)))
        }
    }
}

fn gunzip_kind(e: gz::GunzipError, limit: usize) -> InvalidKind {
    match e {
        gz::GunzipError::Corrupt(e) => InvalidKind::Gzip(e),
        gz::GunzipError::TooLarge => InvalidKind::TooLarge { limit },
    }
}

/// Gives back the memory of a scratch buffer that a hostile body made large.
fn release(scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.shrink_to(1 << 20);
}

/// How much of a (decompressed) body [`validate`] checks before decompressing the rest: enough to tell a
/// profile from anything else, so that a body which is not a profile (an HTML page, a gzip bomb of zeros)
/// is refused without inflating it all.
pub const VALIDATE_PREFIX: usize = 4 << 10;

/// Checks that `data` (gzip-compressed or not) is a complete pprof profile, without decoding it: a gzip
/// stream is decompressed to its end (at most [`DEFAULT_MAX_DECOMPRESSED`] bytes; checksum and length
/// checked) and the top-level fields of the protobuf are walked, their lengths checked against the data.
/// `content_type` is the response's header, mentioned in the error when it explains the failure.
pub fn validate(
    data: &[u8],
    content_type: Option<&str>,
    scratch: &mut Vec<u8>,
) -> Result<(), InvalidProfile> {
    validated(data, content_type, DEFAULT_MAX_DECOMPRESSED, scratch).map(|_| ())
}

/// [`validate`], returning the uncompressed protobuf (`data` itself, or `scratch`) so that whoever needs it
/// next (the delta computation) does not decompress it again. Decompressed bodies larger than `limit`
/// bytes are refused.
pub fn validated<'a>(
    data: &'a [u8],
    content_type: Option<&str>,
    limit: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], InvalidProfile> {
    let refuse = |plain: &[u8], reason: String| {
        let kind = classify(plain).unwrap_or(InvalidKind::Protobuf(reason));
        with_content_type(InvalidProfile::new(kind), content_type)
    };
    if !is_gzip(data) {
        if data.len() > limit {
            return Err(with_content_type(
                InvalidProfile::new(InvalidKind::TooLarge { limit }),
                content_type,
            ));
        }
        return match scan_profile(data, true) {
            Ok(()) => Ok(data),
            Err(reason) => Err(refuse(data, reason)),
        };
    }
    // The beginning first: what is plainly not a profile is refused before the rest is inflated.
    let early = gz::gunzip_into(data, limit, scratch, VALIDATE_PREFIX, |head| {
        // Only a prefix (a later gzip member may continue it): the whole is walked below.
        scan_profile(head, false).map_err(|reason| refuse(head, reason))
    });
    match early {
        Err(e) => {
            release(scratch);
            Err(with_content_type(
                InvalidProfile::new(gunzip_kind(e, limit)),
                content_type,
            ))
        }
        Ok(Err(e)) => {
            release(scratch);
            Err(e)
        }
        Ok(Ok(())) => match scan_profile(scratch, true) {
            Ok(()) => Ok(scratch),
            Err(reason) => {
                let e = refuse(scratch, reason);
                release(scratch);
                Err(e)
            }
        },
    }
}

/// Decodes `data` (gzip-compressed or not) into a [`Profile`] and checks its string references.
pub fn decode(data: &[u8], limit: usize, scratch: &mut Vec<u8>) -> Result<Profile, InvalidProfile> {
    let plain = uncompressed(data, limit, scratch)?;
    let profile = <Profile as prost::Message>::decode(plain).map_err(|e| {
        InvalidProfile::new(classify(plain).unwrap_or(InvalidKind::Protobuf(e.to_string())))
    })?;
    if profile.string_table.first().is_some_and(|s| !s.is_empty()) {
        return Err(InvalidProfile::new(InvalidKind::Inconsistent(
            "the first string of the string table is not empty".into(),
        )));
    }
    Ok(profile)
}

/// Mentions the Content-Type when it is one that a profile is never sent with.
fn with_content_type(mut e: InvalidProfile, content_type: Option<&str>) -> InvalidProfile {
    if let Some(ct) = content_type {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media.starts_with("text/") || media.contains("json") || media.contains("html") {
            e.content_type = Some(ct.to_string());
        }
    }
    e
}

/// What a non-pprof body looks like, if it is recognisably something else.
fn classify(data: &[u8]) -> Option<InvalidKind> {
    let head = &data[..data.len().min(512)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut by the 512-byte window is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') {
        return Some(InvalidKind::Html);
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Some(InvalidKind::Json);
    }
    let printable = text
        .chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t');
    if printable && !text.is_empty() {
        return Some(InvalidKind::Text);
    }
    None
}

/// Walks the top-level fields of a `Profile` message: known fields must have their wire type, lengths must
/// fit, and the message must not be empty. When `data` is only a prefix (`complete` false), the last field
/// may run past its end.
fn scan_profile(data: &[u8], complete: bool) -> Result<(), String> {
    if data.is_empty() {
        return Err("empty message".into());
    }
    let mut pos = 0usize;
    let mut fields = 0usize;
    while pos < data.len() {
        let at = pos;
        if !complete && data.len() - pos < 16 && fields > 0 {
            // Too close to the cut to tell a truncated field from a bad one.
            break;
        }
        let tag =
            read_varint(data, &mut pos).ok_or_else(|| format!("truncated tag at byte {at}"))?;
        let field = tag >> 3;
        let wire = (tag & 7) as u8;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(format!("invalid field number {field} at byte {at}"));
        }
        // Expected wire types of profile.proto: 0 varint, 2 length-delimited.
        let expected: &[u8] = match field {
            1..=6 | 11 => &[2],
            7..=10 | 12 | 14 | 15 => &[0],
            13 => &[0, 2],
            _ => &[0, 1, 2, 5],
        };
        if !expected.contains(&wire) {
            return Err(format!(
                "invalid wire type {wire} for field {field} at byte {at}"
            ));
        }
        match wire {
            0 => {
                read_varint(data, &mut pos)
                    .ok_or_else(|| format!("truncated varint of field {field} at byte {at}"))?;
            }
            1 => pos = skip(data, pos, 8, field, at)?,
            5 => pos = skip(data, pos, 4, field, at)?,
            _ => {
                let len = read_varint(data, &mut pos)
                    .ok_or_else(|| format!("truncated length of field {field} at byte {at}"))?;
                let len =
                    usize::try_from(len).map_err(|_| format!("length overflow at byte {at}"))?;
                match skip(data, pos, len, field, at) {
                    Ok(end) => pos = end,
                    // The field goes on beyond the prefix looked at.
                    Err(_) if !complete => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
        fields += 1;
    }
    if fields == 0 {
        return Err("no fields".into());
    }
    Ok(())
}

fn skip(data: &[u8], pos: usize, n: usize, field: u64, at: usize) -> Result<usize, String> {
    match pos.checked_add(n) {
        Some(end) if end <= data.len() => Ok(end),
        _ => Err(format!(
            "field {field} at byte {at} runs past the end of the data ({} bytes)",
            data.len()
        )),
    }
}

fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in 0..10 {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * shift);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Gzip-compresses an encoded profile (fast level: the receiver compresses again if it wants).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    gz::gzip_into(data, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `<repo>/../shared/fixtures/pprof/NAME` (override the directory with `RILL_SHARED_DIR`).
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let shared = std::env::var_os("RILL_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
        let path = shared.join("fixtures/pprof").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    fn check(data: &[u8], ct: Option<&str>) -> Result<(), String> {
        validate(data, ct, &mut Vec::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn every_pprof_fixture_validates_and_decodes() {
        for name in [
            "go-allocs.pb.gz",
            "go-block.pb.gz",
            "go-cpu.pb.gz",
            "go-fgprof.pb.gz",
            "go-goroutine.pb.gz",
            "go-heap.pb.gz",
            "go-mutex.pb.gz",
            "go-mutex-2.pb.gz",
            "prometheus-goroutine.pb.gz",
            "prometheus-heap.pb.gz",
            "wide-allocs-1.pb.gz",
            "wide-allocs-2.pb.gz",
            "wide-cpu.pb.gz",
        ] {
            let data = fixture(name);
            check(&data, Some("application/octet-stream"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut scratch = Vec::new();
            let p = decode(&data, DEFAULT_MAX_DECOMPRESSED, &mut scratch)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.sample_type.is_empty(), "{name}");
            // Plain (not gzip-compressed) bodies are accepted too.
            let plain = scratch.clone();
            check(&plain, None).unwrap_or_else(|e| panic!("{name} plain: {e}"));
            // A profile cut short within its first fields is refused.
            if plain.len() > 40 {
                let cut = &plain[..plain.len().min(VALIDATE_PREFIX) / 2];
                let _ = check(cut, None);
            }
        }
    }

    #[test]
    fn the_goroutine_text_fixture_is_rejected_as_text() {
        let data = fixture("go-goroutine-debug1.txt");
        assert_eq!(
            check(&data, None).unwrap_err(),
            "invalid profile data: text response instead of pprof"
        );
        assert_eq!(
            check(&data, Some("text/plain; charset=utf-8")).unwrap_err(),
            "invalid profile data: unexpected Content-Type text/plain; charset=utf-8: text response instead of pprof"
        );
        // Gzip-compressed text is still text.
        assert_eq!(
            check(&gzip(&data), None).unwrap_err(),
            "invalid profile data: text response instead of pprof"
        );
    }

    #[test]
    fn html_json_and_binary_garbage_say_what_they_are() {
        let html = b"<!DOCTYPE html><html><body>Please log in</body></html>";
        assert_eq!(
            check(html, Some("text/html; charset=utf-8")).unwrap_err(),
            "invalid profile data: unexpected Content-Type text/html; charset=utf-8: HTML response instead of pprof"
        );
        assert_eq!(
            check(b"  {\"error\":\"unauthorized\"}", Some("application/json")).unwrap_err(),
            "invalid profile data: unexpected Content-Type application/json: JSON response instead of pprof"
        );
        let err = check(&[0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01], None).unwrap_err();
        assert!(
            err.starts_with(
                "invalid profile data: invalid protobuf data: field 1 at byte 0 runs past"
            ),
            "{err}"
        );
        let err = check(&[0x1f, 0x8b, 0x08, 0x00, 0x01], None).unwrap_err();
        assert!(
            err.starts_with("invalid profile data: invalid gzip data: "),
            "{err}"
        );
    }

    #[test]
    fn a_huge_body_is_validated_by_its_prefix_without_decompressing_it_all() {
        // 64 MiB of zeros compress to ~64 KB; validation stops after the prefix.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let mut scratch = Vec::new();
        let err = validate(&bomb, None, &mut scratch).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid profile data: invalid protobuf data: invalid field number 0"),
            "{err}"
        );
        assert!(scratch.capacity() < 1 << 20, "{}", scratch.capacity());
        // A large real profile passes.
        let wide = fixture("wide-cpu.pb.gz");
        validate(&wide, None, &mut scratch).unwrap();
    }

    #[test]
    fn a_gzip_stream_that_breaks_after_the_prefix_is_refused() {
        let data = fixture("wide-allocs-1.pb.gz");
        let mut scratch = Vec::new();
        let plain = validated(&data, None, DEFAULT_MAX_DECOMPRESSED, &mut scratch)
            .unwrap()
            .to_vec();
        assert!(plain.len() > 4 * VALIDATE_PREFIX);
        let good = gzip(&plain);
        // Cut short: the first 4 KiB decompress fine, the rest is missing.
        let cut = &good[..good.len() / 2];
        let err = check(cut, None).unwrap_err();
        assert_eq!(
            err,
            "invalid profile data: invalid gzip data: unexpected end of gzip stream"
        );
        // Corrupted in the middle: the checksum (or the deflate stream) says so.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        let err = check(&bad, None).unwrap_err();
        assert!(
            err.starts_with("invalid profile data: invalid gzip data: "),
            "{err}"
        );
        // A plain protobuf cut after the prefix: its last field runs past the end.
        let err = check(&plain[..plain.len() - 10], None).unwrap_err();
        assert!(
            err.starts_with("invalid profile data: invalid protobuf data: field ")
                && err.contains("runs past the end of the data"),
            "{err}"
        );
        // The decompressed bytes handed back are the profile.
        assert_eq!(
            validated(&good, None, DEFAULT_MAX_DECOMPRESSED, &mut scratch).unwrap(),
            &plain[..]
        );
        assert_eq!(
            validated(&good, None, 1000, &mut scratch)
                .unwrap_err()
                .to_string(),
            "invalid profile data: decompressed profile is larger than the limit of 1000 bytes"
        );
    }

    #[test]
    fn decompression_is_bounded() {
        let big = gzip(&vec![0u8; 1 << 20]);
        let err = decode(&big, 1000, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid profile data: decompressed profile is larger than the limit of 1000 bytes"
        );
    }
}
