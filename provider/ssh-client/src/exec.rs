//! Remote command execution on a pooled connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
        self.run(cmd, stdin, std::future::pending()).await
    }

    /// Like [`Client::exec`], but gives up after `timeout` and kills the
    /// remote command.
    pub async fn exec_timeout(&self, cmd: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<ExecOutput, Error> {
        let host = self.label.to_string();
        let stop = async move {
            tokio::time::sleep(timeout).await;
            Error::Timeout { host, seconds: timeout.as_secs() }
        };
        self.run(cmd, stdin, stop).await
    }

    /// Like [`Client::exec`], but stops (killing the remote command) when
    /// `cancel` fires.
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
        self.run(cmd, stdin, stop).await
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
        Err(Error::Remote { host: self.label.to_string(), operation: operation.into(), exit_status: out.exit_status, stderr })
    }

    fn wrap(&self, cmd: &str) -> Result<String, Error> {
        if cmd.contains('\0') {
            return Err(Error::Config { host: self.label.to_string(), reason: "command contains a NUL byte".into() });
        }
        Ok(if self.target.uses_sudo() {
            // -n: fail instead of hanging on a password prompt.
            format!("sudo -n -- sh -c {}", shell_quote(cmd))
        } else {
            cmd.to_string()
        })
    }

    async fn run(&self, cmd: &str, stdin: Option<&[u8]>, stop: impl Future<Output = Error>) -> Result<ExecOutput, Error> {
        let command = self.wrap(cmd)?;
        let PooledChannel { channel, _permit } = self.pool.open_session(&self.target).await?;
        let (mut rx, tx) = channel.split();
        tx.exec(true, command).await.map_err(|e| Error::ssh(&self.label, e))?;
        let outcome = tokio::select! {
            r = drive(&mut rx, &tx, stdin) => Ok(r),
            e = stop => Err(e),
        };
        match outcome {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(DriveError::Refused)) => Err(Error::ssh(&self.label, "the server refused to execute the command")),
            Ok(Err(DriveError::Lost)) => Err(Error::Disconnected { host: self.label.to_string() }),
            Err(stopped) => {
                // Best effort: OpenSSH honours "signal" requests; closing the
                // channel also hangs up the command's pipes.
                let _ = tx.signal(Sig::KILL).await;
                let _ = tx.close().await;
                Err(stopped)
            }
        }
    }
}

enum DriveError {
    Refused,
    Lost,
}

async fn drive(rx: &mut ChannelReadHalf, tx: &ChannelWriteHalf<Msg>, stdin: Option<&[u8]>) -> Result<ExecOutput, DriveError> {
    // Input and output run concurrently so a command that writes a lot
    // before reading all its input cannot deadlock on window sizes.
    let write = async {
        if let Some(data) = stdin {
            tx.data(data).await?;
        }
        tx.eof().await
    };
    let read = async {
        let mut out = ExecOutput::default();
        let mut status = None;
        while let Some(msg) = rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.exit_signal = Some(match signal_name {
                        Sig::Custom(name) => name,
                        other => format!("{other:?}"),
                    });
                    status = Some(255);
                }
                ChannelMsg::Failure => return Err(DriveError::Refused),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        out.exit_status = status.ok_or(DriveError::Lost)?;
        Ok(out)
    };
    // A write error only means the command stopped reading stdin; its exit
    // status is what counts.
    let (_, out) = tokio::join!(write, read);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in ["plain", "with space", "it's", "'", "a'b\"c$d`e\\f", "", "line\nbreak", "*"] {
            let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", shell_quote(s))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
