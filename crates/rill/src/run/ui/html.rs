//! HTML helpers: escaping, URL path segments, and riverjson bodies shown as highlighted River text.

use serde_json::Value;
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL path segment (component IDs are mostly `[A-Za-z0-9_.]`, labels may hold more).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A riverjson body (`[{"name","type":"attr"|"block",...}]`) as River text, HTML-escaped and highlighted.
/// An empty body gives an empty string.
pub fn river_body(body: &Value) -> String {
    let mut out = String::new();
    if let Value::Array(stmts) = body {
        body_into(&mut out, stmts, 0);
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn body_into(out: &mut String, stmts: &[Value], depth: usize) {
    // Align `=` of consecutive attributes, as `rill fmt` does.
    let width = stmts
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("attr"))
        .map(|s| str_field(s, "name").chars().count())
        .max()
        .unwrap_or(0);
    for stmt in stmts {
        let name = str_field(stmt, "name");
        indent(out, depth);
        match stmt.get("type").and_then(Value::as_str) {
            Some("block") => {
                let _ = write!(out, "<span class=\"blk\">{}</span>", escape(name));
                if let Some(label) = stmt.get("label").and_then(Value::as_str) {
                    let _ = write!(out, " <span class=\"str\">{}</span>", escape(&quote(label)));
                }
                out.push_str(" {\n");
                if let Some(Value::Array(inner)) = stmt.get("body") {
                    body_into(out, inner, depth + 1);
                }
                indent(out, depth);
                out.push_str("}\n");
            }
            _ => {
                let pad = width.saturating_sub(name.chars().count());
                let _ = write!(
                    out,
                    "<span class=\"attr\">{}</span>{} = ",
                    escape(name),
                    " ".repeat(pad)
                );
                value_into(out, stmt.get("value").unwrap_or(&Value::Null), depth);
                out.push('\n');
            }
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn is_scalar(v: &Value) -> bool {
    !matches!(
        v.get("type").and_then(Value::as_str),
        Some("array") | Some("object")
    )
}

/// A riverjson value `{"type","value"}` as River text.
fn value_into(out: &mut String, v: &Value, depth: usize) {
    let inner = v.get("value").unwrap_or(&Value::Null);
    match v.get("type").and_then(Value::as_str).unwrap_or("null") {
        "string" => {
            let _ = write!(
                out,
                "<span class=\"str\">{}</span>",
                escape(&quote(inner.as_str().unwrap_or("")))
            );
        }
        "number" | "bool" => {
            let _ = write!(
                out,
                "<span class=\"lit\">{}</span>",
                escape(&inner.to_string())
            );
        }
        "array" => {
            let items = inner.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if items.is_empty() {
                out.push_str("[]");
            } else if items.len() <= 4 && items.iter().all(is_scalar) {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    value_into(out, item, depth);
                }
                out.push(']');
            } else {
                out.push_str("[\n");
                for item in items {
                    indent(out, depth + 1);
                    value_into(out, item, depth + 1);
                    out.push_str(",\n");
                }
                indent(out, depth);
                out.push(']');
            }
        }
        "object" => {
            let fields = inner.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if fields.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for f in fields {
                let key = str_field(f, "key");
                indent(out, depth + 1);
                let key_text = if is_identifier(key) {
                    key.to_string()
                } else {
                    quote(key)
                };
                let _ = write!(out, "<span class=\"attr\">{}</span> = ", escape(&key_text));
                value_into(out, f.get("value").unwrap_or(&Value::Null), depth + 1);
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push('}');
        }
        "capsule" => {
            let text = inner.as_str().unwrap_or("capsule");
            let class = if text == "(secret)" { "secret" } else { "cap" };
            let _ = write!(out, "<span class=\"{class}\">{}</span>", escape(text));
        }
        "function" => out.push_str("<span class=\"cap\">function</span>"),
        _ => out.push_str("<span class=\"lit\">null</span>"),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The text without the highlighting tags.
    fn plain(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    #[test]
    fn bodies_render_as_river() {
        let body = json!([
            {"name": "filename", "type": "attr", "value": {"type": "string", "value": "/etc/<x>"}},
            {"name": "poll", "type": "attr", "value": {"type": "number", "value": 1}},
            {"name": "token", "type": "attr", "value": {"type": "capsule", "value": "(secret)"}},
            {"name": "targets", "type": "attr", "value": {"type": "array", "value": [
                {"type": "object", "value": [{"key": "__address__", "value": {"type": "string", "value": "h:1"}}]}
            ]}},
            {"name": "basic_auth", "type": "block", "label": "x", "body": [
                {"name": "username", "type": "attr", "value": {"type": "string", "value": "u"}}
            ]},
        ]);
        let html = river_body(&body);
        assert!(html.contains("&lt;x&gt;"), "escaped: {html}");
        assert!(html.contains("<span class=\"secret\">(secret)</span>"));
        assert_eq!(
            plain(&html),
            "filename = \"/etc/<x>\"\npoll     = 1\ntoken    = (secret)\ntargets  = [\n  {\n    __address__ = \"h:1\",\n  },\n]\nbasic_auth \"x\" {\n  username = \"u\"\n}\n"
        );
    }

    #[test]
    fn segments_and_escaping() {
        assert_eq!(path_segment("local.file.a_b"), "local.file.a_b");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
