//! `directory "/path" { mode owner group }`

use crate::fsutil::{attr_changes, fix_attrs, lookup_id};
use crate::spec::{AbsPath, DirectorySpec};
use crate::task::{Change, Context, Task, TaskError};
use std::fs;
use std::io;

pub struct DirectoryTask {
    pub path: String,
    pub spec: DirectorySpec,
}

impl DirectoryTask {
    pub fn new(path: &AbsPath, spec: &DirectorySpec) -> Self {
        DirectoryTask { path: path.to_string(), spec: spec.clone() }
    }
    fn ids(&self, ctx: &Context) -> Result<(Option<u32>, Option<u32>), TaskError> {
        let err = |e| TaskError::new(format!("directory {}: {e}", self.path));
        let uid = self.spec.owner.as_deref().map(|o| lookup_id(&ctx.root, o, false)).transpose().map_err(err)?;
        let gid = self.spec.group.as_deref().map(|g| lookup_id(&ctx.root, g, true)).transpose().map_err(err)?;
        Ok((uid, gid))
    }
}

impl Task for DirectoryTask {
    fn name(&self) -> String {
        format!("directory {}", self.path)
    }
    fn module(&self) -> &'static str {
        "directory"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        let (uid, gid) = self.ids(ctx)?;
        match fs::symlink_metadata(ctx.path(&self.path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(vec![Change::at(&self.path, format!("create {}", self.path))])
            }
            Err(e) => Err(TaskError::new(format!("directory {}: {e}", self.path))),
            Ok(m) if !m.is_dir() => {
                Err(TaskError::new(format!("directory {}: exists and is not a directory", self.path)))
            }
            Ok(m) => Ok(attr_changes(&self.path, &m, self.spec.mode.map(|m| m.0), uid, gid)),
        }
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        let (uid, gid) = self.ids(ctx)?;
        let p = ctx.path(&self.path);
        let err = |e: io::Error| TaskError::new(format!("directory {}: {e}", self.path));
        fs::create_dir_all(&p).map_err(err)?;
        fix_attrs(&p, self.spec.mode.map(|m| m.0), uid, gid).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::spec::Mode;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_and_fixes_mode() {
        let (d, ctx) = testutil::root();
        let t = DirectoryTask::new(
            &AbsPath::try_from("/etc/foo/bar").unwrap(),
            &DirectorySpec { mode: Some(Mode(0o700)), ..Default::default() },
        );
        assert_eq!(t.check(&ctx).unwrap().len(), 1);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        fs::set_permissions(d.path().join("etc/foo/bar"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(t.check(&ctx).unwrap()[0].what, "mode 0755 -> 0700");
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let (d, ctx) = testutil::root();
        fs::write(d.path().join("etc/foo"), "").unwrap();
        let t = DirectoryTask::new(&AbsPath::try_from("/etc/foo").unwrap(), &DirectorySpec::default());
        assert!(t.check(&ctx).unwrap_err().to_string().contains("not a directory"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges_for_any_mode(mode in 0o500u32..0o777, depth in 1usize..4) {
            let (_d, ctx) = testutil::root();
            let path = format!("/srv{}", "/x".repeat(depth));
            let t = DirectoryTask::new(&AbsPath::try_from(path).unwrap(), &DirectorySpec { mode: Some(Mode(mode)), ..Default::default() });
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
