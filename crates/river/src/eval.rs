//! Evaluation of expressions against a [`Scope`].
//!
//! Errors carry the span of the offending sub-expression and the reference implementation's wording; where
//! the reference names a value by its source text (`"a" should be number, got string`), so do we.

use crate::ast::{Expr, ExprKind, File, LitKind};
use crate::literal;
use crate::ops::{self, OpError, Side};
use crate::span::Span;
use crate::value::{Object, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// An evaluation error: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// The expression that failed.
    pub span: Span,
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    fn new(span: Span, message: impl Into<String>) -> Self {
        EvalError {
            span,
            message: message.into(),
        }
    }
}

/// Names visible to expressions. A scope looks in its own variables first, then in its parent: the runtime
/// puts component exports in a child of the standard library scope, so a component named like a namespace
/// shadows it.
///
/// A scope may also carry *resolved expressions*: values for the expressions at given spans, which the caller
/// has already resolved itself (see [`Scope::with_resolved`]). The runtime uses them for references to other
/// components, so that it need not build a tree of nested objects for every evaluation.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    vars: HashMap<String, Value>,
    parent: Option<Parent>,
    /// Sorted by span start; consulted for identifiers and field accesses of this level only.
    resolved: Vec<(Span, Value)>,
}

/// A scope's parent: the standard library's is never freed, so scopes refer to it without counting
/// references (threads evaluating at the same time would otherwise all count on one shared counter).
#[derive(Clone, Debug)]
enum Parent {
    Static(&'static Scope),
    Shared(Arc<Scope>),
}

impl std::ops::Deref for Parent {
    type Target = Scope;

    fn deref(&self) -> &Scope {
        match self {
            Parent::Static(scope) => scope,
            Parent::Shared(scope) => scope,
        }
    }
}

impl Scope {
    /// An empty scope with no parent (not even the standard library).
    pub fn new() -> Self {
        Scope::default()
    }

    /// An empty scope whose parent is the standard library.
    pub fn with_stdlib() -> Self {
        Scope {
            vars: HashMap::new(),
            parent: Some(Parent::Static(crate::stdlib::static_scope())),
            resolved: Vec::new(),
        }
    }

    /// An empty scope with the given parent.
    pub fn child_of(parent: Arc<Scope>) -> Self {
        Scope {
            vars: HashMap::new(),
            parent: Some(Parent::Shared(parent)),
            resolved: Vec::new(),
        }
    }

    /// Defines (or replaces) a variable.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        self.vars.insert(name.into(), value);
    }

    /// A mutable reference to a variable of this level (not the parents').
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.vars.get_mut(name)
    }

    /// The names defined at this level (not the parents'), in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// Looks a name up here, then in the parents.
    pub fn lookup(&self, name: &str) -> Option<&Value> {
        let mut scope = self;
        loop {
            if let Some(v) = scope.vars.get(name) {
                return Some(v);
            }
            scope = scope.parent.as_deref()?;
        }
    }

    /// Sets the resolved expressions: an identifier or field-access expression (`a`, `a.b.c`) whose span
    /// is exactly one of `resolved`'s evaluates to the value given with it, without looking at the variables;
    /// accesses on top of it (`a.b.c.d`, `a.b.c[0]`) then work as usual. Spans may come in any order but must
    /// not repeat. Only this scope's own resolved expressions are consulted, not its parents'.
    pub fn with_resolved(mut self, mut resolved: Vec<(Span, Value)>) -> Self {
        resolved.sort_unstable_by_key(|(span, _)| span.start);
        self.resolved = resolved;
        self
    }

    /// Takes the resolved expressions out (the scope has none left), e.g. to reuse their buffer for the
    /// next scope.
    pub fn take_resolved(&mut self) -> Vec<(Span, Value)> {
        std::mem::take(&mut self.resolved)
    }

    /// The value given for the expression at exactly `span` by [`Scope::with_resolved`].
    fn resolved_at(&self, span: Span) -> Option<&Value> {
        if self.resolved.is_empty() {
            return None;
        }
        let at = self
            .resolved
            .binary_search_by_key(&span.start, |(s, _)| s.start)
            .ok()?;
        let (s, value) = &self.resolved[at];
        (s.end == span.end).then_some(value)
    }

    /// Builds a scope from `(name, value)` pairs over the standard library.
    pub fn from_vars_with_stdlib(vars: impl IntoIterator<Item = (String, Value)>) -> Self {
        let mut s = Scope::with_stdlib();
        s.vars.extend(vars);
        s
    }
}

