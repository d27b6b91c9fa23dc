//! Decoding evaluated block bodies (and single values) into typed Rust structs through serde.
//!
//! A component author describes a block's arguments with ordinary `#[derive(Deserialize)]` structs. Attribute
//! names are the field names (use `#[serde(rename = "...")]` for anything else). Because serde does not tell a
//! deserializer which fields are blocks, nested blocks are marked by their *type*:
//!
//! | River                                   | Rust field type                                              |
//! |-----------------------------------------|--------------------------------------------------------------|
//! | required attribute `a = ...`            | `a: T`                                                       |
//! | optional attribute                      | `a: Option<T>` or `#[serde(default)] a: T`                   |
//! | required block `b { ... }`              | `b: Block<B>`                                                |
//! | optional block                          | `b: Option<Block<B>>`                                        |
//! | repeated block `rule { } rule { }`      | `#[serde(default)] rule: Vec<Block<R>>`                      |
//! | labelled block `endpoint "x" { }`       | `LabeledBlock<E>` (label required), or a `#[serde(rename = "$label")]` field in `E` (`String`: required, `Option<String>`: optional) |
//! | dotted block name `profile.memory { }`  | `#[serde(rename = "profile.memory")] memory: Option<Block<P>>` |
//! | "enum" blocks `stage.json { } stage.regex { }` in source order | `#[serde(default)] stage: Vec<Stage>` where `enum Stage { #[serde(rename = "json")] Json(Block<J>), ... }` |
//!
//! Defaults: `#[serde(default)]` on the struct (with a `Default` impl) fills every field not written in the
//! config before decoding; `#[serde(default = "path")]` works per field. Validation runs after decoding:
//! implement [`Validate`] (block types used in [`Block`]/[`LabeledBlock`] must implement it; the default method
//! accepts everything) and its error is reported on the block's header.
//!
//! ```
//! use river::decode::{decode_block_body_validated, Block, LabeledBlock, Validate};
//! use river::eval::Scope;
//! use river::types::Duration;
//! use serde::Deserialize;
//! use std::collections::HashMap;
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(default)]
//! struct Arguments {
//!     targets: Vec<HashMap<String, String>>,
//!     scrape_interval: Duration,
//!     #[serde(rename = "profile.custom")]
//!     custom: Vec<LabeledBlock<Custom>>,
//!     clustering: Option<Block<Clustering>>,
//!     stage: Vec<Stage>,
//! }
//!
//! impl Default for Arguments {
//!     fn default() -> Self {
//!         Arguments {
//!             targets: Vec::new(),
//!             scrape_interval: Duration::from_secs(15),
//!             custom: Vec::new(),
//!             clustering: None,
//!             stage: Vec::new(),
//!         }
//!     }
//! }
//!
//! impl Validate for Arguments {
//!     fn validate(&self) -> Result<(), String> {
//!         if self.scrape_interval.as_nanos() <= 0 {
//!             return Err("scrape_interval must be greater than 0".into());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Debug, Deserialize)]
//! struct Custom {
//!     path: String,
//!     #[serde(default)]
//!     enabled: bool,
//! }
//! impl Validate for Custom {}
//!
//! #[derive(Debug, Deserialize)]
//! struct Clustering {
//!     enabled: bool,
//! }
//! impl Validate for Clustering {}
//!
//! /// `stage.json { ... }` / `stage.regex { ... }` blocks, kept in source order.
//! #[derive(Debug, Deserialize)]
//! enum Stage {
//!     #[serde(rename = "json")]
//!     Json(Block<HashMap<String, String>>),
//!     #[serde(rename = "regex")]
//!     Regex { expression: String },
//! }
//!
//! let src = r#"
//! pyroscope.scrape "default" {
//!     targets         = [{"__address__" = "localhost:4100"}]
//!     scrape_interval = "1m"
//!     profile.custom "fgprof" {
//!         path    = "/debug/fgprof"
//!         enabled = true
//!     }
//!     stage.regex { expression = ".*" }
//!     stage.json { source = "msg" }
//! }
//! "#;
//! let (file, diags) = river::parse(src);
//! assert!(diags.is_empty());
//! let river::ast::Stmt::Block(block) = &file.top_level()[0] else { unreachable!() };
//! let args: Arguments = decode_block_body_validated(block, &file, &Scope::with_stdlib()).unwrap();
//! assert_eq!(args.scrape_interval.to_string(), "1m0s");
//! assert_eq!(args.custom[0].label, "fgprof");
//! assert!(args.custom[0].body.enabled);
//! assert!(matches!(args.stage[0], Stage::Regex { .. }));
//! assert!(args.clustering.is_none());
//!
//! // Errors come back as positioned diagnostics with the reference texts.
//! let bad = "x {\n  scrape_interval = 5\n  bogus = 1\n}\n";
//! let (file, _) = river::parse(bad);
//! let river::ast::Stmt::Block(block) = &file.top_level()[0] else { unreachable!() };
//! let errs = decode_block_body_validated::<Arguments>(block, &file, &Scope::with_stdlib()).unwrap_err();
//! let messages: Vec<_> = errs.iter().map(|d| d.message.as_str()).collect();
//! assert_eq!(messages, [r#"5 time: missing unit in duration "5""#, r#"unrecognized attribute name "bogus""#]);
//! ```
//!
//! Errors carry the reference implementation's messages and always a position: structural problems
//! (`unrecognized attribute name "zz"`, `block "x" may only be specified once`, ...) point at the statement,
//! missing required attributes/blocks at the enclosing block's header, and type errors at the innermost literal
//! that is wrong, printed with the expression's source text and the path into the value
//! (`key_value.object.field1[2] should be number, got string`). Independent errors are all reported.
//!
//! `#[serde(flatten)]` is not supported in argument structs (serde buffers flattened fields, which loses the
//! block/attribute distinction); nest a block instead.

use crate::ast::{self, Body, Expr, ExprKind, File, Stmt};
use crate::diag::{Diagnostic, Diagnostics};
use crate::eval::{eval_expr, EvalError, Scope};
use crate::span::Span;
use crate::value::{Capsule, Function, Number, Value, ValueType};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::Deserialize;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// The field name that receives a block's label: `#[serde(rename = "$label")] label: String` (required label)
/// or `Option<String>` (optional label).
pub const LABEL_FIELD: &str = "$label";

/// serde newtype name marking a single block ([`Block`]).
pub(crate) const BLOCK_MAGIC: &str = "$river::Block";
/// serde newtype name marking a labelled block ([`LabeledBlock`]).
pub(crate) const LABELED_MAGIC: &str = "$river::LabeledBlock";
/// serde newtype name for values that cannot travel through serde's data model (capsules, secrets, functions,
/// raw [`Value`]s): the value itself is passed through a thread-local slot.
pub(crate) const RAW_MAGIC: &str = "$river::Raw";

/// Generates Deserializer methods that reject the request with `self.not_a_value()`.
macro_rules! reject_methods {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
                Err(self.not_a_value())
            }
        )*
    };
}

macro_rules! reject_block_methods {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
                Err(self.content(false).not_a_value())
            }
        )*
    };
}

macro_rules! entry_value_methods {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.value_or_reject()?.$method(visitor)
            }
        )*
    };
}

macro_rules! attr_methods {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.value().$method(visitor).map_err(|e| self.convert(e))
            }
        )*
    };
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let v = self.int(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX))?;
            // In range by construction.
            visitor.$visit(v as $ty)
        }
    };
}

thread_local! {
    /// The value handed from a River (de)serializer to a type's (de)serialize impl (see [`RAW_MAGIC`]).
    static STASH: Cell<Option<Value>> = const { Cell::new(None) };
    /// Set while a [`Block`] asks for a block, so that serde's "missing field" error names a block.
    static EXPECT_BLOCK: Cell<bool> = const { Cell::new(false) };
}

/// Puts a value in the thread-local hand-over slot.
#[inline]
pub(crate) fn stash_put(v: Value) {
    // A `Cell` rather than a `RefCell`: the slot is only ever swapped, never borrowed.
    drop(STASH.replace(Some(v)));
}

/// Takes the value from the thread-local hand-over slot.
#[inline]
pub(crate) fn stash_take() -> Option<Value> {
    STASH.take()
}

/// Calls `f` with [`EXPECT_BLOCK`] set, restoring it afterwards.
fn expecting_block<R>(f: impl FnOnce() -> R) -> R {
    let prev = EXPECT_BLOCK.with(|c| c.replace(true));
    let r = f();
    EXPECT_BLOCK.with(|c| c.set(prev));
    r
}

/// Called by River deserializers that really have a block, so nested "missing field" errors are not blocks.
fn clear_expect_block() {
    EXPECT_BLOCK.with(|c| c.set(false));
}

// ---------------------------------------------------------------------------------------------------------
// Public wrapper types and hooks
// ---------------------------------------------------------------------------------------------------------

/// Checks decoded arguments; runs after decoding (and after defaults were applied).
///
/// Types used inside [`Block`] and [`LabeledBlock`] must implement it; `impl Validate for MyBlock {}` accepts
/// everything. The error text is reported on the block's header.
pub trait Validate {
    /// Returns a message saying what is wrong, if anything.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

impl<K, V, S> Validate for std::collections::HashMap<K, V, S> {}
impl<K, V> Validate for std::collections::BTreeMap<K, V> {}
impl<K, V, S> Validate for indexmap::IndexMap<K, V, S> {}
impl Validate for Value {}
impl Validate for () {}

/// A nested block without a label: `name { ... }`. Use `Option<Block<T>>` for an optional block and
/// `Vec<Block<T>>` (with `#[serde(default)]`) for a repeated one.
///
/// A label is rejected (`block "x" does not support specifying labels`) unless `T` has a [`LABEL_FIELD`] field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Block<T>(pub T);

impl<T> Block<T> {
    /// The decoded body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Block<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Block<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<'de, T: Deserialize<'de> + Validate> Deserialize<'de> for Block<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Validate> Visitor<'de> for V<T> {
            type Value = Block<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a block")
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Block<T>, D::Error> {
                let inner = T::deserialize(d)?;
                inner.validate().map_err(de::Error::custom)?;
                Ok(Block(inner))
            }
        }
        expecting_block(|| d.deserialize_newtype_struct(BLOCK_MAGIC, V(std::marker::PhantomData)))
    }
}

/// A nested block that must have a non-empty label: `name "label" { ... }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabeledBlock<T> {
    /// The label, without quotes.
    pub label: String,
    /// The decoded body.
    pub body: T,
}

impl<T> Deref for LabeledBlock<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.body
    }
}

impl<'de, T: Deserialize<'de> + Validate> Deserialize<'de> for LabeledBlock<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Validate> Visitor<'de> for V<T> {
            type Value = LabeledBlock<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a labelled block")
            }
            // River deserializers hand over (label, body) as a sequence.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LabeledBlock<T>, A::Error> {
                let label: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &"label and body"))?;
                let body: T = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &"label and body"))?;
                body.validate().map_err(de::Error::custom)?;
                Ok(LabeledBlock { label, body })
            }
            // Other formats: a (label, body) pair.
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<LabeledBlock<T>, D::Error> {
                let (label, body) = <(String, T)>::deserialize(d)?;
                body.validate().map_err(de::Error::custom)?;
                Ok(LabeledBlock { label, body })
            }
        }
        expecting_block(|| d.deserialize_newtype_struct(LABELED_MAGIC, V(std::marker::PhantomData)))
    }
}

impl<'de> Deserialize<'de> for Capsule {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Capsule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a capsule")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Capsule, E> {
                match stash_take() {
                    Some(Value::Capsule(c)) => Ok(c),
                    Some(v @ Value::Secret(_)) => {
                        Err(E::custom(format!("expected capsule, got {}", describe(&v))))
                    }
                    Some(v) => Err(E::custom(type_message(ValueType::Capsule, &v))),
                    None => Err(E::custom("capsules can only be decoded from River values")),
                }
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                _d: D,
            ) -> Result<Capsule, D::Error> {
                Err(de::Error::custom(
                    "capsules can only be decoded from River values",
                ))
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V)
    }
}

