//! File helpers shared by all modules: paths under the root, atomic writes,
//! owner lookup in the root's passwd/group, and [`FileState`], the
//! check/apply of one managed file that file-producing modules build on.

use crate::task::{Change, TaskError};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `abs` (a node path like `/etc/motd`) placed under `root`.
pub fn node_path(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

pub fn read_optional(p: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write `content` to `path` so that readers see either the old or the new
/// file, never a partial one: temp file in the same directory, permissions
/// and owner set on the temp file, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".strata-").tempfile_in(dir)?;
    tmp.write_all(content)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

/// Resolve a user (or group, with `group = true`) name through the root's
/// `/etc/passwd` (`/etc/group`), so `--root` uses the target's accounts.
/// A numeric id is accepted as is.
pub fn lookup_id(root: &Path, name: &str, group: bool) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let db = if group { "/etc/group" } else { "/etc/passwd" };
    let text = read_optional(&node_path(root, db)).map_err(|e| format!("reading {db}: {e}"))?.unwrap_or_default();
    // Both files are `name:x:id:...` lines (colon-separated, id in field 3).
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            (n == name).then_some(id)
        })
        .next()
        .ok_or_else(|| format!("{} {name:?} not found in {db}", if group { "group" } else { "owner" }))
}

pub fn unified_diff(path: &str, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string()
}

/// Desired state of one file. `owner`/`group`/`mode` left `None` are not managed
/// (new files get mode 0644 and the agent's owner).
#[derive(Debug, Clone, PartialEq)]
pub struct FileState {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl FileState {
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        FileState { path: path.into(), content: content.into(), mode: None, owner: None, group: None }
    }

    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    fn ids(&self, root: &Path) -> Result<(Option<u32>, Option<u32>), TaskError> {
        let err = |e| TaskError::new(format!("{}: {e}", self.path));
        let uid = self.owner.as_deref().map(|o| lookup_id(root, o, false)).transpose().map_err(err)?;
        let gid = self.group.as_deref().map(|g| lookup_id(root, g, true)).transpose().map_err(err)?;
        Ok((uid, gid))
    }

    pub fn check(&self, root: &Path) -> Result<Vec<Change>, TaskError> {
        let (uid, gid) = self.ids(root)?;
        let p = node_path(root, &self.path);
        let io = |e: io::Error| TaskError::new(format!("{}: {e}", self.path));
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let Some(meta) = meta else {
            return Ok(vec![Change::file(
                &self.path,
                format!("create {}", self.path),
                unified_diff(&self.path, b"", &self.content),
            )]);
        };
        if !meta.is_file() {
            return Err(TaskError::new(format!("{}: exists and is not a regular file", self.path)));
        }
        let mut changes = vec![];
        let old = fs::read(&p).map_err(io)?;
        if old != self.content {
            changes.push(Change::file(
                &self.path,
                format!("update {}", self.path),
                unified_diff(&self.path, &old, &self.content),
            ));
        }
        changes.extend(attr_changes(&self.path, &meta, self.mode, uid, gid));
        Ok(changes)
    }

    pub fn apply(&self, root: &Path) -> Result<(), TaskError> {
        let (uid, gid) = self.ids(root)?;
        let p = node_path(root, &self.path);
        let err = |e: io::Error| TaskError::new(format!("{}: {e}", self.path));
        let old = read_optional(&p).map_err(err)?;
        if old.as_deref() != Some(&self.content[..]) {
            // Keep existing permissions/owner of a replaced file unless managed.
            let meta = fs::metadata(&p).ok();
            let mode = self.mode.or(meta.as_ref().map(|m| m.mode() & 0o7777)).unwrap_or(0o644);
            let uid = uid.or(meta.as_ref().map(|m| m.uid()));
            let gid = gid.or(meta.as_ref().map(|m| m.gid()));
            let owner = match (uid, gid) {
                (None, None) => None,
                (u, g) => Some((u.unwrap_or_else(current_uid), g.unwrap_or_else(current_gid))),
            };
            atomic_write(&p, &self.content, mode, owner).map_err(err)
        } else {
            fix_attrs(&p, self.mode, uid, gid).map_err(err)
        }
    }
}

