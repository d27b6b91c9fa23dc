//! Stages 2 and 3 of the formatter: align cells into columns, then trim trailing blanks.
//!
//! This reproduces Go's `text/tabwriter` as the reference printer configures it (minimum width 0, tab width
//! 8, padding 1, pad with spaces, discard empty columns, indent with tabs), which decides every alignment:
//!
//! - A line is a list of cells, each ended by `\t` or `\v`; the text after the last one is the line's final
//!   cell, which never belongs to a column. `\n` and `\f` end lines; `\f` also ends all columns.
//! - Cell `j` of consecutive lines that all have more than `j + 1` cells form a column run; every cell in
//!   the run is padded to the widest cell (in characters) plus one.
//! - A run whose cells are all empty and `\v`-ended has width 0. Leading empty cells (indentation) are
//!   padded with tabs (one tab per started 8 columns), others with spaces.
//! - Text between [`ESC`] bytes is literal: its tabs and line breaks are ordinary characters.
//!
//! Trimming then removes spaces and tabs before each line end and at the end of the output, except inside
//! literal text, and drops the [`ESC`] bytes.
//!
//! Unlike the Go writer (recursive per column, with a stack as deep as a line has cells), the runs are
//! found in one pass per segment, which keeps this linear and safe for lines with very many cells.

use super::layout::ESC;

const TAB_WIDTH: u32 = 8;
const PADDING: u32 = 1;

#[derive(Clone, Copy)]
struct Cell {
    start: usize,
    end: usize,
    /// Width in characters, escape bytes excluded.
    width: u32,
    /// Index into the column runs; meaningful for all but a line's final cell.
    run: u32,
    /// Ended by `\t` (never discarded when empty).
    htab: bool,
    /// Contains literal text (escape bytes).
    escaped: bool,
}

#[derive(Clone, Copy)]
struct Line {
    /// Range into the cell list.
    first: usize,
    end: usize,
    /// Ended by a line break (the last line of the input may not be).
    terminated: bool,
}

#[derive(Clone, Copy)]
struct Run {
    width: u32,
    discardable: bool,
}

/// The lines since the last point where no column run can continue (a `\f`, or a line with a single
/// cell, which has no column). Like Go's writer, lines are aligned and written segment by segment, so the
/// buffers stay small and are reused.
#[derive(Default)]
struct Segment {
    cells: Vec<Cell>,
    lines: Vec<Line>,
    runs: Vec<Run>,
    /// `open[j]`: the run that column `j` continues on the next line, if it has that column.
    open: Vec<u32>,
}

/// Bytes that end a cell or start/end literal text.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\t' as usize] = true;
    t[0x0B] = true;
    t[b'\n' as usize] = true;
    t[0x0C] = true;
    t[ESC as usize] = true;
    t
};

/// Width in characters of a cell's bytes, escape bytes excluded.
fn width_of(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80 && b != ESC)
        .count() as u32
}

/// Aligns and trims a layout stream; the result has no trailing newline.
pub(super) fn align(input: &[u8]) -> Vec<u8> {
    let mut out = Trimmer::new(input.len());
    let mut seg = Segment::default();
    let mut cell_start = 0;
    let mut line_first = 0;
    let mut escaped = false;
    let mut i = 0;
    while i < input.len() {
        // Skip to the next special byte (ordinary text is most of the stream).
        while input.get(i).is_some_and(|&b| !SPECIAL[b as usize]) {
            i += 1;
        }
        let Some(&b) = input.get(i) else { break };
        if b == ESC {
            escaped = true;
            // Literal text runs to the closing escape byte.
            i += 1;
            while input.get(i).is_some_and(|&b| b != ESC) {
                i += 1;
            }
            i += 1;
            continue;
        }
        let end_of_line = b == b'\n' || b == 0x0C;
        // Only column cells need a width; a line's final cell never belongs to a column.
        let bytes = input.get(cell_start..i).unwrap_or(&[]);
        let width = if end_of_line { 0 } else { width_of(bytes) };
        seg.cells.push(Cell {
            start: cell_start,
            end: i,
            width,
            run: 0,
            htab: b == b'\t',
            escaped,
        });
        cell_start = i + 1;
        escaped = false;
        if end_of_line {
            let end = seg.cells.len();
            seg.lines.push(Line {
                first: line_first,
                end,
                terminated: true,
            });
            if b == 0x0C || end - line_first <= 1 {
                seg.write(input, &mut out);
                line_first = 0;
            } else {
                line_first = end;
            }
        }
        i += 1;
    }
    // The final partial cell counts only when it has text.
    if cell_start < input.len() {
        seg.cells.push(Cell {
            start: cell_start,
            end: input.len(),
            width: 0,
            run: 0,
            htab: false,
            escaped,
        });
    }
    let end = seg.cells.len();
    seg.lines.push(Line {
        first: line_first,
        end,
        terminated: false,
    });
    seg.write(input, &mut out);
    out.finish()
}

