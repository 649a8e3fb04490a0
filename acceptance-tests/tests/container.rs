//! strata_container and strata_containers through the real Terraform CLI, against
//! pve-sim (the named stand-in for Proxmox VE) started in-process per test.

mod pve_common;

use std::collections::{BTreeMap, BTreeSet};

use pve_common::*;
use serde_json::{json, Value};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;
use strata_pve_client::ct::CtCreateSpec;

/// Two masters from the OS template and `clones` workers cloned from the container
/// template, shaped like the reference architecture's `pct create`.
fn nodes(clones: usize, memory: i64, cores: i64, rootfs_gb: i64, tags: &str) -> String {
    format!(
        r#"
resource "strata_container" "m" {{
  count      = 2
  node       = "pve1"
  hostname   = "k8s-master-${{count.index}}"
  ostemplate = "{DEBIAN}"
  cores      = {cores}
  memory_mb  = {memory}
  swap_mb    = 0
  tags       = [{tags}]
  rootfs {{
    storage = "local-lvm"
    size_gb = {rootfs_gb}
  }}
  network {{
    name   = "eth0"
    bridge = "vmbr0"
    ip     = "10.0.0.${{10 + count.index}}/24"
    gateway = "10.0.0.1"
  }}
  features {{
    nesting = true
  }}
  onboot  = true
  started = true
}}

resource "strata_container" "w" {{
  count     = {clones}
  node      = "pve1"
  hostname  = "k8s-worker-${{count.index}}"
  cores     = {cores}
  memory_mb = {memory}
  tags      = [{tags}]
  clone {{
    source_id = {CT_TEMPLATE}
  }}
  rootfs {{
    storage = "local-lvm"
    size_gb = {rootfs_gb}
  }}
  network {{
    name   = "eth0"
    bridge = "vmbr0"
    ip     = "dhcp"
  }}
}}
"#
    )
}

/// vm_id by address of every strata_container in the state.
fn state_ctids(wd: &Workdir) -> BTreeMap<String, u32> {
    let state = wd.show().unwrap();
    state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["type"] == "strata_container")
        .map(|r| (r["address"].as_str().unwrap().to_string(), r["values"]["vm_id"].as_u64().unwrap() as u32))
        .collect()
}

fn apply(wd: &Workdir, what: &str) -> String {
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), what).stdout
}

