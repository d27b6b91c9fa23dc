//! Runtime values of River expressions.
//!
//! Values are cheap to clone: strings, arrays and objects are reference-counted, because component exports
//! (target lists, receivers) are copied into every dependant's scope.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

pub use crate::object::Object;

/// A River value.
#[derive(Clone, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// int64, uint64 or float64.
    Number(Number),
    /// UTF-8 text.
    String(Arc<str>),
    /// An ordered list.
    Array(Arc<Vec<Value>>),
    /// Insertion-ordered fields.
    Object(Arc<Object>),
    /// A callable (standard library or embedder-provided).
    Function(Function),
    /// An opaque Rust value, such as a receiver exported by a component.
    Capsule(Capsule),
    /// A sensitive string; prints as `(secret)` and never converts back to a string implicitly.
    Secret(Secret),
}

/// The type of a value, as River prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `null`
    Null,
    /// `number`
    Number,
    /// `string`
    String,
    /// `bool`
    Bool,
    /// `array`
    Array,
    /// `object`
    Object,
    /// `function`
    Function,
    /// `capsule` (secrets are capsules, as in the reference)
    Capsule,
}

impl ValueType {
    /// The name River uses in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Null => "null",
            ValueType::Number => "number",
            ValueType::String => "string",
            ValueType::Bool => "bool",
            ValueType::Array => "array",
            ValueType::Object => "object",
            ValueType::Function => "function",
            ValueType::Capsule => "capsule",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Bool(_) => ValueType::Bool,
            Value::Number(_) => ValueType::Number,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::Object(_) => ValueType::Object,
            Value::Function(_) => ValueType::Function,
            Value::Capsule(_) | Value::Secret(_) => ValueType::Capsule,
        }
    }

    /// A string value.
    pub fn string(s: impl AsRef<str>) -> Value {
        Value::String(Arc::from(s.as_ref()))
    }

    /// An array value.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(items))
    }

    /// An object value.
    pub fn object(fields: Object) -> Value {
        Value::Object(Arc::new(fields))
    }

    /// A secret value.
    pub fn secret(s: impl AsRef<str>) -> Value {
        Value::Secret(Secret::new(s))
    }

    /// An int64 number.
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }

    /// A uint64 number.
    pub fn uint(u: u64) -> Value {
        Value::Number(Number::Uint(u))
    }

    /// A float64 number.
    pub fn float(f: f64) -> Value {
        Value::Number(Number::Float(f))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A River number: the reference keeps int64, uint64 and float64 apart and promotes uint < int < float.
#[derive(Clone, Copy, Debug)]
pub enum Number {
    /// int64
    Int(i64),
    /// uint64
    Uint(u64),
    /// float64
    Float(f64),
}

impl Number {
    /// The value as f64 (may lose precision).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Uint(u) => u as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Uint(u) => write!(f, "{u}"),
            Number::Float(x) => crate::value::fmt_float(f, x),
        }
    }
}

/// Formats a float the way Go's `strconv.FormatFloat(x, 'f', -1, 64)` does for typical values:
/// shortest representation that round-trips, no exponent.
pub(crate) fn fmt_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("NaN")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        write!(f, "{x}")
    }
}

/// A sensitive string. Its `Debug` and `Display` print `(secret)`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a sensitive string.
    pub fn new(s: impl AsRef<str>) -> Self {
        Secret(Arc::from(s.as_ref()))
    }

    /// The sensitive text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret)")
    }
}

pub use crate::stdlib::{ArgProblem, CallError};

/// The result of calling a [`Function`].
pub type CallResult = Result<Value, CallError>;

impl From<String> for CallError {
    fn from(m: String) -> Self {
        CallError::Call(m)
    }
}

type FunctionImpl = dyn Fn(&[Value]) -> CallResult + Send + Sync;

/// A callable value.
#[derive(Clone)]
pub struct Function {
    name: Arc<str>,
    call: Arc<FunctionImpl>,
}

impl Function {
    /// A function called `name` (used in messages) implemented by `call`.
    pub fn new(
        name: impl AsRef<str>,
        call: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        Self::with_call_errors(name, move |args: &[Value]| {
            call(args).map_err(CallError::Call)
        })
    }

    /// A function whose errors say which argument was at fault.
    pub fn with_call_errors(
        name: impl AsRef<str>,
        call: impl Fn(&[Value]) -> CallResult + Send + Sync + 'static,
    ) -> Self {
        Function {
            name: Arc::from(name.as_ref()),
            call: Arc::new(call),
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call it.
    pub fn call(&self, args: &[Value]) -> CallResult {
        (self.call)(args)
    }

    /// Whether two handles refer to the same function.
    pub fn ptr_eq(&self, other: &Function) -> bool {
        Arc::ptr_eq(&self.call, &other.call)
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "function({})", self.name)
    }
}

/// What a Rust type must provide to travel through River as a capsule.
pub trait CapsuleValue: Any + Send + Sync + fmt::Debug {
    /// A short description shown in the UI and in messages, e.g. `pyroscope.Appendable`.
    fn type_name(&self) -> &str;

    /// Equality used to decide whether arguments changed. The default compares identity.
    fn capsule_eq(&self, other: &dyn CapsuleValue) -> bool {
        std::ptr::eq(
            self as *const Self as *const u8,
            other as *const dyn CapsuleValue as *const u8,
        )
    }

    /// Upcast for downcasting.
    fn as_any(&self) -> &dyn Any;
}

/// A shared opaque value.
#[derive(Clone)]
pub struct Capsule(pub Arc<dyn CapsuleValue>);

impl Capsule {
    /// Wrap a value.
    pub fn new<T: CapsuleValue>(v: T) -> Self {
        Capsule(Arc::new(v))
    }

    /// Borrow the inner value as `T`, if it is one.
    pub fn downcast_ref<T: CapsuleValue>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl fmt::Debug for Capsule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "capsule({:?})", self.0.type_name())
    }
}

impl PartialEq for Capsule {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.capsule_eq(other.0.as_ref())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(a) => f.debug_list().entries(a.iter()).finish(),
            Value::Object(o) => f.debug_map().entries(o.iter()).finish(),
            Value::Function(func) => write!(f, "{func:?}"),
            Value::Capsule(c) => write!(f, "{c:?}"),
            Value::Secret(s) => write!(f, "{s:?}"),
        }
    }
}
