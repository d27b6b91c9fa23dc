//! Unary and binary operators on [`Value`]s, with the reference's typing rules.
//!
//! Numbers promote uint < int < float and wrap like Go's int64/uint64 arithmetic. Secrets combine with
//! strings into secrets (`"Bearer " + secret` is a secret); other capsule operations are errors.

use crate::ast::{BinaryOp, UnaryOp};
use crate::value::{Number, Secret, Value, ValueType};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Which operand of a binary operator an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The left operand.
    Left,
    /// The right operand.
    Right,
}

/// Why a binary operator failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// An operand has an unusable value. `message` continues the operand's source text, as in
    /// `true should be one of [number string capsule] for binop +, got bool`.
    Operand {
        /// The offending operand.
        side: Side,
        /// The message without the operand text, e.g. `should be number, got string`.
        message: String,
    },
    /// Division or modulo by zero (the right operand). Decision: an error, never a crash.
    DivideByZero,
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Operand { message, .. } => f.write_str(message),
            OpError::DivideByZero => f.write_str("divide by zero"),
        }
    }
}

/// The "should be X, got Y" message of a type mismatch.
pub fn type_error(expected: ValueType, got: ValueType) -> String {
    format!("should be {expected}, got {got}")
}

/// Applies a unary operator. The error message continues the operand's source text.
pub fn unary(op: UnaryOp, v: &Value) -> Result<Value, String> {
    match (op, v) {
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Not, _) => Err(type_error(ValueType::Bool, v.value_type())),
        // The reference negates uints as int64.
        (UnaryOp::Neg, Value::Number(Number::Int(i))) => Ok(Value::int(i.wrapping_neg())),
        (UnaryOp::Neg, Value::Number(Number::Uint(u))) => {
            Ok(Value::int((*u as i64).wrapping_neg()))
        }
        (UnaryOp::Neg, Value::Number(Number::Float(f))) => Ok(Value::float(-f)),
        (UnaryOp::Neg, _) => Err(type_error(ValueType::Number, v.value_type())),
    }
}

/// The operand types each operator accepts, printed like the reference's `[number string]`.
fn allowed_types(op: BinaryOp) -> &'static [ValueType] {
    use BinaryOp::*;
    match op {
        Or | And => &[ValueType::Bool],
        Add => &[ValueType::Number, ValueType::String, ValueType::Capsule],
        Sub | Mul | Div | Mod | Pow => &[ValueType::Number],
        Lt | LtEq | Gt | GtEq => &[ValueType::Number, ValueType::String],
        // Equality accepts every type and never reaches the check.
        Eq | NotEq => &[],
    }
}

fn allowed_message(op: BinaryOp, got: ValueType) -> String {
    let names: Vec<&str> = allowed_types(op).iter().map(|t| t.as_str()).collect();
    format!(
        "should be one of [{}] for binop {}, got {}",
        names.join(" "),
        op.as_str(),
        got
    )
}

/// A secret next to a string turns the string into a secret, so the result stays secret.
fn unwrap_secrets<'a>(l: &'a Value, r: &'a Value) -> (Cow<'a, Value>, Cow<'a, Value>) {
    match (l, r) {
        (Value::Secret(_), Value::String(s)) => {
            (Cow::Borrowed(l), Cow::Owned(Value::Secret(Secret::new(s))))
        }
        (Value::String(s), Value::Secret(_)) => {
            (Cow::Owned(Value::Secret(Secret::new(s))), Cow::Borrowed(r))
        }
        _ => (Cow::Borrowed(l), Cow::Borrowed(r)),
    }
}

