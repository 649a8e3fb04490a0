//! `airgap {}`: the k3s binary and image archives from the Terraform host. Every file
//! is checked at plan against `sha256` (keyed by file name, as k3s's
//! `sha256sum-amd64.txt` lists them), uploaded at apply unless the node already has a
//! file with that SHA-256, and checked again on the node after the upload.

use std::path::Path;

use anyhow::bail;

use super::{AirgapModel, BINARY, IMAGES_DIR};
use crate::framework::{Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Type, Value};
use crate::node::{quote, Node};
use crate::resources::image_registry::bundle::sha256_file;

pub fn block() -> NestedBlock {
    NestedBlock::single(
        "airgap",
        Block::new(
            "An air-gapped install from files on the Terraform host (nothing is downloaded on the node). Every \
             file's SHA-256 is checked at plan against `sha256`; at apply a file is uploaded unless the node already \
             has one with that SHA-256, and checked again on the node. The binary goes to `/usr/local/bin/k3s` \
             (0755), the image archives to `/var/lib/rancher/k3s/agent/images/` (imported by k3s at every start). \
             Without this block `/usr/local/bin/k3s` must already be there at `version`.",
        )
        .attribute(
            Attribute::required("binary", Type::String)
                .description("Path on the Terraform host of the `k3s` binary of `version`."),
        )
        .attribute(Attribute::required("sha256", Type::map(Type::String)).description(
            "SHA-256 (hex) of each file by file name, as in k3s's `sha256sum-amd64.txt`, e.g. \
             `{ \"k3s\" = \"...\", \"k3s-airgap-images-amd64.tar\" = \"...\" }`. Every file of `binary` and \
             `images` needs an entry.",
        ))
        .attribute(
            Attribute::optional("images", Type::list(Type::String))
                .description("Paths on the Terraform host of image archives (`.tar`, `.tar.zst`, `.tar.gz`)."),
        ),
    )
}

/// The file name a path is keyed by in `sha256`.
pub fn file_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}

/// Every (path on the host, destination on the node, mode).
fn files(a: &AirgapModel) -> Vec<(String, String, u32)> {
    let mut out = vec![(a.binary.clone(), BINARY.to_string(), 0o755)];
    for i in a.images.iter().flatten() {
        out.push((i.clone(), format!("{IMAGES_DIR}/{}", file_name(i)), 0o644));
    }
    out
}

/// Validation without the files: one name per file, an entry in `sha256` for each.
/// `at` is where the block is (`airgap`).
pub fn validate(config: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    check(config, at, diags, false);
}

/// Plan-time (not `terraform validate`, where the files may not exist yet): each file's
/// checksum on the Terraform host against its `sha256` entry.
pub fn check_checksums(config: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    check(config, at, diags, true);
}

fn check(config: &Value, at: &AttributePath, diags: &mut Diagnostics, hash_files: bool) {
    let Some(block @ Value::Object(_)) = config.attr("airgap") else { return };
    if !block.is_fully_known() {
        return;
    }
    let Ok(a) = crate::framework::model::to_model::<AirgapModel>(block) else { return };
    let mut names = std::collections::BTreeMap::new();
    for (path, _, _) in files(&a) {
        let name = file_name(&path);
        if let Some(other) = names.insert(name.clone(), path.clone()) {
            if hash_files {
                continue; // reported by validate
            }
            diags.push(
                Diagnostic::error(
                    "Two airgap files with one name",
                    format!("{path} and {other} are both named {name:?}: they would overwrite each other on the node."),
                )
                .at(at.attr("images")),
            );
            continue;
        }
        let entry = at.attr("sha256").key(&name);
        let Some(want) = a.sha256.get(&name) else {
            if hash_files {
                continue; // reported by validate
            }
            diags.push(
                Diagnostic::error(
                    "Missing checksum",
                    format!("{path} has no entry {name:?} in airgap.sha256: add its SHA-256 (k3s's sha256sum-amd64.txt lists it)."),
                )
                .at(entry),
            );
            continue;
        };
        if !hash_files {
            continue;
        }
        match sha256_file(Path::new(&path)) {
            Ok(got) if got.eq_ignore_ascii_case(want) => {}
            Ok(got) => diags.push(
                Diagnostic::error(
                    "Airgap checksum mismatch",
                    format!("{path} has SHA-256 {got}, airgap.sha256[{name:?}] says {want}."),
                )
                .at(entry),
            ),
            Err(e) => diags.push(Diagnostic::error("Airgap file not readable", format!("{e:#}")).at(entry)),
        }
    }
}

/// The SHA-256 of a file on the node, `None` when it is missing.
async fn sha256_on_node(node: &Node, path: &str) -> anyhow::Result<Option<String>> {
    let out = node
        .run(&format!("checking the SHA-256 of {path}"), &format!("sha256sum -- {} 2>/dev/null", quote(path)))
        .await?;
    Ok((out.status == 0).then(|| out.stdout.split_whitespace().next().unwrap_or_default().to_string()))
}

/// Uploads every file the node lacks (by SHA-256); returns whether any was uploaded.
pub async fn upload(node: &Node, a: &AirgapModel) -> anyhow::Result<bool> {
    let mut changed = false;
    for (path, dest, mode) in files(a) {
        let want = a.sha256.get(&file_name(&path)).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
        if sha256_on_node(node, &dest).await?.as_deref() == Some(want.as_str()) {
            continue;
        }
        let content = tokio::fs::read(&path).await.map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
        let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
        if sum != want {
            bail!("{path} changed since the plan: SHA-256 {sum}, not {want}");
        }
        tracing::info!(file = %path, bytes = content.len(), node = node.label(), "uploading a k3s airgap file");
        node.write_file(&dest, &content, mode).await?;
        match sha256_on_node(node, &dest).await? {
            Some(s) if s == want => {}
            s => bail!(
                "{}: {dest} has SHA-256 {} after the upload, not {want}: the copy was damaged",
                node.label(),
                s.unwrap_or_else(|| "(missing)".into())
            ),
        }
        changed = true;
    }
    Ok(changed)
}
