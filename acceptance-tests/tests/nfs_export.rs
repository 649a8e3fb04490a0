//! strata_nfs_export through real Terraform against lab nodes: real sshd, real exportfs,
//! real nfs-ganesha serving NFSv4 to another node.

use std::path::Path;

use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, UpOptions};

fn lab(dir: &Path, nodes: usize) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    // NFS servers run their daemons as Debian systemd units.
    LabGuard::up(&opts).expect("lab up (needs root; installs Debian packages on first use)")
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Terraform shows a list element change as `~ "a" -> "b"` or as `- "a"` / `+ "b"` lines.
fn shows_change(plan: &str, from: &str, to: &str) -> bool {
    plan.contains(&format!("~ \"{from}\" -> \"{to}\""))
        || (plan.contains(&format!("- \"{from}\",")) && plan.contains(&format!("+ \"{to}\",")))
}

fn provider_block(lab: &LabGuard) -> String {
    let ssh = &lab.info().ssh;
    ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file)
}

fn export(name: &str, host: &str, backend: &str, extra: &str, options: &str) -> String {
    format!(
        "resource \"strata_nfs_export\" \"{name}\" {{\n  ssh {{\n    host = \"{host}\"\n{extra}  }}\n  name    = \"{name}\"\n  \
         path    = \"/srv/nfs/{name}\"\n  backend = \"{backend}\"\n  create_directory {{\n    mode = \"0777\"\n  }}\n  \
         clients {{\n    client  = \"10.77.0.0/16\"\n    options = {options}\n  }}\n}}\n"
    )
}

#[test]
fn ganesha_exports_serve_nfs_to_another_node_and_drift_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 2);
    let node1 = lab.nodes()[0].address.clone();
    // nonprod goes through the non-root user with sudo, as a hardened node would require.
    let sudo = format!("    user = \"{}\"\n    sudo = true\n", lab.info().ssh.sudo_user);
    let main_tf = format!(
        "{}{}{}output \"prod\" {{\n  value = strata_nfs_export.k8s-prod.storage_class_parameters\n}}\n",
        provider_block(&lab),
        export("k8s-prod", &node1, "ganesha", "", "[\"rw\", \"no_root_squash\"]"),
        export("k8s-nonprod", &node1, "ganesha", &sudo, "[\"rw\", \"root_squash\"]"),
    );
    let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
    wd.apply().unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after apply must be empty:\n{}{}", plan.stdout, plan.stderr);

    let prod = wd.resource_values("strata_nfs_export.k8s-prod").unwrap();
    assert_eq!(prod["storage_class_parameters"]["server"], node1.as_str());
    assert_eq!(prod["storage_class_parameters"]["path"], "/srv/nfs/k8s-prod");
    assert!(prod["export_id"].as_i64().unwrap() >= 100);
    let nonprod = wd.resource_values("strata_nfs_export.k8s-nonprod").unwrap();
    assert_ne!(prod["export_id"], nonprod["export_id"], "each export gets its own Export_Id");

    // ganesha and rpcbind run as their Debian units, under systemd.
    let (_, active, _) = sh(&lab, "node1", "systemctl is-active nfs-ganesha rpcbind");
    assert_eq!(active.split_whitespace().collect::<Vec<_>>(), ["active", "active"], "{active}");
    // Real NFSv4 traffic: node2 lists what node1 serves (its client from the lab's repository).
    let (code, _, err) = sh(
        &lab,
        "node2",
        "apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install libnfs-utils >/dev/null",
    );
    assert_eq!(code, 0, "installing libnfs-utils on node2: {err}");
    sh(&lab, "node1", "echo prod > /srv/nfs/k8s-prod/marker-prod && echo np > /srv/nfs/k8s-nonprod/marker-nonprod");
    for (name, marker) in [("k8s-prod", "marker-prod"), ("k8s-nonprod", "marker-nonprod")] {
        let (code, out, err) =
            sh(&lab, "node2", &format!("timeout 20 nfs-ls 'nfs://{node1}/srv/nfs/{name}?version=4'"));
        assert_eq!(code, 0, "nfs-ls {name}: {out}{err}");
        assert!(out.contains(marker), "nfs-ls {name} lists the file: {out}");
    }

    // A hand edit on the node is drift, and apply puts it back.
    let file = "/etc/ganesha/strata.d/strata-k8s-prod.conf";
    sh(&lab, "node1", &format!("sed -i 's/Squash = No_Root_Squash;/Squash = Root_Squash;/' {file}"));
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(shows_change(&plan.stdout, "root_squash", "no_root_squash"), "{}", plan.stdout);
    assert!(plan.stdout.contains("1 to change"), "{}", plan.stdout);
    wd.apply().unwrap();
    let (_, content, _) = sh(&lab, "node1", &format!("cat {file}"));
    assert!(content.contains("Squash = No_Root_Squash;"), "{content}");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // A removed file means the export is gone: Terraform plans to create it again.
    sh(&lab, "node1", &format!("rm {file}"));
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains("1 to add"), "{}", plan.stdout);
    wd.apply().unwrap();

    wd.destroy().unwrap();
    let (_, files, _) = sh(&lab, "node1", "ls /etc/ganesha/strata.d/; cat /etc/ganesha/strata.d/index.conf");
    assert!(!files.contains("strata-k8s"), "export files removed: {files}");
    let (code, _, _) = sh(&lab, "node1", "test -f /srv/nfs/k8s-prod/marker-prod");
    assert_eq!(code, 0, "data is kept unless delete_data_on_destroy");
}