/// What would change across a set of managed files (tasks that own several files).
pub fn check_files(files: &[FileState], root: &Path) -> Result<Vec<Change>, TaskError> {
    let mut changes = Vec::new();
    for f in files {
        changes.extend(f.check(root)?);
    }
    Ok(changes)
}

pub fn apply_files(files: &[FileState], root: &Path) -> Result<(), TaskError> {
    files.iter().try_for_each(|f| f.apply(root))
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}
fn current_gid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.gid()).unwrap_or(0)
}

/// Mode/owner differences between `meta` and the wanted values.
pub fn attr_changes(
    path: &str,
    meta: &fs::Metadata,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Vec<Change> {
    let mut c = vec![];
    let cur = meta.mode() & 0o7777;
    if let Some(m) = mode.filter(|m| *m != cur) {
        c.push(Change::at(path, format!("mode {cur:04o} -> {m:04o}")));
    }
    if let Some(u) = uid.filter(|u| *u != meta.uid()) {
        c.push(Change::at(path, format!("owner {} -> {u}", meta.uid())));
    }
    if let Some(g) = gid.filter(|g| *g != meta.gid()) {
        c.push(Change::at(path, format!("group {} -> {g}", meta.gid())));
    }
    c
}

pub fn fix_attrs(p: &Path, mode: Option<u32>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::lchown(p, uid, gid)?;
    }
    if let Some(m) = mode {
        fs::set_permissions(p, fs::Permissions::from_mode(m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn root_with_accounts() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nbin:x:2:2::/bin:/usr/sbin/nologin\n")
            .unwrap();
        fs::write(d.path().join("etc/group"), "root:x:0:\nbin:x:2:\n").unwrap();
        d
    }

    #[test]
    fn lookup_uses_the_roots_accounts() {
        let d = root_with_accounts();
        assert_eq!(lookup_id(d.path(), "bin", false), Ok(2));
        assert_eq!(lookup_id(d.path(), "bin", true), Ok(2));
        assert_eq!(lookup_id(d.path(), "1234", false), Ok(1234));
        let e = lookup_id(d.path(), "nobody2", false).unwrap_err();
        assert!(e.contains("nobody2") && e.contains("/etc/passwd"), "{e}");
    }

    #[test]
    fn file_state_create_then_converged() {
        let d = root_with_accounts();
        let mut f = FileState::new("/etc/a/b.conf", "x=1\n").with_mode(0o600);
        f.owner = Some("bin".into());
        let c = f.check(d.path()).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].diff.as_deref().unwrap().contains("+x=1"));
        f.apply(d.path()).unwrap();
        assert!(f.check(d.path()).unwrap().is_empty());
        let m = fs::metadata(d.path().join("etc/a/b.conf")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 2));
        // Only the mode drifts: one change, content untouched.
        fs::set_permissions(d.path().join("etc/a/b.conf"), fs::Permissions::from_mode(0o644)).unwrap();
        let c = f.check(d.path()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].what, "mode 0644 -> 0600");
        f.apply(d.path()).unwrap();
        assert!(f.check(d.path()).unwrap().is_empty());
    }

    #[test]
    fn replacing_content_keeps_unmanaged_mode() {
        let d = root_with_accounts();
        let p = d.path().join("etc/x");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        FileState::new("/etc/x", "new").apply(d.path()).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        // No temp files left behind by the atomic write.
        let leftovers: Vec<_> = fs::read_dir(d.path().join("etc"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".strata-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        // For any old/new contents: apply makes check report nothing, and the
        // diff is empty exactly when the contents are equal.
        #[test]
        fn apply_converges(old in proptest::collection::vec(any::<u8>(), 0..64), new in "[a-z\n]{0,64}", mode in 0o400u32..0o777) {
            let d = root_with_accounts();
            fs::write(d.path().join("etc/f"), &old).unwrap();
            let f = FileState::new("/etc/f", new.clone()).with_mode(mode);
            f.apply(d.path()).unwrap();
            prop_assert!(f.check(d.path()).unwrap().is_empty());
            prop_assert_eq!(fs::read(d.path().join("etc/f")).unwrap(), new.as_bytes());
            prop_assert_eq!(unified_diff("/f", new.as_bytes(), new.as_bytes()).is_empty(), true);
        }
    }
}
