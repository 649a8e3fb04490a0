//! `kernel_modules = [...]`: listed in modules-load.d (loaded at boot) and
//! loaded now.

use crate::fsutil::FileState;
use crate::system::module_name;
use crate::task::{Change, Context, Task, TaskError};

pub const MODULES_LOAD: &str = "/etc/modules-load.d/strata.conf";

pub struct KernelModulesTask {
    pub modules: Vec<String>,
}

impl KernelModulesTask {
    pub fn conf(&self) -> FileState {
        let mut s = String::from("# Managed by strata-agent.\n");
        for m in &self.modules {
            s.push_str(m);
            s.push('\n');
        }
        FileState::new(MODULES_LOAD, s).with_mode(0o644)
    }
    fn validate(&self) -> Result<(), TaskError> {
        for m in &self.modules {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(TaskError::new(format!("kernel_modules: invalid module name {m:?}")));
            }
        }
        Ok(())
    }
    fn missing(&self, ctx: &Context) -> Result<Vec<&String>, TaskError> {
        // Without /proc/modules the kernel has no loadable module support
        // (CONFIG_MODULES=n): what it has is built in, and there is nothing to load.
        if !ctx.root.join("proc/modules").exists() {
            return Ok(vec![]);
        }
        let loaded = ctx.sys.loaded_modules().map_err(TaskError::new)?;
        let builtin = ctx.sys.builtin_modules().map_err(TaskError::new)?;
        Ok(self
            .modules
            .iter()
            .map(|m| (m, module_name(m)))
            .filter(|(_, n)| !loaded.contains(n) && !builtin.contains(n))
            .map(|(m, _)| m)
            .collect())
    }
}

impl Task for KernelModulesTask {
    fn name(&self) -> String {
        "kernel modules".into()
    }
    fn module(&self) -> &'static str {
        "kernel_modules"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        self.validate()?;
        let mut c = self.conf().check(&ctx.root)?;
        c.extend(self.missing(ctx)?.into_iter().map(|m| Change::new(format!("load module {m}"))));
        Ok(c)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.validate()?;
        self.conf().apply(&ctx.root)?;
        for m in self.missing(ctx)? {
            ctx.sys.load_module(m).map_err(|e| TaskError::new(format!("kernel module {m}: {e}")))?;
        }
        Ok(())
    }
    fn managed(&self) -> Vec<crate::managed::Managed> {
        vec![crate::managed::Managed::File(MODULES_LOAD.into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;

    #[test]
    fn persists_and_loads_only_missing() {
        let (d, ctx) = testutil::root();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::fs::write(d.path().join("proc/modules"), "overlay 151552 0 - Live 0x0\n").unwrap();
        let t = KernelModulesTask { modules: vec!["overlay".into(), "br_netfilter".into()] };
        let whats: Vec<String> = t.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(whats, vec!["create /etc/modules-load.d/strata.conf", "load module br_netfilter"]);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/modules-load.d/strata.conf")).unwrap(),
            "# Managed by strata-agent.\noverlay\nbr_netfilter\n"
        );
    }

    #[test]
    fn built_in_modules_count_as_loaded() {
        let (d, ctx) = testutil::root();
        std::fs::create_dir_all(d.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(d.path().join("proc/modules"), "").unwrap();
        std::fs::write(d.path().join("proc/sys/kernel/osrelease"), "6.12.0-1-amd64\n").unwrap();
        let dir = d.path().join("lib/modules/6.12.0-1-amd64");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br-netfilter.ko\n",
        )
        .unwrap();
        let t = KernelModulesTask { modules: vec!["overlay".into(), "br_netfilter".into(), "nf_conntrack".into()] };
        let whats: Vec<String> = t.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(whats, vec!["create /etc/modules-load.d/strata.conf", "load module nf_conntrack"]);
        // Another kernel's list does not count.
        std::fs::write(d.path().join("proc/sys/kernel/osrelease"), "6.1.0-18-amd64\n").unwrap();
        assert_eq!(t.check(&ctx).unwrap().len(), 4);
    }

    #[test]
    fn a_kernel_without_loadable_modules_has_nothing_to_load() {
        let (d, ctx) = testutil::root();
        let t = KernelModulesTask { modules: vec!["overlay".into(), "br_netfilter".into()] };
        let whats: Vec<String> = t.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(whats, vec!["create /etc/modules-load.d/strata.conf"]);
        t.apply(&ctx).unwrap();
        assert!(d.path().join("etc/modules-load.d/strata.conf").exists());
        assert!(t.check(&ctx).unwrap().is_empty());
    }

    #[test]
    fn rejects_injection() {
        let (_d, ctx) = testutil::root();
        let t = KernelModulesTask { modules: vec!["a b".into()] };
        assert!(t.check(&ctx).unwrap_err().to_string().contains("\"a b\""));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges(mods in proptest::collection::vec("[a-z][a-z0-9_-]{0,10}", 0..5)) {
            let (_d, ctx) = testutil::root();
            let t = KernelModulesTask { modules: mods };
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
