//! The compatibility matrix: the same configurations through Terraform 1.6.6, 1.10.5
//! and 1.15.5 (the launchers `make terraform` installs), against pve-sim and a lab node.
//! Each outcome is recorded in `target/terraform-versions.json`, from which
//! scripts/terraform-versions-table.py writes the table of
//! docs/guides/terraform-versions.md; the test fails when an outcome is not the
//! expected one, or when that table no longer says what this run saw.

mod pve_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use pve_common::{Sim, TEMPLATE};
use serde_json::json;
use strata_acceptance_tests::provider::{provider_dir, target_dir};
use strata_acceptance_tests::terraform::{terraform_version_bin, Run, Workdir, REQUIRED_PROVIDERS};
use strata_lab::{LabGuard, PveMode, UpOptions};

const VERSIONS: [&str; 3] = ["1.6.6", "1.10.5", "1.15.5"];

/// Terraform's output on one line: it wraps diagnostics at 78 columns.
fn flat(r: &Run) -> String {
    format!("{} {}", r.stdout, r.stderr).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ok(r: Run, what: &str) -> Result<Run, String> {
    if r.code == 0 {
        Ok(r)
    } else {
        Err(format!("{what} exited {}: {}", r.code, flat(&r)))
    }
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn tf(wd: &Workdir, args: &[&str]) -> Run {
    wd.run(args).expect("running terraform")
}

fn plan_is_empty(wd: &Workdir, after: &str) -> Result<(), String> {
    let p = tf(wd, &["plan", "-detailed-exitcode", "-input=false"]);
    check(p.code == 0, format!("plan after {after} is not empty (exit {}): {}", p.code, flat(&p)))
}

/// One feature's outcome on one version: `works` or `refused`, with what was seen.
struct Outcome {
    outcome: &'static str,
    note: String,
}

fn works(note: impl Into<String>) -> Result<Outcome, String> {
    Ok(Outcome { outcome: "works", note: note.into() })
}

fn cluster_secrets(wd: &Workdir) -> Result<Outcome, String> {
    ok(tf(wd, &["validate"]), "validate")?;
    ok(tf(wd, &["apply", "-auto-approve", "-input=false"]), "apply")?;
    plan_is_empty(wd, "apply")?;
    ok(tf(wd, &["destroy", "-auto-approve", "-input=false"]), "destroy")?;
    works("validate, apply, empty plan, destroy")
}

fn vm_tf(sim: &Sim, memory: i64) -> String {
    format!(
        "{}\nresource \"strata_vm\" \"w\" {{\n  node      = \"pve1\"\n  name      = \"compat\"\n  memory_mb = {memory}\n  \
         clone {{\n    source_vm_id = {TEMPLATE}\n  }}\n  disks = [{{ interface = \"scsi0\", storage = \"local-lvm\", \
         size_gb = 4 }}]\n  network_devices {{\n    bridge = \"vmbr0\"\n  }}\n}}\n",
        sim.provider_block()
    )
}

fn vm(sim: &Sim, wd: &Workdir) -> Result<Outcome, String> {
    wd.write("main.tf", &vm_tf(sim, 1024)).unwrap();
    ok(tf(wd, &["apply", "-auto-approve", "-input=false"]), "apply")?;
    let id = wd.resource_values("strata_vm.w").map_err(|e| e.to_string())?["vm_id"].as_u64().unwrap_or_default();
    wd.write("main.tf", &vm_tf(sim, 2048)).unwrap();
    let update = ok(tf(wd, &["apply", "-auto-approve", "-input=false"]), "update")?;
    check(
        flat(&update).contains("0 added, 1 changed, 0 destroyed"),
        format!("update not in place: {}", flat(&update)),
    )?;
    let memory = pve_common::vm_config(sim, id as u32).get("memory").map(String::from);
    check(memory.as_deref() == Some("2048"), format!("VM {id} memory after update: {memory:?}"))?;
    plan_is_empty(wd, "update")?;
    ok(tf(wd, &["destroy", "-auto-approve", "-input=false"]), "destroy")?;
    check(!sim.vms().iter().any(|v| v.vmid == id as u32), format!("VM {id} left after destroy"))?;
    works("apply, in-place update, empty plan, destroy")
}

/// `terraform import` of a VM made through the API (the one of vm.rs's import test),
/// then an empty plan and destroy.
fn vm_import(sim: &Sim, wd: &Workdir, vmid: u32) -> Result<Outcome, String> {
    sim.create_legacy_vm(vmid);
    wd.write(
        "main.tf",
        &format!(
            "{}\nresource \"strata_vm\" \"db\" {{\n  node        = \"pve1\"\n  vm_id       = {vmid}\n  \
             name        = \"legacy-db\"\n  description = \"made by hand\"\n  tags        = [\"db\", \"prod\"]\n  \
             memory_mb   = 4096\n  on_boot     = true\n  cpu {{\n    cores   = 2\n    sockets = 1\n  }}\n  \
             disks = [{{ interface = \"scsi0\", storage = \"local-lvm\", size_gb = 16 }}]\n  network_devices {{\n    \
             bridge   = \"vmbr0\"\n    firewall = true\n  }}\n}}\n",
            sim.provider_block()
        ),
    )
    .unwrap();
    ok(tf(wd, &["import", "-input=false", "strata_vm.db", &format!("pve1/{vmid}")]), "import")?;
    plan_is_empty(wd, "import")?;
    ok(tf(wd, &["destroy", "-auto-approve", "-input=false"]), "destroy")?;
    check(!sim.vms().iter().any(|v| v.vmid == vmid), format!("VM {vmid} left after destroy"))?;
    works("terraform import, empty plan, destroy")
}

fn node_tf(lab: &LabGuard, provider_key: bool, resource_ssh: &str, content: &str) -> String {
    let ssh = &lab.info().ssh;
    let provider = match provider_key {
        true => format!("  ssh {{\n    private_key_file = {:?}\n  }}\n", ssh.private_key_file.display().to_string()),
        false => String::new(),
    };
    format!(
        "{REQUIRED_PROVIDERS}provider \"strata\" {{\n{provider}}}\nresource \"strata_node_config\" \"n\" {{\n  ssh {{\n    \
         host             = \"{}\"\n    known_hosts_file = {:?}\n{resource_ssh}  }}\n  file {{\n    \
         path    = \"/etc/strata-compat\"\n    content = \"{content}\\n\"\n  }}\n}}\n",
        lab.nodes()[0].address,
        ssh.known_hosts_file.display().to_string(),
    )
}

fn node_has(lab: &LabGuard, content: &str) -> bool {
    let script = format!("grep -qx '{content}' /etc/strata-compat");
    lab.exec(&lab.nodes()[0].name, &["sh", "-c", &script]).expect("node exec").status.success()
}

/// A node resource whose key is only its write-only `ssh.private_key`.
fn node_write_only_key(lab: &LabGuard, wd: &Workdir, version: &str) -> Result<Outcome, String> {
    let key_file = lab.info().ssh.private_key_file.display().to_string();
    let key_body: Vec<String> = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(String::from)
        .collect();
    let write_only = format!("    private_key      = file({key_file:?})\n");
    wd.write("main.tf", &node_tf(lab, false, &write_only, version)).unwrap();
    if version_before_1_11(version) {
        // Refused by `terraform validate` already, and by apply (which validates first).
        for args in [&["validate"][..], &["apply", "-auto-approve", "-input=false"]] {
            let run = tf(wd, args);
            let out = flat(&run);
            check(run.code == 1, format!("{args:?}: a write-only key was accepted: {out}"))?;
            check(!out.contains("bug in the provider"), format!("{args:?} blames the provider: {out}"))?;
            check(!key_body.iter().any(|l| out.contains(l.as_str())), "the private key is in Terraform's output")?;
            for needle in [
                "Error: Write-only attribute needs Terraform 1.11 or later",
                "`ssh.private_key` is write-only",
                "`private_key_file`",
                "provider's `ssh` block",
                "ssh-agent",
            ] {
                check(out.contains(needle), format!("{args:?}: the error does not say {needle:?}: {out}"))?;
            }
        }
        check(!node_has(lab, version), "the node was changed")?;
        return Ok(Outcome {
            outcome: "refused",
            note: "refused by `terraform validate` and `apply`: \"Write-only attribute needs Terraform 1.11 or later\", naming \
                   `ssh.private_key` and `private_key_file`, the provider's `ssh` block or an ssh-agent instead"
                .into(),
        });
    }
    ok(tf(wd, &["validate"]), "validate")?;
    let run = tf(wd, &["apply", "-auto-approve", "-input=false"]);
    check(!key_body.iter().any(|l| flat(&run).contains(l.as_str())), "the private key is in Terraform's output")?;
    let run = ok(run, "apply")?;
    let out = flat(&run);
    for needle in ["Warning: Refresh and destroy will need another SSH key", "`ssh.private_key` is write-only"] {
        check(out.contains(needle), format!("the plan does not warn {needle:?}: {out}"))?;
    }
    check(node_has(lab, version), "the file is not on the node")?;
    let state = std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap();
    check(!key_body.iter().any(|l| state.contains(l.as_str())), "the private key is in the state")?;
    // Destroy needs a key the state does not hold: the provider's ssh block gives one.
    wd.write("main.tf", &node_tf(lab, true, &write_only, version)).unwrap();
    ok(tf(wd, &["destroy", "-auto-approve", "-input=false"]), "destroy with the provider's key")?;
    works(
        "applies; the plan warns \"Refresh and destroy will need another SSH key\" (`ssh.private_key`); \
         destroy with a key from the provider's `ssh` block",
    )
}

/// The same node resource with `ssh.private_key_file`.
fn node_key_file(lab: &LabGuard, wd: &Workdir, version: &str) -> Result<Outcome, String> {
    let key_file = lab.info().ssh.private_key_file.display().to_string();
    let content = format!("file-{version}");
    wd.write("main.tf", &node_tf(lab, false, &format!("    private_key_file = {key_file:?}\n"), &content)).unwrap();
    ok(tf(wd, &["validate"]), "validate")?;
    let apply = ok(tf(wd, &["apply", "-auto-approve", "-input=false"]), "apply")?;
    check(!flat(&apply).contains("Warning: Refresh and destroy"), format!("warns with a key file: {}", flat(&apply)))?;
    check(node_has(lab, &content), "the file is not on the node")?;
    plan_is_empty(wd, "apply")?;
    ok(tf(wd, &["destroy", "-auto-approve", "-input=false"]), "destroy")?;
    works("validate, apply, empty plan, destroy")
}

fn version_before_1_11(v: &str) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (1, 11)
}

#[test]
fn terraform_1_6_1_10_and_1_15_run_the_same_configurations_and_old_ones_refuse_write_only_keys_clearly() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up (needs root; installs Debian packages on first use)");
    let sim = Sim::start(|_| {});
    sim.seed_template();

    // feature id -> (title, version -> outcome)
    let features: [(&str, &str); 5] = [
        ("cluster_secrets", "`strata_cluster_secrets`: validate, apply, plan, destroy"),
        ("vm", "`strata_vm` (pve-sim): apply, in-place update, plan, destroy"),
        ("vm_import", "`strata_vm`: `terraform import`"),
        ("node_key_file", "node resource with `ssh.private_key_file`"),
        ("node_write_only_key", "node resource with write-only `ssh.private_key`"),
    ];
    let mut results: BTreeMap<&str, BTreeMap<&str, serde_json::Value>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut seconds = BTreeMap::new();
    for (i, version) in VERSIONS.iter().enumerate() {
        let t = Instant::now();
        let bin = terraform_version_bin(version);
        let v = Command::new(&bin).arg("version").output().expect("terraform version");
        let first = String::from_utf8_lossy(&v.stdout).lines().next().unwrap_or_default().to_string();
        assert_eq!(first, format!("Terraform v{version}"), "{}", bin.display());
        for (id, _) in features {
            let mut wd = Workdir::new(&provider_dir(), REQUIRED_PROVIDERS).unwrap();
            wd.set_terraform(&bin);
            let result = match id {
                "cluster_secrets" => {
                    wd.write("main.tf", &format!("{REQUIRED_PROVIDERS}resource \"strata_cluster_secrets\" \"s\" {{\n  cluster_name = \"compat\"\n}}\n")).unwrap();
                    cluster_secrets(&wd)
                }
                "vm" => vm(&sim, &wd),
                "vm_import" => vm_import(&sim, &wd, 150 + i as u32),
                "node_key_file" => node_key_file(&lab, &wd, version),
                _ => node_write_only_key(&lab, &wd, version),
            };
            let expected =
                if id == "node_write_only_key" && version_before_1_11(version) { "refused" } else { "works" };
            let entry = match result {
                Ok(o) if o.outcome == expected => json!({"outcome": o.outcome, "note": o.note}),
                Ok(o) => {
                    failures.push(format!("{version} {id}: {} (expected {expected}): {}", o.outcome, o.note));
                    json!({"outcome": "FAILED", "note": format!("{} (expected {expected})", o.outcome)})
                }
                Err(e) => {
                    failures.push(format!("{version} {id}: {e}"));
                    json!({"outcome": "FAILED", "note": e})
                }
            };
            results.entry(id).or_default().insert(version, entry);
        }
        seconds.insert(*version, t.elapsed().as_secs());
    }

    let record = json!({
        "versions": VERSIONS,
        "features": features.iter().map(|(id, title)| json!({"id": id, "title": title, "results": results[id]})).collect::<Vec<_>>(),
        "seconds": seconds,
        "total_seconds": started.elapsed().as_secs(),
    });
    let out = target_dir().join("terraform-versions.json");
    std::fs::write(&out, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    assert!(failures.is_empty(), "recorded in {}:\n{}", out.display(), failures.join("\n"));

    // The guide's table is made from these results: it must say what this run saw.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = repo.join("scripts/terraform-versions-table.py");
    let check = Command::new("python3").arg(&script).arg("--check").arg(&out).output().expect("python3");
    assert!(
        check.status.success(),
        "docs/guides/terraform-versions.md is stale; run `python3 scripts/terraform-versions-table.py {}`:\n{}",
        out.display(),
        String::from_utf8_lossy(&check.stderr)
    );
}
