//! `service "name" { enabled running masked }` via systemd.
//!
//! What `enabled = true` means per `systemctl is-enabled` state:
//! * `enabled`: satisfied;
//! * `static`, `generated`, `indirect`, `alias`: cannot be enabled (no
//!   [Install] section, made by a generator, enabled through another unit, a
//!   name of another unit): satisfied, so they do not drift forever;
//! * `enabled-runtime`: only until reboot, so `systemctl enable` persists it;
//! * `disabled`, `linked*`, not found: `systemctl enable`;
//! * `masked*`: an error naming the unit unless the spec sets `masked`.
//!
//! `enabled = false` is satisfied by anything that does not start the unit at
//! boot by itself (disabled, static, indirect, alias, masked); `generated` is
//! an error, since only masking stops a generated unit.

use crate::spec::ServiceSpec;
use crate::system::ServiceState;
use crate::task::{Change, Context, Task, TaskError};

pub struct ServiceTask {
    pub unit: String,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Unmask,
    Enable,
    Disable,
    DisableRuntime,
    Start,
    Stop,
    Mask,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Unmask => "unmask",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::DisableRuntime => "disable --runtime",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Mask => "mask",
        }
    }
}

impl ServiceTask {
    pub fn new(name: &str, spec: &ServiceSpec) -> Self {
        ServiceTask { unit: super::unit_name(name), spec: spec.clone() }
    }
    fn err(&self, msg: impl std::fmt::Display) -> TaskError {
        TaskError::new(format!("service {}: {msg}", self.unit))
    }
    fn validate(&self) -> Result<(), TaskError> {
        let ok = !self.unit.starts_with('-')
            && self.unit.chars().all(|c| c.is_ascii_alphanumeric() || ":-_.@\\".contains(c));
        if !ok {
            return Err(TaskError::new(format!("service {:?}: invalid unit name", self.unit)));
        }
        if self.spec.masked == Some(true) && (self.spec.enabled == Some(true) || self.spec.running == Some(true)) {
            return Err(self.err("masked = true conflicts with enabled = true / running = true"));
        }
        Ok(())
    }

    /// The actions that bring `st` to the spec, in order. After an unmask the
    /// unit's own state is not known yet; it is planned as disabled and stopped
    /// and `apply` plans again once unmasked.
    fn plan(&self, st: &ServiceState) -> Result<Vec<Action>, TaskError> {
        let mut st = st.clone();
        let mut out = vec![];
        // Masking does not stop a running unit.
        let stop_masked = self.spec.running == Some(false) && !st.is_stopped();
        match (self.spec.masked, st.masked()) {
            (Some(true), true) => {
                if stop_masked {
                    out.push(Action::Stop);
                }
                return Ok(out);
            }
            (Some(true), false) => {
                if self.spec.running == Some(false) && !st.is_stopped() {
                    out.push(Action::Stop);
                }
                out.push(Action::Mask);
                return Ok(out);
            }
            (Some(false), true) => {
                out.push(Action::Unmask);
                st.unit_file_state = "disabled".into();
            }
            (None, true) => {
                if self.spec.enabled == Some(true) || self.spec.running == Some(true) {
                    return Err(self.err(format!(
                        "the unit is {}; unmask it or set masked = false (masked = true to keep it masked)",
                        st.unit_file_state
                    )));
                }
                // A masked unit is never enabled; stopped it may still have to be.
                if stop_masked {
                    out.push(Action::Stop);
                }
                return Ok(out);
            }
            (_, false) => {}
        }
        match (self.spec.enabled, st.unit_file_state.as_str()) {
            (Some(true), "enabled" | "static" | "generated" | "indirect" | "alias" | "transient") => {}
            (Some(true), _) => out.push(Action::Enable),
            (Some(false), "enabled" | "linked" | "linked-runtime") => out.push(Action::Disable),
            (Some(false), "enabled-runtime") => out.push(Action::DisableRuntime),
            (Some(false), "generated") => {
                return Err(self.err("generated units cannot be disabled; set masked = true to stop it at boot"))
            }
            _ => {}
        }
        match self.spec.running {
            Some(true) if !st.is_running() => out.push(Action::Start),
            Some(false) if !st.is_stopped() => out.push(Action::Stop),
            _ => {}
        }
        Ok(out)
    }

