//! Unix-socket listener in a private temporary directory, optionally wrapped
//! in TLS, producing the connection stream tonic serves.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// A stalled TLS client must not hold a task forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failed accept (e.g. out of file descriptors).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// The socket's directory; removed (with the socket) when dropped.
pub struct SocketDir {
    // Held for its Drop, which deletes the directory and the socket in it.
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl SocketDir {
    /// Creates a fresh 0700 directory under `PLUGIN_UNIX_SOCKET_DIR` (as
    /// go-plugin honours it) or the system temp dir.
    pub fn create() -> io::Result<Self> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("plugin");
            b
        };
        let dir = match std::env::var_os("PLUGIN_UNIX_SOCKET_DIR") {
            Some(base) if !base.is_empty() => builder.tempdir_in(base)?,
            _ => builder.tempdir()?,
        };
        let socket = dir.path().join("plugin.sock");
        Ok(Self { _dir: dir, socket })
    }

    /// Path of the socket inside the directory.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

/// One accepted connection, plain or TLS.
pub enum Conn {
    /// Plaintext (debug mode, or Terraform with TLS disabled).
    Plain(UnixStream),
    /// After a completed mutual-TLS handshake.
    Tls(Box<TlsStream<UnixStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections until the returned stream is dropped. TLS handshakes
/// run in their own tasks so one bad or slow client cannot block others, and
/// a failed handshake only drops that connection.
pub fn incoming(listener: UnixListener, tls: Option<Arc<rustls::ServerConfig>>) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(16);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a plugin connection failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                        continue;
                    }
                },
            };
            match &acceptor {
                None => {
                    if tx.send(Ok(Conn::Plain(stream))).await.is_err() {
                        return;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let _ = tx.send(Ok(Conn::Tls(Box::new(tls)))).await;
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "TLS handshake with plugin client failed")
                            }
                            Err(_) => tracing::warn!("TLS handshake with plugin client timed out"),
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
