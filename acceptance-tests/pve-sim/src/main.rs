//! `pve-sim` binary: parse flags, start the simulator, announce readiness,
//! run until SIGTERM/SIGINT.

use std::io::Write;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = pve_sim::cli::Cli::parse().into_config();
    let handle = pve_sim::start(cfg).await?;
    handle.write_discovery_file()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "PVE_SIM_READY {}", handle.endpoint())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    handle.shutdown().await
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
