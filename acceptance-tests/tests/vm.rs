//! strata_vm and the Proxmox data sources through the real Terraform CLI, against
//! pve-sim (the named stand-in for Proxmox VE) started in-process per test.

mod pve_common;

use std::collections::BTreeSet;

use pve_common::*;
use serde_json::{json, Value};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;
use strata_pve_client::vm::CreateSpec;

#[test]
fn ten_clones_in_parallel_then_in_place_updates_shrink_refusal_and_destroy() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let wd = sim.workdir(&workers(10, 2048, 2, 4));
    let run = must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply");
    assert!(run.stdout.contains("10 added"), "{}", run.stdout);

    let ids = state_vmids(&wd);
    assert_eq!(ids.len(), 10);
    let distinct: BTreeSet<u64> = ids.values().copied().collect();
    assert_eq!(distinct.len(), 10, "VMID collision: {ids:?}");
    let vms = sim.vms();
    assert_eq!(vms.len(), 11, "{vms:?}");
    for vm in vms.iter().filter(|v| v.vmid != TEMPLATE) {
        assert!(vm.running(), "VM {} not running", vm.vmid);
        assert!(distinct.contains(&(vm.vmid as u64)), "VM {} is not in the state", vm.vmid);
        let cfg = vm_config(&sim, vm.vmid);
        assert_eq!(cfg.get("memory"), Some("2048"));
        assert!(cfg.get("scsi0").unwrap().contains("size=4G"), "{cfg:?}");
        assert!(cfg.get("ipconfig0").unwrap().starts_with("ip=10.0.0."), "{cfg:?}");
    }
    let w3 = wd.resource_values("strata_vm.w[3]").unwrap();
    assert_eq!(w3["ipv4_addresses"], json!(["10.0.0.13"]));
    assert_eq!(w3["id"], json!(format!("pve1/{}", w3["vm_id"])));
    assert!(w3["network_devices"][0]["mac_address"].as_str().unwrap().starts_with("BC:24:11:"));
    assert_plan_empty(&wd);

    // Memory, cores, tags and a bigger disk: all in place, same VMIDs.
    let mut next = workers(10, 3072, 4, 6);
    next = next.replace(r#"tags      = ["k8s", "worker"]"#, r#"tags      = ["k8s", "worker", "v2"]"#);
    wd.write("main.tf", &format!("{}\n{next}", sim.provider_block())).unwrap();
    let run = must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "update");
    assert!(run.stdout.contains("0 added, 10 changed, 0 destroyed"), "{}", run.stdout);
    assert_eq!(state_vmids(&wd), ids, "an in-place update must keep every VM");
    for id in ids.values() {
        let cfg = vm_config(&sim, *id as u32);
        assert_eq!(cfg.get("memory"), Some("3072"));
        assert_eq!(cfg.get("cores"), Some("4"));
        assert_eq!(cfg.get("tags"), Some("k8s;v2;worker"));
        assert!(cfg.get("scsi0").unwrap().contains("size=6G"), "{cfg:?}");
    }
    assert_plan_empty(&wd);

    // Shrinking is refused at plan time, naming the attribute.
    wd.write(
        "main.tf",
        &format!("{}\n{}", sim.provider_block(), workers(10, 3072, 4, 3).replace("\"worker\"]", "\"worker\", \"v2\"]")),
    )
    .unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Disks cannot shrink") && r.stderr.contains("disks[0].size_gb"), "{}", r.stderr);

    wd.write("main.tf", &format!("{}\n{next}", sim.provider_block())).unwrap();
    must(wd.run(&["destroy", "-auto-approve", "-input=false"]).unwrap(), "destroy");
    let left: Vec<u32> = sim.vms().iter().map(|v| v.vmid).collect();
    assert_eq!(left, vec![TEMPLATE], "destroy must leave only the template");
    let state = sim.handle.state_json();
    let volumes: Vec<&String> = state["volumes"].as_object().unwrap().keys().collect();
    assert!(volumes.iter().all(|v| v.contains(&format!("-{TEMPLATE}-"))), "leaked volumes: {volumes:?}");
}

#[test]
fn drift_made_through_the_api_shows_up_as_exactly_that_change() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let wd = sim.workdir(&workers(1, 2048, 2, 4));
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply");
    assert_plan_empty(&wd);
    let vmid = state_vmids(&wd)["strata_vm.w[0]"] as u32;

    let sets = vec![("memory".to_string(), "4096".to_string()), ("onboot".to_string(), "1".to_string())];
    sim.block_on(sim.client.update_config("pve1", vmid, &sets, &[])).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("memory_mb") && r.stdout.contains("4096 -> 2048"), "{}", r.stdout);
    // on_boot is not in the configuration: observed, not fought.
    assert_eq!(planned_changes(&wd, "strata_vm.w[0]"), BTreeSet::from(["memory_mb".to_string()]));

    // A VM deleted outside Terraform is planned for re-creation.
    sim.block_on(sim.client.destroy_vm("pve1", vmid)).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("1 to add"), "{}", r.stdout);
}

