//! Byte spans into a source text and their translation to line/column positions.

use std::fmt;

/// A half-open byte range `start..end` into a source text.
///
/// Offsets are `u32` to keep the AST small; sources larger than 4 GiB are rejected by the parser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end`.
    pub const fn new(start: u32, end: u32) -> Self {
        Span { start, end }
    }

    /// An empty span at `offset`.
    pub const fn at(offset: u32) -> Self {
        Span {
            start: offset,
            end: offset,
        }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// True when the span covers no byte.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The text this span covers in `src` (empty if the span is out of range).
    pub fn text(self, src: &str) -> &str {
        src.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }

    /// The span as a `usize` range.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A 1-based line and column. `column` counts characters (what an editor shows);
/// `byte_column` counts bytes (what the reference implementation printed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column counted in characters.
    pub column: usize,
    /// 1-based column counted in bytes.
    pub byte_column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Maps byte offsets in one source text to line/column positions.
#[derive(Clone, Debug, Default)]
pub struct LineIndex {
    /// Byte offset where each line starts; always starts with 0.
    line_starts: Vec<u32>,
}

impl LineIndex {
    /// Index the line starts of `src`. Only `\n` ends a line (a preceding `\r` is part of the line).
    pub fn new(src: &str) -> Self {
        let mut line_starts = Vec::with_capacity(src.len() / 32 + 1);
        line_starts.push(0);
        line_starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| (i + 1) as u32),
        );
        LineIndex { line_starts }
    }

    /// Number of lines (a trailing newline opens one more, empty line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// 0-based line number containing byte `offset`.
    pub fn line_of(&self, offset: u32) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        }
    }

    /// Byte range of 0-based line `line` in `src`, without its `\n` (and without a `\r` before it).
    pub fn line_range(&self, src: &str, line: usize) -> std::ops::Range<usize> {
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(src.len() as u32) as usize;
        let mut end = self
            .line_starts
            .get(line + 1)
            .map(|&s| s as usize - 1)
            .unwrap_or(src.len());
        if end > start && src.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        start..end
    }

    /// The position of byte `offset` in `src`.
    pub fn position(&self, src: &str, offset: u32) -> Position {
        let offset = offset.min(src.len() as u32);
        let line = self.line_of(offset);
        let start = self.line_starts[line] as usize;
        let mut end = offset as usize;
        while end > start && !src.is_char_boundary(end) {
            end -= 1;
        }
        let column = src[start..end].chars().count() + 1;
        Position {
            line: line + 1,
            column,
            byte_column: offset as usize - start + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_and_bytes() {
        let src = "a = 1\nb = \"é\" x\n";
        let idx = LineIndex::new(src);
        let x = src.find('x').unwrap() as u32;
        let p = idx.position(src, x);
        assert_eq!((p.line, p.column, p.byte_column), (2, 9, 10));
        assert_eq!(
            idx.position(src, 0),
            Position {
                line: 1,
                column: 1,
                byte_column: 1
            }
        );
        assert_eq!(idx.line_range(src, 1), 6..16);
        assert_eq!(idx.line_count(), 3);
    }
}
