//! The `timeouts` block every resource gets, as in terraform-plugin-framework's
//! timeouts package: `create`, `read`, `update`, `delete`, each a Go duration string
//! ("30s", "1.5h", "1h30m", "500ms"). The framework enforces them by cancelling the
//! operation's context, which stops remote work too (an SSH command is killed on the
//! node, a Proxmox task wait ends).

use std::time::Duration;

use fundu::{CustomDurationParser, CustomDurationParserBuilder, CustomTimeUnit, TimeUnit};

use super::schema::{Attribute, Block, NestedBlock, Validator};
use super::types::Type;
use super::value::Value;

pub const BLOCK: &str = "timeouts";

/// A resource's time limits when its `timeouts` block does not set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub create: Duration,
    pub read: Duration,
    pub update: Duration,
    pub delete: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            create: Duration::from_secs(20 * 60),
            read: Duration::from_secs(5 * 60),
            update: Duration::from_secs(20 * 60),
            delete: Duration::from_secs(20 * 60),
        }
    }
}

impl Timeouts {
    /// The default for an operation name (`create`, `read`, `update`, `delete`, `import`).
    pub fn default_for(&self, operation: &str) -> Duration {
        match operation {
            "create" => self.create,
            "update" => self.update,
            "delete" => self.delete,
            _ => self.read,
        }
    }
}

fn parser() -> CustomDurationParser<'static> {
    // Go's time.ParseDuration units; no spaces, no days (Go has none).
    const UNITS: [CustomTimeUnit<'static>; 6] = [
        CustomTimeUnit::with_default(TimeUnit::NanoSecond, &["ns"]),
        CustomTimeUnit::with_default(TimeUnit::MicroSecond, &["us", "µs", "μs"]),
        CustomTimeUnit::with_default(TimeUnit::MilliSecond, &["ms"]),
        CustomTimeUnit::with_default(TimeUnit::Second, &["s"]),
        CustomTimeUnit::with_default(TimeUnit::Minute, &["m"]),
        CustomTimeUnit::with_default(TimeUnit::Hour, &["h"]),
    ];
    CustomDurationParserBuilder::new().time_units(&UNITS).allow_negative().parse_multiple(None).build()
}

/// Parses a duration in Go's `time.ParseDuration` syntax.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim_start_matches('+');
    // Go requires a unit after every number except a lone zero; the parser would read
    // a bare number as seconds.
    let bare_zero = s.trim_start_matches('-') == "0";
    if s.ends_with(|c: char| c.is_ascii_digit() || c == '.') && !bare_zero {
        return Err(format!("{s:?} is missing a unit (ns, us, ms, s, m, h)"));
    }
    let d = parser().parse(s).map_err(|e| format!("{s:?} is not a duration: {e}"))?;
    if d.is_negative() {
        return Err(format!("{s:?} is negative"));
    }
    Duration::try_from(d).map_err(|e| format!("{s:?}: {e}"))
}

fn check_timeout(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    match parse_go_duration(s) {
        Ok(d) if d.is_zero() => Err("Must be longer than zero.".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("Must be a duration like \"30s\", \"10m\", \"1.5h\" or \"1h30m\": {e}.")),
    }
}

/// "20m", "1h30m", "45s": the Go form of a whole-second duration.
pub fn go_form(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// The `timeouts` block, describing the resource's defaults.
pub fn block(defaults: &Timeouts) -> NestedBlock {
    let attr = |name: &str, d: Duration, what: &str| {
        Attribute::optional(name, Type::String).validate(Validator::Custom(check_timeout)).description(format!(
            "Time limit for {what} (Go duration syntax, e.g. \"30s\", \"1.5h\"; default `{}`). When it runs out the \
                 operation is cancelled, remote commands included.",
            go_form(d)
        ))
    };
    NestedBlock::single(
        BLOCK,
        Block::new("Time limits for this resource's operations.")
            .attribute(attr("create", defaults.create, "creating"))
            .attribute(attr("read", defaults.read, "refreshing and importing"))
            .attribute(attr("update", defaults.update, "updating"))
            .attribute(attr("delete", defaults.delete, "destroying")),
    )
}

/// The limit for `operation` from a value holding the `timeouts` block (state or plan),
/// falling back to the default. Invalid strings were refused at validation.
pub fn limit(value: &Value, operation: &str, defaults: &Timeouts) -> (Duration, bool) {
    let key = if operation == "import" { "read" } else { operation };
    match value.attr(BLOCK).and_then(|t| t.attr(key)).and_then(Value::as_str).map(parse_go_duration) {
        Some(Ok(d)) => (d, true),
        _ => (defaults.default_for(operation), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_is_accepted() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("1h30m", Duration::from_secs(5400)),
            ("2h45m10.5s", Duration::from_millis((2 * 3600 + 45 * 60 + 10) * 1000 + 500)),
            ("300us", Duration::from_micros(300)),
            ("1µs", Duration::from_micros(1)),
            ("10m", Duration::from_secs(600)),
            ("0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
        ];
        for (s, d) in ok {
            assert_eq!(parse_go_duration(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused() {
        for s in ["", "ten minutes", "1d", "1 h", "1h30", "10", "-1s", "5x", "h"] {
            assert!(parse_go_duration(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn validator_refuses_zero_and_names_the_syntax() {
        assert!(check_timeout(&Value::string("0s")).is_err());
        let e = check_timeout(&Value::string("ten minutes")).unwrap_err();
        assert!(e.contains("1.5h"), "{e}");
        assert!(check_timeout(&Value::string("90s")).is_ok());
    }

    #[test]
    fn limit_reads_the_block_or_falls_back() {
        let d = Timeouts::default();
        let v = Value::Object(
            [(
                BLOCK.to_string(),
                Value::Object([("create".to_string(), Value::string("2s")), ("read".to_string(), Value::Null)].into()),
            )]
            .into(),
        );
        assert_eq!(limit(&v, "create", &d), (Duration::from_secs(2), true));
        assert_eq!(limit(&v, "read", &d), (d.read, false));
        assert_eq!(limit(&v, "import", &d), (d.read, false));
        assert_eq!(limit(&Value::Null, "delete", &d), (d.delete, false));
    }

    #[test]
    fn defaults_are_described_in_go_form() {
        assert_eq!(go_form(Duration::from_secs(5400)), "1h30m");
        assert_eq!(go_form(Duration::from_secs(45)), "45s");
    }
}
