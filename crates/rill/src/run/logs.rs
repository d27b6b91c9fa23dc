//! The process's log output: one line per event on standard error, in logfmt (the default) or JSON, at the
//! level and in the format the config's `logging` block asks for. Both can change on reload.
//!
//! logfmt lines look like the reference's: `ts=2024-05-01T10:00:00.123Z level=info msg="config reloaded"
//! component=local.file.a key=value`. Fields of the spans an event is inside (a component's `component`
//! field) come after the message, then the event's own fields.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

const LOGFMT: u8 = 0;
const JSON: u8 = 1;

/// Changes the level and format of the installed logger.
#[derive(Clone)]
pub struct LogControl {
    level: reload::Handle<LevelFilter, Registry>,
    format: Arc<AtomicU8>,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogControl")
    }
}

/// Installs the process-wide logger (info, logfmt) and returns its control. Call once, before anything logs.
pub fn init() -> LogControl {
    let (filter, level) = reload::Layer::new(LevelFilter::INFO);
    let format = Arc::new(AtomicU8::new(LOGFMT));
    let lines = LineLayer {
        format: format.clone(),
    };
    // Fails only when a logger is installed already (tests calling twice): keep the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init();
    LogControl { level, format }
}

impl LogControl {
    /// Applies a `logging` block (already validated by the runtime).
    pub fn apply(&self, config: &flow::LoggingConfig) {
        let level = match config.level.as_str() {
            "debug" => LevelFilter::DEBUG,
            "warn" => LevelFilter::WARN,
            "error" => LevelFilter::ERROR,
            _ => LevelFilter::INFO,
        };
        let format = if config.format == "json" {
            JSON
        } else {
            LOGFMT
        };
        self.format.store(format, Ordering::Relaxed);
        if let Err(e) = self.level.reload(level) {
            eprintln!("rill: cannot change the log level: {e}");
        }
    }
}

/// Writes each event as one line.
struct LineLayer {
    format: Arc<AtomicU8>,
}

/// The recorded fields of a span, kept in its extensions.
struct SpanFields(Vec<(&'static str, String)>);

impl<S> Layer<S> for LineLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.rest));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<SpanFields>() {
                Some(existing) => existing.0.extend(fields.rest),
                None => ext.insert(SpanFields(fields.rest)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut all: Vec<(&'static str, String)> = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    all.extend(f.0.iter().cloned());
                }
            }
        }
        all.extend(fields.rest);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let line = match self.format.load(Ordering::Relaxed) {
            JSON => json_line(&ts, &level, fields.message.as_deref(), &all),
            _ => logfmt_line(&ts, &level, fields.message.as_deref(), &all),
        };
        // Nowhere to report a failed write to standard error.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Collects `message` apart from the other fields, each formatted as text.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

fn logfmt_line(ts: &str, level: &str, msg: Option<&str>, fields: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(128);
    let _ = write!(out, "ts={ts} level={level}");
    if let Some(m) = msg {
        out.push_str(" msg=");
        logfmt_value(&mut out, m);
    }
    for (k, v) in fields {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        logfmt_value(&mut out, v);
    }
    out.push('\n');
    out
}

/// Quotes a value when it is empty or holds spaces, quotes, `=` or control characters.
fn logfmt_value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_line(ts: &str, level: &str, msg: Option<&str>, fields: &[(&str, String)]) -> String {
    let mut map = serde_json::Map::new();
    map.insert("ts".into(), ts.into());
    map.insert("level".into(), level.into());
    if let Some(m) = msg {
        map.insert("msg".into(), m.into());
    }
    for (k, v) in fields {
        map.insert((*k).to_string(), v.as_str().into());
    }
    let mut line = serde_json::Value::Object(map).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        let line = logfmt_line(
            "T",
            "info",
            Some("config reloaded"),
            &[
                ("component", "local.file.a".into()),
                ("error", "say \"hi\"\nnow".into()),
                ("empty", String::new()),
            ],
        );
        assert_eq!(
            line,
            "ts=T level=info msg=\"config reloaded\" component=local.file.a error=\"say \\\"hi\\\"\\nnow\" empty=\"\"\n"
        );
    }

    #[test]
    fn json_lines_are_objects_in_order() {
        let line = json_line("T", "warn", Some("m"), &[("k", "v".into())]);
        assert_eq!(
            line,
            "{\"ts\":\"T\",\"level\":\"warn\",\"msg\":\"m\",\"k\":\"v\"}\n"
        );
    }
}
