//! `sysctl = { key = value }`: persisted in a drop-in (so it survives reboot)
//! and set live (so it holds now).

use crate::fsutil::FileState;
use crate::spec::SysctlValue;
use crate::system::sysctl_rel_path;
use crate::task::{Change, Context, Task, TaskError};
use std::collections::BTreeMap;

pub const DROP_IN: &str = "/etc/sysctl.d/99-strata.conf";

pub struct SysctlTask {
    pub values: BTreeMap<String, String>,
}

impl SysctlTask {
    pub fn new(values: &BTreeMap<String, SysctlValue>) -> Self {
        SysctlTask { values: values.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect() }
    }

    pub fn drop_in(&self) -> FileState {
        let mut s = String::from("# Managed by strata-agent. Local changes will be overwritten.\n");
        for (k, v) in &self.values {
            s.push_str(&format!("{k} = {v}\n"));
        }
        FileState::new(DROP_IN, s).with_mode(0o644)
    }

    fn validate(&self) -> Result<(), TaskError> {
        for k in self.values.keys() {
            sysctl_rel_path(k).map_err(|e| TaskError::new(format!("sysctl key {k:?}: {e}")))?;
        }
        Ok(())
    }
}

/// The kernel prints multi-value parameters tab-separated.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Task for SysctlTask {
    fn name(&self) -> String {
        "sysctl".into()
    }
    fn module(&self) -> &'static str {
        "sysctl"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        self.validate()?;
        let mut changes = self.drop_in().check(&ctx.root)?;
        for (k, want) in &self.values {
            let live = ctx.sys.sysctl_get(k).map_err(|e| TaskError::new(format!("sysctl {k}: {e}")))?;
            if live.as_deref().map(normalize) != Some(normalize(want)) {
                changes.push(Change::new(format!("{k}: {} -> {want}", live.as_deref().unwrap_or("(unset)"))));
            }
        }
        Ok(changes)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.validate()?;
        self.drop_in().apply(&ctx.root)?;
        for (k, want) in &self.values {
            let live = ctx.sys.sysctl_get(k).map_err(|e| TaskError::new(format!("sysctl {k}: {e}")))?;
            if live.as_deref().map(normalize) != Some(normalize(want)) {
                ctx.sys.sysctl_set(k, want).map_err(|e| TaskError::new(format!("sysctl {k}: {e}")))?;
            }
        }
        Ok(())
    }
    fn managed(&self) -> Vec<crate::managed::Managed> {
        let mut m = vec![crate::managed::Managed::File(DROP_IN.into())];
        m.extend(self.values.keys().map(|k| crate::managed::Managed::Sysctl(k.clone())));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;

    fn task(pairs: &[(&str, &str)]) -> SysctlTask {
        SysctlTask { values: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn writes_drop_in_and_live_values() {
        let (d, ctx) = testutil::root();
        std::fs::create_dir_all(d.path().join("proc/sys/net/ipv4")).unwrap();
        std::fs::write(d.path().join("proc/sys/net/ipv4/ip_forward"), "0\n").unwrap();
        let t = task(&[("net.ipv4.ip_forward", "1"), ("net.ipv4.ping_group_range", "0 2147483647")]);
        let c = t.check(&ctx).unwrap();
        let whats: Vec<_> = c.iter().map(|c| c.what.as_str()).collect();
        assert!(whats.contains(&"net.ipv4.ip_forward: 0 -> 1"), "{whats:?}");
        assert!(whats.contains(&"create /etc/sysctl.d/99-strata.conf"));
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        let conf = std::fs::read_to_string(d.path().join("etc/sysctl.d/99-strata.conf")).unwrap();
        assert!(conf.contains("net.ipv4.ip_forward = 1\n"));
        // The kernel's tab-separated rendering of the same value is not a change.
        std::fs::write(d.path().join("proc/sys/net/ipv4/ping_group_range"), "0\t2147483647\n").unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
    }

    #[test]
    fn live_drift_alone_is_detected() {
        let (d, ctx) = testutil::root();
        let t = task(&[("vm.swappiness", "0")]);
        t.apply(&ctx).unwrap();
        std::fs::write(d.path().join("proc/sys/vm/swappiness"), "60\n").unwrap();
        let c = t.check(&ctx).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].what, "vm.swappiness: 60 -> 0");
    }

    #[test]
    fn bad_key_is_named() {
        let (_d, ctx) = testutil::root();
        let e = task(&[("../../etc/shadow", "1")]).check(&ctx).unwrap_err();
        assert!(e.to_string().contains("../../etc/shadow"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges(values in proptest::collection::btree_map("[a-z]{1,5}\\.[a-z_]{1,8}", "[0-9]{1,4}( [0-9]{1,3})?", 1..6)) {
            let (_d, ctx) = testutil::root();
            let t = SysctlTask { values };
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
