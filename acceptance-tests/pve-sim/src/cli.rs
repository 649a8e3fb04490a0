//! Command-line flags of the `pve-sim` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Faults, SimConfig};

#[derive(Debug, Parser)]
#[command(name = "pve-sim", about = "Proxmox VE API simulator (a stand-in for Proxmox VE)")]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Directory for cert.pem, state.json, requests.log and pve-sim.json.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// API token accepted by the simulator: USER@REALM!TOKENID=SECRET.
    #[arg(long)]
    pub token: String,
    /// Comma-separated cluster node names.
    #[arg(long, value_delimiter = ',', default_value = "pve1")]
    pub nodes: Vec<String>,
    /// Duration of every task (UPID) in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub task_ms: u64,
    /// Percentage of API requests answered 500/503 before doing anything.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub fail_5xx_pct: u8,
    /// Percentage of API requests whose connection is reset.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub reset_pct: u8,
    /// Of the resets on non-GET requests, the percentage done after the
    /// operation was performed.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub reset_after_pct: u8,
    /// Added latency per API request in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Percentage of VM-modifying operations failing with a lock timeout.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub lock_contention_pct: u8,
    /// User for password (ticket) login; requires --password.
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Password for --user.
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// Delay before answering 401 (real PVE: ~3000).
    #[arg(long, default_value_t = 0)]
    pub auth_fail_delay_ms: u64,
    /// Time after VM start before the guest agent answers.
    #[arg(long, default_value_t = 0)]
    pub agent_boot_ms: u64,
    /// Time a guest takes to power off after an ACPI shutdown request.
    #[arg(long, default_value_t = 0)]
    pub guest_shutdown_ms: u64,
    /// Program run as `PROGRAM start|stop|shutdown|reboot|destroy VMID GUEST_DIR` when a
    /// VM's power state changes (the lab boots a node for it); GUEST_DIR holds the
    /// cloud-init NoCloud data.
    #[arg(long)]
    pub guest_hook: Option<PathBuf>,
}

impl Cli {
    pub fn into_config(self) -> SimConfig {
        let mut cfg = SimConfig::new(self.data_dir, self.token);
        cfg.listen = self.listen;
        cfg.nodes = self.nodes.into_iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        cfg.task_ms = self.task_ms;
        cfg.faults = Faults {
            fail_5xx_pct: self.fail_5xx_pct,
            reset_pct: self.reset_pct,
            reset_after_pct: self.reset_after_pct,
            latency_ms: self.latency_ms,
            lock_contention_pct: self.lock_contention_pct,
        };
        cfg.user = self.user;
        cfg.password = self.password;
        cfg.auth_fail_delay_ms = self.auth_fail_delay_ms;
        cfg.agent_boot_ms = self.agent_boot_ms;
        cfg.guest_shutdown_ms = self.guest_shutdown_ms;
        cfg.guest_hook = self.guest_hook;
        cfg
    }
}
