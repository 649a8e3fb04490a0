//! Recognising an etcd snapshot file before any node is touched. `etcdctl snapshot
//! save` writes etcd's bbolt database: its first page is a bbolt meta page (page flags
//! 0x04, then the magic 0xED0CDAED and version 2, little-endian).

use std::io::Read;

const META_PAGE_FLAG: u16 = 0x04;
const BBOLT_MAGIC: u32 = 0xED0C_DAED;
const BBOLT_VERSION: u32 = 2;

/// `Ok` when `path` is a readable etcd snapshot; else why not, for the user.
pub fn check(path: &str) -> Result<(), String> {
    let path = crate::node::expand(path);
    let mut f = std::fs::File::open(&path).map_err(|e| format!("Cannot open {path}: {e}."))?;
    let mut head = [0u8; 24];
    f.read_exact(&mut head).map_err(|_| format!("{path} is not an etcd snapshot (too short)."))?;
    let flags = u16::from_le_bytes([head[8], head[9]]);
    let magic = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
    let version = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
    if flags != META_PAGE_FLAG || magic != BBOLT_MAGIC || version != BBOLT_VERSION {
        return Err(format!(
            "{path} is not an etcd snapshot (no bbolt database header; make one with `etcdctl snapshot save`)."
        ));
    }
    Ok(())
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
}
