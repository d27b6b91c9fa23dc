//! Formatter round trip on generated files: every generated file parses, its formatted form parses to the
//! same tree (modulo positions and layout, see `File::shape`) and formatting that again changes nothing.
//!
//! The generator writes random statements, blocks and expressions with random layout: spacing, line breaks
//! where River allows them (after `[`, `(`, `{`, `,`, `=` and binary operators; before a closing bracket
//! only after a trailing comma), blank lines, line and block comments.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Optional spacing between tokens.
fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => Just(""), 3 => Just(" "), 1 => Just("  "), 1 => Just("\t")]
}

/// A place where a line may break: nothing, a space, a newline with indentation, or a comment.
fn brk() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just(""),
        3 => Just(" "),
        2 => Just("\n\t"),
        1 => Just("\n\n  "),
        1 => Just(" // note\n"),
        1 => Just(" /* c */ "),
        1 => Just("\r\n"),
    ]
}

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("targets".to_string()),
        Just("_x1".to_string()),
        Just("é".to_string()),
        Just("env".to_string()),
        "[a-z_][a-z0-9_]{0,8}".prop_filter("keyword", |s| !matches!(
            s.as_str(),
            "true" | "false" | "null"
        )),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        Just("010".to_string()),
        Just("18446744073709551615".to_string()),
        Just("1.5".to_string()),
        Just(".5".to_string()),
        Just("3.".to_string()),
        Just("1e3".to_string()),
        Just("2.5E-3".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        Just(r#""""#.to_string()),
        Just(r#""a\tb\n\"q\" \\ \x41 \101 \u00e9 \U0001F600 \'""#.to_string()),
        Just("\"tab\tinside  \"".to_string()),
        Just("`raw\n  text \\n`".to_string()),
        Just("`crlf\r\nraw`".to_string()),
        "\"[ a-zA-Z0-9.:/_-]{0,20}\"",
    ]
}

/// Joins items with commas and random breaks; a break before the closing bracket needs a trailing comma.
fn list(open: &str, close: &str, items: Vec<String>, breaks: Vec<&str>, trailing: bool) -> String {
    let mut s = open.to_string();
    for (i, item) in items.iter().enumerate() {
        s.push_str(breaks[i % breaks.len()]);
        s.push_str(item);
        if i + 1 < items.len() {
            s.push(',');
        }
    }
    let last = breaks[items.len() % breaks.len()];
    if !items.is_empty() && (trailing || last.contains('\n')) {
        s.push(',');
    }
    if items.is_empty() && last.contains("//") {
        s.push_str(" /* c */ ");
    } else {
        s.push_str(last);
    }
    s.push_str(close);
    s
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![ident(), literal()];
    leaf.prop_recursive(5, 48, 4, |inner| {
        let breaks = || prop::collection::vec(brk(), 1..4);
        prop_oneof![
            (
                prop::collection::vec(inner.clone(), 0..4),
                breaks(),
                any::<bool>()
            )
                .prop_map(|(items, b, t)| list("[", "]", items, b, t)),
            (
                prop::collection::vec(
                    (ident(), any::<bool>(), space(), inner.clone()).prop_map(
                        |(k, quoted, sp, v)| {
                            if quoted {
                                format!("\"{k} key\"{sp}={sp}{v}")
                            } else {
                                format!("{k}{sp}= {v}")
                            }
                        }
                    ),
                    0..4
                ),
                breaks(),
                any::<bool>()
            )
                .prop_map(|(items, b, t)| list("{", "}", items, b, t)),
            (inner.clone(), ident()).prop_map(|(x, f)| format!("({x}).{f}")),
            (ident(), ident()).prop_map(|(x, f)| format!("{x}.{f}")),
            (ident(), inner.clone(), space()).prop_map(|(x, i, sp)| format!("{x}[{sp}{i}{sp}]")),
            (
                ident(),
                prop::collection::vec(inner.clone(), 0..3),
                breaks(),
                any::<bool>()
            )
                .prop_map(|(f, args, b, t)| list(&format!("{f}("), ")", args, b, t)),
            (prop_oneof![Just("!"), Just("-")], inner.clone())
                .prop_map(|(op, x)| format!("{op}{x}")),
            (
                inner.clone(),
                prop_oneof![
                    Just("||"),
                    Just("&&"),
                    Just("=="),
                    Just("!="),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">="),
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("%"),
                    Just("^"),
                ],
                space(),
                brk(),
                inner.clone()
            )
                .prop_map(|(l, op, sp, b, r)| format!("{l}{sp}{op}{b}{sp}{r}")),
            (inner, space()).prop_map(|(x, sp)| format!("({sp}{x}{sp})")),
        ]
    })
}