/// Applies a binary operator. Both operands are already evaluated: River's `&&` and `||` do not
/// short-circuit.
pub fn binary(op: BinaryOp, lhs: &Value, rhs: &Value) -> Result<Value, OpError> {
    let (l, r) = unwrap_secrets(lhs, rhs);
    let (l, r) = (l.as_ref(), r.as_ref());
    match op {
        BinaryOp::Eq => return Ok(Value::Bool(values_equal(l, r))),
        BinaryOp::NotEq => return Ok(Value::Bool(!values_equal(l, r))),
        _ => {}
    }
    let (lt, rt) = (l.value_type(), r.value_type());
    if !allowed_types(op).contains(&lt) {
        return Err(OpError::Operand {
            side: Side::Left,
            message: allowed_message(op, lt),
        });
    }
    if !allowed_types(op).contains(&rt) {
        return Err(OpError::Operand {
            side: Side::Right,
            message: allowed_message(op, rt),
        });
    }
    if lt != rt {
        return Err(OpError::Operand {
            side: Side::Right,
            message: type_error(lt, rt),
        });
    }
    match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(if op == BinaryOp::Or {
            *a || *b
        } else {
            *a && *b
        })),
        (Value::String(a), Value::String(b)) => Ok(match op {
            BinaryOp::Add => {
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(a);
                s.push_str(b);
                Value::string(s)
            }
            _ => Value::Bool(compare(op, a.as_bytes().cmp(b.as_bytes()))),
        }),
        (Value::Number(a), Value::Number(b)) => number_op(op, *a, *b),
        (Value::Secret(a), Value::Secret(b)) => {
            let mut s = String::with_capacity(a.expose().len() + b.expose().len());
            s.push_str(a.expose());
            s.push_str(b.expose());
            Ok(Value::Secret(Secret::new(s)))
        }
        _ => Err(OpError::Operand {
            side: Side::Left,
            message: format!(
                "could not perform binop {} for unknown types lhs {lt} rhs {rt}",
                op.as_str()
            ),
        }),
    }
}

fn compare(op: BinaryOp, ord: Ordering) -> bool {
    match op {
        BinaryOp::Lt => ord == Ordering::Less,
        BinaryOp::LtEq => ord != Ordering::Greater,
        BinaryOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }
}

/// Two numbers converted to their common kind (uint < int < float), with Go's conversions.
enum Pair {
    Uint(u64, u64),
    Int(i64, i64),
    Float(f64, f64),
}

fn as_int(n: Number) -> i64 {
    match n {
        Number::Int(i) => i,
        Number::Uint(u) => u as i64,
        Number::Float(f) => f as i64,
    }
}

fn as_uint(n: Number) -> u64 {
    match n {
        Number::Int(i) => i as u64,
        Number::Uint(u) => u,
        Number::Float(f) => f as u64,
    }
}

fn fit(a: Number, b: Number) -> Pair {
    match (a, b) {
        (Number::Float(_), _) | (_, Number::Float(_)) => Pair::Float(a.as_f64(), b.as_f64()),
        (Number::Int(_), _) | (_, Number::Int(_)) => Pair::Int(as_int(a), as_int(b)),
        _ => Pair::Uint(as_uint(a), as_uint(b)),
    }
}

fn is_zero(n: Number) -> bool {
    match n {
        Number::Int(i) => i == 0,
        Number::Uint(u) => u == 0,
        Number::Float(f) => f == 0.0,
    }
}

/// `base^exp` with wrapping multiplication: the same result as the reference's repeated multiplication,
/// without its O(exp) loop.
fn wrapping_pow_u64(mut base: u64, mut exp: u64) -> u64 {
    let mut acc: u64 = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        exp >>= 1;
    }
    acc
}

