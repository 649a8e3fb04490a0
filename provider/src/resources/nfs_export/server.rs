//! What happens on the NFS server: the export directory, the export file, and making
//! the server take it (exportfs, or a ganesha reload), with rollback on refusal.

use anyhow::{anyhow, bail};

use super::options::Backend;
use super::{NfsExport, NfsExportModel};
use crate::node::services::UnitAction;
use crate::node::{quote, Node};

pub const GANESHA_DIR: &str = "/etc/ganesha/strata.d";
const GANESHA_INDEX: &str = "/etc/ganesha/strata.d/index.conf";
const GANESHA_CONF: &str = "/etc/ganesha/ganesha.conf";
const GANESHA_LOG: &str = "/var/log/ganesha/ganesha.log";

/// The Debian packages each backend runs from (installed from the node's apt sources).
fn packages(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Kernel => &["nfs-kernel-server"],
        Backend::Ganesha => &["nfs-ganesha", "nfs-ganesha-vfs"],
    }
}

/// The server side a backend needs: a systemd node with its packages installed.
pub async fn prepare(node: &Node, backend: Backend) -> anyhow::Result<()> {
    node.require_systemd().await?;
    node.install_packages(packages(backend)).await
}

pub async fn ensure_directory(node: &Node, m: &NfsExportModel) -> anyhow::Result<()> {
    let path = quote(&m.path);
    match &m.create_directory {
        Some(d) => {
            let mode = d.mode.as_deref().unwrap_or("0755");
            let owner = format!("{}:{}", d.owner.as_deref().unwrap_or("root"), d.group.as_deref().unwrap_or("root"));
            node.run_ok(
                "creating the export directory",
                &format!("mkdir -p {path} && chmod {} {path} && chown {} {path}", quote(mode), quote(&owner)),
            )
            .await?;
        }
        None => {
            if node.run("checking the export directory", &format!("test -d {path}")).await?.status != 0 {
                bail!("{} does not exist on {}; create it or set a create_directory block", m.path, m.ssh.host);
            }
        }
    }
    Ok(())
}

/// How tar on the server reads an archive, from its first bytes: `z` (gzip), `J` (xz),
/// `--zstd`, or nothing for a plain tar (ustar magic at offset 257).
pub fn archive_format_of(path: &str) -> Result<&'static str, String> {
    use std::io::Read;
    let expanded = crate::node::expand(path);
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(&expanded).map_err(|e| format!("cannot read {path}: {e}"))?;
    let n = f.read(&mut head).map_err(|e| format!("cannot read {path}: {e}"))?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok("-z")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Ok("-J")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok("--zstd")
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok("")
    } else {
        Err(format!("{path} is not a tar archive (plain, gzip, xz or zstd)"))
    }
}

/// Unpacks the archive at `archive` (on the Terraform host) into `dir` on the node when
/// `dir` is empty, keeping owners and modes; returns false (and touches nothing) when
/// it is not. Checked before the upload, and again by the command that unpacks.
pub async fn restore(node: &Node, dir: &str, archive: &str) -> anyhow::Result<bool> {
    let format = archive_format_of(archive).map_err(|e| anyhow!("restore_from: {e}"))?;
    let d = quote(dir);
    let empty = format!("[ -z \"$(ls -A {d})\" ]");
    if node.run(&format!("checking that {dir} is empty"), &empty).await?.status != 0 {
        return Ok(false);
    }
    let bytes =
        std::fs::read(crate::node::expand(archive)).map_err(|e| anyhow!("restore_from: reading {archive}: {e}"))?;
    let out = node
        .run_input(
            &format!("restoring {archive} into {dir}"),
            // Not empty any more: drain the upload and leave the directory alone.
            &format!(
                "if ! {empty}; then cat >/dev/null; echo not-empty; exit 0; fi; \
                 tar -x {format} --same-owner --same-permissions --numeric-owner -f - -C {d}"
            ),
            Some(&bytes),
        )
        .await?;
    if out.status != 0 {
        bail!("restore_from: unpacking {archive} into {dir} failed (exit {}): {}", out.status, out.stderr.trim());
    }
    Ok(out.stdout.trim() != "not-empty")
}

/// The lock file on the NFS server every change of its exports holds (`flock`), so
/// that concurrent Terraform runs, workspaces and an operator's own
/// `flock /run/lock/strata-nfs-exports.lock exportfs -ra` never interleave.
pub const LOCK_FILE: &str = "/run/lock/strata-nfs-exports.lock";

/// [`install`] under the server's export lock.
pub async fn install_locked(node: &Node, m: &mut NfsExportModel) -> anyhow::Result<()> {
    let exclusive = node.exclusive(LOCK_FILE).await?;
    let result = install(node, m).await;
    exclusive.release().await;
    result
}