fn attribute() -> impl Strategy<Value = String> {
    (
        ident(),
        space(),
        expr(),
        prop_oneof![4 => Just(""), 1 => Just(" // trailing")],
    )
        .prop_map(|(name, sp, value, comment)| format!("{name}{sp}= {value}{comment}"))
}

fn body() -> impl Strategy<Value = Vec<String>> {
    let leaf = prop::collection::vec(attribute(), 0..4);
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(
            prop_oneof![
                3 => attribute().prop_map(|a| vec![a]),
                1 => Just(vec!["// a comment line".to_string()]),
                1 => Just(vec![String::new()]),
                2 => (
                    prop::collection::vec(ident(), 1..3),
                    prop_oneof![Just(None), Just(Some(String::new())), ident().prop_map(Some)],
                    inner,
                )
                    .prop_map(|(name, label, stmts)| {
                        let mut s = name.join(".");
                        if let Some(l) = label {
                            s.push_str(&format!(" \"{l}\""));
                        }
                        s.push_str(" {\n");
                        for st in stmts {
                            s.push_str("  ");
                            s.push_str(&st);
                            s.push('\n');
                        }
                        s.push('}');
                        vec![s]
                    }),
            ],
            0..5,
        )
        .prop_map(|v| v.into_iter().flatten().collect())
    })
}

fn file() -> impl Strategy<Value = String> {
    (body(), any::<bool>()).prop_map(|(stmts, bom)| {
        let mut s = if bom {
            "\u{FEFF}".to_string()
        } else {
            String::new()
        };
        for st in stmts {
            s.push_str(&st);
            s.push('\n');
        }
        s
    })
}

/// 512 cases by default (failures found are kept in `roundtrip.proptest-regressions`); `PROPTEST_CASES=N` for a longer search.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512);
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

/// One case of the property.
fn round_trip(src: &str) -> Result<(), TestCaseError> {
    let (file, diags) = river::parse(src);
    prop_assert!(
        !diags.has_errors(),
        "generated file does not parse: {:?}\n{}",
        diags,
        src
    );
    let formatted = river::format::format_file(&file);
    let (again, diags) = river::parse(&formatted);
    prop_assert!(
        !diags.has_errors(),
        "formatted file does not parse: {:?}\n--- source\n{}\n--- formatted\n{}",
        diags,
        src,
        formatted
    );
    prop_assert_eq!(
        file.shape(),
        again.shape(),
        "the tree changed\n--- source\n{}\n--- formatted\n{}",
        src,
        formatted
    );
    prop_assert_eq!(
        river::format::format_file(&again),
        formatted.clone(),
        "not idempotent\n--- source\n{}",
        src
    );
    Ok(())
}

#[test]
fn format_round_trips() {
    // Generating nested strategies takes deep stacks in debug builds (proptest's own frames, not River's:
    // the parser and formatter are tested on a 2 MiB stack elsewhere), so run on a thread of its own.
    let handle = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let mut runner = TestRunner::new(config());
            runner.run(&file(), |src| round_trip(&src))
        })
        .expect("spawn");
    if let Err(e) = handle.join().expect("the property test thread panicked") {
        panic!("{e}");
    }
}

/// The comparison the round trip relies on must see real differences.
#[test]
fn shape_ignores_layout_but_not_content() {
    let shape = |s: &str| {
        let (f, d) = river::parse(s);
        assert!(!d.has_errors(), "{s}: {d:?}");
        f.shape()
    };
    assert_eq!(shape("a = [1,\n 2,\n]\n"), shape("a=[1,2]"));
    assert_eq!(
        shape("b { x = 1 } // c  \r\n"),
        shape("b {\n\tx = 1\n}\n// c\n")
    );
    assert_ne!(shape("a = 1 + 2 * 3"), shape("a = (1 + 2) * 3"));
    assert_ne!(shape("a = 1 - 2 - 3"), shape("a = 1 - (2 - 3)"));
    assert_ne!(shape("a = \"x\""), shape("a = \"y\""));
    assert_ne!(shape("b \"l\" { }"), shape("b { }"));
    assert_ne!(shape("a = 1 // x"), shape("a = 1 // y"));
    assert_ne!(shape("a = 1\nb { }"), shape("b { }\na = 1"));
}
