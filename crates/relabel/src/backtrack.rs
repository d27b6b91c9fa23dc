//! Finding groups in ASCII text for the patterns rules use that the literal matcher ([`crate::fast`]) does
//! not take: sequences of literals, repeated classes, optional and alternative groups, like the address
//! rewrite `([^:]+)(?::\d+)?;(\d+)`.
//!
//! The anchored pattern becomes a loop-free program (a repetition may only repeat one character; `x?` and
//! alternations are forward branches), run by a backtracker that tries branches in the regex's priority
//! order, so the first path that reaches the end of the text is the leftmost-first match the regex crate
//! reports, groups included. Each (instruction, position) is entered at most once (a failed one stays
//! failed: what follows an instruction does not depend on how it was reached), so a search costs at most
//! instructions × (length + 1) steps; only instructions that can be reached in more than one way need
//! remembering. Text with other characters goes to the regex crate, as do patterns
//! with anything else (assertions, repeated groups).

use regex_syntax::hir::{Class, Hir, HirKind};

/// Above this many instructions the regex crate is used.
const MAX_PROGRAM: usize = 64;
/// Above this many bytes of text the regex crate is used (the table of entered states stays small).
pub(crate) const MAX_TEXT: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Inst {
    /// These bytes.
    Lit(Box<[u8]>),
    /// A character of the set (`set[b]` for ASCII byte `b`), `min..=max` times.
    Rep {
        set: Box<[bool; 256]>,
        min: u32,
        max: u32,
        greedy: bool,
    },
    /// Records the position in slot `s`.
    Save(usize),
    /// Tries `first`, then `second`.
    Split(usize, usize),
    Jump(usize),
    /// Succeeds at the end of the text.
    Match,
}

/// A compiled pattern; see the module docs.
#[derive(Clone, Debug)]
pub(crate) struct Backtrack {
    prog: Vec<Inst>,
    /// Per instruction, its row in the table of entered states, for those that can be reached in more than
    /// one way (branch targets, what follows a repetition); `NO_ROW` for the others, which are reached only
    /// from the instruction before them, at a position that one determines.
    rows: Vec<u32>,
    row_count: usize,
    /// Slots: two per group (group 0 included).
    slots: usize,
}

const NO_ROW: u32 = u32::MAX;

/// Scratch for one search, kept with the rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    /// Start and end of each group; `usize::MAX` when it did not take part.
    pub(crate) slots: Vec<usize>,
    entered: Vec<u64>,
    /// Slots set on the current path, with their values before, to undo on failure.
    undo: Vec<(usize, usize)>,
}

impl Backtrack {
    /// The program for an anchored pattern, given the parts between its anchors, if it has one.
    pub(crate) fn new(middle: &[Hir], groups: usize) -> Option<Backtrack> {
        let mut c = Compiler { prog: Vec::new() };
        c.inst(Inst::Save(0))?;
        for h in middle {
            c.compile(h)?;
        }
        c.inst(Inst::Save(1))?;
        c.inst(Inst::Match)?;
        let mut joins = vec![false; c.prog.len()];
        for (pc, inst) in c.prog.iter().enumerate() {
            match *inst {
                Inst::Split(a, b) => {
                    joins[a] = true;
                    joins[b] = true;
                }
                Inst::Jump(to) => joins[to] = true,
                Inst::Rep { .. } => joins[pc + 1] = true,
                Inst::Lit(_) | Inst::Save(_) | Inst::Match => {}
            }
        }
        let mut row_count = 0;
        let rows = joins
            .iter()
            .map(|&j| {
                if !j {
                    return NO_ROW;
                }
                row_count += 1;
                row_count as u32 - 1
            })
            .collect();
        Some(Backtrack {
            prog: c.prog,
            rows,
            row_count,
            slots: groups * 2,
        })
    }

    /// Room for a search.
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch {
            slots: vec![usize::MAX; self.slots],
            entered: Vec::new(),
            undo: Vec::new(),
        }
    }

    /// Matches all of `text` (ASCII, at most [`MAX_TEXT`] bytes), recording the groups in `s.slots`.
    pub(crate) fn captures(&self, text: &[u8], s: &mut Scratch) -> bool {
        s.slots.clear();
        s.slots.resize(self.slots, usize::MAX);
        let bits = self.row_count * (text.len() + 1);
        s.entered.clear();
        s.entered.resize(bits.div_ceil(64), 0);
        s.undo.clear();
        let mut run = Run {
            prog: &self.prog,
            rows: &self.rows,
            text,
            slots: &mut s.slots,
            entered: &mut s.entered,
            undo: &mut s.undo,
        };
        run.step(0, 0)
    }
}

struct Run<'a> {
    prog: &'a [Inst],
    rows: &'a [u32],
    text: &'a [u8],
    slots: &'a mut [usize],
    entered: &'a mut [u64],
    undo: &'a mut Vec<(usize, usize)>,
}