/// Evaluates `expr`, a node of `file`, in `scope`.
pub fn eval_expr(expr: &Expr, file: &File, scope: &Scope) -> Result<Value, EvalError> {
    Evaluator {
        file,
        src: &file.source,
        scope,
    }
    .eval(expr)
}

struct Evaluator<'a> {
    file: &'a File,
    src: &'a str,
    scope: &'a Scope,
}

impl<'a> Evaluator<'a> {
    fn text(&self, span: Span) -> &str {
        span.text(self.src)
    }

    /// The value of an identifier or field access (`a`, `a.b.c`) where it already is, in the scope, when it
    /// evaluates without error: then only the value asked for is cloned, not every object on the way (a
    /// component's whole exports for `component.output`). `None` leaves it, and any error, to [`Self::eval`].
    fn place(&self, expr: &Expr) -> Option<&'a Value> {
        let scope: &'a Scope = self.scope;
        match expr.kind {
            ExprKind::Ident => scope
                .resolved_at(expr.span)
                .or_else(|| scope.lookup(expr.span.text(self.src))),
            ExprKind::Access(value_expr, name_span) => {
                if let Some(v) = scope.resolved_at(expr.span) {
                    return Some(v);
                }
                match self.place(self.file.expr(value_expr))? {
                    Value::Object(o) => o.get(name_span.text(self.src)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        if let ExprKind::Ident | ExprKind::Access(..) = expr.kind {
            if let Some(value) = self.place(expr) {
                return Ok(value.clone());
            }
        }
        let file = self.file;
        match expr.kind {
            ExprKind::Literal(kind) => self.literal(kind, expr.span),
            ExprKind::Ident => {
                let name = self.text(expr.span);
                self.scope.lookup(name).cloned().ok_or_else(|| {
                    EvalError::new(expr.span, format!("identifier {name:?} does not exist"))
                })
            }
            ExprKind::Array(items) => Ok(Value::array(self.eval_all(file.exprs(items))?)),
            ExprKind::Object(fields) => {
                let fields = file.fields(fields);
                let mut object = Object::with_capacity(fields.len());
                for field in fields {
                    let key_text = self.text(field.key);
                    let key = if field.quoted {
                        literal::unquote(key_text)
                            .map_err(|e| EvalError::new(field.key, e.message))?
                            .into_owned()
                    } else {
                        key_text.to_string()
                    };
                    let value = self.eval(&field.value)?;
                    object.insert(key, value);
                }
                Ok(Value::object(object))
            }
            ExprKind::Access(value_expr, name_span) => {
                let value_expr = file.expr(value_expr);
                let value = self.eval(value_expr)?;
                let name = self.text(name_span);
                match &value {
                    Value::Object(o) => o.get(name).cloned().ok_or_else(|| {
                        EvalError::new(name_span, format!("field {name:?} does not exist"))
                    }),
                    other => Err(EvalError::new(
                        expr.span,
                        format!(
                            "{} cannot access field {name:?} on value of type {}",
                            self.text(value_expr.span),
                            other.value_type()
                        ),
                    )),
                }
            }
            ExprKind::Index(value, index) => {
                let (value, index) = (file.expr(value), file.expr(index));
                let container = self.eval(value)?;
                let key = self.eval(index)?;
                self.index(&container, value, &key, index)
            }
            ExprKind::Call(call) => {
                let (func, args) = (file.expr(call.func), file.exprs(call.args));
                let callee = self.eval(func)?;
                let Value::Function(f) = callee else {
                    return Err(EvalError::new(
                        func.span,
                        format!(
                            "{} {}",
                            self.text(func.span),
                            ops::type_error(crate::ValueType::Function, callee.value_type())
                        ),
                    ));
                };
                let values = self.eval_all(args)?;
                f.call(&values).map_err(|e| {
                    let (span, message) =
                        crate::stdlib::call_error_diagnostic(&e, func, args, file);
                    EvalError::new(span, message)
                })
            }
            ExprKind::Unary(op, operand) => {
                let operand = file.expr(operand);
                let v = self.eval(operand)?;
                ops::unary(op, &v).map_err(|m| {
                    EvalError::new(operand.span, format!("{} {m}", self.text(operand.span)))
                })
            }
            ExprKind::Binary(op, lhs, rhs) => {
                // River evaluates (and type-checks) both operands of && and || too.
                let (lhs, rhs) = (file.expr(lhs), file.expr(rhs));
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                ops::binary(op, &l, &r).map_err(|e| match e {
                    OpError::Operand { side, message } => {
                        let operand = if side == Side::Left { lhs } else { rhs };
                        EvalError::new(
                            operand.span,
                            format!("{} {message}", self.text(operand.span)),
                        )
                    }
                    OpError::DivideByZero => EvalError::new(expr.span, "divide by zero"),
                })
            }
            ExprKind::Paren(inner) => self.eval(file.expr(inner)),
        }
    }

    /// Evaluates each of `exprs`, stopping at the first error.
    fn eval_all(&self, exprs: &[Expr]) -> Result<Vec<Value>, EvalError> {
        // Sized up front: collecting a `Result` iterator cannot know the length and grows by reallocating.
        let mut values = Vec::with_capacity(exprs.len());
        for e in exprs {
            values.push(self.eval(e)?);
        }
        Ok(values)
    }

    fn literal(&self, kind: LitKind, span: Span) -> Result<Value, EvalError> {
        let text = self.text(span);
        Ok(match kind {
            LitKind::Number => Value::Number(
                literal::parse_number(text).map_err(|e| EvalError::new(span, e.message))?,
            ),
            LitKind::Float => Value::float(
                literal::parse_float(text).map_err(|e| EvalError::new(span, e.message))?,
            ),
            LitKind::String | LitKind::RawString => {
                Value::string(literal::unquote(text).map_err(|e| EvalError::new(span, e.message))?)
            }
            LitKind::True => Value::Bool(true),
            LitKind::False => Value::Bool(false),
            LitKind::Null => Value::Null,
        })
    }

    fn index(
        &self,
        container: &Value,
        container_expr: &Expr,
        key: &Value,
        key_expr: &Expr,
    ) -> Result<Value, EvalError> {
        let type_error = |expected| {
            EvalError::new(
                key_expr.span,
                format!(
                    "{} {}",
                    self.text(key_expr.span),
                    ops::type_error(expected, key.value_type())
                ),
            )
        };
        match container {
            Value::Array(items) => {
                let Value::Number(n) = key else {
                    return Err(type_error(crate::ValueType::Number));
                };
                let i = match *n {
                    crate::Number::Int(i) => i,
                    crate::Number::Uint(u) => i64::try_from(u).unwrap_or(i64::MAX),
                    crate::Number::Float(f) => f as i64,
                };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        EvalError::new(
                            key_expr.span,
                            format!(
                                "{} index {i} is out of range of array with length {}",
                                self.text(key_expr.span),
                                items.len()
                            ),
                        )
                    })
            }
            Value::Object(fields) => {
                let Value::String(k) = key else {
                    return Err(type_error(crate::ValueType::String));
                };
                Ok(fields.get(k.as_ref()).cloned().unwrap_or(Value::Null))
            }
            other => Err(EvalError::new(
                container_expr.span,
                format!(
                    "{} expected object or array, got {}",
                    self.text(container_expr.span),
                    other.value_type()
                ),
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ast::Stmt;

    /// Evaluates `expr` through the real parser and evaluator, in `scope`.
    pub(crate) fn eval_str(expr: &str, scope: &Scope) -> Result<Value, EvalError> {
        let src = format!("x = {expr}");
        let (file, diags) = crate::parse(&src);
        assert!(diags.is_empty(), "{expr}: {diags:?}");
        let Some(Stmt::Attribute(a)) = file.top_level().first() else {
            panic!("{expr}: no attribute")
        };
        eval_expr(&a.value, &file, scope).map_err(|e| EvalError {
            span: Span::new(e.span.start - 4, e.span.end - 4),
            message: e.message,
        })
    }

    /// [`eval_str`] with errors as `offset: message` (offsets into `expr`).
    fn eval_in(expr: &str, scope: &Scope) -> Result<Value, String> {
        eval_str(expr, scope).map_err(|e| format!("{}: {}", e.span.start, e.message))
    }

    fn eval(expr: &str) -> Result<Value, String> {
        let mut scope = Scope::new();
        let mut inner = Object::new();
        inner.insert(
            "list".into(),
            Value::array(vec![Value::int(1), Value::string("two")]),
        );
        scope.insert("obj", Value::object(inner));
        eval_in(expr, &scope)
    }

    #[test]
    fn literals_and_collections() {
        assert_eq!(eval("010"), Ok(Value::int(8)));
        assert_eq!(eval("\"a\\tb\""), Ok(Value::string("a\tb")));
        assert_eq!(eval("`a\\tb`"), Ok(Value::string("a\\tb")));
        assert_eq!(
            eval("[1, true, null]"),
            Ok(Value::array(vec![
                Value::int(1),
                Value::Bool(true),
                Value::Null
            ]))
        );
        let mut o = Object::new();
        o.insert("a b".into(), Value::int(1));
        o.insert("c".into(), Value::float(2.5));
        assert_eq!(eval("{\"a b\" = 1, c = 2.5}"), Ok(Value::object(o)));
    }

    #[test]
    fn access_index_and_errors() {
        assert_eq!(eval("obj.list[1]"), Ok(Value::string("two")));
        assert_eq!(eval("obj[\"missing\"]"), Ok(Value::Null));
        assert_eq!(
            eval("obj.missing"),
            Err("4: field \"missing\" does not exist".into())
        );
        assert_eq!(
            eval("nope"),
            Err("0: identifier \"nope\" does not exist".into())
        );
        assert_eq!(
            eval("obj.list.x"),
            Err("0: obj.list cannot access field \"x\" on value of type array".into())
        );
        assert_eq!(
            eval("obj.list[5]"),
            Err("9: 5 index 5 is out of range of array with length 2".into())
        );
        assert_eq!(
            eval("obj.list[\"a\"]"),
            Err("9: \"a\" should be number, got string".into())
        );
        assert_eq!(
            eval("obj[1]"),
            Err("4: 1 should be string, got number".into())
        );
        assert_eq!(
            eval("1 + \"a\""),
            Err("4: \"a\" should be number, got string".into())
        );
        assert_eq!(eval("1 / 0"), Err("0: divide by zero".into()));
        assert_eq!(
            eval("\"a\"(1)"),
            Err("0: \"a\" should be function, got string".into())
        );
    }

    #[test]
    fn operators_and_precedence() {
        assert_eq!(eval("-2 ^ 2"), Ok(Value::int(4)));
        assert_eq!(eval("1 / 2 == 0"), Ok(Value::Bool(true)));
        assert_eq!(eval("(1 + 2) * 3"), Ok(Value::int(9)));
        assert_eq!(eval("[1, {a = 2}] == [1, {a = 2}]"), Ok(Value::Bool(true)));
    }

    #[test]
    fn child_scopes_shadow_parents() {
        let mut parent = Scope::new();
        parent.insert("a", Value::int(1));
        parent.insert("b", Value::int(2));
        let mut child = Scope::child_of(Arc::new(parent));
        child.insert("a", Value::int(10));
        assert_eq!(eval_in("a + b", &child), Ok(Value::int(12)));
    }

    #[test]
    fn resolved_expressions_are_used_by_span_and_accessed_further() {
        // `x = ` comes first in the parsed source: `a.b` is at 4..7, the second `a.b` at 18..21.
        let exports = Value::object(Object::from_iter([("out".to_string(), Value::int(7))]));
        let scope = Scope::with_stdlib().with_resolved(vec![
            (Span::new(18, 21), Value::int(5)),
            (Span::new(4, 7), exports),
        ]);
        assert_eq!(eval_in("a.b.out + 1 + a.b", &scope), Ok(Value::int(13)));
        // Other spans are looked up as usual (`a.c` at 5..8): `a` is not a variable.
        let err = eval_in("(a.c)", &scope).unwrap_err();
        assert!(err.contains("\"a\" does not exist"), "{err}");
        let missing = eval_in("a.b.nope", &scope).unwrap_err();
        assert!(
            missing.contains("field \"nope\" does not exist"),
            "{missing}"
        );
        assert_eq!(
            eval_in("string.to_upper(\"x\")", &scope),
            Ok(Value::string("X"))
        );
        // Accesses on a resolved value that fail say so as on any other value.
        assert_eq!(
            eval_in("a.b.out.x", &scope),
            Err("0: a.b.out cannot access field \"x\" on value of type number".into())
        );
        // A resolved expression wins over a variable of the same name, at every depth.
        let mut a = Object::new();
        a.insert(
            "b".into(),
            Value::object(Object::from_iter([("out".to_string(), Value::int(1))])),
        );
        let mut shadowed = Scope::with_stdlib().with_resolved(vec![(
            Span::new(4, 7),
            Value::object(Object::from_iter([("out".to_string(), Value::int(7))])),
        )]);
        shadowed.insert("a", Value::object(a));
        assert_eq!(eval_in("a.b.out + a.b.out", &shadowed), Ok(Value::int(8)));
    }
}
