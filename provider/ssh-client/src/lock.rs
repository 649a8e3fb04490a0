//! A lock taken on the remote host itself: `flock(1)` on a lock file, held by a
//! process whose stdin is an open SSH channel. Every other process on the host that
//! takes the same lock (another provider process, another workspace, an operator's
//! `flock FILE exportfs -ra`) waits for it. It is released when the holder closes the
//! channel, and also when this process dies or the connection drops: the remote
//! holder then reads end-of-file and exits, so a crash never leaves it held.

use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelWriteHalf};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::exec::{shell_quote, Client};
use crate::pool::PooledChannel;

const LOCKED: &[u8] = b"strata-locked\n";

/// A held remote lock. [`RemoteLock::release`] releases it and waits until the remote
/// holder is gone; dropping it releases it in the background.
pub struct RemoteLock {
    tx: Option<ChannelWriteHalf<Msg>>,
    // Keeps the channel (and its slot in the connection) open while held.
    _channel: Option<(russh::ChannelReadHalf, tokio::sync::OwnedSemaphorePermit)>,
    label: String,
    path: String,
}

impl std::fmt::Debug for RemoteLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLock").field("host", &self.label).field("path", &self.path).finish()
    }
}

impl Client {
    /// Takes the exclusive `flock` on `path` on the host (creating the file and its
    /// directory if needed), waiting at most `wait` for another holder; stops waiting
    /// when `cancel` fires.
    pub async fn lock(&self, path: &str, wait: Duration, cancel: &CancellationToken) -> Result<RemoteLock, Error> {
        let label = self.label().to_string();
        let dir = path.rsplit_once('/').map(|(d, _)| d).filter(|d| !d.is_empty()).unwrap_or("/");
        // `cat` holds the lock until our end of the channel closes (EOF on its stdin).
        let holder = shell_quote("printf 'strata-locked\\n'; exec cat >/dev/null");
        let cmd = format!(
            "mkdir -p -- {dir} && exec flock -x -w {secs} -- {path} sh -c {holder}",
            dir = shell_quote(dir),
            secs = wait.as_secs().max(1),
            path = shell_quote(path),
        );
        let command = self.wrap_command(&cmd)?;
        let PooledChannel { channel, _permit } = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled { host: label }),
            c = self.pool().open_session(self.target()) => c?,
        };
        let (mut rx, tx) = channel.split();
        tx.exec(true, command).await.map_err(|e| Error::ssh(&label, e))?;
        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
        let taken = async {
            loop {
                match rx.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        stdout.extend_from_slice(&data);
                        if stdout.ends_with(LOCKED) {
                            return true;
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => return false,
                    Some(_) => {}
                }
            }
        };
        let taken = tokio::select! {
            t = taken => t,
            _ = cancel.cancelled() => {
                // The waiting flock ends by its own -w bound; once it gets the lock its
                // holder finds stdin closed and lets go at once.
                let _ = tx.close().await;
                return Err(Error::Cancelled { host: label });
            }
        };
        if !taken {
            let _ = tx.close().await;
            let why = match status {
                // flock -w gave up.
                Some(1) if stderr.is_empty() => {
                    format!("it is still held by another change after {}s", wait.as_secs().max(1))
                }
                Some(s) => format!("exit status {s}: {}", String::from_utf8_lossy(&stderr).trim()),
                None => "the connection closed".to_string(),
            };
            return Err(Error::Remote {
                host: label,
                operation: format!("taking the lock {path}"),
                exit_status: status.unwrap_or(255),
                stderr: why,
            });
        }
        tracing::debug!(host = %label, path, "remote lock taken");
        Ok(RemoteLock { tx: Some(tx), _channel: Some((rx, _permit)), label, path: path.to_string() })
    }
}

impl RemoteLock {
    /// Releases the lock: end-of-file to the holder, then waits (bounded) until the
    /// channel closes, i.e. the holder has exited and the lock is free.
    pub async fn release(mut self) {
        let Some(tx) = self.tx.take() else { return };
        let Some((mut rx, permit)) = self._channel.take() else { return };
        let _ = tx.eof().await;
        let closed = async {
            while let Some(msg) = rx.wait().await {
                if matches!(msg, ChannelMsg::Close) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), closed).await;
        let _ = tx.close().await;
        drop(permit);
        tracing::debug!(host = %self.label, path = %self.path, "remote lock released");
    }
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let channel = self._channel.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tx.eof().await;
                let _ = tx.close().await;
                drop(channel);
            });
        }
    }
}
