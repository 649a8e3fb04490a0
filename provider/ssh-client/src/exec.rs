//! Remote command execution on a pooled connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio_util::sync::CancellationToken;

use crate::config::Target;
use crate::error::Error;
use crate::pool::{Pool, PooledChannel};

/// Result of a remote command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit status; 255 when it was killed by a signal
    /// (as the `ssh` client reports it).
    pub exit_status: u32,
    /// Signal name (e.g. `KILL`) when the command died from a signal.
    pub exit_signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == 0 && self.exit_signal.is_none()
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// POSIX shell single-quoting: safe for any byte string without NUL.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs operations on one target. Cheap to clone; clones (and all clients
/// made from the same [`Pool`]) share the underlying SSH connection.
#[derive(Clone)]
pub struct Client {
    pool: Pool,
    target: Arc<Target>,
    label: Arc<str>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.label).finish()
    }
}

impl Client {
    /// A client with its own private pool (one connection, reused by its
    /// clones). Use [`Pool::client`] to share connections across targets.
    pub fn new(target: Target) -> Client {
        Pool::new().client(target)
    }

    pub(crate) fn from_parts(pool: Pool, target: Target) -> Client {
        let label = target.label().into();
        Client { pool, target: Arc::new(target), label }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `user@host:port` (plus bastion), as used in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Connects (or reuses the pooled connection) and verifies host keys and
    /// authentication without running anything.
    pub async fn connect(&self) -> Result<(), Error> {
        self.pool.get(&self.target).await.map(|_| ())
    }

    /// Runs `cmd` through the remote user's shell (wrapped in `sudo -n sh -c`
    /// when the target has `sudo`), feeding `stdin` if given. A non-zero exit
    /// status is not an error here; see [`Client::exec_checked`].
    pub async fn exec(&self, cmd: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, Error> {
        self.run(cmd, stdin, None::<std::future::Pending<Error>>).await
    }

    /// Like [`Client::exec`], but gives up after `timeout` and kills the
    /// remote command and its children. `cmd` runs under `sh`.
    pub async fn exec_timeout(&self, cmd: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<ExecOutput, Error> {
        let host = self.label.to_string();
        let stop = async move {
            tokio::time::sleep(timeout).await;
            Error::Timeout { host, seconds: timeout.as_secs() }
        };
        self.run(cmd, stdin, Some(stop)).await
    }

    /// Like [`Client::exec`], but stops (killing the remote command and its
    /// children) when `cancel` fires. `cmd` runs under `sh`.
    pub async fn exec_cancellable(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput, Error> {
        let host = self.label.to_string();
        let stop = async move {
            cancel.cancelled().await;
            Error::Cancelled { host }
        };
        self.run(cmd, stdin, Some(stop)).await
    }

    /// [`Client::exec`] or, with a token, [`Client::exec_cancellable`].
    pub(crate) async fn exec_maybe_cancellable(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        cancel: Option<&CancellationToken>,
    ) -> Result<ExecOutput, Error> {
        match cancel {
            Some(token) => self.exec_cancellable(cmd, stdin, token).await,
            None => self.exec(cmd, stdin).await,
        }
    }

    /// [`Client::exec`], turning a non-zero exit into [`Error::Remote`]
    /// (stderr included; the command itself is not, as it may hold secrets).
    pub async fn exec_checked(&self, cmd: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, Error> {
        let out = self.exec(cmd, stdin).await?;
        self.check(out, "command")
    }

    pub(crate) fn check(&self, out: ExecOutput, operation: &str) -> Result<ExecOutput, Error> {
        if out.success() {
            return Ok(out);
        }
        let mut stderr = out.stderr_lossy().trim().to_string();
        if stderr.len() > 2000 {
            let mut cut = 2000;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push_str("...");
        }
        Err(Error::Remote {
            host: self.label.to_string(),
            operation: operation.into(),
            exit_status: out.exit_status,
            stderr,
        })
    }

    /// [`Client::wrap`] without a marker: the command as the server gets it (sudo).
    pub(crate) fn wrap_command(&self, cmd: &str) -> Result<String, Error> {
        self.wrap(cmd, None)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The command line sent to the server. With a `marker`, the command runs
    /// with `STRATA_EXEC_ID=<marker>` in its environment, which every child
    /// inherits, so the whole tree can be found and killed later; it first
    /// prints [`STARTED`] so we know when that tree exists.
    fn wrap(&self, cmd: &str, marker: Option<&str>) -> Result<String, Error> {
        if cmd.contains('\0') {
            return Err(Error::Config { host: self.label.to_string(), reason: "command contains a NUL byte".into() });
        }
        let inner = match marker {
            Some(m) => {
                format!("env {MARKER_VAR}={m} sh -c {}", shell_quote(&format!("printf {STARTED_PRINTF}; {cmd}")))
            }
            None if self.target.uses_sudo() => format!("sh -c {}", shell_quote(cmd)),
            None => return Ok(cmd.to_string()),
        };
        // -n: fail instead of hanging on a password prompt.
        Ok(if self.target.uses_sudo() { format!("sudo -n -- {inner}") } else { inner })
    }

    async fn run(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        stop: Option<impl Future<Output = Error>>,
    ) -> Result<ExecOutput, Error> {
        let marker = stop.is_some().then(new_marker);
        let command = self.wrap(cmd, marker.as_deref())?;
        let stop = async move {
            match stop {
                Some(stop) => stop.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        // Connecting can hang too (an unreachable node); nothing runs remotely yet, so
        // giving up here needs no clean-up.
        let PooledChannel { channel, _permit } = tokio::select! {
            biased;
            e = &mut stop => return Err(e),
            c = self.pool.open_session(&self.target) => c?,
        };
        let (mut rx, tx) = channel.split();
        let mut guard = SweepOnDrop { client: self, marker: marker.clone() };
        tx.exec(true, command).await.map_err(|e| Error::ssh(&self.label, e))?;
        let mut progress = Progress::default();
        let outcome = tokio::select! {
            r = drive(&mut rx, &tx, stdin, &mut progress) => Ok(r),
            e = &mut stop => Err(e),
        };
        // From here on this function sees the command to its end itself.
        guard.marker = None;
        match outcome {
            Ok(Ok(())) => {
                let mut out = progress.out;
                // Absent only if the wrapper never ran (e.g. sudo refused).
                if marker.is_some() && out.stdout.starts_with(STARTED) {
                    out.stdout.drain(..STARTED.len());
                }
                Ok(out)
            }
            Ok(Err(DriveError::Refused)) => Err(Error::ssh(&self.label, "the server refused to execute the command")),
            Ok(Err(DriveError::Lost)) => Err(Error::Disconnected { host: self.label.to_string() }),
            Err(stopped) => {
                if let Some(m) = marker {
                    // Until the wrapper has started, a sweep could miss the
                    // command, which would then run on unsupervised.
                    let wait = async {
                        while !progress.closed && progress.out.stdout.len() < STARTED.len() {
                            let Some(msg) = rx.wait().await else { break };
                            if progress.apply(msg).is_err() {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(KILL_SWEEP_TIMEOUT, wait).await;
                    // OpenSSH honours "signal" only in privilege-separated
                    // (non-root) sessions and it does not reach past sudo,
                    // hence the sweep as well.
                    let _ = tx.signal(Sig::KILL).await;
                    if !progress.closed {
                        self.kill_marked(&m).await;
                    }
                }
                let _ = tx.close().await;
                Err(stopped)
            }
        }
    }

    /// Best effort: SIGKILL every remote process carrying `marker`.
    async fn kill_marked(&self, marker: &str) {
        let sweep = format!(
            "for p in /proc/[0-9]*; do \
               if grep -qxzF {MARKER_VAR}={marker} \"$p/environ\" 2>/dev/null; then kill -9 \"${{p#/proc/}}\" 2>/dev/null; fi; \
             done; exit 0"
        );
        // Not via `run`: that would make `run`'s future type recursive.
        let sweep_run = async {
            let command = self.wrap(&sweep, None)?;
            let PooledChannel { channel, _permit } = self.pool.open_session(&self.target).await?;
            let (mut rx, tx) = channel.split();
            tx.exec(true, command).await.map_err(|e| Error::ssh(&self.label, e))?;
            drive(&mut rx, &tx, None, &mut Progress::default())
                .await
                .map_err(|_| Error::Disconnected { host: self.label.to_string() })
        };
        match tokio::time::timeout(KILL_SWEEP_TIMEOUT, sweep_run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(host = %self.label, error = %e, "could not kill the stopped remote command"),
            Err(_) => tracing::warn!(host = %self.label, "timed out killing the stopped remote command"),
        }
    }
}

/// Kills a stoppable command's remote processes when its `run` future is dropped
/// before the command ended: a caller that stopped waiting (e.g. a `select!` on the
/// same token) must not leave it running on the node. The sweep runs on a task of its own.
struct SweepOnDrop<'a> {
    client: &'a Client,
    marker: Option<String>,
}

impl Drop for SweepOnDrop<'_> {
    fn drop(&mut self) {
        let Some(marker) = self.marker.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let client = self.client.clone();
        tracing::debug!(host = %client.label, "command abandoned while running; killing it on the node");
        runtime.spawn(async move {
            // The wrapper may not have started yet: a late sweep catches it.
            for delay in SWEEP_ON_DROP_DELAYS {
                tokio::time::sleep(delay).await;
                client.kill_marked(&marker).await;
            }
        });
    }
}

const SWEEP_ON_DROP_DELAYS: [Duration; 2] = [Duration::from_millis(300), Duration::from_secs(2)];

const MARKER_VAR: &str = "STRATA_EXEC_ID";
/// First stdout bytes of a marked command; stripped before returning.
const STARTED: &[u8] = b"\x1estrata-started\n";
const STARTED_PRINTF: &str = r"'\036strata-started\n'";
const KILL_SWEEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Unique per call within a host's lifetime: our pid, wall clock, counter.
fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

enum DriveError {
    Refused,
    Lost,
}

/// Output gathered so far; kept outside `drive` so it survives a stop.
#[derive(Default)]
struct Progress {
    out: ExecOutput,
    status: Option<u32>,
    closed: bool,
}

impl Progress {
    fn apply(&mut self, msg: ChannelMsg) -> Result<(), DriveError> {
        match msg {
            ChannelMsg::Data { data } => self.out.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => self.out.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => self.status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.out.exit_signal = Some(match signal_name {
                    Sig::Custom(name) => name,
                    other => format!("{other:?}"),
                });
                self.status = Some(255);
            }
            ChannelMsg::Failure => return Err(DriveError::Refused),
            ChannelMsg::Close => self.closed = true,
            _ => {}
        }
        Ok(())
    }
}

async fn drive(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    stdin: Option<&[u8]>,
    progress: &mut Progress,
) -> Result<(), DriveError> {
    // Input and output run concurrently so a command that writes a lot
    // before reading all its input cannot deadlock on window sizes.
    let write = async {
        if let Some(data) = stdin {
            tx.data(data).await?;
        }
        tx.eof().await
    };
    let read = async {
        while !progress.closed {
            match rx.wait().await {
                Some(msg) => progress.apply(msg)?,
                None => break,
            }
        }
        progress.closed = true;
        progress.out.exit_status = progress.status.ok_or(DriveError::Lost)?;
        Ok(())
    };
    tokio::pin!(write, read);
    let mut writing = true;
    loop {
        tokio::select! {
            out = &mut read => return out,
            // A write error only means the command stopped reading stdin;
            // its exit status is what counts. If it exits without reading,
            // the pending write is simply dropped with the channel.
            _ = &mut write, if writing => writing = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in ["plain", "with space", "it's", "'", "a'b\"c$d`e\\f", "", "line\nbreak", "*"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
