//! Installing etcd from a release archive on the Terraform host, for sites whose nodes
//! have no package source: the archive (`etcd-vX.Y.Z-linux-amd64.tar.gz`: a directory
//! holding `etcd` and `etcdctl`) is checked against its sha256 here, pushed over SSH,
//! checked again on the node, and its binaries installed in /usr/local/bin with a unit
//! of our own in place of Debian's; the same drop-in then configures it.

use anyhow::{anyhow, bail};
use sha2::{Digest, Sha256};

use super::ReleaseArchiveModel;
use crate::node::{quote, Node};

const UPLOAD: &str = "/var/lib/strata-etcd/etcd-release.tar.gz";
const UNIT_FILE: &str = "/etc/systemd/system/etcd.service";
/// Records which archive is installed, so an unchanged one is not pushed again.
const MARKER: &str = "/var/lib/strata-etcd/release.sha256";

const UNIT: &str =
    "[Unit]\nDescription=etcd from a release archive (strata_etcd_cluster)\nAfter=network-online.target\n\
Wants=network-online.target\n\n[Service]\nType=notify\nUser=etcd\nExecStart=/usr/local/bin/etcd\nLimitNOFILE=65536\n\n\
[Install]\nWantedBy=multi-user.target\n";

/// The archive's bytes, once its sha256 is the configured one; else why not, for the user.
pub fn read_checked(a: &ReleaseArchiveModel) -> Result<Vec<u8>, String> {
    let path = crate::node::expand(&a.path);
    let bytes = std::fs::read(&path).map_err(|e| format!("Cannot read {path}: {e}."))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(a.sha256.trim()) {
        return Err(format!("{path} has sha256 {actual}, not the configured {}: refusing to install it.", a.sha256));
    }
    Ok(bytes)
}

pub async fn install(node: &Node, a: &ReleaseArchiveModel) -> anyhow::Result<()> {
    let sha = a.sha256.trim().to_ascii_lowercase();
    if node.read_file(MARKER).await?.is_some_and(|m| String::from_utf8_lossy(&m).trim() == sha) {
        return Ok(());
    }
    let bytes = read_checked(a).map_err(|e| anyhow!("release_archive: {e}"))?;
    node.write_file(UPLOAD, &bytes, 0o600).await?;
    let out = node
        .run(
            "installing etcd from the release archive",
            &format!(
                "set -e; echo {sha_q}'  '{UPLOAD} | sha256sum -c --quiet; d=$(mktemp -d); tar -xzf {UPLOAD} -C \"$d\"; \
                 etcd=$(find \"$d\" -type f -name etcd | head -n 1); ctl=$(find \"$d\" -type f -name etcdctl | head -n 1); \
                 [ -n \"$etcd\" ] && [ -n \"$ctl\" ] || {{ echo 'the archive holds no etcd and etcdctl' >&2; exit 1; }}; \
                 install -m 0755 \"$etcd\" \"$ctl\" /usr/local/bin/; rm -rf \"$d\" {UPLOAD}; \
                 id etcd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/etcd --shell /usr/sbin/nologin etcd",
                sha_q = quote(&sha),
            ),
        )
        .await?;
    if out.status != 0 {
        bail!("installing etcd from release_archive failed on {}: {}", node.label(), out.stderr.trim());
    }
    if node.write_validated(UNIT_FILE, UNIT.as_bytes(), 0o644, None).await? {
        node.run_ok("reloading systemd units", "systemctl daemon-reload").await?;
    }
    node.write_file(MARKER, format!("{sha}\n").as_bytes(), 0o644).await
}