impl Run<'_> {
    /// Whether the program from `pc` at `pos` reaches the end of the text. Straight-line instructions run
    /// in a loop; only branches recurse, so recursion is as deep as the program is long at most (it has no
    /// loops). On failure the slots set are put back.
    fn step(&mut self, mut pc: usize, mut pos: usize) -> bool {
        let prog = self.prog;
        let undo_from = self.undo.len();
        let ok = loop {
            let row = self.rows[pc];
            if row != NO_ROW {
                let bit = row as usize * (self.text.len() + 1) + pos;
                let (word, mask) = (bit / 64, 1u64 << (bit % 64));
                if self.entered[word] & mask != 0 {
                    break false;
                }
                self.entered[word] |= mask;
            }
            match prog[pc] {
                Inst::Lit(ref lit) => {
                    let ok = match **lit {
                        [one] => self.text.get(pos) == Some(&one),
                        _ => self.text[pos..].starts_with(lit),
                    };
                    if !ok {
                        break false;
                    }
                    pos += lit.len();
                    pc += 1;
                }
                Inst::Rep {
                    ref set,
                    min,
                    max,
                    greedy,
                } => {
                    let most = self.text[pos..]
                        .iter()
                        .take(max as usize)
                        .take_while(|&&b| set[usize::from(b)])
                        .count();
                    let min = min as usize;
                    if most < min {
                        break false;
                    }
                    break if greedy {
                        (min..=most).rev().any(|n| self.step(pc + 1, pos + n))
                    } else {
                        (min..=most).any(|n| self.step(pc + 1, pos + n))
                    };
                }
                Inst::Save(slot) => {
                    self.undo.push((slot, self.slots[slot]));
                    self.slots[slot] = pos;
                    pc += 1;
                }
                Inst::Split(a, b) => break self.step(a, pos) || self.step(b, pos),
                Inst::Jump(to) => pc = to,
                Inst::Match => break pos == self.text.len(),
            }
        };
        if !ok {
            while self.undo.len() > undo_from {
                if let Some((slot, old)) = self.undo.pop() {
                    self.slots[slot] = old;
                }
            }
        }
        ok
    }
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn inst(&mut self, i: Inst) -> Option<usize> {
        if self.prog.len() >= MAX_PROGRAM {
            return None;
        }
        self.prog.push(i);
        Some(self.prog.len() - 1)
    }

    fn compile(&mut self, hir: &Hir) -> Option<()> {
        match hir.kind() {
            HirKind::Empty => {}
            HirKind::Literal(lit) => {
                self.inst(Inst::Lit(lit.0.clone()))?;
            }
            HirKind::Class(_) => {
                let set = ascii_set(hir)?;
                self.inst(Inst::Rep {
                    set,
                    min: 1,
                    max: 1,
                    greedy: true,
                })?;
            }
            HirKind::Repetition(rep) => {
                if let Some(set) = ascii_set(&rep.sub) {
                    self.inst(Inst::Rep {
                        set,
                        min: rep.min,
                        max: rep.max.unwrap_or(u32::MAX),
                        greedy: rep.greedy,
                    })?;
                } else if rep.min == 0 && rep.max == Some(1) {
                    // `x?`: a branch around x (taken first when greedy).
                    let split = self.inst(Inst::Split(0, 0))?;
                    self.compile(&rep.sub)?;
                    let after = self.prog.len();
                    self.prog[split] = if rep.greedy {
                        Inst::Split(split + 1, after)
                    } else {
                        Inst::Split(after, split + 1)
                    };
                } else {
                    return None;
                }
            }
            HirKind::Capture(cap) => {
                let g = cap.index as usize;
                self.inst(Inst::Save(2 * g))?;
                self.compile(&cap.sub)?;
                self.inst(Inst::Save(2 * g + 1))?;
            }
            HirKind::Concat(parts) => {
                for p in parts {
                    self.compile(p)?;
                }
            }
            HirKind::Alternation(subs) => {
                // Split(first, next split) ... each alternative then jumps to the end.
                let mut jumps = Vec::new();
                let (last, init) = subs.split_last()?;
                for s in init {
                    let split = self.inst(Inst::Split(0, 0))?;
                    self.compile(s)?;
                    jumps.push(self.inst(Inst::Jump(0))?);
                    self.prog[split] = Inst::Split(split + 1, self.prog.len());
                }
                self.compile(last)?;
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jump(end);
                }
            }
            // Assertions: the regex decides.
            HirKind::Look(_) => return None,
        }
        Some(())
    }
}

/// The ASCII characters of a one-character pattern (a class, or a one-byte literal), as a table by byte
/// (other bytes are never in it).
fn ascii_set(hir: &Hir) -> Option<Box<[bool; 256]>> {
    let mut set = Box::new([false; 256]);
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges() {
                let (s, e) = (u32::from(r.start()), u32::from(r.end()).min(127));
                for b in s..=e {
                    set[b as usize] = true;
                }
            }
        }
        HirKind::Literal(lit) if lit.0.len() == 1 && lit.0[0] < 128 => {
            set[usize::from(lit.0[0])] = true
        }
        _ => return None,
    }
    Some(set)
}
