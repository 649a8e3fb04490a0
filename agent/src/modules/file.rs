//! `file "/path" { content mode owner group notify }`

use crate::fsutil::FileState;
use crate::spec::{AbsPath, FileSpec};
use crate::task::{Change, Context, Task, TaskError};

pub struct FileTask {
    pub state: FileState,
    pub notify: Vec<String>,
}

impl FileTask {
    pub fn new(path: &AbsPath, spec: &FileSpec) -> Self {
        FileTask {
            state: FileState {
                path: path.to_string(),
                content: spec.content.clone().into_bytes(),
                mode: spec.mode.map(|m| m.0),
                owner: spec.owner.clone(),
                group: spec.group.clone(),
            },
            notify: spec.notify.iter().map(|s| super::unit_name(s)).collect(),
        }
    }
}

impl Task for FileTask {
    fn name(&self) -> String {
        format!("file {}", self.state.path)
    }
    fn module(&self) -> &'static str {
        "file"
    }
    fn notify(&self) -> Vec<String> {
        self.notify.clone()
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        self.state.check(&ctx.root)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.state.apply(&ctx.root)
    }
    fn managed(&self) -> Vec<crate::managed::Managed> {
        vec![crate::managed::Managed::File(self.state.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::spec::Mode;
    use proptest::prelude::*;

    #[test]
    fn creates_updates_and_notifies() {
        let (d, ctx) = testutil::root();
        let spec = FileSpec {
            content: "hi\n".into(),
            mode: Some(Mode(0o640)),
            notify: vec!["kubelet".into()],
            ..Default::default()
        };
        let t = FileTask::new(&AbsPath::try_from("/etc/motd").unwrap(), &spec);
        assert_eq!(t.notify(), vec!["kubelet.service"]);
        assert_eq!(t.check(&ctx).unwrap()[0].what, "create /etc/motd");
        t.apply(&ctx).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("etc/motd")).unwrap(), "hi\n");
        assert!(t.check(&ctx).unwrap().is_empty());
        std::fs::write(d.path().join("etc/motd"), "changed\n").unwrap();
        let c = t.check(&ctx).unwrap();
        assert!(c[0].diff.as_deref().unwrap().contains("-changed\n+hi\n"), "{:?}", c);
    }

    #[test]
    fn unknown_owner_is_an_error_naming_the_file() {
        let (_d, ctx) = testutil::root();
        let spec = FileSpec { content: "x".into(), owner: Some("ghost".into()), ..Default::default() };
        let t = FileTask::new(&AbsPath::try_from("/etc/x").unwrap(), &spec);
        let e = t.check(&ctx).unwrap_err().to_string();
        assert!(e.contains("/etc/x") && e.contains("ghost"), "{e}");
    }

    #[test]
    fn refuses_to_replace_a_directory() {
        let (d, ctx) = testutil::root();
        std::fs::create_dir_all(d.path().join("etc/dir")).unwrap();
        let t = FileTask::new(&AbsPath::try_from("/etc/dir").unwrap(), &FileSpec::default());
        assert!(t.check(&ctx).unwrap_err().to_string().contains("not a regular file"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn check_is_read_only_and_apply_idempotent(content in ".{0,80}", name in "[a-z]{1,8}") {
            let (d, ctx) = testutil::root();
            let path = AbsPath::try_from(format!("/etc/{name}.conf")).unwrap();
            let t = FileTask::new(&path, &FileSpec { content: content.clone(), ..Default::default() });
            prop_assert!(!t.check(&ctx).unwrap().is_empty());
            let p = d.path().join(format!("etc/{name}.conf"));
            prop_assert!(!p.exists());
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
            t.apply(&ctx).unwrap();
            prop_assert_eq!(std::fs::read_to_string(d.path().join(format!("etc/{name}.conf"))).unwrap(), content);
        }
    }
}