fn number_op(op: BinaryOp, a: Number, b: Number) -> Result<Value, OpError> {
    use BinaryOp::*;
    if matches!(op, Div | Mod) && is_zero(b) {
        return Err(OpError::DivideByZero);
    }
    let pair = fit(a, b);
    let v = match op {
        Add => match pair {
            Pair::Uint(x, y) => Value::uint(x.wrapping_add(y)),
            Pair::Int(x, y) => Value::int(x.wrapping_add(y)),
            Pair::Float(x, y) => Value::float(x + y),
        },
        Sub => match pair {
            Pair::Uint(x, y) => Value::uint(x.wrapping_sub(y)),
            Pair::Int(x, y) => Value::int(x.wrapping_sub(y)),
            Pair::Float(x, y) => Value::float(x - y),
        },
        Mul => match pair {
            Pair::Uint(x, y) => Value::uint(x.wrapping_mul(y)),
            Pair::Int(x, y) => Value::int(x.wrapping_mul(y)),
            Pair::Float(x, y) => Value::float(x * y),
        },
        Div => match pair {
            Pair::Uint(x, y) => Value::uint(x.checked_div(y).ok_or(OpError::DivideByZero)?),
            Pair::Int(_, 0) => return Err(OpError::DivideByZero),
            Pair::Int(x, y) => Value::int(x.wrapping_div(y)),
            Pair::Float(x, y) => Value::float(x / y),
        },
        Mod => match pair {
            Pair::Uint(x, y) => Value::uint(x.checked_rem(y).ok_or(OpError::DivideByZero)?),
            Pair::Int(_, 0) => return Err(OpError::DivideByZero),
            Pair::Int(x, y) => Value::int(x.wrapping_rem(y)),
            // Go's math.Mod and Rust's % on floats both truncate (fmod).
            Pair::Float(x, y) => Value::float(x % y),
        },
        Pow => match pair {
            Pair::Uint(x, y) => Value::uint(wrapping_pow_u64(x, y)),
            // Decision: a negative integer exponent gives a float (2^-1 is 0.5; the reference says 2).
            Pair::Int(x, y) if y < 0 => Value::float((x as f64).powf(y as f64)),
            Pair::Int(x, y) => Value::int(wrapping_pow_u64(x as u64, y as u64) as i64),
            Pair::Float(x, y) => Value::float(x.powf(y)),
        },
        Lt | LtEq | Gt | GtEq => {
            let ord = match pair {
                Pair::Uint(x, y) => Some(x.cmp(&y)),
                Pair::Int(x, y) => Some(x.cmp(&y)),
                Pair::Float(x, y) => x.partial_cmp(&y),
            };
            // NaN compares false with everything, as in Go.
            Value::Bool(ord.is_some_and(|o| compare(op, o)))
        }
        Or | And | Eq | NotEq => unreachable_number_op(op)?,
    };
    Ok(v)
}

/// Boolean and equality operators never reach number arithmetic; answer with a type error rather than panic.
fn unreachable_number_op(op: BinaryOp) -> Result<Value, OpError> {
    Err(OpError::Operand {
        side: Side::Left,
        message: allowed_message(op, ValueType::Number),
    })
}

fn numbers_equal(a: Number, b: Number) -> bool {
    match fit(a, b) {
        Pair::Uint(x, y) => x == y,
        Pair::Int(x, y) => x == y,
        Pair::Float(x, y) => x == y,
    }
}

/// River's `==`: values of different types are unequal, numbers compare across kinds (`3 == 3.0`),
/// arrays and objects compare deeply, functions are never equal (not even to themselves).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    equal(a, b, false)
}

fn equal(a: &Value, b: &Value, same_function_equal: bool) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => numbers_equal(*x, *y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            std::sync::Arc::ptr_eq(x, y)
                || (x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|(p, q)| equal(p, q, same_function_equal)))
        }
        (Value::Object(x), Value::Object(y)) => {
            std::sync::Arc::ptr_eq(x, y)
                || (x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w, same_function_equal))))
        }
        (Value::Function(x), Value::Function(y)) => same_function_equal && x.ptr_eq(y),
        (Value::Capsule(x), Value::Capsule(y)) => x == y,
        (Value::Secret(x), Value::Secret(y)) => x == y,
        _ => false,
    }
}

/// Structural equality as River's `==`, except that a function equals itself (so a value holding a function
/// compares equal to a copy of itself, which change detection needs).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        equal(self, other, true)
    }
}

