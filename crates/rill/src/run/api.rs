//! The JSON API used by UIs, in the reference's shapes: `/api/v0/web/components`,
//! `/api/v0/web/components/{id}` and `/api/v0/web/peers`.

use flow::{ComponentInfo, Health, Peer};
use serde_json::{json, Value};

/// A component as the API shows it. The list leaves out `arguments`, `exports` and `debugInfo`, as the
/// reference does; the single-component view has them.
pub fn component_json(info: &ComponentInfo, detail: bool) -> Value {
    let mut v = json!({
        "name": info.name,
        "type": "block",
        "localID": info.id,
        "moduleID": "",
        "label": info.label,
        "referencesTo": info.references_to,
        "referencedBy": info.referenced_by,
        "health": health_json(&info.health),
    });
    if detail {
        if let Value::Object(m) = &mut v {
            m.insert("arguments".into(), body_or_empty(&info.arguments));
            m.insert("exports".into(), value_as_body(&info.exports));
            m.insert("debugInfo".into(), value_as_body(&info.debug_info));
        }
    }
    v
}

/// `{"state","message","updatedTime"}` with an RFC 3339 time.
pub fn health_json(h: &Health) -> Value {
    json!({
        "state": h.state.as_str(),
        "message": h.message,
        "updatedTime": humantime::format_rfc3339_millis(h.updated).to_string(),
    })
}

/// A peer: `{"name","addr","isSelf","state"}`.
pub fn peer_json(p: &Peer) -> Value {
    json!({"name": p.name, "addr": p.addr, "isSelf": p.is_self, "state": p.state.as_str()})
}

/// A riverjson body (array of statements); anything else (not evaluated yet) is an empty body.
fn body_or_empty(v: &Value) -> Value {
    match v {
        Value::Array(_) => v.clone(),
        _ => Value::Array(vec![]),
    }
}

/// Exports and debug info are riverjson values; the API shows an object value as a body of attributes
/// (`{"name": key, "type": "attr", "value": V}`), as the reference does for its structs.
pub fn value_as_body(v: &Value) -> Value {
    match (v.get("type").and_then(Value::as_str), v.get("value")) {
        (Some("object"), Some(Value::Array(fields))) => Value::Array(
            fields
                .iter()
                .map(|f| {
                    json!({
                        "name": f.get("key").cloned().unwrap_or(Value::Null),
                        "type": "attr",
                        "value": f.get("value").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect(),
        ),
        (None, _) | (Some("null"), _) => Value::Array(vec![]),
        // A value that is not an object (a component's debug info may be a plain string).
        _ => Value::Array(vec![json!({"name": "value", "type": "attr", "value": v})]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_values_become_attribute_bodies() {
        let exports = json!({"type": "object", "value": [
            {"key": "content", "value": {"type": "capsule", "value": "(secret)"}}
        ]});
        assert_eq!(
            value_as_body(&exports),
            json!([{"name": "content", "type": "attr", "value": {"type": "capsule", "value": "(secret)"}}])
        );
        assert_eq!(value_as_body(&Value::Null), json!([]));
        assert_eq!(
            value_as_body(&json!({"type": "string", "value": "x"})),
            json!([{"name": "value", "type": "attr", "value": {"type": "string", "value": "x"}}])
        );
    }
}
