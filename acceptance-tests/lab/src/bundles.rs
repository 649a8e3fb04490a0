//! Image bundles for air-gapped nodes (issue 26): OCI images that STAND FOR the upstream
//! images they are named after (`registry.k8s.io/pause`, `docker.io/library/busybox`),
//! built here from Debian's `busybox-static` package, never pulled from a registry outside
//! the lab. Each is an `oci-archive` tarball whose `index.json` names the full reference
//! (`org.opencontainers.image.ref.name` = `registry.k8s.io/pause:3.10.1`), ready for
//! `skopeo copy oci-archive:FILE docker://MIRROR/...` into the lab's registry.
//!
//! Built with Debian's `umoci` (layout, layer, config) and `skopeo` (the archive), both
//! installed on the host on demand like mmdebstrap ([`crate::packages::ensure`]); the
//! busybox binary comes from `apt-get download busybox-static` + `dpkg-deb -x`, never
//! installed on the host. Cached under `$STRATA_CACHE/lab/bundles-<hash of the recipe>`
//! with a `bundles.json` index:
//! `[{"name": "registry.k8s.io/pause:3.10.1", "archive": "pause-3.10.1.tar",
//!    "sha256": "<hex of the tar>", "digest": "sha256:<manifest digest>"}, ...]`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::image::fnv64;
use crate::network::global_lock;
use crate::process::run_logged;

/// What the images are built from; none of it is installed on the host.
pub const SOURCE_PACKAGE: &str = "busybox-static";
/// Installed on the host when missing.
pub const HOST_TOOLS: &[&str] = &["umoci", "skopeo"];

/// The kind of image a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The sandbox ("pause") image: one static busybox, sleeping forever, as user 65535
    /// like the upstream pause image.
    Pause,
    /// busybox with its applet links, `cmd ["sh"]`, as Docker Hub's `busybox`.
    Busybox,
}

/// One image of the set: the reference it stands for, its archive's file name, its kind.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub archive: &'static str,
    pub kind: Kind,
}

/// The images built. The pause tags are kubeadm's `constants.PauseVersion` of the
/// stand-in versions (3.10.1 for 1.34 and 1.35, 3.10.2 for 1.36; see the stand-in
/// kubeadm's `kubeadm::preflight::pause_version`); both are the same image.
pub const SPECS: &[Spec] = &[
    Spec { name: "registry.k8s.io/pause:3.10.1", archive: "pause-3.10.1.tar", kind: Kind::Pause },
    Spec { name: "registry.k8s.io/pause:3.10.2", archive: "pause-3.10.2.tar", kind: Kind::Pause },
    Spec { name: "docker.io/library/busybox:1.36", archive: "busybox-1.36.tar", kind: Kind::Busybox },
];

/// Bumped when the recipe below changes, so a changed recipe gets a new cache entry.
const RECIPE: &str = "bundles v1: busybox-static, umoci, skopeo oci-archive, pause user 65535";

/// The pause image's process: busybox's `sleep` accepts `infinity` (strtod).
pub const PAUSE_ENTRYPOINT: &[&str] = &["/bin/busybox", "sleep", "infinity"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The full reference the image stands for, e.g. `registry.k8s.io/pause:3.10.1`.
    pub name: String,
    /// The oci-archive tarball (absolute path).
    pub archive: PathBuf,
    /// sha256 hex of the tarball.
    pub sha256: String,
    /// The image manifest digest, `sha256:<hex>` (what a registry and containerd report).
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSet {
    pub dir: PathBuf,
    pub bundles: Vec<Bundle>,
}

impl BundleSet {
    pub fn get(&self, name: &str) -> Option<&Bundle> {
        self.bundles.iter().find(|b| b.name == name)
    }

    /// Reads `dir/bundles.json`.
    pub fn load(dir: &Path) -> Result<BundleSet> {
        let path = dir.join("bundles.json");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let entries: Vec<Entry> = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let bundles = entries
            .into_iter()
            .map(|e| Bundle { name: e.name, archive: dir.join(e.archive), sha256: e.sha256, digest: e.digest })
            .collect();
        Ok(BundleSet { dir: dir.to_path_buf(), bundles })
    }
}

/// An entry of bundles.json (the archive relative to the directory).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    name: String,
    archive: String,
    sha256: String,
    digest: String,
}

pub fn bundles_dir(cache: &Path) -> PathBuf {
    let mut parts = vec![RECIPE, SOURCE_PACKAGE];
    let entry = PAUSE_ENTRYPOINT.join(" ");
    parts.push(&entry);
    for s in SPECS {
        parts.push(s.name);
        parts.push(s.archive);
    }
    cache.join("lab").join(format!("bundles-{:016x}", fnv64(&parts)))
}

fn is_complete(dir: &Path) -> bool {
    dir.join("bundles.json").is_file()
}

