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
//! found in one pass, which keeps this linear and safe for lines with very many cells.

use super::layout::ESC;

const TAB_WIDTH: usize = 8;
const PADDING: usize = 1;

#[derive(Clone, Copy)]
struct Cell {
    start: usize,
    end: usize,
    /// Width in characters, escape bytes excluded.
    width: usize,
    /// Ended by `\t` (never discarded when empty).
    htab: bool,
    /// Index into the column runs; meaningful for all but a line's final cell.
    run: usize,
}

#[derive(Clone, Copy)]
struct Line {
    /// Range into the cell list.
    first: usize,
    end: usize,
    /// Ended by `\f`: no column run continues past it.
    formfeed: bool,
    /// Ended by a line break (the last line of the input may not be).
    terminated: bool,
}

#[derive(Clone, Copy)]
struct Run {
    width: usize,
    discardable: bool,
}

/// Aligns and trims a layout stream; the result has no trailing newline.
pub(super) fn align(input: &[u8]) -> Vec<u8> {
    let (cells, lines) = split(input);
    let (cells, runs) = assign_runs(cells, &lines);
    let mut out = Trimmer::new(input.len() + input.len() / 8);
    for line in &lines {
        let line_cells = cells.get(line.first..line.end).unwrap_or(&[]);
        let columns = line_cells.len().saturating_sub(1);
        let mut use_tabs = true;
        for (j, cell) in line_cells.iter().enumerate() {
            let width = if j < columns {
                runs.get(cell.run)
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
                out.write(input.get(cell.start..cell.end).unwrap_or(&[]));
                if let Some(w) = width {
                    out.pad(cell.width, w, false);
                }
            }
        }
        if line.terminated {
            out.write(b"\n");
        }
    }
    out.finish()
}

/// Splits the stream into cells and lines.
fn split(input: &[u8]) -> (Vec<Cell>, Vec<Line>) {
    let mut cells = Vec::with_capacity(input.len() / 8 + 1);
    let mut lines = Vec::with_capacity(input.len() / 24 + 1);
    let mut cell_start = 0;
    let mut line_first = 0;
    let mut width = 0;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate() {
        if escaped {
            if b == ESC {
                escaped = false;
            } else if b & 0xC0 != 0x80 {
                width += 1;
            }
            continue;
        }
        match b {
            b'\t' | 0x0B | b'\n' | 0x0C => {
                cells.push(Cell {
                    start: cell_start,
                    end: i,
                    width,
                    htab: b == b'\t',
                    run: 0,
                });
                cell_start = i + 1;
                width = 0;
                if b == b'\n' || b == 0x0C {
                    lines.push(Line {
                        first: line_first,
                        end: cells.len(),
                        formfeed: b == 0x0C,
                        terminated: true,
                    });
                    line_first = cells.len();
                }
            }
            ESC => escaped = true,
            _ if b & 0xC0 != 0x80 => width += 1,
            _ => {}
        }
    }
    // The final partial cell counts only when it has text.
    if cell_start < input.len() {
        cells.push(Cell {
            start: cell_start,
            end: input.len(),
            width,
            htab: false,
            run: 0,
        });
    }
    lines.push(Line {
        first: line_first,
        end: cells.len(),
        formfeed: false,
        terminated: false,
    });
    (cells, lines)
}

/// Finds the column runs and gives each column cell its run.
fn assign_runs(mut cells: Vec<Cell>, lines: &[Line]) -> (Vec<Cell>, Vec<Run>) {
    let mut runs: Vec<Run> = Vec::new();
    // `open[j]`: the run column `j` continues on the next line, if it has that column.
    let mut open: Vec<usize> = Vec::new();
    for line in lines {
        let columns = (line.end - line.first).saturating_sub(1);
        open.truncate(columns);
        for j in 0..columns {
            let Some(cell) = cells.get_mut(line.first + j) else {
                break;
            };
            let run = match open.get(j) {
                Some(&r) => r,
                None => {
                    runs.push(Run {
                        width: 0,
                        discardable: true,
                    });
                    open.push(runs.len() - 1);
                    runs.len() - 1
                }
            };
            cell.run = run;
            if let Some(r) = runs.get_mut(run) {
                r.width = r.width.max(cell.width + PADDING);
                if cell.width > 0 || cell.htab {
                    r.discardable = false;
                }
            }
        }
        if line.formfeed {
            open.clear();
        }
    }
    (cells, runs)
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
    fn pad(&mut self, text_width: usize, cell_width: usize, use_tabs: bool) {
        if use_tabs {
            let cell_width = cell_width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
            let n = cell_width.saturating_sub(text_width);
            for _ in 0..n.div_ceil(TAB_WIDTH) {
                self.byte(b'\t');
            }
        } else {
            for _ in 0..cell_width.saturating_sub(text_width) {
                self.byte(b' ');
            }
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
