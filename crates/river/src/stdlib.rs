//! The standard library: the functions and constants every expression can name.
//!
//! Both spellings of the reference are provided: Grafana Agent Flow's top-level names (`env`, `concat`,
//! `json_decode`, `format`, ...) and Alloy's namespaces (`sys.env`, `array.concat`, `encoding.from_json`,
//! `string.format`, ...). The two names of one function share a single [`Function`] value.
//!
//! Arguments are converted the way the reference decodes them into Go parameters: a number passed where a
//! string is expected becomes its decimal text, `null` becomes the empty value, a secret never becomes a
//! string ("secrets may not be converted into strings"), anything else is a type error.

use crate::ast::{Expr, ExprKind, File};
use crate::eval::Scope;
use crate::span::Span;
use crate::value::{Function, Number, Object, Value, ValueType};
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The shared standard-library scope, the parent of every evaluation scope. Built once, on first use.
pub fn scope() -> Arc<Scope> {
    shared_scope().clone()
}

/// The standard library's scope, never freed: evaluation scopes refer to it without counting references.
pub(crate) fn static_scope() -> &'static Scope {
    shared_scope()
}

fn shared_scope() -> &'static Arc<Scope> {
    static SCOPE: OnceLock<Arc<Scope>> = OnceLock::new();
    SCOPE.get_or_init(|| Arc::new(build_scope()))
}

/// Whether `name` is a top-level standard-library identifier (a function, namespace or `constants`).
pub fn is_stdlib_name(name: &str) -> bool {
    static_scope().lookup(name).is_some()
}

/// Every standard-library name, sorted: the top-level functions, and `namespace.member` for the members of
/// the namespaces and of `constants`.
pub fn names() -> Vec<String> {
    let scope = scope();
    let mut out = Vec::new();
    for name in scope.names() {
        match scope.lookup(name) {
            Some(Value::Object(members)) => {
                out.extend(members.keys().map(|m| format!("{name}.{m}")));
            }
            _ => out.push(name.to_string()),
        }
    }
    out.sort();
    out
}

/// Why a standard-library call failed, with what the reference needs to word and place the message.
///
/// The reference reports a failed call as the callee's source text followed by the message
/// (`env expected 1 args, got 0`, `encoding.to_json jsonEncode only supports map`), and an unusable argument
/// at that argument: its source text (or that of the array element at fault, when the argument is an array
/// literal), any remaining element path, then the problem (`obj should be string, got object`,
/// `arr[1] should be string, got bool`, `secret_val secrets may not be converted into strings`).
///
/// [`Function`] results carry only a message today, so callers see [`CallError::message`]; the structure is
/// here for the evaluator to place and word argument errors as the reference does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The call as a whole failed: wrong number of arguments, or the function's own error.
    Call(String),
    /// Argument `index` (0-based) could not be converted.
    Arg {
        /// Which argument.
        index: usize,
        /// The element indexes leading to the value at fault inside the argument (empty: the argument).
        elements: Vec<usize>,
        /// What was wrong with it.
        problem: ArgProblem,
    },
}

/// What was wrong with an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgProblem {
    /// The value has the wrong type: `expected string, got bool` on its own, `should be string, got bool`
    /// after the value's source text.
    Type {
        /// The type the parameter needs.
        expected: ValueType,
        /// The type it got.
        got: ValueType,
    },
    /// Any other conversion failure, worded the same with or without the source text
    /// (`secrets may not be converted into strings`).
    Other(String),
}

impl ArgProblem {
    /// The text that follows the value's source text in the reference's diagnostic.
    pub fn after_source_text(&self) -> Cow<'_, str> {
        match self {
            ArgProblem::Type { expected, got } => {
                Cow::Owned(format!("should be {expected}, got {got}"))
            }
            ArgProblem::Other(m) => Cow::Borrowed(m),
        }
    }
}

impl CallError {
    /// The message without source context, as the reference's error value prints it.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            CallError::Call(m)
            | CallError::Arg {
                problem: ArgProblem::Other(m),
                ..
            } => Cow::Borrowed(m),
            CallError::Arg {
                problem: ArgProblem::Type { expected, got },
                ..
            } => Cow::Owned(format!("expected {expected}, got {got}")),
        }
    }

    /// The same error, one array level further out: the fault is inside element `i` of the value.
    fn in_element(self, i: usize) -> Self {
        match self {
            CallError::Arg {
                index,
                mut elements,
                problem,
            } => {
                elements.insert(0, i);
                CallError::Arg {
                    index,
                    elements,
                    problem,
                }
            }
            other => other,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for CallError {}

/// Words and places a failed call as the reference does: a call error at the callee, after its source text
/// (`env expected 1 args, got 0`); an argument error at the argument, or at the element of an array literal
/// argument that is at fault, after its source text and any remaining element path
/// (`obj should be string, got object`, `true should be string, got bool` for `join(["a", true], ",")`,
/// `arr[1] should be string, got bool`). `func` and `args` are the call's callee and argument expressions,
/// nodes of `file`.
pub fn call_error_diagnostic(
    err: &CallError,
    func: &Expr,
    args: &[Expr],
    file: &File,
) -> (Span, String) {
    let src: &str = &file.source;
    match err {
        CallError::Call(m) => (func.span, format!("{} {m}", func.span.text(src))),
        CallError::Arg {
            index,
            elements,
            problem,
        } => {
            let Some(mut target) = args.get(*index) else {
                return (func.span, problem.after_source_text().into_owned());
            };
            let mut rest = &elements[..];
            while let (ExprKind::Array(items), Some((&i, tail))) = (target.kind, rest.split_first())
            {
                let Some(item) = file.exprs(items).get(i) else {
                    break;
                };
                target = item;
                rest = tail;
            }
            let mut message = target.span.text(src).to_string();
            for i in rest {
                message.push_str(&format!("[{i}]"));
            }
            message.push(' ');
            message.push_str(&problem.after_source_text());
            (target.span, message)
        }
    }
}

type StdResult = Result<Value, CallError>;

/// Wraps a standard-library implementation as a River function value.
fn function(name: &'static str, imp: fn(&[Value]) -> StdResult) -> Value {
    Value::Function(Function::with_call_errors(name, imp))
}

fn namespace(members: &[(&str, &Value)]) -> Value {
    Value::object(
        members
            .iter()
            .map(|(name, value)| (name.to_string(), (*value).clone()))
            .collect(),
    )
}

fn build_scope() -> Scope {
    let env = function("sys.env", env);
    let nonsensitive = function("convert.nonsensitive", nonsensitive);
    let concat = function("array.concat", concat);
    let combine_maps = function("array.combine_maps", combine_maps);
    let from_json = function("encoding.from_json", from_json);
    let from_yaml = function("encoding.from_yaml", from_yaml);
    let from_base64 = function("encoding.from_base64", from_base64);
    let from_url_base64 = function("encoding.from_URLbase64", from_url_base64);
    let to_base64 = function("encoding.to_base64", to_base64);
    let to_url_base64 = function("encoding.to_URLbase64", to_url_base64);
    let to_json = function("encoding.to_json", to_json);
    let url_encode = function("encoding.url_encode", url_encode);
    let url_decode = function("encoding.url_decode", url_decode);
    let format = function("string.format", format);
    let join = function("string.join", join);
    let replace = function("string.replace", replace);
    let split = function("string.split", split);
    let to_lower = function("string.to_lower", to_lower);
    let to_upper = function("string.to_upper", to_upper);
    let trim = function("string.trim", trim);
    let trim_prefix = function("string.trim_prefix", trim_prefix);
    let trim_suffix = function("string.trim_suffix", trim_suffix);
    let trim_space = function("string.trim_space", trim_space);
    let path_join = function("file.path_join", path_join);

    let mut s = Scope::new();
    s.insert("constants", constants());
    s.insert("coalesce", function("coalesce", coalesce));
    s.insert("json_path", function("json_path", json_path));

    // Alloy's namespaces.
    s.insert("sys", namespace(&[("env", &env)]));
    s.insert("convert", namespace(&[("nonsensitive", &nonsensitive)]));
    s.insert(
        "array",
        namespace(&[("concat", &concat), ("combine_maps", &combine_maps)]),
    );
    s.insert(
        "encoding",
        namespace(&[
            ("from_json", &from_json),
            ("from_yaml", &from_yaml),
            ("from_base64", &from_base64),
            ("from_URLbase64", &from_url_base64),
            ("to_json", &to_json),
            ("to_base64", &to_base64),
            ("to_URLbase64", &to_url_base64),
            ("url_encode", &url_encode),
            ("url_decode", &url_decode),
        ]),
    );
    s.insert(
        "string",
        namespace(&[
            ("format", &format),
            ("join", &join),
            ("replace", &replace),
            ("split", &split),
            ("to_lower", &to_lower),
            ("to_upper", &to_upper),
            ("trim", &trim),
            ("trim_prefix", &trim_prefix),
            ("trim_suffix", &trim_suffix),
            ("trim_space", &trim_space),
        ]),
    );
    s.insert("file", namespace(&[("path_join", &path_join)]));

    // Agent Flow's top-level names (deprecated in Alloy), sharing the implementations above.
    s.insert("env", env);
    s.insert("nonsensitive", nonsensitive);
    s.insert("concat", concat);
    s.insert("json_decode", from_json);
    s.insert("yaml_decode", from_yaml);
    s.insert("base64_decode", from_base64);
    s.insert("format", format);
    s.insert("join", join);
    s.insert("replace", replace);
    s.insert("split", split);
    s.insert("to_lower", to_lower);
    s.insert("to_upper", to_upper);
    s.insert("trim", trim);
    s.insert("trim_prefix", trim_prefix);
    s.insert("trim_suffix", trim_suffix);
    s.insert("trim_space", trim_space);
    s
}

/// `constants`: facts about the machine, with Go's names for the OS and architecture.
fn constants() -> Value {
    let mut o = Object::new();
    o.insert(
        "hostname".into(),
        Value::string(gethostname::gethostname().to_string_lossy()),
    );
    o.insert("os".into(), Value::string(go_os(std::env::consts::OS)));
    o.insert(
        "arch".into(),
        Value::string(go_arch(std::env::consts::ARCH)),
    );
    // The reference normalises its version to start with "v".
    o.insert(
        "version".into(),
        Value::string(concat!("v", env!("CARGO_PKG_VERSION"))),
    );
    Value::object(o)
}

/// Go's `runtime.GOOS` for a Rust `std::env::consts::OS`.
fn go_os(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's `runtime.GOARCH` for a Rust `std::env::consts::ARCH`.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Arguments

/// The reference's arity check for a function with exactly `n` parameters.
fn arity(args: &[Value], n: usize) -> Result<(), CallError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(CallError::Call(format!(
            "expected {n} args, got {}",
            args.len()
        )))
    }
}

/// The reference's arity check for a variadic function with `n` fixed parameters.
fn arity_at_least(args: &[Value], n: usize) -> Result<(), CallError> {
    if args.len() >= n {
        Ok(())
    } else {
        Err(CallError::Call(format!(
            "expected at least {n} args, got {}",
            args.len()
        )))
    }
}

fn type_error(index: usize, expected: ValueType, got: &Value) -> CallError {
    CallError::Arg {
        index,
        elements: Vec::new(),
        problem: ArgProblem::Type {
            expected,
            got: got.value_type(),
        },
    }
}

fn other_arg_error(index: usize, message: impl Into<String>) -> CallError {
    CallError::Arg {
        index,
        elements: Vec::new(),
        problem: ArgProblem::Other(message.into()),
    }
}

/// Argument `index` as a Go `string` parameter: numbers convert to their text, null to "".
fn string_arg(v: &Value, index: usize) -> Result<Cow<'_, str>, CallError> {
    match v {
        Value::String(s) => Ok(Cow::Borrowed(s)),
        Value::Null => Ok(Cow::Borrowed("")),
        Value::Number(n) => Ok(Cow::Owned(n.to_string())),
        Value::Secret(_) => Err(other_arg_error(
            index,
            "secrets may not be converted into strings",
        )),
        other => Err(type_error(index, ValueType::String, other)),
    }
}

/// Argument `index` as a Go `[]string` parameter.
fn string_list_arg(v: &Value, index: usize) -> Result<Vec<Cow<'_, str>>, CallError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string_arg(item, index).map_err(|e| e.in_element(i)))
            .collect(),
        other => Err(type_error(index, ValueType::Array, other)),
    }
}

