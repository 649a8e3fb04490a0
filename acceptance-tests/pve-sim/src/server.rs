//! HTTPS accept loop. We run hyper directly (instead of axum::serve) so each
//! connection carries a handle the fault middleware can use to drop it.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Request extension: notify it to reset the request's TCP connection.
#[derive(Clone)]
pub struct ConnKill(pub Arc<Notify>);

pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                conns.spawn(handle_conn(tcp, acceptor.clone(), app.clone()));
            }
        }
    }
    conns.shutdown().await;
}

async fn handle_conn(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, app: Router) {
    let fd = tcp.as_raw_fd();
    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
        return;
    };
    let kill = Arc::new(Notify::new());
    let ext = ConnKill(kill.clone());
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ext.clone());
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
    // Pinned outside select! so the connection (and its socket) is still
    // alive inside the kill branch.
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = kill.notified() => {
            // SAFETY: `conn` (which owns the socket) is still alive here, so
            // the fd is open; linger 0 makes the close below send a TCP RST.
            let sock = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
        }
    }
}
