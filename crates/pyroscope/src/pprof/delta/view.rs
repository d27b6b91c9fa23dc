//! A borrowed, allocation-light reading of a `Profile` for the delta: one pass over the protobuf wire
//! format that keeps strings as byte ranges of the input and the repeated parts of samples and locations in
//! flat vectors reused from one profile to the next.
//!
//! It accepts and refuses exactly what prost's decoding of [`super::super::proto::Profile`] does (wire types
//! of known fields, packed and unpacked repeated numbers, last-one-wins scalars, merged `period_type`,
//! UTF-8 strings, skipped unknown fields and groups, prost's recursion limit), so the delta behaves as if the
//! profile had been decoded: the tests check it against the prost-based model.

use super::super::proto::{Function, Label, Line, Mapping, ValueType};

/// prost's recursion limit: how deep messages and groups may nest.
const RECURSION_LIMIT: u32 = 100;

/// A byte range of the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// A range of one of the flat vectors of [`Tables`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Slice {
    pub start: u32,
    pub end: u32,
}

impl Slice {
    fn since(start: usize, end: usize) -> Slice {
        Slice {
            start: start as u32,
            end: end as u32,
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

/// A sample: its location IDs, values and labels in [`Tables::loc_ids`], [`Tables::values`] and
/// [`Tables::labels`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SampleRef {
    pub locs: Slice,
    /// The packed encoding of the location IDs in the input, when they came in one packed field (as Go
    /// writes them): copied as they are.
    pub locs_packed: Option<Span>,
    pub values: Slice,
    pub labels: Slice,
}

/// A location, its lines in [`Tables::lines`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LocationRef {
    pub id: u64,
    pub mapping_id: u64,
    pub address: u64,
    pub is_folded: bool,
    pub lines: Slice,
    /// The message's bytes (without tag and length).
    pub raw: Span,
    /// Whether the message has only known fields, so that copying `raw` writes what re-encoding would
    /// decode to (unknown fields are dropped, as prost drops them).
    pub plain: bool,
}

/// The top-level scalar fields.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Scalars {
    pub drop_frames: i64,
    pub keep_frames: i64,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub period_type: Option<ValueType>,
    pub period: i64,
    pub default_sample_type: i64,
    pub doc_url: i64,
}

/// A profile read from its wire format, its strings left in the input.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub sample_type: Vec<ValueType>,
    pub samples: Vec<SampleRef>,
    pub loc_ids: Vec<u64>,
    pub values: Vec<i64>,
    pub labels: Vec<Label>,
    pub mappings: Vec<Mapping>,
    pub locations: Vec<LocationRef>,
    pub lines: Vec<Line>,
    pub functions: Vec<Function>,
    pub strings: Vec<Span>,
    pub comments: Vec<i64>,
    pub scalars: Scalars,
}