impl<'de> Deserialize<'de> for Function {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Function;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a function")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Function, E> {
                match stash_take() {
                    Some(Value::Function(func)) => Ok(func),
                    Some(v) => Err(E::custom(type_message(ValueType::Function, &v))),
                    None => Err(E::custom("functions can only be decoded from River values")),
                }
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                _d: D,
            ) -> Result<Function, D::Error> {
                Err(de::Error::custom(
                    "functions can only be decoded from River values",
                ))
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(stash_take().unwrap_or(Value::Null))
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Value, D::Error> {
                d.deserialize_any(StructuralValueVisitor)
            }
        }
        d.deserialize_newtype_struct(RAW_MAGIC, V)
    }
}

/// Builds a [`Value`] from a self-describing format (JSON and the like).
struct StructuralValueVisitor;

impl<'de> Visitor<'de> for StructuralValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::uint(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::string(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(ValueSeed)? {
            items.push(v);
        }
        Ok(Value::array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = crate::value::Object::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(ValueSeed)?;
            obj.insert(k, v);
        }
        Ok(Value::object(obj))
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StructuralValueVisitor)
    }
}

/// How a value is described in messages: its type, or `capsule("name")` for capsules.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Capsule(c) => format!("capsule({:?})", c.0.type_name()),
        Value::Secret(_) => "capsule(\"secret\")".to_string(),
        other => other.value_type().as_str().to_string(),
    }
}

/// `should be T, got U`.
pub(crate) fn type_message(expected: ValueType, got: &Value) -> String {
    format!("should be {}, got {}", expected, got.value_type())
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// One step of the path from a decoded value to the part of it that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    /// `.name`
    Field(String),
    /// `[index]`
    Index(usize),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Field(name) => write!(f, ".{name}"),
            PathSegment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Why a [`Value`] could not be decoded: where inside it (`path`) and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// From the outer value inwards.
    pub path: Vec<PathSegment>,
    /// What went wrong, e.g. `should be number, got string`.
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.message);
        }
        for seg in &self.path {
            write!(f, "{seg}")?;
        }
        write!(f, " {}", self.message)
    }
}

/// The error type of the River deserializers.
#[derive(Debug)]
pub(crate) enum Error {
    /// A problem with a value; `rev_path` grows (innermost first) as the error bubbles up.
    Value {
        rev_path: Vec<PathSegment>,
        message: String,
    },
    /// serde found a required field missing.
    Missing { name: String, block: bool },
    /// A block type was asked of an attribute value.
    NotABlock,
    /// Diagnostics were recorded; `culprits` are the spans of the enclosing blocks, innermost first.
    Reported { culprits: Vec<Span> },
}

impl Error {
    fn msg(message: impl Into<String>) -> Error {
        Error::Value {
            rev_path: Vec::new(),
            message: message.into(),
        }
    }

    fn type_err(expected: ValueType, got: &Value) -> Error {
        Error::msg(type_message(expected, got))
    }

    fn at(mut self, seg: impl FnOnce() -> PathSegment) -> Error {
        if let Error::Value { rev_path, .. } = &mut self {
            rev_path.push(seg());
        }
        self
    }

    fn reported() -> Error {
        Error::Reported {
            culprits: Vec::new(),
        }
    }

    fn into_decode_error(self) -> DecodeError {
        match self {
            Error::Value {
                mut rev_path,
                message,
            } => {
                rev_path.reverse();
                DecodeError {
                    path: rev_path,
                    message,
                }
            }
            Error::Missing { name, .. } => DecodeError {
                path: Vec::new(),
                message: format!("missing required field {name:?}"),
            },
            Error::NotABlock => DecodeError {
                path: Vec::new(),
                message: "blocks cannot be decoded from values".into(),
            },
            Error::Reported { .. } => DecodeError {
                path: Vec::new(),
                message: "invalid value".into(),
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Value { message, .. } => f.write_str(message),
            Error::Missing { name, block: false } => {
                write!(f, "missing required attribute {name:?}")
            }
            Error::Missing { name, block: true } => write!(f, "missing required block {name:?}"),
            Error::NotABlock => f.write_str("must be a block, but is used as an attribute"),
            Error::Reported { .. } => f.write_str("errors were reported"),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::msg(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Error::Missing {
            name: field.to_string(),
            block: EXPECT_BLOCK.with(|c| c.get()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The evaluated body tree
// ---------------------------------------------------------------------------------------------------------

/// A block body whose attribute expressions have been evaluated, in source order.
#[derive(Clone, Debug, Default)]
pub struct EvalBody<'a> {
    /// The statements in source order.
    pub stmts: Vec<EvalStmt<'a>>,
}

/// One evaluated statement.
#[derive(Clone, Debug)]
pub enum EvalStmt<'a> {
    /// `name = expr`
    Attribute(EvalAttribute<'a>),
    /// `name "label" { ... }`
    Block(EvalBlock<'a>),
}

/// An evaluated attribute.
#[derive(Clone, Debug)]
pub struct EvalAttribute<'a> {
    /// The attribute name.
    pub name: &'a str,
    /// Where the name is.
    pub name_span: Span,
    /// The whole statement.
    pub span: Span,
    /// The expression (for messages that quote it).
    pub expr: &'a Expr,
    /// The value, or `None` when evaluation failed (the error is among the evaluation diagnostics).
    pub value: Option<Value>,
}

impl EvalAttribute<'_> {
    /// Where the expression is.
    pub fn expr_span(&self) -> Span {
        self.expr.span
    }

    /// The expression's source text.
    pub fn expr_text<'s>(&self, src: &'s str) -> &'s str {
        self.expr.span.text(src)
    }
}

/// An evaluated nested block.
#[derive(Clone, Debug)]
pub struct EvalBlock<'a> {
    /// The dotted name, e.g. `profile.memory`.
    pub name: String,
    /// Where the dotted name is.
    pub name_span: Span,
    /// The label without quotes (`None` when absent or empty).
    pub label: Option<&'a str>,
    /// From the name to the opening brace inclusive: where label and "missing" errors point.
    pub header: Span,
    /// The whole block.
    pub span: Span,
    /// The evaluated body.
    pub body: EvalBody<'a>,
}

/// Evaluates every attribute of `body` (recursively) against `scope`. All evaluation errors are returned,
/// each positioned where it happened; failed attributes have no value.
pub fn eval_body<'a>(body: Body, file: &'a File, scope: &Scope) -> (EvalBody<'a>, Diagnostics) {
    let mut diags = Diagnostics::new();
    let tree = eval_body_with(body, file, &mut |e| eval_expr(e, file, scope), &mut diags);
    (tree, diags)
}

/// [`eval_body`] with an arbitrary expression evaluator.
pub(crate) fn eval_body_with<'a>(
    body: Body,
    file: &'a File,
    eval: &mut dyn FnMut(&Expr) -> Result<Value, EvalError>,
    diags: &mut Diagnostics,
) -> EvalBody<'a> {
    let body = file.stmts(body);
    let mut stmts = Vec::with_capacity(body.len());
    for stmt in body {
        stmts.push(eval_stmt_with(stmt, file, eval, diags));
    }
    EvalBody { stmts }
}

/// The statements of a body evaluated for decoding: on the stack when there are few (most component
/// bodies), saving an allocation per decode.
type EvalStmts<'a> = SmallVec<[EvalStmt<'a>; 2]>;

/// [`eval_body`] into `out` (filled in place: the statements are large to move).
fn eval_stmts<'a>(
    body: Body,
    file: &'a File,
    scope: &Scope,
    out: &mut EvalStmts<'a>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let mut eval = |e: &Expr| eval_expr(e, file, scope);
    let body = file.stmts(body);
    out.reserve(body.len());
    for stmt in body {
        out.push(eval_stmt_with(stmt, file, &mut eval, &mut diags));
    }
    diags
}

fn eval_stmt_with<'a>(
    stmt: &'a Stmt,
    file: &'a File,
    eval: &mut dyn FnMut(&Expr) -> Result<Value, EvalError>,
    diags: &mut Diagnostics,
) -> EvalStmt<'a> {
    match stmt {
        Stmt::Attribute(a) => {
            let value = match eval(&a.value) {
                Ok(v) => Some(v),
                Err(e) => {
                    diags.push(Diagnostic::error(e.span, e.message));
                    None
                }
            };
            EvalStmt::Attribute(EvalAttribute {
                name: a.name.text(&file.source),
                name_span: a.name,
                span: a.span(),
                expr: &a.value,
                value,
            })
        }
        Stmt::Block(b) => EvalStmt::Block(eval_block_with(b, file, eval, diags)),
    }
}

fn eval_block_with<'a>(
    b: &'a ast::Block,
    file: &'a File,
    eval: &mut dyn FnMut(&Expr) -> Result<Value, EvalError>,
    diags: &mut Diagnostics,
) -> EvalBlock<'a> {
    EvalBlock {
        name: b.name_string(file),
        name_span: b.name_span(file),
        label: b.label_text(&file.source).filter(|l| !l.is_empty()),
        header: block_header(b),
        span: b.span,
        body: eval_body_with(b.body, file, eval, diags),
    }
}

/// From the block's name to its `{` inclusive.
pub fn block_header(b: &ast::Block) -> Span {
    let end = b.lbrace.saturating_add(1).max(b.span.start);
    Span::new(b.span.start, end.min(b.span.end.max(b.span.start)))
}

// ---------------------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------------------

/// Decodes one value into `T`, applying River's conversions (number↔string, float→int truncation,
/// null → zero value, capsules and secrets by type).
pub fn decode_value<T: DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    T::deserialize(ValueDe::new(value)).map_err(Error::into_decode_error)
}

/// Evaluates `expr` and decodes the result into `T`; errors are positioned like attribute errors.
pub fn decode_expr<T: DeserializeOwned>(
    expr: &Expr,
    file: &File,
    scope: &Scope,
) -> Result<T, Diagnostics> {
    let value = eval_expr(expr, file, scope)
        .map_err(|e| Diagnostics(vec![Diagnostic::error(e.span, e.message)]))?;
    T::deserialize(ValueDe::new(&value)).map_err(|e| {
        let ctx = Ctx::new(file);
        value_error_diagnostic(&ctx, expr, e, None);
        ctx.into_diagnostics()
    })
}

/// Evaluates `body` in `scope` and decodes it into `T`. Missing required attributes and blocks are reported at
/// the start of the source; use [`decode_block_body`] for a block's body.
pub fn decode_body<T: DeserializeOwned>(
    body: Body,
    file: &File,
    scope: &Scope,
) -> Result<T, Diagnostics> {
    let mut stmts = EvalStmts::new();
    let diags = eval_stmts(body, file, scope, &mut stmts);
    run_decode::<T>(&stmts, file, Span::at(0), diags, |_| Ok(()))
}

/// [`decode_body`], then [`Validate::validate`] on the result.
pub fn decode_body_validated<T: DeserializeOwned + Validate>(
    body: Body,
    file: &File,
    scope: &Scope,
) -> Result<T, Diagnostics> {
    let mut stmts = EvalStmts::new();
    let diags = eval_stmts(body, file, scope, &mut stmts);
    run_decode::<T>(&stmts, file, Span::at(0), diags, T::validate)
}

/// Evaluates and decodes the body of `block` (e.g. a component's arguments) into `T`. The block's own label is
/// not part of `T`; errors without a statement of their own point at the block's header.
pub fn decode_block_body<T: DeserializeOwned>(
    block: &ast::Block,
    file: &File,
    scope: &Scope,
) -> Result<T, Diagnostics> {
    let mut stmts = EvalStmts::new();
    let diags = eval_stmts(block.body, file, scope, &mut stmts);
    run_decode::<T>(&stmts, file, block_header(block), diags, |_| Ok(()))
}

/// [`decode_block_body`], then [`Validate::validate`] on the result.
pub fn decode_block_body_validated<T: DeserializeOwned + Validate>(
    block: &ast::Block,
    file: &File,
    scope: &Scope,
) -> Result<T, Diagnostics> {
    let mut stmts = EvalStmts::new();
    let diags = eval_stmts(block.body, file, scope, &mut stmts);
    run_decode::<T>(&stmts, file, block_header(block), diags, T::validate)
}

