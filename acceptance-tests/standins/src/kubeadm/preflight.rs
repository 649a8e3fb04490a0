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

/// kubeadm's `MinExternalEtcdVersion` (`cmd/kubeadm/app/constants/constants.go`) for the
/// minors the stand-ins pin: `3.5.24-0` in each. 1.35 and 1.36 carry it from
/// kubernetes#134779 ("Bump supported etcd version to v3.5.24"), 1.34 from its
/// release-1.34 backport kubernetes#134861 (in 1.34.2 and later; the stand-ins pin 1.34.3).
/// (Another minor would need its own value looked up; none is pinned.)
pub fn min_external_etcd_version(_kubeadm: crate::version::KubeVersion) -> &'static str {
    "3.5.24-0"
}

/// MAJOR, MINOR, PATCH.
type Core = (u64, u64, u64);

/// `MAJOR.MINOR.PATCH[-PRE][+BUILD]` for a semantic-version comparison, as kubeadm's
/// `versionutil.ParseSemantic`.
fn semver(v: &str) -> Option<(Core, Option<&str>)> {
    let v = v.split('+').next()?;
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let n: Vec<u64> = core.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    (n.len() == 3).then_some(((n[0], n[1], n[2]), pre))
}

/// `version.LessThan(min)` of kubeadm's versionutil (a pre-release sorts before its release).
fn less_than(version: &str, min: &str) -> Option<bool> {
    let ((a, ap), (b, bp)) = (semver(version)?, semver(min)?);
    Some(match a.cmp(&b) {
        std::cmp::Ordering::Equal => match (ap, bp) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(x), Some(y)) => x < y,
        },
        o => o == std::cmp::Ordering::Less,
    })
}

/// What kubeadm's ExternalEtcdVersionCheck says of one endpoint's `/version` answer
/// (`etcdserver`): the error, or `None` when the version is accepted.
pub fn etcd_version_error(etcdserver: &str, min: &str) -> Option<String> {
    match less_than(etcdserver, min) {
        None => Some(format!("couldn't parse external etcd version {etcdserver:?}")),
        Some(true) => Some(format!(
            "this version of kubeadm only supports external etcd version >= {min}. Current version: {etcdserver}"
        )),
        Some(false) => None,
    }
}

/// External etcd, as kubeadm's ExternalEtcdVersionCheck (`cmd/kubeadm/app/preflight/checks.go`):
/// every endpoint's `/version` is read over TLS with the client certificate (the server
/// verified against the etcd CA), and an `etcdserver` older than `MinExternalEtcdVersion`
/// is an `[ERROR ExternalEtcdVersion]` per endpoint. One difference: an endpoint that does
/// not answer is a warning while another answers (kubeadm makes it an error too).
pub async fn external_etcd(c: &mut Checks, e: &ExternalEtcd, kubeadm: crate::version::KubeVersion) {
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
    let versions = match crate::etcd::server_versions(&e.endpoints, &e.ca_file, &e.cert_file, &e.key_file).await {
        Ok(v) => v,
        Err(err) => {
            c.error("ExternalEtcdVersion", format!("{err:#}"));
            return;
        }
    };
    let min = min_external_etcd_version(kubeadm);
    let failed: Vec<String> =
        versions.iter().filter_map(|(ep, r)| r.as_ref().err().map(|e| format!("{ep}: {e:#}"))).collect();
    if failed.len() == versions.len() {
        c.error("ExternalEtcdVersion", format!("no etcd endpoint answered over TLS: {}", failed.join("; ")));
        return;
    }
    for f in failed {
        c.warn("ExternalEtcdVersion", f);
    }
    for (_, r) in &versions {
        if let Some(msg) = r.as_ref().ok().and_then(|v| etcd_version_error(v, min)) {
            c.error("ExternalEtcdVersion", msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::KubeVersion;

    /// cmd/kubeadm/app/preflight/checks.go, ExternalEtcdVersionCheck.Check: the message,
    /// and the comparison with constants.MinExternalEtcdVersion as a semantic version.
    #[test]
    fn an_external_etcd_older_than_kubeadms_minimum_is_refused_with_kubeadms_message() {
        for kubeadm in ["v1.34.3", "v1.35.0", "v1.36.1", "v1.36.2"] {
            let min = min_external_etcd_version(KubeVersion::parse(kubeadm).unwrap());
            assert_eq!(min, "3.5.24-0", "{kubeadm}");
            assert_eq!(
                etcd_version_error("3.4.23", min).as_deref(),
                Some(
                    "this version of kubeadm only supports external etcd version >= 3.5.24-0. Current version: 3.4.23"
                ),
                "{kubeadm}"
            );
            for old in ["3.5.16", "3.5.23", "3.5.23-rc.1"] {
                assert!(etcd_version_error(old, min).is_some(), "{kubeadm} {old}");
            }
            for ok in ["3.5.24", "3.5.30", "3.6.6"] {
                assert_eq!(etcd_version_error(ok, min), None, "{kubeadm} {ok}");
            }
        }
        assert!(etcd_version_error("not-a-version", "3.5.24-0").unwrap().contains("couldn't parse"));
    }

    #[test]
    fn the_version_error_is_fatal_unless_ignored() {
        let mut c = Checks::default();
        c.error("ExternalEtcdVersion", etcd_version_error("3.4.23", "3.5.24-0").unwrap());
        let e = c.finish(&[]).unwrap_err().to_string();
        assert!(e.contains("[ERROR ExternalEtcdVersion]: this version of kubeadm only supports external etcd version >= 3.5.24-0. Current version: 3.4.23"), "{e}");
        let mut c = Checks::default();
        c.error("ExternalEtcdVersion", etcd_version_error("3.4.23", "3.5.24-0").unwrap());
        assert!(c.finish(&["ExternalEtcdVersion".into()]).is_ok());
    }
}
