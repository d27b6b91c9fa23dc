//! The parser: recursive descent with precedence climbing, producing an [`File`] with spans.
//!
//! Error recovery follows the reference implementation so that the first diagnostic of a broken file is
//! exactly what users of Agent Flow saw: `expect` always consumes a token, a failed statement skips to the
//! next identifier, a failed expression skips to the end of the statement, and of several parse errors on one
//! line only the first is reported (lexical errors are always reported). Unlike the reference, errors that
//! follow another one before the next statement starts are not reported: they are almost always a cascade
//! of the first (an unclosed bracket, a placeholder like `...`). Nesting deeper than
//! [`MAX_NESTING`] stops the parse with one error instead of overflowing the stack.

use crate::ast::{
    Arena, Attribute, BinaryOp, Block, Body, Call, Expr, ExprId, ExprKind, Exprs, Fields, File,
    IdRange, LitKind, ObjectField, Stmt, UnaryOp,
};
use crate::diag::{Diagnostic, Diagnostics};
use crate::lexer::{is_valid_identifier, Lexer};
use crate::span::{LineIndex, Span};
use crate::token::{Tok, Token};

/// How deep the syntax tree may get: blocks, brackets, unary operators and each operator of a chain such as
/// `a + b + c` (which nests to the left) count one level. Real configurations nest a handful of levels; the
/// bound keeps every recursive consumer of the AST (evaluator, formatter, reference walker, drop) within a
/// small stack, even in debug builds on a 2 MiB thread.
pub const MAX_NESTING: usize = 250;

/// Parses `src` into a file and the diagnostics found. The file holds whatever could be recovered; it should
/// only be used when there are no errors.
pub fn parse(src: &str) -> (File, Diagnostics) {
    Parser::new(src).parse_file()
}

