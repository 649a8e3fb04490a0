//! `service "name" { enabled running }` via systemd.

use crate::spec::ServiceSpec;
use crate::task::{Change, Context, Task, TaskError};

pub struct ServiceTask {
    pub unit: String,
    pub spec: ServiceSpec,
}

impl ServiceTask {
    pub fn new(name: &str, spec: &ServiceSpec) -> Self {
        ServiceTask { unit: super::unit_name(name), spec: spec.clone() }
    }
    fn validate(&self) -> Result<(), TaskError> {
        let ok = !self.unit.starts_with('-')
            && self.unit.chars().all(|c| c.is_ascii_alphanumeric() || ":-_.@\\".contains(c));
        if ok {
            Ok(())
        } else {
            Err(TaskError::new(format!("service {:?}: invalid unit name", self.unit)))
        }
    }
}

impl Task for ServiceTask {
    fn name(&self) -> String {
        format!("service {}", self.unit)
    }
    fn module(&self) -> &'static str {
        "service"
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        self.validate()?;
        let st = ctx.sys.service_state(&self.unit).map_err(TaskError::new)?;
        let mut c = vec![];
        if let Some(e) = self.spec.enabled.filter(|e| *e != st.enabled) {
            c.push(Change::new(format!("{} {}", if e { "enable" } else { "disable" }, self.unit)));
        }
        if let Some(r) = self.spec.running.filter(|r| *r != st.active) {
            c.push(Change::new(format!("{} {}", if r { "start" } else { "stop" }, self.unit)));
        }
        Ok(c)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.validate()?;
        let err = |e| TaskError::new(format!("service {}: {e}", self.unit));
        let st = ctx.sys.service_state(&self.unit).map_err(err)?;
        if let Some(e) = self.spec.enabled.filter(|e| *e != st.enabled) {
            ctx.sys.set_enabled(&self.unit, e).map_err(err)?;
        }
        if let Some(r) = self.spec.running.filter(|r| *r != st.active) {
            ctx.sys.set_running(&self.unit, r).map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use proptest::prelude::*;

    #[test]
    fn enables_and_starts() {
        let (_d, ctx) = testutil::root();
        let t = ServiceTask::new("containerd", &ServiceSpec { enabled: Some(true), running: Some(true) });
        assert_eq!(t.name(), "service containerd.service");
        let whats: Vec<String> = t.check(&ctx).unwrap().into_iter().map(|c| c.what).collect();
        assert_eq!(whats, vec!["enable containerd.service", "start containerd.service"]);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        let stop = ServiceTask::new("containerd", &ServiceSpec { enabled: None, running: Some(false) });
        assert_eq!(stop.check(&ctx).unwrap(), vec![Change::new("stop containerd.service")]);
    }

    #[test]
    fn option_like_unit_rejected() {
        let (_d, ctx) = testutil::root();
        let t = ServiceTask::new("--now", &ServiceSpec::default());
        assert!(t.check(&ctx).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn converges_from_any_state(e0: bool, r0: bool, e in proptest::option::of(any::<bool>()), r in proptest::option::of(any::<bool>())) {
            let (_d, ctx) = testutil::root();
            ctx.sys.set_enabled("x.service", e0).unwrap();
            ctx.sys.set_running("x.service", r0).unwrap();
            let t = ServiceTask::new("x", &ServiceSpec { enabled: e, running: r });
            let expected = usize::from(e.is_some_and(|e| e != e0)) + usize::from(r.is_some_and(|r| r != r0));
            prop_assert_eq!(t.check(&ctx).unwrap().len(), expected);
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
