//! `package "name" { version hold }`: state is read from dpkg's status file
//! (so it works under `--root`); changes go through apt via [`crate::system::System`].

use crate::fsutil::{node_path, read_optional};
use crate::spec::{AptSpec, PackageSpec};
use crate::system::AptOptions;
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

/// Written by `apt_repository` when a source changed, removed after the next
/// `apt-get update`: a new repository's packages are not in the old lists.
pub const LISTS_STALE: &str = "/var/lib/strata/agent/apt-lists-stale";

pub struct PackageTask {
    pub name: String,
    pub spec: PackageSpec,
    pub apt: AptSpec,
}

impl PackageTask {
    pub fn new(name: &str, spec: &PackageSpec, apt: Option<&AptSpec>) -> Self {
        PackageTask { name: name.to_string(), spec: spec.clone(), apt: apt.cloned().unwrap_or_default() }
    }
    fn err(&self, e: impl std::fmt::Display) -> TaskError {
        TaskError::new(format!("package {}: {e}", self.name))
    }
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
                return Err(self.err(format!("invalid version {v:?}")));
            }
        }
        Ok(())
    }
    fn current(&self, ctx: &Context) -> Result<Option<Installed>, TaskError> {
        installed(ctx.sys.root(), &self.name).map_err(|e| self.err(e))
    }
    fn needs_install(&self, cur: &Option<Installed>) -> bool {
        match (cur, &self.spec.version) {
            (None, _) => true,
            (Some(i), Some(v)) => &i.version != v,
            (Some(_), None) => false,
        }
    }
    fn options(&self) -> AptOptions {
        AptOptions {
            lock_timeout: self.apt.lock_timeout,
            allow_downgrades: self.spec.allow_downgrade,
            allow_change_held_packages: self.spec.allow_change_held,
        }
    }
    /// Why the package lists must be refreshed before installing, if they must.
    fn lists_stale(&self, ctx: &Context) -> Result<Option<String>, TaskError> {
        if ctx.path(LISTS_STALE).exists() {
            return Ok(Some("an apt source changed".into()));
        }
        Ok(match ctx.sys.apt_lists_age().map_err(|e| self.err(e))? {
            None => Some("no package lists".into()),
            Some(age) if age.as_secs() > self.apt.lists_max_age => {
                Some(format!("package lists older than {}s", self.apt.lists_max_age))
            }
            Some(_) => None,
        })
    }
    /// A version change of a held package needs the spec's consent; apt's own
    /// refusal would not say which key to set.
    fn check_hold(&self, cur: &Option<Installed>) -> Result<(), TaskError> {
        match cur {
            Some(i) if i.held && self.needs_install(cur) && !self.spec.allow_change_held => Err(self.err(format!(
                "held at {}; set package.{}.allow_change_held = true to change it to {}",
                i.version,
                self.name,
                self.spec.version.as_deref().unwrap_or("?")
            ))),
            _ => Ok(()),
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
        self.check_hold(&cur)?;
        let mut c = vec![];
        if self.needs_install(&cur) {
            if let Some(why) = self.lists_stale(ctx)? {
                c.push(Change::new(format!("apt-get update ({why})")));
            }
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
        let cur = self.current(ctx)?;
        self.check_hold(&cur)?;
        let opts = self.options();
        if self.needs_install(&cur) {
            if self.lists_stale(ctx)?.is_some() {
                ctx.sys.apt_update(&opts).map_err(|e| self.err(e))?;
                match std::fs::remove_file(ctx.path(LISTS_STALE)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.err(e)),
                    _ => {}
                }
            }
            ctx.sys.install_package(&self.name, self.spec.version.as_deref(), &opts).map_err(|e| self.err(e))?;
        }
        let held = self.current(ctx)?.is_some_and(|i| i.held);
        if let Some(h) = self.spec.hold.filter(|h| *h != held) {
            ctx.sys.set_package_hold(&self.name, h).map_err(|e| self.err(e))?;
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

    fn pkg(name: &str, version: Option<&str>, hold: Option<bool>) -> PackageTask {
        let spec = PackageSpec { version: version.map(str::to_string), hold, ..Default::default() };
        PackageTask::new(name, &spec, None)
    }

    fn fresh_lists(d: &Path) {
        std::fs::create_dir_all(d.join("var/lib/apt/lists")).unwrap();
        std::fs::write(d.join("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"), "")
            .unwrap();
    }

    fn updates(d: &Path) -> u32 {
        std::fs::read_to_string(d.join("var/lib/apt/lists/simulated_Packages")).map_or(0, |s| s.trim().parse().unwrap())
    }

    #[test]
    fn lists_are_updated_when_missing_old_or_marked_stale_and_only_to_install() {
        let (d, ctx) = testutil::root();
        seed(d.path());
        let t = pkg("kubelet", Some("1.35.0-1.1"), None);
        assert_eq!(t.check(&ctx).unwrap()[0].what, "apt-get update (no package lists)");
        t.apply(&ctx).unwrap();
        assert_eq!(updates(d.path()), 1);
        // Fresh lists: installing something else does not update again.
        let u = pkg("kubeadm", Some("1.35.0-1.1"), None);
        assert_eq!(u.check(&ctx).unwrap(), vec![Change::new("install kubeadm=1.35.0-1.1")]);
        // A changed source marks the lists stale.
        crate::fsutil::atomic_write(&ctx.path(LISTS_STALE), b"", 0o644, None).unwrap();
        assert_eq!(u.check(&ctx).unwrap()[0].what, "apt-get update (an apt source changed)");
        u.apply(&ctx).unwrap();
        assert_eq!(updates(d.path()), 2);
        assert!(!ctx.path(LISTS_STALE).exists());
        // Older than the configured age.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let f =
            std::fs::File::options().write(true).open(d.path().join("var/lib/apt/lists/simulated_Packages")).unwrap();
        f.set_modified(old).unwrap();
        let mut v = pkg("kubectl", None, None);
        assert_eq!(v.check(&ctx).unwrap()[0].what, "apt-get update (package lists older than 3600s)");
        v.apt.lists_max_age = 10_000;
        assert_eq!(v.check(&ctx).unwrap(), vec![Change::new("install kubectl=latest")]);
        // Nothing to install: no update, however old the lists.
        v.apt.lists_max_age = 0;
        assert!(pkg("kubelet", Some("1.35.0-1.1"), None).check(&ctx).unwrap().is_empty());
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
        fresh_lists(d.path());
        let hold = pkg("containerd", Some("1.6.20~ds1-1"), Some(true));
        assert_eq!(hold.check(&ctx).unwrap(), vec![Change::new("hold containerd")]);
        let up = pkg("runc", Some("1.1.12"), None);
        assert_eq!(up.check(&ctx).unwrap(), vec![Change::new("install runc=1.1.12")]);
        hold.apply(&ctx).unwrap();
        up.apply(&ctx).unwrap();
        assert!(hold.check(&ctx).unwrap().is_empty());
        assert!(up.check(&ctx).unwrap().is_empty());
        assert!(installed(d.path(), "containerd").unwrap().unwrap().held);
        // Other stanzas survive the edit.
        let status = std::fs::read_to_string(d.path().join("var/lib/dpkg/status")).unwrap();
        assert!(status.contains("Architecture: amd64"));
        // A held package changes version only when the spec allows it, and stays held.
        let mut newer = pkg("containerd", Some("1.7.0"), Some(true));
        let e = newer.check(&ctx).unwrap_err().to_string();
        assert!(e.contains("package.containerd.allow_change_held"), "{e}");
        newer.spec.allow_change_held = true;
        assert_eq!(newer.check(&ctx).unwrap(), vec![Change::new("containerd 1.6.20~ds1-1 -> 1.7.0")]);
        newer.apply(&ctx).unwrap();
        assert_eq!(installed(d.path(), "containerd").unwrap(), Some(Installed { version: "1.7.0".into(), held: true }));
    }

    #[test]
    fn option_like_names_are_rejected() {
        let (_d, ctx) = testutil::root();
        let t = pkg("--purge", None, None);
        assert!(t.check(&ctx).unwrap_err().to_string().contains("--purge"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges(name in "[a-z][a-z0-9+.-]{1,10}", version in "[0-9]{1,2}\\.[0-9]{1,2}(-[0-9])?", hold in proptest::option::of(any::<bool>())) {
            let (d, ctx) = testutil::root();
            seed(d.path());
            fresh_lists(d.path());
            let t = pkg(&name, Some(&version), hold);
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
