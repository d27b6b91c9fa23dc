//! Encoding Rust values as River values (component exports) and argument structs as body trees (for the UI).
//!
//! [`to_value`] turns anything `Serialize` into a [`Value`]: structs become objects (fields in declaration
//! order), maps become objects with sorted keys (so the result does not depend on hash order), `Option::None`
//! becomes `null`, unit enum variants become strings, [`Duration`](crate::types::Duration)s their Go text.
//! Capsules, secrets, functions and raw [`Value`]s pass through unchanged.
//!
//! [`encode_body`] turns an argument struct into statements, using the same conventions as decoding
//! ([`crate::decode`]): [`Block`](crate::decode::Block) fields become blocks, `Vec<Block<T>>` repeated blocks,
//! `Vec<Enum>` of data-carrying variants become `field.variant` blocks, a `$label` field the block's label;
//! `None` fields and empty lists are left out.

use crate::decode::{stash_put, stash_take, BLOCK_MAGIC, LABELED_MAGIC, LABEL_FIELD, RAW_MAGIC};
use crate::value::{Function, Number, Object, Value};
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};
use std::fmt;

/// Why a Rust value could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

/// A body as statements: what the UI shows for a component's arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedBody {
    /// The statements in field order.
    pub stmts: Vec<EncodedStmt>,
}

/// One encoded statement.
#[derive(Clone, Debug, PartialEq)]
pub enum EncodedStmt {
    /// `name = value`
    Attribute {
        /// The attribute name.
        name: String,
        /// Its value.
        value: Value,
    },
    /// `name "label" { body }`
    Block {
        /// The dotted block name.
        name: String,
        /// The label, if any.
        label: Option<String>,
        /// The block's statements.
        body: EncodedBody,
    },
}

/// Encodes any serializable value as a River value.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, EncodeError> {
    v.serialize(ValueSer)
}

/// Encodes an argument struct (or a string-keyed map) as a body.
pub fn encode_body<T: Serialize + ?Sized>(v: &T) -> Result<EncodedBody, EncodeError> {
    let parts = v.serialize(BodySer)?;
    Ok(flatten(parts.fields))
}

/// [`encode_body`], leaving out every top-level field whose value equals the one in `T::default()` (as the
/// reference hides optional arguments left at their defaults).
pub fn encode_body_hiding_defaults<T: Serialize + Default>(
    v: &T,
) -> Result<EncodedBody, EncodeError> {
    let parts = v.serialize(BodySer)?;
    let defaults = T::default().serialize(BodySer)?;
    let fields = parts
        .fields
        .into_iter()
        .filter(|(name, repr)| {
            !defaults
                .fields
                .iter()
                .any(|(n, d)| n == name && repr_eq(repr, d))
        })
        .collect();
    Ok(flatten(fields))
}

impl Serialize for Value {
    /// River serializers get the value itself; others a plain structural form in which secrets are `(secret)`,
    /// capsules `capsule("type")` and functions `function`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        stash_put(self.clone());
        let r = s.serialize_newtype_struct(RAW_MAGIC, &Structural(self));
        let _ = stash_take();
        r
    }
}

impl Serialize for Function {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::Function(self.clone()).serialize(s)
    }
}

/// A [`Value`] written out field by field for serializers other than River's.
struct Structural<'a>(&'a Value);

