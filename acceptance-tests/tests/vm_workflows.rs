//! strata_vm lifecycle and everyday Terraform workflows through the real Terraform
//! CLI, against pve-sim (the named stand-in for Proxmox VE) started in-process.

mod pve_common;

use std::collections::BTreeSet;

use pve_common::*;
use serde_json::{json, Value};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;
use strata_acceptance_tests::waits;
use strata_pve_client::client::Idempotent;
use strata_pve_client::vm::CreateSpec;

fn two_nodes() -> Sim {
    Sim::start(|c| c.nodes = vec!["pve1".into(), "pve2".into()])
}

/// A VM from scratch with one local disk and one NIC.
fn vm(address: &str, node: &str, extra: &str) -> String {
    format!(
        r#"
resource "strata_vm" "{address}" {{
  node      = "{node}"
  name      = "{address}"
  memory_mb = 512
  disks     = [{{ interface = "scsi0", storage = "local-lvm", size_gb = 2 }}]
  network_devices {{
    bridge = "vmbr0"
  }}
  {extra}
}}
"#
    )
}

fn apply(wd: &Workdir) -> String {
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply").stdout
}

fn rewrite(sim: &Sim, wd: &Workdir, resources: &str) {
    wd.write("main.tf", &format!("{}\n{resources}", sim.provider_block())).unwrap();
}

/// The planned actions per resource address (`terraform show -json` of a saved plan).
fn planned_actions(wd: &Workdir, extra: &[&str]) -> (Value, Vec<(String, Vec<String>)>) {
    let mut args = vec!["plan", "-out=p.tfplan", "-input=false"];
    args.extend_from_slice(extra);
    must(wd.run(&args).unwrap(), "plan");
    let shown = must(wd.run(&["show", "-json", "p.tfplan"]).unwrap(), "show plan");
    let plan: Value = serde_json::from_str(&shown.stdout).unwrap();
    let actions = plan["resource_changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|rc| {
            let acts = rc["change"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string());
            (rc["address"].as_str().unwrap().to_string(), acts.collect())
        })
        .collect();
    (plan, actions)
}

fn where_is(sim: &Sim, vmid: u32) -> (String, bool, Option<String>) {
    let v = sim.vms().into_iter().find(|v| v.vmid == vmid).expect("VM exists");
    (v.node.clone(), v.running(), v.pool.clone())
}

fn migrate_requests(sim: &Sim) -> Vec<String> {
    sim.handle
        .request_log()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/migrate"))
        .map(|r| format!("{} {}", r.path, r.status))
        .collect()
}

fn qmigrate_tasks(sim: &Sim) -> usize {
    let state = sim.handle.state_json();
    state["tasks"].as_object().unwrap().values().filter(|t| t["type"] == "qmigrate").count()
}