#[test]
fn kernel_exports_and_a_refused_option_leave_the_server_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let node1 = lab.nodes()[0].address.clone();
    let main_tf = |prod_options: &str| {
        format!(
            "{}{}{}",
            provider_block(&lab),
            export("k8s-prod", &node1, "kernel", "", prod_options),
            export("k8s-nonprod", &node1, "kernel", "", "[\"ro\", \"sync\", \"no_subtree_check\"]"),
        )
    };
    let wd = Workdir::new(&provider_dir(), &main_tf("[\"rw\", \"sync\", \"no_root_squash\"]")).unwrap();
    wd.apply().unwrap();
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
    let (_, before, _) = sh(&lab, "node1", "exportfs -v");
    assert!(before.contains("/srv/nfs/k8s-prod") && before.contains("/srv/nfs/k8s-nonprod"), "{before}");
    let prod_line = before.split("/srv/nfs/k8s-prod").nth(1).unwrap().lines().take(2).collect::<String>();
    assert!(prod_line.contains("rw") && prod_line.contains("no_root_squash"), "{before}");

    // anonuid takes a number: our plan-time check passes the keyword, exportfs refuses the value.
    wd.write("main.tf", &main_tf("[\"rw\", \"anonuid=nobody\"]")).unwrap();
    let (_, file_before, _) = sh(&lab, "node1", "cat /etc/exports.d/strata-k8s-prod.exports");
    let apply = wd.run(&["apply", "-auto-approve"]).unwrap();
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    assert!(apply.stderr.contains("bad anonuid"), "the server's own message: {}", apply.stderr);
    let (_, after, _) = sh(&lab, "node1", "exportfs -v");
    assert_eq!(after, before, "exports unchanged");
    let (_, file_after, _) = sh(&lab, "node1", "cat /etc/exports.d/strata-k8s-prod.exports");
    assert_eq!(file_after, file_before, "previous file restored");

    // An unknown keyword never reaches the server: refused at plan time with its path.
    wd.write("main.tf", &main_tf("[\"rw\", \"bogus\"]")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1);
    assert!(plan.stderr.contains("unknown export option \"bogus\""), "{}", plan.stderr);

    // Hand edit of a kernel export file is drift.
    wd.write("main.tf", &main_tf("[\"rw\", \"sync\", \"no_root_squash\"]")).unwrap();
    sh(&lab, "node1", "sed -i 's/(rw,sync,no_root_squash)/(ro,sync)/' /etc/exports.d/strata-k8s-prod.exports");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(shows_change(&plan.stdout, "ro", "rw"), "{}", plan.stdout);
    wd.apply().unwrap();
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
    wd.destroy().unwrap();
    let (_, after, _) = sh(&lab, "node1", "exportfs -v; ls /etc/exports.d");
    assert!(!after.contains("k8s-prod"), "{after}");
}

