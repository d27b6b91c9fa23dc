//! The syntax tree of a River file.
//!
//! Every node carries a byte [`Span`]. Leaves (identifiers, literals, labels) keep only their span: their text
//! is read from the source when needed, which keeps the tree small (see the parse benchmark) and lets the
//! formatter print literals exactly as written.

use crate::span::Span;

/// A parsed file: its source, top-level statements and all comments in source order.
#[derive(Clone, Debug)]
pub struct File {
    /// The whole source text the spans point into.
    pub source: std::sync::Arc<str>,
    /// Top-level statements.
    pub body: Body,
    /// Every comment in the file, in source order.
    pub comments: Vec<Comment>,
}

impl File {
    /// The text a span covers.
    pub fn text(&self, span: Span) -> &str {
        span.text(&self.source)
    }
}

/// A sequence of statements (a file or a block body).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body {
    /// The statements in source order (allocated at exactly their number).
    pub stmts: Vec<Stmt>,
}

/// A statement: `name = expr` or `name.parts "label" { body }`.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `name = expr`
    Attribute(Attribute),
    /// `name "label" { ... }` (boxed: blocks are larger than attributes and rarer).
    Block(Box<Block>),
}

impl Stmt {
    /// The span of the whole statement.
    pub fn span(&self) -> Span {
        match self {
            Stmt::Attribute(a) => a.span(),
            Stmt::Block(b) => b.span,
        }
    }
}

/// `name = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// The attribute's name (one identifier).
    pub name: Span,
    /// Its value.
    pub value: Expr,
}

impl Attribute {
    /// From the name to the end of the value.
    pub fn span(&self) -> Span {
        self.name.to(self.value.span)
    }
}

/// `a.b.c "label" { body }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The identifiers of the dotted name, in order.
    pub name: NameParts,
    /// The label string literal, quotes included; `None` when absent or `""`.
    pub label: Option<Span>,
    /// The statements inside the braces.
    pub body: Body,
    /// Offset of `{`.
    pub lbrace: u32,
    /// Offset of `}`.
    pub rbrace: u32,
    /// From the first name identifier to the closing brace inclusive.
    pub span: Span,
}

/// The identifiers of a dotted block name, used as a `[Span]`. Up to three parts (nearly every real name)
/// are kept inline, so a block costs no allocation for its name.
#[derive(Clone, Debug)]
pub struct NameParts(NameRepr);

#[derive(Clone, Debug)]
enum NameRepr {
    Inline { len: u8, parts: [Span; 3] },
    Heap(Box<[Span]>),
}

impl NameParts {
    /// The parts of `parts` (which may be empty).
    pub fn new(parts: &[Span]) -> Self {
        if parts.len() <= 3 {
            let mut inline = [Span::default(); 3];
            inline[..parts.len()].copy_from_slice(parts);
            NameParts(NameRepr::Inline {
                len: parts.len() as u8,
                parts: inline,
            })
        } else {
            NameParts(NameRepr::Heap(parts.into()))
        }
    }
}

impl std::ops::Deref for NameParts {
    type Target = [Span];

    fn deref(&self) -> &[Span] {
        match &self.0 {
            NameRepr::Inline { len, parts } => &parts[..*len as usize],
            NameRepr::Heap(parts) => parts,
        }
    }
}

impl PartialEq for NameParts {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl From<&[Span]> for NameParts {
    fn from(parts: &[Span]) -> Self {
        NameParts::new(parts)
    }
}

impl Block {
    /// The dotted name as written without spaces, e.g. `pyroscope.scrape`.
    pub fn name_string(&self, src: &str) -> String {
        let mut s = String::new();
        for (i, part) in self.name.iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            s.push_str(part.text(src));
        }
        s
    }

    /// The span of the dotted name.
    pub fn name_span(&self) -> Span {
        match (self.name.first(), self.name.last()) {
            (Some(a), Some(b)) => a.to(*b),
            _ => Span::at(self.span.start),
        }
    }

    /// The label's value (without quotes). Labels are checked to be identifiers, so no unescaping is needed.
    pub fn label_text<'a>(&self, src: &'a str) -> Option<&'a str> {
        self.label.map(|l| {
            let mut chars = l.text(src).chars();
            chars.next();
            chars.next_back();
            chars.as_str()
        })
    }
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// From its first to its last byte (parentheses included for [`ExprKind::Paren`]).
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An identifier; its name is the span's text.
    Ident,
    /// A literal; its text is the span's text.
    Literal(LitKind),
    /// `[a, b, ...]`
    Array(Box<[Expr]>),
    /// `{ k = v, "k" = v, ... }`
    Object(Box<[ObjectField]>),
    /// `value.name`; the second span is the name identifier.
    Access(Box<Expr>, Span),
    /// `value[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `function(args...)` (boxed as one: it is the largest variant, and keeping it out of line keeps
    /// every [`Expr`] at 32 bytes).
    Call(Box<Call>),
    /// `!x`, `-x`
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `(x)`, kept so the formatter prints it back.
    Paren(Box<Expr>),
}

/// A function call: `func(args...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The function called.
    pub func: Expr,
    /// The arguments in order.
    pub args: Box<[Expr]>,
}

