//! etcd snapshots: recognised by their header, saved on a node with `etcdctl snapshot
//! save` and checked there before anything relies on them. `etcdctl snapshot save`
//! writes etcd's bbolt database: its first page is a bbolt meta page (page flags 0x04,
//! then the magic 0xED0CDAED and version 2, little-endian).

use std::io::Read;

use anyhow::{anyhow, bail};
use serde::Deserialize;

use super::{etcdctl, ClientFiles};
use crate::node::{quote, Node};

const META_PAGE_FLAG: u16 = 0x04;
const BBOLT_MAGIC: u32 = 0xED0C_DAED;
const BBOLT_VERSION: u32 = 2;
/// What the header check reads.
const HEADER_LEN: usize = 24;
/// A snapshot streams the whole database: far longer than one etcdctl request.
const SAVE_TIMEOUT_SECS: u32 = 600;

/// `Ok` when `head` (the first bytes of a file) is a bbolt database header.
pub fn check_header(head: &[u8]) -> Result<(), &'static str> {
    if head.len() < HEADER_LEN {
        return Err("too short");
    }
    let flags = u16::from_le_bytes([head[8], head[9]]);
    let magic = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
    let version = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
    if flags != META_PAGE_FLAG || magic != BBOLT_MAGIC || version != BBOLT_VERSION {
        return Err("no bbolt database header");
    }
    Ok(())
}

/// `Ok` when `path` (on this machine) is a readable etcd snapshot; else why not, for the user.
pub fn check(path: &str) -> Result<(), String> {
    let path = crate::node::expand(path);
    let mut f = std::fs::File::open(&path).map_err(|e| format!("Cannot open {path}: {e}."))?;
    let mut head = [0u8; HEADER_LEN];
    f.read_exact(&mut head).map_err(|_| format!("{path} is not an etcd snapshot (too short)."))?;
    check_header(&head).map_err(|_| {
        format!("{path} is not an etcd snapshot (no bbolt database header; make one with `etcdctl snapshot save`).")
    })
}

/// What `etcdctl snapshot status -w json` says of a snapshot file.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub hash: u64,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// A snapshot saved and checked on a node.
#[derive(Debug, PartialEq)]
pub struct Saved {
    pub path: String,
    /// The endpoint it was streamed from.
    pub endpoint: String,
    pub bytes: u64,
    pub status: Status,
}

/// Parses the check script's output (see [`save`]): the file size, the header as hex,
/// then `etcdctl snapshot status -w json`; `Err` says what is wrong with the file.
pub fn parse_check(out: &str) -> Result<(u64, Status), String> {
    let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty());
    let size: u64 = lines.next().and_then(|l| l.parse().ok()).ok_or("its size could not be read")?;
    if size == 0 {
        return Err("it is empty".into());
    }
    let hex = lines.next().ok_or("its header could not be read")?;
    let head = hex::decode(hex).map_err(|_| format!("its header could not be read ({hex:?})"))?;
    check_header(&head).map_err(|e| format!("it is not an etcd snapshot ({e})"))?;
    let json: String = lines.collect::<Vec<_>>().join("\n");
    let status: Status = serde_json::from_str(&json)
        .map_err(|e| format!("`etcdctl snapshot status` did not describe it ({e}): {json}"))?;
    if status.total_size == 0 || status.total_key == 0 {
        return Err(format!("`etcdctl snapshot status` reports no data: {json}"));
    }
    Ok((size, status))
}

