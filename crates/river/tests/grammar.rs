//! Checks `grammar/river.ebnf` against the lexer and the parser: every terminal of the grammar is one token,
//! every operator and punctuation token is in the grammar, every production used is defined, and the
//! precedence table agrees with what the parser builds.

use river::ast::{BinaryOp, ExprKind, Stmt};
use river::lexer::Lexer;
use river::token::Tok;
use std::collections::{BTreeMap, BTreeSet};

fn grammar() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../grammar/river.ebnf");
    std::fs::read_to_string(path).expect("grammar/river.ebnf")
}

/// EBNF tokens outside comments: names, terminals (with their quotes) and symbols.
fn ebnf_tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '(' && chars.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == ')') {
                j += 1;
            }
            assert!(j + 1 < chars.len(), "unterminated (* comment");
            i = j + 2;
        } else if c == '"' || c == '`' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .expect("unterminated terminal")
                + i
                + 1;
            out.push(chars[i..=end].iter().collect());
            i = end + 1;
        } else if c.is_alphanumeric() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Productions: name → the tokens of its right-hand side.
fn productions(src: &str) -> BTreeMap<String, Vec<String>> {
    let tokens = ebnf_tokens(src);
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        let name = tokens[i].clone();
        assert_eq!(
            tokens.get(i + 1).map(String::as_str),
            Some("="),
            "after {name}"
        );
        let end = tokens[i + 2..]
            .iter()
            .position(|t| t == ".")
            .expect("production ends with .")
            + i
            + 2;
        let prev = out.insert(name.clone(), tokens[i + 2..end].to_vec());
        assert!(prev.is_none(), "{name} is defined twice");
        i = end + 1;
    }
    out
}

fn is_terminal(t: &str) -> bool {
    t.len() >= 2 && (t.starts_with('"') || t.starts_with('`'))
}

fn unquote(t: &str) -> &str {
    &t[1..t.len() - 1]
}

fn lex_all(src: &str) -> (Vec<(Tok, String)>, usize) {
    let mut lexer = Lexer::new(src);
    let mut out = Vec::new();
    loop {
        let t = lexer.next_token();
        match t.kind {
            Tok::Eof => break,
            Tok::Terminator => {}
            k => out.push((k, t.span.text(src).to_string())),
        }
    }
    (out, lexer.diags.len())
}

/// Every operator and punctuation token of the lexer (the match makes a new token kind a compile error
/// here until it is classified).
fn operator_tokens() -> Vec<Tok> {
    use Tok::*;
    let all = [
        Illegal, Eof, Ident, Number, Float, String, Bool, Null, Or, And, Not, Neq, Assign, Eq, Lt,
        Lte, Gt, Gte, Add, Sub, Mul, Div, Mod, Pow, LCurly, RCurly, LParen, RParen, LBrack, RBrack,
        Comma, Dot, Terminator,
    ];
    all.into_iter()
        .filter(|t| match t {
            Illegal | Eof | Ident | Number | Float | String | Bool | Null | Terminator => false,
            Or | And | Not | Neq | Assign | Eq | Lt | Lte | Gt | Gte | Add | Sub | Mul | Div
            | Mod | Pow | LCurly | RCurly | LParen | RParen | LBrack | RBrack | Comma | Dot => true,
        })
        .collect()
}

fn binary_ops() -> Vec<BinaryOp> {
    use BinaryOp::*;
    let all = [
        Or, And, Eq, NotEq, Lt, LtEq, Gt, GtEq, Add, Sub, Mul, Div, Mod, Pow,
    ];
    // Exhaustive: a new operator must be added above.
    for op in all {
        match op {
            Or | And | Eq | NotEq | Lt | LtEq | Gt | GtEq | Add | Sub | Mul | Div | Mod | Pow => {}
        }
    }
    all.to_vec()
}

#[test]
fn every_production_used_is_defined_and_every_one_is_used() {
    let prods = productions(&grammar());
    let mut used = BTreeSet::new();
    for (name, rhs) in &prods {
        for t in rhs {
            let is_name = t.chars().next().is_some_and(|c| c.is_alphabetic()) && !is_terminal(t);
            if is_name {
                assert!(
                    prods.contains_key(t),
                    "{name} uses {t}, which is not defined"
                );
                used.insert(t.clone());
            }
        }
    }
    // Lexical classes that only the notes refer to, and the start symbol.
    let roots = [
        "File",
        "whitespace",
        "line_comment",
        "block_comment",
        "keyword",
        "operator",
        "punctuation",
    ];
    for name in prods.keys() {
        assert!(
            used.contains(name) || roots.contains(&name.as_str()),
            "{name} is defined but never used"
        );
    }
    for syntax in [
        "File",
        "Body",
        "Statement",
        "Attribute",
        "Block",
        "BlockName",
        "Expression",
        "PrimaryExpr",
        "ObjectExpr",
        "Field",
    ] {
        assert!(prods.contains_key(syntax), "{syntax} is missing");
    }
}

