//! The JSON form of River bodies and values used by the UI API ("riverjson").
//!
//! - attribute: `{"name": N, "type": "attr", "value": V}`
//! - block: `{"name": N, "type": "block", "label": L, "body": [...]}` (`label` left out when empty)
//! - value V: `{"type": "null|number|string|bool|array|object|function|capsule", "value": ...}`; arrays hold
//!   Vs, objects `[{"key": K, "value": V}]` in the object's order, functions `"function"`, capsules
//!   `capsule("type")` and secrets `(secret)`: secret text never appears.

use crate::decode::{EvalBody, EvalStmt};
use crate::encode::{
    encode_body, encode_body_hiding_defaults, to_value, EncodeError, EncodedBody, EncodedStmt,
};
use crate::value::{Number, Value};
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

/// A value in riverjson form.
pub fn value_to_json(v: &Value) -> Json {
    let (ty, value) = match v {
        Value::Null => ("null", Json::Null),
        Value::Bool(b) => ("bool", Json::Bool(*b)),
        Value::Number(n) => ("number", number_json(*n)),
        Value::String(s) => ("string", Json::String(s.to_string())),
        Value::Array(items) => (
            "array",
            Json::Array(items.iter().map(value_to_json).collect()),
        ),
        Value::Object(obj) => (
            "object",
            Json::Array(
                obj.iter()
                    .map(|(k, v)| json!({"key": k, "value": value_to_json(v)}))
                    .collect(),
            ),
        ),
        Value::Function(_) => ("function", Json::String("function".into())),
        Value::Capsule(c) => (
            "capsule",
            Json::String(format!("capsule({:?})", c.0.type_name())),
        ),
        Value::Secret(_) => ("capsule", Json::String("(secret)".into())),
    };
    let mut m = Map::with_capacity(2);
    m.insert("type".into(), Json::String(ty.into()));
    m.insert("value".into(), value);
    Json::Object(m)
}

/// Numbers as the reference shows them (float64): integral values print without a fraction.
fn number_json(n: Number) -> Json {
    match n {
        Number::Int(i) => Json::from(i),
        Number::Uint(u) => Json::from(u),
        Number::Float(f)
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 =>
        {
            Json::from(f as i64)
        }
        // NaN and infinities have no JSON form.
        Number::Float(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
    }
}

/// An encoded body in riverjson form.
pub fn body_to_json(body: &EncodedBody) -> Json {
    Json::Array(body.stmts.iter().map(stmt_to_json).collect())
}

fn stmt_to_json(stmt: &EncodedStmt) -> Json {
    match stmt {
        EncodedStmt::Attribute { name, value } => attr_json(name, value),
        EncodedStmt::Block { name, label, body } => {
            block_json(name, label.as_deref(), body_to_json(body))
        }
    }
}

fn attr_json(name: &str, value: &Value) -> Json {
    let mut m = Map::with_capacity(3);
    m.insert("name".into(), Json::String(name.into()));
    m.insert("type".into(), Json::String("attr".into()));
    m.insert("value".into(), value_to_json(value));
    Json::Object(m)
}

fn block_json(name: &str, label: Option<&str>, body: Json) -> Json {
    let mut m = Map::with_capacity(4);
    m.insert("name".into(), Json::String(name.into()));
    m.insert("type".into(), Json::String("block".into()));
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        m.insert("label".into(), Json::String(l.into()));
    }
    m.insert("body".into(), body);
    Json::Object(m)
}

/// An evaluated (not yet decoded) body in riverjson form; attributes that failed to evaluate show `null`.
pub fn eval_body_to_json(body: &EvalBody<'_>) -> Json {
    Json::Array(
        body.stmts
            .iter()
            .map(|s| match s {
                EvalStmt::Attribute(a) => {
                    attr_json(a.name, a.value.as_ref().unwrap_or(&Value::Null))
                }
                EvalStmt::Block(b) => block_json(&b.name, b.label, eval_body_to_json(&b.body)),
            })
            .collect(),
    )
}

/// Any serializable value (e.g. a component's exports field) in riverjson value form.
pub fn marshal_value<T: Serialize + ?Sized>(v: &T) -> Result<Json, EncodeError> {
    Ok(value_to_json(&to_value(v)?))
}

/// An argument (or export) struct as a riverjson body.
pub fn marshal_body<T: Serialize + ?Sized>(v: &T) -> Result<Json, EncodeError> {
    Ok(body_to_json(&encode_body(v)?))
}

/// [`marshal_body`], leaving out top-level fields equal to their default.
pub fn marshal_body_hiding_defaults<T: Serialize + Default>(v: &T) -> Result<Json, EncodeError> {
    Ok(body_to_json(&encode_body_hiding_defaults(v)?))
}