#[test]
fn a_vm_migrated_outside_terraform_is_followed_and_migrated_back_in_place() {
    let sim = two_nodes();
    let wd = sim.workdir(&vm("a", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    // HA (or a person) moves it.
    sim.block_on(sim.client.migrate_vm("pve1", vmid, "pve2", true)).unwrap();

    // Refresh follows it to its new node.
    must(wd.run(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).unwrap(), "refresh-only");
    let v = wd.resource_values("strata_vm.a").unwrap();
    assert_eq!((v["node"].as_str(), v["id"].clone()), (Some("pve2"), json!(format!("pve2/{vmid}"))));

    // The configuration pins pve1: an in-place migration back, never a replacement.
    let (plan, actions) = planned_actions(&wd, &[]);
    assert_eq!(actions, vec![("strata_vm.a".to_string(), vec!["update".to_string()])], "{plan}");
    let change = &plan["resource_changes"][0]["change"];
    assert_eq!((change["before"]["node"].as_str(), change["after"]["node"].as_str()), (Some("pve2"), Some("pve1")));

    sim.handle.clear_request_log();
    let out = apply(&wd);
    assert!(out.contains("0 added, 1 changed, 0 destroyed"), "{out}");
    assert_eq!(migrate_requests(&sim).len(), 1, "{:?}", migrate_requests(&sim));
    assert_eq!(where_is(&sim, vmid), ("pve1".to_string(), true, None));
    assert_eq!(state_vmids(&wd)["strata_vm.a"] as u32, vmid);
    assert_plan_empty(&wd);
}

#[test]
fn changing_node_migrates_in_place_with_one_task_same_vmid_and_disks() {
    let sim = two_nodes();
    let wd = sim.workdir(&vm("a", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    let disk_before = vm_config(&sim, vmid).get("scsi0").unwrap().to_string();
    let tasks_before = qmigrate_tasks(&sim);

    rewrite(&sim, &wd, &vm("a", "pve2", ""));
    let (_, actions) = planned_actions(&wd, &[]);
    assert_eq!(actions, vec![("strata_vm.a".to_string(), vec!["update".to_string()])]);
    sim.handle.clear_request_log();
    let out = apply(&wd);
    assert!(out.contains("0 added, 1 changed, 0 destroyed"), "{out}");

    let migrations = migrate_requests(&sim);
    assert_eq!(migrations, vec![format!("/api2/json/nodes/pve1/qemu/{vmid}/migrate 200")]);
    assert_eq!(qmigrate_tasks(&sim) - tasks_before, 1, "exactly one migration task");
    assert_eq!(where_is(&sim, vmid), ("pve2".to_string(), true, None));
    let cfg = sim.block_on(sim.client.vm_config("pve2", vmid)).unwrap().expect("on pve2");
    assert_eq!(cfg.get("scsi0"), Some(disk_before.as_str()), "the disk went with it");
    let v = wd.resource_values("strata_vm.a").unwrap();
    assert_eq!((v["vm_id"].as_u64(), v["id"].clone()), (Some(vmid as u64), json!(format!("pve2/{vmid}"))));
    assert_plan_empty(&wd);
}

#[test]
fn pool_change_is_applied_in_place() {
    let sim = Sim::start(|_| {});
    for p in ["blue", "green"] {
        sim.block_on(sim.client.write(reqwest::Method::POST, "/pools", &[("poolid", p.to_string())], Idempotent::No))
            .unwrap();
    }
    let wd = sim.workdir(&vm("a", "pve1", r#"pool = "blue""#));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    assert_eq!(where_is(&sim, vmid).2.as_deref(), Some("blue"));

    rewrite(&sim, &wd, &vm("a", "pve1", r#"pool = "green""#));
    let out = apply(&wd);
    assert!(out.contains("0 added, 1 changed, 0 destroyed"), "{out}");
    assert_eq!(state_vmids(&wd)["strata_vm.a"] as u32, vmid);
    assert_eq!(where_is(&sim, vmid).2.as_deref(), Some("green"));
    assert_plan_empty(&wd);

    rewrite(&sim, &wd, &vm("a", "pve1", ""));
    let out = apply(&wd);
    assert!(out.contains("0 added, 1 changed, 0 destroyed"), "{out}");
    assert_eq!(where_is(&sim, vmid).2, None);
    assert_plan_empty(&wd);
}

#[test]
fn started_false_shuts_the_guest_down_cleanly() {
    let sim = Sim::start(|c| c.guest_shutdown_ms = 300);
    let wd = sim.workdir(&vm("a", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    rewrite(&sim, &wd, &vm("a", "pve1", "started = false"));
    sim.handle.clear_request_log();
    apply(&wd);
    let log = sim.handle.request_log();
    let power: Vec<&str> = log.iter().filter(|r| r.path.contains("/status/")).map(|r| r.path.as_str()).collect();
    let shutdown = format!("/api2/json/nodes/pve1/qemu/{vmid}/status/shutdown");
    assert!(power.contains(&shutdown.as_str()), "{power:?}");
    assert!(!power.iter().any(|p| p.ends_with("/status/stop")), "a hard stop was sent: {power:?}");
    assert!(!where_is(&sim, vmid).1);
    assert_plan_empty(&wd);
}

#[test]
fn proxmox_endpoint_from_another_resource_plans_and_applies() {
    let sim = Sim::start(|_| {});
    let tf = format!(
        r#"
terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}
resource "terraform_data" "pve" {{
  input = "{endpoint}"
}}
provider "strata" {{
  proxmox {{
    endpoint  = terraform_data.pve.output
    api_token = "{TOKEN}"
    ca_cert   = "{ca}"
  }}
}}
{vm}
"#,
        endpoint = sim.handle.endpoint(),
        ca = sim.handle.ca_cert_file().display(),
        vm = vm("a", "pve1", "")
    );
    let wd = Workdir::new(&provider_dir(), &tf).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2, "the plan must succeed with changes:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 to add"), "{}", r.stdout);
    assert!(sim.handle.request_log().is_empty(), "a plan with unknown Proxmox settings calls out");
    apply(&wd);
    assert_eq!(sim.vms().len(), 1);
    assert_plan_empty(&wd);

    // The endpoint becomes unknown again (its source is replaced): existing VMs are
    // planned from their state without calling out, and nothing about them changes.
    wd.write(
        "main.tf",
        &tf.replace(
            &format!("input = \"{}\"", sim.handle.endpoint()),
            &format!("input = \"{}/\"", sim.handle.endpoint()),
        ),
    )
    .unwrap();
    sim.handle.clear_request_log();
    let (plan, actions) = planned_actions(&wd, &[]);
    assert!(sim.handle.request_log().is_empty(), "planned with unknown Proxmox settings but called out");
    let vm_action = actions.iter().find(|(a, _)| a == "strata_vm.a").unwrap();
    assert_eq!(vm_action.1, vec!["no-op".to_string()], "{}", plan["resource_changes"]);
    apply(&wd);
    assert_plan_empty(&wd);
}

#[test]
fn a_vm_without_proxmox_configured_fails_at_plan_naming_the_block() {
    let tf = format!(
        r#"
terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}
provider "strata" {{}}
{}
"#,
        vm("a", "pve1", "")
    );
    let mut wd = Workdir::new(&provider_dir(), &tf).unwrap();
    for k in ["ENDPOINT", "API_TOKEN", "USERNAME", "PASSWORD"] {
        wd.set_env(&format!("STRATA_PVE_{k}"), "");
    }
    must(wd.run(&["validate"]).unwrap(), "validate needs no Proxmox");
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Proxmox is not configured"), "{}", r.stderr);
    assert!(r.stderr.contains("proxmox block") && r.stderr.contains("proxmox.endpoint"), "{}", r.stderr);
}

fn legacy_vm(sim: &Sim) {
    let params: Vec<(String, String)> = [
        ("name", "legacy"),
        ("memory", "1024"),
        ("cores", "2"),
        ("tags", "db"),
        ("scsi0", "local-lvm:4"),
        ("net0", "virtio,bridge=vmbr0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    sim.block_on(sim.client.create_vm(&CreateSpec { node: "pve1".into(), vmid: 150, params })).unwrap();
    sim.block_on(sim.client.start_vm("pve1", 150)).unwrap();
}

#[test]
fn import_block_with_generate_config_out_then_empty_plan() {
    let sim = Sim::start(|_| {});
    legacy_vm(&sim);
    let wd = sim.workdir(
        r#"
import {
  to = strata_vm.legacy
  id = "pve1/150"
}
"#,
    );
    let r = wd.run(&["plan", "-generate-config-out=generated.tf", "-input=false"]).unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let generated = std::fs::read_to_string(wd.path().join("generated.tf")).unwrap();
    assert!(generated.contains("resource \"strata_vm\" \"legacy\""), "{generated}");
    let out = apply(&wd);
    assert!(out.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{out}");
    assert_plan_empty(&wd);
    assert_eq!(wd.resource_values("strata_vm.legacy").unwrap()["vm_id"], json!(150));
}

#[test]
fn state_rm_then_reimport_with_the_creating_configuration_plans_nothing() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    // A VM from scratch, a linked clone, and a full clone that keeps its template's
    // CPU (cores = 1).
    let clone = r#"
resource "strata_vm" "l" {
  node = "pve1"
  name = "l"
  clone {
    source_vm_id = 9000
    full         = false
  }
  network_devices {
    bridge = "vmbr0"
  }
}
resource "strata_vm" "c" {
  node = "pve1"
  name = "c"
  clone {
    source_vm_id = 9000
  }
  network_devices {
    bridge = "vmbr0"
  }
}
"#;
    let config = format!("{}\n{clone}", vm("plain", "pve1", "cpu {\n    cores = 2\n  }\n  tags = [\"db\"]"));
    let wd = sim.workdir(&config);
    apply(&wd);
    let ids = state_vmids(&wd);
    for (address, vmid) in &ids {
        must(wd.run(&["state", "rm", address]).unwrap(), "state rm");
        must(wd.run(&["import", "-input=false", address, &format!("pve1/{vmid}")]).unwrap(), "import");
    }
    assert_eq!(state_vmids(&wd), ids);
    let (plan, actions) = planned_actions(&wd, &[]);
    for address in ["strata_vm.plain", "strata_vm.l"] {
        let action = actions.iter().find(|(a, _)| a == address).unwrap();
        assert_eq!(action.1, vec!["no-op".to_string()], "{address}: {}", plan["resource_changes"]);
    }
    // Proxmox keeps no record of a full clone's source, so only the clone block is
    // added to the state; no cpu, NIC or other change.
    assert_eq!(planned_changes(&wd, "strata_vm.c"), BTreeSet::from(["clone".to_string()]));
    sim.handle.clear_request_log();
    apply(&wd);
    let writes: Vec<String> = sim
        .handle
        .request_log()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "recording the clone source must not touch the VM: {writes:?}");
    assert_plan_empty(&wd);
}

#[test]
fn moved_blocks_from_count_to_for_each_keep_the_vms() {
    let sim = Sim::start(|_| {});
    let counted = r#"
resource "strata_vm" "w" {
  count     = 2
  node      = "pve1"
  name      = "w${count.index}"
  memory_mb = 512
  disks     = [{ interface = "scsi0", storage = "local-lvm", size_gb = 2 }]
}
"#;
    let wd = sim.workdir(counted);
    apply(&wd);
    let before = state_vmids(&wd);
    let keyed = r#"
resource "strata_vm" "w" {
  for_each  = { a = 0, b = 1 }
  node      = "pve1"
  name      = "w${each.value}"
  memory_mb = 512
  disks     = [{ interface = "scsi0", storage = "local-lvm", size_gb = 2 }]
}
moved {
  from = strata_vm.w[0]
  to   = strata_vm.w["a"]
}
moved {
  from = strata_vm.w[1]
  to   = strata_vm.w["b"]
}
"#;
    rewrite(&sim, &wd, keyed);
    let out = apply(&wd);
    assert!(out.contains("0 added, 0 changed, 0 destroyed"), "{out}");
    let after = state_vmids(&wd);
    assert_eq!(after["strata_vm.w[\"a\"]"], before["strata_vm.w[0]"]);
    assert_eq!(after["strata_vm.w[\"b\"]"], before["strata_vm.w[1]"]);
    assert_eq!(sim.vms().len(), 2);
    assert_plan_empty(&wd);
}

#[test]
fn refresh_only_records_drift_without_touching_the_vm() {
    let sim = Sim::start(|_| {});
    let wd = sim.workdir(&vm("a", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    let sets = vec![("memory".to_string(), "768".to_string())];
    sim.block_on(sim.client.update_config("pve1", vmid, &sets, &[])).unwrap();
    sim.handle.clear_request_log();
    let r = must(wd.run(&["plan", "-refresh-only", "-input=false"]).unwrap(), "plan -refresh-only");
    assert!(r.stdout.contains("memory_mb") && r.stdout.contains("512 -> 768"), "{}", r.stdout);
    must(wd.run(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).unwrap(), "apply -refresh-only");
    assert!(sim.handle.request_log().iter().all(|r| r.method == "GET"), "refresh-only must not change the VM");
    assert_eq!(wd.resource_values("strata_vm.a").unwrap()["memory_mb"], json!(768));
    assert_eq!(vm_config(&sim, vmid).get("memory"), Some("768"));
    // A normal plan then brings the configuration's value back.
    assert_eq!(planned_changes(&wd, "strata_vm.a"), BTreeSet::from(["memory_mb".to_string()]));
}

#[test]
fn replace_with_create_before_destroy_makes_the_new_vm_first() {
    let sim = Sim::start(|_| {});
    let wd = sim.workdir(&vm("a", "pve1", "lifecycle {\n    create_before_destroy = true\n  }"));
    apply(&wd);
    let old = state_vmids(&wd)["strata_vm.a"] as u32;
    sim.handle.clear_request_log();
    let out =
        must(wd.run(&["apply", "-replace=strata_vm.a", "-auto-approve", "-input=false"]).unwrap(), "apply -replace")
            .stdout;
    assert!(out.contains("1 added, 0 changed, 1 destroyed"), "{out}");
    let new = state_vmids(&wd)["strata_vm.a"] as u32;
    assert_ne!(new, old);
    let vms: Vec<u32> = sim.vms().iter().map(|v| v.vmid).collect();
    assert_eq!(vms, vec![new]);
    // Created before the old one was destroyed.
    let log = sim.handle.request_log();
    let create = log.iter().position(|r| r.method == "POST" && r.path == "/api2/json/nodes/pve1/qemu").unwrap();
    let destroy = log.iter().position(|r| r.method == "DELETE").unwrap();
    assert!(create < destroy, "create_before_destroy not honoured");
    assert_plan_empty(&wd);
}

#[test]
fn ignore_changes_hides_drift_and_config_changes_of_that_attribute() {
    let sim = Sim::start(|_| {});
    let wd = sim.workdir(&vm("a", "pve1", "lifecycle {\n    ignore_changes = [memory_mb]\n  }"));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    let sets = vec![("memory".to_string(), "1024".to_string())];
    sim.block_on(sim.client.update_config("pve1", vmid, &sets, &[])).unwrap();
    assert_plan_empty(&wd);
    let mut next = vm("a", "pve1", "lifecycle {\n    ignore_changes = [memory_mb]\n  }");
    next = next.replace("memory_mb = 512", "memory_mb = 2048");
    rewrite(&sim, &wd, &next);
    assert_plan_empty(&wd);
    // Other attributes are still managed.
    rewrite(&sim, &wd, &next.replace("memory_mb = 2048", "memory_mb = 2048\n  tags = [\"x\"]"));
    apply(&wd);
    assert_eq!(vm_config(&sim, vmid).get("memory"), Some("1024"));
    assert_eq!(vm_config(&sim, vmid).get("tags"), Some("x"));
}

fn ten_vms_at_parallelism(parallelism: &str) {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let wd = sim.workdir(&workers(10, 1024, 1, 2));
    let flag = format!("-parallelism={parallelism}");
    let out = must(wd.run(&["apply", "-auto-approve", "-input=false", &flag]).unwrap(), "apply").stdout;
    assert!(out.contains("10 added"), "{out}");
    let ids: BTreeSet<u64> = state_vmids(&wd).values().copied().collect();
    assert_eq!(ids.len(), 10);
    let in_sim: BTreeSet<u64> = sim.vms().iter().map(|v| v.vmid as u64).filter(|v| *v != TEMPLATE as u64).collect();
    assert_eq!(in_sim, ids, "orphans or missing VMs");
    assert_plan_empty(&wd);
}

#[test]
fn ten_vms_at_parallelism_1() {
    ten_vms_at_parallelism("1");
}

#[test]
fn ten_vms_at_parallelism_20() {
    ten_vms_at_parallelism("20");
}

#[test]
fn debug_logs_show_each_proxmox_request_and_no_secret() {
    let sim = Sim::start(|_| {});
    let mut wd = sim.workdir(&vm("a", "pve1", ""));
    wd.set_env("TF_LOG_PROVIDER", "DEBUG");
    let r = must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("Proxmox request")).collect();
    assert!(
        lines.iter().any(|l| l.contains("/nodes/pve1/qemu") && l.contains("POST") && l.contains("200")),
        "no create request logged:\n{}",
        r.stderr
    );
    assert!(lines.iter().all(|l| l.contains("duration_ms")), "{lines:?}");
    let secret = TOKEN.rsplit_once('=').unwrap().1;
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret), "the API token leaked into the logs");
}

#[test]
fn the_provider_records_its_waits_for_proxmox_tasks_in_terraforms_log() {
    // Each task stays running 1.5 s: creating the VM waits at least that long for one.
    let sim = Sim::start(|c| c.task_ms = 1500);
    let mut wd = sim.workdir(&vm("a", "pve1", ""));
    let log = wd.path().join("terraform.log");
    wd.set_env("TF_LOG_PROVIDER", "INFO");
    wd.set_env("TF_LOG_PATH", &log.display().to_string());
    let t = std::time::Instant::now();
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply");
    let elapsed = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap();
    let (all, kinds) = waits::totals(&waits::parse(&text));
    let task = kinds.iter().find(|k| k.what == "proxmox_task").unwrap_or_else(|| {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("terraform-provider-strata:")).collect();
        panic!("no proxmox_task wait read from the log: {kinds:?}\n{}", lines.join("\n"))
    });
    assert!(task.seconds >= 1.2, "a 1.5 s task, {:.2} s of waiting recorded: {task:?}", task.seconds);
    assert!(task.wall <= task.seconds + 1e-9 && all.wall <= elapsed, "{all:?} within {elapsed:.2} s");
    let secret = TOKEN.rsplit_once('=').unwrap().1;
    assert!(!text.contains(secret), "the API token leaked into the log");
}

#[test]
fn an_http_endpoint_is_refused_at_validate_without_echoing_the_token() {
    let tf = format!(
        r#"
terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}
provider "strata" {{
  proxmox {{
    endpoint  = "http://pve1.example.com:8006"
    api_token = "root@pam!t=never-shown-secret"
  }}
}}
{}
"#,
        vm("a", "pve1", "")
    );
    let wd = Workdir::new(&provider_dir(), &tf).unwrap();
    let r = wd.run(&["validate"]).unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("must use https") && r.stderr.contains("proxmox.endpoint"), "{}", r.stderr);
    assert!(!r.stderr.contains("never-shown-secret"));
}

#[test]
fn a_clone_without_network_devices_keeps_the_templates_nics() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let clone = |memory: i64| {
        format!(
            r#"
resource "strata_vm" "c" {{
  node      = "pve1"
  name      = "c"
  memory_mb = {memory}
  clone {{
    source_vm_id = {TEMPLATE}
  }}
}}
"#
        )
    };
    let wd = sim.workdir(&clone(1024));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.c"] as u32;
    let net0 = vm_config(&sim, vmid).get("net0").map(str::to_string);
    assert!(net0.as_deref().is_some_and(|n| n.contains("bridge=vmbr0")), "the template's NIC is gone: {net0:?}");
    assert_plan_empty(&wd);
    // An update leaves the NICs alone too.
    rewrite(&sim, &wd, &clone(1536));
    apply(&wd);
    assert_eq!(vm_config(&sim, vmid).get("net0").map(str::to_string), net0);
    assert_plan_empty(&wd);
}

#[test]
fn started_false_stops_a_guest_that_ignores_shutdown_after_shutdown_timeout() {
    // The guest would need 30 s; the configuration allows 1 s.
    let sim = Sim::start(|c| c.guest_shutdown_ms = 30_000);
    let wd = sim.workdir(&vm("a", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.a"] as u32;
    rewrite(&sim, &wd, &vm("a", "pve1", "started          = false\n  shutdown_timeout = \"1s\""));
    let started = std::time::Instant::now();
    apply(&wd);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the timeout was not honoured");
    assert!(!where_is(&sim, vmid).1, "still running");
    let state = sim.handle.state_json();
    let shutdown = state["tasks"].as_object().unwrap().values().find(|t| t["type"] == "qmshutdown").unwrap().clone();
    assert_eq!(shutdown["exitstatus"], "WARNINGS: 1", "forced after the timeout: {shutdown}");
    assert_plan_empty(&wd);
}

#[test]
fn a_vm_without_a_started_line_that_was_stopped_through_the_api_is_planned_to_start_and_started() {
    let sim = Sim::start(|_| {});
    let wd = sim.workdir(&vm("v", "pve1", ""));
    apply(&wd);
    let vmid = state_vmids(&wd)["strata_vm.v"] as u32;
    sim.block_on(sim.client.stop_vm("pve1", vmid)).unwrap();
    assert!(!where_is(&sim, vmid).1, "the VM should be stopped");

    let (_, actions) = planned_actions(&wd, &[]);
    assert_eq!(actions, vec![("strata_vm.v".to_string(), vec!["update".to_string()])], "{actions:?}");
    let plan = wd.plan_exit_code().unwrap();
    assert!(
        plan.stdout.lines().any(|l| l.contains("started") && l.trim_end().ends_with("= false -> true")),
        "{}",
        plan.stdout
    );
    apply(&wd);
    assert!(where_is(&sim, vmid).1, "the VM was not started");
    assert_plan_empty(&wd);
}

#[test]
fn a_create_that_outlives_its_go_syntax_timeout_is_cancelled_and_names_the_limit() {
    let sim = Sim::start(|_| {});
    // Every Proxmox request now takes 20 s; the configuration allows 1.5 s.
    sim.set_faults(serde_json::json!({ "latency_ms": 20_000 }));
    let wd = sim.workdir(&vm("slow", "pve1", "timeouts {\n    create = \"1.5s\"\n  }"));
    let started = std::time::Instant::now();
    let run = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    let took = started.elapsed();
    assert_ne!(run.code, 0, "the apply should fail:\n{}", run.stdout);
    assert!(run.stderr.contains("timed out after 1500ms (timeouts.create)"), "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(18), "the limit did not stop the create: {took:?}");
}
