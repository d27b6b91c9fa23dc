//! The relabeler against a plain model of Prometheus's `relabel.Process` over `labels.Builder` (strings,
//! vectors, the `regex` crate directly, no caches), on random targets and rules.
//!
//! Targets come in batches that share label names, and one relabeler processes a whole batch (twice), so
//! that whatever it keeps between targets is exercised too.

use crate::process::{go_lower, go_upper};
use crate::regexp::expand;
use crate::rule::is_valid_label_name;
use crate::{Action, Regexp, Relabeler, Rule, Rules, Target};
use md5::{Digest, Md5};
use proptest::prelude::*;

/// Prometheus's `labels.Builder`, as the relabeler documents it: an input label with an empty value is kept
/// unless a rule touches it.
struct Model {
    base: Vec<(String, String)>,
    del: Vec<String>,
    add: Vec<(String, String)>,
}

impl Model {
    fn get(&self, n: &str) -> String {
        if let Some((_, v)) = self.add.iter().find(|(an, _)| an == n) {
            return v.clone();
        }
        if self.del.iter().any(|d| d == n) {
            return String::new();
        }
        self.base
            .iter()
            .find(|(bn, _)| bn == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn set(&mut self, n: &str, v: &str) {
        if v.is_empty() {
            self.del(n);
            return;
        }
        if let Some(a) = self.add.iter_mut().find(|(an, _)| an == n) {
            a.1 = v.to_string();
            return;
        }
        self.add.push((n.to_string(), v.to_string()));
    }

    fn del(&mut self, n: &str) {
        self.add.retain(|(an, _)| an != n);
        self.del.push(n.to_string());
    }

    /// `Range`: base labels neither deleted nor set, then the ones set, all as they were before the walk.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .base
            .iter()
            .filter(|(n, _)| !self.del.contains(n) && !self.add.iter().any(|(an, _)| an == n))
            .cloned()
            .collect();
        out.extend(self.add.iter().cloned());
        out
    }

    fn labels(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .base
            .iter()
            .filter(|(n, _)| !self.del.contains(n) && !self.add.iter().any(|(an, _)| an == n))
            .cloned()
            .collect();
        out.extend(self.add.iter().cloned());
        out.sort();
        out
    }
}

fn expand_str(re: &Regexp, text: &str, template: &str) -> Option<String> {
    let mut locs = re.regex().capture_locations();
    re.regex().captures_read(&mut locs, text)?;
    let mut out = String::new();
    expand(re.regex(), &locs, text, template, &mut out);
    Some(out)
}

/// Prometheus's `relabel`: false when the target is dropped.
fn model_rule(r: &Rule, lb: &mut Model) -> bool {
    let values: Vec<String> = r
        .source_labels
        .iter()
        .flatten()
        .map(|n| lb.get(n))
        .collect();
    let val = values.join(&r.separator);
    let re = &r.regex;
    match r.action {
        Action::Drop => return !re.regex().is_match(&val),
        Action::Keep => return re.regex().is_match(&val),
        Action::DropEqual => return lb.get(&r.target_label) != val,
        Action::KeepEqual => return lb.get(&r.target_label) == val,
        Action::Replace => {
            let vars = r.target_label.contains('$') || r.replacement.contains('$');
            if val.is_empty() && re.as_str() == "(.*)" && !vars {
                lb.set(&r.target_label, &r.replacement);
                return true;
            }
            let Some(target) = expand_str(re, &val, &r.target_label) else {
                return true;
            };
            if !is_valid_label_name(&target) {
                return true;
            }
            let res = expand_str(re, &val, &r.replacement).unwrap_or_default();
            if res.is_empty() {
                lb.del(&target);
            } else {
                lb.set(&target, &res);
            }
        }
        Action::Lowercase => {
            let mut s = String::new();
            go_lower(&val, &mut s);
            lb.set(&r.target_label, &s);
        }
        Action::Uppercase => {
            let mut s = String::new();
            go_upper(&val, &mut s);
            lb.set(&r.target_label, &s);
        }
        Action::HashMod => {
            let hash = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..]);
            let m = u64::from_be_bytes(last8) % r.modulus;
            lb.set(&r.target_label, &m.to_string());
        }
        Action::LabelMap => {
            for (n, v) in lb.snapshot() {
                if re.regex().is_match(&n) {
                    let res = expand_str(re, &n, &r.replacement).unwrap_or_default();
                    lb.set(&res, &v);
                }
            }
        }
        Action::LabelDrop => {
            for (n, _) in lb.snapshot() {
                if re.regex().is_match(&n) {
                    lb.del(&n);
                }
            }
        }
        Action::LabelKeep => {
            for (n, _) in lb.snapshot() {
                if !re.regex().is_match(&n) {
                    lb.del(&n);
                }
            }
        }
    }
    true
}

