//! Turns a spec into ordered tasks, runs them (check or apply), and runs the
//! handlers they notify.
//!
//! Order: apt sources, then packages (they create config dirs and units), then kernel
//! modules before the sysctls that need them (br_netfilter provides
//! net.bridge.*), swap, plain directories and files, the typed configs, and
//! services, and last the clean-up of what left the spec (see
//! [`crate::managed`]). On the first failed task the run stops (remaining tasks are
//! reported as skipped) and handlers are not run; they stay pending on the
//! node for the next run.

use crate::handlers::Pending;
use crate::managed::{Managed, Record};
use crate::modules::{
    apt_repository::AptRepositoryTask, containerd::ContainerdTask, crictl::CrictlTask, directory::DirectoryTask,
    file::FileTask, kmod::KernelModulesTask, kubelet::KubeletTask, package::PackageTask, service::ServiceTask,
    swap::SwapOffTask, sysctl::SysctlTask,
};
use crate::report::{Report, RunMode, Status, TaskReport};
use crate::spec::NodeSpec;
use crate::task::{Change, Context, Task};
use std::time::Instant;

const UNIT_DIRS: [&str; 3] = ["/etc/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/"];

pub fn build_tasks(spec: &NodeSpec) -> Vec<Box<dyn Task>> {
    let mut t: Vec<Box<dyn Task>> = vec![];
    for (name, r) in &spec.apt_repository {
        t.push(Box::new(AptRepositoryTask::new(name, r)));
    }
    for (name, p) in &spec.package {
        t.push(Box::new(PackageTask::new(name, p, spec.apt.as_ref())));
    }
    if !spec.kernel_modules.is_empty() {
        t.push(Box::new(KernelModulesTask { modules: spec.kernel_modules.clone() }));
    }
    if !spec.sysctl.is_empty() {
        t.push(Box::new(SysctlTask::new(&spec.sysctl)));
    }
    if spec.swap_off {
        t.push(Box::new(SwapOffTask));
    }
    for (path, d) in &spec.directory {
        t.push(Box::new(DirectoryTask::new(path, d)));
    }
    for (path, f) in &spec.file {
        t.push(Box::new(FileTask::new(path, f)));
    }
    if let Some(c) = &spec.containerd {
        t.push(Box::new(ContainerdTask { spec: c.clone() }));
    }
    if let Some(c) = &spec.crictl {
        t.push(Box::new(CrictlTask { spec: c.clone() }));
    }
    if let Some(k) = &spec.kubelet {
        t.push(Box::new(KubeletTask { spec: k.clone() }));
    }
    for (name, s) in &spec.service {
        t.push(Box::new(ServiceTask::new(name, s)));
    }
    t
}

