//! The Proxmox VE API simulator process (`pve-sim`, a separate crate).

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::process::{log_tail, spawn_daemon, wait_until, ProcessRef};
use crate::state::PveInfo;

pub const READY_FILE: &str = "pve-sim.json";

/// What pve-sim writes to `DATA/pve-sim.json` once it serves.
#[derive(Debug, Deserialize)]
struct ReadyFile {
    endpoint: String,
    api_token: String,
    ca_cert_file: PathBuf,
    pid: Option<i32>,
}

/// `--pve-sim-bin`, else `pve-sim` next to the running executable, else on PATH.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !is_executable(p) {
            bail!("--pve-sim-bin {} is not an executable file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        let p = dir.join("pve-sim");
        if is_executable(&p) {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("pve-sim");
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    bail!("pve-sim not found next to this executable nor on PATH; build it (`cargo build -p pve-sim`), pass --pve-sim-bin PATH, or use --no-pve")
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A fresh API token secret from the kernel's CSPRNG.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("root@pam!strata={hex}"))
}

/// Starts pve-sim; with `guest_hook`, VMs started through its API become lab nodes.
pub fn start(bin: &Path, data_dir: &Path, token: &str, guest_hook: Option<&Path>) -> Result<ProcessRef> {
    fs::create_dir_all(data_dir)?;
    // A ready file from an earlier run must not be mistaken for this one's.
    let _ = fs::remove_file(data_dir.join(READY_FILE));
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--token"),
        OsStr::new(token),
    ];
    if let Some(hook) = guest_hook {
        args.extend([OsStr::new("--guest-hook"), hook.as_os_str()]);
    }
    spawn_daemon(bin, &args, &[], &data_dir.join("pve-sim.log")).context("pve-sim did not start")
}

/// Waits (bounded) for the ready file; returns the API info and the pid it reports.
pub fn wait_ready(data_dir: &Path, proc: &ProcessRef, timeout: Duration) -> Result<(PveInfo, Option<i32>)> {
    let path = data_dir.join(READY_FILE);
    let log = data_dir.join("pve-sim.log");
    let mut parsed = None;
    let mut last_err = None;
    wait_until(timeout, || {
        if let Ok(text) = fs::read_to_string(&path) {
            // It may be caught half-written; retry until it parses.
            match serde_json::from_str::<ReadyFile>(&text) {
                Ok(r) => {
                    parsed = Some(r);
                    return true;
                }
                Err(e) => last_err = Some(e),
            }
        }
        !proc.is_alive()
    });
    match parsed {
        Some(r) => Ok((PveInfo { endpoint: r.endpoint, api_token: r.api_token, ca_cert_file: r.ca_cert_file }, r.pid)),
        None if !proc.is_alive() => bail!("pve-sim exited before becoming ready; {}", log_tail(&log, 15)),
        None => bail!(
            "pve-sim did not write {} within {timeout:?}{}; {}",
            path.display(),
            last_err.map(|e| format!(" (last parse error: {e})")).unwrap_or_default(),
            log_tail(&log, 15)
        ),
    }
}
