//! Gzip without per-call set-up: the inflate and deflate states are kept per thread and reused.
//!
//! `flate2`'s `GzDecoder`/`GzEncoder` allocate and clear a fresh state for every stream (tens of KB to
//! inflate, a few hundred KB to deflate); a scraper that handles thousands of small profiles a second would
//! spend much of its time on that. Here the gzip framing (RFC 1952) is read and written by hand around raw
//! deflate states that live in a thread-local slot and are only reset between streams, writing straight
//! into the output buffer. flate2 runs on its zlib-rs backend: about twice as fast as miniz_oxide to
//! inflate, and its deflate reset clears a 64 KB hash table instead of miniz's ~300 KB of state.

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

thread_local! {
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// Why a gzip stream could not be decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GunzipError {
    /// The data is not a (complete, intact) gzip stream; the text says what is wrong.
    Corrupt(String),
    /// The decompressed data would exceed the limit.
    TooLarge,
}

/// The largest first output allocation; the buffer doubles from there as needed.
const FIRST_STEP_MAX: usize = 256 << 10;

fn truncated() -> GunzipError {
    GunzipError::Corrupt("unexpected end of gzip stream".into())
}

/// Decompresses the gzip stream `data` (one or more members, as Go's `gzip.Reader` reads them) into `out`
/// (replacing its content), at most `limit` bytes. CRC and length of every member are checked, so a stream
/// that breaks anywhere is refused. `early` is called once with the first `early_len` bytes of output (or
/// all of it, if shorter) as soon as they are available, so a caller can refuse a body by its beginning
/// without inflating the rest; its error is handed back as the inner `Err`.
pub fn gunzip_into<E>(
    data: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    early_len: usize,
    mut early: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Result<(), E>, GunzipError> {
    let mut inflate = INFLATE
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| Decompress::new(false));
    let cap = limit.saturating_add(1);
    // `out` is used as a plain byte slice (its length is its usable size); `n` is how much is filled.
    out.clear();
    out.resize(
        data.len()
            .saturating_mul(4)
            .clamp(4096, FIRST_STEP_MAX)
            .min(cap),
        0,
    );
    let mut n = 0usize;
    let mut early_done = false;
    let result = (|| {
        let mut pos = 0usize;
        let mut member = 0usize;
        loop {
            let header = header_len(&data[pos..]).map_err(|e| {
                GunzipError::Corrupt(if member == 0 {
                    e
                } else {
                    format!("{e} (after member {member})")
                })
            })?;
            pos += header;
            inflate.reset(false);
            let start = n;
            loop {
                let (in0, out0) = (inflate.total_in(), inflate.total_out());
                let status = inflate
                    .decompress(&data[pos..], &mut out[n..], FlushDecompress::None)
                    .map_err(|e| {
                        GunzipError::Corrupt(match e.message() {
                            Some(m) => format!("corrupt deflate stream: {m}"),
                            None => "corrupt deflate stream".into(),
                        })
                    })?;
                pos += (inflate.total_in() - in0) as usize;
                n += (inflate.total_out() - out0) as usize;
                if n > limit {
                    return Err(GunzipError::TooLarge);
                }
                let done = status == Status::StreamEnd;
                if !early_done && (n >= early_len || done) {
                    early_done = true;
                    if let Err(e) = early(&out[..n.min(early_len)]) {
                        return Ok(Err(e));
                    }
                }
                if done {
                    break;
                }
                if n == out.len() {
                    // Output full: grow (doubling) up to one byte past the limit.
                    if out.len() >= cap {
                        return Err(GunzipError::TooLarge);
                    }
                    let grown = out.len().saturating_mul(2).min(cap);
                    out.resize(grown, 0);
                } else if pos == data.len() {
                    return Err(truncated());
                }
            }
            let trailer = data.get(pos..pos + 8).ok_or_else(truncated)?;
            let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
            let want_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
            let mut crc = Crc::new();
            crc.update(&out[start..n]);
            if crc.sum() != want_crc {
                return Err(GunzipError::Corrupt("gzip checksum mismatch".into()));
            }
            if (n - start) as u32 != want_len {
                return Err(GunzipError::Corrupt("gzip length mismatch".into()));
            }
            pos += 8;
            member += 1;
            if pos == data.len() {
                return Ok(Ok(()));
            }
        }
    })();
    out.truncate(n);
    INFLATE.with(|s| *s.borrow_mut() = Some(inflate));
    result
}