/// Parses raw bytes: invalid UTF-8 is reported as `illegal UTF-8 encoding` at each bad sequence.
pub fn parse_bytes(bytes: &[u8]) -> (File, Diagnostics) {
    match std::str::from_utf8(bytes) {
        Ok(src) => parse(src),
        Err(_) => {
            let mut diags = Diagnostics::new();
            let mut rest = bytes;
            let mut offset = 0usize;
            while let Err(e) = std::str::from_utf8(rest) {
                let bad = offset + e.valid_up_to();
                diags.push(Diagnostic::error(
                    Span::new(bad as u32, bad as u32 + 1),
                    "illegal UTF-8 encoding",
                ));
                let skip = e.valid_up_to() + e.error_len().unwrap_or(rest.len() - e.valid_up_to());
                rest = &rest[skip..];
                offset += skip;
            }
            let source = String::from_utf8_lossy(bytes);
            (File::empty(&source), diags)
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    src: &'a str,
    tok: Token,
    lines: Option<LineIndex>,
    /// Diagnostics in the order found (lexical errors are in `lexer.diags` and merged by position of discovery).
    diags: Vec<Diagnostic>,
    /// Line (0-based) of the last parse error, for the reference's one-error-per-line rule.
    last_error_line: Option<usize>,
    /// Set by a parse error, cleared when the next statement starts: errors in between are follow-on errors
    /// of the first one (a cascade), so they are not reported.
    in_error: bool,
    depth: usize,
    /// Set when nesting got too deep: the rest of the input is skipped.
    aborted: bool,
    /// The tree being built: a list's items are contiguous in their arena vector.
    arena: Arena,
    /// Scratch stacks: a list's items are collected here while their own children go to the arena, and
    /// moved into the arena as one contiguous run when the list is complete. Nested lists use the stacks in
    /// LIFO order.
    stmt_stack: Vec<Stmt>,
    expr_stack: Vec<Expr>,
    field_stack: Vec<ObjectField>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        let mut p = Parser {
            lexer: Lexer::new(src),
            src,
            tok: Token {
                kind: Tok::Eof,
                span: Span::default(),
            },
            lines: None,
            diags: Vec::new(),
            last_error_line: None,
            in_error: false,
            depth: 0,
            aborted: false,
            arena: Arena::with_capacity_for(src.len()),
            stmt_stack: Vec::new(),
            expr_stack: Vec::new(),
            field_stack: Vec::new(),
        };
        p.next();
        p
    }

    fn parse_file(mut self) -> (File, Diagnostics) {
        if self.src.len() > u32::MAX as usize {
            let d = Diagnostic::error(Span::default(), "file is too large (over 4 GiB)");
            return (File::empty(""), Diagnostics(vec![d]));
        }
        let body = self.parse_body(Tok::Eof);
        self.take_lexer_diags();
        let mut arena = std::mem::take(&mut self.arena);
        arena.shrink_to_fit();
        let mut comments = std::mem::take(&mut self.lexer.comments);
        comments.shrink_to_fit();
        let file = File {
            source: self.src.into(),
            body,
            comments,
            arena,
        };
        (file, Diagnostics(self.diags))
    }

    /// Moves lexical errors into the diagnostic list, keeping the order in which they were found.
    fn take_lexer_diags(&mut self) {
        if !self.lexer.diags.is_empty() {
            self.diags.append(&mut self.lexer.diags);
        }
    }

    /// Moves to the next token. Inlined: each call site then has its own copy of the lexer's fast path,
    /// whose branches predict better per site (fewer instructions and mispredictions per parse).
    #[inline]
    fn next(&mut self) {
        // After an abort the lexer is at the end: it returns `Eof` at the end of the input from then on.
        self.tok = self.lexer.next_token();
        self.take_lexer_diags();
    }

    fn line_of(&mut self, offset: u32) -> usize {
        let src = self.src;
        self.lines
            .get_or_insert_with(|| LineIndex::new(src))
            .line_of(offset)
    }

    /// Records a parse error at the current token, unless one was already recorded on this line or in
    /// this statement.
    fn error_here(&mut self, message: String) {
        if self.aborted || self.in_error {
            return;
        }
        self.in_error = true;
        if self.tok.kind == Tok::Illegal {
            // The lexer already reported this token; `expected X, got ILLEGAL` would only repeat it.
            return;
        }
        let at = self.tok.span.start;
        let line = self.line_of(at);
        if self.last_error_line == Some(line) {
            return;
        }
        self.last_error_line = Some(line);
        let span = if self.tok.span.is_empty() {
            Span::new(at, at)
        } else {
            self.tok.span
        };
        self.diags.push(Diagnostic::error(span, message));
    }

    /// Consumes the current token, reporting an error if it is not `t`. Returns the consumed token.
    #[inline]
    fn expect(&mut self, t: Tok) -> Token {
        let tok = self.tok;
        if tok.kind != t {
            self.expected(t, tok.kind);
        }
        self.next();
        tok
    }

    /// The error of [`Self::expect`].
    #[cold]
    #[inline(never)]
    fn expected(&mut self, want: Tok, got: Tok) {
        self.error_here(format!(
            "expected {}, got {}",
            want.describe(),
            got.describe()
        ));
    }

    fn advance(&mut self, to: Tok) {
        while self.tok.kind != Tok::Eof && self.tok.kind != to {
            self.next();
        }
    }

    /// Skips to the end of the statement: a terminator outside of any pair of brackets.
    fn consume_statement(&mut self) {
        let (mut curly, mut brack, mut paren) = (0i32, 0i32, 0i32);
        while self.tok.kind != Tok::Eof {
            match self.tok.kind {
                Tok::LCurly => curly += 1,
                Tok::RCurly => curly -= 1,
                Tok::LBrack => brack += 1,
                Tok::RBrack => brack -= 1,
                Tok::LParen => paren += 1,
                Tok::RParen => paren -= 1,
                Tok::Terminator if curly <= 0 && brack <= 0 && paren <= 0 => return,
                _ => {}
            }
            self.next();
        }
    }

    /// Enters one nesting level; false (after reporting once and stopping the parse) when too deep.
    #[inline(always)]
    fn enter(&mut self) -> bool {
        if self.depth >= MAX_NESTING {
            return self.too_deep();
        }
        self.depth += 1;
        true
    }

    /// [`Self::enter`] past the nesting bound: reports once, stops the parse, and returns false.
    #[cold]
    #[inline(never)]
    fn too_deep(&mut self) -> bool {
        if !self.aborted {
            let at = self.tok.span.start;
            self.diags.push(Diagnostic::error(
                Span::new(at, at),
                format!("expression or block nesting is too deep (more than {MAX_NESTING} levels)"),
            ));
            self.aborted = true;
            self.lexer.stop();
            self.tok = Token {
                kind: Tok::Eof,
                span: Span::at(self.src.len() as u32),
            };
        }
        false
    }

    #[inline(always)]
    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn parse_body(&mut self, until: Tok) -> Body {
        let base = self.stmt_stack.len();
        while self.tok.kind != until && self.tok.kind != Tok::Eof {
            self.in_error = false;
            if let Some(stmt) = self.parse_statement() {
                self.stmt_stack.push(stmt);
            }
            if self.tok.kind == until {
                break;
            }
            if self.tok.kind != Tok::Terminator {
                self.error_here(format!(
                    "expected TERMINATOR, got {}",
                    self.tok.kind.describe()
                ));
                self.consume_statement();
            }
            self.next();
        }
        let start = self.arena.stmts.len();
        self.arena.stmts.extend(self.stmt_stack.drain(base..));
        Body::new(start, self.arena.stmts.len())
    }

    /// Moves `expr` into the arena.
    fn push(&mut self, expr: Expr) -> ExprId {
        let id = ExprId(self.arena.exprs.len() as u32);
        self.arena.exprs.push(expr);
        id
    }

    fn parse_statement(&mut self) -> Option<Stmt> {
        if self.tok.kind != Tok::Ident {
            self.error_here(format!(
                "expected identifier, got {}",
                self.tok.kind.describe()
            ));
            self.advance(Tok::Ident);
            return None;
        }
        let first = self.tok.span;
        self.next();
        // The most common statement, `name = value`, needs none of the dotted-name and label handling.
        if self.tok.kind == Tok::Assign {
            self.next();
            let value = self.parse_expression();
            return Some(Stmt::Attribute(Attribute { name: first, value }));
        }
        self.parse_statement_after(first)
    }

    /// [`Self::parse_statement`] after the first identifier of the name (at `first`).
    #[inline(never)]
    fn parse_statement_after(&mut self, first: Span) -> Option<Stmt> {
        let name = self.parse_block_name_after(first);
        match self.tok.kind {
            Tok::Assign => {
                self.next();
                if name.parts.len() != 1 {
                    self.diags.push(Diagnostic::error(
                        name.span(),
                        "attribute names may only consist of a single identifier with no \".\"",
                    ));
                } else if let Some(label) = name.label_pos {
                    self.diags.push(Diagnostic::error(
                        label,
                        "attribute names may not have labels",
                    ));
                }
                let value = self.parse_expression();
                Some(Stmt::Attribute(Attribute {
                    name: name.parts.first(),
                    value,
                }))
            }
            Tok::LCurly => {
                if !self.enter() {
                    return None;
                }
                let lbrace = self.expect(Tok::LCurly).span.start;
                let body = self.parse_body(Tok::RCurly);
                let rbrace = self.expect(Tok::RCurly).span.start;
                self.leave();
                let start = name.parts.first().start;
                let names = &mut self.arena.names;
                let first = names.len();
                names.extend_from_slice(name.parts.as_slice());
                Some(Stmt::Block(Block {
                    span: Span::new(start, rbrace + 1),
                    name_parts: IdRange::new(first, names.len()),
                    label: name.label,
                    body,
                    lbrace,
                    rbrace,
                }))
            }
            kind => {
                if name.parts.len() == 1 && name.label.is_none() {
                    self.error_here(format!(
                        "expected attribute assignment or block body, got {}",
                        kind.describe()
                    ));
                } else {
                    self.error_here(format!("expected block body, got {}", kind.describe()));
                }
                self.advance(Tok::Ident);
                None
            }
        }
    }

    /// The rest of a block name (dotted parts and label) after its first identifier, at `first`.
    fn parse_block_name_after(&mut self, first: Span) -> BlockName {
        let mut name = BlockName {
            parts: NameParts::new(first),
            label: None,
            label_pos: None,
        };
        while self.tok.kind == Tok::Dot {
            self.next();
            if self.tok.kind != Tok::Ident {
                self.error_here(format!(
                    "expected identifier, got {}",
                    self.tok.kind.describe()
                ));
            }
            name.parts.push(self.tok.span);
            self.next();
        }
        if self.tok.kind != Tok::Assign && self.tok.kind != Tok::LCurly {
            if self.tok.kind == Tok::String {
                let lit = self.tok.span.text(self.src);
                if !lit.starts_with('"') {
                    self.error_here(format!(
                        "expected block label to be a double quoted string, but got {}",
                        go_quote(lit)
                    ));
                }
                // The text between the quotes. An unterminated literal (already reported by the lexer) may end
                // in a multi-byte character, so strip characters, not bytes.
                let mut chars = lit.chars();
                chars.next();
                chars.next_back();
                let inner = chars.as_str();
                if !inner.is_empty() {
                    if !is_valid_identifier(inner) {
                        self.error_here(format!(
                            "expected block label to be a valid identifier, but got {}",
                            go_quote(inner)
                        ));
                    }
                    name.label = Some(self.tok.span);
                }
                name.label_pos = Some(self.tok.span);
            } else {
                self.error_here(format!(
                    "expected block label, got {}",
                    self.tok.kind.describe()
                ));
            }
            self.next();
        }
        name
    }

    /// `Expression = OrExpr`.
    ///
    /// Most values are a lone literal or identifier followed by the end of the value (a terminator, `,` or
    /// a closing bracket): those skip the descent through the operator levels. Anything else continues
    /// exactly where that descent would have been after the primary expression.
    #[inline]
    fn parse_expression(&mut self) -> Expr {
        if self.depth < MAX_NESTING {
            if let Some(leaf) = self.leaf(self.tok) {
                self.next();
                if matches!(
                    self.tok.kind,
                    Tok::Terminator | Tok::Comma | Tok::RParen | Tok::RBrack | Tok::RCurly
                ) {
                    return leaf;
                }
                return self.parse_expression_after_leaf(leaf);
            }
        }
        self.parse_binary(1)
    }

    /// The rest of [`Self::parse_expression`] after a leading leaf that is not the whole value: the steps
    /// of `parse_binary(1)` → `parse_pow` → `parse_unary` (whose nesting level is known to be available)
    /// that follow its primary expression.
    #[inline(never)]
    fn parse_expression_after_leaf(&mut self, leaf: Expr) -> Expr {
        // `parse_unary`: one level for the operand and its postfix operators.
        self.depth += 1;
        let mut chained = 0;
        let operand = self.parse_postfix(leaf, &mut chained);
        self.depth -= chained;
        self.leave();
        let lhs = self.parse_pow_rest(operand);
        let mut chained = 0;
        let expr = self.parse_binary_chain(lhs, 1, &mut chained);
        self.depth -= chained;
        expr
    }

    /// Precedence climbing over the left-associative binary operators.
    fn parse_binary(&mut self, min_prec: u8) -> Expr {
        let lhs = self.parse_pow();
        let mut chained = 0;
        let expr = self.parse_binary_chain(lhs, min_prec, &mut chained);
        self.depth -= chained;
        expr
    }

    /// The loop of [`Self::parse_binary`]: every operator deepens the (left-nested) tree by one level.
    fn parse_binary_chain(&mut self, mut lhs: Expr, min_prec: u8, chained: &mut usize) -> Expr {
        loop {
            let Some(op) = binary_op(self.tok.kind) else {
                return lhs;
            };
            let prec = op.precedence();
            if prec < min_prec {
                return lhs;
            }
            if !self.enter() {
                return lhs;
            }
            *chained += 1;
            self.next();
            let rhs = self.parse_binary(prec + 1);
            let span = lhs.span.to(rhs.span);
            let (l, r) = (self.push(lhs), self.push(rhs));
            lhs = Expr {
                kind: ExprKind::Binary(op, l, r),
                span,
            };
        }
    }

    /// `PowExpr = UnaryExpr [ "^" PowExpr ]` (right-associative).
    fn parse_pow(&mut self) -> Expr {
        let lhs = self.parse_unary();
        self.parse_pow_rest(lhs)
    }

    /// [`Self::parse_pow`] after its first operand.
    fn parse_pow_rest(&mut self, lhs: Expr) -> Expr {
        if self.tok.kind != Tok::Pow {
            return lhs;
        }
        self.next();
        if !self.enter() {
            return lhs;
        }
        let rhs = self.parse_pow();
        self.leave();
        let span = lhs.span.to(rhs.span);
        let (l, r) = (self.push(lhs), self.push(rhs));
        Expr {
            kind: ExprKind::Binary(BinaryOp::Pow, l, r),
            span,
        }
    }

    /// `UnaryExpr = OperExpr | ( "!" | "-" ) UnaryExpr`, and the postfix operators of `OperExpr`.
    fn parse_unary(&mut self) -> Expr {
        if !self.enter() {
            return self.null_at(self.tok.span.start);
        }
        let expr = self.parse_unary_inner();
        self.leave();
        expr
    }

    fn parse_unary_inner(&mut self) -> Expr {
        let op = match self.tok.kind {
            Tok::Not => Some(UnaryOp::Not),
            Tok::Sub => Some(UnaryOp::Neg),
            _ => None,
        };
        if let Some(op) = op {
            let start = self.tok.span.start;
            self.next();
            let operand = self.parse_unary();
            let span = Span::new(start, operand.span.end.max(start + 1));
            return Expr {
                kind: ExprKind::Unary(op, self.push(operand)),
                span,
            };
        }

        let primary = self.parse_primary();
        let mut chained = 0;
        let expr = self.parse_postfix(primary, &mut chained);
        self.depth -= chained;
        expr
    }

    /// The postfix operators after a primary expression (`.name`, `[index]`, `(args)`). Each one nests the
    /// tree one level deeper, so each counts toward the nesting bound.
    fn parse_postfix(&mut self, mut primary: Expr, chained: &mut usize) -> Expr {
        loop {
            if matches!(self.tok.kind, Tok::Dot | Tok::LBrack | Tok::LParen) {
                if !self.enter() {
                    return primary;
                }
                *chained += 1;
            }
            match self.tok.kind {
                Tok::Dot => {
                    self.next();
                    let name = self.expect(Tok::Ident).span;
                    let span = primary.span.to(name);
                    primary = Expr {
                        kind: ExprKind::Access(self.push(primary), name),
                        span,
                    };
                }
                Tok::LBrack => {
                    self.next();
                    let index = self.parse_expression();
                    let rbrack = self.expect(Tok::RBrack).span;
                    let span = Span::new(primary.span.start, rbrack.end.max(index.span.end));
                    primary = Expr {
                        kind: ExprKind::Index(self.push(primary), self.push(index)),
                        span,
                    };
                }
                Tok::LParen => {
                    self.next();
                    let (args, last) = if self.tok.kind != Tok::RParen {
                        self.parse_expression_list(Tok::RParen)
                    } else {
                        (Exprs::default(), 0)
                    };
                    let rparen = self.expect(Tok::RParen).span;
                    let end = rparen.end.max(last);
                    let span = Span::new(primary.span.start, end);
                    primary = Expr {
                        kind: ExprKind::Call(Call {
                            func: self.push(primary),
                            args,
                        }),
                        span,
                    };
                }
                Tok::String | Tok::LCurly => {
                    // Probably a block written where an expression belongs, e.g. `x = a.b "l" { ... }`.
                    if self.tok.kind == Tok::String {
                        self.next();
                    }
                    if self.expect(Tok::LCurly).kind != Tok::LCurly {
                        self.consume_statement();
                        return primary;
                    }
                    if !self.enter() {
                        return primary;
                    }
                    self.parse_body(Tok::RCurly);
                    self.leave();
                    let end = self.expect(Tok::RCurly);
                    if end.kind != Tok::RCurly {
                        self.consume_statement();
                        return primary;
                    }
                    self.diags.push(Diagnostic::error(
                        Span::new(primary.span.start, end.span.end),
                        "cannot use a block as an expression",
                    ));
                }
                _ => return primary,
            }
        }
    }

    fn null_at(&self, at: u32) -> Expr {
        Expr {
            kind: ExprKind::Literal(LitKind::Null),
            span: Span::new(at, at),
        }
    }

    /// The expression of a token that is a whole primary expression by itself (an identifier or a
    /// literal); `None` for any other token.
    #[inline(always)]
    fn leaf(&self, tok: Token) -> Option<Expr> {
        let kind = match tok.kind {
            Tok::Ident => ExprKind::Ident,
            Tok::String => {
                if self.src.as_bytes().get(tok.span.start as usize) == Some(&b'`') {
                    ExprKind::Literal(LitKind::RawString)
                } else {
                    ExprKind::Literal(LitKind::String)
                }
            }
            Tok::Number => ExprKind::Literal(LitKind::Number),
            Tok::Float => ExprKind::Literal(LitKind::Float),
            Tok::Bool => {
                if tok.span.len() == 4 {
                    ExprKind::Literal(LitKind::True)
                } else {
                    ExprKind::Literal(LitKind::False)
                }
            }
            Tok::Null => ExprKind::Literal(LitKind::Null),
            _ => return None,
        };
        Some(Expr {
            kind,
            span: tok.span,
        })
    }

    fn parse_primary(&mut self) -> Expr {
        let tok = self.tok;
        if let Some(leaf) = self.leaf(tok) {
            self.next();
            return leaf;
        }
        match tok.kind {
            Tok::LParen => {
                self.next();
                let inner = self.parse_expression();
                let rparen = self.expect(Tok::RParen).span;
                let span = Span::new(tok.span.start, rparen.end.max(inner.span.end));
                Expr {
                    kind: ExprKind::Paren(self.push(inner)),
                    span,
                }
            }
            Tok::LBrack => {
                self.next();
                let (items, last) = if self.tok.kind != Tok::RBrack {
                    self.parse_expression_list(Tok::RBrack)
                } else {
                    (Exprs::default(), 0)
                };
                let rbrack = self.expect(Tok::RBrack).span;
                let end = rbrack.end.max(last);
                Expr {
                    kind: ExprKind::Array(items),
                    span: Span::new(tok.span.start, end),
                }
            }
            Tok::LCurly => {
                self.next();
                let (fields, last) = if self.tok.kind != Tok::RCurly {
                    self.parse_field_list(Tok::RCurly)
                } else {
                    (Fields::default(), 0)
                };
                let rcurly = self.expect(Tok::RCurly).span;
                let end = rcurly.end.max(last);
                Expr {
                    kind: ExprKind::Object(fields),
                    span: Span::new(tok.span.start, end),
                }
            }
            kind => {
                self.error_here(format!("expected expression, got {}", kind.describe()));
                let expr = self.null_at(tok.span.start);
                // Skip the rest of the expression.
                while !matches!(
                    self.tok.kind,
                    Tok::Eof
                        | Tok::Terminator
                        | Tok::RParen
                        | Tok::RCurly
                        | Tok::RBrack
                        | Tok::Comma
                ) {
                    self.next();
                }
                expr
            }
        }
    }

    /// The list's items, and where its last item ends (0 when empty).
    fn parse_expression_list(&mut self, until: Tok) -> (Exprs, u32) {
        let base = self.expr_stack.len();
        while self.tok.kind != until && self.tok.kind != Tok::Eof {
            let item = self.parse_expression();
            self.expr_stack.push(item);
            if self.tok.kind == until {
                break;
            }
            if self.tok.kind != Tok::Comma {
                self.error_here("missing ',' in expression list".to_string());
            }
            self.next();
        }
        let last = self.expr_stack[base..].last().map_or(0, |e| e.span.end);
        let start = self.arena.exprs.len();
        self.arena.exprs.extend(self.expr_stack.drain(base..));
        (Exprs::new(start, self.arena.exprs.len()), last)
    }

    /// The fields, and where the last field's value ends (0 when empty).
    fn parse_field_list(&mut self, until: Tok) -> (Fields, u32) {
        let base = self.field_stack.len();
        while self.tok.kind != until && self.tok.kind != Tok::Eof {
            let field = self.parse_field();
            self.field_stack.push(field);
            if self.tok.kind == until {
                break;
            }
            if self.tok.kind != Tok::Comma {
                self.error_here("missing ',' in field list".to_string());
            }
            self.next();
        }
        let last = self.field_stack[base..]
            .last()
            .map_or(0, |f| f.value.span.end);
        let start = self.arena.fields.len();
        self.arena.fields.extend(self.field_stack.drain(base..));
        (Fields::new(start, self.arena.fields.len()), last)
    }

    fn parse_field(&mut self) -> ObjectField {
        let tok = self.tok;
        let (key, quoted) = match tok.kind {
            Tok::String | Tok::Ident => {
                self.next();
                (tok.span, tok.kind == Tok::String)
            }
            kind => {
                self.error_here(format!(
                    "expected field name (string or identifier), got {}",
                    kind.describe()
                ));
                self.advance(Tok::Assign);
                (Span::at(tok.span.start), false)
            }
        };
        self.expect(Tok::Assign);
        let value = self.parse_expression();
        ObjectField { key, quoted, value }
    }
}

/// The parts of a dotted name while it is parsed, kept inline: most names have one to four parts.
struct NameParts {
    inline: [Span; 4],
    len: usize,
    spill: Vec<Span>,
}

impl NameParts {
    fn new(first: Span) -> Self {
        NameParts {
            inline: [first; 4],
            len: 1,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, part: Span) {
        if self.len < self.inline.len() {
            self.inline[self.len] = part;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(part);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[Span] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn first(&self) -> Span {
        self.inline[0]
    }
}

struct BlockName {
    parts: NameParts,
    /// The label literal when non-empty.
    label: Option<Span>,
    /// The label literal even when it is `""` (an attribute may not have one at all).
    label_pos: Option<Span>,
}

impl BlockName {
    fn span(&self) -> Span {
        let parts = self.parts.as_slice();
        match (parts.first(), parts.last()) {
            (Some(a), Some(b)) => a.to(*b),
            _ => Span::default(),
        }
    }
}

fn binary_op(t: Tok) -> Option<BinaryOp> {
    Some(match t {
        Tok::Or => BinaryOp::Or,
        Tok::And => BinaryOp::And,
        Tok::Eq => BinaryOp::Eq,
        Tok::Neq => BinaryOp::NotEq,
        Tok::Lt => BinaryOp::Lt,
        Tok::Lte => BinaryOp::LtEq,
        Tok::Gt => BinaryOp::Gt,
        Tok::Gte => BinaryOp::GtEq,
        Tok::Add => BinaryOp::Add,
        Tok::Sub => BinaryOp::Sub,
        Tok::Mul => BinaryOp::Mul,
        Tok::Div => BinaryOp::Div,
        Tok::Mod => BinaryOp::Mod,
        Tok::Pow => BinaryOp::Pow,
        _ => return None,
    })
}

/// Go's `%q` quoting of a string, used in messages that the reference formats with `%q`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c == '\u{FEFF}' => {
                if (c as u32) <= 0xFFFF {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints an expression fully parenthesised, to check precedence and associativity.
    fn shape(e: &Expr, f: &File) -> String {
        let src: &str = &f.source;
        let list =
            |items: Exprs| -> Vec<String> { f.exprs(items).iter().map(|a| shape(a, f)).collect() };
        match e.kind {
            ExprKind::Ident | ExprKind::Literal(_) => e.span.text(src).to_string(),
            ExprKind::Binary(op, l, r) => {
                format!(
                    "({} {} {})",
                    shape(f.expr(l), f),
                    op.as_str(),
                    shape(f.expr(r), f)
                )
            }
            ExprKind::Unary(op, x) => format!("({}{})", op.as_str(), shape(f.expr(x), f)),
            ExprKind::Paren(x) => format!("[{}]", shape(f.expr(x), f)),
            ExprKind::Access(x, n) => format!("{}.{}", shape(f.expr(x), f), n.text(src)),
            ExprKind::Index(x, i) => format!("{}[{}]", shape(f.expr(x), f), shape(f.expr(i), f)),
            ExprKind::Call(call) => {
                format!(
                    "{}({})",
                    shape(f.expr(call.func), f),
                    list(call.args).join(", ")
                )
            }
            ExprKind::Array(items) => format!("[{}]", list(items).join(", ")),
            ExprKind::Object(fields) => {
                let fs: Vec<_> = f
                    .fields(fields)
                    .iter()
                    .map(|x| format!("{}={}", x.key.text(src), shape(&x.value, f)))
                    .collect();
                format!("{{{}}}", fs.join(", "))
            }
        }
    }

    fn expr_shape(expr: &str) -> String {
        let src = format!("x = {expr}");
        let (file, diags) = parse(&src);
        assert!(diags.is_empty(), "{expr}: {diags:?}");
        match file.top_level() {
            [Stmt::Attribute(a)] => shape(&a.value, &file),
            other => panic!("unexpected statements {other:?}"),
        }
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            expr_shape("1 || 2 && 3 == 4 + 5 * 6 ^ 7"),
            "(1 || (2 && (3 == (4 + (5 * (6 ^ 7))))))"
        );
        assert_eq!(expr_shape("1 - 2 - 3"), "((1 - 2) - 3)");
        assert_eq!(expr_shape("2 ^ 3 ^ 2"), "(2 ^ (3 ^ 2))");
        assert_eq!(expr_shape("-2 ^ 2"), "((-2) ^ 2)");
        assert_eq!(expr_shape("!a.b[0](1, 2).c"), "(!a.b[0](1, 2).c)");
        assert_eq!(expr_shape("(1 + 2) * 3"), "([(1 + 2)] * 3)");
        assert_eq!(expr_shape("1 < 2 != 3 >= 4"), "(((1 < 2) != 3) >= 4)");
        assert_eq!(
            expr_shape("{a = [1, {\"b\" = 2},], }"),
            "{a=[1, {\"b\"=2}]}"
        );
    }

    #[test]
    fn blocks_have_names_labels_and_spans() {
        let src = "pyroscope.scrape \"default\" {\n  targets = []\n}\nlogging { }\n";
        let (file, diags) = parse(src);
        assert!(diags.is_empty());
        let Stmt::Block(b) = &file.top_level()[0] else {
            panic!("not a block")
        };
        assert_eq!(b.name_string(&file), "pyroscope.scrape");
        assert_eq!(b.label_text(src), Some("default"));
        assert_eq!(b.span.text(src), &src[..src.find("}\n").unwrap() + 1]);
        assert_eq!(file.stmts(b.body).len(), 1);
        let Stmt::Block(l) = &file.top_level()[1] else {
            panic!("not a block")
        };
        assert_eq!((l.name_string(&file).as_str(), l.label), ("logging", None));
    }

    fn messages(src: &str) -> Vec<String> {
        let (_, d) = parse(src);
        let f = crate::SourceFile::new("t", src);
        d.iter()
            .map(|d| format!("{}: {}", f.position(d.span.start), d.message))
            .collect()
    }

    #[test]
    fn independent_errors_are_each_reported_once() {
        assert_eq!(
            messages("a = 1 b = 2\nc = ,\nd = 3\n"),
            [
                "1:7: expected TERMINATOR, got IDENT",
                "2:5: expected expression, got ,"
            ]
        );
        // No terminator follows `=`, so the next line is the value.
        assert_eq!(
            messages("c =\nd = 3\n"),
            ["2:3: expected TERMINATOR, got ="]
        );
        // One placeholder: the reference also reported `expected }, got EOF` and more.
        assert_eq!(
            messages("b {\n  x = [A, B...]\n}\n"),
            ["2:13: expected IDENT, got ."]
        );
        assert_eq!(
            messages("a.b = 1\nc \"l\" = 2\n"),
            [
                "1:1: attribute names may only consist of a single identifier with no \".\"",
                "2:3: attribute names may not have labels"
            ]
        );
        assert_eq!(
            messages("x = a.b \"l\" { }"),
            ["1:5: cannot use a block as an expression"]
        );
        assert_eq!(
            messages("b \"not valid\" { }"),
            ["1:3: expected block label to be a valid identifier, but got \"not valid\""]
        );
        assert_eq!(
            messages("x = [\n1,\n2\n]"),
            ["3:2: missing ',' in expression list"]
        );
        assert_eq!(
            messages("x = {\na = 1\n}"),
            ["2:6: missing ',' in field list"]
        );
        assert_eq!(
            messages("x = {1 = 2}"),
            ["1:6: expected field name (string or identifier), got NUMBER"]
        );
    }

    #[test]
    fn unterminated_label_ending_in_a_multibyte_character_does_not_panic() {
        // Found by fuzzing the formatter: the label literal runs to the end of the line and ends in a BOM.
        let (_, d) = parse("discovery.kuL\" {\u{FEFF}\n    server = ER");
        let msgs: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            msgs[..2],
            ["illegal byte order mark", "string literal not terminated"]
        );
    }

    #[test]
    fn invalid_utf8_is_reported_per_sequence() {
        let (_, d) = parse_bytes(b"a = \"\xff\" \xc3");
        let at: Vec<_> = d
            .iter()
            .map(|d| (d.span.start, d.message.as_str()))
            .collect();
        assert_eq!(
            at,
            [(5, "illegal UTF-8 encoding"), (8, "illegal UTF-8 encoding")]
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = [
            format!("x = {}1{}", "[".repeat(20_000), "]".repeat(20_000)),
            format!("x = {}1", "-".repeat(20_000)),
            // A flat chain nests to the left: each operator is a level.
            format!("x = 1{}", " + 1".repeat(100_000)),
            format!("x = true{}", " && true".repeat(MAX_NESTING + 1)),
            format!("x = a{}", ".b".repeat(100_000)),
            format!("x = f{}", "()".repeat(100_000)),
            format!("x = a{}", "[0]".repeat(100_000)),
            "a {\n".repeat(20_000),
        ];
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                // Parse, and drop the tree, on a small stack.
                deep.iter()
                    .map(|src| {
                        parse(src)
                            .1
                            .iter()
                            .map(|d| d.message.clone())
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            });
        let results = handle.expect("spawn").join().expect("no stack overflow");
        let want =
            format!("expression or block nesting is too deep (more than {MAX_NESTING} levels)");
        for msgs in results {
            assert_eq!(msgs, std::slice::from_ref(&want));
        }
    }

    #[test]
    fn chains_within_the_limit_parse_and_evaluate_on_a_small_stack() {
        let src = format!("x = 1{}", " + 1".repeat(MAX_NESTING - 10));
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (file, diags) = parse(&src);
                assert!(diags.is_empty(), "{diags:?}");
                let Some(Stmt::Attribute(a)) = file.top_level().first() else {
                    panic!("no attribute")
                };
                crate::eval::eval_expr(&a.value, &file, &crate::eval::Scope::new())
                    .map_err(|e| e.message)
            });
        let value = handle.expect("spawn").join().expect("no stack overflow");
        assert_eq!(value, Ok(crate::Value::int((MAX_NESTING - 9) as i64)));
    }
}