impl Segment {
    /// Aligns the buffered lines, writes them and empties the buffers.
    fn write(&mut self, input: &[u8], out: &mut Trimmer) {
        self.assign_runs();
        for line in &self.lines {
            let cells = self.cells.get(line.first..line.end).unwrap_or(&[]);
            let columns = cells.len().saturating_sub(1);
            let mut use_tabs = true;
            for (j, cell) in cells.iter().enumerate() {
                let width = if j < columns {
                    self.runs
                        .get(cell.run as usize)
                        .map(|r| if r.discardable { 0 } else { r.width })
                } else {
                    None
                };
                if cell.start == cell.end {
                    if let Some(w) = width {
                        out.pad(cell.width, w, use_tabs);
                    }
                } else {
                    use_tabs = false;
                    let text = input.get(cell.start..cell.end).unwrap_or(&[]);
                    if cell.escaped {
                        out.write(text);
                    } else {
                        out.plain(text);
                    }
                    if let Some(w) = width {
                        out.pad(cell.width, w, false);
                    }
                }
            }
            if line.terminated {
                out.newline();
            }
        }
        self.cells.clear();
        self.lines.clear();
        self.runs.clear();
        self.open.clear();
    }

    /// Finds the column runs: cell `j` of consecutive lines that all have more than `j + 1` cells.
    fn assign_runs(&mut self) {
        for line in &self.lines {
            let columns = (line.end - line.first).saturating_sub(1);
            self.open.truncate(columns);
            for j in 0..columns {
                let Some(cell) = self.cells.get_mut(line.first + j) else {
                    break;
                };
                let run = match self.open.get(j) {
                    Some(&r) => r,
                    None => {
                        self.runs.push(Run {
                            width: 0,
                            discardable: true,
                        });
                        let r = (self.runs.len() - 1) as u32;
                        self.open.push(r);
                        r
                    }
                };
                cell.run = run;
                if let Some(r) = self.runs.get_mut(run as usize) {
                    r.width = r.width.max(cell.width + PADDING);
                    if cell.width > 0 || cell.htab {
                        r.discardable = false;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TrimState {
    /// After a line start, a blank or literal text: blanks are held back.
    Space,
    /// Inside literal text.
    Escape,
    /// Inside ordinary text.
    Text,
}

/// Removes blanks before line ends and escape bytes (the reference's output filter).
struct Trimmer {
    out: Vec<u8>,
    state: TrimState,
    /// Blanks held back until text follows.
    space: Vec<u8>,
}

impl Trimmer {
    fn new(capacity: usize) -> Self {
        Trimmer {
            out: Vec::with_capacity(capacity),
            state: TrimState::Space,
            space: Vec::new(),
        }
    }

    /// Padding to `cell_width` for a cell whose text is `text_width` wide.
    fn pad(&mut self, text_width: u32, cell_width: u32, use_tabs: bool) {
        let (byte, n) = if use_tabs {
            let cell_width = cell_width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
            (
                b'\t',
                cell_width.saturating_sub(text_width).div_ceil(TAB_WIDTH),
            )
        } else {
            (b' ', cell_width.saturating_sub(text_width))
        };
        if n == 0 {
            return;
        }
        match self.state {
            // Blanks are held back until text follows (dropped before a line end).
            TrimState::Space | TrimState::Text => {
                if self.state == TrimState::Text {
                    self.space.clear();
                    self.state = TrimState::Space;
                }
                self.space.resize(self.space.len() + n as usize, byte);
            }
            TrimState::Escape => self.out.resize(self.out.len() + n as usize, byte),
        }
    }

    /// A line end outside literal text.
    fn newline(&mut self) {
        if self.state == TrimState::Escape {
            self.out.push(b'\n');
        } else {
            self.space.clear();
            self.state = TrimState::Space;
            self.out.push(b'\n');
        }
    }

    /// Text without escape bytes or line breaks: only its trailing blanks are held back.
    fn plain(&mut self, text: &[u8]) {
        let body = text
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t' && b != 0x0B)
            .map_or(0, |p| p + 1);
        if self.state == TrimState::Escape {
            self.out.extend_from_slice(text);
            return;
        }
        if body > 0 {
            self.out.extend_from_slice(&self.space);
            self.space.clear();
            self.out.extend_from_slice(&text[..body]);
            self.state = TrimState::Text;
        }
        if body < text.len() {
            if self.state == TrimState::Text {
                self.space.clear();
                self.state = TrimState::Space;
            }
            self.space.extend(
                text[body..]
                    .iter()
                    .map(|&b| if b == 0x0B { b'\t' } else { b }),
            );
        }
    }

    fn write(&mut self, data: &[u8]) {
        // Fast path: plain text in the text state.
        let mut i = 0;
        while i < data.len() {
            if self.state == TrimState::Text {
                let run = data[i..]
                    .iter()
                    .position(|&b| matches!(b, b'\t' | 0x0B | b' ' | b'\n' | 0x0C | ESC))
                    .unwrap_or(data.len() - i);
                self.out.extend_from_slice(&data[i..i + run]);
                i += run;
                if i >= data.len() {
                    break;
                }
            } else if self.state == TrimState::Escape {
                let run = data[i..]
                    .iter()
                    .position(|&b| b == ESC)
                    .unwrap_or(data.len() - i);
                self.out.extend_from_slice(&data[i..i + run]);
                i += run;
                if i >= data.len() {
                    break;
                }
            }
            if let Some(&b) = data.get(i) {
                self.byte(b);
            }
            i += 1;
        }
    }

    fn byte(&mut self, b: u8) {
        let b = if b == 0x0B { b'\t' } else { b };
        match self.state {
            TrimState::Space => match b {
                b'\t' | b' ' => self.space.push(b),
                b'\n' | 0x0C => {
                    self.space.clear();
                    self.out.push(b'\n');
                }
                ESC => {
                    self.out.extend_from_slice(&self.space);
                    self.space.clear();
                    self.state = TrimState::Escape;
                }
                _ => {
                    self.out.extend_from_slice(&self.space);
                    self.space.clear();
                    self.out.push(b);
                    self.state = TrimState::Text;
                }
            },
            TrimState::Text => match b {
                b'\t' | b' ' => {
                    self.space.clear();
                    self.space.push(b);
                    self.state = TrimState::Space;
                }
                b'\n' | 0x0C => {
                    self.out.push(b'\n');
                    self.space.clear();
                    self.state = TrimState::Space;
                }
                ESC => self.state = TrimState::Escape,
                _ => self.out.push(b),
            },
            TrimState::Escape => {
                if b == ESC {
                    self.space.clear();
                    self.state = TrimState::Space;
                } else {
                    self.out.push(b);
                }
            }
        }
    }

    /// The trimmed output; blanks at the very end are dropped.
    fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    fn run(s: &[u8]) -> String {
        String::from_utf8(align(s)).unwrap()
    }

    #[test]
    fn columns_align_over_consecutive_lines_only() {
        assert_eq!(
            run(b"a\x0b= 1\nlong\x0b= 2\nx\n"),
            "a    = 1\nlong = 2\nx\n"
        );
        // A line without the column ends the run.
        assert_eq!(run(b"a\x0b= 1\nx\nlong\x0b= 2"), "a = 1\nx\nlong = 2");
        // A formfeed ends every run.
        assert_eq!(run(b"a\x0b= 1\x0clong\x0b= 2"), "a = 1\nlong = 2");
    }

    #[test]
    fn leading_empty_cells_become_tabs_and_empty_soft_columns_vanish() {
        assert_eq!(
            run(b"\t\ta\x0b= 1\n\t\tbb\x0b= 2"),
            "\t\ta  = 1\n\t\tbb = 2"
        );
        assert_eq!(run(b"\x0ba\n\x0bb"), "a\nb");
    }

    #[test]
    fn escaped_text_is_literal_and_widths_count_characters() {
        assert_eq!(
            run(b"\xffa\tb\xff\x0b= 1\n\xc3\xa9\x0b= 2"),
            "a\tb = 1\né   = 2"
        );
    }

    #[test]
    fn trailing_blanks_are_trimmed_outside_escapes() {
        assert_eq!(run(b"a  \n\t\n\xffc \xff  \nd  "), "a\n\nc \nd");
    }
}
