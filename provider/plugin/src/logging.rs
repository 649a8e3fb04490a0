//! hclog-shaped JSON logging on stderr.
//!
//! Terraform reads a provider's stderr line by line; a line that parses as an
//! hclog JSON object keeps its level and key/value pairs in `TF_LOG` output.
//! A span, when its level is enabled, becomes one line as it closes: its fields plus
//! `elapsed_us` (open to close) and `busy_us` (time inside it, i.e. not awaiting), so
//! `TF_LOG_PROVIDER=debug` shows where each RPC's time goes. Disabled spans cost a
//! level check.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use time::format_description::FormatItem;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// The `@module` value of every line.
pub const MODULE: &str = "provider.terraform-provider-strata";

/// hclog's timestamp shape, e.g. `2026-01-02T15:04:05.000000Z`.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Chatty transport crates: capped at INFO so `TF_LOG=trace` stays readable.
const NOISY_TARGETS: &[&str] = &["h2", "hyper", "hyper_util", "tower", "tonic", "rustls", "tokio_rustls"];

/// Installs the global subscriber: hclog JSON lines on stderr, level from
/// `TF_LOG_PROVIDER`, else `TF_LOG`, else `warn`. A second call is a no-op.
pub fn init_logging() {
    let level =
        level_from_env(std::env::var("TF_LOG_PROVIDER").ok().as_deref(), std::env::var("TF_LOG").ok().as_deref());
    let filter = NOISY_TARGETS
        .iter()
        .fold(Targets::new().with_default(level), |t, target| t.with_target(*target, level.min(LevelFilter::INFO)));
    let subscriber = tracing_subscriber::registry().with(HclogLayer::new(std::io::stderr).with_filter(filter));
    // Already set (e.g. by a test harness): keep the existing one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Maps Terraform's log variables to a level filter. `JSON` is Terraform's
/// "trace, as JSON"; empty counts as unset; anything unknown falls back to warn.
pub fn level_from_env(tf_log_provider: Option<&str>, tf_log: Option<&str>) -> LevelFilter {
    let chosen = [tf_log_provider, tf_log].into_iter().flatten().map(str::trim).find(|v| !v.is_empty());
    match chosen.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE" | "JSON") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("INFO") => LevelFilter::INFO,
        Some("ERROR") => LevelFilter::ERROR,
        Some("OFF") => LevelFilter::OFF,
        _ => LevelFilter::WARN,
    }
}

/// A layer writing one hclog JSON object per event to `W`.
pub struct HclogLayer<W> {
    make_writer: W,
}

impl<W> HclogLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// Writes through `make_writer` (e.g. `std::io::stderr`).
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// What a span carries until it closes.
struct SpanTiming {
    fields: Vec<(String, Value)>,
    opened: Instant,
    busy: Duration,
    entered: Option<Instant>,
}

impl<S, W> Layer<S> for HclogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        self.write_line(*event.metadata().level(), fields.message.unwrap_or_default(), fields.fields);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = FieldVisitor::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanTiming {
                fields: fields.fields,
                opened: Instant::now(),
                busy: Duration::ZERO,
                entered: None,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(t) = span.extensions_mut().get_mut::<SpanTiming>() {
                t.entered = Some(Instant::now());
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(t) = span.extensions_mut().get_mut::<SpanTiming>() {
                if let Some(at) = t.entered.take() {
                    t.busy += at.elapsed();
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(t) = span.extensions_mut().remove::<SpanTiming>() else { return };
        let mut fields = t.fields;
        fields.push(("elapsed_us".into(), Value::from(micros(t.opened.elapsed()))));
        fields.push(("busy_us".into(), Value::from(micros(t.busy))));
        self.write_line(*span.metadata().level(), format!("{} done", span.name()), fields);
    }
}

impl<W> HclogLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn write_line(&self, level: Level, message: String, fields: Vec<(String, Value)>) {
        let mut line = format_line(level, message, fields);
        line.push(b'\n');
        // One write per line keeps concurrent events from interleaving; a
        // closed or broken stderr must never take the provider down.
        let _ = self.make_writer.make_writer().write_all(&line);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn format_line(level: Level, message: String, fields: Vec<(String, Value)>) -> Vec<u8> {
    let mut obj = Map::new();
    obj.insert("@level".into(), Value::from(level_name(level)));
    obj.insert("@message".into(), Value::from(message));
    obj.insert("@module".into(), Value::from(MODULE));
    obj.insert("@timestamp".into(), Value::from(timestamp_now()));
    for (key, value) in fields {
        // Never let a field overwrite the hclog header keys.
        if !obj.contains_key(&key) {
            obj.insert(key, value);
        }
    }
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

fn timestamp_now() -> String {
    time::OffsetDateTime::now_utc().format(TIMESTAMP).unwrap_or_default()
}

/// Collects event fields as JSON values, keeping numbers and booleans typed.
#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Vec<(String, Value)>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.push((field.name().to_string(), value));
        }
    }
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// A writer standing in for a closed stderr.
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn events_become_hclog_json_lines() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(HclogLayer::new(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(resource = "vm", count = 3, ok = true, "planned {} change", "one");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "planned one change");
        assert_eq!(v["@module"], MODULE);
        assert_eq!(v["resource"], "vm");
        assert_eq!(v["count"], 3);
        assert_eq!(v["ok"], true);
        let ts = v["@timestamp"].as_str().unwrap();
        // RFC 3339 with microseconds: 2026-01-02T15:04:05.000000Z
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok());
    }

    #[test]
    fn a_closing_span_logs_its_fields_and_durations() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(HclogLayer::new(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::debug_span!("ReadResource", type_name = "strata_vm");
            {
                let _inside = span.enter();
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(20));
            drop(span);
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["@level"], "debug");
        assert_eq!(v["@message"], "ReadResource done");
        assert_eq!(v["type_name"], "strata_vm");
        let (elapsed, busy) = (v["elapsed_us"].as_u64().unwrap(), v["busy_us"].as_u64().unwrap());
        assert!(busy >= 20_000 && busy < elapsed, "busy {busy} us, elapsed {elapsed} us");
        assert!(elapsed >= 40_000, "elapsed {elapsed} us");
    }

    #[test]
    fn broken_writer_is_ignored() {
        let subscriber = tracing_subscriber::registry().with(HclogLayer::new(|| Broken));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("nobody is listening");
        });
    }

    #[test]
    fn level_precedence_and_parsing() {
        assert_eq!(level_from_env(None, None), LevelFilter::WARN);
        assert_eq!(level_from_env(None, Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level_from_env(Some("Info"), Some("TRACE")), LevelFilter::INFO);
        assert_eq!(level_from_env(Some(""), Some("error")), LevelFilter::ERROR);
        assert_eq!(level_from_env(Some("json"), None), LevelFilter::TRACE);
        assert_eq!(level_from_env(Some("OFF"), None), LevelFilter::OFF);
        assert_eq!(level_from_env(None, Some("WARN")), LevelFilter::WARN);
        assert_eq!(level_from_env(None, Some("bogus")), LevelFilter::WARN);
    }
}
