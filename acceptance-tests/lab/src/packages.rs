//! Debian packages the lab and the platform roles need, installed only when missing.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::network::global_lock;
use crate::process::{log_tail, run};

/// Everything a node may run: sshd for the provider, the platform daemons for the roles
/// (LB, etcd, NFS), and sudo for the non-root user.
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "openssh-client",
    "iproute2",
    "sudo",
    "nfs-kernel-server",
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "libnfs-utils",
    "haproxy",
    "keepalived",
    "etcd-server",
    "etcd-client",
];

/// What the host needs for systemd nodes: mmdebstrap builds the image, systemd-nspawn
/// boots it, the OpenSSH client and ip drive the nodes, dpkg-dev indexes the local apt
/// repository.
pub const SYSTEMD_HOST_PACKAGES: &[&str] =
    &["mmdebstrap", "systemd-container", "openssh-client", "iproute2", "dpkg-dev", "util-linux"];

/// Daemons these packages may start on the host, with their init script names.
const HOST_DAEMONS: &[(&str, &str)] = &[
    ("sshd", "ssh"),
    ("haproxy", "haproxy"),
    ("keepalived", "keepalived"),
    ("etcd", "etcd"),
    ("ganesha.nfsd", "nfs-ganesha"),
    ("rpcbind", "rpcbind"),
    ("rpc.statd", "nfs-common"),
    ("rpc.idmapd", "nfs-common"),
    ("rpc.mountd", "nfs-kernel-server"),
];

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

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
/// Host services are kept from starting (policy-rc.d) and stopped if they started anyway:
/// a host haproxy/etcd/rpcbind would hold ports that nodes and other tests need.
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
    let before = host_daemons();
    let _policy = PolicyGuard::install()?;
    apt(&["update"], log)?;
    let mut args = vec!["install", "-y"];
    args.extend(missing.iter().copied());
    apt(&args, log)?;
    for (pid, service) in host_daemons() {
        if !before.iter().any(|(p, _)| *p == pid) {
            eprintln!("strata-lab: stopping host service {service} started by the install");
            let _ = run(&format!("/etc/init.d/{service}"), ["stop"]);
            let _ = run("update-rc.d", [service, "disable"]);
        }
    }
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

/// Host daemons (pid, init script) running in the host's own network and mount namespace;
/// node daemons of this or other labs live in other namespaces and are never touched.
fn host_daemons() -> Vec<(i32, &'static str)> {
    let host_net = fs::read_link("/proc/1/ns/net").ok();
    let host_mnt = fs::read_link("/proc/1/ns/mnt").ok();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return found };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(exe) = fs::read_link(e.path().join("exe")) else { continue };
        let Some(base) = exe.file_name().map(|b| b.to_string_lossy().into_owned()) else { continue };
        let Some(&(_, service)) = HOST_DAEMONS.iter().find(|(d, _)| *d == base) else { continue };
        if fs::read_link(e.path().join("ns/net")).ok() == host_net
            && fs::read_link(e.path().join("ns/mnt")).ok() == host_mnt
        {
            found.push((pid, service));
        }
    }
    let mut seen = HashSet::new();
    found.retain(|x| seen.insert(*x));
    found
}

/// A policy-rc.d that forbids starting services during the install, removed afterwards
/// (an existing one, e.g. a container image's, is left alone).
struct PolicyGuard(bool);

impl PolicyGuard {
    fn install() -> Result<Self> {
        if Path::new(POLICY_RC_D).exists() {
            return Ok(PolicyGuard(false));
        }
        fs::write(POLICY_RC_D, "#!/bin/sh\n# strata-lab: no services start during its package install\nexit 101\n")
            .with_context(|| format!("writing {POLICY_RC_D}"))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))?;
        Ok(PolicyGuard(true))
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if self.0 {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}