/// Returns the cached bundle set under `cache` (normally `$STRATA_CACHE`), building it
/// first if needed (a few seconds; needs Debian's mirror for busybox-static, and installs
/// umoci and skopeo on the host if missing). Built in a temp dir and renamed into place
/// under a machine-wide lock.
pub fn build_bundles(cache: &Path) -> Result<BundleSet> {
    let dir = bundles_dir(cache);
    if is_complete(&dir) {
        return BundleSet::load(&dir);
    }
    let parent = dir.parent().expect("bundles dir has a parent");
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let log = parent.join("bundles.log");
    crate::packages::ensure(HOST_TOOLS, true, &log)?;
    let _lock = global_lock("bundles.lock")?;
    if is_complete(&dir) {
        return BundleSet::load(&dir);
    }
    for e in fs::read_dir(parent)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(".build-bundles-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let tmp = parent.join(format!(".build-bundles-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    eprintln!("strata-lab: building the image bundles {} (log: {})", dir.display(), log.display());
    if let Err(e) = build(&tmp, &log) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&tmp, &dir).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    BundleSet::load(&dir)
}

fn build(out: &Path, log: &Path) -> Result<()> {
    let work = out.join(".work");
    fs::create_dir_all(&work)?;
    let busybox = fetch_busybox(&work, log)?;
    let applets = applet_paths(&busybox)?;
    let layout = work.join("layout");
    run_logged(Command::new("umoci").arg("init").arg("--layout").arg(&layout), log, "umoci init")?;
    let mut entries = Vec::new();
    for (i, spec) in SPECS.iter().enumerate() {
        let tag = format!("img{i}");
        let image = format!("{}:{tag}", layout.display());
        run_logged(Command::new("umoci").args(["new", "--image", &image]), log, "umoci new")?;
        let bundle = work.join(format!("bundle{i}"));
        run_logged(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle), log, "umoci unpack")?;
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(rootfs.join("bin"))?;
        fs::copy(&busybox, rootfs.join("bin/busybox"))?;
        if spec.kind == Kind::Busybox {
            for a in &applets {
                let link = rootfs.join(a);
                if link.exists() || link.symlink_metadata().is_ok() {
                    continue;
                }
                fs::create_dir_all(link.parent().expect("applet path has a parent"))?;
                symlink("/bin/busybox", &link)?;
            }
            fs::create_dir_all(rootfs.join("tmp"))?;
            fs::create_dir_all(rootfs.join("root"))?;
        }
        run_logged(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle), log, "umoci repack")?;
        let mut config = Command::new("umoci");
        config.args(["config", "--image", &image, "--os", "linux", "--architecture", "amd64"]);
        match spec.kind {
            Kind::Pause => {
                for a in PAUSE_ENTRYPOINT {
                    config.arg(format!("--config.entrypoint={a}"));
                }
                config.arg("--config.user=65535:65535");
            }
            Kind::Busybox => {
                config.arg("--config.cmd=sh");
                config.arg("--config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            }
        }
        run_logged(&mut config, log, "umoci config")?;
        let archive = out.join(spec.archive);
        run_logged(
            Command::new("skopeo").args(["copy", "--quiet"]).arg(format!("oci:{image}")).arg(format!(
                "oci-archive:{}:{}",
                archive.display(),
                spec.name
            )),
            log,
            "skopeo copy",
        )?;
        let index = read_member(&archive, "index.json")?;
        let digest = manifest_digest(&index, spec.name)?;
        let sha256 = hex::encode(Sha256::digest(fs::read(&archive)?));
        entries.push(Entry { name: spec.name.to_string(), archive: spec.archive.to_string(), sha256, digest });
    }
    fs::remove_dir_all(&work)?;
    fs::write(out.join("bundles.json"), serde_json::to_string_pretty(&entries)? + "\n")?;
    Ok(())
}

/// `apt-get download busybox-static` and `dpkg-deb -x`; returns the static binary.
fn fetch_busybox(work: &Path, log: &Path) -> Result<PathBuf> {
    let download = || {
        run_logged(
            Command::new("apt-get").args(["-q", "download", SOURCE_PACKAGE]).current_dir(work),
            log,
            "apt-get download busybox-static",
        )
    };
    if download().is_err() {
        // Stale host package lists: refresh once.
        run_logged(Command::new("apt-get").args(["-q", "update"]), log, "apt-get update")?;
        download()?;
    }
    let deb = fs::read_dir(work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let root = work.join("busybox-static");
    run_logged(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root), log, "dpkg-deb -x")?;
    let bin = root.join("bin/busybox");
    if !bin.is_file() {
        bail!("{} has no bin/busybox", deb.display());
    }
    Ok(bin)
}