/// Parses `src` and decodes the body of its first block with the standard library in scope, validated: the
/// shortest way to turn a component block written as text into its arguments (tests, tools). Syntax errors
/// are returned as they are; a source without a block is an error at its start.
pub fn decode_first_block_validated<T: DeserializeOwned + Validate>(
    src: &str,
) -> Result<T, Diagnostics> {
    let (file, diags) = crate::parse(src);
    if !diags.is_empty() {
        return Err(diags);
    }
    let Some(ast::Stmt::Block(block)) = file.top_level().first() else {
        let mut diags = Diagnostics::new();
        diags.push(Diagnostic::error(
            Span { start: 0, end: 0 },
            "expected a block",
        ));
        return Err(diags);
    };
    decode_block_body_validated(block, &file, &Scope::with_stdlib())
}

/// Decodes an already evaluated body. `header` is where errors without a statement of their own (missing
/// required attributes, validation) point. Evaluation errors must have been reported by the caller.
pub fn decode_eval_body<T: DeserializeOwned>(
    body: &EvalBody<'_>,
    file: &File,
    header: Span,
) -> Result<T, Diagnostics> {
    run_decode::<T>(&body.stmts, file, header, Diagnostics::new(), |_| Ok(()))
}

/// [`decode_eval_body`], then [`Validate::validate`] on the result.
pub fn decode_eval_body_validated<T: DeserializeOwned + Validate>(
    body: &EvalBody<'_>,
    file: &File,
    header: Span,
) -> Result<T, Diagnostics> {
    run_decode::<T>(&body.stmts, file, header, Diagnostics::new(), T::validate)
}

/// The decode driver. A value error aborts serde's visitor for the whole struct, so after each failed attempt
/// the failing statement is excluded and decoding is retried: every independent error gets reported once,
/// while errors that are mere consequences of an excluded statement (a "missing" field, validation of an
/// incomplete block) are suppressed.
fn run_decode<T: DeserializeOwned>(
    body: &[EvalStmt<'_>],
    file: &File,
    header: Span,
    eval_diags: Diagnostics,
    validate: impl Fn(&T) -> Result<(), String>,
) -> Result<T, Diagnostics> {
    let ctx = Ctx::new(file);
    for d in eval_diags {
        ctx.push(d);
    }
    let limit = mark_eval_failures(&ctx, body) + 2;
    let top = ContentDe {
        ctx: &ctx,
        body,
        block: None,
        header,
        label_consumed: true,
    };
    for _ in 0..limit {
        let failed_before = ctx.failed_len();
        match T::deserialize(top) {
            Ok(v) => {
                if ctx.has_diagnostics() {
                    break;
                }
                if let Err(msg) = validate(&v) {
                    ctx.report(header, msg);
                    break;
                }
                return Ok(v);
            }
            Err(e) => {
                if ctx.failed_len() > failed_before {
                    continue;
                }
                if let Error::Reported { culprits } = &e {
                    if let Some(c) = culprits.iter().find(|c| !ctx.is_failed(**c)) {
                        ctx.fail(*c);
                        continue;
                    }
                } else {
                    ctx.report(header, e.to_string());
                }
                break;
            }
        }
    }
    if !ctx.has_diagnostics() {
        ctx.report(header, "invalid arguments");
    }
    Err(ctx.into_diagnostics())
}

/// Marks the attributes that failed to evaluate as failed; returns the number of statements (recursively).
fn mark_eval_failures(ctx: &Ctx<'_>, body: &[EvalStmt<'_>]) -> usize {
    let mut count = 0;
    for stmt in body {
        count += 1;
        match stmt {
            EvalStmt::Attribute(a) if a.value.is_none() => ctx.fail(a.span),
            EvalStmt::Attribute(_) => {}
            EvalStmt::Block(b) => count += mark_eval_failures(ctx, &b.body.stmts),
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------------------
// Decode context
// ---------------------------------------------------------------------------------------------------------

/// Shared state of one decode: the source, the diagnostics so far and the statements that failed.
struct Ctx<'a> {
    file: &'a File,
    src: &'a str,
    diags: RefCell<Vec<Diagnostic>>,
    /// Statements (by span) that failed and are skipped from now on; each at most once. A list, not a set:
    /// it is empty on the success path and short otherwise (bounded by the number of statements).
    failed: RefCell<Vec<Span>>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a File) -> Self {
        Ctx {
            file,
            src: &file.source,
            diags: RefCell::new(Vec::new()),
            failed: RefCell::new(Vec::new()),
        }
    }

    /// Records a diagnostic once (retries find the same errors again).
    fn push(&self, d: Diagnostic) {
        let mut diags = self.diags.borrow_mut();
        if !diags
            .iter()
            .any(|x| x.span == d.span && x.message == d.message)
        {
            diags.push(d);
        }
    }

    fn report(&self, span: Span, message: impl Into<String>) {
        self.push(Diagnostic::error(span, message));
    }

    fn fail(&self, span: Span) {
        let mut failed = self.failed.borrow_mut();
        if !failed.contains(&span) {
            failed.push(span);
        }
    }

    fn is_failed(&self, span: Span) -> bool {
        self.failed.borrow().contains(&span)
    }

    fn failed_len(&self) -> usize {
        self.failed.borrow().len()
    }

    /// Whether a failed statement lies within `range` (or anywhere, for `None`).
    fn tainted(&self, range: Option<Span>) -> bool {
        let failed = self.failed.borrow();
        match range {
            None => !failed.is_empty(),
            Some(r) => failed
                .iter()
                .any(|s| *s != r && s.start >= r.start && s.end <= r.end),
        }
    }

    fn has_diagnostics(&self) -> bool {
        !self.diags.borrow().is_empty()
    }

    fn into_diagnostics(self) -> Diagnostics {
        let mut d = Diagnostics(self.diags.into_inner());
        d.sort();
        d
    }
}

// ---------------------------------------------------------------------------------------------------------
// Messages for value errors: locate the innermost literal the path leads to
// ---------------------------------------------------------------------------------------------------------

/// Records a value error of `expr` as a diagnostic: the message names the innermost sub-expression the path
/// leads into (as the reference does), followed by the rest of the path. `stmt` is marked failed.
fn value_error_diagnostic(ctx: &Ctx<'_>, expr: &Expr, err: Error, stmt: Option<Span>) {
    let (rev_path, message) = match err {
        Error::Value { rev_path, message } => (rev_path, message),
        Error::Missing { name, .. } => (Vec::new(), format!("is missing required field {name:?}")),
        Error::NotABlock => (Vec::new(), "must be a block".to_string()),
        Error::Reported { .. } => return,
    };
    let path: Vec<PathSegment> = rev_path.into_iter().rev().collect();
    let (node, rest) = locate(expr, &path, ctx.file);
    let mut text = node.span.text(ctx.src).to_string();
    for seg in rest {
        text.push_str(&seg.to_string());
    }
    ctx.report(node.span, format!("{text} {message}"));
    if let Some(s) = stmt {
        ctx.fail(s);
    }
}

/// Follows `path` into array and object literals of `expr` as far as they go.
fn locate<'e, 'p>(
    expr: &'e Expr,
    path: &'p [PathSegment],
    file: &'e File,
) -> (&'e Expr, &'p [PathSegment]) {
    let src: &str = &file.source;
    let mut e = expr;
    let mut rest = path;
    while let Some((seg, tail)) = rest.split_first() {
        let next = match (e.kind, seg) {
            (ExprKind::Paren(inner), _) => {
                e = file.expr(inner);
                continue;
            }
            (ExprKind::Array(items), PathSegment::Index(i)) => file.exprs(items).get(*i),
            (ExprKind::Object(fields), PathSegment::Field(name)) => file
                .fields(fields)
                .iter()
                .rev()
                .find(|f| object_key_matches(f, name, src))
                .map(|f| &f.value),
            _ => None,
        };
        match next {
            Some(n) => {
                e = n;
                rest = tail;
            }
            None => break,
        }
    }
    (e, rest)
}

fn object_key_matches(f: &ast::ObjectField, name: &str, src: &str) -> bool {
    let raw = f.key.text(src);
    if !f.quoted {
        return raw == name;
    }
    crate::literal::unquote(raw).is_ok_and(|k| k == name)
}

// ---------------------------------------------------------------------------------------------------------
// Body (block content) deserializer
// ---------------------------------------------------------------------------------------------------------

/// Deserializes the statements of a body (the top level, or a block's content) as a struct or map.
#[derive(Clone, Copy)]
struct ContentDe<'c, 'a> {
    ctx: &'c Ctx<'a>,
    body: &'c [EvalStmt<'a>],
    /// The block whose content this is; `None` at the top level.
    block: Option<&'c EvalBlock<'a>>,
    /// Where errors without a statement of their own point.
    header: Span,
    /// Whether the label was taken by a wrapper ([`LabeledBlock`]) or is not ours (top level).
    label_consumed: bool,
}

/// All statements of one name in a body: at most one attribute, and blocks (with the enum variant, when the
/// name is `field.variant`).
struct Entry<'c, 'a> {
    name: &'c str,
    attr: Option<&'c EvalAttribute<'a>>,
    blocks: Vec<(&'c EvalBlock<'a>, Option<&'c str>)>,
}

impl<'c, 'a> ContentDe<'c, 'a> {
    fn block_name(&self) -> &str {
        self.block.map(|b| b.name.as_str()).unwrap_or("")
    }

    fn range(&self) -> Option<Span> {
        self.block.map(|b| b.span)
    }

    /// Groups the statements by name, reporting duplicates and (when `fields` is known) unknown names.
    fn entries(&self, fields: Option<&[&'static str]>) -> Vec<Entry<'c, 'a>> {
        let ctx = self.ctx;
        let mut entries: Vec<Entry<'c, 'a>> = Vec::with_capacity(self.body.len());
        fn slot<'e, 'c, 'a>(
            entries: &'e mut Vec<Entry<'c, 'a>>,
            name: &'c str,
        ) -> &'e mut Entry<'c, 'a> {
            let idx = match entries.iter().position(|e| e.name == name) {
                Some(i) => i,
                None => {
                    entries.push(Entry {
                        name,
                        attr: None,
                        blocks: Vec::new(),
                    });
                    entries.len() - 1
                }
            };
            &mut entries[idx]
        }
        for (i, stmt) in self.body.iter().enumerate() {
            match stmt {
                EvalStmt::Attribute(a) => {
                    // Bodies are short: looking back costs less than keeping a set of the names seen.
                    let seen = self.body[..i]
                        .iter()
                        .any(|s| matches!(s, EvalStmt::Attribute(b) if b.name == a.name));
                    if seen {
                        ctx.report(
                            a.span,
                            format!("attribute {:?} may only be provided once", a.name),
                        );
                        continue;
                    }
                    if ctx.is_failed(a.span) {
                        continue;
                    }
                    if let Some(f) = fields {
                        if !f.contains(&a.name) {
                            ctx.report(a.span, format!("unrecognized attribute name {:?}", a.name));
                            continue;
                        }
                    }
                    slot(&mut entries, a.name).attr = Some(a);
                }
                EvalStmt::Block(b) => {
                    if ctx.is_failed(b.span) {
                        continue;
                    }
                    let Some(f) = fields else {
                        ctx.report(b.span, "nested blocks not supported here");
                        continue;
                    };
                    let name = b.name.as_str();
                    if f.contains(&name) {
                        slot(&mut entries, name).blocks.push((b, None));
                        continue;
                    }
                    // `prefix.variant`: the longest dotted prefix that is a field holds "enum" blocks.
                    let mut found = None;
                    for (i, _) in name
                        .match_indices('.')
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                    {
                        let (prefix, rest) = (&name[..i], &name[i + 1..]);
                        if let Some(field) = f.iter().find(|x| **x == prefix) {
                            found = Some((*field, rest));
                            break;
                        }
                    }
                    match found {
                        Some((prefix, variant)) => {
                            // `prefix` borrows from serde's 'static field list.
                            slot(&mut entries, prefix).blocks.push((b, Some(variant)));
                        }
                        None => ctx.report(b.span, format!("unrecognized block name {:?}", b.name)),
                    }
                }
            }
        }
        entries
    }

