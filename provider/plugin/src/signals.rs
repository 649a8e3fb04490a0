//! Signal policy. Ctrl-C reaches the whole process group, Terraform included;
//! Terraform then cancels providers itself (StopProvider, then Shutdown), so
//! in normal mode SIGINT is swallowed. SIGTERM always stops the server, and in
//! debug mode (a human at the terminal) so does SIGINT.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Installs the handlers (replacing the default "terminate" action) and
/// cancels `shutdown` when the server should stop.
pub fn watch(shutdown: CancellationToken, debug: bool) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut ignored: u64 = 0;
        loop {
            tokio::select! {
                Some(()) = interrupt.recv() => {
                    if debug {
                        tracing::info!("interrupt received, stopping the debug provider");
                        shutdown.cancel();
                    } else {
                        ignored += 1;
                        tracing::trace!(count = ignored, "plugin received interrupt signal, ignoring");
                    }
                }
                Some(()) = terminate.recv() => {
                    tracing::debug!("terminate signal received, shutting down");
                    shutdown.cancel();
                }
                else => return,
            }
        }
    });
    Ok(())
}
