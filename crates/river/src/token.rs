//! Tokens produced by the [`lexer`](crate::lexer).

use crate::span::Span;

/// The kind of a token. Comments are not tokens: the lexer records them on the side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tok {
    /// A character that cannot start any token (already reported by the lexer).
    Illegal,
    /// End of input.
    Eof,
    /// An identifier.
    Ident,
    /// An integer literal.
    Number,
    /// A float literal.
    Float,
    /// A double-quoted or backtick string literal.
    String,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
    /// `||`
    Or,
    /// `&&`
    And,
    /// `!`
    Not,
    /// `!=`
    Neq,
    /// `=`
    Assign,
    /// `==`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
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
    /// `^`
    Pow,
    /// `{`
    LCurly,
    /// `}`
    RCurly,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBrack,
    /// `]`
    RBrack,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// An inserted statement terminator (a newline, or end of input, after a value-ending token).
    Terminator,
}

impl Tok {
    /// The name used in messages such as `expected TERMINATOR, got IDENT`, as the reference prints it.
    pub fn describe(self) -> &'static str {
        use Tok::*;
        match self {
            Illegal => "ILLEGAL",
            Eof => "EOF",
            Ident => "IDENT",
            Number => "NUMBER",
            Float => "FLOAT",
            String => "STRING",
            Bool => "BOOL",
            Null => "NULL",
            Or => "||",
            And => "&&",
            Not => "!",
            Neq => "!=",
            Assign => "=",
            Eq => "==",
            Lt => "<",
            Lte => "<=",
            Gt => ">",
            Gte => ">=",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
            LCurly => "{",
            RCurly => "}",
            LParen => "(",
            RParen => ")",
            LBrack => "[",
            RBrack => "]",
            Comma => ",",
            Dot => ".",
            Terminator => "TERMINATOR",
        }
    }
}

/// A token and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// Its kind.
    pub kind: Tok,
    /// Its bytes in the source (empty for an inserted terminator at end of input).
    pub span: Span,
}