    /// Whether every statement is an attribute of its own name, known (when `fields` is) and not failed: then
    /// [`ContentDe::entries`] would report nothing and make one entry per statement, in order, and the
    /// entries can be made as they are asked for instead.
    fn plain_attributes(&self, fields: Option<&[&'static str]>) -> bool {
        let stmts = &self.body;
        stmts.iter().enumerate().all(|(i, stmt)| match stmt {
            EvalStmt::Attribute(a) => {
                fields.is_none_or(|f| f.contains(&a.name))
                    && !self.ctx.is_failed(a.span)
                    && !stmts[..i]
                        .iter()
                        .any(|s| matches!(s, EvalStmt::Attribute(b) if b.name == a.name))
            }
            EvalStmt::Block(_) => false,
        })
    }

    /// Turns an error out of the visitor into a recorded diagnostic (or suppresses it as a consequence of an
    /// earlier one) and adds this block to the culprits.
    fn convert(&self, err: Error) -> Error {
        let own = self.block.map(|b| b.span);
        match err {
            Error::Reported { mut culprits } => {
                culprits.extend(own);
                Error::Reported { culprits }
            }
            Error::Missing { name, block } => {
                if name == LABEL_FIELD {
                    self.ctx.report(
                        self.header,
                        format!("block {:?} requires non-empty label", self.block_name()),
                    );
                } else if !self.child_failed(&name) {
                    let kind = if block { "block" } else { "attribute" };
                    self.ctx
                        .report(self.header, format!("missing required {kind} {name:?}"));
                }
                Error::Reported {
                    culprits: own.into_iter().collect(),
                }
            }
            other => {
                if !self.ctx.tainted(self.range()) {
                    let msg = match other {
                        Error::Value {
                            mut rev_path,
                            message,
                        } => {
                            rev_path.reverse();
                            let mut s = String::new();
                            for seg in &rev_path {
                                s.push_str(&seg.to_string());
                            }
                            if s.is_empty() {
                                message
                            } else {
                                format!("{s} {message}")
                            }
                        }
                        e => e.to_string(),
                    };
                    self.ctx.report(self.header, msg);
                }
                Error::Reported {
                    culprits: own.into_iter().collect(),
                }
            }
        }
    }

    /// Whether a statement called `name` (or an enum block under it) failed.
    fn child_failed(&self, name: &str) -> bool {
        self.body.iter().any(|s| match s {
            EvalStmt::Attribute(a) => a.name == name && self.ctx.is_failed(a.span),
            EvalStmt::Block(b) => {
                (b.name == name
                    || b.name
                        .strip_prefix(name)
                        .is_some_and(|r| r.starts_with('.')))
                    && self.ctx.is_failed(b.span)
            }
        })
    }

    /// Reports that this block was used where a plain value is expected.
    fn not_a_value(&self) -> Error {
        match self.block {
            Some(b) => {
                self.ctx.report(
                    b.span,
                    format!("{:?} must be an attribute, but is used as a block", b.name),
                );
                self.ctx.fail(b.span);
                Error::reported()
            }
            None => {
                self.ctx.report(
                    self.header,
                    "a body can only be decoded into a struct or a map",
                );
                Error::reported()
            }
        }
    }

    fn check_no_label(&self, message: &str) {
        if let Some(b) = self.block {
            if b.label.is_some() && !self.label_consumed {
                self.ctx
                    .report(b.header, format!("block {:?} {message}", b.name));
            }
        }
    }

    fn visit_entries<'de, V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut label = None;
        match fields {
            Some(f) if f.contains(&LABEL_FIELD) => {
                if !self.label_consumed {
                    label = self.block.and_then(|b| b.label);
                }
            }
            Some(_) => self.check_no_label("does not support specifying labels"),
            None => self.check_no_label("requires empty label"),
        }
        let entries = if self.plain_attributes(fields) {
            Entries::Attributes(self.body.iter())
        } else {
            Entries::Grouped(self.entries(fields).into_iter())
        };
        let access = BodyMap {
            ctx: self.ctx,
            label,
            entries,
            pending: None,
        };
        visitor.visit_map(access).map_err(|e| self.convert(e))
    }
}

impl<'de> de::Deserializer<'de> for ContentDe<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_entries(None, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_entries(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_entries(Some(fields), visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_MAGIC || name == BLOCK_MAGIC || name == LABELED_MAGIC {
            return Err(self.not_a_value());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A marker block such as `enabled {}`: nothing may be inside.
        self.check_no_label("does not support specifying labels");
        let _ = self.entries(Some(&[]));
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.not_a_value())
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.not_a_value())
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.not_a_value())
    }

    reject_methods! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_seq deserialize_identifier
    }
}

/// The statements of a body as a map: the label (when asked for) and then one entry per name.
struct BodyMap<'c, 'a> {
    ctx: &'c Ctx<'a>,
    label: Option<&'a str>,
    entries: Entries<'c, 'a>,
    pending: Option<Pending<'c, 'a>>,
}

/// The entries of a body, in order.
enum Entries<'c, 'a> {
    /// A body of plain attributes ([`ContentDe::plain_attributes`]): one entry per statement.
    Attributes(std::slice::Iter<'c, EvalStmt<'a>>),
    /// Grouped by [`ContentDe::entries`].
    Grouped(std::vec::IntoIter<Entry<'c, 'a>>),
}

impl<'c, 'a> Iterator for Entries<'c, 'a> {
    type Item = Entry<'c, 'a>;

    fn next(&mut self) -> Option<Entry<'c, 'a>> {
        match self {
            Entries::Attributes(stmts) => stmts.find_map(|s| match s {
                EvalStmt::Attribute(a) => Some(Entry {
                    name: a.name,
                    attr: Some(a),
                    blocks: Vec::new(),
                }),
                EvalStmt::Block(_) => None,
            }),
            Entries::Grouped(entries) => entries.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            // Only attributes, by construction.
            Entries::Attributes(stmts) => (stmts.len(), Some(stmts.len())),
            Entries::Grouped(entries) => entries.size_hint(),
        }
    }
}