impl Tables {
    /// Reads `buf` (a whole `Profile` message), replacing what the tables held. The error says what is
    /// wrong and where.
    pub fn read(&mut self, buf: &[u8]) -> Result<(), WireError> {
        self.clear();
        let mut r = Reader { buf, pos: 0 };
        let depth = RECURSION_LIMIT;
        while !r.done() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let mut m = r.message(wire, tag, depth)?;
                    let mut vt = ValueType::default();
                    value_type(&mut m, &mut vt, depth - 1)?;
                    self.sample_type.push(vt);
                }
                2 => {
                    let mut m = r.message(wire, tag, depth)?;
                    self.sample(&mut m, depth - 1)?;
                }
                3 => {
                    let mut m = r.message(wire, tag, depth)?;
                    self.mappings.push(mapping(&mut m, depth - 1)?);
                }
                4 => {
                    let mut m = r.message(wire, tag, depth)?;
                    self.location(&mut m, depth - 1)?;
                }
                5 => {
                    let mut m = r.message(wire, tag, depth)?;
                    self.functions.push(function(&mut m, depth - 1)?);
                }
                6 => {
                    let at = r.pos;
                    r.expect(wire, DELIMITED)?;
                    let s = r.delimited()?;
                    if std::str::from_utf8(&buf[s.start..s.end]).is_err() {
                        return fail("string that is not UTF-8", at);
                    }
                    self.strings.push(s);
                }
                7 => self.scalars.drop_frames = r.int64(wire, tag)?,
                8 => self.scalars.keep_frames = r.int64(wire, tag)?,
                9 => self.scalars.time_nanos = r.int64(wire, tag)?,
                10 => self.scalars.duration_nanos = r.int64(wire, tag)?,
                11 => {
                    let mut m = r.message(wire, tag, depth)?;
                    // A repeated optional message merges into the first, as prost does.
                    let vt = self
                        .scalars
                        .period_type
                        .get_or_insert_with(Default::default);
                    value_type(&mut m, vt, depth - 1)?;
                }
                12 => self.scalars.period = r.int64(wire, tag)?,
                13 => r.repeated(wire, tag, &mut self.comments, |v| v as i64)?,
                14 => self.scalars.default_sample_type = r.int64(wire, tag)?,
                15 => self.scalars.doc_url = r.int64(wire, tag)?,
                _ => r.skip(wire, tag, depth)?,
            }
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.sample_type.clear();
        self.samples.clear();
        self.loc_ids.clear();
        self.values.clear();
        self.labels.clear();
        self.mappings.clear();
        self.locations.clear();
        self.lines.clear();
        self.functions.clear();
        self.strings.clear();
        self.comments.clear();
        self.scalars = Scalars::default();
    }

    /// The bytes the vectors hold on to.
    pub fn capacity_bytes(&self) -> usize {
        use std::mem::size_of;
        self.sample_type.capacity() * size_of::<ValueType>()
            + self.samples.capacity() * size_of::<SampleRef>()
            + self.loc_ids.capacity() * 8
            + self.values.capacity() * 8
            + self.labels.capacity() * size_of::<Label>()
            + self.mappings.capacity() * size_of::<Mapping>()
            + self.locations.capacity() * size_of::<LocationRef>()
            + self.lines.capacity() * size_of::<Line>()
            + self.functions.capacity() * size_of::<Function>()
            + self.strings.capacity() * size_of::<Span>()
            + self.comments.capacity() * 8
    }

    fn sample(&mut self, r: &mut Reader<'_>, depth: u32) -> Result<(), WireError> {
        let (l0, v0, b0) = (self.loc_ids.len(), self.values.len(), self.labels.len());
        let mut locs_packed = None;
        let mut loc_fields = 0;
        while !r.done() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let at = r.pos;
                    r.repeated(wire, tag, &mut self.loc_ids, |v| v)?;
                    loc_fields += 1;
                    if wire == DELIMITED {
                        // The content after the length.
                        let mut len = Reader {
                            buf: r.buf,
                            pos: at,
                        };
                        len.varint()?;
                        locs_packed = Some(Span {
                            start: len.pos,
                            end: r.pos,
                        });
                    }
                }
                2 => r.repeated(wire, tag, &mut self.values, |v| v as i64)?,
                3 => {
                    let mut m = r.message(wire, tag, depth)?;
                    self.labels.push(label(&mut m, depth - 1)?);
                }
                _ => r.skip(wire, tag, depth)?,
            }
        }
        self.samples.push(SampleRef {
            locs: Slice::since(l0, self.loc_ids.len()),
            locs_packed: locs_packed.filter(|s: &Span| loc_fields == 1 && s.end > s.start),
            values: Slice::since(v0, self.values.len()),
            labels: Slice::since(b0, self.labels.len()),
        });
        Ok(())
    }

    fn location(&mut self, r: &mut Reader<'_>, depth: u32) -> Result<(), WireError> {
        let mut loc = LocationRef {
            raw: Span {
                start: r.pos,
                end: r.buf.len(),
            },
            plain: true,
            ..Default::default()
        };
        let l0 = self.lines.len();
        while !r.done() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => loc.id = r.uint64(wire, tag)?,
                2 => loc.mapping_id = r.uint64(wire, tag)?,
                3 => loc.address = r.uint64(wire, tag)?,
                4 => {
                    let mut m = r.message(wire, tag, depth)?;
                    let mut line = Line::default();
                    while !m.done() {
                        let (tag, wire) = m.key()?;
                        match tag {
                            1 => line.function_id = m.uint64(wire, tag)?,
                            2 => line.line = m.int64(wire, tag)?,
                            3 => line.column = m.int64(wire, tag)?,
                            _ => {
                                loc.plain = false;
                                m.skip(wire, tag, depth - 1)?
                            }
                        }
                    }
                    self.lines.push(line);
                }
                5 => loc.is_folded = r.uint64(wire, tag)? != 0,
                _ => {
                    loc.plain = false;
                    r.skip(wire, tag, depth)?
                }
            }
        }
        loc.lines = Slice::since(l0, self.lines.len());
        self.locations.push(loc);
        Ok(())
    }
}

fn value_type(r: &mut Reader<'_>, vt: &mut ValueType, depth: u32) -> Result<(), WireError> {
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => vt.r#type = r.int64(wire, tag)?,
            2 => vt.unit = r.int64(wire, tag)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(())
}

fn label(r: &mut Reader<'_>, depth: u32) -> Result<Label, WireError> {
    let mut l = Label::default();
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => l.key = r.int64(wire, tag)?,
            2 => l.str = r.int64(wire, tag)?,
            3 => l.num = r.int64(wire, tag)?,
            4 => l.num_unit = r.int64(wire, tag)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(l)
}

fn mapping(r: &mut Reader<'_>, depth: u32) -> Result<Mapping, WireError> {
    let mut m = Mapping::default();
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => m.id = r.uint64(wire, tag)?,
            2 => m.memory_start = r.uint64(wire, tag)?,
            3 => m.memory_limit = r.uint64(wire, tag)?,
            4 => m.file_offset = r.uint64(wire, tag)?,
            5 => m.filename = r.int64(wire, tag)?,
            6 => m.build_id = r.int64(wire, tag)?,
            7 => m.has_functions = r.uint64(wire, tag)? != 0,
            8 => m.has_filenames = r.uint64(wire, tag)? != 0,
            9 => m.has_line_numbers = r.uint64(wire, tag)? != 0,
            10 => m.has_inline_frames = r.uint64(wire, tag)? != 0,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(m)
}