#[test]
fn every_syntax_terminal_is_one_token_and_every_operator_token_is_in_the_grammar() {
    let prods = productions(&grammar());
    let mut terminals = BTreeSet::new();
    for (name, rhs) in &prods {
        let syntax = name.chars().next().is_some_and(char::is_uppercase);
        if syntax || ["operator", "punctuation", "keyword"].contains(&name.as_str()) {
            for t in rhs.iter().filter(|t| is_terminal(t)) {
                terminals.insert(unquote(t).to_string());
            }
        }
    }
    for t in &terminals {
        let (tokens, errors) = lex_all(t);
        assert_eq!(errors, 0, "{t:?} does not lex cleanly");
        assert_eq!(tokens.len(), 1, "{t:?} is not one token: {tokens:?}");
        let (kind, text) = &tokens[0];
        assert_eq!(text, t);
        match kind {
            Tok::Bool => assert!(t == "true" || t == "false"),
            Tok::Null => assert_eq!(t, "null"),
            k => assert_eq!(k.describe(), t, "{t:?} lexes as {k:?}"),
        }
    }
    let listed: BTreeSet<String> = ["operator", "punctuation"]
        .iter()
        .flat_map(|p| prods[*p].iter().filter(|t| is_terminal(t)))
        .map(|t| unquote(t).to_string())
        .collect();
    for tok in operator_tokens() {
        assert!(
            listed.contains(tok.describe()),
            "{:?} ({}) is not in the grammar's operator or punctuation production",
            tok,
            tok.describe()
        );
    }
    assert_eq!(listed.len(), operator_tokens().len(), "{listed:?}");
    let keywords: Vec<&str> = prods["keyword"]
        .iter()
        .filter(|t| is_terminal(t))
        .map(|t| unquote(t))
        .collect();
    assert_eq!(keywords, ["true", "false", "null"]);
    for k in keywords {
        let (tokens, _) = lex_all(k);
        assert!(
            matches!(tokens[0].0, Tok::Bool | Tok::Null),
            "{k} is not a keyword"
        );
    }
}

/// The precedence table between `PRECEDENCE` and `END`: operator → (level, right-associative).
fn precedence_table() -> BTreeMap<String, (u8, bool)> {
    let g = grammar();
    let start = g.find("PRECEDENCE\n").expect("PRECEDENCE table") + "PRECEDENCE\n".len();
    let end = start + g[start..].find("END").expect("END of the table");
    let mut out = BTreeMap::new();
    for line in g[start..end].lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let level: u8 = words.next().unwrap().parse().expect("a level number");
        let mut right = false;
        for w in words {
            if w == "right-associative" {
                right = true;
            } else {
                out.insert(w.to_string(), (level, false));
            }
        }
        if right {
            for v in out.values_mut().filter(|v| v.0 == level) {
                v.1 = true;
            }
        }
    }
    out
}

fn root_op(src: &str) -> (BinaryOp, String, String) {
    let text = format!("x = {src}");
    let (file, diags) = river::parse(&text);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    let Some(Stmt::Attribute(a)) = file.top_level().first() else {
        panic!("{src}: not an attribute")
    };
    match &a.value.kind {
        ExprKind::Binary(op, l, r) => (
            *op,
            file.expr(*l).span.text(&text).to_string(),
            file.expr(*r).span.text(&text).to_string(),
        ),
        other => panic!("{src}: not a binary expression: {other:?}"),
    }
}

#[test]
fn the_precedence_table_is_what_the_parser_does() {
    let table = precedence_table();
    let ops = binary_ops();
    assert_eq!(table.len(), ops.len(), "{table:?}");
    for op in &ops {
        let (level, right) = table
            .get(op.as_str())
            .unwrap_or_else(|| panic!("{} is not in the table", op.as_str()));
        assert_eq!(op.precedence(), *level, "{}", op.as_str());
        // Associativity, as parsed.
        let (root, l, r) = root_op(&format!("a {0} b {0} c", op.as_str()));
        assert_eq!(root, *op);
        if *right {
            assert_eq!(
                (l.as_str(), r.as_str()),
                ("a", &*format!("b {} c", op.as_str()))
            );
        } else {
            assert_eq!(
                (l.as_str(), r.as_str()),
                (&*format!("a {} b", op.as_str()), "c")
            );
        }
    }
    // Between levels, as parsed: the looser operator is the root whichever side it is on.
    for a in &ops {
        for b in &ops {
            let (la, lb) = (table[a.as_str()].0, table[b.as_str()].0);
            if la >= lb {
                continue;
            }
            let (root, _, _) = root_op(&format!("x {} y {} z", a.as_str(), b.as_str()));
            assert_eq!(root, *a, "x {} y {} z", a.as_str(), b.as_str());
            let (root, _, _) = root_op(&format!("x {} y {} z", b.as_str(), a.as_str()));
            assert_eq!(root, *a, "x {} y {} z", b.as_str(), a.as_str());
        }
    }
    // The unary operators bind tighter than `^`.
    let (root, l, _) = root_op("-2 ^ 2");
    assert_eq!((root, l.as_str()), (BinaryOp::Pow, "-2"));
}

#[test]
fn each_operator_is_in_the_production_of_its_level() {
    let prods = productions(&grammar());
    let table = precedence_table();
    let level_production = [
        (1, "OrExpr"),
        (2, "AndExpr"),
        (3, "CmpExpr"),
        (4, "AddExpr"),
        (5, "MulExpr"),
        (6, "PowExpr"),
    ];
    for (level, name) in level_production {
        let in_production: BTreeSet<&str> = prods[name]
            .iter()
            .filter(|t| is_terminal(t))
            .map(|t| unquote(t))
            .collect();
        let in_table: BTreeSet<&str> = table
            .iter()
            .filter(|(_, v)| v.0 == level)
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(in_production, in_table, "{name} (level {level})");
    }
}