enum Pending<'c, 'a> {
    Label(&'a str),
    Entry(Entry<'c, 'a>),
}

impl<'de, 'c, 'a> MapAccess<'de> for BodyMap<'c, 'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if let Some(label) = self.label.take() {
            self.pending = Some(Pending::Label(label));
            return seed.deserialize(LABEL_FIELD.into_deserializer()).map(Some);
        }
        match self.entries.next() {
            Some(entry) => {
                let key = seed.deserialize(entry.name.into_deserializer());
                self.pending = Some(Pending::Entry(entry));
                key.map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.pending.take() {
            Some(Pending::Label(l)) => {
                // Through a value so that `Option<String>` works too.
                let v = Value::string(l);
                seed.deserialize(ValueDe::new(&v))
            }
            Some(Pending::Entry(entry)) => seed.deserialize(EntryDe {
                ctx: self.ctx,
                entry,
            }),
            None => Err(Error::msg("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.size_hint().0 + usize::from(self.label.is_some()))
    }
}

// ---------------------------------------------------------------------------------------------------------
// One named entry of a body
// ---------------------------------------------------------------------------------------------------------

struct EntryDe<'c, 'a> {
    ctx: &'c Ctx<'a>,
    entry: Entry<'c, 'a>,
}

impl<'c, 'a> EntryDe<'c, 'a> {
    fn full_name(&self, b: &EvalBlock<'_>) -> String {
        b.name.clone()
    }

    /// Reports every block of this entry as misused (the field is a plain value).
    fn report_blocks_as_misused(&self) {
        for (b, variant) in &self.entry.blocks {
            match variant {
                None => self.ctx.report(
                    b.span,
                    format!(
                        "{:?} must be an attribute, but is used as a block",
                        self.entry.name
                    ),
                ),
                Some(_) => self.ctx.report(
                    b.span,
                    format!("unrecognized block name {:?}", self.full_name(b)),
                ),
            }
            self.ctx.fail(b.span);
        }
    }

    fn attr_de(&self, a: &'c EvalAttribute<'a>) -> AttrDe<'c, 'a> {
        AttrDe {
            ctx: self.ctx,
            attr: a,
        }
    }

    /// The field wants a plain value.
    fn value_or_reject(&self) -> Result<AttrDe<'c, 'a>, Error> {
        self.report_blocks_as_misused();
        match self.entry.attr {
            Some(a) => Ok(self.attr_de(a)),
            None => Err(Error::reported()),
        }
    }

    /// The field wants exactly one block.
    fn single_block(&self) -> Result<&'c EvalBlock<'a>, Error> {
        if let Some(a) = self.entry.attr {
            self.ctx.report(
                a.span,
                format!("{:?} must be a block, but is used as an attribute", a.name),
            );
            self.ctx.fail(a.span);
        }
        let mut first = None;
        let mut count = 0;
        for (b, variant) in &self.entry.blocks {
            match variant {
                Some(_) => {
                    self.ctx
                        .report(b.span, format!("unrecognized block name {:?}", b.name));
                    self.ctx.fail(b.span);
                }
                None => {
                    count += 1;
                    first = first.or(Some(*b));
                }
            }
        }
        // Reported once, on the first block, as the reference does.
        if let (Some(b), true) = (first, count > 1) {
            self.ctx.report(
                b.span,
                format!("block {:?} may only be specified once", b.name),
            );
        }
        first.ok_or_else(Error::reported)
    }
}

impl<'de> de::Deserializer<'de> for EntryDe<'_, '_> {
    type Error = Error;

    entry_value_methods! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.entry.attr {
            Some(a) if self.entry.blocks.is_empty() => self.attr_de(a).deserialize_option(visitor),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == BLOCK_MAGIC || name == LABELED_MAGIC {
            clear_expect_block();
            let b = self.single_block()?;
            return BlockDe {
                ctx: self.ctx,
                block: b,
            }
            .deserialize_newtype_struct(name, visitor);
        }
        if name == RAW_MAGIC {
            return self
                .value_or_reject()?
                .deserialize_newtype_struct(name, visitor);
        }
        match self.entry.attr {
            Some(_) => self
                .value_or_reject()?
                .deserialize_newtype_struct(name, visitor),
            None => visitor.visit_newtype_struct(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.entry.attr.is_some() || self.entry.blocks.is_empty() {
            return self.value_or_reject()?.deserialize_seq(visitor);
        }
        let seq = BlockSeq {
            ctx: self.ctx,
            blocks: self.entry.blocks.into_iter(),
        };
        visitor.visit_seq(seq)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.entry.attr.is_some() || self.entry.blocks.is_empty() {
            return self
                .value_or_reject()?
                .deserialize_enum(name, variants, visitor);
        }
        let mut chosen = None;
        for (b, variant) in &self.entry.blocks {
            match variant {
                None => {
                    self.ctx
                        .report(b.span, format!("unrecognized block name {:?}", b.name));
                    self.ctx.fail(b.span);
                }
                Some(_) if chosen.is_none() => chosen = Some((*b, *variant)),
                Some(_) => {
                    self.ctx.report(
                        b.span,
                        format!("block {:?} may only be specified once", self.entry.name),
                    );
                }
            }
        }
        match chosen {
            Some((b, variant)) => BlockElemDe {
                ctx: self.ctx,
                block: b,
                variant,
            }
            .deserialize_enum(name, variants, visitor),
            None => Err(Error::reported()),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value_or_reject()?
            .deserialize_unit_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value_or_reject()?.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value_or_reject()?
            .deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value_or_reject()?
            .deserialize_struct(name, fields, visitor)
    }
}

/// The blocks of one entry as a sequence, in source order.
struct BlockSeq<'c, 'a> {
    ctx: &'c Ctx<'a>,
    blocks: std::vec::IntoIter<(&'c EvalBlock<'a>, Option<&'c str>)>,
}

impl<'de> SeqAccess<'de> for BlockSeq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.blocks.next() {
            Some((block, variant)) => seed
                .deserialize(BlockElemDe {
                    ctx: self.ctx,
                    block,
                    variant,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.blocks.len())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------------------------

/// One element of a repeated block field or of an enum block list. Strict: only [`Block`], [`LabeledBlock`]
/// and enums are accepted.
struct BlockElemDe<'c, 'a> {
    ctx: &'c Ctx<'a>,
    block: &'c EvalBlock<'a>,
    variant: Option<&'c str>,
}

impl BlockElemDe<'_, '_> {
    fn not_a_value(&self) -> Error {
        let b = self.block;
        match self.variant {
            None => {
                let base = b.name.as_str();
                self.ctx.report(
                    b.span,
                    format!("{base:?} must be an attribute, but is used as a block"),
                );
            }
            Some(_) => self
                .ctx
                .report(b.span, format!("unrecognized block name {:?}", b.name)),
        }
        self.ctx.fail(b.span);
        Error::reported()
    }
}

impl<'de> de::Deserializer<'de> for BlockElemDe<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(self.not_a_value())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if (name == BLOCK_MAGIC || name == LABELED_MAGIC) && self.variant.is_none() {
            return BlockDe {
                ctx: self.ctx,
                block: self.block,
            }
            .deserialize_newtype_struct(name, visitor);
        }
        Err(self.not_a_value())
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let b = self.block;
        match self.variant {
            Some(v) if variants.contains(&v) => visitor.visit_enum(EnumBlock {
                ctx: self.ctx,
                block: b,
                variant: v,
            }),
            _ => {
                self.ctx
                    .report(b.span, format!("unrecognized block name {:?}", b.name));
                self.ctx.fail(b.span);
                Err(Error::reported())
            }
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// A block as an enum value: the variant is the rest of its dotted name.
struct EnumBlock<'c, 'a> {
    ctx: &'c Ctx<'a>,
    block: &'c EvalBlock<'a>,
    variant: &'c str,
}

impl<'de, 'c, 'a> EnumAccess<'de> for EnumBlock<'c, 'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for EnumBlock<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        let content = BlockDe {
            ctx: self.ctx,
            block: self.block,
        }
        .content(false);
        de::Deserializer::deserialize_unit(content, de::IgnoredAny).map(|_| ())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(BlockDe {
            ctx: self.ctx,
            block: self.block,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        self.ctx.report(
            self.block.header,
            "tuple variants cannot be decoded from blocks",
        );
        self.ctx.fail(self.block.span);
        Err(Error::reported())
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let content = BlockDe {
            ctx: self.ctx,
            block: self.block,
        }
        .content(false);
        de::Deserializer::deserialize_struct(content, "", fields, visitor)
    }
}

/// A single block: through [`Block`] / [`LabeledBlock`], or directly as a struct or map (enum variants).
#[derive(Clone, Copy)]
struct BlockDe<'c, 'a> {
    ctx: &'c Ctx<'a>,
    block: &'c EvalBlock<'a>,
}

impl<'c, 'a> BlockDe<'c, 'a> {
    fn content(self, label_consumed: bool) -> ContentDe<'c, 'a> {
        ContentDe {
            ctx: self.ctx,
            body: &self.block.body.stmts,
            block: Some(self.block),
            header: self.block.header,
            label_consumed,
        }
    }

    /// An error returned by a wrapper's visitor itself (its validation) is reported on the header.
    fn convert_wrapper_error(self, err: Error) -> Error {
        match err {
            Error::Reported { mut culprits } => {
                if !culprits.contains(&self.block.span) {
                    culprits.push(self.block.span);
                }
                Error::Reported { culprits }
            }
            other => self.content(true).convert(other),
        }
    }
}

impl<'de> de::Deserializer<'de> for BlockDe<'_, '_> {
    type Error = Error;

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        clear_expect_block();
        let r = if name == BLOCK_MAGIC {
            visitor.visit_newtype_struct(self.content(false))
        } else if name == LABELED_MAGIC {
            let label = match self.block.label {
                Some(l) => l,
                None => {
                    let b = self.block;
                    self.ctx.report(
                        b.header,
                        format!("block {:?} requires non-empty label", b.name),
                    );
                    ""
                }
            };
            visitor.visit_seq(LabeledSeq {
                label: Some(label),
                content: Some(self.content(true)),
            })
        } else if name == RAW_MAGIC {
            return Err(self.content(false).not_a_value());
        } else {
            visitor.visit_newtype_struct(self.content(false))
        };
        r.map_err(|e| self.convert_wrapper_error(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.content(false).deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.content(false)
            .deserialize_struct(name, fields, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.content(false).deserialize_map(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.content(false).deserialize_unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.content(false).deserialize_unit_struct(name, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.content(false).not_a_value())
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.content(false).not_a_value())
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.content(false).not_a_value())
    }

    reject_block_methods! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_seq deserialize_identifier
    }
}

/// `(label, body)` handed to [`LabeledBlock`]'s visitor.
struct LabeledSeq<'c, 'a> {
    label: Option<&'a str>,
    content: Option<ContentDe<'c, 'a>>,
}

impl<'de> SeqAccess<'de> for LabeledSeq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if let Some(l) = self.label.take() {
            return seed.deserialize(l.into_deserializer()).map(Some);
        }
        match self.content.take() {
            Some(c) => seed.deserialize(c).map(Some),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------------------

/// An attribute's value; value errors become diagnostics that quote the expression.
struct AttrDe<'c, 'a> {
    ctx: &'c Ctx<'a>,
    attr: &'c EvalAttribute<'a>,
}

impl AttrDe<'_, '_> {
    fn convert(&self, err: Error) -> Error {
        match err {
            Error::Reported { .. } => err,
            Error::NotABlock => {
                let a = self.attr;
                self.ctx.report(
                    a.span,
                    format!("{:?} must be a block, but is used as an attribute", a.name),
                );
                self.ctx.fail(a.span);
                Error::reported()
            }
            other => {
                value_error_diagnostic(self.ctx, self.attr.expr, other, Some(self.attr.span));
                Error::reported()
            }
        }
    }

    fn value(&self) -> ValueDe<'_> {
        match &self.attr.value {
            Some(v) => ValueDe::new(v),
            None => ValueDe::new(&NULL),
        }
    }
}

static NULL: Value = Value::Null;

impl<'de> de::Deserializer<'de> for AttrDe<'_, '_> {
    type Error = Error;

    attr_methods! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_map deserialize_identifier deserialize_ignored_any
        deserialize_option deserialize_seq
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_newtype_struct(name, visitor)
            .map_err(|e| self.convert(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_unit_struct(name, visitor)
            .map_err(|e| self.convert(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value()
            .deserialize_tuple(len, visitor)
            .map_err(|e| self.convert(e))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_tuple_struct(name, len, visitor)
            .map_err(|e| self.convert(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_struct(name, fields, visitor)
            .map_err(|e| self.convert(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_enum(name, variants, visitor)
            .map_err(|e| self.convert(e))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

/// Deserializes one [`Value`] with River's conversion rules.
#[derive(Clone, Copy)]
struct ValueDe<'v> {
    value: &'v Value,
}

impl<'v> ValueDe<'v> {
    fn new(value: &'v Value) -> Self {
        ValueDe { value }
    }

    fn number(&self) -> Result<Number, Error> {
        match self.value {
            Value::Number(n) => Ok(*n),
            Value::String(s) => {
                parse_number(s).ok_or_else(|| Error::type_err(ValueType::Number, self.value))
            }
            Value::Null => Ok(Number::Int(0)),
            other => Err(Error::type_err(ValueType::Number, other)),
        }
    }

    fn int(&self, min: i128, max: i128) -> Result<i128, Error> {
        let n = self.number()?;
        let v = match n {
            Number::Int(i) => i128::from(i),
            Number::Uint(u) => i128::from(u),
            Number::Float(f) => {
                if !f.is_finite() || f.trunc() < min as f64 || f.trunc() > max as f64 {
                    return Err(out_of_range(n, min, max));
                }
                f.trunc() as i128
            }
        };
        if v < min || v > max {
            return Err(out_of_range(n, min, max));
        }
        Ok(v)
    }

    fn float(&self) -> Result<f64, Error> {
        Ok(self.number()?.as_f64())
    }

    /// The value as text, converting numbers; secrets are refused.
    fn with_str<R>(&self, f: impl FnOnce(&str) -> Result<R, Error>) -> Result<R, Error> {
        match self.value {
            Value::String(s) => f(s),
            Value::Number(n) => f(&n.to_string()),
            Value::Null => f(""),
            Value::Secret(_) => Err(Error::msg("secrets may not be converted into strings")),
            other => Err(Error::type_err(ValueType::String, other)),
        }
    }
}

fn out_of_range(n: Number, min: i128, max: i128) -> Error {
    Error::msg(format!("number {n} is out of range ({min} to {max})"))
}

/// String → number the way the reference converts: `-` prefix → int64, containing `.eE` → float64, otherwise
/// uint64 (decimal digits only).
pub(crate) fn parse_number(s: &str) -> Option<Number> {
    if s.is_empty() {
        return None;
    }
    if s.starts_with('-') {
        return s.parse::<i64>().ok().map(Number::Int);
    }
    if s.contains(['.', 'e', 'E']) {
        // Rust also accepts "inf"/"nan" spellings, which never contain '.', 'e' or 'E' alone… except
        // "infinite"-like words; reject letters other than the exponent marker to match Go.
        if s.bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
        {
            return None;
        }
        return s.parse::<f64>().ok().map(Number::Float);
    }
    if s.starts_with('+') {
        return None;
    }
    s.parse::<u64>().ok().map(Number::Uint)
}

impl<'de, 'v> de::Deserializer<'de> for ValueDe<'v> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(Number::Int(i)) => visitor.visit_i64(*i),
            Value::Number(Number::Uint(u)) => visitor.visit_u64(*u),
            Value::Number(Number::Float(f)) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_str(s),
            Value::Array(_) => self.deserialize_seq(visitor),
            Value::Object(_) => self.deserialize_map(visitor),
            Value::Secret(_) => Err(Error::msg("secrets may not be converted into strings")),
            Value::Capsule(_) | Value::Function(_) => Err(Error::msg(format!(
                "{} cannot be decoded into this field",
                describe(self.value)
            ))),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Null => visitor.visit_bool(false),
            other => Err(Error::type_err(ValueType::Bool, other)),
        }
    }

    int_method!(deserialize_i8, visit_i8, i8);
    int_method!(deserialize_i16, visit_i16, i16);
    int_method!(deserialize_i32, visit_i32, i32);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u8, u8);
    int_method!(deserialize_u16, visit_u16, u16);
    int_method!(deserialize_u32, visit_u32, u32);
    int_method!(deserialize_u64, visit_u64, u64);

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i128(self.int(i128::from(i64::MIN), i128::from(u64::MAX))?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.int(0, i128::from(u64::MAX))?;
        visitor.visit_u128(v as u128)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.with_str(|s| {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => visitor.visit_char(c),
                _ => Err(Error::msg(format!("{s:?} should be a single character"))),
            }
        })
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.with_str(|s| visitor.visit_str(s))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.with_str(|s| visitor.visit_str(s))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(_) => self.deserialize_seq(visitor),
            _ => self.with_str(|s| visitor.visit_bytes(s.as_bytes())),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            other => Err(Error::type_err(ValueType::Null, other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_MAGIC {
            stash_put(self.value.clone());
            let r = visitor.visit_unit();
            // Clear the slot even if the visitor was not ours and left it.
            let _ = stash_take();
            return r;
        }
        if name == BLOCK_MAGIC || name == LABELED_MAGIC {
            clear_expect_block();
            return Err(Error::NotABlock);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(ValueSeq {
                items: items.iter().enumerate(),
            }),
            Value::Null => visitor.visit_seq(ValueSeq {
                items: (&[] as &[Value]).iter().enumerate(),
            }),
            other => Err(Error::type_err(ValueType::Array, other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) if items.len() != len => Err(Error::msg(format!(
                "array must have exactly {len} elements, got {}",
                items.len()
            ))),
            _ => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(obj) => visitor.visit_map(ValueMap {
                iter: obj.iter(),
                pending: None,
            }),
            Value::Null => visitor.visit_map(ValueMap {
                iter: EMPTY_OBJECT.iter(),
                pending: None,
            }),
            other => Err(Error::type_err(ValueType::Object, other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let obj = match self.value {
            Value::Object(obj) => &**obj,
            Value::Null => &EMPTY_OBJECT,
            other => return Err(Error::type_err(ValueType::Object, other)),
        };
        if let Some(k) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(Error::msg(format!("has unrecognized field {k:?}")));
        }
        visitor
            .visit_map(ValueMap {
                iter: obj.iter(),
                pending: None,
            })
            .map_err(|e| match e {
                Error::Missing { name, .. } => {
                    Error::msg(format!("is missing required field {name:?}"))
                }
                other => other,
            })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            Value::Object(obj) if obj.len() == 1 => match obj.iter().next() {
                Some((k, v)) => visitor.visit_enum(ValueEnum { key: k, value: v }),
                None => Err(Error::type_err(ValueType::String, self.value)),
            },
            other => Err(Error::type_err(ValueType::String, other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

static EMPTY_OBJECT: crate::value::Object = crate::value::Object::new();

struct ValueSeq<'v> {
    items: std::iter::Enumerate<std::slice::Iter<'v, Value>>,
}

impl<'de> SeqAccess<'de> for ValueSeq<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some((i, v)) => seed
                .deserialize(ValueDe::new(v))
                .map(Some)
                .map_err(|e| e.at(|| PathSegment::Index(i))),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct ValueMap<'v> {
    iter: crate::object::Iter<'v>,
    pending: Option<(&'v String, &'v Value)>,
}

impl<'de> MapAccess<'de> for ValueMap<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.pending = Some((k, v));
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.pending.take() {
            Some((k, v)) => seed
                .deserialize(ValueDe::new(v))
                .map_err(|e| e.at(|| PathSegment::Field(k.clone()))),
            None => Err(Error::msg("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// `{ variant = content }` as an externally tagged enum.
struct ValueEnum<'v> {
    key: &'v str,
    value: &'v Value,
}

impl<'de, 'v> EnumAccess<'de> for ValueEnum<'v> {
    type Error = Error;
    type Variant = ValueDe<'v>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, ValueDe<'v>), Error> {
        let v = seed.deserialize(self.key.into_deserializer())?;
        Ok((v, ValueDe::new(self.value)))
    }
}

impl<'de> VariantAccess<'de> for ValueDe<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;
    use crate::types::{Duration, OptionalSecret, TypedCapsule};
    use crate::value::{CapsuleValue, Secret};
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    /// Parses and decodes `src` as a file body; errors as `test:line:col: message` lines.
    fn decode_in<T: DeserializeOwned>(src: &str, scope: &Scope) -> Result<T, Vec<String>> {
        let (file, diags) = crate::parse(src);
        assert!(diags.is_empty(), "parse errors: {diags:?}");
        let sf = SourceFile::new("test", src);
        decode_body::<T>(file.body, &file, scope)
            .map_err(|d| d.iter().map(|d| sf.one_line(d)).collect())
    }

    fn decode<T: DeserializeOwned>(src: &str) -> Result<T, Vec<String>> {
        decode_in(src, &Scope::with_stdlib())
    }

    fn errors<T: DeserializeOwned + fmt::Debug>(src: &str) -> Vec<String> {
        match decode::<T>(src) {
            Ok(v) => panic!("expected errors, decoded {v:?}"),
            Err(e) => e,
        }
    }

    /// Decodes the first block of `src` with `decode_block_body`.
    fn decode_block<T: DeserializeOwned>(src: &str) -> Result<T, Vec<String>> {
        let (file, diags) = crate::parse(src);
        assert!(diags.is_empty(), "parse errors: {diags:?}");
        let Some(Stmt::Block(b)) = file.top_level().first() else {
            panic!("no block")
        };
        let sf = SourceFile::new("test", src);
        decode_block_body::<T>(b, &file, &Scope::with_stdlib())
            .map_err(|d| d.iter().map(|d| sf.one_line(d)).collect())
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Child {
        attr: bool,
    }
    impl Validate for Child {}

    // --- attributes ------------------------------------------------------------------------------------

    #[derive(Debug, Deserialize, PartialEq)]
    struct Attrs {
        number: i64,
        string: String,
        #[serde(default)]
        flag: bool,
        opt: Option<u16>,
    }

    #[test]
    fn decodes_required_and_optional_attributes() {
        let v: Attrs = decode("number = 15\nstring = \"Hello, world!\"\n").unwrap();
        assert_eq!(
            v,
            Attrs {
                number: 15,
                string: "Hello, world!".into(),
                flag: false,
                opt: None
            }
        );
        let v: Attrs = decode("number = 1 + 2\nstring = \"x\"\nflag = true\nopt = 8080\n").unwrap();
        assert_eq!(
            v,
            Attrs {
                number: 3,
                string: "x".into(),
                flag: true,
                opt: Some(8080)
            }
        );
    }

    #[test]
    fn struct_defaults_apply_before_decoding() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(default)]
        struct Args {
            scheme: String,
            interval: Duration,
            follow_redirects: bool,
        }
        impl Default for Args {
            fn default() -> Self {
                Args {
                    scheme: "http".into(),
                    interval: Duration::from_secs(15),
                    follow_redirects: true,
                }
            }
        }
        let v: Args = decode("scheme = \"https\"\n").unwrap();
        assert_eq!(
            v,
            Args {
                scheme: "https".into(),
                interval: Duration::from_secs(15),
                follow_redirects: true
            }
        );
        let v: Args = decode("interval = \"1m\"\nfollow_redirects = false\n").unwrap();
        assert_eq!(v.interval, Duration::from_secs(60));
        assert!(!v.follow_redirects);
        assert_eq!(v.scheme, "http");
    }

    #[test]
    fn missing_required_attribute_is_positioned_on_the_block() {
        let errs = decode_block::<Attrs>("some_block {\n  number = 15\n}\n").unwrap_err();
        assert_eq!(
            errs,
            vec![r#"test:1:1: missing required attribute "string""#]
        );
        let errs = errors::<Attrs>("string = \"x\"\n");
        assert_eq!(
            errs,
            vec![r#"test:1:1: missing required attribute "number""#]
        );
    }

    #[test]
    fn duplicate_and_unknown_attributes() {
        let errs = errors::<Attrs>("number = 1\nstring = \"a\"\nnumber = 2\nzz = 3\n");
        assert_eq!(
            errs,
            vec![
                r#"test:3:1: attribute "number" may only be provided once"#,
                r#"test:4:1: unrecognized attribute name "zz""#,
            ]
        );
    }

    #[test]
    fn type_errors_quote_the_innermost_literal() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Target {
            key: Key,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Key {
            object: Obj,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Obj {
            field1: Vec<i64>,
        }
        assert_eq!(
            errors::<Target>("key = true"),
            vec!["test:1:7: true should be object, got bool"]
        );
        let src = "\nkey = {\n\tobject = {\n\t\tfield1 = [15, 30, \"Hello, world!\"],\n\t},\n}\n";
        assert_eq!(
            errors::<Target>(src),
            vec![r#"test:4:21: "Hello, world!" should be number, got string"#]
        );

        let mut scope = Scope::with_stdlib();
        let field1 = Value::array(vec![
            Value::int(15),
            Value::int(30),
            Value::string("Hello, world!"),
        ]);
        let object: crate::value::Object = [("field1".to_string(), field1)].into_iter().collect();
        let kv: crate::value::Object = [("object".to_string(), Value::object(object))]
            .into_iter()
            .collect();
        scope.insert("key_value", Value::object(kv));
        assert_eq!(
            decode_in::<Target>("key = key_value", &scope).unwrap_err(),
            vec!["test:1:7: key_value.object.field1[2] should be number, got string"]
        );

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            key: String,
        }
        assert_eq!(
            errors::<S>("key = [0, 1, 2]"),
            vec!["test:1:7: [0, 1, 2] should be string, got array"]
        );
    }

    #[test]
    fn conversions_in_attributes() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct C {
            s: String,
            n: i32,
            f: f64,
            t: u8,
            z: Vec<String>,
        }
        let v: C = decode("s = 12\nn = \"12\"\nf = \"1.5\"\nt = 3.9\nz = null\n").unwrap();
        assert_eq!(
            v,
            C {
                s: "12".into(),
                n: 12,
                f: 1.5,
                t: 3,
                z: vec![]
            }
        );
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct N {
            n: i32,
        }
        assert_eq!(
            errors::<N>("n = \"\""),
            vec![r#"test:1:5: "" should be number, got string"#]
        );
        assert_eq!(
            errors::<N>("n = \"-1.5\""),
            vec![r#"test:1:5: "-1.5" should be number, got string"#]
        );
        assert_eq!(
            errors::<N>("n = 3000000000"),
            vec!["test:1:5: 3000000000 number 3000000000 is out of range (-2147483648 to 2147483647)"]
        );
    }

    #[test]
    fn duration_errors_quote_the_expression() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct D {
            timeout: Duration,
        }
        assert_eq!(
            errors::<D>("timeout = \"abc\""),
            vec![r#"test:1:11: "abc" time: invalid duration "abc""#]
        );
        assert_eq!(
            errors::<D>("timeout = 5"),
            vec![r#"test:1:11: 5 time: missing unit in duration "5""#]
        );
    }

    // --- blocks ----------------------------------------------------------------------------------------

    #[derive(Debug, Deserialize, PartialEq)]
    struct WithChild {
        value: i64,
        #[serde(rename = "child.block")]
        child: Block<Child>,
    }

    #[test]
    fn decodes_nested_blocks() {
        let v: WithChild = decode("value = 15\n\nchild.block { attr = true }\n").unwrap();
        assert_eq!(
            v,
            WithChild {
                value: 15,
                child: Block(Child { attr: true })
            }
        );
    }

    #[test]
    fn decodes_repeated_and_optional_blocks() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct B {
            #[serde(default, rename = "child.block")]
            children: Vec<Block<Child>>,
            other: Option<Block<Child>>,
        }
        let v: B = decode("child.block { attr = true }\nchild.block { attr = false }\nchild.block { attr = true }\n").unwrap();
        let attrs: Vec<bool> = v.children.iter().map(|c| c.attr).collect();
        assert_eq!(attrs, vec![true, false, true]);
        assert_eq!(v.other, None);
        let v: B = decode("other { attr = true }\n").unwrap();
        assert!(v.children.is_empty());
        assert_eq!(v.other, Some(Block(Child { attr: true })));
    }

    #[test]
    fn block_kind_mismatches() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct B {
            child: Block<Child>,
            number: Option<i64>,
        }
        assert_eq!(
            errors::<B>("child = 15\n"),
            vec![r#"test:1:1: "child" must be a block, but is used as an attribute"#]
        );
        assert_eq!(
            errors::<B>("child { attr = true }\nnumber { }\n"),
            vec![r#"test:2:1: "number" must be an attribute, but is used as a block"#]
        );
        assert_eq!(
            errors::<B>("child { attr = true }\nchild { attr = false }\nchild { attr = false }\n"),
            vec![r#"test:1:1: block "child" may only be specified once"#]
        );
        assert_eq!(
            errors::<B>("number = 1\n"),
            vec![r#"test:1:1: missing required block "child""#]
        );
        assert_eq!(
            errors::<WithChild>("value = 15\nchild.blocc { attr = true }\n"),
            vec![
                r#"test:2:1: unrecognized block name "child.blocc""#,
                r#"test:1:1: missing required block "child.block""#
            ]
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn labels() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Labeled {
            #[serde(rename = "$label")]
            label: String,
            #[serde(default)]
            attr: bool,
        }
        impl Validate for Labeled {}
        #[derive(Debug, Deserialize, PartialEq)]
        struct OptLabel {
            #[serde(rename = "$label")]
            label: Option<String>,
        }
        impl Validate for OptLabel {}
        #[derive(Debug, Deserialize, PartialEq)]
        struct B {
            #[serde(default)]
            x: Vec<Block<Labeled>>,
            #[serde(default)]
            y: Vec<LabeledBlock<Child>>,
            z: Option<Block<OptLabel>>,
            w: Option<Block<Child>>,
        }
        let v: B =
            decode("x \"a\" { attr = true }\nx \"b\" { }\ny \"c\" { attr = false }\nz { }\n")
                .unwrap();
        assert_eq!(
            v.x.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(v.x[0].attr);
        assert_eq!(
            v.y,
            vec![LabeledBlock {
                label: "c".into(),
                body: Child { attr: false }
            }]
        );
        assert_eq!(v.z, Some(Block(OptLabel { label: None })));
        let v: B = decode("z \"q\" { }\n").unwrap();
        assert_eq!(
            v.z,
            Some(Block(OptLabel {
                label: Some("q".into())
            }))
        );

        assert_eq!(
            errors::<B>("x { }\n"),
            vec![r#"test:1:1: block "x" requires non-empty label"#]
        );
        assert_eq!(
            errors::<B>("x \"\" { }\n"),
            vec![r#"test:1:1: block "x" requires non-empty label"#]
        );
        assert_eq!(
            errors::<B>("y { attr = true }\n"),
            vec![r#"test:1:1: block "y" requires non-empty label"#]
        );
        assert_eq!(
            errors::<B>("w \"l\" { attr = true }\n"),
            vec![r#"test:1:1: block "w" does not support specifying labels"#]
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Target {
        enabled: bool,
        #[serde(default)]
        path: Option<String>,
    }
    impl Validate for Target {}

    #[derive(Debug, Deserialize, PartialEq)]
    struct Custom {
        #[serde(rename = "$label")]
        name: String,
        path: String,
    }
    impl Validate for Custom {}

    #[derive(Debug, Deserialize, PartialEq)]
    enum Profile {
        #[serde(rename = "memory")]
        Memory(Block<Target>),
        #[serde(rename = "process_cpu")]
        Cpu(Target),
        #[serde(rename = "custom")]
        Custom(Block<Custom>),
    }

    #[test]
    fn enum_blocks_keep_source_order() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct P {
            #[serde(default)]
            profile: Vec<Profile>,
        }
        let src = "profile.custom \"fg\" { path = \"/x\" }\nprofile.memory { enabled = false }\nprofile.process_cpu { enabled = true }\nprofile.memory { enabled = true }\n";
        let v: P = decode(src).unwrap();
        assert_eq!(
            v.profile,
            vec![
                Profile::Custom(Block(Custom {
                    name: "fg".into(),
                    path: "/x".into()
                })),
                Profile::Memory(Block(Target {
                    enabled: false,
                    path: None
                })),
                Profile::Cpu(Target {
                    enabled: true,
                    path: None
                }),
                Profile::Memory(Block(Target {
                    enabled: true,
                    path: None
                })),
            ]
        );
        assert_eq!(
            errors::<P>("profile.memory { enabled = true }\nprofile.heap { enabled = true }\n"),
            vec![r#"test:2:1: unrecognized block name "profile.heap""#]
        );
        assert_eq!(
            errors::<P>("profile = 1\n"),
            vec![r#"test:1:11: 1 should be array, got number"#]
        );
    }

    #[test]
    fn plain_dotted_block_names() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct P {
            #[serde(rename = "profile.memory")]
            memory: Option<Block<Target>>,
            #[serde(default, rename = "profile.custom")]
            custom: Vec<Block<Custom>>,
        }
        let v: P = decode("profile.custom \"a\" { path = \"/a\" }\nprofile.memory { enabled = true }\nprofile.custom \"b\" { path = \"/b\" }\n").unwrap();
        assert_eq!(
            v.memory,
            Some(Block(Target {
                enabled: true,
                path: None
            }))
        );
        assert_eq!(
            v.custom.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(
            errors::<P>("profile.memory { enabled = true }\nprofile.memory { enabled = true }\n"),
            vec![r#"test:1:1: block "profile.memory" may only be specified once"#]
        );
        assert_eq!(
            errors::<P>("profile.block { enabled = true }\n"),
            vec![r#"test:1:1: unrecognized block name "profile.block""#]
        );
    }

    #[test]
    fn nested_errors_have_positions_inside_blocks() {
        let errs = errors::<WithChild>("value = 1\nchild.block {\n  attr = 12\n  bogus = 1\n}\n");
        assert_eq!(
            errs,
            vec![
                r#"test:3:10: 12 should be bool, got number"#,
                r#"test:4:3: unrecognized attribute name "bogus""#
            ]
        );
        let errs = errors::<WithChild>("value = 1\nchild.block { }\n");
        assert_eq!(errs, vec![r#"test:2:1: missing required attribute "attr""#]);
    }

    #[test]
    fn independent_errors_are_all_reported_once() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Many {
            a: i64,
            b: String,
            c: bool,
            #[serde(default)]
            d: Vec<Block<Child>>,
            e: i64,
        }
        let src = "a = \"x\"\nb = [1]\nc = 1\nd { attr = \"no\" }\nd { attr = 2 }\nq = 1\ne = 1\n";
        assert_eq!(
            errors::<Many>(src),
            vec![
                r#"test:1:5: "x" should be number, got string"#,
                r#"test:2:5: [1] should be string, got array"#,
                r#"test:3:5: 1 should be bool, got number"#,
                r#"test:4:12: "no" should be bool, got string"#,
                r#"test:5:12: 2 should be bool, got number"#,
                r#"test:6:1: unrecognized attribute name "q""#,
            ]
        );
    }

    #[test]
    fn evaluation_errors_are_collected_with_decode_errors() {
        let errs = errors::<Attrs>("number = nope\nstring = 1 + \"a\"\nflag = 3\n");
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0], r#"test:1:10: identifier "nope" does not exist"#);
        assert_eq!(errs[1], r#"test:2:14: "a" should be number, got string"#);
        assert_eq!(errs[2], "test:3:8: 3 should be bool, got number");
    }

    #[test]
    fn validation_runs_after_decoding_and_is_positioned() {
        #[derive(Debug, Deserialize)]
        struct Inner {
            n: i64,
        }
        impl Validate for Inner {
            fn validate(&self) -> Result<(), String> {
                if self.n > 0 {
                    Ok(())
                } else {
                    Err("n must be positive".into())
                }
            }
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            inner: Option<Block<Inner>>,
            #[serde(default)]
            timeout: i64,
        }
        impl Validate for Outer {
            fn validate(&self) -> Result<(), String> {
                if self.timeout < 0 {
                    Err("timeout must not be negative".into())
                } else {
                    Ok(())
                }
            }
        }
        let src = "x {\n  inner {\n    n = 0\n  }\n  timeout = -1\n}\n";
        let (file, _) = crate::parse(src);
        let Some(Stmt::Block(b)) = file.top_level().first() else {
            panic!()
        };
        let sf = SourceFile::new("test", src);
        let errs: Vec<String> =
            decode_block_body_validated::<Outer>(b, &file, &Scope::with_stdlib())
                .unwrap_err()
                .iter()
                .map(|d| sf.one_line(d))
                .collect();
        assert_eq!(errs, vec!["test:2:3: n must be positive"]);
        let src = "x {\n  inner {\n    n = 1\n  }\n  timeout = -1\n}\n";
        let (file, _) = crate::parse(src);
        let Some(Stmt::Block(b)) = file.top_level().first() else {
            panic!()
        };
        let errs =
            decode_block_body_validated::<Outer>(b, &file, &Scope::with_stdlib()).unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].message, "timeout must not be negative");
        assert_eq!(errs.0[0].span, block_header(b));
        // A block that failed to decode is not validated (its value is incomplete).
        let src = "x {\n  inner {\n    n = \"a\"\n  }\n}\n";
        let (file, _) = crate::parse(src);
        let Some(Stmt::Block(b)) = file.top_level().first() else {
            panic!()
        };
        let errs =
            decode_block_body_validated::<Outer>(b, &file, &Scope::with_stdlib()).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs:?}");
        assert_eq!(errs.0[0].message, r#""a" should be number, got string"#);
    }

    #[test]
    fn maps_from_blocks_and_attributes() {
        #[derive(Debug, Deserialize)]
        struct M {
            #[serde(default)]
            labels: HashMap<String, String>,
            settings: Option<Block<BTreeMap<String, Value>>>,
        }
        let v: M =
            decode("labels = { a = \"1\", \"b-c\" = 2 }\nsettings {\n  x = 1\n  y = \"z\"\n}\n")
                .unwrap();
        assert_eq!(v.labels.get("b-c").map(String::as_str), Some("2"));
        let settings = v.settings.unwrap();
        assert_eq!(settings.get("x"), Some(&Value::int(1)));
        assert_eq!(
            errors::<M>("settings \"l\" {\n  inner { }\n}\n"),
            vec![
                r#"test:1:1: block "settings" requires empty label"#,
                "test:2:3: nested blocks not supported here"
            ]
        );
    }

    #[test]
    fn unknown_key_in_object_attribute() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct O {
            o: Inner,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            a: i64,
        }
        assert_eq!(
            errors::<O>("o = { a = 1, b = 2 }"),
            vec![r#"test:1:5: { a = 1, b = 2 } has unrecognized field "b""#]
        );
        assert_eq!(
            errors::<O>("o = { }"),
            vec![r#"test:1:5: { } is missing required field "a""#]
        );
    }

    // --- capsules and secrets --------------------------------------------------------------------------

    #[derive(Debug)]
    struct Receiver(&'static str);
    impl CapsuleValue for Receiver {
        fn type_name(&self) -> &str {
            "pyroscope.Appendable"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[derive(Debug)]
    struct Other;
    impl CapsuleValue for Other {
        fn type_name(&self) -> &str {
            "other.Thing"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn receivers_scope() -> Scope {
        let mut scope = Scope::with_stdlib();
        for (comp, name) in [("a", "A"), ("b", "B")] {
            let exports: crate::value::Object = [(
                "receiver".to_string(),
                Value::Capsule(Capsule::new(Receiver(name))),
            )]
            .into_iter()
            .collect();
            let write: crate::value::Object = [(comp.to_string(), Value::object(exports))]
                .into_iter()
                .collect();
            scope.insert(format!("write_{comp}"), Value::object(write));
        }
        scope.insert("thing", Value::Capsule(Capsule::new(Other)));
        scope.insert("token", Value::secret("s3cr3t"));
        scope
    }

    #[test]
    fn arrays_of_capsules_decode_into_typed_capsules() {
        #[derive(Debug, Deserialize)]
        struct F {
            forward_to: Vec<TypedCapsule<Receiver>>,
            #[serde(default)]
            raw: Option<Capsule>,
        }
        let scope = receivers_scope();
        let v: F = decode_in(
            "forward_to = [write_a.a.receiver, write_b.b.receiver]\nraw = thing\n",
            &scope,
        )
        .unwrap();
        assert_eq!(
            v.forward_to.iter().map(|r| r.get().0).collect::<Vec<_>>(),
            vec!["A", "B"]
        );
        assert_eq!(
            v.raw.map(|c| c.0.type_name().to_string()),
            Some("other.Thing".to_string())
        );
        let errs =
            decode_in::<F>("forward_to = [write_a.a.receiver, thing]\n", &scope).unwrap_err();
        assert_eq!(
            errs,
            vec![r#"test:1:35: thing expected capsule("Receiver"), got capsule("other.Thing")"#]
        );
        let errs = decode_in::<F>("forward_to = [\"x\"]\n", &scope).unwrap_err();
        assert_eq!(
            errs,
            vec![r#"test:1:15: "x" should be capsule, got string"#]
        );
    }

    #[test]
    fn secrets() {
        #[derive(Debug, Deserialize)]
        struct S {
            password: Option<Secret>,
            #[allow(dead_code)]
            user: Option<String>,
            id: Option<OptionalSecret>,
        }
        let scope = receivers_scope();
        let v: S = decode_in("password = \"p\"\nid = token\n", &scope).unwrap();
        assert_eq!(v.password.as_ref().map(Secret::expose), Some("p"));
        let id = v.id.unwrap();
        assert!(id.is_secret());
        assert_eq!(id.expose(), "s3cr3t");
        let v: S = decode_in("password = token\nid = \"plain\"\n", &scope).unwrap();
        assert_eq!(v.password.unwrap().expose(), "s3cr3t");
        assert_eq!(v.id.unwrap().as_plain(), Some("plain"));
        let errs = decode_in::<S>("user = token\n", &scope).unwrap_err();
        assert_eq!(
            errs,
            vec!["test:1:8: token secrets may not be converted into strings"]
        );
        let errs = decode_in::<S>("password = 12\n", &scope).unwrap_err();
        assert_eq!(errs, vec!["test:1:12: 12 should be capsule, got number"]);
    }

    // --- decode_value ----------------------------------------------------------------------------------

    #[test]
    fn decode_value_conversions() {
        assert_eq!(decode_value::<i64>(&Value::string("12")), Ok(12));
        assert_eq!(decode_value::<i64>(&Value::string("-12")), Ok(-12));
        assert_eq!(decode_value::<f64>(&Value::string("1e3")), Ok(1000.0));
        assert!(decode_value::<u64>(&Value::string("+5")).is_err());
        assert!(decode_value::<f64>(&Value::string("inf")).is_err());
        assert_eq!(
            decode_value::<i64>(&Value::string(""))
                .unwrap_err()
                .to_string(),
            "should be number, got string"
        );
        assert_eq!(decode_value::<i64>(&Value::float(2.9)), Ok(2));
        assert_eq!(decode_value::<i64>(&Value::float(-2.9)), Ok(-2));
        assert_eq!(
            decode_value::<String>(&Value::float(1.5)),
            Ok("1.5".to_string())
        );
        assert_eq!(
            decode_value::<String>(&Value::uint(u64::MAX)),
            Ok(u64::MAX.to_string())
        );
        assert_eq!(decode_value::<String>(&Value::Null), Ok(String::new()));
        assert_eq!(decode_value::<i32>(&Value::Null), Ok(0));
        assert_eq!(decode_value::<Option<i32>>(&Value::Null), Ok(None));
        assert_eq!(decode_value::<Vec<i32>>(&Value::Null), Ok(vec![]));
        assert!(decode_value::<u8>(&Value::int(256)).is_err());
        assert!(decode_value::<u32>(&Value::int(-1)).is_err());
        assert!(decode_value::<i64>(&Value::float(f64::NAN)).is_err());
        assert!(decode_value::<bool>(&Value::string("true")).is_err());
        assert_eq!(
            decode_value::<(i64, String)>(&Value::array(vec![Value::int(1), Value::int(2)])),
            Ok((1, "2".into()))
        );
        assert_eq!(
            decode_value::<(i64, i64)>(&Value::array(vec![Value::int(1)]))
                .unwrap_err()
                .message,
            "array must have exactly 2 elements, got 1"
        );
    }

    #[test]
    fn decode_value_error_paths() {
        let obj: crate::value::Object = [(
            "list".to_string(),
            Value::array(vec![Value::int(1), Value::Bool(true)]),
        )]
        .into_iter()
        .collect();
        let err = decode_value::<HashMap<String, Vec<i64>>>(&Value::object(obj)).unwrap_err();
        assert_eq!(
            err.path,
            vec![PathSegment::Field("list".into()), PathSegment::Index(1)]
        );
        assert_eq!(err.to_string(), ".list[1] should be number, got bool");
    }

    #[test]
    fn decode_value_enums_and_raw_values() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Level {
            Info,
            Debug,
        }
        assert_eq!(
            decode_value::<Level>(&Value::string("debug")),
            Ok(Level::Debug)
        );
        assert!(decode_value::<Level>(&Value::string("verbose"))
            .unwrap_err()
            .message
            .contains("unknown variant"));
        let v = Value::array(vec![Value::secret("x"), Value::int(1)]);
        assert_eq!(decode_value::<Value>(&v), Ok(v.clone()));
        assert_eq!(decode_value::<Vec<Value>>(&v).map(|x| x.len()), Ok(2));
        // A capsule passes through a raw Value untouched.
        let c = Value::Capsule(Capsule::new(Other));
        assert_eq!(decode_value::<Value>(&c), Ok(c.clone()));
        // Secrets never turn into strings, not even through `any`.
        assert!(decode_value::<serde_json::Value>(&Value::secret("x")).is_err());
    }

    #[test]
    fn decode_expr_positions_errors() {
        let src = "[1, \"x\"]";
        let (file, _) = crate::parse(&format!("a = {src}"));
        let Some(Stmt::Attribute(a)) = file.top_level().first() else {
            panic!()
        };
        let full = format!("a = {src}");
        let errs = decode_expr::<Vec<i64>>(&a.value, &file, &Scope::with_stdlib()).unwrap_err();
        assert_eq!(errs.0[0].message, r#""x" should be number, got string"#);
        assert_eq!(errs.0[0].span.text(&full), "\"x\"");
    }

    #[test]
    fn flow_style_component_arguments() {
        #[derive(Debug, Deserialize)]
        #[serde(default)]
        struct ScrapeArgs {
            targets: Vec<HashMap<String, String>>,
            forward_to: Vec<TypedCapsule<Receiver>>,
            job_name: Option<String>,
            scrape_interval: Duration,
            scrape_timeout: Duration,
            #[serde(rename = "profiling_config")]
            profiling: Option<Block<ProfilingConfig>>,
            clustering: Option<Block<Clustering>>,
        }
        impl Default for ScrapeArgs {
            fn default() -> Self {
                ScrapeArgs {
                    targets: vec![],
                    forward_to: vec![],
                    job_name: None,
                    scrape_interval: Duration::from_secs(15),
                    scrape_timeout: Duration::from_secs(15),
                    profiling: None,
                    clustering: None,
                }
            }
        }
        #[derive(Debug, Deserialize, Default)]
        #[serde(default)]
        struct ProfilingConfig {
            #[serde(rename = "profile.memory")]
            memory: Option<Block<Target>>,
            #[serde(rename = "profile.custom")]
            custom: Vec<Block<Custom>>,
            path_prefix: String,
        }
        impl Validate for ProfilingConfig {}
        #[derive(Debug, Deserialize)]
        struct Clustering {
            enabled: bool,
        }
        impl Validate for Clustering {}

        let src = r#"pyroscope.scrape "default" {
  targets    = [{"__address__" = "localhost:4100", "service_name" = "app"}]
  forward_to = [write_a.a.receiver]
  scrape_interval = "30s"

  profiling_config {
    profile.memory {
      enabled = false
    }
    profile.custom "fgprof" {
      path = "/debug/fgprof"
    }
    path_prefix = "/pre"
  }

  clustering {
    enabled = true
  }
}
"#;
        let (file, diags) = crate::parse(src);
        assert!(diags.is_empty());
        let Some(Stmt::Block(b)) = file.top_level().first() else {
            panic!()
        };
        let args: ScrapeArgs = decode_block_body(b, &file, &receivers_scope()).unwrap();
        assert_eq!(args.targets[0]["__address__"], "localhost:4100");
        assert_eq!(args.forward_to.len(), 1);
        assert_eq!(args.scrape_interval.to_string(), "30s");
        assert_eq!(args.scrape_timeout.to_string(), "15s");
        let p = args.profiling.unwrap();
        assert_eq!(p.memory.as_ref().map(|m| m.enabled), Some(false));
        assert_eq!(p.custom[0].name, "fgprof");
        assert_eq!(p.path_prefix, "/pre");
        assert!(args.clustering.unwrap().enabled);
    }

    #[test]
    fn any_input_never_panics() {
        // Arbitrary (valid) configs against a rich target type: only diagnostics, no panic.
        let inputs = [
            "",
            "profile = [1]\nprofile.memory { }\n",
            "a { b { c { d = 1 } } }\n",
            "x = {a = [1, {b = 2}]}\nx = 1\n",
            "profile.custom { }\nprofile.custom \"a\" { path = 1 }\n",
            "forward_to = [1, null, \"x\"]\n",
        ];
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Rich {
            #[serde(default)]
            profile: Vec<Profile>,
            #[serde(default)]
            x: HashMap<String, Value>,
            a: Option<Block<HashMap<String, Value>>>,
            #[serde(default)]
            forward_to: Vec<Capsule>,
        }
        for src in inputs {
            let _ = decode::<Rich>(src);
        }
    }
    #[test]
    fn repeated_block_fields_reject_attributes() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct R {
            #[serde(default)]
            rule: Vec<Block<Child>>,
            single: Option<Block<Child>>,
        }
        assert_eq!(
            errors::<R>("rule = [{ attr = true }]\n"),
            vec![r#"test:1:1: "rule" must be a block, but is used as an attribute"#]
        );
        assert_eq!(
            errors::<R>("single = { attr = true }\nsingle { attr = true }\n"),
            vec![r#"test:1:1: "single" must be a block, but is used as an attribute"#]
        );
    }

    #[test]
    fn unit_variants_and_marker_blocks() {
        #[derive(Debug, Deserialize, PartialEq)]
        enum Kind {
            #[serde(rename = "cpu")]
            Cpu,
            #[serde(rename = "mem")]
            Mem(Block<Child>),
        }
        #[derive(Debug, Deserialize, PartialEq)]
        struct K {
            #[serde(default)]
            kind: Vec<Kind>,
            marker: Option<Block<()>>,
        }
        let v: K = decode("kind.cpu { }\nkind.mem { attr = true }\nmarker { }\n").unwrap();
        assert_eq!(
            v.kind,
            vec![Kind::Cpu, Kind::Mem(Block(Child { attr: true }))]
        );
        assert_eq!(v.marker, Some(Block(())));
        assert_eq!(
            errors::<K>("kind.cpu { x = 1 }\nmarker { y = 2 }\n"),
            vec![
                r#"test:1:12: unrecognized attribute name "x""#,
                r#"test:2:10: unrecognized attribute name "y""#,
            ]
        );
        assert_eq!(
            errors::<K>("kind { }\n"),
            vec![r#"test:1:1: unrecognized block name "kind""#]
        );
    }

    #[test]
    fn errors_inside_labeled_blocks_and_enum_variants() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct L {
            #[serde(default)]
            endpoint: Vec<LabeledBlock<Child>>,
            #[serde(default)]
            profile: Vec<Profile>,
        }
        let src = "endpoint \"a\" {\n  attr = 1\n}\nendpoint \"b\" { }\nprofile.memory { enabled = \"x\" }\nprofile.custom \"c\" { }\n";
        assert_eq!(
            errors::<L>(src),
            vec![
                "test:2:10: 1 should be bool, got number",
                r#"test:4:1: missing required attribute "attr""#,
                r#"test:5:28: "x" should be bool, got string"#,
                r#"test:6:1: missing required attribute "path""#,
            ]
        );
    }

    /// Every conformance config, decoded into permissive and strict targets: diagnostics, never a panic.
    #[test]
    fn conformance_configs_never_panic() {
        #[derive(Debug, Deserialize)]
        struct Nothing {}
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/agent-docs/valid");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut checked = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("river") {
                continue;
            }
            let Ok(src) = std::fs::read_to_string(&path) else {
                continue;
            };
            let (file, _) = crate::parse(&src);
            let scope = Scope::with_stdlib();
            let top = decode_body::<Nothing>(file.body, &file, &scope);
            if file.top_level().is_empty() {
                assert!(top.is_ok());
            } else {
                assert!(top.is_err(), "{}", path.display());
            }
            for stmt in file.top_level() {
                if let Stmt::Block(b) = stmt {
                    let _ = decode_block_body::<HashMap<String, Value>>(b, &file, &scope);
                    let _ = decode_block_body::<Nothing>(b, &file, &scope);
                }
            }
            checked += 1;
        }
        assert!(
            checked > 400,
            "only {checked} configs found in {}",
            dir.display()
        );
    }
}
