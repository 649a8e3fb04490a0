//! An etcd that kubeadm accepts: Debian unstable's `etcd-server` and `etcd-client`
//! 3.5.30-2 (Debian 12 ships 3.4.23, Debian 13 3.5.16, both older than kubeadm's
//! `MinExternalEtcdVersion` 3.5.24-0). They are static Go builds that need only libc 2.34+
//! and systemd, so they run on the bookworm nodes; but etcd-server's sysusers entry
//! (`u! etcd - - /var/lib/etcd`, a locked account) uses a modifier that systemd 257 added,
//! and bookworm's systemd 252 refuses it (`Unknown modifier 'u!'`), failing the package's
//! postinst. So the lab repacks both as a local bookworm backport, version
//! `3.5.30-2+bookworm1`: that one line reads `u etcd - - /var/lib/etcd` (the account is
//! still a system account without a password), nothing else changes.
//!
//! Fetched once from the Debian archive as the real kubectl is (private apt lists,
//! signatures checked), checked against the SHA256 sums of sid's `Packages` index
//! pinned below, repacked with `dpkg-deb`, and cached under
//! `$STRATA_CACHE/lab/etcd-<version>`; the local repository serves them beside
//! bookworm's 3.4.23, so a node that installs `etcd-server` gets 3.5.30 and a test can
//! still pin 3.4.23.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::image::cache_root;
use crate::network::global_lock;
use crate::process::run_logged;

/// Debian unstable's etcd (`Version:` in dists/sid/main/binary-amd64/Packages).
pub const SID_VERSION: &str = "3.5.30-2";
/// The version the lab serves: sid's, repacked for bookworm's systemd.
pub const VERSION: &str = "3.5.30-2+bookworm1";
/// (sid's file name, SHA256) from that `Packages` index.
pub const DEBS: &[(&str, &str)] = &[
    ("etcd-server_3.5.30-2_amd64.deb", "11a4f7e350c5020b83edff5160a6063d4e56ac9cd014d21ce8916378bf96de79"),
    ("etcd-client_3.5.30-2_amd64.deb", "1e66ad2aba4cba6842a1ac35d5c525e750102b8fb42748225bcb2e34d6595931"),
];

fn sha256_of(path: &Path) -> Result<String> {
    Ok(hex::encode(Sha256::digest(fs::read(path).with_context(|| format!("reading {}", path.display()))?)))
}

/// The lab's file name of sid's `file`.
fn repacked_name(file: &str) -> String {
    file.replace(SID_VERSION, VERSION)
}

fn is_complete(dir: &Path) -> bool {
    dir.join(".complete").is_file()
}

/// The cached `.deb` files, fetched first if needed.
pub fn ensure(log: &Path) -> Result<Vec<PathBuf>> {
    let dir = cache_root()?.join("lab").join(format!("etcd-{VERSION}"));
    let files = || DEBS.iter().map(|(f, _)| dir.join(repacked_name(f))).collect::<Vec<_>>();
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
    eprintln!(
        "strata-lab: fetching Debian unstable's etcd {SID_VERSION} (repacked as {VERSION}) into {} (log: {})",
        dir.display(),
        log.display()
    );
    let fetched = fetch(&tmp, log);
    if let Err(e) = fetched {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    for (f, _) in DEBS {
        fs::rename(tmp.join(repacked_name(f)), dir.join(repacked_name(f)))?;
    }
    fs::write(dir.join(".complete"), VERSION)?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(files())
}

fn fetch(tmp: &Path, log: &Path) -> Result<()> {
    fs::create_dir_all(tmp)?;
    let wanted: Vec<String> = ["etcd-server", "etcd-client"].iter().map(|p| format!("{p}={SID_VERSION}")).collect();
    crate::kubectl::sid_download(tmp, &wanted, log)?;
    for (f, sha) in DEBS {
        let path = tmp.join(f);
        if !path.is_file() {
            bail!("apt-get download left no {f} (is {SID_VERSION} still in Debian unstable?)");
        }
        let actual = sha256_of(&path)?;
        if actual != *sha {
            bail!("{f} has SHA256 {actual}, not {sha} as sid's Packages index said: refusing it");
        }
        repack(&path, &tmp.join(repacked_name(f)), log)?;
    }
    Ok(())
}

/// `deb` as version [`VERSION`], with the sysusers entry bookworm's systemd reads.
fn repack(deb: &Path, out: &Path, log: &Path) -> Result<()> {
    let root = deb.with_extension("d");
    let _ = fs::remove_dir_all(&root);
    run_logged(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&root), log, "dpkg-deb -R")?;
    let control = root.join("DEBIAN/control");
    let text = fs::read_to_string(&control)?;
    let want = format!("Version: {SID_VERSION}");
    if !text.lines().any(|l| l == want) {
        bail!("{} is not version {SID_VERSION}", deb.display());
    }
    fs::write(&control, text.replace(&want, &format!("Version: {VERSION}")))?;
    let sysusers = root.join("usr/lib/sysusers.d/etcd-server.conf");
    if sysusers.is_file() {
        let old = fs::read_to_string(&sysusers)?;
        let new = bookworm_sysusers(&old);
        fs::write(&sysusers, &new)?;
        // Keep DEBIAN/md5sums true to the files.
        let sums = root.join("DEBIAN/md5sums");
        let md5 = Command::new("md5sum").arg("usr/lib/sysusers.d/etcd-server.conf").current_dir(&root).output()?;
        let line = String::from_utf8_lossy(&md5.stdout).trim().to_string();
        let listed = fs::read_to_string(&sums)?;
        let updated: Vec<String> = listed
            .lines()
            .map(|l| if l.ends_with(" usr/lib/sysusers.d/etcd-server.conf") { line.clone() } else { l.to_string() })
            .collect();
        fs::write(&sums, updated.join("\n") + "\n")?;
    }
    run_logged(
        Command::new("dpkg-deb").args(["-Zxz", "--root-owner-group", "-b"]).arg(&root).arg(out),
        log,
        "dpkg-deb -b",
    )?;
    let _ = fs::remove_dir_all(&root);
    Ok(())
}

/// systemd before 257 knows no `u!` (a user whose account is locked): plain `u`.
fn bookworm_sysusers(conf: &str) -> String {
    conf.lines()
        .map(|l| l.strip_prefix("u! ").map_or_else(|| l.to_string(), |rest| format!("u {rest}")))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysusers_entry_is_one_bookworm_reads() {
        assert_eq!(bookworm_sysusers("u! etcd - - /var/lib/etcd\n"), "u etcd - - /var/lib/etcd\n");
        assert_eq!(bookworm_sysusers("g etcd -\n"), "g etcd -\n");
        assert_eq!(repacked_name("etcd-server_3.5.30-2_amd64.deb"), "etcd-server_3.5.30-2+bookworm1_amd64.deb");
    }
}