/// The applet paths busybox installs (`busybox --list-full`: `usr/bin/env`, `bin/sh`, ...).
fn applet_paths(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox).arg("--list-full").output().context("running busybox --list-full")?;
    if !out.status.success() {
        bail!("busybox --list-full failed ({})", out.status);
    }
    Ok(parse_applets(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_applets(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('/') && !l.contains(".."))
        .filter(|l| *l != "bin/busybox")
        .map(str::to_string)
        .collect()
}

/// One member of a tar archive (`tar -xOf`).
fn read_member(archive: &Path, member: &str) -> Result<String> {
    let out = Command::new("tar").arg("-xOf").arg(archive).arg(member).output().context("running tar")?;
    if !out.status.success() {
        bail!("no {member} in {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The manifest digest `index.json` gives for `name` (its `org.opencontainers.image.ref.name`
/// annotation); the index must hold exactly that one image manifest.
pub fn manifest_digest(index_json: &str, name: &str) -> Result<String> {
    let index: serde_json::Value = serde_json::from_str(index_json).context("parsing index.json")?;
    let manifests = index["manifests"].as_array().context("index.json has no manifests")?;
    let found: Vec<&serde_json::Value> = manifests
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(name))
        .collect();
    let [m] = found.as_slice() else {
        bail!("index.json names {name:?} {} times (expected once): {index_json}", found.len());
    };
    if m["mediaType"].as_str() != Some("application/vnd.oci.image.manifest.v1+json") {
        bail!("{name} is not an OCI image manifest in index.json: {}", m["mediaType"]);
    }
    let digest = m["digest"].as_str().context("a manifest without digest")?;
    let hex = digest.strip_prefix("sha256:").context("a digest that is not sha256")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("malformed digest {digest:?}");
    }
    Ok(digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c588a8774f674cbca1222e4f7de6109408cb7b69bab2b4e674211840744033a0","size":349,"annotations":{"org.opencontainers.image.ref.name":"registry.k8s.io/pause:3.10.1"}}]}"#;

    #[test]
    fn the_manifest_digest_comes_from_the_full_reference_annotation() {
        assert_eq!(
            manifest_digest(INDEX, "registry.k8s.io/pause:3.10.1").unwrap(),
            "sha256:c588a8774f674cbca1222e4f7de6109408cb7b69bab2b4e674211840744033a0"
        );
        // A short tag (what `oci:LAYOUT:tag` would have written) is not the reference.
        let e = manifest_digest(INDEX, "3.10.1").unwrap_err().to_string();
        assert!(e.contains("0 times"), "{e}");
        assert!(manifest_digest("{}", "x").is_err());
        let bad = INDEX.replace("sha256:c588", "sha256:zz88");
        assert!(manifest_digest(&bad, "registry.k8s.io/pause:3.10.1").is_err());
    }

    #[test]
    fn applet_links_skip_busybox_itself_and_escapes() {
        let list = "usr/bin/[\nbin/sh\nbin/busybox\n/etc/passwd\n../x\n\nsbin/acpid\n";
        assert_eq!(parse_applets(list), vec!["usr/bin/[", "bin/sh", "sbin/acpid"]);
    }

    #[test]
    fn the_cache_dir_depends_on_the_recipe() {
        let d = bundles_dir(Path::new("/c"));
        assert!(d.starts_with("/c/lab"));
        assert!(d.file_name().unwrap().to_string_lossy().starts_with("bundles-"));
        assert_eq!(d, bundles_dir(Path::new("/c")));
    }

    #[test]
    fn bundles_json_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join("bundles.json"),
            r#"[{"name":"registry.k8s.io/pause:3.10.1","archive":"pause-3.10.1.tar","sha256":"ab","digest":"sha256:cd"}]"#,
        )
        .unwrap();
        let set = BundleSet::load(tmp.path()).unwrap();
        let b = set.get("registry.k8s.io/pause:3.10.1").unwrap();
        assert_eq!(b.archive, tmp.path().join("pause-3.10.1.tar"));
        assert_eq!(b.digest, "sha256:cd");
    }

    /// The real build, once per recipe (cached in the real `$STRATA_CACHE`): needs root,
    /// Debian's mirror (busybox-static) and apt for umoci and skopeo.
    #[test]
    fn builds_the_bundles_from_busybox_static() {
        // Read once: under plain `cargo test` another test of this crate sets STRATA_CACHE
        // for the whole process (nextest runs each test in its own process).
        let cache = crate::image::cache_root().unwrap();
        let set = build_bundles(&cache).unwrap();
        assert_eq!(set.bundles.len(), SPECS.len());
        for (b, spec) in set.bundles.iter().zip(SPECS) {
            assert_eq!(b.name, spec.name);
            let bytes = fs::read(&b.archive).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), b.sha256, "{}", b.name);
            let index = read_member(&b.archive, "index.json").unwrap();
            assert_eq!(manifest_digest(&index, spec.name).unwrap(), b.digest);
            // The manifest blob hashes to its digest, and its config says linux/amd64.
            let hexd = b.digest.trim_start_matches("sha256:");
            let manifest = read_member(&b.archive, &format!("blobs/sha256/{hexd}")).unwrap();
            assert_eq!(hex::encode(Sha256::digest(manifest.as_bytes())), hexd);
            let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
            let cfg_digest = m["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
            let cfg: serde_json::Value =
                serde_json::from_str(&read_member(&b.archive, &format!("blobs/sha256/{cfg_digest}")).unwrap()).unwrap();
            assert_eq!(cfg["os"], "linux");
            assert_eq!(cfg["architecture"], "amd64");
            match spec.kind {
                Kind::Pause => assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(PAUSE_ENTRYPOINT)),
                Kind::Busybox => assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["sh"])),
            }
        }
        // Cached: the same set again.
        assert_eq!(build_bundles(&cache).unwrap(), set);
    }
}
