//! The syntax tree of a River file.
//!
//! The tree is flat: every statement, expression, object field and block-name part of a file is stored in a
//! few arena vectors owned by the [`File`], and nodes refer to their children by `u32` index ([`ExprId`]) or
//! index range ([`IdRange`]). A parse makes a handful of allocations and dropping a tree is a handful of frees,
//! whatever the file's size. Read children through the file: [`File::expr`], [`File::exprs`],
//! [`File::fields`], [`File::stmts`] and [`Block::name`].
//!
//! Every node carries a byte [`Span`]. Leaves (identifiers, literals, labels) keep only their span: their text
//! is read from the source when needed, which keeps the tree small (see the parse benchmark) and lets the
//! formatter print literals exactly as written.

use crate::span::Span;
use std::fmt;
use std::marker::PhantomData;

/// A parsed file: its source, top-level statements, all comments in source order, and the arenas holding
/// every node of the tree.
#[derive(Clone, Debug)]
pub struct File {
    /// The whole source text the spans point into.
    pub source: std::sync::Arc<str>,
    /// Top-level statements (read them with [`File::top_level`] or [`File::stmts`]).
    pub body: Body,
    /// Every comment in the file, in source order.
    pub comments: Vec<Comment>,
    pub(crate) arena: Arena,
}

/// The node storage of a [`File`]: the children of a node are contiguous in their vector.
#[derive(Clone, Debug, Default)]
pub(crate) struct Arena {
    pub(crate) stmts: Vec<Stmt>,
    pub(crate) exprs: Vec<Expr>,
    pub(crate) fields: Vec<ObjectField>,
    pub(crate) names: Vec<Span>,
}

impl Arena {
    /// Room for the nodes a typical config of `len` source bytes has, so that a parse rarely regrows (and
    /// copies) its vectors; [`Arena::shrink_to_fit`] returns what was not used.
    pub(crate) fn with_capacity_for(len: usize) -> Self {
        Arena {
            stmts: Vec::with_capacity(len / 40 + 1),
            exprs: Vec::with_capacity(len / 24 + 1),
            fields: Vec::with_capacity(len / 128 + 1),
            names: Vec::with_capacity(len / 64 + 1),
        }
    }

    /// Drops unused capacity, so the tree holds no growth slack.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.stmts.shrink_to_fit();
        self.exprs.shrink_to_fit();
        self.fields.shrink_to_fit();
        self.names.shrink_to_fit();
    }
}

impl File {
    /// A file with no statements over `source`.
    pub fn empty(source: &str) -> Self {
        File {
            source: source.into(),
            body: Body::default(),
            comments: Vec::new(),
            arena: Arena::default(),
        }
    }

    /// The text a span covers.
    pub fn text(&self, span: Span) -> &str {
        span.text(&self.source)
    }

    /// The top-level statements in source order.
    pub fn top_level(&self) -> &[Stmt] {
        self.stmts(self.body)
    }

    /// The statements of a body (of the file or of a block).
    pub fn stmts(&self, body: Body) -> &[Stmt] {
        self.arena.stmts.get(body.range()).unwrap_or(&[])
    }

    /// The expression `id` refers to.
    ///
    /// Ids come from this file's nodes; an id from another file may point at an unrelated node or, past the
    /// end, at an empty `null` literal.
    pub fn expr(&self, id: ExprId) -> &Expr {
        static NULL: Expr = Expr {
            kind: ExprKind::Literal(LitKind::Null),
            span: Span::new(0, 0),
        };
        self.arena.exprs.get(id.0 as usize).unwrap_or(&NULL)
    }

    /// The expressions of a list (array items or call arguments).
    pub fn exprs(&self, items: Exprs) -> &[Expr] {
        self.arena.exprs.get(items.range()).unwrap_or(&[])
    }

    /// The fields of an object literal.
    pub fn fields(&self, fields: Fields) -> &[ObjectField] {
        self.arena.fields.get(fields.range()).unwrap_or(&[])
    }

    /// Heap bytes held by the tree's arenas (their capacity), for memory accounting.
    pub fn tree_bytes(&self) -> usize {
        use std::mem::size_of;
        self.arena.stmts.capacity() * size_of::<Stmt>()
            + self.arena.exprs.capacity() * size_of::<Expr>()
            + self.arena.fields.capacity() * size_of::<ObjectField>()
            + self.arena.names.capacity() * size_of::<Span>()
            + self.comments.capacity() * size_of::<Comment>()
    }
}

/// The index of an expression in its [`File`] (see [`File::expr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub(crate) u32);

/// A contiguous run of nodes of one kind in a [`File`]'s arena: the children of a node.
pub struct IdRange<T> {
    start: u32,
    end: u32,
    _of: PhantomData<fn() -> T>,
}

impl<T> IdRange<T> {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        IdRange {
            start: start as u32,
            end: end as u32,
            _of: PhantomData,
        }
    }

    /// How many nodes the range holds.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the range holds no node.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

// Manual impls: derives would require `T` itself to be `Copy`/`Eq`/...
impl<T> Clone for IdRange<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for IdRange<T> {}
impl<T> PartialEq for IdRange<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.start, self.end) == (other.start, other.end)
    }
}
impl<T> Eq for IdRange<T> {}
impl<T> Default for IdRange<T> {
    fn default() -> Self {
        IdRange::new(0, 0)
    }
}
impl<T> fmt::Debug for IdRange<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// The statements of a file or a block body (see [`File::stmts`]).
pub type Body = IdRange<Stmt>;
/// The items of an array or the arguments of a call (see [`File::exprs`]).
pub type Exprs = IdRange<Expr>;
/// The fields of an object literal (see [`File::fields`]).
pub type Fields = IdRange<ObjectField>;
/// The parts of a dotted block name (see [`Block::name`]).
pub type NameParts = IdRange<Span>;