/// Writes the export and activates it; if the server refuses it, the previous file is
/// put back (and re-activated) and the server's own message is the error. The caller
/// holds the export lock.
async fn install(node: &Node, m: &mut NfsExportModel) -> anyhow::Result<()> {
    prepare(node, NfsExport::backend(m)).await?;
    let file = NfsExport::file_path(m);
    let previous = node.read_file(&file).await?;
    if NfsExport::backend(m) == Backend::Ganesha && m.export_id.is_none() {
        m.export_id = Some(free_export_id(node).await?);
    }
    node.write_file(&file, NfsExport::render(m).as_bytes(), 0o644).await?;
    let activated = activate(node, NfsExport::backend(m)).await;
    if let Err(e) = activated {
        // Also after a timeout or Ctrl-C: the server must not keep a half-applied export.
        let cleanup = node.for_cleanup();
        let backend = NfsExport::backend(m);
        let restored = cleanup
            .cleanup(async {
                match previous {
                    Some(old) => cleanup.write_file(&file, &old, 0o644).await?,
                    None => cleanup.remove_file(&file).await?,
                }
                // Best effort: the error to report is the refusal, not the rollback's.
                let _ = activate(&cleanup, backend).await;
                anyhow::Ok(())
            })
            .await;
        if let Err(r) = restored {
            bail!("{e:#}; restoring the previous export also failed: {r:#}");
        }
        return Err(e);
    }
    Ok(())
}

pub async fn activate(node: &Node, backend: Backend) -> anyhow::Result<()> {
    match backend {
        Backend::Kernel => {
            let out = node.run("re-exporting (exportfs -ra)", "mkdir -p /etc/exports.d && exportfs -ra").await?;
            if out.status != 0 {
                bail!("exportfs refused the exports: {}", out.stderr.trim());
            }
            Ok(())
        }
        Backend::Ganesha => reload_ganesha(node).await,
    }
}

/// Rebuilds the include index from the export files present and makes sure
/// ganesha.conf includes it, then has systemd run rpcbind (ganesha's NFSv3 side needs
/// it) and start or reload nfs-ganesha, and reads ganesha's log for configuration errors.
async fn reload_ganesha(node: &Node) -> anyhow::Result<()> {
    let index = format!(
        r#"set -e
mkdir -p {dir} /var/log/ganesha
: > {index}.tmp
for f in {dir}/strata-*.conf; do [ -e "$f" ] && echo "%include \"$f\"" >> {index}.tmp; done
mv {index}.tmp {index}
touch {log}
stat -c %s {log}
grep -qF '%include "{index}"' {conf} 2>/dev/null || {{ printf '\n%%include "{index}"\n' >> {conf}; echo included; }}
"#,
        dir = GANESHA_DIR,
        index = GANESHA_INDEX,
        conf = GANESHA_CONF,
        log = GANESHA_LOG,
    );
    let out = node.run_ok("indexing the ganesha exports", &index).await?;
    let mut lines = out.lines();
    let log_start: u64 = lines.next().unwrap_or_default().trim().parse()?;
    // A ganesha started before its configuration included our index (the package
    // starts it on install) is restarted once; after that a reload takes new exports.
    let action = if lines.next() == Some("included") { UnitAction::Restart } else { UnitAction::Reload };
    node.ensure_running("rpcbind.service", None).await?;
    node.ensure_running("nfs-ganesha.service", Some(action)).await?;
    // A reload is a SIGHUP: ganesha reads the exports after the unit call returns.
    let check = format!(
        "sleep 1; tail -c +{} {GANESHA_LOG} | grep -E ':CONFIG :(CRIT|MAJ) |:EXPORT :(CRIT|MAJ) ' || true; \
         systemctl is-active --quiet nfs-ganesha || echo 'nfs-ganesha is not running'",
        log_start + 1
    );
    let out = node.run("reading nfs-ganesha's log", &check).await?;
    let problems = out.stdout.trim();
    if out.status != 0 || !problems.is_empty() {
        bail!("nfs-ganesha refused the exports: {}{}", problems, out.stderr.trim());
    }
    Ok(())
}

async fn free_export_id(node: &Node) -> anyhow::Result<i64> {
    let out = node
        .run(
            "finding a free ganesha Export_Id",
            &format!("cat {GANESHA_DIR}/strata-*.conf {GANESHA_CONF} 2>/dev/null | grep -i 'Export_Id' || true"),
        )
        .await?;
    let used: Vec<i64> = out
        .stdout
        .lines()
        .filter_map(|l| l.split('=').nth(1))
        .filter_map(|v| v.trim().trim_end_matches(';').trim().parse().ok())
        .collect();
    (100..65535).find(|id| !used.contains(id)).ok_or_else(|| anyhow!("no free ganesha Export_Id left"))
}
