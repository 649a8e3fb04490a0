//! The Kubernetes STAND-INS as Debian packages: `kubeadm`, `kubelet` and `kubectl` at the
//! versions pkgs.k8s.io would offer (see [`VERSIONS`]), built with dpkg-deb from the
//! binaries of the `strata-standins` crate (`make build`) and, for `kubectl`, the REAL
//! kubectl (Debian's, see [`crate::kubectl`]; kubectl works across the supported minor
//! versions, so every `kubectl` package holds the same binary), indexed with
//! dpkg-scanpackages, cached under `$STRATA_CACHE/lab/standins-repo-<hash of the
//! binaries>`, and bound read-only into every node as a second `file:` apt source. The
//! version is baked into each package (`/usr/lib/strata-standins/<package>.version`), so
//! `kubeadm version` reports the installed package's version. The stand-in kube-apiserver
//! ships inside the kubelet package (real clusters run it from an image the kubelet pulls),
//! and so does `strata-cri`, the lab's CRI TEST CLIENT (crictl-like, not a stand-in:
//! Debian 12 has no crictl), as `/usr/bin/strata-cri`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::image::cache_root;
use crate::network::global_lock;
use crate::process::{log_tail, run_logged};

/// Debian versions of each package, as on pkgs.k8s.io.
pub const VERSIONS: &[&str] = &["1.34.3-1.1", "1.35.0-1.1", "1.36.1-1.1", "1.36.2-1.1"];
pub const BINARIES: &[&str] = &["kubeadm", "kubelet", "kube-apiserver", "strata-cri"];

/// Where a node sees the repository, and its apt source line.
pub const NODE_PATH: &str = "/var/lib/strata-lab/standins-repo";
pub const SOURCE_FILE: &str = "etc/apt/sources.list.d/strata-lab-kubernetes-standins.list";

/// Bumped when the package layout below changes.
const RECIPE: &str = "standins repo v4 (real kubectl, kubelet Depends, strata-cri in kubelet)";

/// The stand-in kubelet's `Depends:`, as the real kubelet package's (pkgs.k8s.io: iptables,
/// iproute2, socat, util-linux, mount, ebtables, ethtool; its kubernetes-cni and conntrack
/// are left out: nothing here runs CNI plugins or kube-proxy). They bring the binaries
/// kubeadm's preflight looks for on PATH (InPathCheck: ip, iptables, mount, nsenter
/// mandatory; ebtables, ethtool, socat, tc, touch warnings). Each must be installable from
/// the lab's local repository ([`crate::repo::REPO_PACKAGES`] lists them).
pub const KUBELET_DEPENDS: &[&str] = &["iptables", "iproute2", "socat", "util-linux", "mount", "ebtables", "ethtool"];

pub fn source_line() -> String {
    format!("deb [trusted=yes] file:{NODE_PATH} ./\n")
}

/// How `up` gets the stand-in binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandinsMode {
    /// No stand-in repository on the nodes.
    Disabled,
    /// `$STRATA_STANDINS_DIR`, else beside the running executable (or its parent, for
    /// test binaries in target/debug/deps), else `$CARGO_TARGET_DIR/debug`; if none holds
    /// them, the nodes get no stand-in repository (a note says so).
    Auto,
    /// This directory must hold all the binaries ([`BINARIES`]).
    Dir(PathBuf),
}

fn has_all(dir: &Path) -> bool {
    BINARIES.iter().all(|b| dir.join(b).is_file())
}

/// The directory holding the stand-in binaries (and the strata-cri test client), per `mode`.
pub fn locate(mode: &StandinsMode) -> Result<Option<PathBuf>> {
    match mode {
        StandinsMode::Disabled => Ok(None),
        StandinsMode::Dir(d) => {
            if !has_all(d) {
                bail!("{} lacks some of the stand-in binaries {BINARIES:?}; build them with `cargo build -p strata-standins --bins`", d.display());
            }
            Ok(Some(d.clone()))
        }
        StandinsMode::Auto => {
            let mut candidates = Vec::new();
            if let Some(d) = std::env::var_os("STRATA_STANDINS_DIR") {
                candidates.push(PathBuf::from(d));
            }
            if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
                candidates.push(dir.clone());
                if let Some(p) = dir.parent() {
                    candidates.push(p.to_path_buf());
                }
            }
            if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
                candidates.push(PathBuf::from(t).join("debug"));
            }
            let found = candidates.into_iter().find(|d| has_all(d));
            if found.is_none() {
                eprintln!("strata-lab: note: no Kubernetes stand-in binaries found (build them with `make build`); nodes get no kubeadm/kubelet/kubectl packages");
            }
            Ok(found)
        }
    }
}

