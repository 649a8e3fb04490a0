//! The call record the acceptance tests read: one JSON line per invocation of the
//! stand-in kubeadm (`start` and `time`: when it began and ended), and each eviction the
//! stand-in API server decided (tool `eviction`, exit 0 evicted or 429 refused), in
//! `/var/log/strata-standins/calls.jsonl`.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

pub const DEFAULT_LOG: &str = "/var/log/strata-standins/calls.jsonl";

fn log_path() -> PathBuf {
    std::env::var_os("STRATA_STANDINS_CALLS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_LOG))
}

/// The value of `--config F` / `--config=F` (or `-f F` for kubectl) in `argv`.
pub fn config_arg(argv: &[String], flags: &[&str]) -> Option<String> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        for f in flags {
            if a == f {
                return it.next().cloned();
            }
            if let Some(v) = a.strip_prefix(&format!("{f}=")) {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// Appends the record of one call that took no time (`start` = `time`). Failing to record
/// is reported but does not change the tool's exit code (the record is for the tests, not
/// for the caller).
pub fn record(tool: &str, argv: &[String], config_flags: &[&str], exit: i32) {
    record_span(tool, argv, config_flags, exit, time::OffsetDateTime::now_utc());
}

/// Appends the record of one call that began at `start`: `start` and `time` (its end)
/// span it, so a test can tell calls in series from overlapping ones.
pub fn record_span(tool: &str, argv: &[String], config_flags: &[&str], exit: i32, start: time::OffsetDateTime) {
    let config = config_arg(argv, config_flags).and_then(|p| std::fs::read_to_string(p).ok());
    // Nanoseconds: records of different nodes (one kernel clock in the lab) are ordered by it.
    let rfc3339 =
        |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let (start, now) = (rfc3339(start), rfc3339(time::OffsetDateTime::now_utc()));
    let line = json!({"tool": tool, "argv": argv, "start": start, "time": now, "config": config, "exit": exit});
    let path = log_path();
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{line}")
    })();
    if let Err(e) = result {
        eprintln!("strata stand-in: cannot record the call in {}: {e}", path.display());
    }
}
