//! An etcd that kubeadm accepts: Debian unstable's `etcd-server` and `etcd-client`
//! 3.5.30-2 (Debian 12 ships 3.4.23, Debian 13 3.5.16, both older than kubeadm's
//! `MinExternalEtcdVersion` 3.5.24-0). They are static Go builds that need only libc 2.34+
//! and systemd, so they install on the bookworm nodes. Fetched once from the Debian
//! archive as the real kubectl is (private apt lists, signatures checked), checked
//! against the SHA256 sums of sid's `Packages` index pinned below, and cached under
//! `$STRATA_CACHE/lab/etcd-<version>`; the local repository serves them beside
//! bookworm's 3.4.23, so a node that installs `etcd-server` gets 3.5.30 and a test can
//! still pin 3.4.23.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::image::cache_root;
use crate::network::global_lock;

/// Debian unstable's etcd (`Version:` in dists/sid/main/binary-amd64/Packages).
pub const VERSION: &str = "3.5.30-2";
/// (file name, SHA256) from that `Packages` index.
pub const DEBS: &[(&str, &str)] = &[
    ("etcd-server_3.5.30-2_amd64.deb", "11a4f7e350c5020b83edff5160a6063d4e56ac9cd014d21ce8916378bf96de79"),
    ("etcd-client_3.5.30-2_amd64.deb", "1e66ad2aba4cba6842a1ac35d5c525e750102b8fb42748225bcb2e34d6595931"),
];

fn sha256_of(path: &Path) -> Result<String> {
    Ok(hex::encode(Sha256::digest(fs::read(path).with_context(|| format!("reading {}", path.display()))?)))
}

fn is_complete(dir: &Path) -> bool {
    DEBS.iter().all(|(f, sha)| sha256_of(&dir.join(f)).is_ok_and(|s| s == *sha))
}

/// The cached `.deb` files, fetched first if needed.
pub fn ensure(log: &Path) -> Result<Vec<PathBuf>> {
    let dir = cache_root()?.join("lab").join(format!("etcd-{VERSION}"));
    let files = || DEBS.iter().map(|(f, _)| dir.join(f)).collect::<Vec<_>>();
    if is_complete(&dir) {
        return Ok(files());
    }
    let _lock = global_lock("etcd-debs.lock")?;
    if is_complete(&dir) {
        return Ok(files());
    }
    let parent = dir.parent().expect("a parent");
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".fetch-etcd-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    eprintln!("strata-lab: fetching Debian unstable's etcd {VERSION} into {} (log: {})", dir.display(), log.display());
    let fetched = fetch(&tmp, log);
    if let Err(e) = fetched {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    for (f, _) in DEBS {
        fs::rename(tmp.join(f), dir.join(f))?;
    }
    let _ = fs::remove_dir_all(&tmp);
    Ok(files())
}

fn fetch(tmp: &Path, log: &Path) -> Result<()> {
    fs::create_dir_all(tmp)?;
    let wanted: Vec<String> = ["etcd-server", "etcd-client"].iter().map(|p| format!("{p}={VERSION}")).collect();
    crate::kubectl::sid_download(tmp, &wanted, log)?;
    for (f, sha) in DEBS {
        let path = tmp.join(f);
        if !path.is_file() {
            bail!("apt-get download left no {f} (is {VERSION} still in Debian unstable?)");
        }
        let actual = sha256_of(&path)?;
        if actual != *sha {
            bail!("{f} has SHA256 {actual}, not {sha} as sid's Packages index said: refusing it");
        }
    }
    Ok(())
}