/// A statement: `name = expr` or `name.parts "label" { body }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stmt {
    /// `name = expr`
    Attribute(Attribute),
    /// `name "label" { ... }`
    Block(Block),
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Block {
    /// The identifiers of the dotted name, in order (see [`Block::name`]).
    pub name_parts: NameParts,
    /// The label string literal, quotes included; `None` when absent or `""`.
    pub label: Option<Span>,
    /// The statements inside the braces (see [`File::stmts`]).
    pub body: Body,
    /// Offset of `{`.
    pub lbrace: u32,
    /// Offset of `}`.
    pub rbrace: u32,
    /// From the first name identifier to the closing brace inclusive.
    pub span: Span,
}

impl Block {
    /// The identifiers of the dotted name, in order.
    pub fn name<'f>(&self, file: &'f File) -> &'f [Span] {
        file.arena.names.get(self.name_parts.range()).unwrap_or(&[])
    }

    /// The dotted name as written without spaces, e.g. `pyroscope.scrape`.
    pub fn name_string(&self, file: &File) -> String {
        let mut s = String::new();
        for (i, part) in self.name(file).iter().enumerate() {
            if i > 0 {
                s.push('.');
            }
            s.push_str(file.text(*part));
        }
        s
    }

    /// The span of the dotted name.
    pub fn name_span(&self, file: &File) -> Span {
        let name = self.name(file);
        match (name.first(), name.last()) {
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// From its first to its last byte (parentheses included for [`ExprKind::Paren`]).
    pub span: Span,
}

/// The kinds of expression. Sub-expressions are read through the [`File`]: [`File::expr`] for an
/// [`ExprId`], [`File::exprs`] for [`Exprs`], [`File::fields`] for [`Fields`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExprKind {
    /// An identifier; its name is the span's text.
    Ident,
    /// A literal; its text is the span's text.
    Literal(LitKind),
    /// `[a, b, ...]`
    Array(Exprs),
    /// `{ k = v, "k" = v, ... }`
    Object(Fields),
    /// `value.name`; the span is the name identifier.
    Access(ExprId, Span),
    /// `value[index]`
    Index(ExprId, ExprId),
    /// `function(args...)`
    Call(Call),
    /// `!x`, `-x`
    Unary(UnaryOp, ExprId),
    /// `a op b`
    Binary(BinaryOp, ExprId, ExprId),
    /// `(x)`, kept so the formatter prints it back.
    Paren(ExprId),
}

/// A function call: `func(args...)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Call {
    /// The function called.
    pub func: ExprId,
    /// The arguments in order.
    pub args: Exprs,
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
        shape_body(&mut out, self.body, self);
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

fn shape_body(out: &mut String, body: Body, file: &File) {
    let src: &str = &file.source;
    out.push('(');
    for (i, stmt) in file.stmts(body).iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match stmt {
            Stmt::Attribute(a) => {
                out.push_str("(= ");
                out.push_str(a.name.text(src));
                out.push(' ');
                shape_expr(out, &a.value, file);
                out.push(')');
            }
            Stmt::Block(b) => {
                out.push_str("(block ");
                out.push_str(&b.name_string(file));
                if let Some(label) = b.label {
                    out.push(' ');
                    out.push_str(label.text(src));
                }
                out.push(' ');
                shape_body(out, b.body, file);
                out.push(')');
            }
        }
    }
    out.push(')');
}

fn shape_expr(out: &mut String, e: &Expr, file: &File) {
    let src: &str = &file.source;
    let list = |out: &mut String, items: Exprs| {
        for item in file.exprs(items) {
            out.push(' ');
            shape_expr(out, item, file);
        }
    };
    match e.kind {
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
            for f in file.fields(fields) {
                out.push_str(" (");
                out.push_str(f.key.text(src));
                out.push(' ');
                shape_expr(out, &f.value, file);
                out.push(')');
            }
            out.push(')');
        }
        ExprKind::Access(x, name) => {
            out.push_str("(. ");
            shape_expr(out, file.expr(x), file);
            out.push(' ');
            out.push_str(name.text(src));
            out.push(')');
        }
        ExprKind::Index(x, i) => {
            out.push_str("(index ");
            shape_expr(out, file.expr(x), file);
            out.push(' ');
            shape_expr(out, file.expr(i), file);
            out.push(')');
        }
        ExprKind::Call(call) => {
            out.push_str("(call ");
            shape_expr(out, file.expr(call.func), file);
            list(out, call.args);
            out.push(')');
        }
        ExprKind::Unary(op, x) => {
            out.push('(');
            out.push_str(op.as_str());
            out.push(' ');
            shape_expr(out, file.expr(x), file);
            out.push(')');
        }
        ExprKind::Binary(op, l, r) => {
            out.push('(');
            out.push_str(op.as_str());
            out.push(' ');
            shape_expr(out, file.expr(l), file);
            out.push(' ');
            shape_expr(out, file.expr(r), file);
            out.push(')');
        }
        ExprKind::Paren(x) => {
            out.push_str("(paren ");
            shape_expr(out, file.expr(x), file);
            out.push(')');
        }
    }
}