/// Numeric equality across kinds, as River's `==` (`Int(3) == Float(3.0)`).
impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        numbers_equal(*self, *other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Function, Object};
    use BinaryOp::*;

    fn bin(op: BinaryOp, l: Value, r: Value) -> Value {
        binary(op, &l, &r).unwrap_or_else(|e| panic!("{op:?} {l:?} {r:?}: {e}"))
    }

    fn num(v: &Value) -> String {
        match v {
            Value::Number(Number::Int(i)) => format!("int {i}"),
            Value::Number(Number::Uint(u)) => format!("uint {u}"),
            Value::Number(Number::Float(f)) => format!("float {f}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn integer_arithmetic_keeps_kinds() {
        assert_eq!(num(&bin(Add, Value::int(3), Value::int(5))), "int 8");
        assert_eq!(num(&bin(Sub, Value::int(3), Value::int(5))), "int -2");
        assert_eq!(num(&bin(Div, Value::int(1), Value::int(2))), "int 0");
        assert_eq!(num(&bin(Div, Value::int(-7), Value::int(2))), "int -3");
        assert_eq!(num(&bin(Mod, Value::int(-7), Value::int(2))), "int -1");
        assert_eq!(num(&bin(Pow, Value::int(3), Value::int(5))), "int 243");
        assert_eq!(num(&bin(Pow, Value::int(0), Value::int(0))), "int 1");
        assert_eq!(num(&bin(Add, Value::uint(1), Value::uint(2))), "uint 3");
        assert_eq!(num(&bin(Add, Value::uint(1), Value::int(2))), "int 3");
        assert_eq!(
            num(&bin(Add, Value::int(1), Value::float(0.5))),
            "float 1.5"
        );
        assert_eq!(
            num(&bin(Div, Value::float(3.0), Value::float(5.0))),
            "float 0.6"
        );
        assert_eq!(
            num(&bin(Mod, Value::float(7.5), Value::int(2))),
            "float 1.5"
        );
        assert_eq!(
            num(&bin(Mod, Value::float(-7.5), Value::int(2))),
            "float -1.5"
        );
    }

    #[test]
    fn overflow_wraps_like_go() {
        assert_eq!(
            num(&bin(Add, Value::int(i64::MAX), Value::int(1))),
            format!("int {}", i64::MIN)
        );
        assert_eq!(
            num(&bin(Sub, Value::uint(0), Value::uint(1))),
            format!("uint {}", u64::MAX)
        );
        assert_eq!(
            num(&bin(Div, Value::int(i64::MIN), Value::int(-1))),
            format!("int {}", i64::MIN)
        );
        assert_eq!(
            num(&bin(Mod, Value::int(i64::MIN), Value::int(-1))),
            "int 0"
        );
        // 2^64 wraps to 0; 3^64 wraps to the same value as 64 repeated multiplications.
        assert_eq!(num(&bin(Pow, Value::int(2), Value::int(64))), "int 0");
        let mut expect: u64 = 1;
        for _ in 0..64 {
            expect = expect.wrapping_mul(3);
        }
        assert_eq!(
            num(&bin(Pow, Value::int(3), Value::int(64))),
            format!("int {}", expect as i64)
        );
        assert_eq!(
            num(&unary(UnaryOp::Neg, &Value::int(i64::MIN)).unwrap()),
            format!("int {}", i64::MIN)
        );
        // A huge exponent must not loop for ages.
        assert_eq!(
            num(&bin(Pow, Value::int(-1), Value::int(i64::MAX))),
            "int -1"
        );
    }

    #[test]
    fn decisions_divide_by_zero_and_negative_exponent() {
        for (l, r) in [
            (Value::int(1), Value::int(0)),
            (Value::uint(1), Value::uint(0)),
            (Value::float(1.0), Value::float(0.0)),
        ] {
            assert_eq!(binary(Div, &l, &r), Err(OpError::DivideByZero));
            assert_eq!(binary(Mod, &l, &r), Err(OpError::DivideByZero));
        }
        assert_eq!(OpError::DivideByZero.to_string(), "divide by zero");
        assert_eq!(num(&bin(Pow, Value::int(2), Value::int(-1))), "float 0.5");
        assert_eq!(
            num(&bin(Pow, Value::float(42.0), Value::int(-2))),
            format!("float {}", 1.0 / (42.0f64 * 42.0))
        );
    }

    #[test]
    fn comparisons() {
        assert!(matches!(
            bin(Lt, Value::int(3), Value::int(5)),
            Value::Bool(true)
        ));
        assert!(matches!(
            bin(GtEq, Value::int(3), Value::float(3.0)),
            Value::Bool(true)
        ));
        assert!(matches!(
            bin(Gt, Value::string("b"), Value::string("a")),
            Value::Bool(true)
        ));
        // Bytewise: "Z" (0x5a) < "a" (0x61), "é" sorts after "z".
        assert!(matches!(
            bin(Lt, Value::string("Z"), Value::string("a")),
            Value::Bool(true)
        ));
        assert!(matches!(
            bin(Lt, Value::string("z"), Value::string("é")),
            Value::Bool(true)
        ));
        assert!(matches!(
            bin(Lt, Value::float(f64::NAN), Value::int(1)),
            Value::Bool(false)
        ));
        assert!(matches!(
            bin(GtEq, Value::float(f64::NAN), Value::int(1)),
            Value::Bool(false)
        ));
    }

    #[test]
    fn equality_is_deep_and_typed() {
        assert!(values_equal(&Value::int(3), &Value::float(3.0)));
        assert!(values_equal(&Value::uint(3), &Value::int(3)));
        assert!(!values_equal(&Value::int(3), &Value::string("3")));
        assert!(!values_equal(&Value::Null, &Value::Bool(false)));
        assert!(values_equal(&Value::Null, &Value::Null));
        let arr = |v: Vec<Value>| Value::array(v);
        assert!(values_equal(
            &arr(vec![Value::int(1), Value::string("a")]),
            &arr(vec![Value::float(1.0), Value::string("a")])
        ));
        assert!(!values_equal(
            &arr(vec![Value::int(1)]),
            &arr(vec![Value::int(1), Value::int(2)])
        ));
        let obj = |pairs: &[(&str, Value)]| {
            let mut o = Object::new();
            for (k, v) in pairs {
                o.insert((*k).to_string(), v.clone());
            }
            Value::object(o)
        };
        assert!(values_equal(
            &obj(&[("a", Value::int(1)), ("b", Value::Null)]),
            &obj(&[("b", Value::Null), ("a", Value::int(1))])
        ));
        assert!(!values_equal(
            &obj(&[("a", Value::int(1))]),
            &obj(&[("b", Value::int(1))])
        ));
        let f = Value::Function(Function::new("f", |_| Ok(Value::Null)));
        assert!(!values_equal(&f, &f.clone()));
        assert_eq!(f, f.clone());
        assert!(matches!(
            bin(NotEq, Value::int(1), Value::string("1")),
            Value::Bool(true)
        ));
    }

    #[test]
    fn type_errors_name_the_operand() {
        let e = binary(Add, &Value::Bool(true), &Value::int(1)).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Left,
                message: "should be one of [number string capsule] for binop +, got bool".into()
            }
        );
        let e = binary(Add, &Value::int(1), &Value::string("a")).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Right,
                message: "should be number, got string".into()
            }
        );
        let e = binary(Or, &Value::Bool(true), &Value::int(1)).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Right,
                message: "should be one of [bool] for binop ||, got number".into()
            }
        );
        let e = binary(Lt, &Value::Null, &Value::int(1)).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Left,
                message: "should be one of [number string] for binop <, got null".into()
            }
        );
        assert_eq!(
            unary(UnaryOp::Not, &Value::int(1)),
            Err("should be bool, got number".into())
        );
        assert_eq!(
            unary(UnaryOp::Neg, &Value::string("x")),
            Err("should be number, got string".into())
        );
        assert!(matches!(
            unary(UnaryOp::Neg, &Value::uint(5)),
            Ok(Value::Number(Number::Int(-5)))
        ));
    }

    #[test]
    fn secrets_absorb_strings() {
        let s = Value::secret("tok");
        match bin(Add, Value::string("Bearer "), s.clone()) {
            Value::Secret(x) => assert_eq!(x.expose(), "Bearer tok"),
            other => panic!("{other:?}"),
        }
        match bin(Add, s.clone(), s.clone()) {
            Value::Secret(x) => assert_eq!(x.expose(), "toktok"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            bin(Eq, s.clone(), Value::string("tok")),
            Value::Bool(true)
        ));
        assert!(matches!(
            bin(Eq, s.clone(), Value::string("other")),
            Value::Bool(false)
        ));
        let e = binary(Add, &s, &Value::int(1)).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Right,
                message: "should be capsule, got number".into()
            }
        );
        let e = binary(Lt, &s, &Value::string("a")).unwrap_err();
        assert_eq!(
            e,
            OpError::Operand {
                side: Side::Left,
                message: "should be one of [number string] for binop <, got capsule".into()
            }
        );
    }
}
