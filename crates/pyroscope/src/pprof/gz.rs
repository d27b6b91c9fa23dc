//! Gzip without per-call set-up: the inflate and deflate states are kept per thread and reused.
//!
//! `flate2`'s `GzDecoder`/`GzEncoder` allocate and clear a fresh state for every stream (tens of KB to
//! inflate, a few hundred KB to deflate); a scraper that handles thousands of small profiles a second would
//! spend much of its time on that. Here the gzip framing (RFC 1952) is read and written by hand around raw
//! deflate states that live in a thread-local slot and are only reset between streams, writing straight
//! into the output buffer. flate2 runs on its zlib-rs backend: about twice as fast as miniz_oxide to
//! inflate, and its deflate reset clears a 128 KB hash table instead of miniz's ~300 KB of state. Inputs
//! under 60 KB (most profiles and deltas) skip even that: they are deflated here with the fixed Huffman
//! codes and a hash table sized to the input (see `deflate_small`).

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
///
/// Small inputs (most profiles, and nearly every delta) go through [`deflate_small`]: zlib-rs would first
/// clear its 128 KB hash table and its symbol buffer, which for a profile of a few KB costs more than
/// compressing it. Larger ones go through zlib-rs.
pub fn gzip_into(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(data.len() / 4 + 64);
    // Header: no flags, no mtime, XFL 4 (fastest), OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff]);
    // Fixed codes spend 9 bits on bytes above 143: data that does not compress goes to zlib-rs, as before.
    if data.len() > SMALL_MAX || !deflate_small(data, out) {
        out.truncate(10);
        deflate_zlib(data, out);
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

/// Raw deflate of `data` appended to `out`, by zlib-rs at its fastest level.
fn deflate_zlib(data: &[u8], out: &mut Vec<u8>) {
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
}

/// The largest input [`deflate_small`] takes: positions fit its 16-bit hash table.
const SMALL_MAX: usize = 60 << 10;

thread_local! {
    /// The hash table of [`deflate_small`]: the last position (plus one) of each 4-byte hash.
    static SMALL_TABLE: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Appends `data` to `out` as one final deflate block with the fixed Huffman codes (RFC 1951 3.2.6), with
/// greedy LZ77 matching on a hash table sized to the input, the way zlib-rs's fastest level (`deflate_quick`)
/// works, minus its fixed-size set-up. False, with `out` to be discarded, when that comes out no smaller
/// than `data`.
fn deflate_small(data: &[u8], out: &mut Vec<u8>) -> bool {
    let n = data.len();
    let base = out.len();
    // About one slot per two bytes of input: what is cleared is proportional to the work.
    let bits = (usize::BITS - n.max(1).leading_zeros()).clamp(9, 15);
    let shift = 32 - bits;
    SMALL_TABLE.with(|t| {
        let mut table = t.borrow_mut();
        table.clear();
        table.resize(1 << bits, 0);
        let mut w = BitWriter::new(out);
        // BFINAL = 1, BTYPE = 01 (fixed codes).
        w.put(0b011, 3);
        let mut i = 0usize;
        while i + 4 <= n {
            let word = u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            let h = (word.wrapping_mul(0x9E37_79B1) >> shift) as usize;
            let candidate = usize::from(table[h]);
            table[h] = (i + 1) as u16;
            if candidate != 0 {
                let c = candidate - 1;
                let dist = i - c;
                if dist <= 32768 && data[c..c + 4] == data[i..i + 4] {
                    let max = (n - i).min(258);
                    let len = 4 + common_prefix(&data[c + 4..], &data[i + 4..], max - 4);
                    w.put_match(len, dist);
                    i += len;
                    continue;
                }
            }
            w.put_literal(data[i]);
            i += 1;
        }
        for &b in &data[i..] {
            w.put_literal(b);
        }
        w.put_literal_code(256);
        w.finish();
    });
    out.len() - base < n
}

/// How many leading bytes `a` and `b` share, at most `max`.
fn common_prefix(a: &[u8], b: &[u8], max: usize) -> usize {
    let mut k = 0usize;
    while k + 8 <= max {
        let x = u64::from_le_bytes(a[k..k + 8].try_into().unwrap_or([0; 8]))
            ^ u64::from_le_bytes(b[k..k + 8].try_into().unwrap_or([0; 8]));
        if x != 0 {
            return k + (x.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < max && a[k] == b[k] {
        k += 1;
    }
    k
}

/// Bits, least significant first, into a byte vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    used: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            used: 0,
        }
    }

    /// Appends the low `n` bits of `bits` (n ≤ 32).
    #[inline]
    fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.used;
        self.used += n;
        if self.used >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.used -= 32;
        }
    }

    #[inline]
    fn put_literal(&mut self, b: u8) {
        self.put_literal_code(usize::from(b));
    }

    #[inline]
    fn put_literal_code(&mut self, sym: usize) {
        let (code, len) = FIXED.lit[sym];
        self.put(u32::from(code), u32::from(len));
    }

    /// A match of `len` (3..=258) bytes at distance `dist` (1..=32768).
    #[inline]
    fn put_match(&mut self, len: usize, dist: usize) {
        let (bits, n) = FIXED.len[len];
        self.put(bits, u32::from(n));
        let (code, extra_bits, base) = dist_code(dist);
        // Distance codes are 5 bits, sent most significant bit first; extra bits follow as a number.
        let value = u32::from(REVERSED5[code]) | ((dist - base) as u32) << 5;
        self.put(value, 5 + extra_bits);
    }

    fn finish(self) {
        let mut acc = self.acc;
        let mut used = self.used;
        while used > 0 {
            self.out.push(acc as u8);
            acc >>= 8;
            used = used.saturating_sub(8);
        }
    }
}

/// The distance code of `dist`, its number of extra bits and its base distance.
#[inline]
fn dist_code(dist: usize) -> (usize, u32, usize) {
    let d = dist - 1;
    if d < 4 {
        return (d, 0, dist);
    }
    let log = usize::BITS - 1 - d.leading_zeros();
    let code = 2 * log as usize + ((d >> (log - 1)) & 1);
    let extra = log - 1;
    let base = (d & !((1 << extra) - 1)) + 1;
    (code, extra, base)
}

/// The five-bit codes 0..30, bit-reversed (Huffman codes go most significant bit first).
const REVERSED5: [u8; 30] = {
    let mut t = [0u8; 30];
    let mut i = 0;
    while i < 30 {
        let mut r = 0u8;
        let mut b = 0;
        while b < 5 {
            r |= (((i >> b) & 1) as u8) << (4 - b);
            b += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

/// The fixed literal/length codes, bit-reversed, and each match length's code with its extra bits.
struct FixedCodes {
    /// Per literal/length symbol 0..288: (code, bits).
    lit: [(u16, u8); 288],
    /// Per match length 0..=258 (3.. used): the length symbol's code followed by its extra bits.
    len: [(u32, u8); 259],
}

const fn reverse(code: u32, bits: u32) -> u32 {
    let mut r = 0;
    let mut b = 0;
    while b < bits {
        r |= ((code >> b) & 1) << (bits - 1 - b);
        b += 1;
    }
    r
}

static FIXED: FixedCodes = {
    let mut lit = [(0u16, 0u8); 288];
    let mut s = 0u32;
    while s < 288 {
        let (code, bits) = if s < 144 {
            (0x30 + s, 8)
        } else if s < 256 {
            (0x190 + s - 144, 9)
        } else if s < 280 {
            (s - 256, 7)
        } else {
            (0xC0 + s - 280, 8)
        };
        lit[s as usize] = (reverse(code, bits) as u16, bits as u8);
        s += 1;
    }
    let mut len = [(0u32, 0u8); 259];
    let mut l = 3u32;
    while l <= 258 {
        let x = l - 3;
        let (sym, extra_bits, extra) = if l == 258 {
            (285, 0, 0)
        } else if x < 8 {
            (257 + x, 0, 0)
        } else {
            let log = 31 - x.leading_zeros();
            let extra_bits = log - 2;
            (
                265 + 4 * (log - 3) + ((x >> extra_bits) & 3),
                extra_bits,
                x & ((1 << extra_bits) - 1),
            )
        };
        let (code, bits) = lit[sym as usize];
        len[l as usize] = (code as u32 | extra << bits, bits + extra_bits as u8);
        l += 1;
    }
    FixedCodes { lit, len }
};

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
    fn small_inputs_round_trip_through_the_fixed_code_encoder() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/pprof");
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        if let Ok(dir) = std::fs::read_dir(&fixtures) {
            for e in dir.flatten() {
                if let Ok(z) = std::fs::read(e.path()) {
                    if z.starts_with(&[0x1f, 0x8b]) {
                        inputs.push(reference_gunzip(&z));
                    }
                }
            }
        }
        // Every length and distance code, runs longer than a match, incompressible bytes, tiny inputs.
        let mut x = 0x1234_5678u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
        let random = noise(SMALL_MAX);
        inputs.push(random.clone());
        for len in [3usize, 4, 5, 10, 11, 100, 257, 258, 259, 600, 5000] {
            for dist in [
                1usize, 2, 3, 4, 5, 7, 100, 1000, 4097, 20_000, 32_767, 32_768, 32_769,
            ] {
                let mut d = noise(dist);
                let rep = d[..len.min(dist)].to_vec();
                d.extend(rep.iter().cycle().take(len));
                d.extend_from_slice(&noise(7));
                inputs.push(d);
            }
        }
        inputs.push(vec![0u8; SMALL_MAX]);
        inputs.push(vec![7u8; SMALL_MAX + 1]);
        for n in 0..12 {
            inputs.push(sample(n));
        }
        let (mut ours, mut zlib) = (0usize, 0usize);
        for (k, data) in inputs.iter().enumerate() {
            let mut z = Vec::new();
            gzip_into(data, &mut z);
            assert_eq!(
                &reference_gunzip(&z),
                data,
                "input {k} of {} bytes",
                data.len()
            );
            assert_eq!(gunzip(&z, usize::MAX / 2).unwrap(), *data);
            if data.len() <= SMALL_MAX && data.len() > 1000 {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
                enc.write_all(data).unwrap();
                zlib += enc.finish().unwrap().len();
                ours += z.len();
            }
        }
        // About as small as zlib's fastest level.
        assert!(ours * 10 <= zlib * 12, "{ours} vs {zlib}");
        // What does not compress goes to zlib-rs, as before.
        let mut z = Vec::new();
        gzip_into(&random, &mut z);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&random).unwrap();
        assert!(z.len() <= enc.finish().unwrap().len());
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the input (pieces of random bytes over a small alphabet, repeated at random distances, on
        /// both sides of the small-input limit), the stream decodes to it with flate2 and with our reader.
        #[test]
        fn any_input_round_trips(
            pieces in proptest::collection::vec(
                (proptest::collection::vec(0u8..6, 0..300), 0usize..40_000, 1usize..9_000),
                0..12,
            ),
        ) {
            let mut data: Vec<u8> = Vec::new();
            for (bytes, back, repeat) in pieces {
                data.extend(bytes.iter().map(|b| b.wrapping_mul(37)));
                if !data.is_empty() {
                    // Copy `repeat` bytes from `back` bytes ago (overlapping copies included).
                    let from = data.len() - 1 - back % data.len();
                    for i in 0..repeat {
                        let b = data[from + i % (data.len() - from)];
                        data.push(b);
                    }
                }
            }
            let mut z = Vec::new();
            gzip_into(&data, &mut z);
            proptest::prop_assert_eq!(reference_gunzip(&z), data.clone());
            proptest::prop_assert_eq!(gunzip(&z, usize::MAX / 2).unwrap(), data);
        }
    }
}