#[test]
fn a_node_whose_host_key_does_not_match_is_refused_before_any_command() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 2);
    let (n1, n2) = (&lab.nodes()[0], &lab.nodes()[1]);
    // known_hosts claims node1's address has node2's key: what an impostor would present.
    let impostor_key = n2.host_public_key.as_ref().unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let known_hosts = format!("{} {}\n", n1.address, impostor_key);
    let main_tf = format!(
        "terraform {{\n  required_providers {{\n    strata = {{ source = \"strata-iac/strata\" }}\n  }}\n}}\n\
         provider \"strata\" {{\n  ssh {{\n    private_key_file = \"{}\"\n    known_hosts = {:?}\n  }}\n}}\n{}",
        lab.info().ssh.private_key_file.display(),
        known_hosts,
        export("k8s-prod", &n1.address, "kernel", "", "[\"rw\"]"),
    );
    let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
    let apply = wd.run(&["apply", "-auto-approve"]).unwrap();
    assert_eq!(apply.code, 1);
    let err = apply.stderr.replace('\n', " ");
    assert!(err.contains(&n1.address), "names the host: {err}");
    assert!(err.contains(n1.host_key_fingerprint.as_deref().unwrap()), "names the presented key: {err}");
    assert!(err.contains(n2.host_key_fingerprint.as_deref().unwrap()), "names the expected key: {err}");
    let (code, _, _) = sh(&lab, "node1", "test -e /srv/nfs/k8s-prod || test -e /etc/exports.d/strata-k8s-prod.exports");
    assert_ne!(code, 0, "nothing ran on the node");
}

#[test]
fn an_export_imported_by_host_and_name_plans_nothing_more() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let node1 = lab.nodes()[0].address.clone();
    sh(&lab, "node1", "mkdir -p /srv/nfs/k8s-prod");
    // One client with explicit options, one with the defaults (options left out).
    let resource = format!(
        "resource \"strata_nfs_export\" \"k8s-prod\" {{\n  ssh {{\n    host = \"{node1}\"\n  }}\n  name = \"k8s-prod\"\n  \
         path = \"/srv/nfs/k8s-prod\"\n  clients {{\n    client  = \"10.77.0.0/16\"\n    options = [\"rw\", \"no_root_squash\"]\n  }}\n  \
         clients {{\n    client = \"10.78.0.0/16\"\n  }}\n}}\n"
    );
    let main_tf = format!("{}{resource}", provider_block(&lab));
    let created = Workdir::new(&provider_dir(), &main_tf).unwrap();
    created.apply().unwrap();
    let expected = created.resource_values("strata_nfs_export.k8s-prod").unwrap();

    // An import block, in a configuration that never created it.
    let id = format!("{node1}:k8s-prod");
    let with_block = format!("{main_tf}import {{\n  to = strata_nfs_export.k8s-prod\n  id = \"{id}\"\n}}\n");
    let imported = Workdir::new(&provider_dir(), &with_block).unwrap();
    let plan = imported.run(&["plan"]).unwrap().ok().unwrap();
    assert!(plan.stdout.contains("1 to import, 0 to add, 0 to change, 0 to destroy"), "{}", plan.stdout);
    imported.apply().unwrap();
    let plan = imported.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after import must be empty:\n{}{}", plan.stdout, plan.stderr);
    assert_eq!(imported.resource_values("strata_nfs_export.k8s-prod").unwrap(), expected, "the state a create stores");

    // `terraform import` does the same.
    let cli = Workdir::new(&provider_dir(), &main_tf).unwrap();
    cli.run(&["import", "strata_nfs_export.k8s-prod", &id]).unwrap().ok().unwrap();
    assert_eq!(cli.plan_exit_code().unwrap().code, 0);
    assert_eq!(cli.resource_values("strata_nfs_export.k8s-prod").unwrap(), expected);

    // Wrong IDs say what is expected, or what is missing where.
    let other = Workdir::new(&provider_dir(), &main_tf).unwrap();
    let run = other.run(&["import", "strata_nfs_export.k8s-prod", "k8s-prod"]).unwrap();
    assert_eq!(run.code, 1);
    assert!(run.stderr.replace('\n', " ").contains("HOST:NAME"), "{}", run.stderr);
    let run = other.run(&["import", "strata_nfs_export.k8s-prod", &format!("{node1}:k8s-missing")]).unwrap();
    assert_eq!(run.code, 1);
    let err = run.stderr.replace('\n', " ");
    assert!(err.contains("Export not found") && err.contains("k8s-missing") && err.contains(&node1), "{err}");
}

/// Pids of processes in the node's network namespace whose command line contains `needle`.
fn node_processes(lab: &LabGuard, needle: &str) -> Vec<String> {
    let ns = &lab.nodes()[0].namespace;
    let out = std::process::Command::new("ip").args(["netns", "pids", ns]).output().expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(needle))
                .unwrap_or(false)
        })
        .map(str::to_string)
        .collect()
}