#[test]
fn import_of_a_vm_made_outside_terraform_plans_no_changes() {
    let sim = Sim::start(|_| {});
    sim.create_legacy_vm(150);

    let wd = sim.workdir(
        r#"
resource "strata_vm" "db" {
  node        = "pve1"
  vm_id       = 150
  name        = "legacy-db"
  description = "made by hand"
  tags        = ["db", "prod"]
  memory_mb   = 4096
  on_boot     = true
  cpu {
    cores   = 2
    sockets = 1
  }
  disks = [{ interface = "scsi0", storage = "local-lvm", size_gb = 16 }]
  network_devices {
    bridge   = "vmbr0"
    firewall = true
  }
}
"#,
    );
    must(wd.run(&["import", "-input=false", "strata_vm.db", "pve1/150"]).unwrap(), "import");
    let v = wd.resource_values("strata_vm.db").unwrap();
    assert_eq!(v["vm_id"], json!(150));
    assert_eq!(v["started"], json!(true));
    assert_plan_empty(&wd);

    // A bad import ID is explained by the provider: the target is declared (a second
    // resource in the configuration, not in the state), so Terraform asks the provider.
    let tf = std::fs::read_to_string(wd.path().join("main.tf")).unwrap();
    let db = &tf[tf.find("resource \"strata_vm\" \"db\"").unwrap()..];
    wd.write("main.tf", &format!("{tf}\n{}", db.replace("\"db\"", "\"other\""))).unwrap();
    for id in ["150", "pve1/one-fifty"] {
        let r = wd.run(&["import", "-input=false", "strata_vm.other", id]).unwrap();
        assert_ne!(r.code, 0, "{id}: {}", r.stdout);
        // Terraform wraps a diagnostic's detail: compare with the line breaks as spaces.
        let flat = r.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!flat.contains("does not exist in the configuration"), "Terraform refused: {flat}");
        assert!(
            flat.contains("Invalid import ID")
                && flat.contains(&format!("Expected NODE/VMID, e.g. pve1/123; got \"{id}\"")),
            "{flat}"
        );
    }
    let r = wd.run(&["state", "list"]).unwrap();
    assert_eq!(r.stdout.trim(), "strata_vm.db", "nothing was imported");
}

#[test]
fn first_apply_and_destroy_succeed_under_5xx_resets_and_lock_contention_without_orphans() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let wd = sim.workdir(&workers(10, 2048, 2, 4));
    sim.set_faults(json!({ "fail_5xx_pct": 10, "reset_pct": 5, "reset_after_pct": 50, "lock_contention_pct": 10 }));
    // Retries must absorb transient faults: the FIRST apply succeeds.
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "the first apply under faults");
    let log = sim.handle.request_log();
    let faults = log.iter().filter(|r| r.fault.is_some()).count();
    let resets = log.iter().filter(|r| r.status == 0).count();
    assert!(faults > 0 && resets > 0, "faults {faults}, resets {resets}: the test proves nothing");
    sim.set_faults(json!({ "fail_5xx_pct": 0, "reset_pct": 0, "lock_contention_pct": 0 }));
    assert_plan_empty(&wd);

    let ids = state_vmids(&wd);
    let in_state: BTreeSet<u32> = ids.values().map(|v| *v as u32).collect();
    let in_sim: BTreeSet<u32> = sim.vms().iter().map(|v| v.vmid).filter(|v| *v != TEMPLATE).collect();
    assert_eq!(in_state.len(), 10);
    assert_eq!(in_sim, in_state, "orphans or missing VMs");
    let names: BTreeSet<String> = sim.vms().iter().filter_map(|v| v.name.clone()).collect();
    assert_eq!(names.len(), 11, "duplicate names: {names:?}");
    eprintln!("first apply succeeded; {faults} injected faults ({resets} connection resets)");

    sim.set_faults(json!({ "fail_5xx_pct": 10, "reset_pct": 5, "lock_contention_pct": 10 }));
    must(wd.run(&["destroy", "-auto-approve", "-input=false"]).unwrap(), "the first destroy under faults");
    sim.set_faults(json!({ "fail_5xx_pct": 0, "reset_pct": 0, "lock_contention_pct": 0 }));
    assert_eq!(sim.vms().iter().map(|v| v.vmid).collect::<Vec<_>>(), vec![TEMPLATE]);
}

