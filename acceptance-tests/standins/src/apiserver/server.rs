//! The TLS listener: client certificates optional (verified against --client-ca-file when
//! sent), the verified peer's subject handed to the handlers as a request extension.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::State;

/// The subject of a verified client certificate: (CN, O...).
#[derive(Clone, Debug)]
pub struct PeerCert(pub Option<(String, Vec<String>)>);

fn tls_config(state: &State) -> Result<rustls::ServerConfig> {
    let f = &state.flags;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.tls_cert_file)
        .with_context(|| format!("reading --tls-cert-file {}", f.tls_cert_file))?
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&f.tls_private_key_file)
        .with_context(|| format!("reading --tls-private-key-file {}", f.tls_private_key_file))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&f.client_ca_file)
        .with_context(|| format!("reading --client-ca-file {}", f.client_ca_file))?
    {
        roots.add(c?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("the serving certificate and key")
}

/// How long a stopping server waits for a new connection's first request (Go's
/// `http.Server.Shutdown` treats a connection still in `StateNew` after 5 s as idle).
const NEW_CONNECTION_GRACE: Duration = Duration::from_secs(5);

pub async fn serve(state: Arc<State>) -> Result<()> {
    serve_with(state, axum::Router::new(), None).await
}

/// [`serve`] with `extra` routes in front of the API (k3s's supervisor paths share port
/// 6443 with the API), and `ready` told once the listener is bound.
pub async fn serve_with(
    state: Arc<State>,
    extra: axum::Router,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&state)?));
    let addr = format!("{}:{}", state.flags.bind_address, state.flags.secure_port);
    let listener = TcpListener::bind(&addr).await.map_err(|e| anyhow!("failed to listen on {addr}: {e}"))?;
    eprintln!("I kube-apiserver (stand-in) {} serving securely on {addr}", state.version);
    let app = extra.merge(super::rest::router(state.clone()));
    if let Some(r) = ready {
        let _ = r.send(());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Like kube-apiserver, a SIGTERM stops accepting and lets the requests under way
    // finish (idle keep-alive connections are closed), so a restart of one API server
    // behind a load balancer that retries elsewhere costs its clients nothing.
    let (stopping, _) = tokio::sync::watch::channel(false);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                let mut stop = stopping.subscribe();
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
                    let peer = PeerCert(
                        tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| crate::pki::subject_of(c)),
                    );
                    let (asked, mut first_request) = tokio::sync::watch::channel(false);
                    let asked = Arc::new(asked);
                    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                        asked.send_replace(true);
                        req.extensions_mut().insert(peer.clone());
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.oneshot(req).await.unwrap_or_else(|e| match e {})) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    // Go's http.Server.Shutdown (kube-apiserver's) closes a connection that
                    // has not sent its first request only once it is 5 s old: one accepted
                    // just before the SIGTERM still gets its answer.
                    if !*first_request.borrow() {
                        tokio::select! {
                            _ = conn.as_mut() => return,
                            _ = tokio::time::timeout(NEW_CONNECTION_GRACE, first_request.wait_for(|s| *s)) => {}
                        }
                    }
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    connections.close();
    // Bounded: a client that never finishes does not keep a stopped server alive.
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}
