//! The root image of systemd nodes: a minimal Debian bookworm built once with mmdebstrap
//! and cached under `$STRATA_CACHE/lab/image-<hash>` (STRATA_CACHE defaults to
//! `~/.cache/strata`). Nodes never write to it: each boots an overlay with the image as
//! lowerdir.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::network::global_lock;
use crate::process::log_tail;

pub const SUITE: &str = "bookworm";

/// What every systemd node has installed. Anything else comes later from the lab's local
/// apt repository (nodes are air-gapped), as on a freshly installed VM. cloud-init is
/// there as on a Debian cloud image: guest nodes (VMs started through pve-sim) boot with
/// it reading their NoCloud seed; plain lab nodes have it disabled.
pub const IMAGE_PACKAGES: &[&str] =
    &["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps", "sudo", "cloud-init"];

/// Bumped whenever the hooks below change, so a changed recipe gets a new cache entry.
const RECIPE: &str = "strata-lab image v1: ssh host keys removed, empty machine-id and hostname";

/// Run by mmdebstrap after installing (`$1` is the root). Host keys and the machine id
/// are per machine: the lab writes them into each node's upper dir before boot.
const CUSTOMIZE_HOOKS: &[&str] = &[
    "rm -f \"$1\"/etc/ssh/ssh_host_*",
    ": > \"$1\"/etc/machine-id",
    ": > \"$1\"/etc/hostname",
    // Air-gapped nodes: no source points off the lab network; the lab adds its own.
    "rm -f \"$1\"/etc/apt/sources.list; rm -f \"$1\"/etc/apt/sources.list.d/*",
];

pub fn cache_root() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("STRATA_CACHE").filter(|c| !c.is_empty()) {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context("neither STRATA_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/strata"))
}

/// FNV-1a 64: stable across Rust versions and machines (DefaultHasher is not).
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Cache key of the image: suite, package list and recipe.
pub fn image_key() -> String {
    let mut parts = vec![SUITE, RECIPE];
    parts.extend(IMAGE_PACKAGES);
    parts.extend(CUSTOMIZE_HOOKS);
    format!("{:016x}", fnv64(&parts))
}

pub fn image_dir(cache: &Path) -> PathBuf {
    cache.join("lab").join(format!("image-{}", image_key()))
}

/// A complete image has its os-release; the rename that publishes it is the last step,
/// so a directory under the final name is always complete.
fn is_complete(dir: &Path) -> bool {
    dir.join("usr/lib/os-release").is_file() && dir.join("usr/sbin/sshd").is_file()
}

/// Returns the cached image, building it first if needed (about 40 s; needs Debian's mirror).
/// Built in a temp dir next to the final one and renamed into place under a machine-wide
/// lock, so concurrent labs build it once and an interrupted build is never mistaken for
/// an image.
pub fn ensure_image(log: &Path) -> Result<PathBuf> {
    let cache = cache_root()?;
    let dir = image_dir(&cache);
    if is_complete(&dir) {
        return Ok(dir);
    }
    let lock = global_lock("image.lock")?;
    if is_complete(&dir) {
        return Ok(dir);
    }
    let parent = dir.parent().expect("image dir has a parent");
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Leftovers of interrupted builds (we hold the lock, so none is running).
    for e in fs::read_dir(parent)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".build-image-") {
            remove_build_dir(&e.path())?;
        }
    }
    if dir.exists() {
        remove_build_dir(&dir).with_context(|| format!("removing incomplete image {}", dir.display()))?;
    }
    let tmp = parent.join(format!(".build-image-{}-{}", image_key(), std::process::id()));
    eprintln!("strata-lab: building the node image {} (log: {})", dir.display(), log.display());
    let started = Instant::now();
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--mode=root", "--format=directory"])
        .arg(format!("--include={}", IMAGE_PACKAGES.join(",")));
    for hook in CUSTOMIZE_HOOKS {
        cmd.arg(format!("--customize-hook={hook}"));
    }
    // No mirror argument: Debian's default mirror.
    cmd.arg(SUITE).arg(&tmp);
    // If we die, mmdebstrap gets SIGTERM (it then unmounts what it mounted in the chroot),
    // and it inherits the build lock: flock belongs to the open file, so the next builder
    // waits until mmdebstrap and its children are gone before it touches the build dir.
    let lock_fd = lock.raw_fd();
    // SAFETY: prctl and fcntl are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)?;
            nix::fcntl::fcntl(lock_fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("cannot run mmdebstrap (apt-get install -y mmdebstrap)")?;
    if !status.success() || !is_complete(&tmp) {
        let _ = remove_build_dir(&tmp);
        bail!("building the node image with mmdebstrap failed ({status}); {}", log_tail(log, 20));
    }
    fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    eprintln!("strata-lab: node image built in {:.0?}", started.elapsed());
    Ok(dir)
}

/// Removes a (partial) build dir. mmdebstrap mounts /dev, /proc and /sys inside the
/// chroot while it works; an interrupted build can leave them mounted, and deleting
/// through them would delete the host's files. Unmount first, refuse if that fails.
pub fn remove_build_dir(dir: &Path) -> Result<()> {
    let prefix = format!("{}/", dir.display());
    let mounted = || -> Vec<String> {
        let mut m: Vec<String> = fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix) || *p == prefix.trim_end_matches('/'))
            .map(str::to_string)
            .collect();
        m.sort_by_key(|p| std::cmp::Reverse(p.len())); // deepest first
        m
    };
    for m in mounted() {
        let _ = crate::process::run("umount", ["-l", &m]);
    }
    let left = mounted();
    if !left.is_empty() {
        bail!("cannot remove {}: still mounted there: {}", dir.display(), left.join(", "));
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_key_is_stable_and_depends_on_the_package_list() {
        assert_eq!(image_key(), image_key());
        assert_eq!(image_key().len(), 16);
        assert_ne!(fnv64(&["a", "bc"]), fnv64(&["ab", "c"]));
        let dir = image_dir(Path::new("/c"));
        assert!(dir.starts_with("/c/lab"));
        assert!(dir.file_name().unwrap().to_string_lossy().starts_with("image-"));
    }

    #[test]
    fn an_unfinished_build_is_not_an_image() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_complete(d.path()));
        fs::create_dir_all(d.path().join("usr/lib")).unwrap();
        fs::write(d.path().join("usr/lib/os-release"), "ID=debian\n").unwrap();
        assert!(!is_complete(d.path()), "os-release alone (sshd not installed yet) is not complete");
    }
}