/// Arguments 0..n as strings, after checking there are exactly `n`.
fn strings<const N: usize>(args: &[Value]) -> Result<[Cow<'_, str>; N], CallError> {
    arity(args, N)?;
    let mut out: [Cow<'_, str>; N] = std::array::from_fn(|_| Cow::Borrowed(""));
    for (i, (slot, v)) in out.iter_mut().zip(args).enumerate() {
        *slot = string_arg(v, i)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Functions

/// `env(name)` / `sys.env(name)`: the variable's value, "" when unset.
fn env(args: &[Value]) -> StdResult {
    let [name] = strings::<1>(args)?;
    // Names the OS cannot hold are never set (and would make `var_os` panic on some platforms).
    if name.is_empty() || name.contains(['=', '\0']) {
        return Ok(Value::string(""));
    }
    Ok(match std::env::var_os(name.as_ref()) {
        Some(v) => Value::string(v.to_string_lossy()),
        None => Value::string(""),
    })
}

/// `nonsensitive(secret)` / `convert.nonsensitive(secret)`: the secret's text. Strings pass through.
fn nonsensitive(args: &[Value]) -> StdResult {
    arity(args, 1)?;
    match &args[0] {
        Value::Secret(s) => Ok(Value::string(s.expose())),
        Value::String(_) => Ok(args[0].clone()),
        Value::Null => Ok(Value::string("")),
        Value::Capsule(c) => Err(other_arg_error(
            0,
            format!(
                "expected capsule(\"rivertypes.Secret\"), got capsule({:?})",
                c.0.type_name()
            ),
        )),
        other => Err(type_error(0, ValueType::Capsule, other)),
    }
}

/// `concat(arrays...)` / `array.concat(arrays...)`: one array with every element, in order.
fn concat(args: &[Value]) -> StdResult {
    let mut total = 0;
    for (i, arg) in args.iter().enumerate() {
        match arg {
            Value::Array(items) => total += items.len(),
            other => return Err(type_error(i, ValueType::Array, other)),
        }
    }
    match args {
        [] => Ok(Value::array(Vec::new())),
        // One array is returned as is: concat is on the hot path of combining target lists.
        [one] => Ok(one.clone()),
        _ => {
            let mut out = Vec::with_capacity(total);
            for arg in args {
                if let Value::Array(items) = arg {
                    out.extend(items.iter().cloned());
                }
            }
            Ok(Value::array(out))
        }
    }
}

/// `array.combine_maps(left, right, keys, keep_unmatched?)`: for every pair of objects from `left` and
/// `right` whose `keys` fields are all present and equal, the two merged (`right` wins); with
/// `keep_unmatched`, the `left` object too, once per `right` object it did not match (as the reference does).
fn combine_maps(args: &[Value]) -> StdResult {
    if !(3..=4).contains(&args.len()) {
        return Err(CallError::Call(format!(
            "combine_maps: expected 3 or 4 arguments, got {}",
            args.len()
        )));
    }
    let mut sides: [&[Value]; 2] = [&[], &[]];
    for (i, side) in sides.iter_mut().enumerate() {
        let Value::Array(items) = &args[i] else {
            return Err(type_error(i, ValueType::Array, &args[i]));
        };
        for (j, item) in items.iter().enumerate() {
            if !matches!(item, Value::Object(_)) {
                return Err(type_error(i, ValueType::Object, item).in_element(j));
            }
        }
        *side = items;
    }
    let Value::Array(conditions) = &args[2] else {
        return Err(type_error(2, ValueType::Array, &args[2]));
    };
    if conditions.is_empty() {
        return Err(other_arg_error(
            2,
            "combine_maps: merge conditions must not be empty",
        ));
    }
    let mut keys = Vec::with_capacity(conditions.len());
    for (j, c) in conditions.iter().enumerate() {
        match c {
            Value::String(k) => keys.push(k.as_ref()),
            other => return Err(type_error(2, ValueType::String, other).in_element(j)),
        }
    }
    let keep_unmatched = match args.get(3) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(type_error(3, ValueType::Bool, other)),
    };
    let mut out = Vec::new();
    for l in sides[0] {
        let Value::Object(lo) = l else { continue };
        for r in sides[1] {
            let Value::Object(ro) = r else { continue };
            let joins = keys.iter().all(|k| match (lo.get(k), ro.get(k)) {
                (Some(a), Some(b)) => strictly_equal(a, b),
                _ => false,
            });
            if joins {
                let mut merged = Object::with_capacity(lo.len() + ro.len());
                merged.extend(lo.iter().map(|(k, v)| (k.clone(), v.clone())));
                merged.extend(ro.iter().map(|(k, v)| (k.clone(), v.clone())));
                out.push(Value::object(merged));
            } else if keep_unmatched {
                out.push(l.clone());
            }
        }
    }
    Ok(Value::array(out))
}

/// Go's `Value.Equal` as `combine_maps` uses it: same type and same Go value, so `1` is not `1.0`.
/// Decision: arrays and objects (which make the reference panic) compare deeply.
fn strictly_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x, y) {
            (Number::Float(x), Number::Float(y)) => x == y,
            (Number::Float(_), _) | (_, Number::Float(_)) => false,
            _ => a == b,
        },
        _ => a.value_type() == b.value_type() && a == b,
    }
}

/// `coalesce(values...)`: the first value that is not null, zero, empty or false; else the last argument.
fn coalesce(args: &[Value]) -> StdResult {
    Ok(args
        .iter()
        .find(|v| !is_zero_or_empty(v))
        .or(args.last())
        .cloned()
        .unwrap_or(Value::Null))
}

/// Go's `reflect.Value.IsZero`, plus "empty array or object", as `coalesce` tests it.
fn is_zero_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(Number::Int(i)) => *i == 0,
        Value::Number(Number::Uint(u)) => *u == 0,
        // IsZero compares the bits: -0.0 is not zero.
        Value::Number(Number::Float(f)) => f.to_bits() == 0,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Secret(s) => s.expose().is_empty(),
        Value::Function(_) | Value::Capsule(_) => false,
    }
}

/// `join(list, sep)` / `string.join`.
fn join(args: &[Value]) -> StdResult {
    arity(args, 2)?;
    let items = string_list_arg(&args[0], 0)?;
    let sep = string_arg(&args[1], 1)?;
    Ok(Value::string(items.join(sep.as_ref())))
}

/// `replace(s, old, new)` / `string.replace`: every occurrence (Go's `strings.ReplaceAll`).
fn replace(args: &[Value]) -> StdResult {
    let [s, old, new] = strings::<3>(args)?;
    Ok(Value::string(s.replace(old.as_ref(), &new)))
}

/// `split(s, sep)` / `string.split` (Go's `strings.Split`: an empty separator splits into characters).
fn split(args: &[Value]) -> StdResult {
    let [s, sep] = strings::<2>(args)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars()
            .map(|c| Value::string(c.encode_utf8(&mut [0; 4])))
            .collect()
    } else {
        s.split(sep.as_ref()).map(Value::string).collect()
    };
    Ok(Value::array(parts))
}

/// `to_lower(s)` / `string.to_lower`: Go's per-character simple case mapping.
fn to_lower(args: &[Value]) -> StdResult {
    let [s] = strings::<1>(args)?;
    Ok(Value::string(
        s.chars().map(simple_lower).collect::<String>(),
    ))
}

/// `to_upper(s)` / `string.to_upper`: Go's per-character simple case mapping.
fn to_upper(args: &[Value]) -> StdResult {
    let [s] = strings::<1>(args)?;
    Ok(Value::string(
        s.chars().map(simple_upper).collect::<String>(),
    ))
}

/// Unicode's simple lowercase mapping (one character to one), as Go's `unicode.ToLower`. Rust's
/// `to_lowercase` gives the full mapping, which differs only where it expands to several characters.
fn simple_lower(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        // U+0130 (İ) is the only character whose full lowercase mapping expands.
        _ if c == '\u{130}' => 'i',
        _ => c,
    }
}

/// Unicode's simple uppercase mapping, as Go's `unicode.ToUpper`.
fn simple_upper(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        // Characters whose full mapping expands (ß → SS) keep themselves, except the Greek letters with
        // iota subscript, whose simple mapping is the titlecase letter.
        _ => match c as u32 {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => char::from_u32(c as u32 + 8),
            0x1FB3 => Some('\u{1FBC}'),
            0x1FC3 => Some('\u{1FCC}'),
            0x1FF3 => Some('\u{1FFC}'),
            _ => None,
        }
        .unwrap_or(c),
    }
}

/// `trim(s, cutset)` / `string.trim`: drops leading and trailing characters found in `cutset`.
fn trim(args: &[Value]) -> StdResult {
    let [s, cutset] = strings::<2>(args)?;
    Ok(Value::string(s.trim_matches(|c| cutset.contains(c))))
}

/// `trim_prefix(s, prefix)` / `string.trim_prefix`: drops one leading `prefix`.
fn trim_prefix(args: &[Value]) -> StdResult {
    let [s, prefix] = strings::<2>(args)?;
    Ok(Value::string(s.strip_prefix(prefix.as_ref()).unwrap_or(&s)))
}

/// `trim_suffix(s, suffix)` / `string.trim_suffix`: drops one trailing `suffix`.
fn trim_suffix(args: &[Value]) -> StdResult {
    let [s, suffix] = strings::<2>(args)?;
    Ok(Value::string(s.strip_suffix(suffix.as_ref()).unwrap_or(&s)))
}

/// `trim_space(s)` / `string.trim_space`: drops leading and trailing Unicode white space.
fn trim_space(args: &[Value]) -> StdResult {
    let [s] = strings::<1>(args)?;
    Ok(Value::string(s.trim()))
}

/// `file.path_join(elements...)`: Go's `filepath.Join` (slash-separated, lexically cleaned).
fn path_join(args: &[Value]) -> StdResult {
    let mut joined = String::new();
    for (i, arg) in args.iter().enumerate() {
        let part = string_arg(arg, i)?;
        if part.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push('/');
        }
        joined.push_str(&part);
    }
    if joined.is_empty() {
        return Ok(Value::string(""));
    }
    Ok(Value::string(clean_path(&joined)))
}

/// Go's `path.Clean`: the shortest equivalent path, by purely lexical processing.
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `..` at the root is the root.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// `format(fmt, args...)` / `string.format`: Go's `fmt.Sprintf`.
fn format(args: &[Value]) -> StdResult {
    arity_at_least(args, 1)?;
    let fmt = string_arg(&args[0], 0)?;
    Ok(Value::string(gofmt::sprintf(&fmt, &args[1..])))
}

/// Go's `fmt.Sprintf` for the values River passes to it.
///
/// The reference hands each argument to Go as `interface{}`: numbers become `int` (or `uint64` above the int
/// range) and `float64`, arrays `[]interface {}`, objects `map[string]interface {}` (printed with sorted keys),
/// null `nil`. The verbs, flags, widths, precisions, argument indexes and the `%!verb(type=value)`,
/// `%!verb(MISSING)`, `%!(EXTRA ...)`, `%!(NOVERB)`, `%!(BADWIDTH)`, `%!(BADPREC)` and `%!verb(BADINDEX)`
/// diagnostics all follow Go. Like the reference, a secret formats as its text.
mod gofmt {
    use crate::value::{Number, Object, Value};

    /// Go's limit on widths, precisions and argument numbers.
    const TOO_LARGE: usize = 1_000_000;

    #[derive(Clone, Copy, Default)]
    struct Flags {
        plus: bool,
        minus: bool,
        sharp: bool,
        space: bool,
        zero: bool,
        /// `%#v`
        sharp_v: bool,
        /// `%+v`
        plus_v: bool,
        wid: Option<usize>,
        prec: Option<usize>,
    }

    struct Printer {
        buf: String,
        f: Flags,
    }