fn content_key(bin_dir: &Path, kubectl: &Path) -> Result<String> {
    let mut h = Sha256::new();
    h.update(RECIPE.as_bytes());
    h.update(KUBELET_DEPENDS.join(",").as_bytes());
    h.update(fs::read(kubectl).with_context(|| format!("reading {}", kubectl.display()))?);
    for v in VERSIONS {
        h.update(v.as_bytes());
    }
    for b in BINARIES {
        let p = bin_dir.join(b);
        h.update(fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

/// Returns the cached repository for these binaries, building it first if needed.
pub fn ensure_repo(bin_dir: &Path, log: &Path) -> Result<PathBuf> {
    let kubectl = crate::kubectl::ensure(log)?;
    ensure_repo_with(bin_dir, &kubectl, log)
}

/// [`ensure_repo`] with the real kubectl binary given.
pub fn ensure_repo_with(bin_dir: &Path, kubectl: &Path, log: &Path) -> Result<PathBuf> {
    let key = content_key(bin_dir, kubectl)?;
    let dir = cache_root()?.join("lab").join(format!("standins-repo-{key}"));
    if dir.join("Packages").is_file() {
        return Ok(dir);
    }
    let _lock = global_lock("standins-repo.lock")?;
    if dir.join("Packages").is_file() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("repo dir has a parent");
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".build-standins-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    eprintln!("strata-lab: packaging the Kubernetes stand-ins into {} (log: {})", dir.display(), log.display());
    if let Err(e) = build(bin_dir, kubectl, &tmp, log) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    remove_stale(parent, &dir);
    Ok(dir)
}

/// Each rebuild of the stand-ins makes a new repository (about 64 MB); those unused for a
/// day go (a lab bound to one is not that old in practice, and tests take minutes).
fn remove_stale(parent: &Path, keep: &Path) {
    let day = std::time::Duration::from_secs(24 * 3600);
    for e in fs::read_dir(parent).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let old =
            e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > day);
        if name.starts_with("standins-repo-") && p != keep && old {
            let _ = fs::remove_dir_all(&p);
        }
    }
}

fn write(path: &Path, content: &str, mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The unit file and kubeadm drop-in of the real kubelet package.
const KUBELET_SERVICE: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent (Strata lab stand-in)
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

const KUBEADM_DROP_IN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

/// Like the real package: enabled and started on install, crash-looping until kubeadm
/// writes its configuration.
const KUBELET_POSTINST: &str = "#!/bin/sh
set -e
if [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    systemctl enable kubelet.service >/dev/null 2>&1 || true
    systemctl restart kubelet.service || true
fi
";

const KUBELET_PRERM: &str = "#!/bin/sh
set -e
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop kubelet.service || true
fi
";

fn build(bin_dir: &Path, kubectl: &Path, out: &Path, log: &Path) -> Result<()> {
    // Stripped once; debug info would make each package tens of MB.
    let stripped = out.join(".bin");
    fs::create_dir_all(&stripped)?;
    for b in BINARIES {
        run_logged(Command::new("strip").arg("-o").arg(stripped.join(b)).arg(bin_dir.join(b)), log, "strip")?;
    }
    fs::copy(kubectl, stripped.join("kubectl"))?;
    for full in VERSIONS {
        let upstream = full.split('-').next().expect("version");
        for pkg in ["kubeadm", "kubelet", "kubectl"] {
            let root = out.join(format!(".pkg-{pkg}-{full}"));
            let bin = |name: &str, dest: &str| -> Result<()> {
                let d = root.join(dest.trim_start_matches('/'));
                fs::create_dir_all(d.parent().expect("parent"))?;
                fs::copy(stripped.join(name), &d)?;
                fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
                Ok(())
            };
            bin(pkg, &format!("/usr/bin/{pkg}"))?;
            write(&root.join(format!("usr/lib/strata-standins/{pkg}.version")), &format!("v{upstream}\n"), 0o644)?;
            let description = match pkg {
                "kubeadm" => "Command-line utility for administering a Kubernetes cluster (Strata lab STAND-IN)",
                "kubelet" => {
                    "Node agent for Kubernetes clusters (Strata lab STAND-IN; ships the stand-in kube-apiserver and the strata-cri test client)"
                }
                _ => "Command-line utility for interacting with a Kubernetes cluster (Debian's real kubectl, repackaged by the Strata lab)",
            };
            if pkg == "kubelet" {
                bin("kube-apiserver", "/usr/lib/strata-standins/kube-apiserver")?;
                bin("strata-cri", "/usr/bin/strata-cri")?;
                write(&root.join("usr/lib/systemd/system/kubelet.service"), KUBELET_SERVICE, 0o644)?;
                write(&root.join("usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"), KUBEADM_DROP_IN, 0o644)?;
                write(&root.join("DEBIAN/postinst"), KUBELET_POSTINST, 0o755)?;
                write(&root.join("DEBIAN/prerm"), KUBELET_PRERM, 0o755)?;
            }
            let depends =
                if pkg == "kubelet" { format!("Depends: {}\n", KUBELET_DEPENDS.join(", ")) } else { String::new() };
            let control = format!(
                "Package: {pkg}\nVersion: {full}\nArchitecture: amd64\nMaintainer: Strata lab <lab@strata.invalid>\nSection: admin\nPriority: optional\nHomepage: https://kubernetes.io\n{depends}Description: {description}\n"
            );
            write(&root.join("DEBIAN/control"), &control, 0o644)?;
            let deb = out.join(format!("{pkg}_{full}_amd64.deb"));
            run_logged(
                Command::new("dpkg-deb").args(["--root-owner-group", "-Zgzip", "-z1", "--build"]).arg(&root).arg(&deb),
                log,
                "dpkg-deb",
            )?;
            fs::remove_dir_all(&root)?;
        }
    }
    fs::remove_dir_all(&stripped)?;
    let packages = fs::File::create(out.join("Packages"))?;
    let err = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let status = Command::new("dpkg-scanpackages")
        .args(["--multiversion", ".", "/dev/null"])
        .current_dir(out)
        .stdin(Stdio::null())
        .stdout(packages)
        .stderr(err)
        .status()
        .context("cannot run dpkg-scanpackages (apt-get install -y dpkg-dev)")?;
    if !status.success() {
        bail!("dpkg-scanpackages failed ({status}); {}", log_tail(log, 20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packages built from stand-in binaries (here copies of /bin/true): three versions of
    /// each package, indexed, with the version baked in and the kubelet's unit files.
    #[test]
    fn packages_every_version_with_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let bins = tmp.path().join("bin");
        fs::create_dir_all(&bins).unwrap();
        for b in BINARIES {
            fs::copy("/bin/true", bins.join(b)).unwrap();
        }
        let kubectl = tmp.path().join("real-kubectl");
        fs::copy("/bin/echo", &kubectl).unwrap();
        // Each test runs in its own process under nextest; the cache goes to the temp dir.
        std::env::set_var("STRATA_CACHE", tmp.path().join("cache"));
        let ensure_repo = |bins: &Path, log: &Path| ensure_repo_with(bins, &kubectl, log);
        let repo = ensure_repo(&bins, &tmp.path().join("log")).unwrap();
        assert_eq!(ensure_repo(&bins, &tmp.path().join("log")).unwrap(), repo, "cached by content");
        let index = fs::read_to_string(repo.join("Packages")).unwrap();
        for pkg in ["kubeadm", "kubelet", "kubectl"] {
            for v in VERSIONS {
                assert!(index.contains(&format!("Package: {pkg}\nVersion: {v}\n")), "{pkg} {v} missing:\n{index}");
            }
        }
        // The kubelet depends on the packages that put kubeadm's InPathCheck binaries on PATH.
        let kubelet = index.split("\n\n").find(|s| s.starts_with("Package: kubelet\n")).unwrap();
        assert!(
            kubelet.lines().any(|l| l == "Depends: iptables, iproute2, socat, util-linux, mount, ebtables, ethtool"),
            "{kubelet}"
        );
        let deb = repo.join("kubelet_1.36.1-1.1_amd64.deb");
        let list = String::from_utf8(Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap().stdout).unwrap();
        for f in [
            "./usr/bin/kubelet",
            "./usr/lib/strata-standins/kube-apiserver",
            "./usr/bin/strata-cri",
            "./usr/lib/systemd/system/kubelet.service",
            "./usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        ] {
            assert!(list.contains(f), "{f} not in the kubelet package:\n{list}");
        }
        let x = tmp.path().join("x");
        assert!(Command::new("dpkg-deb")
            .arg("-x")
            .arg(repo.join("kubeadm_1.34.3-1.1_amd64.deb"))
            .arg(&x)
            .status()
            .unwrap()
            .success());
        assert_eq!(fs::read_to_string(x.join("usr/lib/strata-standins/kubeadm.version")).unwrap(), "v1.34.3\n");
        assert!(Command::new("dpkg-deb")
            .arg("-x")
            .arg(repo.join("kubectl_1.35.0-1.1_amd64.deb"))
            .arg(&x)
            .status()
            .unwrap()
            .success());
        assert_eq!(fs::read(x.join("usr/bin/kubectl")).unwrap(), fs::read("/bin/echo").unwrap(), "the real kubectl");
        // Other binaries make another repository.
        fs::copy("/bin/false", bins.join("kubeadm")).unwrap();
        assert_ne!(ensure_repo(&bins, &tmp.path().join("log")).unwrap(), repo);
    }
}
