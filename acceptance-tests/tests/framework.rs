//! Framework semantics through the real Terraform CLI: defaults that come back when
//! their line is removed, and a Ctrl-C that stops one apply of a reattached provider
//! without breaking the next.

mod pve_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pve_common::Sim;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;
use strata_lab::{LabGuard, PveMode, UpOptions};

use strata_acceptance_tests::terraform::{ssh_provider, REQUIRED_PROVIDERS as HEADER};

fn secrets(extra: &str) -> String {
    format!("{HEADER}resource \"strata_cluster_secrets\" \"c\" {{\n  cluster_name = \"prod\"\n{extra}}}\n")
}

#[test]
fn removing_validity_days_plans_the_default_back() {
    let wd = Workdir::new(&provider_dir(), &secrets("  validity_days = 100\n")).unwrap();
    wd.apply().unwrap();
    assert_eq!(wd.resource_values("strata_cluster_secrets.c").unwrap()["validity_days"], 100);

    wd.write("main.tf", &secrets("")).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "removing the line must plan a change:\n{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.lines().any(|l| l.contains("validity_days") && l.trim_end().ends_with("= 100 -> 3650")),
        "{}",
        plan.stdout
    );
    wd.apply().unwrap();
    assert_eq!(wd.resource_values("strata_cluster_secrets.c").unwrap()["validity_days"], 3650);
    let again = wd.plan_exit_code().unwrap();
    assert_eq!(again.code, 0, "second plan must be empty:\n{}{}", again.stdout, again.stderr);
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn export_tf(lab: &LabGuard, extra: &str) -> String {
    let ssh = &lab.info().ssh;
    let node1 = &lab.nodes()[0].address;
    format!(
        "{}resource \"strata_nfs_export\" \"data\" {{\n  ssh {{\n    host = \"{node1}\"\n  }}\n  name = \"data\"\n  \
         path = \"/srv/nfs/data\"\n  create_directory {{\n    mode = \"0777\"\n  }}\n{extra}  clients {{\n    client  = \"10.77.0.0/16\"\n    options = [\"rw\"]\n  }}\n}}\n",
        ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file)
    )
}

#[test]
fn removing_delete_data_on_destroy_plans_false_and_destroy_keeps_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up (needs root; installs Debian packages on first use)");

    let wd = Workdir::new(&provider_dir(), &export_tf(&lab, "  delete_data_on_destroy = true\n")).unwrap();
    wd.apply().unwrap();
    let (code, _) = sh(&lab, "node1", "echo precious > /srv/nfs/data/keep-me");
    assert_eq!(code, 0);

    wd.write("main.tf", &export_tf(&lab, "")).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "removing the line must plan a change:\n{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.lines().any(|l| l.contains("delete_data_on_destroy") && l.trim_end().ends_with("= true -> false")),
        "{}",
        plan.stdout
    );
    wd.apply().unwrap();
    assert_eq!(wd.resource_values("strata_nfs_export.data").unwrap()["delete_data_on_destroy"], false);

    wd.destroy().unwrap();
    let (code, out) = sh(&lab, "node1", "cat /srv/nfs/data/keep-me");
    assert_eq!((code, out.trim()), (0, "precious"), "destroy deleted the export's data");
}

fn interrupted_vm(sim: &Sim) -> Workdir {
    sim.workdir("resource \"strata_vm\" \"v\" {\n  node = \"pve1\"\n  name = \"interrupted\"\n  memory_mb = 512\n}\n")
}

/// The provider started by hand in debug mode, as a developer attaches a debugger to it.
struct DebugProvider {
    child: Child,
    reattach: String,
}

impl DebugProvider {
    fn start(dir: &Path) -> DebugProvider {
        let mut child = Command::new(dir.join("terraform-provider-strata"))
            .arg("--debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the provider with --debug");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let reattach = lines
            .by_ref()
            .take(20)
            .map_while(Result::ok)
            .find_map(|l| {
                l.trim().strip_prefix("TF_REATTACH_PROVIDERS='").map(|r| r.trim_end_matches('\'').to_string())
            })
            .expect("the provider prints TF_REATTACH_PROVIDERS");
        // Keep reading its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        DebugProvider { child, reattach }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for DebugProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ctrl_c_stops_one_apply_of_a_reattached_provider_and_the_next_apply_runs() {
    let sim = Sim::start(|_| {});
    let mut provider = DebugProvider::start(&provider_dir());
    let mut wd = interrupted_vm(&sim);
    wd.set_env("TF_REATTACH_PROVIDERS", &provider.reattach);

    // Every Proxmox request now takes a minute: the create hangs in flight.
    sim.set_faults(serde_json::json!({ "latency_ms": 60_000 }));
    let mut apply = wd
        .command(&["apply", "-auto-approve", "-input=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("terraform apply starts");
    std::thread::sleep(Duration::from_secs(6));
    assert!(apply.try_wait().unwrap().is_none(), "the apply should still be waiting on Proxmox");
    let interrupted = Instant::now();
    let status = Command::new("kill").args(["-INT", &apply.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = apply.wait_with_output().unwrap();
    let waited = interrupted.elapsed();
    eprintln!("stopped {waited:?} after Ctrl-C");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "an interrupted apply must fail:\n{text}");
    assert!(waited < Duration::from_secs(30), "the apply took {waited:?} to stop after Ctrl-C:\n{text}");
    assert!(text.contains("cancel"), "the error should say the operation was cancelled:\n{text}");
    assert!(provider.alive(), "the reattached provider must survive a Ctrl-C");

    // Same provider process, next command: it runs normally.
    sim.set_faults(serde_json::json!({ "latency_ms": 0 }));
    let next = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_eq!(next.code, 0, "the next apply failed:\n{}{}", next.stdout, next.stderr);
    assert!(next.stdout.contains("1 added"), "{}", next.stdout);
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after apply must be empty:\n{}{}", plan.stdout, plan.stderr);
}