impl Serialize for Structural<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(Number::Int(i)) => s.serialize_i64(*i),
            Value::Number(Number::Uint(u)) => s.serialize_u64(*u),
            Value::Number(Number::Float(f)) => s.serialize_f64(*f),
            Value::String(x) => s.serialize_str(x),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for it in items.iter() {
                    seq.serialize_element(&Structural(it))?;
                }
                seq.end()
            }
            Value::Object(obj) => {
                let mut map = s.serialize_map(Some(obj.len()))?;
                for (k, v) in obj.iter() {
                    map.serialize_entry(k, &Structural(v))?;
                }
                map.end()
            }
            Value::Function(_) => s.serialize_str("function"),
            Value::Capsule(c) => s.serialize_str(&format!("capsule({:?})", c.0.type_name())),
            Value::Secret(_) => s.serialize_str("(secret)"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Rust → Value
// ---------------------------------------------------------------------------------------------------------

/// Serializes into a [`Value`].
#[derive(Clone, Copy)]
struct ValueSer;

impl Serializer for ValueSer {
    type Ok = Value;
    type Error = EncodeError;
    type SerializeSeq = SeqSer;
    type SerializeTuple = SeqSer;
    type SerializeTupleStruct = SeqSer;
    type SerializeTupleVariant = VariantSeqSer;
    type SerializeMap = MapSer;
    type SerializeStruct = StructSer;
    type SerializeStructVariant = VariantStructSer;

    fn serialize_bool(self, v: bool) -> Result<Value, EncodeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, EncodeError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, EncodeError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, EncodeError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, EncodeError> {
        Ok(Value::int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, EncodeError> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::uint(u))
        } else {
            Ok(Value::float(v as f64))
        }
    }
    fn serialize_u8(self, v: u8) -> Result<Value, EncodeError> {
        Ok(Value::uint(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, EncodeError> {
        Ok(Value::uint(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, EncodeError> {
        Ok(Value::uint(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, EncodeError> {
        Ok(Value::uint(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, EncodeError> {
        Ok(u64::try_from(v)
            .map(Value::uint)
            .unwrap_or_else(|_| Value::float(v as f64)))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, EncodeError> {
        Ok(Value::float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, EncodeError> {
        Ok(Value::float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, EncodeError> {
        Ok(Value::string(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<Value, EncodeError> {
        Ok(Value::string(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, EncodeError> {
        Ok(Value::array(
            v.iter().map(|b| Value::uint((*b).into())).collect(),
        ))
    }
    fn serialize_none(self) -> Result<Value, EncodeError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, EncodeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, EncodeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, EncodeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
    ) -> Result<Value, EncodeError> {
        Ok(Value::string(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Value, EncodeError> {
        if name == RAW_MAGIC {
            if let Some(val) = stash_take() {
                return Ok(val);
            }
        }
        if name == LABELED_MAGIC {
            // (label, body): in a value, only the body.
            return match v.serialize(self)? {
                Value::Array(pair) => Ok(pair.get(1).cloned().unwrap_or_default()),
                other => Ok(other),
            };
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Value, EncodeError> {
        let mut obj = Object::with_capacity(1);
        obj.insert(variant.to_string(), v.serialize(self)?);
        Ok(Value::object(obj))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer, EncodeError> {
        Ok(SeqSer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSer, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSeqSer, EncodeError> {
        Ok(VariantSeqSer {
            variant,
            seq: self.serialize_seq(Some(len))?,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSer, EncodeError> {
        Ok(MapSer {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<StructSer, EncodeError> {
        Ok(StructSer {
            obj: Object::with_capacity(len),
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _idx: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantStructSer, EncodeError> {
        Ok(VariantStructSer {
            variant,
            inner: StructSer {
                obj: Object::with_capacity(len),
            },
        })
    }
}

struct SeqSer {
    items: Vec<Value>,
}

impl ser::SerializeSeq for SeqSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.items.push(v.serialize(ValueSer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, EncodeError> {
        Ok(Value::array(self.items))
    }
}

impl ser::SerializeTuple for SeqSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        SerializeSeq::end(self)
    }
}

struct VariantSeqSer {
    variant: &'static str,
    seq: SeqSer,
}

impl ser::SerializeTupleVariant for VariantSeqSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        SerializeSeq::serialize_element(&mut self.seq, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        let mut obj = Object::with_capacity(1);
        obj.insert(self.variant.to_string(), SerializeSeq::end(self.seq)?);
        Ok(Value::object(obj))
    }
}

struct MapSer {
    entries: Vec<(String, Value)>,
    key: Option<String>,
}

impl ser::SerializeMap for MapSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), EncodeError> {
        self.key = Some(k.serialize(KeySer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| EncodeError("map value without a key".into()))?;
        self.entries.push((key, v.serialize(ValueSer)?));
        Ok(())
    }
    fn end(mut self) -> Result<Value, EncodeError> {
        // Maps have no inherent order; sorting makes the result deterministic.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Value::object(self.entries.into_iter().collect()))
    }
}

struct StructSer {
    obj: Object,
}

impl ser::SerializeStruct for StructSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        if key != LABEL_FIELD {
            self.obj.insert(key.to_string(), v.serialize(ValueSer)?);
        }
        Ok(())
    }
    fn end(self) -> Result<Value, EncodeError> {
        Ok(Value::object(self.obj))
    }
}

struct VariantStructSer {
    variant: &'static str,
    inner: StructSer,
}

impl ser::SerializeStructVariant for VariantStructSer {
    type Ok = Value;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> Result<Value, EncodeError> {
        let mut obj = Object::with_capacity(1);
        obj.insert(self.variant.to_string(), SerializeStruct::end(self.inner)?);
        Ok(Value::object(obj))
    }
}

/// Map keys: strings, and scalars written as strings.
struct KeySer;

fn key_err() -> EncodeError {
    EncodeError("object keys must be strings".into())
}

impl Serializer for KeySer {
    type Ok = String;
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<String, EncodeError>;
    type SerializeTuple = ser::Impossible<String, EncodeError>;
    type SerializeTupleStruct = ser::Impossible<String, EncodeError>;
    type SerializeTupleVariant = ser::Impossible<String, EncodeError>;
    type SerializeMap = ser::Impossible<String, EncodeError>;
    type SerializeStruct = ser::Impossible<String, EncodeError>;
    type SerializeStructVariant = ser::Impossible<String, EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_f64(self, v: f64) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, EncodeError> {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_none(self) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<String, EncodeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_unit_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<String, EncodeError> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        v: &T,
    ) -> Result<String, EncodeError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        _variant: &'static str,
        _v: &T,
    ) -> Result<String, EncodeError> {
        Err(key_err())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(key_err())
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(key_err())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(key_err())
    }
    fn serialize_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(key_err())
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(key_err())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Rust → body
// ---------------------------------------------------------------------------------------------------------

/// A block's label and fields before flattening.
#[derive(Debug, Default)]
struct Parts {
    label: Option<String>,
    fields: Vec<(String, Repr)>,
}

/// How one field (or list element) is shown in a body.
#[derive(Debug)]
enum Repr {
    /// Nothing (`None`, empty list).
    Skip,
    /// An attribute value.
    Value(Value),
    /// A block.
    Block(Parts),
    /// A block named `field.variant`.
    Variant(String, Parts),
    /// A list, resolved when the field is flattened.
    Seq(Vec<Repr>),
}

fn repr_eq(a: &Repr, b: &Repr) -> bool {
    match (a, b) {
        (Repr::Skip, Repr::Skip) => true,
        (Repr::Value(x), Repr::Value(y)) => x == y,
        (Repr::Block(x), Repr::Block(y)) => parts_eq(x, y),
        (Repr::Variant(v, x), Repr::Variant(w, y)) => v == w && parts_eq(x, y),
        (Repr::Seq(x), Repr::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| repr_eq(a, b))
        }
        _ => false,
    }
}

fn parts_eq(a: &Parts, b: &Parts) -> bool {
    a.label == b.label
        && a.fields.len() == b.fields.len()
        && a.fields
            .iter()
            .zip(&b.fields)
            .all(|((n, x), (m, y))| n == m && repr_eq(x, y))
}

/// A list element or field that is not a block, as a value.
fn repr_value(r: Repr) -> Value {
    match r {
        Repr::Skip => Value::Null,
        Repr::Value(v) => v,
        Repr::Seq(items) => Value::array(items.into_iter().map(repr_value).collect()),
        Repr::Block(p) => parts_value(p),
        Repr::Variant(name, p) => {
            let mut obj = Object::with_capacity(1);
            obj.insert(name, parts_value(p));
            Value::object(obj)
        }
    }
}

fn parts_value(p: Parts) -> Value {
    Value::object(
        p.fields
            .into_iter()
            .map(|(n, r)| (n, repr_value(r)))
            .collect(),
    )
}

fn block_stmt(name: String, p: Parts) -> EncodedStmt {
    EncodedStmt::Block {
        name,
        label: p.label,
        body: flatten(p.fields),
    }
}

fn flatten(fields: Vec<(String, Repr)>) -> EncodedBody {
    let mut stmts = Vec::with_capacity(fields.len());
    for (name, repr) in fields {
        match repr {
            Repr::Skip => {}
            Repr::Value(value) => stmts.push(EncodedStmt::Attribute { name, value }),
            Repr::Block(p) => stmts.push(block_stmt(name, p)),
            Repr::Variant(v, p) => stmts.push(block_stmt(format!("{name}.{v}"), p)),
            Repr::Seq(items) => {
                let blocks = items
                    .iter()
                    .all(|r| matches!(r, Repr::Block(_) | Repr::Variant(..)));
                if items.is_empty() {
                    continue;
                }
                if blocks {
                    for r in items {
                        match r {
                            Repr::Block(p) => stmts.push(block_stmt(name.clone(), p)),
                            Repr::Variant(v, p) => stmts.push(block_stmt(format!("{name}.{v}"), p)),
                            _ => {}
                        }
                    }
                } else {
                    stmts.push(EncodedStmt::Attribute {
                        name,
                        value: repr_value(Repr::Seq(items)),
                    });
                }
            }
        }
    }
    EncodedBody { stmts }
}

fn body_err() -> EncodeError {
    EncodeError("only structs and string-keyed maps can be encoded as a body".into())
}

/// Serializes a struct or map into [`Parts`].
struct BodySer;

impl Serializer for BodySer {
    type Ok = Parts;
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<Parts, EncodeError>;
    type SerializeTuple = LabeledSer;
    type SerializeTupleStruct = ser::Impossible<Parts, EncodeError>;
    type SerializeTupleVariant = ser::Impossible<Parts, EncodeError>;
    type SerializeMap = BodyMapSer;
    type SerializeStruct = BodyStructSer;
    type SerializeStructVariant = ser::Impossible<Parts, EncodeError>;

    fn serialize_bool(self, _v: bool) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_i64(self, _v: i64) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_u64(self, _v: u64) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_f64(self, _v: f64) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_i8(self, _v: i8) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_i16(self, _v: i16) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_i32(self, _v: i32) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_u8(self, _v: u8) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_u16(self, _v: u16) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_u32(self, _v: u32) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_f32(self, _v: f32) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_char(self, _v: char) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_str(self, _v: &str) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Parts, EncodeError> {
        Err(body_err())
    }
    fn serialize_none(self) -> Result<Parts, EncodeError> {
        Ok(Parts::default())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Parts, EncodeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Parts, EncodeError> {
        Ok(Parts::default())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Parts, EncodeError> {
        Ok(Parts::default())
    }
    fn serialize_unit_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
    ) -> Result<Parts, EncodeError> {
        Ok(Parts::default())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        v: &T,
    ) -> Result<Parts, EncodeError> {
        // Block<T> and LabeledBlock<T> (a (label, body) tuple) both land here.
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        _variant: &'static str,
        v: &T,
    ) -> Result<Parts, EncodeError> {
        v.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(body_err())
    }
    fn serialize_tuple(self, _len: usize) -> Result<LabeledSer, EncodeError> {
        Ok(LabeledSer {
            label: None,
            body: None,
            index: 0,
        })
    }
    fn serialize_tuple_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(body_err())
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(body_err())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<BodyMapSer, EncodeError> {
        Ok(BodyMapSer {
            parts: Parts::default(),
            key: None,
        })
    }
    fn serialize_struct(self, _n: &'static str, len: usize) -> Result<BodyStructSer, EncodeError> {
        Ok(BodyStructSer {
            parts: Parts {
                label: None,
                fields: Vec::with_capacity(len),
            },
        })
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(body_err())
    }
}

/// `(label, body)` of a [`LabeledBlock`](crate::decode::LabeledBlock).
struct LabeledSer {
    label: Option<String>,
    body: Option<Parts>,
    index: usize,
}

impl ser::SerializeTuple for LabeledSer {
    type Ok = Parts;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        match self.index {
            0 => match v.serialize(ValueSer)? {
                Value::String(s) => self.label = Some(s.to_string()),
                _ => return Err(EncodeError("a block label must be a string".into())),
            },
            1 => self.body = Some(v.serialize(BodySer)?),
            _ => return Err(body_err()),
        }
        self.index += 1;
        Ok(())
    }
    fn end(self) -> Result<Parts, EncodeError> {
        let mut parts = self.body.unwrap_or_default();
        parts.label = self.label.filter(|l| !l.is_empty());
        Ok(parts)
    }
}

struct BodyStructSer {
    parts: Parts,
}

impl ser::SerializeStruct for BodyStructSer {
    type Ok = Parts;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        if key == LABEL_FIELD {
            if let Value::String(s) = v.serialize(ValueSer)? {
                self.parts.label = Some(s.to_string()).filter(|l| !l.is_empty());
            }
            return Ok(());
        }
        let repr = v.serialize(FieldSer)?;
        self.parts.fields.push((key.to_string(), repr));
        Ok(())
    }
    fn end(self) -> Result<Parts, EncodeError> {
        Ok(self.parts)
    }
}

struct BodyMapSer {
    parts: Parts,
    key: Option<String>,
}

impl ser::SerializeMap for BodyMapSer {
    type Ok = Parts;
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), EncodeError> {
        self.key = Some(k.serialize(KeySer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| EncodeError("map value without a key".into()))?;
        self.parts
            .fields
            .push((key, Repr::Value(v.serialize(ValueSer)?)));
        Ok(())
    }
    fn end(mut self) -> Result<Parts, EncodeError> {
        self.parts.fields.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(self.parts)
    }
}

/// Serializes one field of a body (or one element of a list field) into a [`Repr`].
struct FieldSer;

macro_rules! field_as_value {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method(self, v: $ty) -> Result<Repr, EncodeError> {
                ValueSer.$method(v).map(Repr::Value)
            }
        )*
    };
}

impl Serializer for FieldSer {
    type Ok = Repr;
    type Error = EncodeError;
    type SerializeSeq = FieldSeqSer;
    type SerializeTuple = ValueAdapter<SeqSer>;
    type SerializeTupleStruct = ValueAdapter<SeqSer>;
    type SerializeTupleVariant = ValueAdapter<VariantSeqSer>;
    type SerializeMap = ValueAdapter<MapSer>;
    type SerializeStruct = ValueAdapter<StructSer>;
    type SerializeStructVariant = VariantBlockSer;

    field_as_value! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_u128(u128), serialize_f32(f32), serialize_f64(f64), serialize_char(char), serialize_str(&str),
        serialize_bytes(&[u8]),
    }

    fn serialize_none(self) -> Result<Repr, EncodeError> {
        Ok(Repr::Skip)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Repr, EncodeError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Repr, EncodeError> {
        Ok(Repr::Value(Value::Null))
    }
    fn serialize_unit_struct(self, _n: &'static str) -> Result<Repr, EncodeError> {
        Ok(Repr::Value(Value::Null))
    }
    fn serialize_unit_variant(
        self,
        n: &'static str,
        i: u32,
        variant: &'static str,
    ) -> Result<Repr, EncodeError> {
        ValueSer
            .serialize_unit_variant(n, i, variant)
            .map(Repr::Value)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<Repr, EncodeError> {
        if name == BLOCK_MAGIC || name == LABELED_MAGIC {
            return v.serialize(BodySer).map(Repr::Block);
        }
        if name == RAW_MAGIC {
            return ValueSer.serialize_newtype_struct(name, v).map(Repr::Value);
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<Repr, EncodeError> {
        Ok(Repr::Variant(variant.to_string(), v.serialize(BodySer)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<FieldSeqSer, EncodeError> {
        Ok(FieldSeqSer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<ValueAdapter<SeqSer>, EncodeError> {
        Ok(ValueAdapter(ValueSer.serialize_tuple(len)?))
    }
    fn serialize_tuple_struct(
        self,
        n: &'static str,
        len: usize,
    ) -> Result<ValueAdapter<SeqSer>, EncodeError> {
        Ok(ValueAdapter(ValueSer.serialize_tuple_struct(n, len)?))
    }
    fn serialize_tuple_variant(
        self,
        n: &'static str,
        i: u32,
        v: &'static str,
        len: usize,
    ) -> Result<ValueAdapter<VariantSeqSer>, EncodeError> {
        Ok(ValueAdapter(
            ValueSer.serialize_tuple_variant(n, i, v, len)?,
        ))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<ValueAdapter<MapSer>, EncodeError> {
        Ok(ValueAdapter(ValueSer.serialize_map(len)?))
    }
    fn serialize_struct(
        self,
        n: &'static str,
        len: usize,
    ) -> Result<ValueAdapter<StructSer>, EncodeError> {
        Ok(ValueAdapter(ValueSer.serialize_struct(n, len)?))
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBlockSer, EncodeError> {
        Ok(VariantBlockSer {
            variant,
            inner: BodyStructSer {
                parts: Parts {
                    label: None,
                    fields: Vec::with_capacity(len),
                },
            },
        })
    }
}

/// Wraps a value serializer so that its result is a [`Repr::Value`].
struct ValueAdapter<S>(S);

impl ser::SerializeTuple for ValueAdapter<SeqSer> {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeTuple::serialize_element(&mut self.0, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        ser::SerializeTuple::end(self.0).map(Repr::Value)
    }
}

impl ser::SerializeTupleStruct for ValueAdapter<SeqSer> {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeTupleStruct::serialize_field(&mut self.0, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        ser::SerializeTupleStruct::end(self.0).map(Repr::Value)
    }
}

impl ser::SerializeTupleVariant for ValueAdapter<VariantSeqSer> {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        ser::SerializeTupleVariant::serialize_field(&mut self.0, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        ser::SerializeTupleVariant::end(self.0).map(Repr::Value)
    }
}

impl ser::SerializeMap for ValueAdapter<MapSer> {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), EncodeError> {
        SerializeMap::serialize_key(&mut self.0, k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        SerializeMap::serialize_value(&mut self.0, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        SerializeMap::end(self.0).map(Repr::Value)
    }
}

impl ser::SerializeStruct for ValueAdapter<StructSer> {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        SerializeStruct::serialize_field(&mut self.0, key, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        SerializeStruct::end(self.0).map(Repr::Value)
    }
}

/// The elements of a list field.
struct FieldSeqSer {
    items: Vec<Repr>,
}

impl ser::SerializeSeq for FieldSeqSer {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        self.items.push(v.serialize(FieldSer)?);
        Ok(())
    }
    fn end(self) -> Result<Repr, EncodeError> {
        Ok(Repr::Seq(self.items))
    }
}

/// A struct variant of an enum block list: `field.variant { ... }`.
struct VariantBlockSer {
    variant: &'static str,
    inner: BodyStructSer,
}

impl ser::SerializeStructVariant for VariantBlockSer {
    type Ok = Repr;
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> Result<Repr, EncodeError> {
        Ok(Repr::Variant(self.variant.to_string(), self.inner.parts))
    }
}

impl<T: Serialize> Serialize for crate::decode::Block<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(BLOCK_MAGIC, &self.0)
    }
}

impl<T: Serialize> Serialize for crate::decode::LabeledBlock<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(LABELED_MAGIC, &(&self.label, &self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Block, LabeledBlock};
    use crate::types::Duration;
    use crate::value::{Capsule, CapsuleValue, Secret};
    use serde::Serialize;
    use std::collections::HashMap;

    #[derive(Debug)]
    struct Recv;
    impl CapsuleValue for Recv {
        fn type_name(&self) -> &str {
            "test.Recv"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn exports_become_values() {
        #[derive(Serialize)]
        struct Exports {
            receiver: Capsule,
            targets: Vec<HashMap<String, String>>,
            token: Secret,
            count: u32,
            ratio: f64,
            name: Option<String>,
            every: Duration,
        }
        let c = Capsule::new(Recv);
        let mut t = HashMap::new();
        t.insert("b".to_string(), "2".to_string());
        t.insert("a".to_string(), "1".to_string());
        t.insert("c".to_string(), "3".to_string());
        let v = to_value(&Exports {
            receiver: c.clone(),
            targets: vec![t],
            token: Secret::new("pw"),
            count: 3,
            ratio: 0.5,
            name: None,
            every: Duration::from_secs(90),
        })
        .unwrap();
        let Value::Object(o) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            ["receiver", "targets", "token", "count", "ratio", "name", "every"]
        );
        assert_eq!(o["receiver"], Value::Capsule(c));
        let Value::Array(targets) = &o["targets"] else {
            panic!()
        };
        let Value::Object(t0) = &targets[0] else {
            panic!()
        };
        // Map keys are sorted for a deterministic result.
        assert_eq!(t0.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(matches!(&o["token"], Value::Secret(s) if s.expose() == "pw"));
        assert_eq!(o["count"], Value::uint(3));
        assert_eq!(o["ratio"], Value::float(0.5));
        assert_eq!(o["name"], Value::Null);
        assert_eq!(o["every"], Value::string("1m30s"));
    }

    #[test]
    fn raw_values_and_enums_pass_through() {
        #[derive(Serialize)]
        #[serde(rename_all = "lowercase")]
        enum Health {
            Healthy,
            Detail { why: String },
        }
        let raw = obj(&[
            ("x", Value::secret("s")),
            ("f", Value::Capsule(Capsule::new(Recv))),
        ]);
        assert_eq!(to_value(&raw), Ok(raw.clone()));
        assert_eq!(to_value(&Health::Healthy), Ok(Value::string("healthy")));
        assert_eq!(
            to_value(&Health::Detail { why: "w".into() }),
            Ok(obj(&[("detail", obj(&[("why", Value::string("w"))]))]))
        );
        assert_eq!(
            to_value(&(1i8, "a")),
            Ok(Value::array(vec![Value::int(1), Value::string("a")]))
        );
        // Other serializers see secrets and capsules only as placeholders.
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            r#"{"x":"(secret)","f":"capsule(\"test.Recv\")"}"#
        );
    }

    #[derive(Serialize, Default)]
    struct Child {
        attr: bool,
    }

    #[derive(Serialize, Default)]
    struct Labeled {
        #[serde(rename = "$label")]
        label: String,
        n: i32,
    }

    #[derive(Serialize)]
    enum Stage {
        #[serde(rename = "json")]
        Json(Block<Child>),
        #[serde(rename = "regex")]
        Regex { expression: String },
    }

    #[derive(Serialize, Default)]
    struct Args {
        number: i64,
        array: Vec<i64>,
        #[serde(rename = "labeled_block")]
        labeled: Vec<Block<Labeled>>,
        #[serde(rename = "inner_block")]
        blocks: Vec<Block<Child>>,
        endpoint: Vec<LabeledBlock<Child>>,
        stage: Vec<Stage>,
        #[serde(rename = "profile.memory")]
        memory: Option<Block<Child>>,
        unset: Option<String>,
    }

    fn args() -> Args {
        Args {
            number: 5,
            array: vec![1, 2, 3],
            labeled: vec![Block(Labeled {
                label: "label_a".into(),
                n: 1,
            })],
            blocks: vec![Block(Child { attr: true }), Block(Child { attr: false })],
            endpoint: vec![LabeledBlock {
                label: "e".into(),
                body: Child { attr: true },
            }],
            stage: vec![
                Stage::Regex {
                    expression: ".*".into(),
                },
                Stage::Json(Block(Child { attr: true })),
            ],
            memory: Some(Block(Child { attr: false })),
            unset: None,
        }
    }

    fn names(body: &EncodedBody) -> Vec<String> {
        body.stmts
            .iter()
            .map(|s| match s {
                EncodedStmt::Attribute { name, .. } => format!("{name}="),
                EncodedStmt::Block {
                    name,
                    label: Some(l),
                    ..
                } => format!("{name} {l:?}"),
                EncodedStmt::Block {
                    name, label: None, ..
                } => name.clone(),
            })
            .collect()
    }

    #[test]
    fn argument_structs_become_bodies() {
        let body = encode_body(&args()).unwrap();
        assert_eq!(
            names(&body),
            [
                "number=",
                "array=",
                "labeled_block \"label_a\"",
                "inner_block",
                "inner_block",
                "endpoint \"e\"",
                "stage.regex",
                "stage.json",
                "profile.memory",
            ]
        );
        let EncodedStmt::Block { body: inner, .. } = &body.stmts[2] else {
            panic!()
        };
        assert_eq!(
            inner.stmts,
            vec![EncodedStmt::Attribute {
                name: "n".into(),
                value: Value::int(1)
            }]
        );
        let EncodedStmt::Block { body: regex, .. } = &body.stmts[6] else {
            panic!()
        };
        assert_eq!(
            regex.stmts,
            vec![EncodedStmt::Attribute {
                name: "expression".into(),
                value: Value::string(".*")
            }]
        );
    }

    #[test]
    fn defaults_can_be_hidden() {
        let mut a = Args {
            number: 5,
            ..Default::default()
        };
        let body = encode_body_hiding_defaults(&a).unwrap();
        assert_eq!(names(&body), ["number="]);
        a.number = 0;
        assert!(encode_body_hiding_defaults(&a).unwrap().stmts.is_empty());
        // Without hiding, zero values still show (but None and empty lists never do).
        assert_eq!(names(&encode_body(&a).unwrap()), ["number="]);
    }

    #[test]
    fn maps_encode_as_sorted_attributes() {
        let mut m = HashMap::new();
        m.insert("z", 1);
        m.insert("a", 2);
        let body = encode_body(&m).unwrap();
        assert_eq!(names(&body), ["a=", "z="]);
        assert!(encode_body(&5).is_err());
    }

    #[test]
    fn decode_then_encode_round_trips() {
        #[derive(Debug, serde::Deserialize, Serialize, PartialEq)]
        struct R {
            a: i64,
            #[serde(default)]
            b: Vec<Block<RChild>>,
        }
        #[derive(Debug, serde::Deserialize, Serialize, PartialEq)]
        struct RChild {
            #[serde(rename = "$label")]
            label: Option<String>,
            s: String,
        }
        impl crate::decode::Validate for RChild {}
        let src = "a = 1\nb \"x\" { s = \"q\" }\nb { s = \"r\" }\n";
        let (file, _) = crate::parse(src);
        let r: R = crate::decode::decode_body(file.body, &file, &crate::eval::Scope::with_stdlib())
            .unwrap();
        let body = encode_body(&r).unwrap();
        assert_eq!(names(&body), ["a=", "b \"x\"", "b"]);
        assert_eq!(
            crate::decode::decode_value::<i64>(&to_value(&r.a).unwrap()),
            Ok(1)
        );
    }

    /// A value of every kind, nested: what the (de)serializer tests below pass around.
    fn every_kind() -> Value {
        obj(&[
            ("null", Value::Null),
            ("bool", Value::Bool(true)),
            ("int", Value::int(-3)),
            ("uint", Value::uint(u64::MAX)),
            ("float", Value::float(0.5)),
            ("string", Value::string("s")),
            (
                "list",
                Value::array(vec![
                    Value::secret("hunter2"),
                    Value::Capsule(Capsule::new(Recv)),
                    obj(&[(
                        "f",
                        Value::Function(Function::new("f", |_| Ok(Value::Null))),
                    )]),
                ]),
            ),
        ])
    }

    #[derive(Serialize, serde::Deserialize)]
    struct WithValue {
        name: String,
        value: Value,
    }

    /// Whether `a` and `b` share their allocation (arrays, objects and strings).
    fn same_allocation(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => std::sync::Arc::ptr_eq(x, y),
            (Value::Object(x), Value::Object(y)) => std::sync::Arc::ptr_eq(x, y),
            (Value::String(x), Value::String(y)) => std::sync::Arc::ptr_eq(x, y),
            _ => false,
        }
    }

    #[test]
    fn river_serde_hands_values_over_without_copying() {
        let v = every_kind();
        // Encoding: a struct field that is (or borrows) a Value shares it.
        #[derive(Serialize)]
        struct Exports<'a> {
            output: &'a Value,
            list: Vec<Value>,
        }
        let Value::Object(o) = &v else { panic!() };
        let out = to_value(&Exports {
            output: &v,
            list: vec![o["list"].clone()],
        })
        .unwrap();
        let Value::Object(fields) = &out else {
            panic!("{out:?}")
        };
        assert!(same_allocation(&fields["output"], &v));
        let Value::Array(list) = &fields["list"] else {
            panic!()
        };
        assert!(same_allocation(&list[0], &o["list"]));
        // Decoding: a Value (or a list or map of them) is the value itself.
        assert!(same_allocation(
            &crate::decode::decode_value::<Value>(&v).unwrap(),
            &v
        ));
        let map: HashMap<String, Value> = crate::decode::decode_value(&v).unwrap();
        assert!(same_allocation(&map["list"], &o["list"]));
        assert!(same_allocation(&map["string"], &o["string"]));
        // Through a block body, as components decode their arguments.
        let (file, diags) = crate::parse("input = x\nrest = [x, x.list]\n");
        assert!(diags.is_empty());
        let mut scope = crate::eval::Scope::with_stdlib();
        scope.insert("x", v.clone());
        #[derive(serde::Deserialize)]
        struct Args {
            input: Value,
            rest: Vec<Value>,
        }
        let args: Args = crate::decode::decode_body(file.body, &file, &scope).unwrap();
        assert!(same_allocation(&args.input, &v));
        assert!(same_allocation(&args.rest[0], &v));
        assert!(same_allocation(&args.rest[1], &o["list"]));
    }

    #[test]
    fn values_keep_their_kind_through_river_serde() {
        let v = every_kind();
        for round_trip in [
            to_value(&v).unwrap(),
            crate::decode::decode_value::<Value>(&v).unwrap(),
            to_value(&crate::decode::decode_value::<HashMap<String, Value>>(&v).unwrap()).unwrap(),
        ] {
            let Value::Object(o) = &round_trip else {
                panic!("{round_trip:?}")
            };
            assert!(matches!(o["int"], Value::Number(Number::Int(-3))));
            assert!(matches!(o["uint"], Value::Number(Number::Uint(u64::MAX))));
            assert!(matches!(o["float"], Value::Number(Number::Float(f)) if f == 0.5));
            let Value::Array(list) = &o["list"] else {
                panic!()
            };
            assert!(matches!(&list[0], Value::Secret(s) if s.expose() == "hunter2"));
            assert!(matches!(&list[1], Value::Capsule(c) if c.downcast_ref::<Recv>().is_some()));
            let Value::Object(f) = &list[2] else { panic!() };
            assert!(matches!(&f["f"], Value::Function(func) if func.name() == "f"));
        }
        // Nested in a struct decoded from River.
        let (file, _) = crate::parse("name = \"n\"\nvalue = x\n");
        let mut scope = crate::eval::Scope::with_stdlib();
        scope.insert("x", v.clone());
        let w: WithValue = crate::decode::decode_body(file.body, &file, &scope).unwrap();
        assert_eq!(w.name, "n");
        assert!(same_allocation(&w.value, &v));
    }

    /// The JSON that serde_json (and any other serializer) sees for [`every_kind`]: plain data, with secrets,
    /// capsules and functions as placeholders.
    const EVERY_KIND_JSON: &str = r#"{"null":null,"bool":true,"int":-3,"uint":18446744073709551615,"float":0.5,"string":"s","list":["(secret)","capsule(\"test.Recv\")",{"f":"function"}]}"#;

    #[test]
    fn other_serializers_see_plain_data() {
        let v = every_kind();
        assert_eq!(serde_json::to_string(&v).unwrap(), EVERY_KIND_JSON);
        let w = WithValue {
            name: "n".into(),
            value: v.clone(),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(json, format!(r#"{{"name":"n","value":{EVERY_KIND_JSON}}}"#));
        assert!(!json.contains("hunter2"));
        // Through serde_json's own value type too.
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::from_str::<serde_json::Value>(&json).unwrap()
        );
        // And back: JSON data becomes plain values (the placeholders are strings now).
        let back: WithValue = serde_json::from_str(&json).unwrap();
        assert_eq!(back.name, "n");
        assert_eq!(serde_json::to_string(&back.value).unwrap(), EVERY_KIND_JSON);
        let Value::Object(o) = &back.value else {
            panic!()
        };
        assert!(matches!(o["int"], Value::Number(Number::Int(-3))));
        assert!(matches!(o["uint"], Value::Number(Number::Uint(u64::MAX))));
        assert!(matches!(o["null"], Value::Null));
        let Value::Array(list) = &o["list"] else {
            panic!()
        };
        assert!(matches!(&list[0], Value::String(s) if &**s == "(secret)"));
        // A stale value must never leak out of the hand-over slot into a later, unrelated decode.
        let _ = to_value(&v).unwrap();
        let null: Value = serde_json::from_str("null").unwrap();
        assert!(null.is_null());
        let unit: WithValue = serde_json::from_str(r#"{"name":"n","value":null}"#).unwrap();
        assert!(unit.value.is_null());
    }

    #[test]
    fn riverjson_of_a_struct_with_a_value_field() {
        let w = WithValue {
            name: "n".into(),
            value: obj(&[
                ("s", Value::secret("hunter2")),
                ("c", Value::Capsule(Capsule::new(Recv))),
                ("n", Value::uint(3)),
            ]),
        };
        let expected = serde_json::json!([
            {"name": "name", "type": "attr", "value": {"type": "string", "value": "n"}},
            {"name": "value", "type": "attr", "value": {"type": "object", "value": [
                {"key": "s", "value": {"type": "capsule", "value": "(secret)"}},
                {"key": "c", "value": {"type": "capsule", "value": "capsule(\"test.Recv\")"}},
                {"key": "n", "value": {"type": "number", "value": 3}},
            ]}},
        ]);
        assert_eq!(crate::riverjson::marshal_body(&w).unwrap(), expected);
        assert_eq!(
            crate::riverjson::marshal_value(&w.value).unwrap(),
            expected[1]["value"]
        );
    }
}