fn touches_unit_file(changes: &[Change]) -> bool {
    changes.iter().filter_map(|c| c.path.as_deref()).any(|p| UNIT_DIRS.iter().any(|d| p.starts_with(d)))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn report(task: &dyn Task, status: Status, start: Instant, changes: Vec<Change>, error: Option<String>) -> TaskReport {
    TaskReport { name: task.name(), module: task.module().into(), status, duration_ms: ms(start), changes, error }
}

fn handler(name: String, status: Status, start: Instant, error: Option<String>) -> TaskReport {
    TaskReport { name, module: "handler".into(), status, duration_ms: ms(start), changes: vec![], error }
}

pub fn run(spec: &NodeSpec, ctx: &Context, mode: RunMode) -> Report {
    let tasks = build_tasks(spec);
    run_tasks(&tasks, ctx, mode)
}

pub fn run_tasks(tasks: &[Box<dyn Task>], ctx: &Context, mode: RunMode) -> Report {
    let root = ctx.root.display().to_string();
    let mut out = vec![];
    let mut pending = match Pending::load(&ctx.root) {
        Ok(p) => p,
        Err(e) => {
            let now = Instant::now();
            return Report::new(
                mode,
                root,
                vec![handler("load pending handlers".into(), Status::Failed, now, Some(e))],
            );
        }
    };
    let fail_early = |what: &str, e: String| {
        Report::new(mode, root.clone(), vec![handler(what.into(), Status::Failed, Instant::now(), Some(e))])
    };
    // What the agent managed before, and what this spec manages.
    let record = match Record::load(&ctx.root) {
        Ok(r) => r,
        Err(e) => return fail_early("load the record of managed state", e),
    };
    let items: Vec<Managed> = tasks.iter().flat_map(|t| t.managed()).collect();
    let desired = record.desired(&items, ctx);
    let intent = record.union(&desired);
    if mode == RunMode::Apply && intent != record {
        // Durable before anything is written, so nothing written goes unrecorded.
        if let Err(e) = intent.save(&ctx.root) {
            return fail_early("save the record of managed state", e);
        }
    }
    let cleanup = intent.removals(&desired);
    let mut all: Vec<&dyn Task> = tasks.iter().map(|t| t.as_ref()).collect();
    all.extend(cleanup.as_ref().map(|c| c as &dyn Task));
    let mut failed = false;
    for task in all {
        let start = Instant::now();
        if failed {
            out.push(report(task, Status::Skipped, start, vec![], None));
            continue;
        }
        let changes = match task.check(ctx) {
            Ok(c) => c,
            Err(e) => {
                failed = true;
                out.push(report(task, Status::Failed, start, vec![], Some(e.to_string())));
                continue;
            }
        };
        if changes.is_empty() {
            out.push(report(task, Status::Ok, start, changes, None));
            continue;
        }
        // Record what this change will owe. In check mode only in memory.
        let before = pending.clone();
        pending.restart.extend(task.notify());
        pending.daemon_reload |= touches_unit_file(&changes);
        let mut result = Ok(());
        if mode == RunMode::Apply {
            if pending != before {
                result = pending.save(&ctx.root);
            }
            // Services act on current unit definitions.
            if result.is_ok() && task.module() == "service" && pending.daemon_reload {
                result = daemon_reload(ctx, &mut pending);
            }
            if result.is_ok() {
                result = task.apply(ctx).map_err(|e| e.to_string());
            }
        }
        match result {
            Ok(()) => out.push(report(task, Status::Changed, start, changes, None)),
            Err(e) => {
                failed = true;
                out.push(report(task, Status::Failed, start, changes, Some(e)));
            }
        }
    }
    if !failed && mode == RunMode::Apply && desired != intent {
        // Everything that left the spec is undone: forget it.
        if let Err(e) = desired.save(&ctx.root) {
            failed = true;
            out.push(handler("save the record of managed state".into(), Status::Failed, Instant::now(), Some(e)));
        }
    }
    if !failed {
        out.extend(run_handlers(ctx, mode, &mut pending));
    }
    Report::new(mode, root, out)
}

fn daemon_reload(ctx: &Context, pending: &mut Pending) -> Result<(), String> {
    ctx.sys.daemon_reload().map_err(|e| format!("daemon-reload: {e}"))?;
    pending.daemon_reload = false;
    pending.save(&ctx.root)
}

fn run_handlers(ctx: &Context, mode: RunMode, pending: &mut Pending) -> Vec<TaskReport> {
    let mut out = vec![];
    if pending.daemon_reload {
        let start = Instant::now();
        let r = if mode == RunMode::Apply { daemon_reload(ctx, pending) } else { Ok(()) };
        out.push(handler(
            "daemon-reload".into(),
            if r.is_ok() { Status::Changed } else { Status::Failed },
            start,
            r.err(),
        ));
    }
    for unit in pending.restart.clone() {
        let start = Instant::now();
        let r = if mode == RunMode::Apply {
            ctx.sys.try_restart(&unit).map_err(|e| format!("try-restart {unit}: {e}")).and_then(|()| {
                pending.restart.remove(&unit);
                pending.save(&ctx.root)
            })
        } else {
            Ok(())
        };
        out.push(handler(
            format!("restart {unit}"),
            if r.is_ok() { Status::Changed } else { Status::Failed },
            start,
            r.err(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::spec::{AbsPath, FileSpec, ServiceSpec};
    use crate::system::SimulatedSystem;

    fn file(path: &str, content: &str, notify: &[&str]) -> (AbsPath, FileSpec) {
        (
            AbsPath::try_from(path).unwrap(),
            FileSpec {
                content: content.into(),
                notify: notify.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    fn restarts(d: &std::path::Path, unit: &str) -> u32 {
        let s = SimulatedSystem { root: d.to_path_buf() }.load_systemd().unwrap();
        s.units.get(unit).map_or(0, |u| u.restarts)
    }

    #[test]
    fn handler_runs_once_and_only_on_change() {
        let (d, ctx) = testutil::root();
        ctx.sys.set_running("svc.service", true).unwrap();
        let spec = NodeSpec {
            file: [file("/etc/a", "1", &["svc"]), file("/etc/b", "2", &["svc"])].into(),
            ..Default::default()
        };
        let r = run(&spec, &ctx, RunMode::Apply);
        assert_eq!(r.recap.changed, 3, "{r:#?}");
        assert_eq!(restarts(d.path(), "svc.service"), 1);
        let r = run(&spec, &ctx, RunMode::Apply);
        assert_eq!((r.recap.changed, r.exit_code()), (0, 0));
        assert_eq!(restarts(d.path(), "svc.service"), 1);
        assert!(Pending::load(d.path()).unwrap().is_empty());
    }

    #[test]
    fn failure_stops_the_run_and_keeps_handlers_pending() {
        let (d, ctx) = testutil::root();
        ctx.sys.set_running("svc.service", true).unwrap();
        let mut bad = file("/etc/z", "x", &[]);
        bad.1.owner = Some("ghost".into());
        let spec = NodeSpec {
            file: [file("/etc/a", "1", &["svc"]), bad, file("/etc/zz", "1", &[])].into(),
            ..Default::default()
        };
        let r = run(&spec, &ctx, RunMode::Apply);
        let st: Vec<Status> = r.tasks.iter().map(|t| t.status).collect();
        assert_eq!(st, vec![Status::Changed, Status::Failed, Status::Skipped]);
        assert!(r.tasks[1].error.as_deref().unwrap().contains("ghost"));
        assert_eq!(r.exit_code(), 1);
        assert_eq!(restarts(d.path(), "svc.service"), 0);
        assert!(Pending::load(d.path()).unwrap().restart.contains("svc.service"));
        // Fixed spec: /etc/a is already in place, but the owed restart happens.
        let spec = NodeSpec { file: [file("/etc/a", "1", &["svc"])].into(), ..Default::default() };
        let r = run(&spec, &ctx, RunMode::Apply);
        assert_eq!(r.tasks.last().unwrap().name, "restart svc.service");
        assert_eq!(restarts(d.path(), "svc.service"), 1);
        assert!(Pending::load(d.path()).unwrap().is_empty());
    }

    /// A run that fails before the clean-up keeps the removal owed in the record.
    #[test]
    fn removal_is_retried_after_a_failed_run() {
        let (d, ctx) = testutil::root();
        let a = NodeSpec { file: [file("/etc/a", "1", &[])].into(), ..Default::default() };
        assert_eq!(run(&a, &ctx, RunMode::Apply).exit_code(), 2);
        let mut bad = file("/etc/z", "x", &[]);
        bad.1.owner = Some("ghost".into());
        let r = run(&NodeSpec { file: [bad].into(), ..Default::default() }, &ctx, RunMode::Apply);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.tasks.last().unwrap().status, Status::Skipped, "clean-up skipped: {r:#?}");
        assert!(d.path().join("etc/a").exists());
        assert!(Record::load(d.path()).unwrap().files.contains("/etc/a"));
        let r = run(&NodeSpec::default(), &ctx, RunMode::Apply);
        assert_eq!(r.exit_code(), 2, "{r:#?}");
        assert!(!d.path().join("etc/a").exists());
        assert_eq!(Record::load(d.path()).unwrap(), Record::default());
    }

    /// Handlers are `try-restart`: a unit someone stopped on purpose stays stopped.
    #[test]
    fn handler_does_not_start_a_stopped_unit() {
        let (d, ctx) = testutil::root();
        ctx.sys.set_running("svc.service", true).unwrap();
        ctx.sys.set_running("svc.service", false).unwrap();
        let spec = NodeSpec { file: [file("/etc/a", "1", &["svc"])].into(), ..Default::default() };
        let r = run(&spec, &ctx, RunMode::Apply);
        assert_eq!(r.exit_code(), 2, "{r:#?}");
        let s = SimulatedSystem { root: d.path().to_path_buf() }.load_systemd().unwrap();
        assert!(!s.units["svc.service"].active, "still stopped");
        assert_eq!(s.units["svc.service"].restarts, 0);
        assert!(
            Pending::load(d.path()).unwrap().is_empty(),
            "nothing owed: a stopped unit reads the new file when started"
        );
    }

    /// A task that dies half-way through its change (like a crash after
    /// writing the config) and records what was on disk at that moment.
    struct DiesMidApply {
        seen_pending: std::rc::Rc<std::cell::RefCell<Option<Pending>>>,
    }
    impl Task for DiesMidApply {
        fn name(&self) -> String {
            "dies".into()
        }
        fn module(&self) -> &'static str {
            "test"
        }
        fn notify(&self) -> Vec<String> {
            vec!["containerd.service".into()]
        }
        fn check(&self, _: &Context) -> Result<Vec<Change>, crate::task::TaskError> {
            Ok(vec![Change::new("something")])
        }
        fn apply(&self, ctx: &Context) -> Result<(), crate::task::TaskError> {
            *self.seen_pending.borrow_mut() = Some(Pending::load(&ctx.root).unwrap());
            Err(crate::task::TaskError::new("killed"))
        }
    }

    #[test]
    fn restart_is_persisted_before_the_change_is_made() {
        let (d, ctx) = testutil::root();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
        let tasks: Vec<Box<dyn Task>> = vec![Box::new(DiesMidApply { seen_pending: seen.clone() })];
        let r = run_tasks(&tasks, &ctx, RunMode::Apply);
        assert_eq!(r.exit_code(), 1);
        let seen = seen.borrow().clone().expect("apply was called");
        assert!(seen.restart.contains("containerd.service"), "pending restart must be durable before apply starts");
        assert!(Pending::load(d.path()).unwrap().restart.contains("containerd.service"));
    }

    #[test]
    fn unit_file_change_reloads_before_service_task() {
        let (d, ctx) = testutil::root();
        let spec = NodeSpec {
            file: [file("/etc/systemd/system/foo.service", "[Service]\n", &[])].into(),
            service: [("foo".to_string(), ServiceSpec { enabled: Some(true), running: Some(true), masked: None })]
                .into(),
            ..Default::default()
        };
        let r = run(&spec, &ctx, RunMode::Apply);
        assert_eq!(r.recap.changed, 2);
        let s = SimulatedSystem { root: d.path().to_path_buf() }.load_systemd().unwrap();
        assert_eq!(s.daemon_reloads, 1);
        assert!(s.units["foo.service"].active);
    }

    #[test]
    fn check_mode_reports_would_be_handlers_without_writing() {
        let (d, ctx) = testutil::root();
        let spec = NodeSpec { file: [file("/etc/a", "1", &["svc"])].into(), ..Default::default() };
        let r = run(&spec, &ctx, RunMode::Check);
        assert_eq!(
            r.tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["file /etc/a", "restart svc.service"]
        );
        assert!(!d.path().join("etc/a").exists());
        assert!(!d.path().join("var").exists());
    }
}
