//! kubeadm's preflight checks that matter on the lab's real nodes, reported in kubeadm's
//! `[ERROR Name]: message` form and skippable with `--ignore-preflight-errors`.

use std::path::Path;

use anyhow::{bail, Result};

use super::types::ExternalEtcd;

#[derive(Default)]
pub struct Checks {
    errors: Vec<(String, String)>,
    warnings: Vec<(String, String)>,
}

impl Checks {
    pub fn error(&mut self, name: &str, msg: impl Into<String>) {
        self.errors.push((name.into(), msg.into()));
    }

    pub fn warn(&mut self, name: &str, msg: impl Into<String>) {
        self.warnings.push((name.into(), msg.into()));
    }

    /// Prints warnings and ignored errors; fails with the remaining errors.
    pub fn finish(self, ignore: &[String]) -> Result<()> {
        let ignored = |name: &str| ignore.iter().any(|i| i.eq_ignore_ascii_case("all") || i.eq_ignore_ascii_case(name));
        for (n, m) in &self.warnings {
            eprintln!("\t[WARNING {n}]: {m}");
        }
        let mut fatal = Vec::new();
        for (n, m) in self.errors {
            if ignored(&n) {
                eprintln!("\t[WARNING {n}]: {m}");
            } else {
                fatal.push(format!("\t[ERROR {n}]: {m}"));
            }
        }
        if !fatal.is_empty() {
            bail!(
                "[preflight] Some fatal errors occurred:\n{}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
                fatal.join("\n")
            );
        }
        Ok(())
    }
}

pub fn privileged(c: &mut Checks) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        c.error("IsPrivilegedUser", "user is not running as root");
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn swap(c: &mut Checks) {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().skip(1).any(|l| !l.trim().is_empty()) {
        c.error("Swap", "running with swap on is not supported. Please disable swap");
    }
}

/// The container runtime answers on the CRI socket (containerd is real on the nodes).
pub fn cri(c: &mut Checks, cri_socket: &str) {
    let path = cri_socket.strip_prefix("unix://").unwrap_or(cri_socket);
    if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        c.error(
            "CRI",
            format!("container runtime is not running: output: , error: validate service connection: validate CRI v1 runtime API for endpoint \"{cri_socket}\": rpc error: code = Unavailable desc = connection error: dial unix {path}: connect: {e}"),
        );
        return;
    }
    // The socket accepts; containerd's own client confirms it is containerd answering.
    if let Ok(out) = std::process::Command::new("ctr").args(["--address", path, "version"]).output() {
        if !out.status.success() {
            c.error(
                "CRI",
                format!(
                    "container runtime is not running: `ctr --address {path} version`: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
    }
}

pub fn port(c: &mut Checks, port: u16) {
    if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
        c.error(&format!("Port-{port}"), format!("Port {port} is in use"));
    }
}

fn check_name(path: &str) -> String {
    path.replace('/', "-")
}

pub fn dir_available(c: &mut Checks, dir: &str) {
    if std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        c.error(&format!("DirAvailable-{}", check_name(dir)), format!("{dir} is not empty"));
    }
}

pub fn file_available(c: &mut Checks, file: &str) {
    if Path::new(file).exists() {
        c.error(&format!("FileAvailable-{}", check_name(file)), format!("{file} already exists"));
    }
}

/// External etcd: every endpoint is asked for its status over TLS with the client
/// certificate; the check fails if none answers (a lost member is reported as a warning).
pub async fn external_etcd(c: &mut Checks, e: &ExternalEtcd) {
    for f in [&e.ca_file, &e.cert_file, &e.key_file] {
        if !f.is_empty() && !Path::new(f).is_file() {
            c.error(&format!("FileExisting-{}", check_name(f)), format!("{f} not found"));
            return;
        }
    }
    if !e.cert_file.is_empty() {
        if let Err(err) = crate::pki::check_pair(&e.cert_file, &e.key_file) {
            c.error("ExternalEtcdClientCertificates", format!("{err:#}"));
            return;
        }
    }
    let client = match crate::etcd::Etcd::new(&e.endpoints, &e.ca_file, &e.cert_file, &e.key_file) {
        Ok(c) => c,
        Err(err) => {
            c.error("ExternalEtcdVersion", format!("{err:#}"));
            return;
        }
    };
    let statuses = client.statuses().await;
    let failed: Vec<String> =
        statuses.iter().filter_map(|(ep, r)| r.as_ref().err().map(|e| format!("{ep}: {e:#}"))).collect();
    if failed.len() == statuses.len() {
        c.error("ExternalEtcdVersion", format!("no etcd endpoint answered over TLS: {}", failed.join("; ")));
    } else {
        for f in failed {
            c.warn("ExternalEtcdVersion", f);
        }
    }
}
