//! Running helper programs and tracking the daemons the lab starts.
//!
//! A daemon is identified by pid *and* kernel start time, so a recycled pid is never
//! mistaken for ours (we only ever signal processes we started).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Runs a command to completion; on failure the error names the command and shows its stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_cmd(&mut cmd)
}

pub fn run_cmd(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run `{shown}` (is it installed?)"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A process the lab started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
}

struct ProcStat {
    state: char,
    start_time: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat { state: fields.first()?.chars().next()?, start_time: fields.get(19)?.parse().ok()? })
}

impl ProcessRef {
    /// Identifies a running process by pid.
    pub fn of(pid: i32) -> Result<Self> {
        let st = proc_stat(pid).with_context(|| format!("process {pid} does not exist"))?;
        Ok(ProcessRef { pid, start_time: st.start_time })
    }

    /// True while the very process we started runs. Zombies count as dead: pid 1 on some
    /// machines never reaps orphans, so a dead daemon can linger as a zombie forever.
    pub fn is_alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some(st) => st.start_time == self.start_time && st.state != 'Z' && st.state != 'X',
            None => false,
        }
    }

    /// Sends a signal if (and only if) the process is still the one we started.
    pub fn signal(&self, sig: Signal) {
        if self.is_alive() {
            let _ = kill(Pid::from_raw(self.pid), sig);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns an error if it still runs after that.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        self.signal(Signal::SIGTERM);
        if wait_until(grace, || !self.is_alive()) {
            return Ok(());
        }
        self.signal(Signal::SIGKILL);
        if wait_until(Duration::from_secs(5), || !self.is_alive()) {
            return Ok(());
        }
        bail!("process {} survived SIGKILL", self.pid)
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `program args` as a daemon: new session, stdin from /dev/null, output appended
/// to `log`, all signal dispositions reset. It is double-forked through `sh` so it is
/// re-parented to init and outlives the caller (and the caller never has to reap it).
pub fn spawn_daemon(program: &Path, args: &[&OsStr], envs: &[(&str, &OsStr)], log: &Path) -> Result<ProcessRef> {
    let mut cmd = Command::new("setsid");
    // `env --default-signal` undoes the SIGINT/SIGQUIT ignore that `&` applies in sh.
    cmd.arg("sh")
        .arg("-c")
        .arg(r#"log="$1"; shift; env --default-signal "$@" </dev/null >>"$log" 2>&1 & echo $!"#)
        .arg("sh")
        .arg(log)
        .arg(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let shown = describe(&cmd);
    let out = run_cmd(&mut cmd).with_context(|| format!("starting daemon `{shown}`"))?;
    let pid: i32 = out.trim().parse().with_context(|| format!("daemon launcher printed {out:?} instead of a pid"))?;
    // The pid is the daemon itself (env and sh -c exec into it); it may already have died.
    ProcessRef::of(pid).map_err(|_| anyhow::anyhow!("`{shown}` exited at once; {}", log_tail(log, 15)))
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let tail = all[start..].join("\n");
    if tail.is_empty() {
        format!("({} is empty)", path.display())
    } else {
        format!("last lines of {}:\n{tail}", path.display())
    }
}

pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("strata-lab needs root (network namespaces, mounts, apt-get); run it as root");
    }
    Ok(())
}

/// Runs `cmd` with its output appended to `log`; a failure says `what` failed and shows
/// the log's tail.
pub fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); {}", log_tail(log, 20));
    }
    Ok(())
}
