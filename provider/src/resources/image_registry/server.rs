//! The registry on its node: Debian's `docker-registry` package, its configuration and
//! TLS files, and pushes with Debian's `skopeo`. Every check of the registry runs on the
//! node over TLS against `address` (the name in its certificate), as nodes reach it.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};

use super::bundle::{Archive, Format};
use super::ImageRegistryModel;
use crate::node::services::{FileInSet, UnitAction};
use crate::node::{quote, Node};

pub const UNIT: &str = "docker-registry";
pub const CONFIG: &str = "/etc/docker/registry/config.yml";
/// The registry's TLS files (CA, certificate, key), swapped as one set.
pub const TLS_DIR: &str = "/etc/docker/registry/strata";
/// The CA alone, as skopeo's `--dest-cert-dir` wants it (every `*.crt` there is a CA).
pub const TRUST_DIR: &str = "/etc/docker/registry/strata/trust";
/// The package's service user, which must read the key and own the storage.
const USER: &str = "docker-registry";
const STAGING: &str = "/var/tmp";
/// The media types a digest check accepts, so the registry answers with the digest of the
/// manifest as pushed (OCI or Docker, single or index).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,\
                      application/vnd.docker.distribution.manifest.v2+json,\
                      application/vnd.docker.distribution.manifest.list.v2+json";

pub fn render_config(m: &ImageRegistryModel) -> String {
    format!(
        "# Managed by Strata (strata_image_registry).\n\
         version: 0.1\n\
         log:\n  fields:\n    service: registry\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: false\n\
         http:\n  addr: :{port}\n  tls:\n    certificate: {TLS_DIR}/tls.crt\n    key: {TLS_DIR}/tls.key\n\
         \x20 headers:\n    X-Content-Type-Options: [nosniff]\n",
        storage = m.storage(),
        port = m.port(),
    )
}

fn curl(m: &ImageRegistryModel) -> String {
    format!("curl -sS --max-time 10 --cacert {TLS_DIR}/ca.crt")
        + &format!(" --resolve {}:{}:127.0.0.1", quote(&host_only(&m.address)), m.port())
}

/// The address as a URL host (IPv6 in brackets).
pub fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

fn host_only(address: &str) -> String {
    url_host(address)
}

/// Installs and (re)starts the registry when its files changed; waits until it answers.
pub async fn install(node: &Node, m: &ImageRegistryModel) -> anyhow::Result<()> {
    node.require_systemd().await?;
    node.install_packages(&["docker-registry", "skopeo", "curl"]).await?;
    let (ca, cert, key) = (
        m.ca_cert.as_deref().ok_or_else(|| anyhow!("no CA certificate"))?,
        m.tls_cert.as_deref().ok_or_else(|| anyhow!("no TLS certificate"))?,
        m.tls_key.as_deref().ok_or_else(|| anyhow!("no TLS key"))?,
    );
    node.run_ok("creating the TLS directories", &format!("mkdir -p {TRUST_DIR}")).await?;
    let mut changed = node
        .write_together(&[
            FileInSet { path: format!("{TLS_DIR}/ca.crt"), content: ca.as_bytes(), mode: 0o644, group: None },
            FileInSet { path: format!("{TLS_DIR}/tls.crt"), content: cert.as_bytes(), mode: 0o644, group: None },
            FileInSet { path: format!("{TLS_DIR}/tls.key"), content: key.as_bytes(), mode: 0o640, group: Some(USER) },
        ])
        .await?;
    node.write_validated(&format!("{TRUST_DIR}/ca.crt"), ca.as_bytes(), 0o644, None).await?;
    changed |= node.write_validated(CONFIG, render_config(m).as_bytes(), 0o644, None).await?;
    let dir = quote(m.storage());
    node.run_ok(
        "preparing the storage directory",
        &format!("mkdir -p {dir} && chown {USER}:{USER} {dir} && chmod 750 {dir}"),
    )
    .await?;
    let state = node.unit_state(UNIT).await?;
    if changed && state.is_active() {
        node.unit(UNIT, UnitAction::Restart).await?;
    }
    node.ensure_running(UNIT, None).await?;
    wait_ready(node, m).await
}