#[test]
fn bad_input_is_refused_at_plan_time_naming_the_attribute() {
    // Configuring the provider makes no request: an endpoint nobody listens on is fine
    // for validation and planning errors.
    let tf = r#"
terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}
provider "strata" {
  proxmox {
    endpoint  = "https://127.0.0.1:1"
    api_token = "root@pam!t=never-printed-secret"
  }
}
resource "strata_vm" "bad" {
  node      = "pve1"
  name      = "bad"
  memory_mb = 0
  disks     = [{ interface = "nvme0", storage = "local-lvm", size_gb = 8 }]
  network_devices {
    bridge = "vmbr0"
    model  = "rtl9999"
  }
  cloud_init {
    ipv4 {
      address = "10.0.0.300/24"
    }
  }
}
"#;
    let wd = Workdir::new(&provider_dir(), tf).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    for path in ["memory_mb", "disks[0].interface", "network_devices[0].model", "cloud_init.ipv4.address"] {
        assert!(r.stderr.contains(path), "no diagnostic naming {path}:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("never-printed-secret"));
}

#[test]
fn data_sources_list_nodes_and_find_vms_by_tag_with_password_login_from_env() {
    let sim = Sim::start(|c| {
        c.nodes = vec!["pve1".into(), "pve2".into()];
        c.user = Some("terraform@pve".into());
        c.password = Some("tf-pass-123".into());
    });
    sim.seed_template();
    for (vmid, name, tags) in [(101, "k8s-a", "k8s"), (102, "k8s-b", "k8s;gpu"), (103, "db", "db")] {
        let params = vec![("name".to_string(), name.to_string()), ("tags".to_string(), tags.to_string())];
        sim.block_on(sim.client.create_vm(&CreateSpec { node: "pve1".into(), vmid, params })).unwrap();
    }
    let tf = r#"
terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}
provider "strata" {}

data "strata_pve_nodes" "all" {}
data "strata_vms" "k8s" {
  tags      = ["k8s"]
  templates = false
}
data "strata_vms" "templates" {
  name_regex = "^ubuntu-"
  templates  = true
}
output "nodes" { value = [for n in data.strata_pve_nodes.all.nodes : n.name] }
output "k8s" { value = [for v in data.strata_vms.k8s.vms : v.vm_id] }
output "template" { value = data.strata_vms.templates.vms[0].vm_id }
"#;
    let mut wd = Workdir::new(&provider_dir(), tf).unwrap();
    wd.set_env("STRATA_PVE_ENDPOINT", sim.handle.endpoint());
    wd.set_env("STRATA_PVE_USERNAME", "terraform@pve");
    wd.set_env("STRATA_PVE_PASSWORD", "tf-pass-123");
    wd.set_env("STRATA_PVE_CA_CERT", &sim.handle.ca_cert_file().display().to_string());
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply");
    let out = must(wd.run(&["output", "-json"]).unwrap(), "output");
    let out: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(out["nodes"]["value"], json!(["pve1", "pve2"]));
    assert_eq!(out["k8s"]["value"], json!([101, 102]));
    assert_eq!(out["template"]["value"], json!(TEMPLATE));
    assert!(sim.handle.request_log().iter().any(|r| r.path.ends_with("/access/ticket") && r.status == 200));
    let _ = &sim.dir;
}

#[test]
fn a_create_that_fails_midway_is_tainted_then_replaced_not_orphaned() {
    let sim = Sim::start(|_| {});
    sim.seed_template();
    let good = r#"
resource "strata_vm" "x" {
  node = "pve1"
  name = "half"
  clone {
    source_vm_id = 9000
  }
  disks = [
    { interface = "scsi0", storage = "local-lvm", size_gb = 2 },
    { interface = "scsi1", storage = "STORAGE", size_gb = 1 },
  ]
  network_devices {
    bridge = "vmbr0"
  }
}
"#;
    // The clone succeeds; adding the second disk fails (no such storage).
    let wd = sim.workdir(&good.replace("STORAGE", "nosuch"));
    let r = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nosuch"), "{}", r.stderr);
    let first = state_vmids(&wd)["strata_vm.x"];
    let state = wd.show().unwrap();
    let res = &state["values"]["root_module"]["resources"][0];
    assert_eq!(res["tainted"], json!(true), "{res}");
    let uuid_before = vm_config(&sim, first as u32).get("smbios1").unwrap().to_string();

    wd.write("main.tf", &format!("{}\n{}", sim.provider_block(), good.replace("STORAGE", "local-lvm"))).unwrap();
    let r = must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply after fix");
    assert!(r.stdout.contains("1 added, 0 changed, 1 destroyed"), "{}", r.stdout);
    let now: Vec<u32> = sim.vms().iter().map(|v| v.vmid).filter(|v| *v != TEMPLATE).collect();
    assert_eq!(now.len(), 1);
    // Same VMID is possible (it became free), but it is a new VM with both disks.
    let cfg = vm_config(&sim, now[0]);
    assert_ne!(cfg.get("smbios1").unwrap(), uuid_before, "the tainted VM was replaced");
    assert!(cfg.get("scsi1").unwrap().starts_with("local-lvm:"), "{cfg:?}");
    assert_plan_empty(&wd);
}
