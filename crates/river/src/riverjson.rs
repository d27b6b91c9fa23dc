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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Block, LabeledBlock};
    use crate::value::{Capsule, CapsuleValue, Function, Secret};
    use std::collections::BTreeMap;

    fn j(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn values() {
        assert_eq!(
            value_to_json(&Value::Null),
            j(r#"{ "type": "null", "value": null }"#)
        );
        assert_eq!(
            value_to_json(&Value::int(54)),
            j(r#"{ "type": "number", "value": 54 }"#)
        );
        assert_eq!(
            value_to_json(&Value::float(2.0)),
            j(r#"{ "type": "number", "value": 2 }"#)
        );
        assert_eq!(
            value_to_json(&Value::float(1.5)),
            j(r#"{ "type": "number", "value": 1.5 }"#)
        );
        assert_eq!(
            value_to_json(&Value::string("Hello, world!")),
            j(r#"{ "type": "string", "value": "Hello, world!" }"#)
        );
        assert_eq!(
            value_to_json(&Value::Bool(true)),
            j(r#"{ "type": "bool", "value": true }"#)
        );
        assert_eq!(
            marshal_value(&vec![0, 1]).unwrap(),
            j(
                r#"{"type": "array", "value": [{ "type": "number", "value": 0 }, { "type": "number", "value": 1 }]}"#
            )
        );
        let mut m = BTreeMap::new();
        m.insert("foo", "bar");
        m.insert("fizz", "buzz");
        assert_eq!(
            marshal_value(&m).unwrap(),
            j(r#"{"type": "object", "value": [
                { "key": "fizz", "value": { "type": "string", "value": "buzz" }},
                { "key": "foo", "value": { "type": "string", "value": "bar" }}
            ]}"#)
        );
        let f = Function::new("f", |_| Ok(Value::Null));
        assert_eq!(
            value_to_json(&Value::Function(f)),
            j(r#"{ "type": "function", "value": "function" }"#)
        );
        assert_eq!(
            value_to_json(&Value::secret("foo")),
            j(r#"{ "type": "capsule", "value": "(secret)" }"#)
        );
        assert_eq!(
            marshal_value(&Vec::<i32>::new()).unwrap(),
            j(r#"{ "type": "array", "value": [] }"#)
        );
        assert_eq!(
            marshal_value(&BTreeMap::<String, i32>::new()).unwrap(),
            j(r#"{ "type": "object", "value": [] }"#)
        );
        // Key order of the JSON object itself matches the reference.
        assert_eq!(
            value_to_json(&Value::Null).to_string(),
            r#"{"type":"null","value":null}"#
        );
    }

    #[derive(Debug)]
    struct Recv;
    impl CapsuleValue for Recv {
        fn type_name(&self) -> &str {
            "pyroscope.Appendable"
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn capsules_show_their_type() {
        assert_eq!(
            value_to_json(&Value::Capsule(Capsule::new(Recv))),
            j(r#"{ "type": "capsule", "value": "capsule(\"pyroscope.Appendable\")" }"#)
        );
    }

    #[derive(Serialize, Default)]
    struct TestBlock {
        #[serde(skip_serializing_if = "Option::is_none")]
        number: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        string: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        boolean: Option<bool>,
        array: Vec<i64>,
        labeled_block: Vec<LabeledBlock<TestBlock>>,
        inner_block: Vec<Block<TestBlock>>,
    }

    #[test]
    fn bodies() {
        let val = TestBlock {
            number: Some(5),
            array: vec![1, 2, 3],
            labeled_block: vec![
                LabeledBlock {
                    label: "label_a".into(),
                    body: TestBlock {
                        boolean: Some(true),
                        ..Default::default()
                    },
                },
                LabeledBlock {
                    label: "label_b".into(),
                    body: TestBlock {
                        string: Some("foo".into()),
                        ..Default::default()
                    },
                },
            ],
            inner_block: vec![
                Block(TestBlock {
                    string: Some("hello".into()),
                    ..Default::default()
                }),
                Block(TestBlock {
                    string: Some("world".into()),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        let expect = j(r#"[
            { "name": "number", "type": "attr", "value": { "type": "number", "value": 5 } },
            { "name": "array", "type": "attr", "value": { "type": "array", "value": [
                { "type": "number", "value": 1 }, { "type": "number", "value": 2 }, { "type": "number", "value": 3 }
            ]}},
            { "name": "labeled_block", "type": "block", "label": "label_a", "body": [
                { "name": "boolean", "type": "attr", "value": { "type": "bool", "value": true } }
            ]},
            { "name": "labeled_block", "type": "block", "label": "label_b", "body": [
                { "name": "string", "type": "attr", "value": { "type": "string", "value": "foo" } }
            ]},
            { "name": "inner_block", "type": "block", "body": [
                { "name": "string", "type": "attr", "value": { "type": "string", "value": "hello" } }
            ]},
            { "name": "inner_block", "type": "block", "body": [
                { "name": "string", "type": "attr", "value": { "type": "string", "value": "world" } }
            ]}
        ]"#);
        assert_eq!(marshal_body(&val).unwrap(), expect);
        assert_eq!(marshal_body(&TestBlock::default()).unwrap(), j("[]"));
        // An empty block still has a body array.
        #[derive(Serialize)]
        struct E {
            b: Block<BTreeMap<String, i32>>,
        }
        assert_eq!(
            marshal_body(&E {
                b: Block(BTreeMap::new())
            })
            .unwrap(),
            j(r#"[{ "name": "b", "type": "block", "body": [] }]"#)
        );
    }

    #[test]
    fn hide_defaults() {
        #[derive(Serialize)]
        struct D {
            name: String,
            age: i64,
        }
        impl Default for D {
            fn default() -> Self {
                D {
                    name: "John Doe".into(),
                    age: 35,
                }
            }
        }
        let jane = D {
            name: "Jane".into(),
            age: 41,
        };
        assert_eq!(
            marshal_body_hiding_defaults(&jane).unwrap(),
            j(r#"[
                { "name": "name", "type": "attr", "value": { "type": "string", "value": "Jane" }},
                { "name": "age", "type": "attr", "value": { "type": "number", "value": 41 }}
            ]"#)
        );
        let some = D {
            name: "John Doe".into(),
            age: 41,
        };
        assert_eq!(
            marshal_body_hiding_defaults(&some).unwrap(),
            j(r#"[{ "name": "age", "type": "attr", "value": { "type": "number", "value": 41 }}]"#)
        );
        assert_eq!(
            marshal_body_hiding_defaults(&D::default()).unwrap(),
            j("[]")
        );
    }

    #[test]
    fn secrets_never_leak() {
        #[derive(Serialize)]
        struct S {
            password: Secret,
            nested: Block<Inner>,
            list: Vec<Secret>,
            opt: crate::types::OptionalSecret,
        }
        #[derive(Serialize)]
        struct Inner {
            token: Secret,
        }
        let s = S {
            password: Secret::new("hunter2"),
            nested: Block(Inner {
                token: Secret::new("hunter3"),
            }),
            list: vec![Secret::new("hunter4")],
            opt: crate::types::OptionalSecret::secret("hunter5"),
        };
        let text = marshal_body(&s).unwrap().to_string();
        assert!(!text.contains("hunter"), "{text}");
        assert_eq!(text.matches("(secret)").count(), 4, "{text}");
        let text = marshal_value(&s).unwrap().to_string();
        assert!(!text.contains("hunter"), "{text}");
    }

    #[test]
    fn evaluated_bodies() {
        let src = "a = 1 + 1\nb \"l\" {\n  c = nope\n}\n";
        let (file, _) = crate::parse(src);
        let (tree, diags) =
            crate::decode::eval_body(file.body, &file, &crate::eval::Scope::with_stdlib());
        assert_eq!(diags.len(), 1);
        assert_eq!(
            eval_body_to_json(&tree),
            j(r#"[
                { "name": "a", "type": "attr", "value": { "type": "number", "value": 2 }},
                { "name": "b", "type": "block", "label": "l", "body": [
                    { "name": "c", "type": "attr", "value": { "type": "null", "value": null }}
                ]}
            ]"#)
        );
    }
}