/// Whether the registry answers `/v2/` over TLS (bounded: about 30 s).
pub async fn wait_ready(node: &Node, m: &ImageRegistryModel) -> anyhow::Result<()> {
    let url = format!("https://{}:{}/v2/", url_host(&m.address), m.port());
    let cmd = format!(
        "for i in $(seq 60); do code=$({} -o /dev/null -w '%{{http_code}}' {} 2>/tmp/.strata-registry-err) && [ \"$code\" = 200 ] && exit 0; sleep 0.5; done; cat /tmp/.strata-registry-err; journalctl -u {UNIT} -n 5 --no-pager 2>/dev/null; exit 1",
        curl(m),
        quote(&url)
    );
    let out = node.run("waiting for the registry to answer", &cmd).await?;
    if out.status != 0 {
        bail!(
            "the registry on {} does not answer {url} over TLS: {}{}",
            node.label(),
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    Ok(())
}

/// Whether the service is active and answers.
pub async fn running(node: &Node, m: &ImageRegistryModel) -> anyhow::Result<bool> {
    if !node.unit_state(UNIT).await?.is_active() {
        return Ok(false);
    }
    let url = format!("https://{}:{}/v2/", url_host(&m.address), m.port());
    let out = node
        .run("asking the registry", &format!("{} -o /dev/null -w '%{{http_code}}' {}", curl(m), quote(&url)))
        .await?;
    Ok(out.status == 0 && out.stdout.trim() == "200")
}

/// The digest the registry serves for each `(mirror path, tag)`: absent when it has none.
pub async fn digests(
    node: &Node,
    m: &ImageRegistryModel,
    wanted: &[(String, String)],
) -> anyhow::Result<BTreeMap<(String, String), String>> {
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let base = format!("https://{}:{}/v2", url_host(&m.address), m.port());
    let mut script = String::new();
    for (path, tag) in wanted {
        let url = format!("{base}/{path}/manifests/{tag}");
        script.push_str(&format!(
            "d=$({} -I -H {} {} | tr -d '\\r' | awk 'tolower($1)==\"docker-content-digest:\" {{print $2}}'); echo {} {} \"$d\"\n",
            curl(m),
            quote(&format!("Accept: {ACCEPT}")),
            quote(&url),
            quote(path),
            quote(tag),
        ));
    }
    let out = node.run_ok("reading the registry's digests", &script).await?;
    let mut found = BTreeMap::new();
    for line in out.lines() {
        let mut w = line.split_whitespace();
        if let (Some(p), Some(t), Some(d)) = (w.next(), w.next(), w.next()) {
            if d.starts_with("sha256:") {
                found.insert((p.to_string(), t.to_string()), d.to_string());
            }
        }
    }
    Ok(found)
}

/// The registry's repositories.
pub async fn catalog(node: &Node, m: &ImageRegistryModel) -> anyhow::Result<Vec<String>> {
    let url = format!("https://{}:{}/v2/_catalog?n=10000", url_host(&m.address), m.port());
    let out = node.run_ok("reading the registry's catalog", &format!("{} {}", curl(m), quote(&url))).await?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|_| anyhow!("the registry's catalog is not JSON: {}", out.trim()))?;
    let mut repos: Vec<String> =
        v["repositories"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_string)).collect();
    repos.sort();
    Ok(repos)
}

/// Copies the archive to the node, checks its SHA-256 there, pushes the `images` of it
/// (indexes into `archive.images`) and removes the copy. Returns the pushed digests and
/// the bytes uploaded.
pub async fn push(
    node: &Node,
    m: &ImageRegistryModel,
    content: &[u8],
    sha256: &str,
    archive: &Archive,
    images: &[usize],
) -> anyhow::Result<Vec<(usize, String)>> {
    let staged = format!("{STAGING}/strata-bundle-{sha256}.tar");
    node.write_file(&staged, content, 0o600).await?;
    let result = async {
        let sum =
            node.run_ok("checking the bundle's SHA-256 on the node", &format!("sha256sum {}", quote(&staged))).await?;
        if sum.split_whitespace().next() != Some(sha256) {
            bail!(
                "the bundle copied to {} has SHA-256 {}, not {sha256}: the copy was damaged",
                node.label(),
                sum.trim()
            );
        }
        let mut pushed = Vec::new();
        for &i in images {
            let image = &archive.images[i];
            let dest = format!(
                "docker://{}:{}/{}:{}",
                url_host(&m.address),
                m.port(),
                image.reference.mirror_path(),
                image.reference.tag
            );
            let source = format!("{}:{}:{}", archive.format.transport(), staged, image.source_name);
            let preserve = if archive.format == Format::OciArchive { " --preserve-digests" } else { "" };
            let digest_file = format!("{staged}.digest");
            let cmd = format!(
                "skopeo copy --quiet{preserve} --dest-cert-dir {TRUST_DIR} --digestfile {} {} {} && cat {}",
                quote(&digest_file),
                quote(&source),
                quote(&dest),
                quote(&digest_file)
            );
            let out = node.run_ok(&format!("pushing {}", image.reference.full()), &cmd).await?;
            let digest = out.trim().to_string();
            if let Some(want) = &image.digest {
                if *want != digest {
                    bail!("{} was pushed with digest {digest}, not the archive's {want}", image.reference.full());
                }
            }
            pushed.push((i, digest));
        }
        Ok(pushed)
    }
    .await;
    let _ =
        node.run("removing the bundle copy", &format!("rm -f -- {} {}.digest", quote(&staged), quote(&staged))).await;
    result
}

/// Stops and disables the service; deletes the stored images only when asked.
pub async fn remove(node: &Node, m: &ImageRegistryModel) -> anyhow::Result<()> {
    node.run_ok(
        "stopping the registry",
        &format!("systemctl disable --now {UNIT} 2>/dev/null || systemctl stop {UNIT} 2>/dev/null || true"),
    )
    .await?;
    node.run_ok("removing the registry's configuration", &format!("rm -rf -- {TLS_DIR}")).await?;
    if m.delete_data_on_destroy == Some(true) {
        node.run_ok("deleting the stored images", &format!("rm -rf -- {}", quote(m.storage()))).await?;
    }
    Ok(())
}