fn model(rules: &[Rule], t: &Target) -> Option<Vec<(String, String)>> {
    let mut lb = Model {
        base: t
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        del: Vec::new(),
        add: Vec::new(),
    };
    for r in rules {
        if !model_rule(r, &mut lb) {
            return None;
        }
    }
    Some(lb.labels())
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "ab",
    "job",
    "x_1",
    "x_2",
    "__tmp_x",
    "__meta_pod_label_app",
    "__meta_pod_label_team",
    "__address__",
    "A",
    "service_name",
];
const VALUES: &[&str] = &[
    "",
    "1",
    "a",
    "ab",
    "A",
    "x;y",
    "ÀΣ",
    "a;b",
    "foo",
    "10.0.0.1:80",
];
const REGEXES: &[&str] = &[
    "(.*)",
    "a",
    "a|b",
    "(a)(b)?",
    "(.+)",
    "x_(.*)",
    "__meta_pod_label_(.+)",
    "__(.*)",
    "([^;]+);(.*)",
    "",
    ".*",
    "(?i)a.*",
    "(b)",
    "([^:]+)(?::\\d+)?;(\\d+)",
    "__tmp_.*|job",
    "(?P<n>[a-z]+)",
];
const TARGET_LABELS: &[&str] = &[
    "a", "b", "x_1", "job", "$1", "${1}_y", "new", "A", "$n", "1",
];
const REPLACEMENTS: &[&str] = &["$1", "", "x", "$2-$1", "${1}", "$0", "A", "$n", "$1$1", "b"];
const SEPARATORS: &[&str] = &[";", "", "/"];

fn pick<'a>(pool: &'a [&'a str]) -> impl Strategy<Value = &'a str> + 'a {
    (0..pool.len()).prop_map(move |i| pool[i])
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        0..Action::ALL.len(),
        proptest::option::weighted(0.9, proptest::collection::vec(pick(NAMES), 0..3)),
        pick(SEPARATORS),
        pick(REGEXES),
        pick(TARGET_LABELS),
        pick(REPLACEMENTS),
        1u64..8,
    )
        .prop_map(|(a, sources, sep, re, target, repl, modulus)| Rule {
            source_labels: sources.map(|s| s.into_iter().map(String::from).collect()),
            separator: sep.into(),
            regex: Regexp::new(re).expect("pool regexes compile"),
            modulus,
            target_label: target.into(),
            replacement: repl.into(),
            action: Action::ALL[a],
        })
}

/// A batch of targets: most share one set of names (as one discovery's targets do), some have others.
fn targets() -> impl Strategy<Value = Vec<Target>> {
    let names = proptest::collection::vec(pick(NAMES), 0..8);
    (
        names,
        proptest::collection::vec(
            (
                proptest::collection::vec(pick(VALUES), 8),
                proptest::option::weighted(
                    0.2,
                    proptest::collection::vec((pick(NAMES), pick(VALUES)), 0..6),
                ),
            ),
            1..6,
        ),
    )
        .prop_map(|(names, ts)| {
            ts.into_iter()
                .map(|(values, other)| match other {
                    Some(pairs) => Target::from_pairs(pairs),
                    None => Target::from_pairs(names.iter().copied().zip(values)),
                })
                .collect()
        })
}

fn show(t: &Option<Vec<(String, String)>>) -> String {
    format!("{t:?}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn relabeler_agrees_with_the_model(rules in proptest::collection::vec(rule(), 1..6), ts in targets()) {
        let mut r = Relabeler::new(Rules::new(rules.clone()));
        for round in 0..2 {
            for t in &ts {
                let want = model(&rules, t);
                let got = r
                    .process(t)
                    .map(|o| o.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>());
                prop_assert_eq!(show(&got), show(&want), "round {}, target {}, rules {:?}", round, t, rules);
                // A target no rule changed comes back sharing the input.
                if let Some(o) = r.process(t) {
                    if o.iter().eq(t.iter()) {
                        prop_assert!(o.ptr_eq(t) || o.is_empty(), "unchanged {} not shared", t);
                    }
                }
            }
        }
    }
}

/// Targets of more shapes than the relabeler keeps, and more new names than it keeps as known.
fn warm_up() -> Vec<Target> {
    let mut ts: Vec<Target> = (0..12)
        .map(|i| Target::from_pairs([(format!("shape_{i}"), "1"), ("a".into(), "ab")]))
        .collect();
    ts.push(Target::from_pairs(
        (0..70).map(|i| (format!("fill_{i}"), "v")),
    ));
    ts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn relabeler_agrees_with_the_model_when_its_caches_are_full(
        rules in proptest::collection::vec(rule(), 1..6),
        ts in targets(),
    ) {
        let mut all = vec![Rule {
            regex: Regexp::new("fill_(.*)").expect("compiles"),
            replacement: "f_$1".into(),
            action: Action::LabelMap,
            ..Rule::default()
        }];
        all.extend(rules);
        let mut r = Relabeler::new(Rules::new(all.clone()));
        for t in warm_up().iter().chain(&ts).chain(&warm_up()).chain(&ts) {
            let want = model(&all, t);
            let got = r
                .process(t)
                .map(|o| o.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>());
            prop_assert_eq!(show(&got), show(&want), "target {}, rules {:?}", t, all);
        }
    }
}
