//! A matcher for the anchored patterns relabelling rules mostly use, without running a regex engine:
//! literals (`true`), alternations of literals (`Pending|Failed`), prefixes (`__tmp_.*`,
//! `__meta_kubernetes_pod_label_(.+)`) and the default `(.*)`.
//!
//! The compiled pattern (`^(?s:PATTERN)$`) is expanded into a short list of alternatives, each a literal
//! followed optionally by "any rest" (`.*` or `.+`), with the spans of the capture groups it sets. For a
//! fully anchored match, leftmost-first semantics pick the first alternative (in priority order) that
//! matches the whole text, so trying them in order gives the regex crate's answer, captures included.
//! Anything else (classes of many characters, repetitions of literals, look-arounds) is left to the regex.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Above this many alternatives the regex is quicker (and the expansion could grow without bound).
const MAX_ALTERNATIVES: usize = 32;
/// Classes of up to this many characters become alternatives (`[ab]`, case-insensitive letters).
const MAX_CLASS_CHARS: u32 = 4;

/// Where a capture group ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    At(usize),
    /// At the end of the text (the group covers the "any rest").
    Rest,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Alt {
    literal: Vec<u8>,
    /// `None`: the text ends after the literal; `Some(min)`: any rest of at least `min` (0 or 1) bytes.
    rest: Option<u8>,
    /// `(group index, start, end)` for the groups this alternative sets.
    groups: Vec<(usize, usize, End)>,
}

/// A pattern as alternatives; see the module docs.
#[derive(Clone, Debug)]
pub(crate) struct Fast {
    alts: Vec<Alt>,
}

impl Fast {
    /// The fast form of an anchored pattern, given the parts between its anchors, if it has one.
    pub(crate) fn new(middle: &[Hir]) -> Option<Fast> {
        let alts = concat(middle)?;
        Some(Fast { alts })
    }

    /// The index of the alternative that matches all of `text`, if any.
    pub(crate) fn find(&self, text: &str) -> Option<usize> {
        let text = text.as_bytes();
        // Lengths first, then the literal's last byte: they settle most misses (label names share long
        // prefixes) without a full comparison.
        self.alts.iter().position(|a| {
            let lit = a.literal.as_slice();
            let n = lit.len();
            let fits = match a.rest {
                None => text.len() == n,
                Some(min) => text.len() >= n + usize::from(min),
            };
            fits && (n == 0 || (text[n - 1] == lit[n - 1] && text[..n] == *lit))
        })
    }

    /// The span of group `group` when alternative `alt` matched `len` bytes.
    pub(crate) fn group(&self, alt: usize, len: usize, group: usize) -> Option<(usize, usize)> {
        if group == 0 {
            return Some((0, len));
        }
        let a = self.alts.get(alt)?;
        a.groups.iter().find(|g| g.0 == group).map(|&(_, s, e)| {
            (
                s,
                match e {
                    End::At(e) => e,
                    End::Rest => len,
                },
            )
        })
    }
}

fn expand(hir: &Hir) -> Option<Vec<Alt>> {
    match hir.kind() {
        HirKind::Empty => Some(vec![Alt::default()]),
        HirKind::Literal(lit) => Some(vec![Alt {
            literal: lit.0.to_vec(),
            ..Alt::default()
        }]),
        HirKind::Class(Class::Unicode(c)) => {
            let count: u32 = c
                .ranges()
                .iter()
                .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
                .sum();
            if count > MAX_CLASS_CHARS {
                return None;
            }
            let mut alts = Vec::new();
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    let mut buf = [0u8; 4];
                    alts.push(Alt {
                        literal: ch.encode_utf8(&mut buf).as_bytes().to_vec(),
                        ..Alt::default()
                    });
                }
            }
            Some(alts)
        }
        HirKind::Repetition(rep) if rep.min == 0 && rep.max == Some(1) => {
            // `x?`: with x first when greedy.
            let mut alts = expand(&rep.sub)?;
            if rep.greedy {
                alts.push(Alt::default());
            } else {
                alts.insert(0, Alt::default());
            }
            (alts.len() <= MAX_ALTERNATIVES).then_some(alts)
        }
        HirKind::Repetition(rep) => {
            // Otherwise only "any character", any number of times: the rest of the text.
            let HirKind::Class(Class::Unicode(c)) = rep.sub.kind() else {
                return None;
            };
            let any = matches!(c.ranges(), [r] if r.start() == '\0' && r.end() == char::MAX);
            if !any || rep.min > 1 || rep.max.is_some() {
                return None;
            }
            Some(vec![Alt {
                rest: Some(rep.min as u8),
                ..Alt::default()
            }])
        }
        HirKind::Capture(cap) => {
            let mut alts = expand(&cap.sub)?;
            let index = cap.index as usize;
            for a in &mut alts {
                let end = match a.rest {
                    None => End::At(a.literal.len()),
                    Some(_) => End::Rest,
                };
                a.groups.insert(0, (index, 0, end));
            }
            Some(alts)
        }
        HirKind::Concat(parts) => concat(parts),
        HirKind::Alternation(subs) => {
            let mut alts = Vec::new();
            for s in subs {
                alts.extend(expand(s)?);
                if alts.len() > MAX_ALTERNATIVES {
                    return None;
                }
            }
            Some(alts)
        }
        // Byte classes, look-arounds: the regex decides.
        _ => None,
    }
}

/// The alternatives of a sequence, in priority order (earlier parts vary slowest, as leftmost-first tries
/// them). Only the last part may end in "any rest".
fn concat(parts: &[Hir]) -> Option<Vec<Alt>> {
    let mut acc = vec![Alt::default()];
    for part in parts {
        let right = expand(part)?;
        if acc.iter().any(|a| a.rest.is_some()) || acc.len() * right.len() > MAX_ALTERNATIVES {
            return None;
        }
        let mut next = Vec::with_capacity(acc.len() * right.len());
        for l in &acc {
            for r in &right {
                let shift = l.literal.len();
                let mut a = l.clone();
                a.literal.extend_from_slice(&r.literal);
                a.rest = r.rest;
                a.groups.extend(r.groups.iter().map(|&(i, s, e)| {
                    (
                        i,
                        s + shift,
                        match e {
                            End::At(e) => End::At(e + shift),
                            End::Rest => End::Rest,
                        },
                    )
                }));
                next.push(a);
            }
        }
        acc = next;
    }
    Some(acc)
}
