//! `serve`: ties handshake, listener, TLS, gRPC services and signals together.

use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::plugin::grpc_controller_server::GrpcControllerServer;
use strata_proto::tfplugin6::provider_server::{Provider, ProviderServer};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::controller::Controller;
use crate::listener::{incoming, SocketDir};
use crate::{debug, handshake, signals, tls};

/// Terraform's gRPC message size limit for provider traffic.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;
/// How long open connections may delay exit after Shutdown; Terraform kills
/// the process after 2 s, and every slow exit is paid several times per command.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// How to serve the provider.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Registry address, e.g. `registry.terraform.io/strata-iac/strata`
    /// (the key of the `TF_REATTACH_PROVIDERS` entry in debug mode).
    pub provider_address: String,
    /// Run standalone for `TF_REATTACH_PROVIDERS` instead of being launched by Terraform.
    pub debug: bool,
}

/// Runs the plugin server until Terraform shuts it down. Returns the process exit code to use.
pub async fn serve<P: Provider>(provider: P, opts: ServeOptions) -> ExitCode {
    if !opts.debug {
        if let Err(e) = handshake::check_launch_env(|k| std::env::var(k).ok()) {
            // Exactly one human-readable line; ignore a closed stderr.
            let _ = writeln!(std::io::stderr(), "{e}");
            return ExitCode::from(1);
        }
    }
    let shutdown = CancellationToken::new();
    if let Err(e) = signals::watch(shutdown.clone(), opts.debug) {
        tracing::error!(error = %e, "installing signal handlers failed");
        return ExitCode::from(1);
    }
    match run(provider, &opts, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "plugin server failed");
            let _ = writeln!(std::io::stderr(), "terraform-provider plugin server failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run<P: Provider>(provider: P, opts: &ServeOptions, shutdown: CancellationToken) -> Result<(), Box<dyn Error>> {
    let tls = if opts.debug { None } else { tls_from_env()? };
    let dir = SocketDir::create()?;
    let listener = UnixListener::bind(dir.socket_path())?;

    let announcement = if opts.debug {
        debug::reattach_instructions(&opts.provider_address, std::process::id(), dir.socket_path())
    } else {
        let cert = tls.as_ref().map(|(cert, _)| cert.as_ref());
        format!("{}\n", handshake::handshake_line(dir.socket_path(), cert))
    };
    {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(announcement.as_bytes())?;
        stdout.flush()?;
    }
    tracing::debug!(
        network = "unix",
        address = %dir.socket_path().display(),
        tls = tls.is_some(),
        debug = opts.debug,
        "plugin server listening"
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;

    let server = Server::builder()
        .add_service(
            ProviderServer::new(provider)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(GrpcControllerServer::new(Controller::new(shutdown.clone(), opts.debug)))
        .add_service(health_service)
        .serve_with_incoming_shutdown(
            incoming(listener, tls.map(|(_, config)| config)),
            shutdown.clone().cancelled_owned(),
        );

    tokio::select! {
        result = server => result?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::debug!("connections still open after the shutdown grace period; exiting anyway");
        }
    }
    // The process's own CPU time, so a benchmark can tell the provider's share of a
    // Terraform command from Terraform's (scripts/bench_provider.py).
    let (cpu_user_us, cpu_system_us) = process_cpu_us();
    tracing::debug!(cpu_user_us, cpu_system_us, "plugin server stopped");
    drop(dir);
    Ok(())
}

/// User and system CPU time of this process so far, all threads, in microseconds.
fn process_cpu_us() -> (u64, u64) {
    // SAFETY: getrusage only writes the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0, 0);
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime), us(usage.ru_stime))
}

/// AutoMTLS when Terraform passed `PLUGIN_CLIENT_CERT`: our certificate (for
/// the handshake line) and the server configuration. Plaintext otherwise.
fn tls_from_env(
) -> Result<Option<(rustls::pki_types::CertificateDer<'static>, Arc<rustls::ServerConfig>)>, tls::TlsSetupError> {
    let pem = match std::env::var(handshake::CLIENT_CERT_KEY) {
        Ok(pem) if !pem.trim().is_empty() => pem,
        _ => return Ok(None),
    };
    let client_cert = tls::parse_client_cert_pem(&pem)?;
    let identity = tls::ServerIdentity::generate()?;
    let config = tls::server_config(&identity, client_cert)?;
    tracing::debug!("configured server automatic mTLS");
    Ok(Some((identity.cert, Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn process_cpu_grows_with_work_done() {
        let before = super::process_cpu_us();
        let total = |(u, s): (u64, u64)| u + s;
        let start = Instant::now();
        let mut x = 1u64;
        // Spin until 20 ms of CPU show, with a generous wall-clock bound for a loaded machine.
        while total(super::process_cpu_us()) < total(before) + 20_000 && start.elapsed() < Duration::from_secs(10) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let after = super::process_cpu_us();
        assert!(total(after) >= total(before) + 20_000, "CPU time did not grow: {before:?} -> {after:?}");
        assert!(after.0 >= before.0 && after.1 >= before.1, "CPU time went back: {before:?} -> {after:?}");
    }
}