/// Saves a snapshot of the etcd cluster at `endpoints` into `path` on `node`, through
/// the first endpoint that answers (a snapshot is streamed from one member), with the
/// client identity `files` found on that node. The file appears under its name only
/// once it is complete, non-empty, a bbolt database and `etcdctl snapshot status`
/// reads it; otherwise the error says why and nothing is left at `path`.
pub async fn save(node: &Node, files: &ClientFiles<'_>, endpoints: &[String], path: &str) -> anyhow::Result<Saved> {
    let dir = path.rsplit_once('/').map(|(d, _)| d).filter(|d| !d.is_empty()).unwrap_or("/");
    let part = format!("{path}.part");
    let present = node.run("looking for etcdctl", "command -v etcdctl").await?;
    if present.status != 0 {
        bail!(
            "etcdctl is not installed on {}: it takes the etcd snapshot (install Debian's etcd-client there, or \
             let install_packages install it)",
            node.label()
        );
    }
    let mut failures = Vec::new();
    let mut from = None;
    for ep in endpoints {
        let cmd = format!(
            "set -e; mkdir -p {d}; chmod 0700 {d}; {ctl} snapshot save {p}",
            d = quote(dir),
            ctl = etcdctl(files, ep, SAVE_TIMEOUT_SECS),
            p = quote(&part),
        );
        let out = node.run("saving an etcd snapshot", &cmd).await?;
        if out.status == 0 {
            from = Some(ep.clone());
            break;
        }
        let why = format!("{}\n{}", out.stdout.trim(), out.stderr.trim());
        let tail: Vec<&str> = why.trim().lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
        failures.push(format!("{ep}: {}", tail.join(" ")));
    }
    let Some(endpoint) = from else {
        let _ = node.run("removing a partial snapshot", &format!("rm -f {}", quote(&part))).await;
        bail!("the etcd snapshot failed on {} through every endpoint: {}", node.label(), failures.join("; "));
    };
    let check = format!(
        "stat -c %s {p} && od -An -tx1 -N{HEADER_LEN} {p} | tr -d ' \\n' && echo && ETCDCTL_API=3 etcdctl snapshot \
         status {p} -w json",
        p = quote(&part)
    );
    let out = node.run("checking the etcd snapshot", &check).await?;
    let checked = if out.status == 0 { parse_check(&out.stdout) } else { Err(out.stderr.trim().to_string()) };
    let (bytes, status) = match checked {
        Ok(c) => c,
        Err(why) => {
            let _ = node.run("removing a bad snapshot", &format!("rm -f {}", quote(&part))).await;
            return Err(anyhow!("the etcd snapshot saved on {} from {endpoint} is unusable: {why}", node.label()));
        }
    };
    node.run_ok("keeping the etcd snapshot", &format!("mv {} {}", quote(&part), quote(path))).await?;
    Ok(Saved { path: path.to_string(), endpoint, bytes, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bbolt_header_is_a_snapshot_and_anything_else_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.db");
        let mut bytes = vec![0u8; 4096];
        bytes[8..10].copy_from_slice(&META_PAGE_FLAG.to_le_bytes());
        bytes[16..20].copy_from_slice(&BBOLT_MAGIC.to_le_bytes());
        bytes[20..24].copy_from_slice(&BBOLT_VERSION.to_le_bytes());
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(check(good.to_str().unwrap()), Ok(()));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database, just some text that is long enough").unwrap();
        assert!(check(text.to_str().unwrap()).unwrap_err().contains("not an etcd snapshot"));
        assert!(check(dir.path().join("missing.db").to_str().unwrap()).unwrap_err().contains("Cannot open"));
    }

    #[test]
    fn the_check_script_output_is_read_and_a_bad_file_refused() {
        let head = "00000000000000000400000000000000edda0ced02000000";
        let status = r#"{"hash":1234,"revision":42,"totalKey":17,"totalSize":20480}"#;
        let (size, s) = parse_check(&format!("20480\n{head}\n{status}\n")).unwrap();
        assert_eq!(size, 20480);
        assert_eq!(s, Status { hash: 1234, revision: 42, total_key: 17, total_size: 20480 });
        assert_eq!(parse_check(&format!("0\n{head}\n{status}")).unwrap_err(), "it is empty");
        let e = parse_check(&format!("20480\n{}\n{status}", "00".repeat(24))).unwrap_err();
        assert!(e.contains("not an etcd snapshot"), "{e}");
        let e = parse_check(&format!("20480\n{head}\nError: snapshot file has no data")).unwrap_err();
        assert!(e.contains("did not describe it"), "{e}");
        let e = parse_check(&format!("20480\n{head}\n{}", r#"{"hash":1,"revision":1,"totalKey":0,"totalSize":0}"#))
            .unwrap_err();
        assert!(e.contains("no data"), "{e}");
    }
}