    /// Formats `args` according to `format`, as Go's `fmt.Sprintf` does.
    pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
        let mut p = Printer {
            buf: String::with_capacity(format.len() + 16 * args.len()),
            f: Flags::default(),
        };
        p.do_printf(format, args);
        p.buf
    }

    /// Parses a decimal number at `s[start..]`; `None` when there is none or it is absurdly long.
    fn parse_num(s: &[u8], mut i: usize) -> (Option<usize>, usize) {
        let mut num: usize = 0;
        let mut any = false;
        while let Some(c @ b'0'..=b'9') = s.get(i).copied() {
            if num > TOO_LARGE {
                return (None, s.len());
            }
            num = num * 10 + usize::from(c - b'0');
            any = true;
            i += 1;
        }
        (any.then_some(num), i)
    }

    /// A width or precision taken from an argument (`*`): only Go integers count.
    fn int_from_arg(args: &[Value], arg_num: usize) -> (Option<i64>, usize) {
        let Some(v) = args.get(arg_num) else {
            return (None, arg_num);
        };
        let n = match v {
            Value::Number(Number::Int(i)) => Some(*i),
            Value::Number(Number::Uint(u)) => i64::try_from(*u).ok(),
            _ => None,
        };
        let n = n.filter(|n| n.unsigned_abs() <= TOO_LARGE as u64);
        (n, arg_num + 1)
    }

    impl Printer {
        fn do_printf(&mut self, format: &str, args: &[Value]) {
            let fb = format.as_bytes();
            let end = fb.len();
            let mut arg_num = 0usize;
            let mut reordered = false;
            let mut i = 0usize;
            while i < end {
                let mut good_arg_num = true;
                let last = i;
                while i < end && fb[i] != b'%' {
                    i += 1;
                }
                if i > last {
                    self.buf.push_str(&format[last..i]);
                }
                if i >= end {
                    break;
                }
                i += 1; // the '%'

                self.f = Flags::default();
                while i < end {
                    match fb[i] {
                        b'#' => self.f.sharp = true,
                        b'0' => self.f.zero = !self.f.minus,
                        b'+' => self.f.plus = true,
                        b'-' => {
                            self.f.minus = true;
                            self.f.zero = false;
                        }
                        b' ' => self.f.space = true,
                        _ => break,
                    }
                    i += 1;
                }

                // An explicit argument index: %[2]d.
                let mut arg_index = |arg_num: usize, i: usize, good: &mut bool| {
                    if fb.get(i) != Some(&b'[') {
                        return (arg_num, i, false);
                    }
                    reordered = true;
                    let (index, width, ok) = parse_arg_number(&fb[i..]);
                    match index {
                        Some(ix) if ok && ix < args.len() => (ix, i + width, true),
                        _ => {
                            *good = false;
                            (arg_num, i + width, ok)
                        }
                    }
                };
                let (n, ni, mut after_index) = arg_index(arg_num, i, &mut good_arg_num);
                arg_num = n;
                i = ni;

                // Width.
                if fb.get(i) == Some(&b'*') {
                    i += 1;
                    let (w, n) = int_from_arg(args, arg_num);
                    arg_num = n;
                    match w {
                        None => self.buf.push_str("%!(BADWIDTH)"),
                        Some(w) if w < 0 => {
                            self.f.wid = Some(w.unsigned_abs() as usize);
                            self.f.minus = true;
                            self.f.zero = false;
                        }
                        Some(w) => self.f.wid = Some(w as usize),
                    }
                    after_index = false;
                } else {
                    let (w, ni) = parse_num(fb, i);
                    self.f.wid = w;
                    i = ni;
                    if after_index && w.is_some() {
                        good_arg_num = false;
                    }
                }

                // Precision.
                if i + 1 < end && fb[i] == b'.' {
                    i += 1;
                    if after_index {
                        good_arg_num = false;
                    }
                    let (n, ni, ai) = arg_index(arg_num, i, &mut good_arg_num);
                    arg_num = n;
                    i = ni;
                    after_index = ai;
                    if fb.get(i) == Some(&b'*') {
                        i += 1;
                        let (p, n) = int_from_arg(args, arg_num);
                        arg_num = n;
                        match p {
                            Some(p) if p >= 0 => self.f.prec = Some(p as usize),
                            // A negative precision is a bad one too.
                            _ => {
                                self.f.prec = None;
                                self.buf.push_str("%!(BADPREC)");
                            }
                        }
                        after_index = false;
                    } else {
                        let (p, ni) = parse_num(fb, i);
                        i = ni;
                        self.f.prec = Some(p.unwrap_or(0));
                    }
                }

                if !after_index {
                    let (n, ni, _) = arg_index(arg_num, i, &mut good_arg_num);
                    arg_num = n;
                    i = ni;
                }

                let Some(verb) = format.get(i..).and_then(|s| s.chars().next()) else {
                    self.buf.push_str("%!(NOVERB)");
                    break;
                };
                i += verb.len_utf8();

                if verb == '%' {
                    // Percent does not take an argument and ignores width and precision.
                    self.buf.push('%');
                } else if !good_arg_num {
                    self.buf.push_str("%!");
                    self.buf.push(verb);
                    self.buf.push_str("(BADINDEX)");
                } else if let Some(arg) = args.get(arg_num) {
                    if verb == 'v' {
                        self.f.sharp_v = self.f.sharp;
                        self.f.sharp = false;
                        self.f.plus_v = self.f.plus;
                        self.f.plus = false;
                    }
                    self.print_arg(arg, verb);
                    arg_num += 1;
                } else {
                    self.buf.push_str("%!");
                    self.buf.push(verb);
                    self.buf.push_str("(MISSING)");
                }
            }

            // Unused arguments, unless they were addressed out of order.
            if !reordered && arg_num < args.len() {
                self.f = Flags::default();
                self.buf.push_str("%!(EXTRA ");
                for (k, arg) in args[arg_num..].iter().enumerate() {
                    if k > 0 {
                        self.buf.push_str(", ");
                    }
                    if arg.is_null() {
                        self.buf.push_str("<nil>");
                    } else {
                        self.buf.push_str(&go_type(arg));
                        self.buf.push('=');
                        self.print_arg(arg, 'v');
                    }
                }
                self.buf.push(')');
            }
        }

        // --- padding

        fn write_padding(&mut self, n: usize) {
            let c = if self.f.zero { '0' } else { ' ' };
            self.buf.extend(std::iter::repeat_n(c, n));
        }

        /// Appends `s`, padded to the width with spaces (or zeros) on the left, or on the right for `-`.
        fn pad(&mut self, s: &str) {
            let Some(wid) = self.f.wid.filter(|w| *w > 0) else {
                self.buf.push_str(s);
                return;
            };
            let fill = wid.saturating_sub(s.chars().count());
            if self.f.minus {
                self.buf.push_str(s);
                self.write_padding(fill);
            } else {
                self.write_padding(fill);
                self.buf.push_str(s);
            }
        }

        /// Like [`Printer::pad`], never with zeros.
        fn pad_spaces(&mut self, s: &str) {
            let zero = std::mem::replace(&mut self.f.zero, false);
            self.pad(s);
            self.f.zero = zero;
        }

        /// `%!verb(type=value)`: the verb does not apply to the argument.
        fn bad_verb(&mut self, verb: char, arg: &Value) {
            self.buf.push_str("%!");
            self.buf.push(verb);
            self.buf.push('(');
            if arg.is_null() {
                self.buf.push_str("<nil>");
            } else {
                self.buf.push_str(&go_type(arg));
                self.buf.push('=');
                self.print_arg(arg, 'v');
            }
            self.buf.push(')');
        }

        // --- dispatch

        fn print_arg(&mut self, arg: &Value, verb: char) {
            match (arg, verb) {
                (Value::Null, 'T' | 'v') => self.pad("<nil>"),
                (_, 'T') => {
                    let t = go_type(arg);
                    self.fmt_s(&t);
                }
                // Decision: no pointer values to print.
                (_, 'p') => self.bad_verb(verb, arg),
                _ => self.print_value(arg, verb, 0),
            }
        }

        fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
            match v {
                Value::Null if depth == 0 => self.bad_verb(verb, v),
                Value::Null => self.buf.push_str(if self.f.sharp_v {
                    "interface {}(nil)"
                } else {
                    "<nil>"
                }),
                Value::Bool(b) => match verb {
                    't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                    _ => self.bad_verb(verb, v),
                },
                Value::Number(Number::Int(i)) => self.fmt_integer(*i as u64, true, verb, v),
                Value::Number(Number::Uint(u)) => match i64::try_from(*u) {
                    // The reference passes uints that fit as Go ints.
                    Ok(i) => self.fmt_integer(i as u64, true, verb, v),
                    Err(_) => self.fmt_integer(*u, false, verb, v),
                },
                Value::Number(Number::Float(x)) => self.fmt_float(*x, verb, v),
                Value::String(s) => self.fmt_string(s, verb, v),
                Value::Secret(s) => self.fmt_string(s.expose(), verb, v),
                Value::Array(items) => {
                    let (open, sep, close) = if self.f.sharp_v {
                        ("[]interface {}{", ", ", "}")
                    } else {
                        ("[", " ", "]")
                    };
                    self.buf.push_str(open);
                    for (k, item) in items.iter().enumerate() {
                        if k > 0 {
                            self.buf.push_str(sep);
                        }
                        self.print_value(item, verb, depth + 1);
                    }
                    self.buf.push_str(close);
                }
                Value::Object(fields) => self.print_map(fields, verb, depth),
                Value::Function(_) | Value::Capsule(_) => match verb {
                    'v' | 's' => self.pad(&format!("{v:?}")),
                    _ => self.bad_verb(verb, v),
                },
            }
        }

        fn print_map(&mut self, fields: &Object, verb: char, depth: usize) {
            let (open, sep, close) = if self.f.sharp_v {
                ("map[string]interface {}{", ", ", "}")
            } else {
                ("map[", " ", "]")
            };
            // Go prints map keys sorted.
            let mut keys: Vec<(&String, &Value)> = fields.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
            self.buf.push_str(open);
            for (k, (key, value)) in keys.into_iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(sep);
                }
                self.fmt_key(key, verb);
                self.buf.push(':');
                self.print_value(value, verb, depth + 1);
            }
            self.buf.push_str(close);
        }

        fn fmt_key(&mut self, key: &str, verb: char) {
            match verb {
                'v' | 's' | 'x' | 'X' | 'q' => self.fmt_string(key, verb, &Value::Null),
                _ => self.bad_verb(verb, &Value::string(key)),
            }
        }

        // --- strings

        fn fmt_string(&mut self, s: &str, verb: char, arg: &Value) {
            match verb {
                'v' if self.f.sharp_v => self.fmt_q(s),
                'v' | 's' => self.fmt_s(s),
                'x' => self.fmt_sx(s, false),
                'X' => self.fmt_sx(s, true),
                'q' => self.fmt_q(s),
                _ => self.bad_verb(verb, arg),
            }
        }

        /// `s` cut to the precision (in characters).
        fn truncate<'s>(&self, s: &'s str) -> &'s str {
            match self.f.prec {
                Some(p) => match s.char_indices().nth(p) {
                    Some((at, _)) => &s[..at],
                    None => s,
                },
                None => s,
            }
        }

        fn fmt_s(&mut self, s: &str) {
            let s = self.truncate(s);
            self.pad(s);
        }

        fn fmt_q(&mut self, s: &str) {
            let s = self.truncate(s);
            if self.f.sharp && can_backquote(s) {
                self.pad(&format!("`{s}`"));
            } else {
                let q = quote(s, '"', self.f.plus);
                self.pad(&q);
            }
        }

        /// `%x` of a string: hexadecimal bytes, `% x` spaced, `%#x` with `0x`.
        fn fmt_sx(&mut self, s: &str, upper: bool) {
            let digits: &[u8; 16] = if upper {
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let x = if upper { 'X' } else { 'x' };
            let bytes = s.as_bytes();
            let len = self.f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
            let mut width = 2 * len;
            if width == 0 {
                if let Some(w) = self.f.wid {
                    self.write_padding(w);
                }
                return;
            }
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += len - 1;
            } else if self.f.sharp {
                width += 2;
            }
            let fill = self.f.wid.map_or(0, |w| w.saturating_sub(width));
            if !self.f.minus {
                self.write_padding(fill);
            }
            if self.f.sharp {
                self.buf.push('0');
                self.buf.push(x);
            }
            for (k, &b) in bytes[..len].iter().enumerate() {
                if self.f.space && k > 0 {
                    self.buf.push(' ');
                    if self.f.sharp {
                        self.buf.push('0');
                        self.buf.push(x);
                    }
                }
                self.buf.push(char::from(digits[usize::from(b >> 4)]));
                self.buf.push(char::from(digits[usize::from(b & 0xF)]));
            }
            if self.f.minus {
                self.write_padding(fill);
            }
        }

        // --- integers

        fn fmt_integer(&mut self, u: u64, signed: bool, verb: char, arg: &Value) {
            match verb {
                'v' if self.f.sharp_v && !signed => {
                    let sharp = std::mem::replace(&mut self.f.sharp, true);
                    self.fmt_int(u, 16, signed, verb, false);
                    self.f.sharp = sharp;
                }
                'v' | 'd' => self.fmt_int(u, 10, signed, verb, false),
                'b' => self.fmt_int(u, 2, signed, verb, false),
                'o' | 'O' => self.fmt_int(u, 8, signed, verb, false),
                'x' => self.fmt_int(u, 16, signed, verb, false),
                'X' => self.fmt_int(u, 16, signed, verb, true),
                'c' => {
                    let c = rune(u);
                    self.pad_spaces(c.encode_utf8(&mut [0; 4]));
                }
                'q' => {
                    let q = quote(rune(u).encode_utf8(&mut [0; 4]), '\'', self.f.plus);
                    self.pad_spaces(&q);
                }
                'U' => self.fmt_unicode(u),
                _ => self.bad_verb(verb, arg),
            }
        }

        fn fmt_int(&mut self, u: u64, base: u64, signed: bool, verb: char, upper: bool) {
            let negative = signed && (u as i64) < 0;
            let mut u = if negative {
                (u as i64).unsigned_abs()
            } else {
                u
            };
            // Leading zeros come from the precision, or from the width with the 0 flag.
            let mut prec = 0;
            if let Some(p) = self.f.prec {
                prec = p;
                if p == 0 && u == 0 {
                    // Precision 0 and value 0 print nothing but the padding.
                    let zero = std::mem::replace(&mut self.f.zero, false);
                    self.write_padding(self.f.wid.unwrap_or(0));
                    self.f.zero = zero;
                    return;
                }
            } else if let (true, Some(w)) = (self.f.zero, self.f.wid) {
                prec = w;
                if negative || self.f.plus || self.f.space {
                    prec = prec.saturating_sub(1);
                }
            }
            let digits: &[u8; 17] = if upper {
                b"0123456789ABCDEFX"
            } else {
                b"0123456789abcdefx"
            };
            // Built right to left.
            let mut rev: Vec<u8> = Vec::with_capacity(24.max(prec + 4));
            loop {
                rev.push(digits[(u % base) as usize]);
                u /= base;
                if u == 0 {
                    break;
                }
            }
            while rev.len() < prec {
                rev.push(b'0');
            }
            if self.f.sharp {
                match base {
                    2 => rev.extend_from_slice(b"b0"),
                    8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                    16 => {
                        rev.push(digits[16]);
                        rev.push(b'0');
                    }
                    _ => {}
                }
            }
            if verb == 'O' {
                rev.extend_from_slice(b"o0");
            }
            if negative {
                rev.push(b'-');
            } else if self.f.plus {
                rev.push(b'+');
            } else if self.f.space {
                rev.push(b' ');
            }
            rev.reverse();
            let s = String::from_utf8_lossy(&rev);
            self.pad_spaces(&s);
        }

        /// `%U`: `U+0041`, with `%#U` also the quoted character.
        fn fmt_unicode(&mut self, u: u64) {
            let prec = self.f.prec.filter(|p| *p > 4).unwrap_or(4);
            let mut s = format!("U+{u:0prec$X}");
            if self.f.sharp {
                if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                    if is_print(c) {
                        s.push_str(" '");
                        s.push(c);
                        s.push('\'');
                    }
                }
            }
            self.pad_spaces(&s);
        }

        // --- floats

        fn fmt_float(&mut self, x: f64, verb: char, arg: &Value) {
            match verb {
                'v' => self.fmt_float_as(x, b'g', -1),
                'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float_as(x, verb as u8, -1),
                'f' | 'e' | 'E' => self.fmt_float_as(x, verb as u8, 6),
                'F' => self.fmt_float_as(x, b'f', 6),
                _ => self.bad_verb(verb, arg),
            }
        }

        fn fmt_float_as(&mut self, x: f64, verb: u8, default_prec: i64) {
            let prec = self.f.prec.map_or(default_prec, |p| p as i64);
            let formatted = format_float(x, verb, prec);
            // Always start with a sign, '+' standing for "positive".
            let mut num: Vec<u8> = Vec::with_capacity(formatted.len() + 8);
            if !formatted.starts_with(['-', '+']) {
                num.push(b'+');
            }
            num.extend_from_slice(formatted.as_bytes());
            if self.f.space && num[0] == b'+' && !self.f.plus {
                num[0] = b' ';
            }
            if matches!(num.get(1), Some(b'I' | b'N')) {
                // Infinities and NaN are never zero padded; NaN has no sign unless asked.
                let start = usize::from(num[1] == b'N' && !self.f.space && !self.f.plus);
                let s = String::from_utf8_lossy(&num[start..]).into_owned();
                self.pad_spaces(&s);
                return;
            }
            if self.f.sharp && verb != b'b' {
                sharp_float(&mut num, verb, prec);
            }
            let s = String::from_utf8_lossy(&num).into_owned();
            if self.f.plus || num[0] != b'+' {
                match self.f.wid {
                    // Zero padding goes between the sign and the digits.
                    Some(w) if self.f.zero && w > num.len() => {
                        self.buf.push_str(&s[..1]);
                        self.write_padding(w - num.len());
                        self.buf.push_str(&s[1..]);
                    }
                    _ => self.pad(&s),
                }
            } else {
                self.pad(&s[1..]);
            }
        }
    }

    /// `%#g` and friends: keep a decimal point and the trailing zeros up to the precision.
    fn sharp_float(num: &mut Vec<u8>, verb: u8, prec: i64) {
        let mut digits: i64 = match verb {
            b'v' | b'g' | b'G' | b'x' => {
                if prec == -1 {
                    6
                } else {
                    prec
                }
            }
            _ => 0,
        };
        let mut tail: Vec<u8> = Vec::new();
        let mut has_point = false;
        let mut saw_nonzero = false;
        let mut k = 1;
        while k < num.len() {
            match num[k] {
                b'.' => has_point = true,
                b'p' | b'P' => {
                    tail.extend_from_slice(&num[k..]);
                    num.truncate(k);
                    break;
                }
                b'e' | b'E' if verb != b'x' && verb != b'X' => {
                    tail.extend_from_slice(&num[k..]);
                    num.truncate(k);
                    break;
                }
                c => {
                    if c != b'0' {
                        saw_nonzero = true;
                    }
                    if saw_nonzero {
                        digits -= 1;
                    }
                }
            }
            k += 1;
        }
        if !has_point {
            if num.len() == 2 && num[1] == b'0' {
                digits -= 1;
            }
            num.push(b'.');
        }
        while digits > 0 {
            num.push(b'0');
            digits -= 1;
        }
        num.extend_from_slice(&tail);
    }

    /// A Go integer as the rune `%c` and `%q` print: invalid code points become U+FFFD.
    fn rune(u: u64) -> char {
        u32::try_from(u)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\u{FFFD}')
    }

    /// Go's `parseArgNumber` on `s` (starting at '['): the 0-based index, bytes consumed, whether it parsed.
    fn parse_arg_number(s: &[u8]) -> (Option<usize>, usize, bool) {
        if s.len() < 3 {
            return (None, 1, false);
        }
        for k in 1..s.len() {
            if s[k] == b']' {
                let (n, ni) = parse_num(&s[..k], 1);
                return match n {
                    Some(n) if ni == k => (n.checked_sub(1), k + 1, true),
                    _ => (None, k + 1, false),
                };
            }
        }
        (None, 1, false)
    }

    /// The Go type the reference passes a value as, as `%T` prints it.
    fn go_type(v: &Value) -> String {
        match v {
            Value::Null => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Number(Number::Int(_)) => "int".into(),
            Value::Number(Number::Uint(u)) if i64::try_from(*u).is_ok() => "int".into(),
            Value::Number(Number::Uint(_)) => "uint64".into(),
            Value::Number(Number::Float(_)) => "float64".into(),
            Value::String(_) => "string".into(),
            Value::Secret(_) => "rivertypes.Secret".into(),
            Value::Array(_) => "[]interface {}".into(),
            Value::Object(_) => "map[string]interface {}".into(),
            Value::Function(_) => "func".into(),
            Value::Capsule(c) => c.0.type_name().to_string(),
        }
    }

    /// Go's `strconv.FormatFloat(x, fmt, prec, 64)` for fmt in `b e E f g G x X` (`prec` < 0: shortest).
    pub(super) fn format_float(x: f64, fmt: u8, prec: i64) -> String {
        if x.is_nan() {
            return "NaN".into();
        }
        if x.is_infinite() {
            return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
        }
        let neg = x.is_sign_negative();
        match fmt {
            b'b' => return format_binary(x),
            b'x' | b'X' => return format_hex(x, prec, fmt),
            _ => {}
        }
        let a = x.abs();
        let sign = if neg { "-" } else { "" };
        let shortest = prec < 0;
        let mut prec = prec;
        let (digits, dp) = if shortest {
            let (d, dp) = decimal_digits(&format!("{a:e}"));
            prec = match fmt {
                b'e' | b'E' => (d.len() as i64 - 1).max(0),
                b'f' => (d.len() as i64 - dp).max(0),
                _ => d.len() as i64,
            };
            (d, dp)
        } else {
            match fmt {
                // Rust's fixed notation is exactly Go's: correctly rounded, no exponent.
                b'f' => return format!("{sign}{a:.p$}", p = prec as usize),
                b'e' | b'E' => decimal_digits(&format!("{a:.p$e}", p = prec as usize)),
                _ => {
                    if prec == 0 {
                        prec = 1;
                    }
                    decimal_digits(&format!("{a:.p$e}", p = (prec - 1) as usize))
                }
            }
        };
        let mut out = String::from(sign);
        match fmt {
            b'e' | b'E' => fmt_e(&mut out, &digits, dp, prec, fmt),
            b'f' => fmt_f(&mut out, &digits, dp, prec),
            _ => {
                let nd = digits.len() as i64;
                let mut eprec = prec;
                if eprec > nd && nd >= dp {
                    eprec = nd;
                }
                if shortest {
                    eprec = 6;
                }
                let exp = dp - 1;
                let e = if fmt == b'G' { b'E' } else { b'e' };
                if exp < -4 || exp >= eprec {
                    fmt_e(&mut out, &digits, dp, prec.min(nd) - 1, e);
                } else {
                    let p = if prec > dp { nd } else { prec };
                    fmt_f(&mut out, &digits, dp, (p - dp).max(0));
                }
            }
        }
        out
    }

    /// The significant digits (no trailing zeros; none for zero) and decimal point position of Rust's
    /// scientific notation `d.ddde±x`.
    fn decimal_digits(sci: &str) -> (Vec<u8>, i64) {
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return (digits, 0);
        }
        (digits, exp.parse::<i64>().unwrap_or(0) + 1)
    }

    /// Go's `%e`: `d.dddde±dd`.
    fn fmt_e(out: &mut String, digits: &[u8], dp: i64, prec: i64, e: u8) {
        out.push(char::from(digits.first().copied().unwrap_or(b'0')));
        if prec > 0 {
            out.push('.');
            for k in 1..=prec as usize {
                out.push(char::from(digits.get(k).copied().unwrap_or(b'0')));
            }
        }
        out.push(char::from(e));
        let exp = if digits.is_empty() { 0 } else { dp - 1 };
        out.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    /// Go's `%f` from digits: `ddd.ddd`.
    fn fmt_f(out: &mut String, digits: &[u8], dp: i64, prec: i64) {
        if dp > 0 {
            for k in 0..dp as usize {
                out.push(char::from(digits.get(k).copied().unwrap_or(b'0')));
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for k in 0..prec {
                let j = dp + k;
                let c = usize::try_from(j)
                    .ok()
                    .and_then(|j| digits.get(j).copied())
                    .unwrap_or(b'0');
                out.push(char::from(c));
            }
        }
    }

    /// The sign, mantissa and binary exponent of `x`, as Go's strconv splits them.
    fn float_parts(x: f64) -> (bool, u64, i64) {
        let bits = x.to_bits();
        let neg = bits >> 63 != 0;
        let mut exp = ((bits >> 52) & 0x7FF) as i64;
        let mut mant = bits & ((1 << 52) - 1);
        if exp == 0 {
            exp += 1;
        } else {
            mant |= 1 << 52;
        }
        (neg, mant, exp - 1023)
    }

    /// Go's `%b` of a float: `-ddddp±ddd`, a decimal mantissa and binary exponent.
    fn format_binary(x: f64) -> String {
        let (neg, mant, exp) = float_parts(x);
        let exp = exp - 52;
        format!(
            "{}{mant}p{}{exp}",
            if neg { "-" } else { "" },
            if exp >= 0 { "+" } else { "" }
        )
    }

    /// Go's `%x` of a float: `-0x1.yyyyp±dd`.
    fn format_hex(x: f64, prec: i64, fmt: u8) -> String {
        let (neg, mut mant, mut exp) = float_parts(x);
        if mant == 0 {
            exp = 0;
        }
        // Shift so the leading 1 (if any) is at bit 60.
        mant <<= 60 - 52;
        while mant != 0 && mant & (1 << 60) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        if (0..15).contains(&prec) {
            let shift = (prec * 4) as u32;
            let extra = (mant << shift) & ((1 << 60) - 1);
            mant >>= 60 - shift;
            if extra | (mant & 1) > 1 << 59 {
                mant += 1;
            }
            mant <<= 60 - shift;
            if mant & (1 << 61) != 0 {
                mant >>= 1;
                exp += 1;
            }
        }
        let hex: &[u8; 16] = if fmt == b'X' {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        out.push('0');
        out.push(char::from(fmt));
        out.push(if (mant >> 60) & 1 == 1 { '1' } else { '0' });
        mant <<= 4;
        if prec < 0 && mant != 0 {
            out.push('.');
            while mant != 0 {
                out.push(char::from(hex[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        } else if prec > 0 {
            out.push('.');
            for _ in 0..prec {
                out.push(char::from(hex[((mant >> 60) & 15) as usize]));
                mant <<= 4;
            }
        }
        out.push(if fmt == b'X' { 'P' } else { 'p' });
        out.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
        out
    }

    /// Go's `strconv.CanBackquote`.
    fn can_backquote(s: &str) -> bool {
        s.chars()
            .all(|c| !(c == '\u{FEFF}' || (c < ' ' && c != '\t') || c == '`' || c == '\u{7F}'))
    }

    /// Go's `strconv.Quote` (with `quote` = '"') and `QuoteRune` ('\''); ASCII-only for `%+q`.
    pub(super) fn quote(s: &str, quote: char, ascii_only: bool) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push(quote);
        for c in s.chars() {
            if c == quote || c == '\\' {
                out.push('\\');
                out.push(c);
                continue;
            }
            if if ascii_only {
                c.is_ascii() && is_print(c)
            } else {
                is_print(c)
            } {
                out.push(c);
                continue;
            }
            match c {
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push_str(&format!("\\U{:08x}", c as u32)),
            }
        }
        out.push(quote);
        out
    }

    /// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space. Without
    /// Unicode category tables this treats control, format, separator, private-use and noncharacter code
    /// points as unprintable, and every other assigned-looking character as printable.
    pub(super) fn is_print(c: char) -> bool {
        let u = c as u32;
        if u < 0x80 {
            return (0x20..0x7F).contains(&u);
        }
        if c.is_control() || c.is_whitespace() {
            return false;
        }
        !matches!(u,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
            | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0001 | 0xE0020..=0xE007F
            | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF
            | 0xFDD0..=0xFDEF)
            && u & 0xFFFE != 0xFFFE
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encodings

/// `json_decode(s)` / `encoding.from_json(s)`: Go's `json.Unmarshal` into `interface{}`, so every number is a
/// float64. Object fields keep their order.
fn from_json(args: &[Value]) -> StdResult {
    let [text] = strings::<1>(args)?;
    match serde_json::from_str::<GoJson>(&text) {
        Ok(GoJson(v)) => Ok(v),
        Err(e) => Err(CallError::Call(go_json_error(&text).unwrap_or_else(|| {
            // Valid syntax that serde_json still rejects: a number beyond float64, or deep nesting.
            if e.to_string().starts_with("number out of range") {
                format!(
                    "json: cannot unmarshal number {} into Go value of type float64",
                    number_at(&text, e.line(), e.column())
                )
            } else {
                e.to_string()
            }
        }))),
    }
}

/// The JSON number around (1-based) `line` and `column`, where serde_json reports it.
fn number_at(text: &str, line: usize, column: usize) -> &str {
    let line_start = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let at = text[line_start..]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(i, _)| line_start + i);
    let in_number = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.');
    let start = text[..at]
        .char_indices()
        .rev()
        .find(|(_, c)| !in_number(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let stop = text[at..]
        .find(|c| !in_number(c))
        .map_or(text.len(), |i| at + i);
    &text[start..stop]
}

/// A River value read from JSON the way Go's `encoding/json` reads into `interface{}` (numbers as float64).
struct GoJson(Value);

impl<'de> serde::Deserialize<'de> for GoJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GoJsonVisitor).map(GoJson)
    }
}

struct GoJsonVisitor;

impl<'de> serde::de::Visitor<'de> for GoJsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::float(i as f64))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::float(u as f64))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::float(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::string(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(GoJson(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Object::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((k, GoJson(v))) = map.next_entry::<String, GoJson>()? {
            fields.insert(k, v);
        }
        Ok(Value::object(fields))
    }
}

/// The message Go's `encoding/json` gives for a syntax error in `text`, or `None` if the syntax is valid.
fn go_json_error(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut stack: Vec<u8> = Vec::new();
    let eof = || Some("unexpected end of JSON input".to_string());
    let bad = |c: u8, context: &str| Some(format!("invalid character {} {context}", quote_char(c)));
    let skip_ws = |i: &mut usize| {
        while matches!(b.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
    };
    'value: loop {
        // A value starts here.
        skip_ws(&mut i);
        let Some(&c) = b.get(i) else { return eof() };
        i += 1;
        match c {
            b'{' => {
                skip_ws(&mut i);
                match b.get(i) {
                    None => return eof(),
                    Some(b'}') => i += 1,
                    Some(b'"') => {
                        stack.push(b'{');
                        i += 1;
                        if let Some(e) = go_json_string(b, &mut i) {
                            return Some(e);
                        }
                        skip_ws(&mut i);
                        match b.get(i) {
                            None => return eof(),
                            Some(b':') => {
                                i += 1;
                                continue 'value;
                            }
                            Some(&c) => return bad(c, "after object key"),
                        }
                    }
                    Some(&c) => return bad(c, "looking for beginning of object key string"),
                }
            }
            b'[' => {
                skip_ws(&mut i);
                match b.get(i) {
                    None => return eof(),
                    Some(b']') => i += 1,
                    Some(_) => {
                        stack.push(b'[');
                        continue 'value;
                    }
                }
            }
            b'"' => {
                if let Some(e) = go_json_string(b, &mut i) {
                    return Some(e);
                }
            }
            b'-' | b'0'..=b'9' => {
                i -= 1;
                if let Some(e) = go_json_number(b, &mut i) {
                    return Some(e);
                }
            }
            b't' | b'f' | b'n' => {
                let (word, name): (&[u8], &str) = match c {
                    b't' => (b"rue", "true"),
                    b'f' => (b"alse", "false"),
                    _ => (b"ull", "null"),
                };
                for &want in word {
                    // At the end of input Go's scanner sees a space.
                    match b.get(i).copied().unwrap_or(b' ') {
                        got if got == want => i += 1,
                        got => {
                            return bad(
                                got,
                                &format!("in literal {name} (expecting {})", quote_char(want)),
                            )
                        }
                    }
                }
            }
            c => return bad(c, "looking for beginning of value"),
        }
        // A value ended: what may follow it.
        loop {
            skip_ws(&mut i);
            let Some(&top) = stack.last() else {
                return match b.get(i) {
                    None => None,
                    Some(&c) => bad(c, "after top-level value"),
                };
            };
            let Some(&c) = b.get(i) else { return eof() };
            i += 1;
            match (top, c) {
                (b'[', b',') => continue 'value,
                (b'[', b']') | (b'{', b'}') => {
                    stack.pop();
                }
                (b'[', c) => return bad(c, "after array element"),
                (_, b',') => {
                    skip_ws(&mut i);
                    match b.get(i) {
                        None => return eof(),
                        Some(b'"') => {
                            i += 1;
                            if let Some(e) = go_json_string(b, &mut i) {
                                return Some(e);
                            }
                        }
                        Some(&c) => return bad(c, "looking for beginning of object key string"),
                    }
                    skip_ws(&mut i);
                    match b.get(i) {
                        None => return eof(),
                        Some(b':') => {
                            i += 1;
                            continue 'value;
                        }
                        Some(&c) => return bad(c, "after object key"),
                    }
                }
                (_, c) => return bad(c, "after object key:value pair"),
            }
        }
    }
}

/// Checks a JSON string body after its opening quote, Go's way.
fn go_json_string(b: &[u8], i: &mut usize) -> Option<String> {
    loop {
        let Some(&c) = b.get(*i) else {
            return Some("unexpected end of JSON input".into());
        };
        *i += 1;
        match c {
            b'"' => return None,
            b'\\' => {
                // At the end of input Go's scanner sees a space.
                let e = b.get(*i).copied().unwrap_or(b' ');
                *i += 1;
                match e {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            match b.get(*i).copied().unwrap_or(b' ') {
                                h if h.is_ascii_hexdigit() => *i += 1,
                                h => {
                                    return Some(format!(
                                        "invalid character {} in \\u hexadecimal character escape",
                                        quote_char(h)
                                    ))
                                }
                            }
                        }
                    }
                    e => {
                        return Some(format!(
                            "invalid character {} in string escape code",
                            quote_char(e)
                        ))
                    }
                }
            }
            c if c < 0x20 => {
                return Some(format!(
                    "invalid character {} in string literal",
                    quote_char(c)
                ))
            }
            _ => {}
        }
    }
}

/// Checks a JSON number starting at `b[*i]`, Go's way, leaving `*i` after it.
fn go_json_number(b: &[u8], i: &mut usize) -> Option<String> {
    let digits = |i: &mut usize| {
        while matches!(b.get(*i), Some(b'0'..=b'9')) {
            *i += 1;
        }
    };
    // At the end of input Go's scanner sees a space.
    let need_digit = |i: &mut usize, context: &str| match b.get(*i).copied().unwrap_or(b' ') {
        b'0'..=b'9' => None,
        c => Some(format!("invalid character {} {context}", quote_char(c))),
    };
    if b.get(*i) == Some(&b'-') {
        *i += 1;
        if let Some(e) = need_digit(i, "in numeric literal") {
            return Some(e);
        }
    }
    if b.get(*i) == Some(&b'0') {
        *i += 1;
    } else {
        digits(i);
    }
    if b.get(*i) == Some(&b'.') {
        *i += 1;
        if let Some(e) = need_digit(i, "after decimal point in numeric literal") {
            return Some(e);
        }
        digits(i);
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        *i += 1;
        if matches!(b.get(*i), Some(b'+' | b'-')) {
            *i += 1;
        }
        if let Some(e) = need_digit(i, "in exponent of numeric literal") {
            return Some(e);
        }
        digits(i);
    }
    None
}

/// Go's `quoteChar`: a byte in single quotes, escaped like a Go string.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        c => {
            let q = gofmt::quote(char::from(c).encode_utf8(&mut [0; 4]), '"', false);
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// A JSON value as River sees the results of `json_path`: integers stay integers.
fn from_json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::int(i)
            } else if let Some(u) = n.as_u64() {
                Value::uint(u)
            } else {
                Value::float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::string(s),
        serde_json::Value::Array(items) => {
            Value::array(items.iter().map(from_json_value).collect())
        }
        serde_json::Value::Object(fields) => Value::object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), from_json_value(v)))
                .collect(),
        ),
    }
}