/// Literal kinds; the value is decoded from the source text on evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LitKind {
    /// Integer literal like `42` or `010`.
    Number,
    /// Float literal like `1.5`, `.5`, `1e3`.
    Float,
    /// Double-quoted string, escapes already validated.
    String,
    /// Backtick raw string.
    RawString,
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
}

/// One `key = value` entry of an object literal.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectField {
    /// The key as written: an identifier or a string literal (quotes included).
    pub key: Span,
    /// Whether the key is a quoted string.
    pub quoted: bool,
    /// The value.
    pub value: Expr,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`
    Not,
    /// `-`
    Neg,
}

impl UnaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            UnaryOp::Not => "!",
            UnaryOp::Neg => "-",
        }
    }
}

/// Binary operators, from the loosest binding to the tightest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^` (right-associative)
    Pow,
}

impl BinaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Or => "||",
            And => "&&",
            Eq => "==",
            NotEq => "!=",
            Lt => "<",
            LtEq => "<=",
            Gt => ">",
            GtEq => ">=",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
        }
    }

    /// Binding power: higher binds tighter.
    pub fn precedence(self) -> u8 {
        use BinaryOp::*;
        match self {
            Or => 1,
            And => 2,
            Eq | NotEq | Lt | LtEq | Gt | GtEq => 3,
            Add | Sub => 4,
            Mul | Div | Mod => 5,
            Pow => 6,
        }
    }
}

/// A comment, kept for the formatter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The comment text including `//` or `/* */` (a line comment excludes its newline).
    pub span: Span,
    /// `//` or `/* */`.
    pub kind: CommentKind,
}

/// The two comment forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentKind {
    /// `// ...` to the end of the line.
    Line,
    /// `/* ... */`, possibly over several lines.
    Block,
}

impl File {
    /// The tree without positions, as an S-expression: statements, expressions and comments with their text,
    /// so that two parses compare equal when they differ only in layout. Literal and comment text is
    /// normalised the way the formatter prints it (raw strings lose their carriage returns, which their value drops, comments lose carriage
    /// returns and their lines trailing blanks), so a file and its formatted form have the same shape. Used by the fuzz target and the
    /// formatter round-trip tests.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        shape_body(&mut out, &self.body, &self.source);
        for c in &self.comments {
            out.push_str("\n#");
            // The formatter drops carriage returns from comments and trailing blanks from their lines.
            let text = self.text(c.span).replace('\r', "");
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(line.trim_end_matches([' ', '\t']));
            }
        }
        out
    }
}

fn shape_body(out: &mut String, body: &Body, src: &str) {
    out.push('(');
    for (i, stmt) in body.stmts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match stmt {
            Stmt::Attribute(a) => {
                out.push_str("(= ");
                out.push_str(a.name.text(src));
                out.push(' ');
                shape_expr(out, &a.value, src);
                out.push(')');
            }
            Stmt::Block(b) => {
                out.push_str("(block ");
                out.push_str(&b.name_string(src));
                if let Some(label) = b.label {
                    out.push(' ');
                    out.push_str(label.text(src));
                }
                out.push(' ');
                shape_body(out, &b.body, src);
                out.push(')');
            }
        }
    }
    out.push(')');
}

fn shape_expr(out: &mut String, e: &Expr, src: &str) {
    let list = |out: &mut String, items: &[Expr]| {
        for item in items {
            out.push(' ');
            shape_expr(out, item, src);
        }
    };
    match &e.kind {
        // A raw string's value drops every `\r`; the formatter drops those before a newline.
        ExprKind::Literal(LitKind::RawString) => out.push_str(&e.span.text(src).replace('\r', "")),
        ExprKind::Ident | ExprKind::Literal(_) => out.push_str(e.span.text(src)),
        ExprKind::Array(items) => {
            out.push_str("(array");
            list(out, items);
            out.push(')');
        }
        ExprKind::Object(fields) => {
            out.push_str("(object");
            for f in fields.iter() {
                out.push_str(" (");
                out.push_str(f.key.text(src));
                out.push(' ');
                shape_expr(out, &f.value, src);
                out.push(')');
            }
            out.push(')');
        }
        ExprKind::Access(x, name) => {
            out.push_str("(. ");
            shape_expr(out, x, src);
            out.push(' ');
            out.push_str(name.text(src));
            out.push(')');
        }
        ExprKind::Index(x, i) => {
            out.push_str("(index ");
            shape_expr(out, x, src);
            out.push(' ');
            shape_expr(out, i, src);
            out.push(')');
        }
        ExprKind::Call(call) => {
            out.push_str("(call ");
            shape_expr(out, &call.func, src);
            list(out, &call.args);
            out.push(')');
        }
        ExprKind::Unary(op, x) => {
            out.push('(');
            out.push_str(op.as_str());
            out.push(' ');
            shape_expr(out, x, src);
            out.push(')');
        }
        ExprKind::Binary(op, l, r) => {
            out.push('(');
            out.push_str(op.as_str());
            out.push(' ');
            shape_expr(out, l, src);
            out.push(' ');
            shape_expr(out, r, src);
            out.push(')');
        }
        ExprKind::Paren(x) => {
            out.push_str("(paren ");
            shape_expr(out, x, src);
            out.push(')');
        }
    }
}
