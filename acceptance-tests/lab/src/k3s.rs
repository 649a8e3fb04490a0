//! Air-gap artifacts of the STAND-IN k3s, laid out like a k3s release's assets, for each
//! pinned version ([`VERSIONS`]): the `k3s` binary (the stripped stand-in of the
//! `strata-standins` crate with the version trailer `\nSTRATA-K3S-VERSION=<version>\n`
//! appended, which is where the binary reads its version from), `k3s-airgap-images-amd64.tar`
//! (one OCI image archive holding `docker.io/rancher/mirrored-pause:3.6`, k3s's default
//! sandbox image, and `docker.io/library/busybox:1.36`, the images of
//! [`crate::bundles`] under those names) and `sha256sum-amd64.txt` (sha256sum format).
//! Cached under `$STRATA_CACHE/lab/k3s-<hash of the inputs>` with an `artifacts.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::network::global_lock;
use crate::process::run_logged;

pub const VERSIONS: &[&str] = &["v1.35.0+k3s1", "v1.36.1+k3s1", "v1.36.2+k3s1"];
pub const BINARY: &str = "k3s";
pub const IMAGES: &str = "k3s-airgap-images-amd64.tar";
pub const SUMS: &str = "sha256sum-amd64.txt";
pub const TRAILER_KEY: &str = "STRATA-K3S-VERSION=";
/// (name in the archive, the bundle it is made of).
pub const AIRGAP_IMAGES: &[(&str, &str)] = &[
    ("docker.io/rancher/mirrored-pause:3.6", "registry.k8s.io/pause:3.10.1"),
    ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
];
/// Bumped when the layout below changes.
const RECIPE: &str = "k3s artifacts v1: stripped stand-in + trailer, one OCI archive, sha256sum";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K3sVersion {
    pub version: String,
    pub binary: PathBuf,
    pub images: PathBuf,
    /// File name -> sha256 hex (what sha256sum-amd64.txt lists).
    pub sha256: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K3sArtifacts {
    pub dir: PathBuf,
    pub versions: Vec<K3sVersion>,
}

impl K3sArtifacts {
    pub fn get(&self, version: &str) -> Option<&K3sVersion> {
        self.versions.iter().find(|v| v.version == version)
    }
}

/// The stand-in `k3s` binary: `$STRATA_STANDINS_DIR`, beside the running executable (or
/// its parent), `$CARGO_TARGET_DIR/debug`.
pub fn locate_binary() -> Result<PathBuf> {
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
    candidates
        .into_iter()
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
        .context("no stand-in k3s binary found; build it with `cargo build -p strata-standins --bin k3s`")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `<hex>  <name>` lines, as sha256sum prints them.
pub fn sums_text(sums: &BTreeMap<String, String>) -> String {
    sums.iter().map(|(n, h)| format!("{h}  {n}\n")).collect()
}

/// The binary of `version`: `stripped` with the trailer appended.
pub fn with_trailer(stripped: &[u8], version: &str) -> Vec<u8> {
    let mut b = stripped.to_vec();
    b.extend(format!("\n{TRAILER_KEY}{version}\n").as_bytes());
    b
}

fn strip(bin: &Path, out: &Path, log: &Path) -> Result<()> {
    run_logged(Command::new("strip").arg("-o").arg(out).arg(bin), log, "strip")
}

/// One OCI archive of several image bundles renamed (`(new name, oci-archive of one
/// image)`): their blobs together, an index.json naming each manifest with
/// `io.containerd.image.name` (the full reference ctr import uses) and
/// `org.opencontainers.image.ref.name` (the full reference too).
pub fn merge_archives(images: &[(&str, &Path)], out: &Path, work: &Path, log: &Path) -> Result<()> {
    let merged = work.join("merged");
    fs::create_dir_all(merged.join("blobs/sha256"))?;
    let mut manifests = Vec::new();
    for (i, (name, archive)) in images.iter().enumerate() {
        let x = work.join(format!("x{i}"));
        fs::create_dir_all(&x)?;
        run_logged(Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(&x), log, "tar -x")?;
        let index: serde_json::Value = serde_json::from_str(&fs::read_to_string(x.join("index.json"))?)?;
        let [m] = index["manifests"].as_array().context("index.json without manifests")?.as_slice() else {
            bail!("{} holds more than one manifest", archive.display());
        };
        let mut m = m.clone();
        m["annotations"] = serde_json::json!({
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name,
        });
        manifests.push(m);
        for e in fs::read_dir(x.join("blobs/sha256"))?.flatten() {
            let dst = merged.join("blobs/sha256").join(e.file_name());
            if !dst.exists() {
                fs::copy(e.path(), dst)?;
            }
        }
    }
    fs::write(merged.join("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}")?;
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(merged.join("index.json"), serde_json::to_string(&index)?)?;
    run_logged(
        Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf"])
            .arg(out)
            .arg("-C")
            .arg(&merged)
            .args(["oci-layout", "index.json", "blobs"]),
        log,
        "tar -c",
    )
}

fn is_complete(dir: &Path) -> bool {
    dir.join("artifacts.json").is_file()
}

fn load(dir: &Path) -> Result<K3sArtifacts> {
    let p = dir.join("artifacts.json");
    serde_json::from_str(&fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
        .with_context(|| format!("parsing {}", p.display()))
}

/// The artifacts for every pinned version, built (or taken from the cache) from the
/// stand-in binary found by [`locate_binary`] and the image bundles.
pub fn airgap_artifacts(cache: &Path) -> Result<K3sArtifacts> {
    airgap_artifacts_from(cache, &locate_binary()?)
}

pub fn airgap_artifacts_from(cache: &Path, binary: &Path) -> Result<K3sArtifacts> {
    let bundles = crate::bundles::build_bundles(cache)?;
    let parent = cache.join("lab");
    fs::create_dir_all(&parent)?;
    let log = parent.join("k3s-artifacts.log");
    let bin_bytes = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let mut h = Sha256::new();
    h.update(RECIPE.as_bytes());
    h.update(&bin_bytes);
    for v in VERSIONS {
        h.update(v.as_bytes());
    }
    for (name, from) in AIRGAP_IMAGES {
        let b = bundles.get(from).with_context(|| format!("no bundle {from}"))?;
        h.update(name.as_bytes());
        h.update(b.sha256.as_bytes());
    }
    let dir = parent.join(format!("k3s-{}", hex::encode(&h.finalize()[..8])));
    if is_complete(&dir) {
        return load(&dir);
    }
    let _lock = global_lock("k3s-artifacts.lock")?;
    if is_complete(&dir) {
        return load(&dir);
    }
    let tmp = parent.join(format!(".build-k3s-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let r = (|| -> Result<()> {
        let work = tmp.join(".work");
        fs::create_dir_all(&work)?;
        let stripped = work.join("k3s.stripped");
        strip(binary, &stripped, &log)?;
        let stripped = fs::read(&stripped)?;
        let images_tar = work.join(IMAGES);
        let parts: Vec<(&str, &Path)> = AIRGAP_IMAGES
            .iter()
            .map(|(name, from)| (*name, bundles.get(from).expect("checked above").archive.as_path()))
            .collect();
        merge_archives(&parts, &images_tar, &work, &log)?;
        let images_sha = sha256_hex(&fs::read(&images_tar)?);
        let mut versions = Vec::new();
        for v in VERSIONS {
            let vd = tmp.join(v);
            fs::create_dir_all(&vd)?;
            let bin = with_trailer(&stripped, v);
            fs::write(vd.join(BINARY), &bin)?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(vd.join(BINARY), fs::Permissions::from_mode(0o755))?;
            fs::hard_link(&images_tar, vd.join(IMAGES))
                .or_else(|_| fs::copy(&images_tar, vd.join(IMAGES)).map(|_| ()))?;
            let mut sums = BTreeMap::new();
            sums.insert(BINARY.to_string(), sha256_hex(&bin));
            sums.insert(IMAGES.to_string(), images_sha.clone());
            fs::write(vd.join(SUMS), sums_text(&sums))?;
            let final_vd = dir.join(v);
            versions.push(K3sVersion {
                version: v.to_string(),
                binary: final_vd.join(BINARY),
                images: final_vd.join(IMAGES),
                sha256: sums,
            });
        }
        fs::remove_dir_all(&work)?;
        let a = K3sArtifacts { dir: dir.clone(), versions };
        fs::write(tmp.join("artifacts.json"), serde_json::to_string_pretty(&a)? + "\n")?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&tmp, &dir)?;
    load(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_and_sums_format() {
        let b = with_trailer(b"ELF", "v1.36.1+k3s1");
        assert!(b.ends_with(b"\nSTRATA-K3S-VERSION=v1.36.1+k3s1\n"));
        let mut s = BTreeMap::new();
        s.insert("k3s".to_string(), "ab".to_string());
        s.insert(IMAGES.to_string(), "cd".to_string());
        assert_eq!(sums_text(&s), format!("ab  k3s\ncd  {IMAGES}\n"));
        assert_eq!(VERSIONS.len(), 3);
    }
}