/// Ctrl-C during an apply whose command hangs on the node (reading a file that is a
/// FIFO nobody writes, as a read on a dead NFS mount would): Terraform stops, and the
/// command is killed there.
#[test]
fn ctrl_c_stops_the_apply_and_kills_the_hung_command_on_the_node() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let (wd, hung) = export_whose_read_hangs(&lab, "");
    let mut apply = wd
        .command(&["apply", "-auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while node_processes(&lab, &hung).is_empty() {
        assert!(Instant::now() < deadline, "the read never started on the node");
        if apply.try_wait().unwrap().is_some() {
            let out = apply.wait_with_output().unwrap();
            panic!(
                "terraform ended before the read hung: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = std::process::Command::new("kill").args(["-INT", &apply.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while apply.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = apply.kill();
            panic!("terraform did not stop within 60s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = apply.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace('\n', " ");
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cancelled"), "says why: {stderr}");
    assert_killed_on_node(&lab, &hung);
}

/// An export whose own file on node1 is a FIFO nobody writes: reading it before
/// replacing it blocks forever, as a read on a dead NFS mount would. Returns the
/// workdir and the hung command line to look for on the node.
fn export_whose_read_hangs(lab: &LabGuard, resource_extra: &str) -> (Workdir, String) {
    let node1 = lab.nodes()[0].address.clone();
    // The server package is there already, so the only slow step is the hung read.
    let (code, _, err) = sh(
        lab,
        "node1",
        "apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y install nfs-kernel-server >/dev/null",
    );
    assert_eq!(code, 0, "installing nfs-kernel-server: {err}");
    let file = "/etc/exports.d/strata-k8s-prod.exports";
    sh(lab, "node1", &format!("mkdir -p /etc/exports.d && mkfifo {file}"));
    let resource = export("k8s-prod", &node1, "kernel", "", "[\"rw\"]");
    let resource = format!("{}{resource_extra}}}\n", resource.trim_end().strip_suffix('}').unwrap());
    let wd = Workdir::new(&provider_dir(), &format!("{}{resource}", provider_block(lab))).unwrap();
    (wd, format!("cat -- {file}"))
}

fn assert_killed_on_node(lab: &LabGuard, hung: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = node_processes(lab, hung);
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the hung read still runs on the node: {left:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The same hung read under `timeouts { create = "3s" }`: the apply ends by itself, the
/// command is killed on the node, and the error names the resource, the step and the
/// limit.
#[test]
fn a_hung_node_command_is_killed_when_the_timeout_expires_and_the_error_names_resource_and_step() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let (wd, hung) = export_whose_read_hangs(&lab, "  timeouts {\n    create = \"3s\"\n  }\n");
    let started = Instant::now();
    let run = wd.run(&["apply", "-auto-approve"]).unwrap();
    let took = started.elapsed();
    let stderr = run.stderr.replace('\n', " ");
    assert_ne!(run.code, 0, "{stderr}");
    assert!(took < Duration::from_secs(60), "the apply took {took:?}");
    for part in [
        "strata_nfs_export: reading /etc/exports.d/strata-k8s-prod.exports",
        "timed out after 3s (timeouts.create)",
        "killed on the node",
    ] {
        assert!(stderr.contains(part), "missing {part:?} in: {stderr}");
    }
    assert_killed_on_node(&lab, &hung);
}

/// Two Terraform runs in two directories (two provider processes, two states) adding
/// exports to one server at the same time: the server's export lock (a `flock` on the
/// node) serialises their changes, so both succeed and every export is there once, with
/// its own Export_Id, listed in ganesha's index.
#[test]
fn concurrent_applies_from_two_directories_leave_a_consistent_export_set() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let node1 = lab.nodes()[0].address.clone();
    let names = |prefix: &str| (1..=4).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    let dirs: Vec<Workdir> = ["team-a", "team-b"]
        .iter()
        .map(|p| {
            let exports: String =
                names(p).iter().map(|n| export(n, &node1, "ganesha", "", "[\"rw\", \"root_squash\"]")).collect();
            Workdir::new(&provider_dir(), &format!("{}{exports}", provider_block(&lab))).unwrap()
        })
        .collect();
    let runs: Vec<_> = dirs
        .iter()
        .map(|wd| wd.command(&["apply", "-auto-approve", "-input=false"]).spawn().expect("terraform apply"))
        .collect();
    for (run, team) in runs.into_iter().zip(["team-a", "team-b"]) {
        let out = run.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{team}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let all: Vec<String> = names("team-a").into_iter().chain(names("team-b")).collect();
    let (_, listing, _) = sh(&lab, "node1", "cd /etc/ganesha/strata.d && ls strata-*.conf && cat index.conf");
    let mut ids = Vec::new();
    for name in &all {
        let file = format!("strata-{name}.conf");
        assert_eq!(listing.matches(&file).count(), 2, "{file} once in the directory and once in the index: {listing}");
        let (_, content, _) = sh(&lab, "node1", &format!("cat /etc/ganesha/strata.d/{file}"));
        let id = content.lines().find(|l| l.trim_start().starts_with("Export_Id")).unwrap_or_default().to_string();
        ids.push(id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "every export has its own Export_Id: {ids:?}");
    let (_, active, _) = sh(&lab, "node1", "systemctl is-active nfs-ganesha");
    assert_eq!(active.trim(), "active");
    for wd in &dirs {
        assert_eq!(wd.plan_exit_code().unwrap().code, 0, "each state matches the server");
    }
    // Nothing holds the lock once both runs are done.
    let (code, _, _) = sh(&lab, "node1", "flock -n /run/lock/strata-nfs-exports.lock true");
    assert_eq!(code, 0, "the export lock is free");
}

/// `restore_from`: a backup archive on the Terraform host is unpacked into a new, empty
/// export directory before it is exported, with owners and modes; a directory that
/// already holds data is left alone with a warning; after the node lost its data, the
/// next create restores it again.
#[test]
fn restore_from_unpacks_a_backup_into_an_empty_export_only() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let node1 = lab.nodes()[0].address.clone();
    // The off-site backup: a PVC directory owned by uid 1000, mode 0640, gzip'ed.
    let src = tmp.path().join("backup-src");
    std::fs::create_dir_all(src.join("pvc-1")).unwrap();
    std::fs::write(src.join("pvc-1/data.txt"), "prod data\n").unwrap();
    let archive = tmp.path().join("k8s-prod.tar.gz");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chown -R 1000:1000 {s}/pvc-1 && chmod 0640 {s}/pvc-1/data.txt && tar -C {s} --numeric-owner -czf {a} .",
            s = src.display(),
            a = archive.display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    // nonprod already holds data on the node: it must survive.
    let (code, _, err) =
        sh(&lab, "node1", "mkdir -p /srv/nfs/k8s-nonprod && echo keep > /srv/nfs/k8s-nonprod/keep.txt");
    assert_eq!(code, 0, "{err}");
    let restore = format!("  restore_from = \"{}\"\n", archive.display());
    let with_restore = |name: &str| {
        export(name, &node1, "kernel", "", "[\"rw\", \"no_root_squash\"]").replacen(
            "  backend",
            &format!("{restore}  backend"),
            1,
        )
    };
    let main_tf = format!("{}{}{}", provider_block(&lab), with_restore("k8s-prod"), with_restore("k8s-nonprod"));
    let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
    let applied = wd.apply().unwrap();
    assert!(
        applied.stdout.contains("Archive not restored") && applied.stdout.contains("/srv/nfs/k8s-nonprod"),
        "the skipped restore is a warning naming the directory:\n{}",
        applied.stdout
    );
    let stat = "cat /srv/nfs/k8s-prod/pvc-1/data.txt && stat -c '%u:%g %a' /srv/nfs/k8s-prod/pvc-1/data.txt";
    let (code, out, err) = sh(&lab, "node1", stat);
    assert_eq!((code, out.as_str()), (0, "prod data\n1000:1000 640\n"), "{err}");
    let (_, listing, _) = sh(&lab, "node1", "ls -A /srv/nfs/k8s-nonprod");
    assert_eq!(listing, "keep.txt\n", "a directory with data is not restored into");
    let (_, exported, _) = sh(&lab, "node1", "exportfs -v");
    assert!(exported.contains("/srv/nfs/k8s-prod"), "{exported}");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after apply must be empty:\n{}{}", plan.stdout, plan.stderr);

    // The disaster: the export and its data are gone from the node. The next create
    // (same configuration) restores the data in the same apply.
    wd.destroy().unwrap();
    let (_, kept, _) = sh(&lab, "node1", "cat /srv/nfs/k8s-prod/pvc-1/data.txt");
    assert_eq!(kept, "prod data\n", "destroy keeps the data by default");
    let (code, _, err) = sh(&lab, "node1", "rm -rf /srv/nfs/k8s-prod");
    assert_eq!(code, 0, "{err}");
    wd.apply().unwrap();
    let (code, out, err) = sh(&lab, "node1", stat);
    assert_eq!((code, out.as_str()), (0, "prod data\n1000:1000 640\n"), "{err}");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after the rebuild must be empty:\n{}{}", plan.stdout, plan.stderr);
    wd.destroy().unwrap();
}

/// What a reload, restart or rewrite on the NFS server would change: ganesha's and
/// rpcbind's processes and start times, the export file and the include index (inode,
/// size, mtime: `install` writes the one and replaces the other).
fn server_marks(lab: &LabGuard) -> String {
    let (_, out, err) = sh(
        lab,
        "node1",
        "systemctl show -p MainPID -p ActiveEnterTimestamp -p ExecMainStartTimestamp -p NRestarts nfs-ganesha rpcbind; \
         stat -c '%n %i %s %Y' /etc/ganesha/strata.d/strata-k8s-prod.conf /etc/ganesha/strata.d/index.conf \
           /etc/ganesha/ganesha.conf /srv/nfs/k8s-prod",
    );
    assert!(!out.contains("MainPID=0"), "ganesha runs: {out}{err}");
    out
}

/// The same machine reached by a DNS name instead of its address (the name given to
/// the Terraform host's resolver, with a known_hosts line): one in-place change that
/// writes and reloads nothing; `id` and what clients mount stay; then a user,
/// sudo and port of their own, also in place.
#[test]
fn an_ssh_host_changed_to_a_dns_name_of_the_same_server_changes_nothing_on_it() {
    use strata_acceptance_tests::names::{known_hosts_with_names, HostsEntries};
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    let node1 = lab.nodes()[0].address.clone();
    let name = format!("nfs1-{}.nfs.strata.test", std::process::id());
    let names = [(node1.clone(), name.clone())];
    let ssh = lab.info().ssh.clone();
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, known_hosts_with_names(&ssh.known_hosts_file, &names)).unwrap();
    let _hosts = HostsEntries::add("nfs-dns", &names);
    let main_tf = |host: &str, extra: &str| {
        format!(
            "{}{}output \"prod\" {{\n  value = strata_nfs_export.k8s-prod.storage_class_parameters\n}}\n",
            ssh_provider(&ssh.private_key_file, &known_hosts),
            export("k8s-prod", host, "ganesha", extra, "[\"rw\", \"no_root_squash\"]"),
        )
    };
    let wd = Workdir::new(&provider_dir(), &main_tf(&node1, "")).unwrap();
    wd.apply().unwrap();
    let created = wd.resource_values("strata_nfs_export.k8s-prod").unwrap();
    sh(&lab, "node1", "echo kept > /srv/nfs/k8s-prod/marker");

    let steps = [
        ("ssh.host from address to DNS name", main_tf(&name, "")),
        (
            "another user with sudo, and the port set",
            main_tf(&name, &format!("    user = \"{}\"\n    sudo = true\n    port = 22\n", ssh.sudo_user)),
        ),
    ];
    for (change, config) in steps {
        let before = server_marks(&lab);
        wd.write("main.tf", &config).unwrap();
        let plan = wd.plan_exit_code().unwrap();
        assert_eq!(plan.code, 2, "{change}: {}{}", plan.stdout, plan.stderr);
        assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{change}: in place: {}", plan.stdout);
        assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
        let started = std::time::Instant::now();
        let applied = wd.apply().unwrap_or_else(|e| panic!("{change}: {e}"));
        eprintln!("nfs_export {change}: apply {:?}", started.elapsed());
        assert!(applied.stdout.contains("0 added, 1 changed, 0 destroyed"), "{}", applied.stdout);
        assert_eq!(server_marks(&lab), before, "{change}: nothing restarted, reloaded or rewritten");
        let now = wd.resource_values("strata_nfs_export.k8s-prod").unwrap();
        for attr in ["id", "server", "storage_class_parameters", "export_id"] {
            assert_eq!(now[attr], created[attr], "{change}: {attr} unchanged");
        }
        let again = wd.plan_exit_code().unwrap();
        assert_eq!(again.code, 0, "{change}: nothing left to do:\n{}{}", again.stdout, again.stderr);
    }
    let (_, marker, _) = sh(&lab, "node1", "cat /srv/nfs/k8s-prod/marker");
    assert_eq!(marker, "kept\n");
    // What the create fixed, and every step kept.
    assert_eq!(created["server"], node1.as_str());
    assert_eq!(created["id"], format!("{node1}:k8s-prod").as_str());
    assert_eq!(created["storage_class_parameters"]["server"], node1.as_str());
}