/// The length of the gzip member header at the start of `data`.
fn header_len(data: &[u8]) -> Result<usize, String> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let truncated = || "unexpected end of gzip header".to_string();
    if data.len() < 10 {
        return Err(truncated());
    }
    if data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return Err("invalid gzip header".into());
    }
    let flags = data[3];
    let mut pos = 10usize;
    if flags & FEXTRA != 0 {
        let n = data.get(pos..pos + 2).ok_or_else(truncated)?;
        pos += 2 + usize::from(u16::from_le_bytes([n[0], n[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data.get(pos..).ok_or_else(truncated)?;
            let end = rest.iter().position(|b| *b == 0).ok_or_else(truncated)?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > data.len() {
        return Err(truncated());
    }
    Ok(pos)
}

/// Gzip-compresses `data` at the fastest level into `out` (cleared first).
pub fn gzip_into(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(data.len() / 4 + 64);
    // Header: no flags, no mtime, XFL 4 (fastest), OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff]);
    let mut deflate = DEFLATE
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| Compress::new(Compression::fast(), false));
    deflate.reset();
    let mut pos = 0usize;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.len().max(4096));
        }
        let in0 = deflate.total_in();
        // Compressing into memory only fails on misuse of the API, not on data.
        let status = deflate
            .compress_vec(&data[pos..], out, FlushCompress::Finish)
            .unwrap_or(Status::StreamEnd);
        pos += (deflate.total_in() - in0) as usize;
        if status == Status::StreamEnd {
            break;
        }
    }
    DEFLATE.with(|s| *s.borrow_mut() = Some(deflate));
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn reference_gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
        let mut out = Vec::new();
        gunzip_into(data, limit, &mut out, 16, |_| Ok::<(), ()>(()))?.unwrap();
        Ok(out)
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn round_trips_and_agrees_with_flate2() {
        for n in [0usize, 1, 100, 70_000, 300_000] {
            let data = sample(n);
            let mut z = Vec::new();
            gzip_into(&data, &mut z);
            assert_eq!(reference_gunzip(&z), data, "{n}");
            assert_eq!(gunzip(&z, usize::MAX / 2).unwrap(), data, "{n}");
            // A stream flate2 wrote, with a file name in its header.
            let mut enc = flate2::GzBuilder::new()
                .filename("x.pb")
                .comment("c")
                .write(Vec::new(), Compression::best());
            enc.write_all(&data).unwrap();
            let z2 = enc.finish().unwrap();
            assert_eq!(gunzip(&z2, usize::MAX / 2).unwrap(), data, "{n}");
        }
    }

    #[test]
    fn concatenated_members_are_read_like_go_does() {
        let (a, b) = (sample(5000), sample(9000));
        let (mut za, mut zb) = (Vec::new(), Vec::new());
        gzip_into(&a, &mut za);
        gzip_into(&b, &mut zb);
        za.extend_from_slice(&zb);
        let mut want = a.clone();
        want.extend_from_slice(&b);
        assert_eq!(gunzip(&za, usize::MAX / 2).unwrap(), want);
        // Garbage after a member is an error, as in Go.
        za.extend_from_slice(b"xx");
        assert!(matches!(
            gunzip(&za, usize::MAX / 2),
            Err(GunzipError::Corrupt(_))
        ));
    }

    #[test]
    fn truncation_corruption_and_the_limit_are_reported() {
        let data = sample(200_000);
        let mut z = Vec::new();
        gzip_into(&data, &mut z);
        for cut in [5, 12, z.len() / 2, z.len() - 9, z.len() - 1] {
            assert!(
                matches!(
                    gunzip(&z[..cut], usize::MAX / 2),
                    Err(GunzipError::Corrupt(_))
                ),
                "cut at {cut}"
            );
        }
        let mut bad_crc = z.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 1;
        assert_eq!(
            gunzip(&bad_crc, usize::MAX / 2),
            Err(GunzipError::Corrupt("gzip checksum mismatch".into()))
        );
        assert_eq!(gunzip(&z, 199_999), Err(GunzipError::TooLarge));
        assert_eq!(gunzip(&z, 200_000).unwrap(), data);
    }

    #[test]
    fn the_early_check_sees_the_beginning_and_can_stop_the_rest() {
        let data = vec![0u8; 50 << 20];
        let mut z = Vec::new();
        gzip_into(&data, &mut z);
        let mut out = Vec::new();
        let mut seen = 0;
        let r = gunzip_into(&z, usize::MAX / 2, &mut out, 4096, |head| {
            seen = head.len();
            Err("zeros")
        })
        .unwrap();
        assert_eq!(r, Err("zeros"));
        assert_eq!(seen, 4096);
        // Only the first step was inflated, not the 50 MiB.
        assert!(out.capacity() <= FIRST_STEP_MAX, "{}", out.capacity());
    }
}
