//! Evaluation of expressions against a scope. (Being implemented.)

use crate::ast::Expr;
use crate::span::Span;
use crate::value::Value;

/// An evaluation error: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// The expression that failed.
    pub span: Span,
    /// What went wrong.
    pub message: String,
}

/// Names visible to expressions: component exports (as nested objects) over the standard library.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Variables defined at this level.
    pub vars: crate::value::Object,
}

/// Evaluates `expr` (whose spans point into `src`) in `scope`.
pub fn eval_expr(expr: &Expr, src: &str, scope: &Scope) -> Result<Value, EvalError> {
    let _ = (src, scope);
    Err(EvalError {
        span: expr.span,
        message: "evaluation is not implemented yet".into(),
    })
}