    fn state(&self, ctx: &Context) -> Result<ServiceState, TaskError> {
        ctx.sys.service_state(&self.unit).map_err(|e| self.err(e))
    }

    fn act(&self, ctx: &Context, a: Action) -> Result<(), TaskError> {
        let u = &self.unit;
        match a {
            Action::Unmask => ctx.sys.unmask_unit(u),
            Action::Mask => ctx.sys.mask_unit(u),
            Action::Enable => ctx.sys.set_enabled(u, true),
            Action::Disable => ctx.sys.set_enabled(u, false),
            Action::DisableRuntime => ctx.sys.disable_runtime(u),
            Action::Start => ctx.sys.set_running(u, true),
            Action::Stop => ctx.sys.set_running(u, false),
        }
        .map_err(|e| self.err(e))
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
        let st = self.state(ctx)?;
        Ok(self.plan(&st)?.into_iter().map(|a| Change::new(format!("{} {}", a.verb(), self.unit))).collect())
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        self.validate()?;
        let actions = self.plan(&self.state(ctx)?)?;
        if actions.first() == Some(&Action::Unmask) {
            self.act(ctx, Action::Unmask)?;
            for a in self.plan(&self.state(ctx)?)? {
                self.act(ctx, a)?;
            }
            return Ok(());
        }
        actions.into_iter().try_for_each(|a| self.act(ctx, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::system::SimulatedSystem;
    use proptest::prelude::*;

    fn spec(enabled: Option<bool>, running: Option<bool>) -> ServiceSpec {
        ServiceSpec { enabled, running, masked: None }
    }

    fn whats(t: &ServiceTask, ctx: &Context) -> Vec<String> {
        t.check(ctx).unwrap().into_iter().map(|c| c.what).collect()
    }

    /// Sets a simulated unit's is-enabled word / type (test hooks of the simulation).
    fn sim_unit(ctx: &Context, unit: &str, f: impl FnOnce(&mut crate::system::SimUnit)) {
        let sim = SimulatedSystem { root: ctx.root.clone() };
        let mut s = sim.load_systemd().unwrap();
        f(s.units.entry(unit.to_string()).or_default());
        let p = crate::fsutil::node_path(&ctx.root, crate::system::SIM_SYSTEMD);
        crate::fsutil::atomic_write(&p, &serde_json::to_vec(&s).unwrap(), 0o644, None).unwrap();
    }

    #[test]
    fn enables_and_starts() {
        let (_d, ctx) = testutil::root();
        let t = ServiceTask::new("containerd", &spec(Some(true), Some(true)));
        assert_eq!(t.name(), "service containerd.service");
        assert_eq!(whats(&t, &ctx), vec!["enable containerd.service", "start containerd.service"]);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        let stop = ServiceTask::new("containerd", &spec(None, Some(false)));
        assert_eq!(stop.check(&ctx).unwrap(), vec![Change::new("stop containerd.service")]);
    }

    #[test]
    fn units_that_cannot_be_enabled_satisfy_enabled_true() {
        let (_d, ctx) = testutil::root();
        for word in ["static", "generated", "indirect", "alias"] {
            sim_unit(&ctx, "x.service", |u| u.unit_file_state = Some(word.into()));
            let t = ServiceTask::new("x", &spec(Some(true), None));
            assert!(t.check(&ctx).unwrap().is_empty(), "{word} must not drift");
        }
        // enabled-runtime is gone after a reboot: enable it for good.
        sim_unit(&ctx, "x.service", |u| u.unit_file_state = Some("enabled-runtime".into()));
        let t = ServiceTask::new("x", &spec(Some(true), None));
        assert_eq!(whats(&t, &ctx), vec!["enable x.service"]);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        // Disabling a runtime enablement needs --runtime, or it would drift forever.
        sim_unit(&ctx, "x.service", |u| {
            u.enabled = false;
            u.unit_file_state = Some("enabled-runtime".into())
        });
        let off = ServiceTask::new("x", &spec(Some(false), None));
        assert_eq!(whats(&off, &ctx), vec!["disable --runtime x.service"]);
        off.apply(&ctx).unwrap();
        assert!(off.check(&ctx).unwrap().is_empty());
        // A generated unit cannot be disabled: said so, naming the unit and the way out.
        sim_unit(&ctx, "x.service", |u| u.unit_file_state = Some("generated".into()));
        let e = ServiceTask::new("x", &spec(Some(false), None)).check(&ctx).unwrap_err().to_string();
        assert!(e.contains("x.service") && e.contains("masked = true"), "{e}");
    }

    #[test]
    fn a_oneshot_that_ran_is_not_started_again() {
        let (_d, ctx) = testutil::root();
        sim_unit(&ctx, "setup.service", |u| u.service_type = Some("oneshot".into()));
        let t = ServiceTask::new("setup", &spec(None, Some(true)));
        assert_eq!(whats(&t, &ctx), vec!["start setup.service"], "never ran since boot");
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty(), "ran successfully: nothing to do");
        t.apply(&ctx).unwrap();
        let runs = SimulatedSystem { root: ctx.root.clone() }.load_systemd().unwrap().units["setup.service"].starts;
        assert_eq!(runs, 1);
    }

    #[test]
    fn oneshot_running_follows_show_properties() {
        let show = |extra: &str| {
            ServiceState::parse(
                "enabled\n",
                &format!("Type=oneshot\nActiveState=inactive\nSubState=dead\n{extra}RemainAfterExit=no\n"),
            )
        };
        assert!(show("Result=success\nExecMainStartTimestampMonotonic=123\n").is_running());
        assert!(!show("Result=success\nExecMainStartTimestampMonotonic=0\n").is_running(), "never ran");
        assert!(!show("Result=exit-code\nExecMainStartTimestampMonotonic=9\n").is_running(), "failed");
        // RemainAfterExit=yes: active after success, inactive means it must run.
        let remain = ServiceState::parse(
            "static",
            "Type=oneshot\nActiveState=inactive\nResult=success\nRemainAfterExit=yes\nExecMainStartTimestampMonotonic=5\n",
        );
        assert!(!remain.is_running());
        assert_eq!(ServiceState::parse("", "").unit_file_state, "not-found");
    }

    #[test]
    fn masked_units_are_an_error_unless_the_spec_says_masked() {
        let (_d, ctx) = testutil::root();
        ctx.sys.mask_unit("kubelet.service").unwrap();
        let e = ServiceTask::new("kubelet", &spec(Some(true), Some(true))).check(&ctx).unwrap_err().to_string();
        assert!(e.contains("kubelet.service") && e.contains("masked"), "{e}");
        // Asking for it disabled and stopped is what masked is...
        assert!(ServiceTask::new("kubelet", &spec(Some(false), Some(false))).check(&ctx).unwrap().is_empty());
        // ...unless it still runs: masking does not stop a unit.
        sim_unit(&ctx, "kubelet.service", |u| u.active = true);
        let stop = ServiceTask::new("kubelet", &spec(Some(false), Some(false)));
        assert_eq!(whats(&stop, &ctx), vec!["stop kubelet.service"]);
        stop.apply(&ctx).unwrap();
        assert!(stop.check(&ctx).unwrap().is_empty());
        // masked = false unmasks, then enables and starts.
        let t =
            ServiceTask::new("kubelet", &ServiceSpec { enabled: Some(true), running: Some(true), masked: Some(false) });
        assert_eq!(whats(&t, &ctx), vec!["unmask kubelet.service", "enable kubelet.service", "start kubelet.service"]);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        assert!(!ctx.sys.unit_masked("kubelet.service"));
        // masked = true stops (when asked) and masks.
        let m = ServiceTask::new("kubelet", &ServiceSpec { enabled: None, running: Some(false), masked: Some(true) });
        assert_eq!(whats(&m, &ctx), vec!["stop kubelet.service", "mask kubelet.service"]);
        m.apply(&ctx).unwrap();
        assert!(m.check(&ctx).unwrap().is_empty());
        let bad = ServiceTask::new("kubelet", &ServiceSpec { enabled: None, running: Some(true), masked: Some(true) });
        assert!(bad.check(&ctx).unwrap_err().to_string().contains("conflicts"));
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
            let t = ServiceTask::new("x", &spec(e, r));
            let expected = usize::from(e.is_some_and(|e| e != e0)) + usize::from(r.is_some_and(|r| r != r0));
            prop_assert_eq!(t.check(&ctx).unwrap().len(), expected);
            t.apply(&ctx).unwrap();
            prop_assert!(t.check(&ctx).unwrap().is_empty());
        }
    }
}