fn function(r: &mut Reader<'_>, depth: u32) -> Result<Function, WireError> {
    let mut f = Function::default();
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => f.id = r.uint64(wire, tag)?,
            2 => f.name = r.int64(wire, tag)?,
            3 => f.system_name = r.int64(wire, tag)?,
            4 => f.filename = r.int64(wire, tag)?,
            5 => f.start_line = r.int64(wire, tag)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(f)
}

/// Why the wire format is broken, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct WireError {
    what: &'static str,
    at: usize,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

fn fail<T>(what: &'static str, at: usize) -> Result<T, WireError> {
    Err(WireError { what, at })
}

/// A cursor over one message: `buf[pos..]`, where `buf` is the input up to the end of the message, so that
/// positions are those of the whole input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint, as prost reads it: at most 10 bytes, the 10th at most 1.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, WireError> {
        let at = self.pos;
        let rest = self.buf.get(at..).unwrap_or(&[]);
        let mut v = 0u64;
        for (i, &b) in rest.iter().take(10).enumerate() {
            if i == 9 && b >= 2 {
                return fail("invalid varint", at);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos = at + i + 1;
                return Ok(v);
            }
        }
        if rest.len() >= 10 {
            fail("invalid varint", at)
        } else {
            fail("truncated varint", at)
        }
    }

    /// A field's number and wire type.
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let at = self.pos;
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let tag = key >> 3;
        if key > u64::from(u32::MAX) || wire > FIXED32 || tag == 0 {
            return fail("invalid field key", at);
        }
        Ok((tag as u32, wire))
    }

    #[inline(always)]
    fn expect(&self, wire: u8, want: u8) -> Result<(), WireError> {
        if wire == want {
            Ok(())
        } else {
            fail("wrong wire type for the field", self.pos)
        }
    }

    #[inline(always)]
    fn uint64(&mut self, wire: u8, _tag: u32) -> Result<u64, WireError> {
        self.expect(wire, VARINT)?;
        self.varint()
    }

    #[inline(always)]
    fn int64(&mut self, wire: u8, tag: u32) -> Result<i64, WireError> {
        self.uint64(wire, tag).map(|v| v as i64)
    }

    /// A length-delimited field's content.
    #[inline(always)]
    fn delimited(&mut self) -> Result<Span, WireError> {
        let at = self.pos;
        let len = self.varint()?;
        let room = (self.buf.len() - self.pos) as u64;
        if len > room {
            return fail("length runs past the end of its message", at);
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(Span {
            start,
            end: self.pos,
        })
    }

    /// A sub-message field: a reader over its content (`depth` is what is left of the recursion limit).
    #[inline(always)]
    fn message(&mut self, wire: u8, _tag: u32, depth: u32) -> Result<Reader<'a>, WireError> {
        self.expect(wire, DELIMITED)?;
        if depth == 0 {
            return fail("recursion limit reached", self.pos);
        }
        let s = self.delimited()?;
        Ok(Reader {
            buf: &self.buf[..s.end],
            pos: s.start,
        })
    }

    /// A repeated number, packed or not.
    #[inline(always)]
    fn repeated<T>(
        &mut self,
        wire: u8,
        _tag: u32,
        out: &mut Vec<T>,
        conv: impl Fn(u64) -> T,
    ) -> Result<(), WireError> {
        if wire == DELIMITED {
            let s = self.delimited()?;
            let mut packed = Reader {
                buf: &self.buf[..s.end],
                pos: s.start,
            };
            while !packed.done() {
                out.push(conv(packed.varint()?));
            }
            Ok(())
        } else {
            self.expect(wire, VARINT)?;
            out.push(conv(self.varint()?));
            Ok(())
        }
    }

    /// Skips an unknown field, as prost does (groups included).
    fn skip(&mut self, wire: u8, tag: u32, depth: u32) -> Result<(), WireError> {
        let at = self.pos;
        if depth == 0 {
            return fail("recursion limit reached", at);
        }
        let n = match wire {
            VARINT => {
                self.varint()?;
                0
            }
            FIXED64 => 8,
            FIXED32 => 4,
            DELIMITED => {
                self.delimited()?;
                0
            }
            START_GROUP => loop {
                let (inner, inner_wire) = self.key()?;
                if inner_wire == END_GROUP {
                    if inner != tag {
                        return fail("unexpected end group tag", at);
                    }
                    break 0;
                }
                self.skip(inner_wire, inner, depth - 1)?;
            },
            _ => return fail("unexpected end group tag", at),
        };
        if n > self.buf.len() - self.pos {
            return fail("field runs past the end of its message", at);
        }
        self.pos += n;
        Ok(())
    }
}
