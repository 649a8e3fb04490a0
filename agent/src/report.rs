//! The run report: printed Ansible-style for people, or as JSON (`--json`)
//! for the Terraform provider. Both types are part of the public API.

use crate::task::Change;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Bumped when the JSON shape changes incompatibly.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    Apply,
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// In check mode: would change.
    Changed,
    Failed,
    /// Not run because an earlier task failed.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    /// Module kind ("file", "containerd", ...; "handler" for restarts/daemon-reload).
    pub module: String,
    pub status: Status,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recap {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Exit status for a usage error (bad flags, unreadable spec path, bad `--root`):
/// BSD sysexits' EX_USAGE. Never 2, which means "changed".
pub const EXIT_USAGE: u8 = 64;
/// Exit status for a spec that does not parse (EX_DATAERR); nothing was run.
pub const EXIT_SPEC: u8 = 65;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub mode: RunMode,
    pub root: String,
    pub tasks: Vec<TaskReport>,
    pub recap: Recap,
    pub changed: bool,
    pub failed: bool,
}

impl Report {
    pub fn new(mode: RunMode, root: String, tasks: Vec<TaskReport>) -> Report {
        let mut recap = Recap::default();
        for t in &tasks {
            match t.status {
                Status::Ok => recap.ok += 1,
                Status::Changed => recap.changed += 1,
                Status::Failed => recap.failed += 1,
                Status::Skipped => recap.skipped += 1,
            }
        }
        Report { format: REPORT_FORMAT, mode, root, changed: recap.changed > 0, failed: recap.failed > 0, tasks, recap }
    }

    /// 0 = nothing (would have) changed, 2 = something did, 1 = failure.
    /// 0 nothing changed, 2 changed (or would, for `check`), 1 a task failed; see
    /// [`EXIT_USAGE`] and [`EXIT_SPEC`] for runs that never started.
    pub fn exit_code(&self) -> i32 {
        if self.failed {
            1
        } else if self.changed {
            2
        } else {
            0
        }
    }

    /// One line per task, diffs under changed tasks when asked, then a recap.
    pub fn render_human(&self, diff: bool) -> String {
        let mut out = String::new();
        for t in &self.tasks {
            let _ = writeln!(out, "{}: {} ({})", t.status.as_str(), t.name, fmt_duration(t.duration_ms));
            if let Some(e) = &t.error {
                let _ = writeln!(out, "    error: {e}");
            }
            if diff {
                for d in t.changes.iter().filter_map(|c| c.diff.as_deref()) {
                    out.push_str(d);
                    if !d.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
        }
        let r = &self.recap;
        let _ = writeln!(out, "ok={} changed={} failed={} skipped={}", r.ok, r.changed, r.failed, r.skipped);
        out
    }
}

pub fn fmt_duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(status: Status) -> TaskReport {
        TaskReport {
            name: "file /etc/x".into(),
            module: "file".into(),
            status,
            duration_ms: 1.24,
            changes: vec![],
            error: None,
        }
    }

    #[test]
    fn exit_codes_and_recap() {
        let r = Report::new(RunMode::Apply, "/".into(), vec![t(Status::Ok), t(Status::Ok)]);
        assert_eq!((r.exit_code(), r.recap.ok), (0, 2));
        let r = Report::new(RunMode::Check, "/".into(), vec![t(Status::Ok), t(Status::Changed)]);
        assert_eq!(r.exit_code(), 2);
        let r =
            Report::new(RunMode::Apply, "/".into(), vec![t(Status::Changed), t(Status::Failed), t(Status::Skipped)]);
        assert_eq!(r.exit_code(), 1);
        assert!(r.render_human(false).ends_with("ok=0 changed=1 failed=1 skipped=1\n"));
    }

    #[test]
    fn human_lines() {
        let mut c = t(Status::Changed);
        c.changes.push(Change::file("/etc/x", "update /etc/x", "--- a/etc/x\n+++ b/etc/x\n".into()));
        let r = Report::new(RunMode::Apply, "/".into(), vec![c]);
        assert_eq!(r.render_human(false), "changed: file /etc/x (1.2ms)\nok=0 changed=1 failed=0 skipped=0\n");
        assert!(r.render_human(true).contains("+++ b/etc/x\n"));
        assert_eq!(fmt_duration(1500.0), "1.50s");
    }
}
