//! `package "name" { version hold }`: state is read from dpkg's status file
//! (so it works under `--root`); changes go through apt via [`crate::system::System`].

use crate::fsutil::{node_path, read_optional};
use crate::spec::PackageSpec;
use crate::task::{Change, Context, Task, TaskError};
use std::path::Path;

pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    pub held: bool,
}

/// Installed packages as dpkg sees them: `Status: <want> <flag> <state>`,
/// installed when state is `installed`, held when want is `hold`.
pub fn installed(root: &Path, name: &str) -> Result<Option<Installed>, String> {
    let p = node_path(root, DPKG_STATUS);
    let Some(text) = read_optional(&p).map_err(|e| format!("{DPKG_STATUS}: {e}"))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&text);
    let (doc, errors) = deb822_lossless::Deb822::from_str_relaxed(&text);
    if let Some(e) = errors.first() {
        return Err(format!("{DPKG_STATUS}: {e}"));
    }
    for para in doc.paragraphs() {
        if para.get("Package").as_deref() != Some(name) {
            continue;
        }
        let status = para.get("Status").unwrap_or_default();
        let words: Vec<&str> = status.split_whitespace().collect();
        if words.get(2) != Some(&"installed") {
            continue;
        }
        return Ok(Some(Installed {
            version: para.get("Version").unwrap_or_default(),
            held: words.first() == Some(&"hold"),
        }));
    }
    Ok(None)
}

pub struct PackageTask {
    pub name: String,
    pub spec: PackageSpec,
}

impl PackageTask {
    fn validate(&self) -> Result<(), TaskError> {
        // Debian policy: lowercase alnum and + - . ; reject anything apt might read as an option.
        let ok = self.name.len() > 1
            && self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !ok {
            return Err(TaskError::new(format!("package {:?}: invalid Debian package name", self.name)));
        }
        if let Some(v) = &self.spec.version {
            if v.is_empty() || v.contains(char::is_whitespace) || v.starts_with('-') {
                return Err(TaskError::new(format!("package {}: invalid version {v:?}", self.name)));
            }
        }
        Ok(())
    }
    fn current(&self, ctx: &Context) -> Result<Option<Installed>, TaskError> {
        installed(ctx.sys.root(), &self.name).map_err(|e| TaskError::new(format!("package {}: {e}", self.name)))
    }
    fn needs_install(&self, cur: &Option<Installed>) -> bool {
        match (cur, &self.spec.version) {
            (None, _) => true,
            (Some(i), Some(v)) => &i.version != v,
            (Some(_), None) => false,
        }
    }
}

impl Task for PackageTask {
    fn name(&self) -> String {
        format!("package {}", self.name)
    }
    fn module(&self) -> &'static str {
        "package"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        self.validate()?;
        let cur = self.current(ctx)?;
        let mut c = vec![];
        if self.needs_install(&cur) {
            let want = self.spec.version.as_deref().unwrap_or("latest");
            c.push(Change::new(match &cur {
                None => format!("install {}={want}", self.name),
                Some(i) => format!("{} {} -> {want}", self.name, i.version),
            }));
        }
        let held = cur.as_ref().is_some_and(|i| i.held);
        if let Some(h) = self.spec.hold.filter(|h| *h != held) {
            c.push(Change::new(format!("{} {}", if h { "hold" } else { "unhold" }, self.name)));
        }
        Ok(c)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.validate()?;
        let err = |e| TaskError::new(format!("package {}: {e}", self.name));
        let cur = self.current(ctx)?;
        if self.needs_install(&cur) {
            ctx.sys.install_package(&self.name, self.spec.version.as_deref()).map_err(err)?;
        }
        let held = self.current(ctx)?.is_some_and(|i| i.held);
        if let Some(h) = self.spec.hold.filter(|h| *h != held) {
            ctx.sys.set_package_hold(&self.name, h).map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;

    const STATUS: &str = "Package: containerd\nStatus: install ok installed\nVersion: 1.6.20~ds1-1\nArchitecture: amd64\n\nPackage: runc\nStatus: deinstall ok config-files\nVersion: 1.1.5\n";

    fn seed(d: &Path) {
        std::fs::create_dir_all(d.join("var/lib/dpkg")).unwrap();
        std::fs::write(d.join("var/lib/dpkg/status"), STATUS).unwrap();
    }

    #[test]
    fn reads_dpkg_status() {
        let (d, _ctx) = testutil::root();
        seed(d.path());
        assert_eq!(
            installed(d.path(), "containerd").unwrap(),
            Some(Installed { version: "1.6.20~ds1-1".into(), held: false })
        );
        assert_eq!(installed(d.path(), "runc").unwrap(), None, "config-files only is not installed");
        assert_eq!(installed(d.path(), "kubelet").unwrap(), None);
    }

    #[test]
    fn hold_upgrade_and_install_converge() {
        let (d, ctx) = testutil::root();
        seed(d.path());
        let hold = PackageTask {
            name: "containerd".into(),
            spec: PackageSpec { version: Some("1.6.20~ds1-1".into()), hold: Some(true) },
        };
        assert_eq!(hold.check(&ctx).unwrap(), vec![Change::new("hold containerd")]);
        let up = PackageTask { name: "runc".into(), spec: PackageSpec { version: Some("1.1.12".into()), hold: None } };
        assert_eq!(up.check(&ctx).unwrap(), vec![Change::new("install runc=1.1.12")]);
        hold.apply(&ctx).unwrap();
        up.apply(&ctx).unwrap();
        assert!(hold.check(&ctx).unwrap().is_empty());
        assert!(up.check(&ctx).unwrap().is_empty());
        assert!(installed(d.path(), "containerd").unwrap().unwrap().held);
        // Other stanzas survive the edit.
        let status = std::fs::read_to_string(d.path().join("var/lib/dpkg/status")).unwrap();
        assert!(status.contains("Architecture: amd64"));
        // A held package is upgraded and stays held.
        let newer = PackageTask {
            name: "containerd".into(),
            spec: PackageSpec { version: Some("1.7.0".into()), hold: Some(true) },
        };
        assert_eq!(newer.check(&ctx).unwrap(), vec![Change::new("containerd 1.6.20~ds1-1 -> 1.7.0")]);
        newer.apply(&ctx).unwrap();
        assert_eq!(installed(d.path(), "containerd").unwrap(), Some(Installed { version: "1.7.0".into(), held: true }));
    }

    #[test]
    fn option_like_names_are_rejected() {
        let (_d, ctx) = testutil::root();
        let t = PackageTask { name: "--purge".into(), spec: PackageSpec::default() };
        assert!(t.check(&ctx).unwrap_err().to_string().contains("--purge"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges(name in "[a-z][a-z0-9+.-]{1,10}", version in "[0-9]{1,2}\\.[0-9]{1,2}(-[0-9])?", hold in proptest::option::of(any::<bool>())) {
            let (d, ctx) = testutil::root();
            seed(d.path());
            let t = PackageTask { name, spec: PackageSpec { version: Some(version), hold } };
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
