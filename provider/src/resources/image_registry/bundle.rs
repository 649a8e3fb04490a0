//! Image bundles on the Terraform host: OCI archives (`oci-archive`, an OCI layout in a
//! tar) or `docker save` tarballs (`docker-archive`), read at plan time for their
//! checksum, the names they carry and (OCI) the manifest digests the registry will serve.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use sha2::{Digest, Sha256};

/// How an archive is laid out, and so which skopeo transport reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OciArchive,
    DockerArchive,
}

impl Format {
    pub fn transport(self) -> &'static str {
        match self {
            Format::OciArchive => "oci-archive",
            Format::DockerArchive => "docker-archive",
        }
    }
}

/// One image of an archive: its full reference as the archive names it, and for an OCI
/// archive the digest of its manifest (skopeo pushes it unchanged, `--preserve-digests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// As the archive carries it (skopeo selects the image by it).
    pub source_name: String,
    pub reference: Reference,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub format: Format,
    pub images: Vec<ArchiveImage>,
}

/// A tagged image reference normalised as containerd sees it: `busybox:1.36` is
/// `docker.io/library/busybox:1.36`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// The upstream registry, e.g. `registry.k8s.io`.
    pub registry: String,
    /// The repository path in it, e.g. `library/busybox`.
    pub repository: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(name: &str) -> anyhow::Result<Reference> {
        if name.contains('@') {
            bail!("{name:?} has a digest: bundle images are pushed by tag, so they need a `:tag` and no digest");
        }
        let (path, tag) = match name.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, t),
            _ => bail!("{name:?} has no tag (e.g. `registry.k8s.io/pause:3.10.1`)"),
        };
        let (first, rest) = path.split_once('/').unwrap_or(("", path));
        let has_registry = first.contains('.') || first.contains(':') || first == "localhost";
        let (registry, repository) = match (has_registry, first.is_empty()) {
            (true, _) => (first.to_string(), rest.to_string()),
            (false, true) => ("docker.io".to_string(), format!("library/{rest}")),
            (false, false) => ("docker.io".to_string(), path.to_string()),
        };
        let ok_part = |s: &str| {
            !s.is_empty()
                && s.split('/').all(|c| {
                    !c.is_empty()
                        && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                })
        };
        if !ok_part(&repository) || tag.is_empty() || tag.len() > 128 {
            bail!("{name:?} is not a valid image reference");
        }
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(Reference { registry, repository, tag: tag.to_string() })
    }

    /// `registry/repository:tag`.
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }

    /// Where the image lives in the local registry: under its upstream's name, so images
    /// of two upstreams never collide, and containerd reaches it with `override_path`.
    pub fn mirror_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// Reads `index.json` (OCI) or `manifest.json` (docker save) from the archive.
pub fn read(path: &Path) -> anyhow::Result<Archive> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut tar = tar::Archive::new(f);
    let (mut index, mut manifest) = (None, None);
    for entry in tar.entries().with_context(|| format!("{} is not a tar archive", path.display()))? {
        let mut e = entry.with_context(|| format!("{} is not a readable tar archive", path.display()))?;
        let name = e.path()?.to_string_lossy().trim_start_matches("./").to_string();
        if name == "index.json" || name == "manifest.json" {
            let mut s = String::new();
            e.read_to_string(&mut s).with_context(|| format!("reading {name} in {}", path.display()))?;
            if name == "index.json" {
                index = Some(s);
            } else {
                manifest = Some(s);
            }
        }
    }
    match (index, manifest) {
        (Some(i), _) => parse_oci_index(&i),
        (None, Some(m)) => parse_docker_manifest(&m),
        _ => bail!("{} has neither index.json (an OCI archive) nor manifest.json (a docker-archive)", path.display()),
    }
}

pub fn parse_oci_index(text: &str) -> anyhow::Result<Archive> {
    let v: serde_json::Value = serde_json::from_str(text).context("index.json is not JSON")?;
    let mut images = Vec::new();
    for m in v["manifests"].as_array().ok_or_else(|| anyhow!("index.json has no manifests"))? {
        let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str().ok_or_else(|| {
            anyhow!("an image in index.json has no org.opencontainers.image.ref.name: bundle images must carry their full name (skopeo copy ... oci-archive:FILE:registry.k8s.io/pause:3.10.1)")
        })?;
        let digest = m["digest"].as_str().ok_or_else(|| anyhow!("an image in index.json has no digest"))?;
        let reference = Reference::parse(name).context("the name an image in index.json carries")?;
        images.push(ArchiveImage { source_name: name.to_string(), reference, digest: Some(digest.to_string()) });
    }
    if images.is_empty() {
        bail!("index.json lists no image");
    }
    Ok(Archive { format: Format::OciArchive, images })
}

pub fn parse_docker_manifest(text: &str) -> anyhow::Result<Archive> {
    let v: serde_json::Value = serde_json::from_str(text).context("manifest.json is not JSON")?;
    let mut images = Vec::new();
    for m in v.as_array().ok_or_else(|| anyhow!("manifest.json is not a list"))? {
        for tag in m["RepoTags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()) {
            let reference = Reference::parse(tag).context("a RepoTag in manifest.json")?;
            images.push(ArchiveImage { source_name: tag.to_string(), reference, digest: None });
        }
    }
    if images.is_empty() {
        bail!("manifest.json names no image (RepoTags): bundle images must carry their names");
    }
    Ok(Archive { format: Format::DockerArchive, images })
}