/// `json_path(json, path)`: every match of the JSONPath `path` in the JSON document, as an array.
fn json_path(args: &[Value]) -> StdResult {
    let [text, path] = strings::<2>(args)?;
    // The reference accepts paths without the root `$` (".a", "[0]", "a.b").
    let path: Cow<'_, str> = match path.as_bytes().first() {
        Some(b'$') => path,
        Some(b'@') => Cow::Owned(format!("${}", &path[1..])),
        Some(b'.' | b'[') => Cow::Owned(format!("${path}")),
        _ => Cow::Owned(format!("$.{path}")),
    };
    let query =
        serde_json_path::JsonPath::parse(&path).map_err(|e| CallError::Call(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CallError::Call(go_json_error(&text).unwrap_or_else(|| e.to_string())))?;
    let found = query.query(&doc).all();
    Ok(Value::array(
        found.into_iter().map(from_json_value).collect(),
    ))
}

/// `yaml_decode(s)` / `encoding.from_yaml(s)`: the first YAML document (null if there is none). Integers stay
/// integers, as with the reference's YAML decoder. Decision: non-string mapping keys become their text.
fn from_yaml(args: &[Value]) -> StdResult {
    use serde::Deserialize;
    let [text] = strings::<1>(args)?;
    let yaml_error = |e: serde_yaml_ng::Error| {
        let msg = e.to_string();
        // serde_yaml_ng says "problem at line L column C, while ..."; the reference says "yaml: line L: problem".
        let problem = msg.split(" at line ").next().unwrap_or(&msg);
        CallError::Call(match e.location() {
            Some(loc) => format!("yaml: line {}: {problem}", loc.line()),
            None => format!("yaml: {problem}"),
        })
    };
    let Some(doc) = serde_yaml_ng::Deserializer::from_str(&text).next() else {
        return Ok(Value::Null);
    };
    let mut v = serde_yaml_ng::Value::deserialize(doc).map_err(yaml_error)?;
    v.apply_merge().map_err(yaml_error)?;
    Ok(from_yaml_value(v))
}

