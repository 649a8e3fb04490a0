//! Debian packages the lab host needs, installed only when missing.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::network::global_lock;
use crate::process::log_tail;

/// What the host needs: mmdebstrap builds the node image, systemd-nspawn boots it, the
/// OpenSSH client and ip drive the nodes, dpkg-dev indexes the local apt repository.
/// None of them starts a daemon: the platform's server packages live in the node image
/// and the local repository, never on the host.
pub const HOST_PACKAGES: &[&str] =
    &["mmdebstrap", "systemd-container", "openssh-client", "iproute2", "dpkg-dev", "util-linux"];

pub fn missing_packages(wanted: &[&'static str]) -> Vec<&'static str> {
    wanted
        .iter()
        .copied()
        .filter(|p| {
            let out =
                Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", p]).stderr(Stdio::null()).output();
            !matches!(out, Ok(o) if o.status.success() && o.stdout.starts_with(b"ii"))
        })
        .collect()
}

/// Installs missing packages (apt-get update once, then install) unless all are present.
pub fn ensure(wanted: &[&'static str], install: bool, log: &Path) -> Result<()> {
    if missing_packages(wanted).is_empty() {
        return Ok(());
    }
    // Two labs starting at once must not both run apt.
    let _lock = global_lock("apt.lock")?;
    let missing = missing_packages(wanted);
    if missing.is_empty() {
        return Ok(());
    }
    if !install {
        bail!(
            "missing Debian packages: {} (install them with `apt-get install -y {}`)",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("strata-lab: installing {} (log: {})", missing.join(" "), log.display());
    apt(&["update"], log)?;
    let mut args = vec!["install", "-y"];
    args.extend(missing.iter().copied());
    apt(&args, log)?;
    let still = missing_packages(wanted);
    if !still.is_empty() {
        bail!("apt-get did not install {}; {}", still.join(" "), log_tail(log, 20));
    }
    Ok(())
}

fn apt(args: &[&str], log: &Path) -> Result<()> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status}); {}", args.join(" "), log_tail(log, 20));
    }
    Ok(())
}
