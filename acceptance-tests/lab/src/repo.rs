//! The lab's local apt repository: systemd nodes are air-gapped, so the packages the
//! platform roles install come from here, as in the seeds' offline mode. Built on the
//! host from a pinned package list plus whatever dependencies the node image lacks,
//! indexed with dpkg-scanpackages, cached under `$STRATA_CACHE/lab/repo-<hash>`, and
//! bind-mounted read-only into every node as a `file:` source.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::image::{cache_root, fnv64, image_key};
use crate::network::global_lock;
use crate::process::log_tail;

/// What nodes can install: the platform roles' daemons (LB, etcd, NFS), containerd, tools.
pub const REPO_PACKAGES: &[&str] = &[
    "haproxy",
    "keepalived",
    "etcd-server",
    "etcd-client",
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "libnfs-utils",
    "nfs-kernel-server",
    "jq",
    "curl",
    "containerd",
    "runc",
    // The stand-in kubelet package's Depends (crate::standins::KUBELET_DEPENDS): the
    // binaries kubeadm's preflight wants on PATH.
    "iptables",
    "iproute2",
    "socat",
    "util-linux",
    "mount",
    "ebtables",
    "ethtool",
    // Ansible's interpreter and its apt module (the Ansible side of the agent benchmark).
    "python3",
    "python3-apt",
    // Air-gapped images (issue 26): a local OCI registry (Distribution 2.8) on a lab node,
    // and skopeo to push the lab's image bundles into it.
    "docker-registry",
    "skopeo",
];

/// Where a node sees the repository, and its apt source line.
pub const NODE_PATH: &str = "/var/lib/strata-lab/repo";
pub const SOURCE_FILE: &str = "etc/apt/sources.list.d/strata-lab.list";

pub fn source_line() -> String {
    // trusted=yes: the repository is unsigned; it never leaves this machine.
    format!("deb [trusted=yes] file:{NODE_PATH} ./\n")
}

pub fn repo_dir(cache: &Path) -> PathBuf {
    let mut parts = vec!["repo v1", "no recommends", "etcd from sid", crate::etcd::VERSION];
    let key = image_key();
    parts.push(&key);
    parts.extend(REPO_PACKAGES);
    cache.join("lab").join(format!("repo-{:016x}", fnv64(&parts)))
}

fn is_complete(dir: &Path) -> bool {
    dir.join("Packages").is_file()
}

/// Returns the cached repository, building it first if needed. Dependencies are resolved
/// against the node image's dpkg status, so exactly what a node lacks is downloaded.
/// Built in a temp dir and renamed into place under a machine-wide lock.
pub fn ensure_repo(image: &Path, log: &Path) -> Result<PathBuf> {
    let dir = repo_dir(&cache_root()?);
    if is_complete(&dir) {
        return Ok(dir);
    }
    let _lock = global_lock("repo.lock")?;
    if is_complete(&dir) {
        return Ok(dir);
    }
    let parent = dir.parent().expect("repo dir has a parent");
    fs::create_dir_all(parent)?;
    // Leftovers of interrupted builds (we hold the lock, so none is running).
    for e in fs::read_dir(parent)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".build-repo-") {
            crate::image::remove_build_dir(&e.path())?;
        }
    }
    let tmp = parent.join(format!(".build-repo-{}", std::process::id()));
    fs::create_dir_all(tmp.join("partial"))?;
    eprintln!("strata-lab: building the local apt repository {} (log: {})", dir.display(), log.display());
    let result = download(image, &tmp, log)
        .or_else(|e| {
            // Stale host package lists (a version vanished from the mirror): refresh once.
            eprintln!("strata-lab: download failed ({e:#}); running apt-get update and retrying");
            apt(Command::new("apt-get").arg("update"), log)?;
            download(image, &tmp, log)
        })
        .and_then(|()| add_etcd(&tmp, log));
    if let Err(e) = result.and_then(|()| index(image, &tmp, log)) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = fs::remove_dir_all(tmp.join("partial"));
    let _ = fs::remove_file(tmp.join("lock"));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    Ok(dir)
}

fn download(image: &Path, into: &Path, log: &Path) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.arg("-q")
        .arg(format!("-o=Dir::State::status={}", image.join("var/lib/dpkg/status").display()))
        .arg(format!("-o=Dir::Cache::archives={}", into.display()))
        .args(["-o=APT::Install-Recommends=false", "--download-only", "-y", "install"])
        .args(REPO_PACKAGES);
    apt(&mut cmd, log)
}

/// Debian unstable's etcd 3.5 (see [`crate::etcd`]) beside bookworm's 3.4: apt on a node
/// picks the newer one, and `etcd-server=3.4.23-4+b4` can still be pinned.
fn add_etcd(dir: &Path, log: &Path) -> Result<()> {
    for deb in crate::etcd::ensure(log)? {
        let name = deb.file_name().context("a file name")?;
        fs::copy(&deb, dir.join(name)).with_context(|| format!("copying {}", deb.display()))?;
    }
    Ok(())
}

fn index(image: &Path, dir: &Path, log: &Path) -> Result<()> {
    let out = fs::File::create(dir.join("Packages"))?;
    let err = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = Command::new("dpkg-scanpackages")
        .args(["--multiversion", ".", "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .context("cannot run dpkg-scanpackages (apt-get install -y dpkg-dev)")?;
    if !status.success() {
        bail!("dpkg-scanpackages failed ({status}); {}", log_tail(log, 20));
    }
    let packages = fs::read_to_string(dir.join("Packages"))?;
    // apt downloads only what the image lacks: a package the image already has
    // (python3, a dependency of cloud-init) is installed on every node anyway.
    let image_status = fs::read_to_string(image.join("var/lib/dpkg/status")).unwrap_or_default();
    for p in REPO_PACKAGES {
        if !packages.lines().any(|l| l == format!("Package: {p}")) && !is_installed(&image_status, p) {
            bail!("the local repository lacks {p} after the download; {}", log_tail(log, 20));
        }
    }
    let etcd = format!("Version: {}", crate::etcd::VERSION);
    if !packages.split("\n\n").any(|s| s.lines().any(|l| l == "Package: etcd-server") && s.lines().any(|l| l == etcd)) {
        bail!("the local repository lacks etcd-server {} after indexing", crate::etcd::VERSION);
    }
    Ok(())
}

/// Whether a dpkg status file records `package` as installed.
fn is_installed(dpkg_status: &str, package: &str) -> bool {
    dpkg_status.split("\n\n").any(|stanza| {
        stanza.lines().any(|l| l == format!("Package: {package}"))
            && stanza.lines().any(|l| l == "Status: install ok installed")
    })
}

fn apt(cmd: &mut Command, log: &Path) -> Result<()> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get failed ({status}); {}", log_tail(log, 20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_of_the_image_counts_as_installed() {
        let status = "Package: python3\nStatus: install ok installed\nVersion: 3.11\n\n\
                      Package: jq\nStatus: deinstall ok config-files\n";
        assert!(is_installed(status, "python3"));
        assert!(!is_installed(status, "jq"));
        assert!(!is_installed(status, "python"));
    }
}
