//! etcd snapshots as k3s takes them (pkg/etcd/snapshot.go): `etcdctl snapshot save` of
//! the local member into `etcd-snapshot-dir` named `<name>-<node-name>-<unix seconds>`
//! (name `etcd-snapshot` by default), on the `etcd-snapshot-schedule-cron` schedule
//! (default `0 */12 * * *`, parsed with croner), keeping `etcd-snapshot-retention`
//! (default 5) of this node's scheduled snapshots; `k3s etcd-snapshot save|ls`; and the
//! restore of `--cluster-reset --cluster-reset-restore-path` with `etcdutl`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::etcd::EtcdPaths;

pub const DEFAULT_CRON: &str = "0 */12 * * *";

pub fn parse_cron(spec: &str) -> Result<croner::Cron> {
    if spec.split_whitespace().count() != 5 && !spec.starts_with('@') {
        bail!("invalid etcd-snapshot-schedule-cron {spec:?}: expected 5 fields (minute hour day month weekday)");
    }
    croner::Cron::from_str(spec).map_err(|e| anyhow::anyhow!("invalid etcd-snapshot-schedule-cron {spec:?}: {e}"))
}

pub fn snapshot_name(base: &str, node: &str, unix: i64) -> String {
    format!("{base}-{node}-{unix}")
}

fn etcdctl_env(p: &EtcdPaths) -> Vec<(String, String)> {
    vec![
        ("ETCDCTL_API".into(), "3".into()),
        ("ETCDCTL_ENDPOINTS".into(), "https://127.0.0.1:2379".into()),
        ("ETCDCTL_CACERT".into(), p.server_ca()),
        ("ETCDCTL_CERT".into(), p.client_cert()),
        ("ETCDCTL_KEY".into(), p.client_key()),
    ]
}

/// Saves a snapshot; returns its path.
pub fn save(p: &EtcdPaths, dir: &Path, base: &str, node: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let file = dir.join(snapshot_name(base, node, now));
    let out = std::process::Command::new("etcdctl")
        .envs(etcdctl_env(p))
        .args(["snapshot", "save"])
        .arg(&file)
        .output()
        .context("running etcdctl (install Debian's `etcd-client`)")?;
    if !out.status.success() {
        bail!("etcdctl snapshot save: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(file)
}

/// This node's snapshots named `<base>-<node>-<unix>` in `dir`, oldest first.
pub fn list(dir: &Path, base: Option<&str>, node: Option<&str>) -> Vec<(PathBuf, u64, i64)> {
    let mut v: Vec<(PathBuf, u64, i64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (prefix, ts) = name.rsplit_once('-')?;
            let ts: i64 = ts.parse().ok()?;
            if let Some(n) = node {
                let b = base.unwrap_or("etcd-snapshot");
                if prefix != format!("{b}-{n}") {
                    return None;
                }
            }
            let size = e.metadata().ok()?.len();
            Some((e.path(), size, ts))
        })
        .collect();
    v.sort_by_key(|(p, _, ts)| (*ts, p.clone()));
    v
}

/// Deletes the oldest of this node's snapshots beyond `keep`.
pub fn prune(dir: &Path, base: &str, node: &str, keep: usize) -> Result<Vec<PathBuf>> {
    let all = list(dir, Some(base), Some(node));
    let mut removed = Vec::new();
    if all.len() > keep {
        for (p, _, _) in &all[..all.len() - keep] {
            std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
            removed.push(p.clone());
        }
    }
    Ok(removed)
}

/// `k3s etcd-snapshot ls` output.
pub fn ls_table(dir: &Path) -> String {
    let mut out = String::from("Name Location Size Created\n");
    for (p, size, ts) in list(dir, None, None) {
        let created = time::OffsetDateTime::from_unix_timestamp(ts)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        out.push_str(&format!("{name} file://{} {size} {created}\n", p.display()));
    }
    out
}

/// The scheduled snapshots, for ever.
pub async fn schedule(p: EtcdPaths, dir: PathBuf, cron: croner::Cron, node: String, retention: usize) {
    loop {
        let now = chrono::Utc::now();
        let Ok(next) = cron.find_next_occurrence(&now, false) else { return };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let (p2, d2, n2) = (EtcdPaths { tls: p.tls.clone(), data: p.data.clone() }, dir.clone(), node.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<(PathBuf, Vec<PathBuf>)> {
            let f = save(&p2, &d2, "etcd-snapshot", &n2)?;
            Ok((f, prune(&d2, "etcd-snapshot", &n2, retention)?))
        })
        .await;
        match r {
            Ok(Ok((f, removed))) => {
                eprintln!("I Saved etcd snapshot {}; pruned {removed:?}", f.display())
            }
            Ok(Err(e)) => eprintln!("E scheduled etcd snapshot: {e:#}"),
            Err(e) => eprintln!("E scheduled etcd snapshot: {e}"),
        }
    }
}

/// `etcdutl snapshot restore` into a fresh one-member data dir (the old one moved aside).
pub fn restore(p: &EtcdPaths, snapshot: &Path, name: &str, node_ip: &str) -> Result<()> {
    if !snapshot.is_file() {
        bail!("etcd: snapshot path does not exist: {}", snapshot.display());
    }
    if p.data.exists() {
        let old = p.data.with_file_name(format!("etcd-old-{}", time::OffsetDateTime::now_utc().unix_timestamp()));
        std::fs::rename(&p.data, &old)?;
    }
    let peer = super::etcd::peer_url(node_ip);
    let out = std::process::Command::new("etcdutl")
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg(format!("--data-dir={}", p.data.display()))
        .arg(format!("--name={name}"))
        .arg(format!("--initial-cluster={name}={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .output()
        .context("running etcdutl (Debian's `etcd-client`)")?;
    if !out.status.success() {
        bail!("etcdutl snapshot restore: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_names_and_retention() {
        assert!(parse_cron(DEFAULT_CRON).is_ok());
        assert!(parse_cron("0 */5 * * *").is_ok());
        assert!(parse_cron("every day").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert_eq!(snapshot_name("etcd-snapshot", "node1", 1700000000), "etcd-snapshot-node1-1700000000");
        let d = tempfile::tempdir().unwrap();
        for ts in [5, 1, 3, 2, 4] {
            std::fs::write(d.path().join(snapshot_name("etcd-snapshot", "node1", ts)), "x").unwrap();
        }
        std::fs::write(d.path().join(snapshot_name("etcd-snapshot", "node2", 1)), "x").unwrap();
        let removed = prune(d.path(), "etcd-snapshot", "node1", 3).unwrap();
        assert_eq!(removed.len(), 2);
        let left: Vec<i64> = list(d.path(), Some("etcd-snapshot"), Some("node1")).iter().map(|x| x.2).collect();
        assert_eq!(left, vec![3, 4, 5]);
        assert!(d.path().join("etcd-snapshot-node2-1").exists(), "another node's snapshots are kept");
        assert!(ls_table(d.path()).starts_with("Name Location Size Created\n"));
    }
}