/// Volumes in the simulator's state other than the template's.
fn leftover_volumes(sim: &Sim) -> Vec<String> {
    let state = sim.handle.state_json();
    state["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|v| !v.contains(&format!("-{CT_TEMPLATE}-")) && !v.contains(&format!("-{TEMPLATE}-")))
        .cloned()
        .collect()
}

#[test]
fn five_containers_from_template_and_clone_then_in_place_changes_shrink_refusal_and_destroy() {
    let sim = Sim::start(|_| {});
    sim.seed_ct_template();
    let wd = sim.workdir(&nodes(3, 2048, 2, 8, r#""k8s""#));
    let out = apply(&wd, "apply");
    assert!(out.contains("5 added"), "{out}");

    let ids = state_ctids(&wd);
    let distinct: BTreeSet<u32> = ids.values().copied().collect();
    assert_eq!(distinct.len(), 5, "VMID collision: {ids:?}");
    let in_sim: BTreeSet<u32> = sim.cts().iter().map(|c| c.vmid).filter(|v| *v != CT_TEMPLATE).collect();
    assert_eq!(in_sim, distinct);
    for c in sim.cts().iter().filter(|c| c.vmid != CT_TEMPLATE) {
        assert!(c.running(), "CT {} not running", c.vmid);
        let cfg = sim.ct_config(c.vmid);
        assert_eq!(cfg.get("memory"), Some("2048"));
        assert_eq!(cfg.get("unprivileged"), Some("1"));
        assert!(cfg.get("rootfs").unwrap().contains("size=8G"), "{cfg:?}");
        // Proxmox's own rewriting of what was sent: hwaddr and type added, name first.
        let net0 = cfg.get("net0").unwrap();
        assert!(net0.starts_with("name=eth0,bridge=vmbr0,") && net0.contains("type=veth"), "{net0}");
    }
    let m0 = wd.resource_values("strata_container.m[0]").unwrap();
    assert_eq!(m0["ipv4_addresses"], json!(["10.0.0.10"]));
    assert_eq!(m0["id"], json!(format!("pve1/{}", m0["vm_id"])));
    let w1 = wd.resource_values("strata_container.w[1]").unwrap();
    let lease = w1["ipv4_addresses"][0].as_str().unwrap_or_default().to_string();
    assert!(lease.starts_with("10.100."), "a running DHCP container reports its lease: {w1}");
    assert!(w1["network"][0]["mac_address"].as_str().unwrap().starts_with("BC:24:11:"));
    assert_plan_empty(&wd);

    // The data source: by name, regex and tag; the template too; the OS templates.
    let ds = r#"
data "strata_containers" "masters" {
  name_regex = "^k8s-master-"
  tags       = ["k8s"]
}
data "strata_containers" "golden" {
  node      = "pve1"
  name      = "debian-golden"
  templates = true
}
output "masters" { value = [for c in data.strata_containers.masters.containers : c.vm_id] }
output "golden" { value = data.strata_containers.golden.containers[0].vm_id }
output "os_templates" { value = data.strata_containers.golden.os_templates }
"#;
    wd.write("main.tf", &format!("{}\n{}\n{ds}", sim.provider_block(), nodes(3, 2048, 2, 8, r#""k8s""#))).unwrap();
    apply(&wd, "data sources");
    let outputs: Value = serde_json::from_str(&must(wd.run(&["output", "-json"]).unwrap(), "output").stdout).unwrap();
    let masters: Vec<u64> = serde_json::from_value(outputs["masters"]["value"].clone()).unwrap();
    let mut want = vec![ids["strata_container.m[0]"] as u64, ids["strata_container.m[1]"] as u64];
    want.sort();
    assert_eq!(masters, want, "sorted by VMID");
    assert_eq!(outputs["golden"]["value"], json!(CT_TEMPLATE));
    assert!(outputs["os_templates"]["value"].as_array().unwrap().contains(&json!(DEBIAN)), "{outputs}");

    // Memory, cores, tags and a bigger rootfs: all in place, same VMIDs.
    let next = nodes(3, 3072, 4, 10, r#""k8s", "v2""#);
    wd.write("main.tf", &format!("{}\n{next}", sim.provider_block())).unwrap();
    let out = apply(&wd, "update");
    assert!(out.contains("0 added, 5 changed, 0 destroyed"), "{out}");
    assert_eq!(state_ctids(&wd), ids, "an in-place update must keep every container");
    for id in ids.values() {
        let cfg = sim.ct_config(*id);
        assert_eq!(cfg.get("memory"), Some("3072"));
        assert_eq!(cfg.get("cores"), Some("4"));
        assert_eq!(cfg.get("tags"), Some("k8s;v2"));
        assert!(cfg.get("rootfs").unwrap().contains("size=10G"), "{cfg:?}");
    }
    assert_plan_empty(&wd);

    // Shrinking is refused at plan time, naming the attribute; nothing changes.
    wd.write("main.tf", &format!("{}\n{}", sim.provider_block(), nodes(3, 3072, 4, 6, r#""k8s", "v2""#))).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Volumes cannot shrink") && r.stderr.contains("rootfs.size_gb"), "{}", r.stderr);

    wd.write("main.tf", &format!("{}\n{next}", sim.provider_block())).unwrap();
    must(wd.run(&["destroy", "-auto-approve", "-input=false"]).unwrap(), "destroy");
    let left: Vec<u32> = sim.cts().iter().map(|c| c.vmid).collect();
    assert_eq!(left, vec![CT_TEMPLATE], "destroy must leave only the template");
    assert_eq!(leftover_volumes(&sim), Vec::<String>::new(), "leaked volumes");
}

#[test]
fn drift_through_the_api_shows_as_exactly_that_change_and_normalised_values_none() {
    let sim = Sim::start_with_root();
    sim.seed_ct_template();
    let wd = sim.workdir(&nodes(0, 2048, 2, 8, r#""k8s", "master""#));
    apply(&wd, "apply");
    assert_plan_empty(&wd);
    let vmid = state_ctids(&wd)["strata_container.m[0]"];

    // Values Proxmox rewrites differently from how they were sent make no diff:
    // flags in another order and spelling, tags in another order and case.
    let same =
        vec![("features".to_string(), "nesting=true".to_string()), ("tags".to_string(), "MASTER,k8s".to_string())];
    sim.block_on(sim.client.update_ct_config("pve1", vmid, &same, &[])).unwrap();
    assert_plan_empty(&wd);

    let sets = vec![("memory".to_string(), "4096".to_string())];
    sim.block_on(sim.client.update_ct_config("pve1", vmid, &sets, &[])).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("4096 -> 2048"), "{}", r.stdout);
    assert_eq!(planned_changes(&wd, "strata_container.m[0]"), BTreeSet::from(["memory_mb".to_string()]));

    // A feature flag turned on outside shows up as that flag.
    let sets =
        vec![("memory".to_string(), "2048".to_string()), ("features".to_string(), "fuse=1,nesting=1".to_string())];
    let root = sim.root_client();
    sim.block_on(root.update_ct_config("pve1", vmid, &sets, &[])).unwrap();
    assert_eq!(planned_changes(&wd, "strata_container.m[0]"), BTreeSet::from(["features".to_string()]));

    // A container deleted outside Terraform is planned for re-creation.
    sim.block_on(sim.client.destroy_ct("pve1", vmid)).unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("1 to add"), "{}", r.stdout);
}

#[test]
fn import_of_a_container_made_outside_terraform_plans_no_changes() {
    let sim = Sim::start(|_| {});
    let params: Vec<(String, String)> = [
        ("ostemplate", DEBIAN),
        ("hostname", "legacy-nfs"),
        ("memory", "4096"),
        ("swap", "0"),
        ("cores", "2"),
        ("tags", "nfs;prod"),
        ("description", "made by hand"),
        ("onboot", "1"),
        ("rootfs", "local-lvm:16"),
        ("mp0", "local-lvm:32,mp=/srv/nfs,backup=1"),
        ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.30/24,gw=10.0.0.1,firewall=1"),
        ("features", "nesting=1"),
        ("startup", "order=2,up=30"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    sim.block_on(sim.client.create_ct(&CtCreateSpec { node: "pve1".into(), vmid: 150, params })).unwrap();
    sim.block_on(sim.client.start_ct("pve1", 150)).unwrap();

    let tf = r#"
import {
  to = strata_container.nfs
  id = "pve1/150"
}

resource "strata_container" "nfs" {
  node        = "pve1"
  hostname    = "legacy-nfs"
  description = "made by hand"
  tags        = ["nfs", "prod"]
  cores       = 2
  memory_mb   = 4096
  swap_mb     = 0
  onboot      = true
  rootfs {
    storage = "local-lvm"
    size_gb = 16
  }
  mount_point {
    storage = "local-lvm"
    size_gb = 32
    path    = "/srv/nfs"
    backup  = true
  }
  network {
    name     = "eth0"
    bridge   = "vmbr0"
    ip       = "10.0.0.30/24"
    gateway  = "10.0.0.1"
    firewall = true
  }
  features {
    nesting = true
  }
  startup {
    order = 2
    up    = 30
  }
}
"#
    .to_string();
    let wd = sim.workdir(&tf);
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 to import, 0 to add, 0 to change, 0 to destroy"), "{}", r.stdout);
    let out = apply(&wd, "import");
    assert!(out.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{out}");
    assert_plan_empty(&wd);
    let v = wd.resource_values("strata_container.nfs").unwrap();
    assert_eq!(v["vm_id"], json!(150));
    assert_eq!(v["ipv4_addresses"], json!(["10.0.0.30"]));

    // A wrong node or kind is refused by the provider: the targets are declared (in a
    // second directory, without the import block), so Terraform asks the provider.
    let declared = format!(
        "{}\nresource \"strata_vm\" \"other\" {{\n  node = \"pve1\"\n  name = \"legacy-nfs\"\n}}\n",
        &tf[tf.find("resource ").unwrap()..].replace("\"strata_container\" \"nfs\"", "\"strata_container\" \"other\"")
    );
    let other = sim.workdir(&declared);
    let refused = |address: &str, id: &str| {
        let r = other.run(&["import", "-input=false", address, id]).unwrap();
        assert_ne!(r.code, 0, "{address} {id}: {}", r.stdout);
        // Terraform wraps a diagnostic's detail: compare with the line breaks as spaces.
        let flat = r.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!flat.contains("does not exist in the configuration"), "{address}: Terraform refused: {flat}");
        flat
    };
    let flat = refused("strata_container.other", "pve2/150");
    assert!(
        flat.contains("Container is on another node") && flat.contains("CT 150 is on node \"pve1\", not \"pve2\""),
        "{flat}"
    );
    let flat = refused("strata_vm.other", "pve1/150");
    assert!(flat.contains("No such VM") && flat.contains("There is no VM 150 in the cluster"), "{flat}");
    assert!(other.run(&["state", "list"]).unwrap().stdout.trim().is_empty(), "nothing was imported");

    // Recording the source later (Proxmox keeps none) changes nothing in Proxmox.
    wd.write(
        "main.tf",
        &format!(
            "{}\n{}",
            sim.provider_block(),
            tf.replace(
                "hostname    = \"legacy-nfs\"",
                &format!("hostname    = \"legacy-nfs\"\n  ostemplate  = \"{DEBIAN}\"")
            )
        ),
    )
    .unwrap();
    let r = wd.plan_exit_code().unwrap();
    assert!(r.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", r.stdout);
}

#[test]
fn ten_containers_converge_under_5xx_resets_and_lock_contention_without_orphans_or_duplicates() {
    let sim = Sim::start(|_| {});
    let tf = format!(
        r#"
resource "strata_container" "w" {{
  count      = 10
  node       = "pve1"
  hostname   = "w${{count.index}}"
  ostemplate = "{DEBIAN}"
  memory_mb  = 1024
  tags       = ["k8s"]
  rootfs {{
    storage = "local-lvm"
    size_gb = 4
  }}
  network {{
    name   = "eth0"
    bridge = "vmbr0"
    ip     = "10.0.1.${{10 + count.index}}/24"
  }}
}}
"#
    );
    let wd = sim.workdir(&tf);
    sim.set_faults(json!({ "fail_5xx_pct": 10, "reset_pct": 5, "reset_after_pct": 50, "lock_contention_pct": 10 }));
    // Retries absorb transient faults: the first apply succeeds.
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "the first apply under faults");
    let log = sim.handle.request_log();
    let faults = log.iter().filter(|r| r.fault.is_some()).count();
    let resets = log.iter().filter(|r| r.status == 0).count();
    assert!(faults > 0 && resets > 0, "faults {faults}, resets {resets}: the test proves nothing");
    sim.set_faults(json!({ "fail_5xx_pct": 0, "reset_pct": 0, "lock_contention_pct": 0 }));
    assert_plan_empty(&wd);

    let in_state: BTreeSet<u32> = state_ctids(&wd).values().copied().collect();
    let in_sim: BTreeSet<u32> = sim.cts().iter().map(|c| c.vmid).collect();
    assert_eq!(in_state.len(), 10);
    assert_eq!(in_sim, in_state, "orphans or missing containers");
    let names: BTreeSet<String> = sim.cts().iter().filter_map(|c| c.name.clone()).collect();
    assert_eq!(names.len(), 10, "duplicate hostnames: {names:?}");
    eprintln!("first apply succeeded; {faults} injected faults ({resets} connection resets)");

    sim.set_faults(json!({ "fail_5xx_pct": 10, "reset_pct": 5, "lock_contention_pct": 10 }));
    must(wd.run(&["destroy", "-auto-approve", "-input=false"]).unwrap(), "the first destroy under faults");
    sim.set_faults(json!({ "fail_5xx_pct": 0, "reset_pct": 0, "lock_contention_pct": 0 }));
    assert!(sim.cts().is_empty(), "{:?}", sim.cts());
    assert_eq!(leftover_volumes(&sim), Vec::<String>::new(), "leaked volumes");
}

/// Terraform wraps diagnostic text; compare with single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kubernetes_node(source: &str) -> String {
    format!(
        r#"
resource "strata_container" "k" {{
  node            = "pve1"
  hostname        = "k8s-worker-9"
  {source}
  memory_mb       = 2048
  kubernetes_node = true
  rootfs {{
    storage = "local-lvm"
    size_gb = 8
  }}
  network {{
    name   = "eth0"
    bridge = "vmbr0"
    ip     = "dhcp"
  }}
}}
"#
    )
}

#[test]
fn root_only_settings_with_a_token_fail_naming_the_setting_and_leave_nothing_behind() {
    let sim = Sim::start_with_root();
    sim.seed_ct_template();
    for source in [format!("ostemplate = \"{DEBIAN}\""), format!("clone {{\n    source_id = {CT_TEMPLATE}\n  }}")] {
        let wd = sim.workdir(&kubernetes_node(&source));
        let started = std::time::Instant::now();
        let r = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
        eprintln!("refused apply ({source}) took {:?}", started.elapsed());
        assert_ne!(r.code, 0, "{}", r.stdout);
        let stderr = one_line(&r.stderr);
        assert!(
            stderr.contains("Proxmox refused kubernetes_node (features.keyctl): only root@pam may set it")
                && stderr.contains("changing feature flags (except nesting) is only allowed for root@pam"),
            "{}",
            r.stderr
        );
        assert_eq!(
            sim.cts().iter().map(|c| c.vmid).collect::<Vec<_>>(),
            vec![CT_TEMPLATE],
            "something was left behind"
        );
        assert_eq!(leftover_volumes(&sim), Vec::<String>::new(), "leaked volumes");
        let state = wd.run(&["state", "list"]).unwrap();
        assert!(state.stdout.trim().is_empty(), "nothing may be recorded: {}", state.stdout);
    }

    // As root@pam the same configuration applies: the preset's settings are there.
    let root_tf = format!(
        "{}
{}",
        sim.provider_block_root(),
        kubernetes_node(&format!("ostemplate = \"{DEBIAN}\""))
    );
    let wd = Workdir::new(&provider_dir(), &root_tf).unwrap();
    apply(&wd, "apply as root@pam");
    let vmid = state_ctids(&wd)["strata_container.k"];
    let cfg = sim.ct_config(vmid);
    assert_eq!(cfg.get("features"), Some("keyctl=1,nesting=1"));
    assert_eq!(cfg.get("swap"), Some("0"));
    let planned =
        must(wd.run(&["plan", "-detailed-exitcode", "-input=false"]).unwrap_or_else(|e| panic!("{e}")), "plan");
    assert!(planned.stdout.contains("No changes"), "{}", planned.stdout);

    // Changing a root-only flag of an existing container with a token fails the
    // same way and leaves the container as it was.
    let token_tf = format!(
        "{}
{}",
        sim.provider_block(),
        kubernetes_node(&format!("ostemplate = \"{DEBIAN}\""))
    );
    wd.write(
        "main.tf",
        &token_tf.replace(
            "kubernetes_node = true",
            "kubernetes_node = true
  features {
    fuse = true
  }",
        ),
    )
    .unwrap();
    let r = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(r.code, 0);
    assert!(one_line(&r.stderr).contains("Proxmox refused features.fuse: only root@pam may set it"), "{}", r.stderr);
    assert_eq!(sim.ct_config(vmid).get("features"), Some("keyctl=1,nesting=1"));
    wd.write("main.tf", &root_tf).unwrap();
    must(wd.run(&["destroy", "-auto-approve", "-input=false"]).unwrap(), "destroy");
}

#[test]
fn bad_input_is_refused_at_plan_time_naming_the_attribute() {
    let sim = Sim::start(|_| {});
    let base = |extra: &str, source: &str| {
        format!(
            r#"
resource "strata_container" "c" {{
  node     = "pve1"
  hostname = "ok-name"
  {source}
  {extra}
  rootfs {{
    storage = "local-lvm"
    size_gb = 8
  }}
}}
"#
        )
    };
    let tmpl = format!("ostemplate = \"{DEBIAN}\"");
    // Every validation error in one plan (Terraform validates all resources first).
    let cases: Vec<(String, &str)> = vec![
        (base("", &tmpl).replace("\"ok-name\"", "\"k8s_master\""), "hostname"),
        (base("", &tmpl).replace("\"ok-name\"", "\"k8s.master\""), "hostname"),
        (base("memory_mb = 8", &tmpl), "memory_mb"),
        (base("cores = 0", &tmpl), "cores"),
        (base("cores = 9000", &tmpl), "cores"),
        (base("network {\n name = \"eth0\"\n bridge = \"vmbr0\"\n ip = \"10.0.0.5\"\n }", &tmpl), "network[0].ip"),
        (base("", &format!("{tmpl}\n  clone {{\n    source_id = {CT_TEMPLATE}\n  }}")), "ostemplate"),
    ];
    let all: String = cases.iter().enumerate().map(|(i, (tf, _))| tf.replace("\"c\"", &format!("\"c{i}\""))).collect();
    let wd = sim.workdir(&all);
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    for (i, (_, attr)) in cases.iter().enumerate() {
        // Each resource's error names its attribute.
        let at = format!("strata_container.c{i},");
        let block = r
            .stderr
            .split("Error: ")
            .find(|e| e.contains(&at))
            .unwrap_or_else(|| panic!("no error for c{i}:\n{}", r.stderr));
        assert!(block.contains(attr), "c{i}: {attr} not named:\n{block}");
    }
    // Neither source: refused when planning the creation.
    let wd = sim.workdir(&base("", ""));
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Missing container source") && r.stderr.contains("ostemplate"), "{}", r.stderr);
    assert!(sim.handle.request_log().iter().all(|r| r.method == "GET"), "bad input must change nothing");
    assert!(sim.cts().is_empty());
}

/// One container with the given `mount_point` blocks (HCL bodies).
fn with_mounts(blocks: &[&str]) -> String {
    let mps: String = blocks.iter().map(|b| format!("  mount_point {{\n{b}\n  }}\n")).collect();
    format!(
        r#"
resource "strata_container" "db" {{
  node       = "pve1"
  hostname   = "db"
  ostemplate = "{DEBIAN}"
  rootfs {{
    storage = "local-lvm"
    size_gb = 8
  }}
{mps}}}
"#
    )
}

const LOGS: &str = "    path    = \"/logs\"\n    storage = \"local-lvm\"\n    size_gb = 10";
const DATA: &str = "    path    = \"/data\"\n    storage = \"local-lvm\"\n    size_gb = 50";

/// `(key, volume ID, size)` of the container's mount point at `path`.
fn mount_at(sim: &Sim, vmid: u32, path: &str) -> Option<(String, String, String)> {
    let cfg = sim.ct_config(vmid);
    cfg.0.iter().filter(|(k, _)| k.starts_with("mp")).find_map(|(k, v)| {
        let mut parts = v.split(',');
        let volume = parts.next()?.to_string();
        let opts: BTreeMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        (opts.get("mp") == Some(&path)).then(|| (k.clone(), volume, opts.get("size").unwrap_or(&"").to_string()))
    })
}

/// The volume IDs the container's `unusedN` entries hold.
fn unused_volumes(sim: &Sim, vmid: u32) -> Vec<String> {
    sim.ct_config(vmid).0.iter().filter(|(k, _)| k.starts_with("unused")).map(|(_, v)| v.clone()).collect()
}

fn volume_exists(sim: &Sim, volume: &str) -> bool {
    sim.handle.state_json()["volumes"].as_object().unwrap().contains_key(volume)
}

#[test]
fn mount_points_are_keyed_by_path_removal_detaches_and_keeps_the_volume_reorder_plans_nothing() {
    let sim = Sim::start(|_| {});
    let wd = sim.workdir(&with_mounts(&[LOGS, DATA]));
    apply(&wd, "create with /logs and /data");
    let vmid = state_ctids(&wd)["strata_container.db"];
    let (logs_key, logs_vol, _) = mount_at(&sim, vmid, "/logs").expect("/logs mounted");
    // (Terraform hands set elements over in its own order: mp numbers follow it.)
    let (data_key, data_vol, data_size) = mount_at(&sim, vmid, "/data").expect("/data mounted");
    assert_eq!(data_size, "50G");
    assert_plan_empty(&wd);

    // Reordering the blocks plans nothing.
    let rewrite = |body: String| wd.write("main.tf", &format!("{}\n{}", sim.provider_block(), body)).unwrap();
    rewrite(with_mounts(&[DATA, LOGS]));
    assert_plan_empty(&wd);

    // Removing the first block: /data keeps its volume and size, /logs' volume is
    // detached (unusedN) and kept.
    rewrite(with_mounts(&[DATA]));
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", r.stdout);
    assert!(!r.stdout.contains("\"/logs\" -> \"/data\""), "matched by position:\n{}", r.stdout);
    assert!(r.stdout.contains("Mount point /logs is removed"), "the plan warns:\n{}", r.stdout);
    apply(&wd, "remove /logs");
    assert_eq!(mount_at(&sim, vmid, "/data"), Some((data_key.clone(), data_vol.clone(), "50G".into())));
    assert_eq!(mount_at(&sim, vmid, "/logs"), None);
    assert_eq!(unused_volumes(&sim, vmid), vec![logs_vol.clone()]);
    assert!(volume_exists(&sim, &logs_vol) && volume_exists(&sim, &data_vol));
    assert_plan_empty(&wd);

    // Growing resizes the same volume in place; shrinking is refused at plan.
    let data60 = DATA.replace("50", "60");
    rewrite(with_mounts(&[&data60]));
    apply(&wd, "grow /data");
    assert_eq!(mount_at(&sim, vmid, "/data"), Some((data_key.clone(), data_vol.clone(), "60G".into())));
    rewrite(with_mounts(&[&DATA.replace("50", "40")]));
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(one_line(&r.stderr).contains("Volumes cannot shrink"), "{}", r.stderr);
    assert!(one_line(&r.stderr).contains("mount_point"), "{}", r.stderr);

    // A new mount point takes the lowest free number (the one /logs had).
    let cache = "    path    = \"/cache\"\n    storage = \"local-lvm\"\n    size_gb = 2";
    let data60_del = format!("{data60}\n    delete_on_remove = true");
    rewrite(with_mounts(&[cache, &data60_del]));
    apply(&wd, "add /cache, opt /data in to deletion");
    let (cache_key, cache_vol, _) = mount_at(&sim, vmid, "/cache").expect("/cache mounted");
    assert_eq!(cache_key, logs_key);
    assert_eq!(mount_at(&sim, vmid, "/data"), Some((data_key.clone(), data_vol.clone(), "60G".into())));

    // Removing a block recorded with delete_on_remove destroys its volume, and only it.
    rewrite(with_mounts(&[cache]));
    let r = wd.plan_exit_code().unwrap();
    assert!(r.stdout.contains("will be DESTROYED"), "{}", r.stdout);
    apply(&wd, "remove /data");
    assert_eq!(mount_at(&sim, vmid, "/data"), None);
    assert!(!volume_exists(&sim, &data_vol), "delete_on_remove destroys the volume");
    assert_eq!(unused_volumes(&sim, vmid), vec![logs_vol.clone()], "the volume Strata did not detach now stays");
    assert!(volume_exists(&sim, &logs_vol) && volume_exists(&sim, &cache_vol));
    assert_plan_empty(&wd);
}

#[test]
fn imported_container_with_gaps_in_its_mp_numbers_keeps_every_volume() {
    let sim = Sim::start(|_| {});
    let params: Vec<(String, String)> = [
        ("ostemplate", DEBIAN),
        ("hostname", "legacy-db"),
        ("memory", "1024"),
        ("rootfs", "local-lvm:8"),
        ("mp0", "local-lvm:4,mp=/srv/a"),
        ("mp2", "local-lvm:6,mp=/srv/b"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    sim.block_on(sim.client.create_ct(&CtCreateSpec { node: "pve1".into(), vmid: 160, params })).unwrap();
    let before = (mount_at(&sim, 160, "/srv/a").unwrap(), mount_at(&sim, 160, "/srv/b").unwrap());
    assert_eq!((before.0 .0.as_str(), before.1 .0.as_str()), ("mp0", "mp2"));

    let tf = |memory: i64| {
        format!(
            r#"
import {{
  to = strata_container.db
  id = "pve1/160"
}}

resource "strata_container" "db" {{
  node      = "pve1"
  hostname  = "legacy-db"
  memory_mb = {memory}
  started   = false
  rootfs {{
    storage = "local-lvm"
    size_gb = 8
  }}
  mount_point {{
    path    = "/srv/a"
    storage = "local-lvm"
    size_gb = 4
  }}
  mount_point {{
    path    = "/srv/b"
    storage = "local-lvm"
    size_gb = 6
  }}
}}
"#
        )
    };
    let wd = sim.workdir(&tf(1024));
    let out = apply(&wd, "import");
    assert!(out.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{out}");
    assert_plan_empty(&wd);

    // Any later change keeps both volumes where they are.
    wd.write("main.tf", &format!("{}\n{}", sim.provider_block(), tf(2048))).unwrap();
    apply(&wd, "change memory");
    assert_eq!(sim.ct_config(160).get("memory"), Some("2048"));
    assert_eq!((mount_at(&sim, 160, "/srv/a").unwrap(), mount_at(&sim, 160, "/srv/b").unwrap()), before);
    assert!(sim.ct_config(160).get("mp1").is_none(), "no new volume");
    assert!(unused_volumes(&sim, 160).is_empty());
    assert_plan_empty(&wd);
}