fn from_yaml_value(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::int(i)
            } else if let Some(u) = n.as_u64() {
                Value::uint(u)
            } else {
                Value::float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::string(s),
        Y::Sequence(items) => Value::array(items.into_iter().map(from_yaml_value).collect()),
        Y::Mapping(m) => Value::object(
            m.into_iter()
                .map(|(k, v)| (yaml_key(k), from_yaml_value(v)))
                .collect(),
        ),
        Y::Tagged(t) => from_yaml_value(t.value),
    }
}

fn yaml_key(k: serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value as Y;
    match k {
        Y::String(s) => s,
        Y::Null => "null".into(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::Tagged(t) => yaml_key(t.value),
        other => serde_yaml_ng::to_string(&other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// Go's `base64.StdEncoding` / `URLEncoding`: padded, lenient about the unused bits of the last symbol.
fn base64_engine(url: bool) -> base64::engine::GeneralPurpose {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
    let alphabet = if url {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config)
}

fn decode_base64(args: &[Value], url: bool) -> StdResult {
    use base64::Engine;
    let [text] = strings::<1>(args)?;
    if let Some(at) = go_base64_error(text.as_bytes(), url) {
        return Err(CallError::Call(format!(
            "illegal base64 data at input byte {at}"
        )));
    }
    // Go skips line breaks inside base64 input.
    let text: Cow<'_, str> = if text.contains(['\r', '\n']) {
        Cow::Owned(text.replace(['\r', '\n'], ""))
    } else {
        text
    };
    match base64_engine(url).decode(text.as_bytes()) {
        // Decision: bytes that are not UTF-8 become U+FFFD (River strings are UTF-8).
        Ok(bytes) => Ok(Value::string(String::from_utf8_lossy(&bytes))),
        Err(e) => Err(CallError::Call(e.to_string())),
    }
}

/// Where Go's `base64` decoder (padded, line breaks ignored) stops on `src`, or `None` if it accepts it.
fn go_base64_error(src: &[u8], url: bool) -> Option<usize> {
    let symbol = |c: u8| {
        c.is_ascii_alphanumeric()
            || if url {
                c == b'-' || c == b'_'
            } else {
                c == b'+' || c == b'/'
            }
    };
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0;
    loop {
        // One quantum of four symbols.
        let mut j = 0;
        while j < 4 {
            let Some(&c) = src.get(si) else {
                return match j {
                    0 => None,
                    // An incomplete quantum: Go reports where it started (not counting line breaks).
                    _ => Some(si - j),
                };
            };
            si += 1;
            if symbol(c) {
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Some(si - 1);
            }
            // Padding ends the input.
            if j == 2 {
                while src.get(si).copied().is_some_and(newline) {
                    si += 1;
                }
                match src.get(si) {
                    None => return Some(src.len()),
                    Some(b'=') => si += 1,
                    Some(_) => return Some(si - 1),
                }
            }
            while src.get(si).copied().is_some_and(newline) {
                si += 1;
            }
            return (si < src.len()).then_some(si);
        }
    }
}

/// `base64_decode(s)` / `encoding.from_base64(s)`.
fn from_base64(args: &[Value]) -> StdResult {
    decode_base64(args, false)
}

/// `encoding.from_URLbase64(s)`: the URL-safe alphabet.
fn from_url_base64(args: &[Value]) -> StdResult {
    decode_base64(args, true)
}

/// `encoding.to_base64(s)`.
fn to_base64(args: &[Value]) -> StdResult {
    use base64::Engine;
    let [text] = strings::<1>(args)?;
    Ok(Value::string(base64_engine(false).encode(text.as_bytes())))
}

/// `encoding.to_URLbase64(s)`.
fn to_url_base64(args: &[Value]) -> StdResult {
    use base64::Engine;
    let [text] = strings::<1>(args)?;
    Ok(Value::string(base64_engine(true).encode(text.as_bytes())))
}

/// `encoding.url_encode(s)`: Go's `url.QueryEscape` (space becomes `+`).
fn url_encode(args: &[Value]) -> StdResult {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let [text] = strings::<1>(args)?;
    let mut out = String::with_capacity(text.len());
    for (k, part) in text.split(' ').enumerate() {
        if k > 0 {
            out.push('+');
        }
        out.extend(utf8_percent_encode(part, QUERY));
    }
    Ok(Value::string(out))
}

/// `encoding.url_decode(s)`: Go's `url.QueryUnescape` (`+` is a space; a bad `%` escape is an error).
fn url_decode(args: &[Value]) -> StdResult {
    let [text] = strings::<1>(args)?;
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |k: usize| b.get(k).and_then(|c| char::from(*c).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                    }
                    _ => {
                        let bad = &b[i..b.len().min(i + 3)];
                        return Err(CallError::Call(format!(
                            "invalid URL escape {}",
                            gofmt::quote(&String::from_utf8_lossy(bad), '"', false)
                        )));
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Decision: bytes that are not UTF-8 become U+FFFD.
    Ok(Value::string(String::from_utf8_lossy(&out)))
}

/// `encoding.to_json(object)`: Go's `json.Marshal` of the object (sorted keys, HTML-safe escapes).
fn to_json(args: &[Value]) -> StdResult {
    arity(args, 1)?;
    if !matches!(args[0], Value::Object(_)) {
        return Err(CallError::Call("jsonEncode only supports map".into()));
    }
    let mut out = String::new();
    write_go_json(&mut out, &args[0])?;
    Ok(Value::string(out))
}

fn write_go_json(out: &mut String, v: &Value) -> Result<(), CallError> {
    use fmt::Write;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(Number::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        Value::Number(Number::Uint(u)) => {
            let _ = write!(out, "{u}");
        }
        Value::Number(Number::Float(x)) => {
            if !x.is_finite() {
                return Err(CallError::Call(format!(
                    "json: unsupported value: {}",
                    gofmt::format_float(*x, b'g', -1)
                )));
            }
            let abs = x.abs();
            let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
            let s = gofmt::format_float(*x, if exponent { b'e' } else { b'f' }, -1);
            // Go writes e-7, not e-07.
            match s.find("e-0") {
                Some(at) if exponent && s.len() == at + 4 => {
                    out.push_str(&s[..at + 2]);
                    out.push_str(&s[at + 3..]);
                }
                _ => out.push_str(&s),
            }
        }
        Value::String(s) => write_go_json_string(out, s),
        // Like the reference, which marshals a secret as the string it holds.
        Value::Secret(s) => write_go_json_string(out, s.expose()),
        Value::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_go_json(out, item)?;
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut sorted: Vec<(&String, &Value)> = fields.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (k, (key, value)) in sorted.into_iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_go_json_string(out, key);
                out.push(':');
                write_go_json(out, value)?;
            }
            out.push('}');
        }
        Value::Function(_) => {
            return Err(CallError::Call("json: unsupported type: func".into()));
        }
        Value::Capsule(c) => {
            return Err(CallError::Call(format!(
                "json: unsupported type: {}",
                c.0.type_name()
            )));
        }
    }
    Ok(())
}

/// A JSON string as Go's encoder writes it, escaping `<`, `>`, `&`, U+2028 and U+2029 too.
fn write_go_json_string(out: &mut String, s: &str) {
    use fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Stmt;

    /// Evaluates `expr` through the real parser and evaluator, in `scope`.
    fn eval_in(expr: &str, scope: &Scope) -> Result<Value, String> {
        crate::eval::tests::eval_str(expr, scope).map_err(|e| e.message)
    }

    fn eval(expr: &str) -> Result<Value, String> {
        let mut scope = Scope::with_stdlib();
        scope.insert("secret", Value::secret("s3cr3t"));
        scope.insert("empty_secret", Value::secret(""));
        scope.insert("big", Value::uint(u64::MAX));
        eval_in(expr, &scope)
    }

    /// The string an expression gives, or its error.
    fn text(expr: &str) -> Result<String, String> {
        match eval(expr)? {
            Value::String(s) => Ok(s.to_string()),
            other => Err(format!("{expr}: not a string: {other:?}")),
        }
    }

    fn strs(items: &[&str]) -> Value {
        Value::array(items.iter().map(Value::string).collect())
    }

    fn obj(fields: Vec<(&str, Value)>) -> Value {
        Value::object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// The source text of the callee of `expr`, a call.
    fn callee(expr: &str) -> &str {
        expr.split('(').next().unwrap_or(expr)
    }

    /// The error of `expr`, a call: `bare` as function results carry it today, or the reference's `full`
    /// wording, which [`call_error_diagnostic`] gives the evaluator.
    fn assert_call_error(expr: &str, full: &str, bare: &str) {
        let got = eval(expr).map(|v| format!("{v:?}"));
        assert!(
            got == Err(full.to_string()) || got == Err(bare.to_string()),
            "{expr}: got {got:?}, want {full:?} (or {bare:?})"
        );
    }

    /// A call error (as opposed to an argument error): the reference prefixes the callee's text.
    fn assert_callee_error(expr: &str, bare: &str) {
        assert_call_error(expr, &format!("{} {bare}", callee(expr)), bare);
    }

    /// Each case: a River expression and what the reference gives (computed with Go's own `fmt.Sprintf`,
    /// `url`, `base64`, `encoding/json`, `path/filepath` and `strings` packages).
    fn check(cases: &[(&str, Result<&str, &str>)]) {
        let mut failures = Vec::new();
        for (expr, want) in cases {
            let got = text(expr);
            // A call error may also carry the callee's source text, as the reference prints it.
            let prefixed = want
                .map(str::to_string)
                .map_err(|m| format!("{} {m}", callee(expr)));
            let want = want.map(str::to_string).map_err(str::to_string);
            if got != want && got != prefixed {
                failures.push(format!("{expr}\n   got {got:?}\n  want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn format_matches_go() {
        check(&[
            (r#"format("Hello %s", "World")"#, Ok("Hello World")),
            (r#"format("%d|%d", 42, -7)"#, Ok("42|-7")),
            (
                r#"format("%5d|%-5d|%05d|%-05d|", 42, 42, -42, 3)"#,
                Ok("   42|42   |-0042|3    |"),
            ),
            (
                r#"format("%+d % d %+d % d", 5, 5, -5, -5)"#,
                Ok("+5  5 -5 -5"),
            ),
            (
                r#"format("%x %X %o %O %b", 255, 255, 8, 8, 5)"#,
                Ok("ff FF 10 0o10 101"),
            ),
            (
                r#"format("%#x %#X %#o %#b %#o", 255, 255, 8, 5, 0)"#,
                Ok("0xff 0XFF 010 0b101 0"),
            ),
            (
                r#"format("%08.3d|%.0d|%5.0d|%x", 7, 0, 0, -255)"#,
                Ok("     007||     |-ff"),
            ),
            (
                r#"format("%c%c %q %q %U %#U %c %U", 65, 128512, 65, 127, 128512, 65, -1, -1)"#,
                Ok("A😀 'A' '\\x7f' U+1F600 U+0041 'A' � U+FFFFFFFFFFFFFFFF"),
            ),
            (
                r#"format("%v %v %v %v", 1.5, 3.0, 1e21, 1e20)"#,
                Ok("1.5 3 1e+21 1e+20"),
            ),
            (
                r#"format("%v %v %v %v", 100000.0, 1000000.0, 0.0001, 0.00001)"#,
                Ok("100000 1e+06 0.0001 1e-05"),
            ),
            (
                r#"format("%f %.2f %8.3f| %-8.2f| %08.2f", 1.5, 3.14159, 3.14159, 2.5, -2.5)"#,
                Ok("1.500000 3.14    3.142| 2.50    | -0002.50"),
            ),
            (
                r#"format("%e %E %.2e %g %G", 123456.789, 0.000123, 1.0, 123456789.0, 1e-7)"#,
                Ok("1.234568e+05 1.230000E-04 1.00e+00 1.23456789e+08 1E-07"),
            ),
            (
                r#"format("%.3g %.10g %g %g %.3g %.0g", 3.14159, 1.0 / 3.0, 100000.0, 1000000.0, 0.0, 25.0)"#,
                Ok("3.14 0.3333333333 100000 1e+06 0 2e+01"),
            ),
            (
                r#"format("%#g %#.3g %#f %#.0f %#e %#v", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)"#,
                Ok("1.00000 2.00 3.000000 4. 5.000000e+00 6"),
            ),
            (
                r#"format("%x %X %b %x %.3x %.0x", 1.5, -0.375, 2.0, 0.0, 1.0, 1.5)"#,
                Ok("0x1.8p+00 -0X1.8P-02 4503599627370496p-51 0x0p+00 0x1.000p+00 0x1p+01"),
            ),
            (
                r#"format("%s|%10s|%-10s|%.2s|%5.1s|%05s|", "hello", "hi", "hi", "hello", "hello", "ab")"#,
                Ok("hello|        hi|hi        |he|    h|000ab|"),
            ),
            (
                r#"format("%q %+q %#q %#q %q", "héllo\n", "héllo", "back`tick", "plain", "tab\there")"#,
                Ok("\"héllo\\n\" \"h\\u00e9llo\" \"back`tick\" `plain` \"tab\\there\""),
            ),
            (
                r#"format("%x|% x|%#x|% #X|%X|%5x|%-6x|%.1x", "hi", "hi", "hi", "hi", "", "", "hi", "hi")"#,
                Ok("6869|68 69|0x6869|0X68 0X69||     |6869  |68"),
            ),
            (
                r#"format("%t %v %5t|", true, false, true)"#,
                Ok("true false  true|"),
            ),
            (
                r#"format("%v %d %s", [1, "a", true], [1, 2], ["x", null])"#,
                Ok("[1 a true] [1 2] [x <nil>]"),
            ),
            (
                r#"format("%v %#v", {b = 1, a = "x"}, {b = 1, a = "x"})"#,
                Ok("map[a:x b:1] map[string]interface {}{\"a\":\"x\", \"b\":1}"),
            ),
            (
                r#"format("%#v %#v %#v %#v %#v", [1, "a"], "s", 1.5, null, [null])"#,
                Ok("[]interface {}{1, \"a\"} \"s\" 1.5 <nil> []interface {}{interface {}(nil)}"),
            ),
            (
                r#"format("%v %s %d %d", null, null, null, [null])"#,
                Ok("<nil> %!s(<nil>) %!d(<nil>) [<nil>]"),
            ),
            (
                r#"format("%d %s %t %x %d", "str", 5, 1, true, 1.5)"#,
                Ok("%!d(string=str) %!s(int=5) %!t(int=1) %!x(bool=true) %!d(float64=1.5)"),
            ),
            (r#"format("%d %d", 1)"#, Ok("1 %!d(MISSING)")),
            (
                r#"format("%d", 1, 2, "x", null)"#,
                Ok("1%!(EXTRA int=2, string=x, <nil>)"),
            ),
            (r#"format("%[2]d %[1]d", 1, 2)"#, Ok("2 1")),
            (
                r#"format("%[3]d %[0]d %[x]d %d", 1, 2)"#,
                Ok("%!d(BADINDEX) %!d(BADINDEX) %!d(BADINDEX) 1"),
            ),
            (
                r#"format("%*d|%-*d|%.*f|%[1]*d", 5, 1, 5, 2, 2, 3.14159)"#,
                Ok("    1|2    |3.14|    1"),
            ),
            (
                r#"format("%*d|%.*d|%*d", "a", 1, -1, 5, -4, 7)"#,
                Ok("%!(BADWIDTH)1|%!(BADPREC)5|7   "),
            ),
            (r#"format("100%% %")"#, Ok("100% %!(NOVERB)")),
            (
                r#"format("%!|%z|%5%", 1, 2)"#,
                Ok("%!!(int=1)|%!z(int=2)|%"),
            ),
            (
                r#"format("%T %T %T %T %T %T %T", 1, 1.5, "s", true, [1], {a = 1}, null)"#,
                Ok("int float64 string bool []interface {} map[string]interface {} <nil>"),
            ),
            (
                r#"format("%v %d %#v %x", 18446744073709551615, 18446744073709551615, 18446744073709551615, 18446744073709551615)"#,
                Ok("18446744073709551615 18446744073709551615 0xffffffffffffffff ffffffffffffffff"),
            ),
            (
                r#"format("%5v|%-5v|%05v|%6.2v|", [1, 2], "ab", "ab", 3.14159)"#,
                Ok("[    1     2]|ab   |000ab|   3.1|"),
            ),
            (
                r#"format("%v %v %v", -0.0, 5e-324, 1.7976931348623157e308)"#,
                Ok("-0 5e-324 1.7976931348623157e+308"),
            ),
            (
                r#"format("%+.3e|% .3e|%+v|%+d", 1234.5678, 1234.5678, 2.5, 0)"#,
                Ok("+1.235e+03| 1.235e+03|2.5|+0"),
            ),
            (
                r#"format("%.0f %.0f %.0f %.1f %.2f", 0.5, 1.5, 2.5, 0.25, 1.005)"#,
                Ok("0 2 2 0.2 1.00"),
            ),
            (
                r#"format("%g %g %g %e", 1e20, 1e21, 123456789012.0, 0.0)"#,
                Ok("1e+20 1e+21 1.23456789012e+11 0.000000e+00"),
            ),
            (
                r#"format("%10.4v|%-10v|%.3s|%.10s|%5s|", "abcdefgh", 1.5, "日本語日本語", "ab", "日本")"#,
                Ok("      abcd|1.5       |日本語|ab|   日本|"),
            ),
            (
                r#"format("%08.3f|%+08.3f|% 08.3f|%-+5d|%+-5d|", -3.14159, 3.14159, 3.14159, 3, 3)"#,
                Ok("-003.142|+003.142| 003.142|+3   |+3   |"),
            ),
            (
                r#"format("%v %v %#v %#v", {}, [], {}, [])"#,
                Ok("map[] [] map[string]interface {}{} []interface {}{}"),
            ),
            (
                r#"format("%v|%x|%6.2f%%", [[1, 2], {a = [null]}], [255, "a"], 12.3456)"#,
                Ok("[[1 2] map[a:[<nil>]]]|[ff 61]| 12.35%"),
            ),
            (
                r#"format("%d|%q", {k = "v"}, {k = "v"})"#,
                Ok("map[%!d(string=k):%!d(string=v)]|map[\"k\":\"v\"]"),
            ),
            (r#"format("%s %v", "%d", "%%")"#, Ok("%d %%")),
            (
                r#"format("%5.1q|%-8q|%x|%X", "abc", "a", "日", -1)"#,
                Ok("  \"a\"|\"a\"     |e697a5|-1"),
            ),
            (
                r#"format("%.2e %.1e %.3g %.4g", 9.995, 0.05, 1234567.0, 0.0001234567)"#,
                Ok("9.99e+00 5.0e-02 1.23e+06 0.0001235"),
            ),
            (r#"format("%s", 12)"#, Ok("%!s(int=12)")),
            (
                r#"format("%v %.3v %10.3e|", 123456789.0, 1e-5, 6.02214076e23)"#,
                Ok("1.23456789e+08 1e-05  6.022e+23|"),
            ),
            (
                r#"format("% d|% 5d|%+ d|% x", 1, 1, 1, "ab")"#,
                Ok(" 1|    1|+1|61 62"),
            ),
            (
                r#"format("%-8.3s|%8.3q|", "abcdef", "abcdef")"#,
                Ok("abc     |   \"abc\"|"),
            ),
            (
                r#"format("%.3d|%+.3d|%8.3d|%-8.3d|%08.3d", 5, 5, -5, 5, 5)"#,
                Ok("005|+005|    -005|005     |     005"),
            ),
            (
                r#"format("%[2]*[1]d|%[1]d %d %d", 1, 4)"#,
                Ok("   1|1 4 %!d(MISSING)"),
            ),
            (r#"format("%[1]d %[1]d %.[2]d", 7, 3)"#, Ok("7 7 3")),
            (
                r#"format("%-010d|%0-10d|", 1, 1)"#,
                Ok("1         |1         |"),
            ),
            (
                r#"format("%q", "\u00a0\u200b\u2028é\u0007")"#,
                Ok("\"\\u00a0\\u200b\\u2028é\\a\""),
            ),
            (
                r#"format("%+q %#+q", "日本\u0001", "日本")"#,
                Ok("\"\\u65e5\\u672c\\x01\" `日本`"),
            ),
            (
                r#"format("%q %+q %q", 26085, 26085, 39)"#,
                Ok("'日' '\\u65e5' '\\''"),
            ),
        ]);
    }

    #[test]
    fn encodings_match_go() {
        check(&[
            (
                r#"encoding.url_encode("a b&c=d/é~!*'()-_.")"#,
                Ok("a+b%26c%3Dd%2F%C3%A9~%21%2A%27%28%29-_."),
            ),
            (
                r#"encoding.url_decode("%zz")"#,
                Err("invalid URL escape \"%zz\""),
            ),
            (
                r#"encoding.url_decode("%4")"#,
                Err("invalid URL escape \"%4\""),
            ),
            (
                r#"encoding.url_decode("a%")"#,
                Err("invalid URL escape \"%\""),
            ),
            (
                r#"encoding.url_decode("%é")"#,
                Err("invalid URL escape \"%é\""),
            ),
            (
                r#"encoding.url_decode("%4x")"#,
                Err("invalid URL escape \"%4x\""),
            ),
            (r#"encoding.url_decode("a+b%20c%2B")"#, Ok("a b c+")),
            (
                r#"encoding.from_base64("!!!")"#,
                Err("illegal base64 data at input byte 0"),
            ),
            (
                r#"encoding.from_base64("abc")"#,
                Err("illegal base64 data at input byte 0"),
            ),
            (
                r#"encoding.from_base64("YQ")"#,
                Err("illegal base64 data at input byte 0"),
            ),
            (
                r#"encoding.from_base64("YQ=")"#,
                Err("illegal base64 data at input byte 3"),
            ),
            (
                r#"encoding.from_base64("YQ==YQ==")"#,
                Err("illegal base64 data at input byte 4"),
            ),
            (r#"encoding.from_base64("Zm9v\nYmFy")"#, Ok("foobar")),
            (r#"encoding.from_base64("YR==")"#, Ok("a")),
            (
                r#"encoding.from_base64("Zm9vYmFy====")"#,
                Err("illegal base64 data at input byte 8"),
            ),
            (
                r#"encoding.from_base64("Zm9=vYmFy")"#,
                Err("illegal base64 data at input byte 4"),
            ),
            (
                r#"encoding.from_json("")"#,
                Err("unexpected end of JSON input"),
            ),
            (
                r#"encoding.from_json(" ")"#,
                Err("unexpected end of JSON input"),
            ),
            (
                r#"encoding.from_json("{")"#,
                Err("unexpected end of JSON input"),
            ),
            (
                r#"encoding.from_json("[1,")"#,
                Err("unexpected end of JSON input"),
            ),
            (
                r#"encoding.from_json("[1 2]")"#,
                Err("invalid character '2' after array element"),
            ),
            (
                r#"encoding.from_json("{\"a\" 1}")"#,
                Err("invalid character '1' after object key"),
            ),
            (
                r#"encoding.from_json("{\"a\":1 \"b\":2}")"#,
                Err("invalid character '\"' after object key:value pair"),
            ),
            (
                r#"encoding.from_json("{1:2}")"#,
                Err("invalid character '1' looking for beginning of object key string"),
            ),
            (
                r#"encoding.from_json("{,}")"#,
                Err("invalid character ',' looking for beginning of object key string"),
            ),
            (
                r#"encoding.from_json("tru")"#,
                Err("invalid character ' ' in literal true (expecting 'e')"),
            ),
            (
                r#"encoding.from_json("trux")"#,
                Err("invalid character 'x' in literal true (expecting 'e')"),
            ),
            (
                r#"encoding.from_json("nul")"#,
                Err("invalid character ' ' in literal null (expecting 'l')"),
            ),
            (
                r#"encoding.from_json("nulx")"#,
                Err("invalid character 'x' in literal null (expecting 'l')"),
            ),
            (
                r#"encoding.from_json("fals")"#,
                Err("invalid character ' ' in literal false (expecting 'e')"),
            ),
            (
                r#"encoding.from_json("falsy")"#,
                Err("invalid character 'y' in literal false (expecting 'e')"),
            ),
            (
                r#"encoding.from_json("-")"#,
                Err("invalid character ' ' in numeric literal"),
            ),
            (
                r#"encoding.from_json("-a")"#,
                Err("invalid character 'a' in numeric literal"),
            ),
            (
                r#"encoding.from_json("01")"#,
                Err("invalid character '1' after top-level value"),
            ),
            (
                r#"encoding.from_json("1.")"#,
                Err("invalid character ' ' after decimal point in numeric literal"),
            ),
            (
                r#"encoding.from_json("1.x")"#,
                Err("invalid character 'x' after decimal point in numeric literal"),
            ),
            (
                r#"encoding.from_json("1e")"#,
                Err("invalid character ' ' in exponent of numeric literal"),
            ),
            (
                r#"encoding.from_json("1e+")"#,
                Err("invalid character ' ' in exponent of numeric literal"),
            ),
            (
                r#"encoding.from_json("1ex")"#,
                Err("invalid character 'x' in exponent of numeric literal"),
            ),
            (
                r#"encoding.from_json("\"abc")"#,
                Err("unexpected end of JSON input"),
            ),
            (
                r#"encoding.from_json("\"a\\x\"")"#,
                Err("invalid character 'x' in string escape code"),
            ),
            (
                r#"encoding.from_json("\"a\\u12g4\"")"#,
                Err("invalid character 'g' in \\u hexadecimal character escape"),
            ),
            (
                r#"encoding.from_json("\"a\nb\"")"#,
                Err("invalid character '\\n' in string literal"),
            ),
            (
                r#"encoding.from_json("1 2")"#,
                Err("invalid character '2' after top-level value"),
            ),
            (
                r#"encoding.from_json("[1]]")"#,
                Err("invalid character ']' after top-level value"),
            ),
            (
                r#"encoding.from_json("x")"#,
                Err("invalid character 'x' looking for beginning of value"),
            ),
            (
                r#"encoding.from_json("'a'")"#,
                Err("invalid character '\\'' looking for beginning of value"),
            ),
            (
                r#"encoding.from_json("[1,]")"#,
                Err("invalid character ']' looking for beginning of value"),
            ),
            (
                r#"encoding.from_json("{\"a\":1,}")"#,
                Err("invalid character '}' looking for beginning of object key string"),
            ),
            (
                r#"encoding.from_json("1e400")"#,
                Err("json: cannot unmarshal number 1e400 into Go value of type float64"),
            ),
            (
                r#"encoding.from_json("[1e400]")"#,
                Err("json: cannot unmarshal number 1e400 into Go value of type float64"),
            ),
        ]);
    }

    #[test]
    fn path_join_and_case_mapping_match_go() {
        check(&[
            (
                r#"file.path_join("this/is", "a/path")"#,
                Ok("this/is/a/path"),
            ),
            (r#"file.path_join()"#, Ok("")),
            (r#"file.path_join("a")"#, Ok("a")),
            (r#"file.path_join("/a/", "b/")"#, Ok("/a/b")),
            (r#"file.path_join("a", "../b")"#, Ok("b")),
            (r#"file.path_join("a", "", "b")"#, Ok("a/b")),
            (r#"file.path_join("", "")"#, Ok("")),
            (r#"file.path_join("..", "a")"#, Ok("../a")),
            (r#"file.path_join("/..", "a")"#, Ok("/a")),
            (r#"file.path_join("a/./b/../../..")"#, Ok("..")),
            (r#"file.path_join("/", "/")"#, Ok("/")),
            (r#"file.path_join("a//b", "./c")"#, Ok("a/b/c")),
            (r#"file.path_join("../../x", "../y")"#, Ok("../../y")),
            (r#"to_upper("ß ǅ ᾀ ﬃ ŉ ſ ı")"#, Ok("ß Ǆ ᾈ ﬃ ŉ S I")),
            (r#"to_lower("İ ΣΑΣ ǅ K Ω")"#, Ok("i σασ ǆ k ω")),
            (
                r#"trim_space("\u00a0\u0085\u2003 x \u3000\u200b")"#,
                Ok("x \u{3000}\u{200B}"),
            ),
        ]);
    }

    /// Every function answers under its Agent Flow name and its Alloy name, with the same result.
    #[test]
    fn every_function_under_both_names() {
        std::env::set_var("RILL_STDLIB_UNIT_TEST_ENV_7Q2", "Hello!");
        let cases: Vec<(&str, &str, &str, Value)> = vec![
            (
                "env",
                "sys.env",
                r#""RILL_STDLIB_UNIT_TEST_ENV_7Q2""#,
                Value::string("Hello!"),
            ),
            (
                "env",
                "sys.env",
                r#""RILL_STDLIB_UNIT_TEST_UNSET_7Q2""#,
                Value::string(""),
            ),
            (
                "nonsensitive",
                "convert.nonsensitive",
                "secret",
                Value::string("s3cr3t"),
            ),
            (
                "nonsensitive",
                "convert.nonsensitive",
                r#""plain""#,
                Value::string("plain"),
            ),
            (
                "concat",
                "array.concat",
                r#"[true, "foo"], [], [false, 1]"#,
                Value::array(vec![
                    Value::Bool(true),
                    Value::string("foo"),
                    Value::Bool(false),
                    Value::int(1),
                ]),
            ),
            ("concat", "array.concat", "", Value::array(vec![])),
            (
                "json_decode",
                "encoding.from_json",
                r#""{\"b\": [1, 2.5, null, true, \"x\"], \"a\": {}}""#,
                obj(vec![
                    (
                        "b",
                        Value::array(vec![
                            Value::float(1.0),
                            Value::float(2.5),
                            Value::Null,
                            Value::Bool(true),
                            Value::string("x"),
                        ]),
                    ),
                    ("a", obj(vec![])),
                ]),
            ),
            (
                "yaml_decode",
                "encoding.from_yaml",
                r#""b: [1, 2.5, null, true, x]\na: {c: 18446744073709551615}""#,
                obj(vec![
                    (
                        "b",
                        Value::array(vec![
                            Value::int(1),
                            Value::float(2.5),
                            Value::Null,
                            Value::Bool(true),
                            Value::string("x"),
                        ]),
                    ),
                    ("a", obj(vec![("c", Value::uint(u64::MAX))])),
                ]),
            ),
            (
                "base64_decode",
                "encoding.from_base64",
                r#""Zm9vYmFyMTIzIT8kKiYoKSctPUB+""#,
                Value::string("foobar123!?$*&()'-=@~"),
            ),
            (
                "format",
                "string.format",
                r#""%s=%d", "a", 1"#,
                Value::string("a=1"),
            ),
            (
                "join",
                "string.join",
                r#"[0, "a", 1.5, null], "-""#,
                Value::string("0-a-1.5-"),
            ),
            ("join", "string.join", r#"null, "-""#, Value::string("")),
            (
                "replace",
                "string.replace",
                r#""aXbXc", "X", "--""#,
                Value::string("a--b--c"),
            ),
            (
                "split",
                "string.split",
                r#""a,b,", ",""#,
                strs(&["a", "b", ""]),
            ),
            (
                "split",
                "string.split",
                r#""héj", """#,
                strs(&["h", "é", "j"]),
            ),
            ("split", "string.split", r#""", ",""#, strs(&[""])),
            (
                "to_lower",
                "string.to_lower",
                r#""HeLLo É""#,
                Value::string("hello é"),
            ),
            (
                "to_upper",
                "string.to_upper",
                r#""HeLLo é""#,
                Value::string("HELLO É"),
            ),
            (
                "trim",
                "string.trim",
                r#""?!hello?!", "!?""#,
                Value::string("hello"),
            ),
            ("trim", "string.trim", r#""abc", """#, Value::string("abc")),
            (
                "trim_prefix",
                "string.trim_prefix",
                r#""aaa", "a""#,
                Value::string("aa"),
            ),
            (
                "trim_suffix",
                "string.trim_suffix",
                r#""hello.go.go", ".go""#,
                Value::string("hello.go"),
            ),
            (
                "trim_space",
                "string.trim_space",
                r#""\t x y \r\n""#,
                Value::string("x y"),
            ),
        ];
        for (old, new, args, want) in cases {
            for name in [old, new] {
                let expr = format!("{name}({args})");
                assert_eq!(eval(&expr), Ok(want.clone()), "{expr}");
            }
        }
    }

    #[test]
    fn both_names_share_one_function_value() {
        let s = scope();
        let pairs = [
            ("env", "sys", "env"),
            ("nonsensitive", "convert", "nonsensitive"),
            ("concat", "array", "concat"),
            ("json_decode", "encoding", "from_json"),
            ("yaml_decode", "encoding", "from_yaml"),
            ("base64_decode", "encoding", "from_base64"),
            ("format", "string", "format"),
            ("join", "string", "join"),
            ("replace", "string", "replace"),
            ("split", "string", "split"),
            ("to_lower", "string", "to_lower"),
            ("to_upper", "string", "to_upper"),
            ("trim", "string", "trim"),
            ("trim_prefix", "string", "trim_prefix"),
            ("trim_suffix", "string", "trim_suffix"),
            ("trim_space", "string", "trim_space"),
        ];
        for (top, ns, name) in pairs {
            let Some(Value::Function(a)) = s.lookup(top) else {
                panic!("{top} is not a function")
            };
            let Some(Value::Object(o)) = s.lookup(ns) else {
                panic!("{ns} is not a namespace")
            };
            let Some(Value::Function(b)) = o.get(name) else {
                panic!("{ns}.{name} is not a function")
            };
            assert!(a.ptr_eq(b), "{top} and {ns}.{name} differ");
        }
        for name in [
            "constants",
            "coalesce",
            "json_path",
            "sys",
            "file",
            "encoding",
            "env",
        ] {
            assert!(is_stdlib_name(name), "{name}");
        }
        for name in ["nope", "prometheus", "to_json", "path_join"] {
            assert!(!is_stdlib_name(name), "{name}");
        }
    }

    #[test]
    fn alloy_only_functions() {
        assert_eq!(
            text(r#"encoding.to_URLbase64("string123!?$*&()'-=@~")"#),
            Ok("c3RyaW5nMTIzIT8kKiYoKSctPUB-".into())
        );
        assert_eq!(
            text(r#"encoding.from_URLbase64("c3RyaW5nMTIzIT8kKiYoKSctPUB-")"#),
            Ok("string123!?$*&()'-=@~".into())
        );
        assert_eq!(
            text(r#"encoding.to_base64("string123!?$*&()'-=@~")"#),
            Ok("c3RyaW5nMTIzIT8kKiYoKSctPUB+".into())
        );
        assert_eq!(
            text(r#"encoding.url_decode(encoding.url_encode("é ✓ a+b"))"#),
            Ok("é ✓ a+b".into())
        );
        assert_eq!(
            text(r#"encoding.to_json({modules = {http_2xx = {timeout = "5s", prober = "http"}}})"#),
            Ok(r#"{"modules":{"http_2xx":{"prober":"http","timeout":"5s"}}}"#.into())
        );
        // Go 1.22+ escapes \b and \f by name; like the reference, a secret is marshalled as its text.
        assert_eq!(
            text(r#"encoding.to_json({a = "\b\f", s = secret})"#),
            Ok(r#"{"a":"\b\f","s":"s3cr3t"}"#.into())
        );
        assert_eq!(
            text("file.path_join(\"a\", 1, null, \"b\")"),
            Ok("a/1/b".into())
        );
        assert_eq!(
            eval("constants.version"),
            Ok(Value::string(format!("v{}", env!("CARGO_PKG_VERSION"))))
        );
    }

    #[test]
    fn combine_maps_joins_on_equal_keys() {
        let cases: Vec<(&str, Value)> = vec![
            (
                r#"array.combine_maps([{"a" = "a1", "b" = "b1"}], [{"a" = "a1", "c" = "c1"}], ["a"])"#,
                Value::array(vec![obj(vec![
                    ("a", Value::string("a1")),
                    ("b", Value::string("b1")),
                    ("c", Value::string("c1")),
                ])]),
            ),
            (
                r#"array.combine_maps([{"a" = 1, "b" = 2.2}], [{"a" = 1, "b" = "3.3"}], ["a"])"#,
                Value::array(vec![obj(vec![
                    ("a", Value::int(1)),
                    ("b", Value::string("3.3")),
                ])]),
            ),
            // Different types never match.
            (
                r#"array.combine_maps([{"a" = 1}], [{"a" = "1"}, {"a" = 1.0}], ["a"])"#,
                Value::array(vec![]),
            ),
            // A missing key never matches.
            (
                r#"array.combine_maps([{"a" = 1, "n" = 1.1}, {"n" = 1.2}], [{"a" = 1, "n" = 2.1}], ["a"])"#,
                Value::array(vec![obj(vec![
                    ("a", Value::int(1)),
                    ("n", Value::float(2.1)),
                ])]),
            ),
            // Unmatched left objects are kept once per right object they did not match.
            (
                r#"array.combine_maps([{"a" = 1}, {"a" = 2}], [{"a" = 1, "x" = 0}, {"a" = 3}], ["a"], true)"#,
                Value::array(vec![
                    obj(vec![("a", Value::int(1)), ("x", Value::int(0))]),
                    obj(vec![("a", Value::int(1))]),
                    obj(vec![("a", Value::int(2))]),
                    obj(vec![("a", Value::int(2))]),
                ]),
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(eval(expr), Ok(want), "{expr}");
        }
        assert_callee_error(
            r#"array.combine_maps([], [])"#,
            "combine_maps: expected 3 or 4 arguments, got 2",
        );
        let errors = [
            (
                r#"array.combine_maps([{"a" = "a1"}], "a", ["a"])"#,
                r#""a" should be array, got string"#,
                "expected array, got string",
            ),
            (
                r#"array.combine_maps([{"a" = "a1"}], ["a"], ["a"])"#,
                r#""a" should be object, got string"#,
                "expected object, got string",
            ),
            (
                r#"array.combine_maps([{"a" = "a1"}], [{"a" = "a1"}], [])"#,
                "[] combine_maps: merge conditions must not be empty",
                "combine_maps: merge conditions must not be empty",
            ),
            (
                r#"array.combine_maps([], [], ["a"], 1)"#,
                "1 should be bool, got number",
                "expected bool, got number",
            ),
        ];
        for (expr, full, bare) in errors {
            assert_call_error(expr, full, bare);
        }
    }

    #[test]
    fn constants_use_go_names() {
        let Some(Value::Object(c)) = scope().lookup("constants").cloned() else {
            panic!("constants is not an object")
        };
        let host = gethostname::gethostname();
        assert_eq!(
            c.get("hostname"),
            Some(&Value::string(host.to_string_lossy()))
        );
        assert_eq!(
            c.get("os"),
            Some(&Value::string(go_os(std::env::consts::OS)))
        );
        assert_eq!(
            c.get("arch"),
            Some(&Value::string(go_arch(std::env::consts::ARCH)))
        );
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("x86"), "386");
        assert_eq!(go_os("macos"), "darwin");
        assert_eq!(go_os("linux"), "linux");
        assert_eq!(
            eval("constants.missing"),
            Err("field \"missing\" does not exist".into())
        );
    }

    #[test]
    fn arity_errors() {
        let cases = [
            ("env()", "expected 1 args, got 0"),
            ("sys.env(\"a\", \"b\")", "expected 1 args, got 2"),
            ("to_lower(\"a\", \"b\")", "expected 1 args, got 2"),
            ("replace(\"a\")", "expected 3 args, got 1"),
            ("string.trim_prefix()", "expected 2 args, got 0"),
            ("join([])", "expected 2 args, got 1"),
            ("format()", "expected at least 1 args, got 0"),
            ("string.format()", "expected at least 1 args, got 0"),
            ("nonsensitive()", "expected 1 args, got 0"),
            ("json_path(\"{}\")", "expected 2 args, got 1"),
            ("encoding.to_json()", "expected 1 args, got 0"),
            ("encoding.url_encode()", "expected 1 args, got 0"),
        ];
        for (expr, want) in cases {
            assert_callee_error(expr, want);
        }
        // Variadic functions without fixed parameters take any number.
        assert_eq!(eval("coalesce()"), Ok(Value::Null));
        assert_eq!(text("file.path_join()"), Ok(String::new()));
    }

    #[test]
    fn argument_conversions_and_type_errors() {
        // Numbers convert to their text where a string is expected; null is the empty string.
        assert_eq!(text("to_upper(12)"), Ok("12".into()));
        assert_eq!(text("trim_space(1.5)"), Ok("1.5".into()));
        assert_eq!(text("format(12)"), Ok("12".into()));
        assert_eq!(text("to_lower(null)"), Ok(String::new()));
        assert_eq!(eval("split(12345, 3)"), Ok(strs(&["12", "45"])));
        assert_eq!(text("string.join([big], \"\")"), Ok(u64::MAX.to_string()));
        let cases = [
            (
                "to_lower(true)",
                "true should be string, got bool",
                "expected string, got bool",
            ),
            (
                "to_upper([1])",
                "[1] should be string, got array",
                "expected string, got array",
            ),
            (
                "string.to_upper({})",
                "{} should be string, got object",
                "expected string, got object",
            ),
            (
                "trim(\"a\", to_lower)",
                "to_lower should be string, got function",
                "expected string, got function",
            ),
            (
                "concat([1], \"x\")",
                "\"x\" should be array, got string",
                "expected array, got string",
            ),
            (
                "array.concat(null)",
                "null should be array, got null",
                "expected array, got null",
            ),
            (
                "join(\"a\", \",\")",
                "\"a\" should be array, got string",
                "expected array, got string",
            ),
            (
                "join([\"a\", true], \",\")",
                "true should be string, got bool",
                "expected string, got bool",
            ),
            (
                "nonsensitive(1)",
                "1 should be capsule, got number",
                "expected capsule, got number",
            ),
            (
                "convert.nonsensitive([])",
                "[] should be capsule, got array",
                "expected capsule, got array",
            ),
            // Secrets never turn back into strings.
            (
                "to_lower(secret)",
                "secret secrets may not be converted into strings",
                "secrets may not be converted into strings",
            ),
            (
                "join([secret], \",\")",
                "secret secrets may not be converted into strings",
                "secrets may not be converted into strings",
            ),
            (
                "string.format(secret)",
                "secret secrets may not be converted into strings",
                "secrets may not be converted into strings",
            ),
            (
                "env(secret)",
                "secret secrets may not be converted into strings",
                "secrets may not be converted into strings",
            ),
        ];
        for (expr, full, bare) in cases {
            assert_call_error(expr, full, bare);
        }
        assert_callee_error("encoding.to_json(12)", "jsonEncode only supports map");
        assert_callee_error("encoding.to_json(null)", "jsonEncode only supports map");
    }

    /// `call_error_diagnostic` words and places errors as the reference's evaluator does.
    #[test]
    fn call_error_diagnostic_words_errors_like_the_reference() {
        let mut scope = Scope::with_stdlib();
        scope.insert("secret", Value::secret("s3cr3t"));
        scope.insert("obj", obj(vec![("a", Value::int(1))]));
        scope.insert(
            "arr",
            Value::array(vec![Value::string("a"), Value::Bool(true)]),
        );
        type Imp = fn(&[Value]) -> StdResult;
        let cases: [(&str, Imp, &str, &str); 13] = [
            ("env()", env, "env", "env expected 1 args, got 0"),
            (
                "sys.env(\"a\", \"b\")",
                env,
                "sys.env",
                "sys.env expected 1 args, got 2",
            ),
            (
                "to_lower(obj)",
                to_lower,
                "obj",
                "obj should be string, got object",
            ),
            (
                "to_upper([1])",
                to_upper,
                "[1]",
                "[1] should be string, got array",
            ),
            (
                "concat([1], 2)",
                concat,
                "2",
                "2 should be array, got number",
            ),
            (
                "join(\"a\", \",\")",
                join,
                "\"a\"",
                "\"a\" should be array, got string",
            ),
            (
                "join([\"a\", true], \",\")",
                join,
                "true",
                "true should be string, got bool",
            ),
            (
                "join(arr, \",\")",
                join,
                "arr",
                "arr[1] should be string, got bool",
            ),
            (
                "join([[1]], \",\")",
                join,
                "[1]",
                "[1] should be string, got array",
            ),
            (
                "to_lower(secret)",
                to_lower,
                "secret",
                "secret secrets may not be converted into strings",
            ),
            (
                "join([secret], \",\")",
                join,
                "secret",
                "secret secrets may not be converted into strings",
            ),
            (
                "encoding.to_json(12)",
                to_json,
                "encoding.to_json",
                "encoding.to_json jsonEncode only supports map",
            ),
            (
                "nonsensitive(1)",
                nonsensitive,
                "1",
                "1 should be capsule, got number",
            ),
        ];
        for (expr, imp, at, want) in cases {
            let src = format!("x = {expr}");
            let (file, diags) = crate::parse(&src);
            assert!(diags.is_empty(), "{expr}: {diags:?}");
            let Some(Stmt::Attribute(a)) = file.top_level().first() else {
                panic!("{expr}: no attribute")
            };
            let ExprKind::Call(call) = a.value.kind else {
                panic!("{expr}: not a call")
            };
            let (func, args) = (file.expr(call.func), file.exprs(call.args));
            let values: Vec<Value> = args
                .iter()
                .map(|e| crate::eval::eval_expr(e, &file, &scope))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            let Err(err) = imp(&values) else {
                panic!("{expr}: no error")
            };
            let (span, message) = call_error_diagnostic(&err, func, args, &file);
            assert_eq!((span.text(&src), message.as_str()), (at, want), "{expr}");
        }
    }

    #[test]
    fn call_errors_say_which_argument() {
        let list = Value::array(vec![Value::string("a"), Value::Bool(true)]);
        assert_eq!(
            join(&[list, Value::string(",")]),
            Err(CallError::Arg {
                index: 0,
                elements: vec![1],
                problem: ArgProblem::Type {
                    expected: ValueType::String,
                    got: ValueType::Bool
                }
            })
        );
        assert_eq!(
            concat(&[Value::array(vec![]), Value::int(1)]),
            Err(CallError::Arg {
                index: 1,
                elements: vec![],
                problem: ArgProblem::Type {
                    expected: ValueType::Array,
                    got: ValueType::Number
                }
            })
        );
        assert_eq!(
            replace(&[Value::string("a")]),
            Err(CallError::Call("expected 3 args, got 1".into()))
        );
        assert_eq!(CallError::Call("x".into()).to_string(), "x".to_string());
    }

    #[test]
    fn coalesce_picks_the_first_non_empty_value() {
        let cases: Vec<(&str, Value)> = vec![
            ("coalesce(\"Hello!\")", Value::string("Hello!")),
            (
                "coalesce(env(\"RILL_STDLIB_UNIT_TEST_UNSET_7Q2\"), \"World!\")",
                Value::string("World!"),
            ),
            ("coalesce([], [\"fallback\"])", strs(&["fallback"])),
            (
                "coalesce(array.concat([\"item\"]), [\"fallback\"])",
                strs(&["item"]),
            ),
            ("coalesce(0, 1, 2)", Value::int(1)),
            ("coalesce(false, 1, 2)", Value::int(1)),
            ("coalesce(false, true)", Value::Bool(true)),
            (
                "coalesce(encoding.from_json(\"[]\"), true)",
                Value::Bool(true),
            ),
            (
                "coalesce(encoding.from_json(\"{}\"), false)",
                Value::Bool(false),
            ),
            ("coalesce([], null)", Value::Null),
            (
                "coalesce(null, \"\", 0.0, {a = 1})",
                obj(vec![("a", Value::int(1))]),
            ),
            ("coalesce(empty_secret, secret)", Value::secret("s3cr3t")),
            ("coalesce(\"\", 0, false)", Value::Bool(false)),
        ];
        for (expr, want) in cases {
            assert_eq!(eval(expr), Ok(want), "{expr}");
        }
        // Go's IsZero compares bits: -0.0 is not zero.
        let Ok(Value::Number(Number::Float(z))) = eval("coalesce(0.0, -0.0, 3)") else {
            panic!("coalesce(0.0, -0.0, 3) is not a float")
        };
        assert!(z == 0.0 && z.is_sign_negative());
    }

    #[test]
    fn json_numbers_are_floats_and_fields_keep_their_order() {
        let Ok(Value::Number(Number::Float(one))) = eval("json_decode(\"1\")") else {
            panic!("json_decode(\"1\") is not a float")
        };
        assert_eq!(one, 1.0);
        assert_eq!(
            eval("json_decode(\"[1, 2]\")[0] / 2"),
            Ok(Value::float(0.5))
        );
        let Ok(Value::Object(o)) = eval(r#"json_decode("{\"z\": 1, \"a\": 2, \"m\": 3}")"#) else {
            panic!("not an object")
        };
        assert_eq!(o.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        assert_eq!(
            eval(r#"json_decode(" {\"a\": {\"b\": [true, \"c\"]}} ").a.b[1]"#),
            Ok(Value::string("c"))
        );
        assert_eq!(eval("json_decode(\"null\")"), Ok(Value::Null));
    }

    #[test]
    fn json_errors_on_later_lines_match_go() {
        // Expected messages from Go's encoding/json.
        check(&[
            (
                r#"json_decode("{\"é\": 1,\n \"b\": -2e999}")"#,
                Err("json: cannot unmarshal number -2e999 into Go value of type float64"),
            ),
            (
                r#"json_decode("[\n1,\n\n  \"x\", 3e500]")"#,
                Err("json: cannot unmarshal number 3e500 into Go value of type float64"),
            ),
            (
                r#"json_decode("{\"a\"\n:\n1}x")"#,
                Err("invalid character 'x' after top-level value"),
            ),
            (
                r#"json_decode("[1,\n2,\n\"\\q\"]")"#,
                Err("invalid character 'q' in string escape code"),
            ),
            (
                r#"json_decode("\"\\")"#,
                Err("invalid character ' ' in string escape code"),
            ),
        ]);
    }

    #[test]
    fn json_path_keeps_integers_and_accepts_paths_without_root() {
        let doc = r#""{\"a\": {\"b\": [1, 2.5]}, \"items\": [{\"name\": \"x\", \"v\": 1}, {\"name\": \"y\", \"v\": 2}]}""#;
        let cases: Vec<(&str, Value)> = vec![
            (
                "$.a.b[*]",
                Value::array(vec![Value::int(1), Value::float(2.5)]),
            ),
            (".a.b[0]", Value::array(vec![Value::int(1)])),
            ("a.b[1]", Value::array(vec![Value::float(2.5)])),
            ("@.a.b[1]", Value::array(vec![Value::float(2.5)])),
            ("$.nothing", Value::array(vec![])),
            (
                "$.items[?(@.name == \\\"y\\\")].v",
                Value::array(vec![Value::int(2)]),
            ),
        ];
        for (path, want) in cases {
            let expr = format!("json_path({doc}, \"{path}\")");
            assert_eq!(eval(&expr), Ok(want), "{expr}");
        }
        assert_eq!(
            eval(r#"json_path("{\"a\": \"b\"}", ".a")[0]"#),
            Ok(Value::string("b"))
        );
        assert_callee_error(r#"json_path("{", ".a")"#, "unexpected end of JSON input");
        assert!(eval(r#"json_path("{}", "$[")"#).is_err());
    }

    #[test]
    fn yaml_documents() {
        assert_eq!(eval("encoding.from_yaml(\"\")"), Ok(Value::Null));
        assert_eq!(eval("encoding.from_yaml(\"15\")"), Ok(Value::int(15)));
        assert_eq!(
            eval("encoding.from_yaml(\"[0.0, 1.5]\")"),
            Ok(Value::array(vec![Value::float(0.0), Value::float(1.5)]))
        );
        // Only the first document counts.
        assert_eq!(
            eval("encoding.from_yaml(\"a: 1\\n---\\nb: 2\")"),
            Ok(obj(vec![("a", Value::int(1))]))
        );
        // Merge keys, as the reference's decoder applies them.
        assert_eq!(
            eval("encoding.from_yaml(\"base: &b {x: 1}\\nd:\\n  <<: *b\\n  y: 2\").d"),
            Ok(obj(vec![("x", Value::int(1)), ("y", Value::int(2))]))
        );
        // Decision: non-string keys become their text.
        assert_eq!(
            eval("encoding.from_yaml(\"1: a\\ntrue: b\")"),
            Ok(obj(vec![
                ("1", Value::string("a")),
                ("true", Value::string("b"))
            ]))
        );
        let Err(e) = eval("encoding.from_yaml(\"a: [\")") else {
            panic!("invalid YAML decoded")
        };
        assert!(e.contains("yaml: "), "{e}");
    }

    #[test]
    fn format_with_secrets_and_large_numbers() {
        // Like the reference, which passes the secret's Go string to fmt.
        assert_eq!(
            text("format(\"%s|%v|%q|%d\", secret, secret, secret, secret)"),
            Ok("s3cr3t|s3cr3t|\"s3cr3t\"|%!d(rivertypes.Secret=s3cr3t)".into())
        );
        assert_eq!(
            text("format(\"%T\", secret)"),
            Ok("rivertypes.Secret".into())
        );
        assert_eq!(
            text("format(\"%d %T %v\", big, big, 7)"),
            Ok(format!("{} uint64 7", u64::MAX))
        );
        assert_eq!(
            text("format(\"%v\", to_lower)").map(|s| s.is_empty()),
            Ok(false)
        );
    }

    #[test]
    fn to_json_rejects_unrepresentable_values() {
        let mut out = String::new();
        let nan = obj(vec![("x", Value::float(f64::NAN))]);
        assert_eq!(
            write_go_json(&mut out, &nan),
            Err(CallError::Call("json: unsupported value: NaN".into()))
        );
        let inf = Value::array(vec![Value::float(f64::NEG_INFINITY)]);
        assert_eq!(
            write_go_json(&mut String::new(), &inf),
            Err(CallError::Call("json: unsupported value: -Inf".into()))
        );
        assert_callee_error(
            "encoding.to_json({f = to_lower})",
            "json: unsupported type: func",
        );
    }

    #[test]
    fn env_reads_the_process_environment() {
        std::env::set_var("RILL_STDLIB_UNIT_TEST_ENV_9XK", "from the test");
        assert_eq!(
            text("env(\"RILL_STDLIB_UNIT_TEST_ENV_9XK\")"),
            Ok("from the test".into())
        );
        assert_eq!(
            text("sys.env(\"RILL_STDLIB_UNIT_TEST_ENV_\" + \"9XK\")"),
            Ok("from the test".into())
        );
        // Names no environment can hold are simply unset.
        assert_eq!(text("env(\"\")"), Ok(String::new()));
        assert_eq!(text("env(\"A=B\")"), Ok(String::new()));
        assert_eq!(text("env(\"A\\x00B\")"), Ok(String::new()));
    }
}
