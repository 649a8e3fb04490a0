//! Real `kubectl`: Debian's package (a static Go build that runs on bookworm), fetched
//! once from the Debian archive without touching the host's apt configuration (a private
//! sources.list, lists and cache; signatures checked against Debian's archive keyring),
//! unpacked with `dpkg -x`, and cached under `$STRATA_CACHE/lab/kubectl-<version>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::image::cache_root;
use crate::network::global_lock;
use crate::process::run_logged;

/// Debian unstable's kubectl (`apt-cache policy kubectl` in sid).
pub const VERSION: &str = "1.36.4+ds-1";
const SOURCE: &str =
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n";

/// The cached real kubectl binary, fetched first if needed.
pub fn ensure(log: &Path) -> Result<PathBuf> {
    let dir = cache_root()?.join("lab").join(format!("kubectl-{VERSION}"));
    let bin = dir.join("usr/bin/kubectl");
    if bin.is_file() {
        return Ok(bin);
    }
    let _lock = global_lock("kubectl.lock")?;
    if bin.is_file() {
        return Ok(bin);
    }
    let parent = dir.parent().expect("a parent");
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".fetch-kubectl-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    eprintln!("strata-lab: fetching Debian's kubectl {VERSION} into {} (log: {})", dir.display(), log.display());
    if let Err(e) = fetch(&tmp, log) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(tmp.join("root"), &dir)?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(bin)
}

fn fetch(tmp: &Path, log: &Path) -> Result<()> {
    fs::create_dir_all(tmp.join("root"))?;
    let debs = sid_download(tmp, &[format!("kubectl={VERSION}")], log)?;
    let deb = debs.first().context("apt-get download left no .deb")?;
    run_logged(Command::new("dpkg").arg("-x").arg(deb).arg(tmp.join("root")), log, "dpkg -x")?;
    if !tmp.join("root/usr/bin/kubectl").is_file() {
        bail!("{} holds no usr/bin/kubectl", deb.display());
    }
    Ok(())
}

/// Downloads `packages` (`name=version`) from Debian unstable into `tmp` with apt-get and
/// a private sources.list, lists and cache under `tmp` (the host's apt configuration is
/// not touched; apt checks the lists' signatures with Debian's archive keyring and each
/// file's hash against them). Returns the downloaded `.deb` files.
pub(crate) fn sid_download(tmp: &Path, packages: &[String], log: &Path) -> Result<Vec<PathBuf>> {
    for d in ["lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(tmp.join(d))?;
    }
    fs::write(tmp.join("sources.list"), SOURCE)?;
    let opts = |c: &mut Command| {
        c.arg("-o").arg(format!("Dir::Etc::SourceList={}", tmp.join("sources.list").display()));
        c.args(["-o", "Dir::Etc::SourceParts=/dev/null"]);
        c.arg("-o").arg(format!("Dir::State::Lists={}", tmp.join("lists").display()));
        c.arg("-o").arg(format!("Dir::Cache={}", tmp.join("cache").display()));
    };
    let mut update = Command::new("apt-get");
    opts(&mut update);
    run_logged(update.arg("update"), log, "apt-get update (Debian sid, private lists)")?;
    let mut download = Command::new("apt-get");
    opts(&mut download);
    run_logged(
        download.arg("download").args(packages).current_dir(tmp),
        log,
        &format!("apt-get download {}", packages.join(" ")),
    )?;
    let mut debs: Vec<PathBuf> =
        fs::read_dir(tmp)?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "deb")).collect();
    debs.sort();
    Ok(debs)
}
