//! strata_etcd_cluster through real Terraform against lab nodes booted with systemd:
//! etcd 3.5.30 (Debian unstable's packages, which kubeadm accepts) from the lab's local
//! Debian repository, run as Debian's etcd.service, over TLS with client-certificate
//! authentication. Debian 12's 3.4.23, also in that repository, is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use strata_acceptance_tests::prober::{ProbeTargets, Prober};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir, REQUIRED_PROVIDERS};
use strata_lab::{LabGuard, PveMode, UpOptions};

/// The lab every etcd test runs on: `nodes` systemd nodes, no Proxmox simulator.
fn lab(dir: &Path, nodes: usize) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)")
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sh_ok(lab: &LabGuard, node: &str, script: &str) -> String {
    let (code, out, err) = sh(lab, node, script);
    if code != 0 {
        let (_, journal, _) = sh(lab, node, "journalctl -n 30 --no-pager");
        panic!("{node}: {script} exited {code}: {out}{err}\n{journal}");
    }
    out
}

/// etcdctl on `node` with the health-check client certificate, against `endpoints`.
fn etcdctl(lab: &LabGuard, node: &str, endpoints: &str, args: &str) -> (i32, String, String) {
    sh(
        lab,
        node,
        &format!(
            "ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt \
             --key=/etc/etcd/pki/healthcheck-client.key --endpoints={endpoints} --dial-timeout=3s --command-timeout=10s {args}"
        ),
    )
}

/// `GET /version` from node1 to node1's client port through `openssl s_client`, the
/// server verified against the CA file, with `cert` (openssl's `-cert/-key` arguments, or
/// none): the exit code and everything it printed, the handshake included.
fn tls_version(lab: &LabGuard, cert: &str) -> (i32, String) {
    let (code, out, err) = sh(
        lab,
        "node1",
        &format!(
            "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | timeout 10 openssl s_client -connect {}:2379 \
             -CAfile /etc/etcd/pki/ca.crt -verify_return_error -ign_eof {cert} 2>&1",
            lab.nodes()[0].address
        ),
    );
    (code, format!("{out}{err}"))
}

fn endpoint(lab: &LabGuard, i: usize) -> String {
    format!("https://{}:2379", lab.nodes()[i].address)
}

/// Two etcd CAs from strata_cluster_secrets, written as files `a.crt`, `a.key`, `b.crt`,
/// `b.key` into `dir`: a configuration that reads them keeps its CA when its state is lost.
fn write_cas(dir: &Path) {
    let tf = format!(
        "{REQUIRED_PROVIDERS}provider \"strata\" {{}}\n\
         resource \"strata_cluster_secrets\" \"a\" {{\n  cluster_name = \"a\"\n}}\n\
         resource \"strata_cluster_secrets\" \"b\" {{\n  cluster_name = \"b\"\n}}\n\
         output \"a_crt\" {{\n  value = strata_cluster_secrets.a.etcd_ca_cert\n}}\n\
         output \"a_key\" {{\n  value     = strata_cluster_secrets.a.etcd_ca_key\n  sensitive = true\n}}\n\
         output \"b_crt\" {{\n  value = strata_cluster_secrets.b.etcd_ca_cert\n}}\n\
         output \"b_key\" {{\n  value     = strata_cluster_secrets.b.etcd_ca_key\n  sensitive = true\n}}\n"
    );
    let wd = Workdir::new(&provider_dir(), &tf).unwrap();
    wd.apply().unwrap();
    for (out, file) in [("a_crt", "a.crt"), ("a_key", "a.key"), ("b_crt", "b.crt"), ("b_key", "b.key")] {
        let v = wd.run(&["output", "-raw", out]).unwrap().ok().unwrap().stdout;
        std::fs::write(dir.join(file), v).unwrap();
    }
}

/// `members` of the lab (by index) as etcd1.., with the CA from files `ca` (.crt/.key).
fn main_tf(lab: &LabGuard, members: &[usize], ca: &str, extra: &str) -> String {
    let named: Vec<(usize, String)> = members.iter().map(|&i| (i, format!("etcd{}", i + 1))).collect();
    main_tf_named(lab, &named, ca, extra)
}

/// `members` of the lab as (index, member name).
fn main_tf_named(lab: &LabGuard, members: &[(usize, String)], ca: &str, extra: &str) -> String {
    let ssh = &lab.info().ssh;
    let mut blocks = String::new();
    for (i, name) in members {
        let a = &lab.nodes()[*i].address;
        blocks.push_str(&format!(
            "  member {{\n    name    = \"{name}\"\n    address = \"{a}\"\n    ssh {{\n      host = \"{a}\"\n    }}\n  }}\n"
        ));
    }
    format!(
        "{provider}resource \"strata_etcd_cluster\" \"main\" {{\n  ca_cert = file(\"{ca}.crt\")\n  ca_key  = file(\"{ca}.key\")\n\
         {blocks}{extra}}}\n\
         output \"cluster_id\" {{\n  value = strata_etcd_cluster.main.cluster_id\n}}\n",
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
    )
}

fn copy_cas(from: &Path, wd: &Workdir, ca: &str, as_name: &str) {
    for ext in ["crt", "key"] {
        std::fs::copy(from.join(format!("{ca}.{ext}")), wd.path().join(format!("{as_name}.{ext}"))).unwrap();
    }
}

/// The member list as `id name` lines, sorted.
fn member_ids(lab: &LabGuard, node: &str, ep: &str) -> Vec<String> {
    let (code, out, err) = etcdctl(lab, node, ep, "member list");
    assert_eq!(code, 0, "{out}{err}");
    let mut v: Vec<String> =
        out.lines().map(|l| l.split(", ").take(3).filter(|f| *f != "started").collect::<Vec<_>>().join(" ")).collect();
    v.sort();
    v
}

fn fingerprint(lab: &LabGuard, node: &str) -> String {
    sh_ok(lab, node, "sha256sum /etc/etcd/pki/* /etc/etcd/strata.env; systemctl show -p MainPID --value etcd")
}

#[test]
fn three_members_form_over_tls_back_up_replace_a_lost_member_change_ca_and_are_adopted_after_state_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = lab(&tmp.path().join("lab"), 3);
    write_cas(tmp.path());
    let backup = "  backup {\n    dir      = \"/srv/backup/etcd\"\n    schedule = \"hourly\"\n    keep     = 2\n  }\n";
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &[0, 1, 2], "ca", backup)).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");
    wd.apply().unwrap();
    let all = (0..3).map(|i| endpoint(&lab, i)).collect::<Vec<_>>().join(",");

    // Healthy over TLS on all three with the health-check client certificate.
    let (code, out, err) = etcdctl(&lab, "node1", &all, "endpoint health");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(format!("{out}{err}").matches("is healthy").count(), 3, "{out}{err}");
    // A client without a certificate is refused in the TLS handshake: the server asks for
    // a client certificate (its CertificateRequest, naming the CA) and ends the handshake
    // with TLS 1.3's "certificate required" alert when none comes. A timeout or a closed
    // port is no refusal. The same request with the client certificate is answered.
    let version = |cert: &str| tls_version(&lab, cert);
    let (code, out) = version("");
    assert_ne!(code, 0, "a client without a certificate got through: {out}");
    assert!(out.contains("Verification: OK"), "the server's certificate was verified: {out}");
    assert!(out.contains("Acceptable client certificate CA names"), "the server asked for a client certificate: {out}");
    assert!(out.contains("alert certificate required"), "refused for want of one: {out}");
    assert!(!out.contains("etcdserver"), "{out}");
    let (code, out) = version("-cert /etc/etcd/pki/healthcheck-client.crt -key /etc/etcd/pki/healthcheck-client.key");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"etcdserver\":\"3.5."), "answered with the certificate: {out}");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after apply must be empty:\n{}{}", plan.stdout, plan.stderr);
    let state = wd.resource_values("strata_etcd_cluster.main").unwrap();
    assert_eq!(state["endpoints"].as_array().unwrap().len(), 3);
    assert!(state["client_certificate"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(state["backup_unit"], "strata-etcd-backup.timer");
    assert!(state["members"].as_array().unwrap().iter().all(|m| m["healthy"] == true && m["id"] != ""), "{state}");
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "put k1 before-loss");
    assert_eq!(code, 0, "{out}{err}");

    // Backups: the timer is active everywhere; a run on every member saves one snapshot
    // (on the leader); retention keeps `keep`.
    for n in ["node1", "node2", "node3"] {
        assert_eq!(sh_ok(&lab, n, "systemctl is-active strata-etcd-backup.timer").trim(), "active", "{n}");
    }
    let run_backups = || {
        for n in ["node1", "node2", "node3"] {
            sh_ok(&lab, n, "systemctl start strata-etcd-backup.service");
        }
    };
    let count = |lab: &LabGuard| -> usize {
        ["node1", "node2", "node3"]
            .iter()
            .map(|n| {
                sh(lab, n, "ls /srv/backup/etcd/etcd-snapshot-*.db 2>/dev/null | wc -l")
                    .1
                    .trim()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum()
    };
    run_backups();
    assert_eq!(count(&lab), 1, "one snapshot per run, on the leader");
    run_backups();
    run_backups();
    assert_eq!(count(&lab), 2, "retention keeps exactly keep = 2");

    // Lose node3: writes through the other two still succeed; the plan shows it unhealthy.
    lab.kill_node("node3").unwrap();
    let two = format!("{},{}", endpoint(&lab, 0), endpoint(&lab, 1));
    // If node3 led, the other two elect a new leader first (about a second): bounded retries.
    let write = (0..15).find_map(|_| {
        let (code, out, err) = etcdctl(&lab, "node1", &two, "put k2 during-loss");
        (code == 0).then_some(()).or_else(|| {
            eprintln!("put during loss: {out}{err}");
            std::thread::sleep(Duration::from_secs(1));
            None
        })
    });
    assert!(write.is_some(), "a write with two of three members never succeeded");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("healthy    = false"), "the member shows unhealthy: {}", plan.stdout);
    let said = format!("{}{}", plan.stdout, plan.stderr);
    assert!(said.contains("etcd member etcd3 not reached"), "the unreachable node is named: {said}");

    // Its node comes back blank; an apply replaces the member.
    lab.recreate_node("node3", Duration::from_secs(120)).unwrap();
    wd.apply().unwrap();
    let (code, out, err) = etcdctl(&lab, "node1", &all, "endpoint health");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(format!("{out}{err}").matches("is healthy").count(), 3, "{out}{err}");
    for (k, v) in [("k1", "before-loss"), ("k2", "during-loss")] {
        let (_, out, _) = etcdctl(&lab, "node3", &endpoint(&lab, 2), &format!("get {k} --print-value-only"));
        assert_eq!(out.trim(), v, "{k} through the replaced member");
    }
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "converged after the replacement");

    // State loss: the running cluster is adopted, no member re-initialised or restarted.
    let ids = member_ids(&lab, "node1", &endpoint(&lab, 0));
    let before: Vec<String> = ["node1", "node2", "node3"].iter().map(|n| fingerprint(&lab, n)).collect();
    std::fs::remove_file(wd.path().join("terraform.tfstate")).unwrap();
    wd.apply().unwrap();
    assert_eq!(member_ids(&lab, "node1", &endpoint(&lab, 0)), ids, "the same members");
    let after: Vec<String> = ["node1", "node2", "node3"].iter().map(|n| fingerprint(&lab, n)).collect();
    assert_eq!(before, after, "adoption rewrote certificates or settings, or restarted etcd");
    let (_, out, _) = etcdctl(&lab, "node2", &endpoint(&lab, 1), "get k1 --print-value-only");
    assert_eq!(out.trim(), "before-loss");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "adopted and converged");

    // A new CA in the configuration: every certificate re-issued and rolled out one member
    // at a time (the new CA trusted beside the old one meanwhile), the data kept.
    // Meanwhile a client on node1 writes every 0.2 s to all three members, with the
    // files the rotation keeps current (the trusted CA file and its client certificate,
    // read again at every write): no write may fail, from the first member's restart
    // to the last. Two files cannot be replaced as one, so the client copies its pair
    // under a shared lock on the directory, the lock Strata holds while it renames a
    // set into place (without it, a client now and then read the new certificate
    // beside the old key: "tls: private key does not match public key"). The old
    // client certificate is kept aside for after.
    sh_ok(&lab, "node1", "cp /etc/etcd/pki/healthcheck-client.crt /root/old-client.crt && cp /etc/etcd/pki/healthcheck-client.key /root/old-client.key");
    sh_ok(
        &lab,
        "node1",
        &format!(
            "systemd-run --unit=strata-write-loop --collect bash -c 'i=0; while [ ! -e /root/stop-writes ]; do i=$((i+1)); \
             if mkdir -p /root/pair && flock -s /etc/etcd/pki cp /etc/etcd/pki/ca.crt \
             /etc/etcd/pki/healthcheck-client.crt /etc/etcd/pki/healthcheck-client.key /root/pair/ 2>>/root/writes.err && \
             ETCDCTL_API=3 etcdctl --cacert=/root/pair/ca.crt --cert=/root/pair/healthcheck-client.crt \
             --key=/root/pair/healthcheck-client.key --endpoints={all} --dial-timeout=3s --command-timeout=10s \
             put rotation/$i $i >/dev/null 2>>/root/writes.err; then echo ok $i; else echo FAILED $i; fi >> /root/writes.log; \
             sleep 0.2; done'"
        ),
    );
    // The loop is writing before the apply starts.
    let t = Instant::now();
    while sh(&lab, "node1", "grep -c '^ok' /root/writes.log").1.trim().parse::<u32>().unwrap_or(0) < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the write loop does not write: {}",
            sh(&lab, "node1", "cat /root/writes.err").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    copy_cas(tmp.path(), &wd, "b", "ca");
    wd.apply().unwrap();
    sh_ok(&lab, "node1", "touch /root/stop-writes; while systemctl is-active -q strata-write-loop; do sleep 0.2; done");
    let writes = sh_ok(&lab, "node1", "cat /root/writes.log");
    let failed: Vec<&str> = writes.lines().filter(|l| !l.starts_with("ok ")).collect();
    let written = writes.lines().count();
    assert!(
        failed.is_empty(),
        "{} of {written} writes failed during the CA rotation: {failed:?}\n{}",
        failed.len(),
        sh(&lab, "node1", "tail -20 /root/writes.err").1
    );
    assert!(written >= 20, "the write loop ran through the rotation: {written} writes");
    let last = written.to_string();
    let (_, out, _) = etcdctl(&lab, "node2", &endpoint(&lab, 1), &format!("get rotation/{last} --print-value-only"));
    assert_eq!(out.trim(), last, "the last write of the loop is in the cluster");
    // After the rotation the old CA is trusted no more: its client is refused in the TLS
    // handshake (while the same request with the current certificate is answered).
    let handshake = |cert: &str| tls_version(&lab, cert);
    let (code, out) = handshake("-cert /root/old-client.crt -key /root/old-client.key");
    assert_ne!(code, 0, "a client of the old CA got through: {out}");
    assert!(out.contains("Verification: OK"), "the server's (new) certificate was verified: {out}");
    assert!(
        out.contains("alert bad certificate") || out.contains("alert unknown ca"),
        "the old CA's client refused in the handshake: {out}"
    );
    assert!(!out.contains("etcdserver"), "{out}");
    let (code, out) = handshake("-cert /etc/etcd/pki/healthcheck-client.crt -key /etc/etcd/pki/healthcheck-client.key");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"etcdserver\":\"3.5."), "the current client certificate is answered: {out}");
    let new_ca = std::fs::read_to_string(tmp.path().join("b.crt")).unwrap();
    for n in ["node1", "node2", "node3"] {
        assert_eq!(sh_ok(&lab, n, "cat /etc/etcd/pki/ca.crt").trim(), new_ca.trim(), "{n} trusts only the new CA");
    }
    let (code, out, err) = etcdctl(&lab, "node1", &all, "endpoint health");
    assert_eq!(format!("{out}{err}").matches("is healthy").count(), 3, "{code}: {out}{err}");
    let (_, out, _) = etcdctl(&lab, "node3", &endpoint(&lab, 2), "get k1 --print-value-only");
    assert_eq!(out.trim(), "before-loss");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "converged on the new CA");

    // State lost again, and the configuration names the old CA: apply refuses to touch
    // the running members and says why.
    let before: Vec<String> = ["node1", "node2", "node3"].iter().map(|n| fingerprint(&lab, n)).collect();
    std::fs::remove_file(wd.path().join("terraform.tfstate")).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");
    let apply = wd.run(&["apply", "-auto-approve"]).unwrap();
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    assert!(apply.stderr.contains("different CA"), "{}", apply.stderr);
    let after: Vec<String> = ["node1", "node2", "node3"].iter().map(|n| fingerprint(&lab, n)).collect();
    assert_eq!(before, after, "a refused apply changed a member");
}

#[test]
fn scale_three_to_five_and_back_refuse_bad_input_and_restore_from_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 5);
    write_cas(tmp.path());
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &[0, 1, 2], "ca", "")).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");

    // Bad input: plan-time errors naming the attribute, nothing on any node.
    let not_a_snapshot = wd.path().join("notes.txt");
    std::fs::write(&not_a_snapshot, "these are notes, not an etcd snapshot").unwrap();
    let bad = [
        (main_tf(&lab, &[], "ca", ""), "No etcd members"),
        (main_tf(&lab, &[0, 1, 2], "ca", "  data_dir = \"var/lib/etcd\"\n"), "Invalid value for data_dir"),
        (
            main_tf(&lab, &[0, 1, 2], "ca", "  backup {\n    dir  = \"/srv/backup\"\n    keep = 0\n  }\n"),
            "Invalid value for backup.keep",
        ),
        (
            main_tf(&lab, &[0, 1, 2], "ca", &format!("  restore_from_snapshot = \"{}\"\n", not_a_snapshot.display())),
            "is not an etcd snapshot",
        ),
        (
            main_tf(&lab, &[0, 1, 2], "ca", "  restore_from_snapshot = \"/nonexistent/snap.db\"\n"),
            "restore_from_snapshot",
        ),
        (main_tf(&lab, &[0, 1, 2], "ca", "").replacen("etcd2", "etcd1", 1), "Duplicate node name"),
    ];
    for (tf, expected) in bad {
        wd.write("main.tf", &tf).unwrap();
        let plan = wd.run(&["plan"]).unwrap();
        assert_eq!(plan.code, 1, "{expected}: {}", plan.stdout);
        assert!(plan.stderr.contains(expected), "{expected}: {}", plan.stderr);
    }
    wd.write("main.tf", &main_tf(&lab, &[0, 1], "ca", "")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 0, "an even count is only a warning: {}", plan.stderr);
    assert!(format!("{}{}", plan.stdout, plan.stderr).contains("Even number of etcd members"), "{}", plan.stdout);
    for n in ["node1", "node2", "node3"] {
        let (code, _, _) = sh(&lab, n, "test -e /etc/etcd || test -e /var/lib/etcd");
        assert_ne!(code, 0, "{n} was touched by a refused plan");
    }

    // 3, then 5, then 3 members, one apply each: the first key survives every step.
    wd.write("main.tf", &main_tf(&lab, &[0, 1, 2], "ca", "")).unwrap();
    wd.apply().unwrap();
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "put first kept");
    assert_eq!(code, 0, "{out}{err}");
    let read_first = |node: &str, i: usize| etcdctl(&lab, node, &endpoint(&lab, i), "get first --print-value-only").1;
    wd.write("main.tf", &main_tf(&lab, &[0, 1, 2, 3, 4], "ca", "")).unwrap();
    wd.apply().unwrap();
    assert_eq!(member_ids(&lab, "node1", &endpoint(&lab, 0)).len(), 5);
    assert_eq!(read_first("node5", 4).trim(), "kept", "through a new member");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
    // Removing three of five at once is refused at plan time.
    wd.write("main.tf", &main_tf(&lab, &[0, 1], "ca", "")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stderr.contains("Removing a majority of etcd members"), "{}", plan.stderr);
    wd.write("main.tf", &main_tf(&lab, &[0, 1, 2], "ca", "")).unwrap();
    wd.apply().unwrap();
    let ids = member_ids(&lab, "node1", &endpoint(&lab, 0));
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(read_first("node2", 1).trim(), "kept");
    for n in ["node4", "node5"] {
        assert_eq!(sh(&lab, n, "systemctl is-active etcd").1.trim(), "inactive", "{n}: removed member still runs");
        assert_eq!(sh_ok(&lab, n, "ls -A /var/lib/etcd | wc -l").trim(), "0", "{n}: data not wiped");
    }
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // Restore: a snapshot, the cluster destroyed and its nodes wiped, created again from it.
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "put restored yes");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "snapshot save /root/snap.db");
    assert_eq!(code, 0, "{out}{err}");
    let snap = lab.exec("node1", &["cat", "/root/snap.db"]).unwrap().stdout;
    let snap_file = wd.path().join("snap.db");
    std::fs::write(&snap_file, snap).unwrap();
    wd.destroy().unwrap();
    for n in ["node1", "node2", "node3"] {
        assert_eq!(sh(&lab, n, "systemctl is-active etcd").1.trim(), "inactive", "{n}");
        // Data is never deleted by a default (delete_data_on_destroy is off): the test
        // wipes the nodes itself, as after losing them.
        assert_ne!(sh_ok(&lab, n, "ls -A /var/lib/etcd | wc -l").trim(), "0", "{n}: destroy deleted the data");
        sh_ok(&lab, n, "find /var/lib/etcd -mindepth 1 -delete");
    }
    let restore = format!("  restore_from_snapshot = \"{}\"\n", snap_file.display());
    wd.write("main.tf", &main_tf(&lab, &[0, 1, 2], "ca", &restore)).unwrap();
    wd.apply().unwrap();
    for (n, i) in [("node1", 0), ("node3", 2)] {
        let (_, out, _) = etcdctl(&lab, n, &endpoint(&lab, i), "get restored --print-value-only");
        assert_eq!(out.trim(), "yes", "{n}: the restored key");
    }
    assert_eq!(read_first("node2", 1).trim(), "kept");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
}

/// An etcd release archive as upstream lays it out, made from the Debian packages'
/// binaries of etcd `version` (e.g. `3.5.30`) in the lab's local repository (no upstream
/// download here); its sha256.
fn release_archive(lab: &LabGuard, dir: &Path, version: &str) -> (std::path::PathBuf, String) {
    let repo = lab.info().repo.clone().expect("systemd labs have a local repository");
    let name = format!("etcd-v{version}-linux-amd64");
    let root = dir.join(format!("debs-{version}"));
    let top = dir.join("archive").join(&name);
    std::fs::create_dir_all(&top).unwrap();
    for pkg in ["etcd-server", "etcd-client"] {
        let deb = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{pkg}_{version}-")))
            .unwrap_or_else(|| panic!("{pkg} {version} in {}", repo.display()));
        let st = std::process::Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root).status().unwrap();
        assert!(st.success());
    }
    for bin in ["etcd", "etcdctl"] {
        std::fs::copy(root.join("usr/bin").join(bin), top.join(bin)).unwrap();
    }
    let tarball = dir.join(format!("{name}.tar.gz"));
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.join("archive"))
        .arg(&name)
        .status()
        .unwrap();
    assert!(st.success());
    let out = std::process::Command::new("sha256sum").arg(&tarball).output().unwrap();
    let sha = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
    (tarball, sha)
}

/// kubeadm 1.34 to 1.36 refuse an external etcd older than 3.5.24 (MinExternalEtcdVersion
/// 3.5.24-0); so does strata_etcd_cluster: at plan when package_version pins Debian 12's
/// 3.4.23, and at apply when a release archive turns out to hold 3.4.23, before etcd starts.
#[test]
fn an_etcd_older_than_kubeadms_minimum_is_refused_at_plan_or_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    write_cas(tmp.path());
    let pinned = "  package_version = \"3.4.23-4+b4\"\n";
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &[0], "ca", pinned)).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");
    // Terraform wraps diagnostics in a box: compare words.
    let words = |s: &str| s.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    for want in ["etcd too old for kubeadm", "package_version \"3.4.23-4+b4\" is etcd 3.4.23", "older than 3.5.24"] {
        assert!(words(&plan.stderr).contains(want), "{want} in {}", plan.stderr);
    }
    assert_ne!(sh(&lab, "node1", "test -e /etc/etcd/strata.env").0, 0, "node touched at plan");

    let (tarball, sha) = release_archive(&lab, tmp.path(), "3.4.23");
    let archive =
        format!("  release_archive {{\n    path   = \"{}\"\n    sha256 = \"{sha}\"\n  }}\n", tarball.display());
    wd.write("main.tf", &main_tf(&lab, &[0], "ca", &archive)).unwrap();
    let apply = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(apply.code, 0, "{}", apply.stdout);
    let err = words(&apply.stderr);
    for want in ["etcd 3.4.23", "older than 3.5.24", "MinExternalEtcdVersion 3.5.24-0", "release_archive"] {
        assert!(err.contains(want), "{want} in {}", apply.stderr);
    }
    assert_ne!(sh(&lab, "node1", "systemctl is-active --quiet etcd").0, 0, "etcd 3.4 was started");
    assert_ne!(sh(&lab, "node1", "test -e /etc/etcd/strata.env").0, 0, "etcd 3.4 was configured");
}

#[test]
fn a_release_archive_checked_by_sha256_installs_etcd_without_its_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 1);
    write_cas(tmp.path());
    let (tarball, sha) = release_archive(&lab, tmp.path(), "3.5.30");
    let archive = |sha: &str| {
        format!("  release_archive {{\n    path   = \"{}\"\n    sha256 = \"{sha}\"\n  }}\n", tarball.display())
    };
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &[0], "ca", &archive(&"0".repeat(64)))).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");
    // A digest that does not match is refused at plan time, before any node is touched.
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stderr.contains("Invalid release_archive") && plan.stderr.contains(&sha), "{}", plan.stderr);
    assert_ne!(sh(&lab, "node1", "test -e /usr/local/bin/etcd || test -e /etc/etcd").0, 0, "node touched");

    wd.write("main.tf", &main_tf(&lab, &[0], "ca", &archive(&sha))).unwrap();
    wd.apply().unwrap();
    let (_, status, _) = sh(&lab, "node1", "dpkg-query -W -f='${Status}' etcd-server 2>/dev/null");
    assert!(!status.contains("install ok installed"), "the Debian package was installed: {status}");
    assert_eq!(
        sh_ok(&lab, "node1", "systemctl show -p ExecStart --value etcd | grep -o '/usr/local/bin/etcd ' | head -n 1")
            .trim(),
        "/usr/local/bin/etcd"
    );
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "endpoint health");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(wd.resource_values("strata_etcd_cluster.main").unwrap()["version"], "3.5.30");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
}

/// A check for the prober: key `key` reads back `value` through etcd's JSON gateway on
/// `address` (over TLS, with the API server's client certificate from state), a
/// linearizable read, so it needs a leader and a quorum.
fn key_check(
    address: &str,
    state: &serde_json::Value,
    key: &str,
    value: &str,
) -> strata_acceptance_tests::prober::Check {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let identity =
        format!("{}\n{}", state["client_certificate"].as_str().unwrap(), state["client_private_key"].as_str().unwrap());
    let http = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(state["ca_certificate"].as_str().unwrap().as_bytes()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = format!("https://{address}:2379/v3/kv/range");
    let body = serde_json::json!({ "key": b64.encode(key) });
    let want = b64.encode(value);
    let key = key.to_string();
    Box::new(move || {
        let r: serde_json::Value = http.post(&url).json(&body).send()?.error_for_status()?.json()?;
        anyhow::ensure!(r["kvs"][0]["value"] == want.as_str(), "{key} reads {r}");
        Ok(())
    })
}

/// `id name` of each member, sorted by id.
fn ids_and_names(lab: &LabGuard) -> Vec<(String, String)> {
    let (code, out, err) = etcdctl(lab, "node1", &endpoint(lab, 0), "member list");
    assert_eq!(code, 0, "{out}{err}");
    let mut v: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect();
    v.sort();
    v
}

/// Applies with the prober reading `day2` through node1 every 100 ms (and TCP to its
/// client port); the apply's time and the probe report.
fn apply_probed(
    lab: &LabGuard,
    wd: &Workdir,
    change: &str,
) -> (Duration, strata_acceptance_tests::prober::ProbeReport) {
    let state = wd.resource_values("strata_etcd_cluster.main").unwrap();
    let a = lab.nodes()[0].address.clone();
    let p = Prober::start(ProbeTargets::tcp(&a, 2379).with_check(key_check(&a, &state, "day2", "kept")));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let run = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let report = p.stop();
    assert_eq!(run.code, 0, "{change}: {}{}", run.stdout, run.stderr);
    eprintln!("{change}: apply {:.1} s; {}", took.as_secs_f64(), report.summary());
    report.record(change, took);
    (took, report)
}

fn stopped_and_empty(lab: &LabGuard, nodes: &[&str]) {
    for n in nodes {
        assert_ne!(sh(lab, n, "systemctl is-active --quiet etcd").0, 0, "{n}: etcd runs");
        assert_ne!(sh(lab, n, "test -d /var/lib/etcd/member").0, 0, "{n}: a cluster was formed");
    }
}

#[test]
fn grow_one_to_three_rename_a_member_and_a_cluster_that_lost_its_data_is_restored_not_formed_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 3);
    write_cas(tmp.path());
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &[0], "ca", "")).unwrap();
    copy_cas(tmp.path(), &wd, "a", "ca");
    wd.apply().unwrap();
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "put day2 kept");
    assert_eq!(code, 0, "{out}{err}");
    let nodes = ["node1", "node2", "node3"];
    let all = (0..3).map(|i| endpoint(&lab, i)).collect::<Vec<_>>().join(",");

    // 1 -> 3, one member at a time (a learner, promoted once in sync): the key keeps
    // reading through the first member.
    wd.write("main.tf", &main_tf(&lab, &[0, 1, 2], "ca", "")).unwrap();
    let (_, report) = apply_probed(&lab, &wd, "etcd grown from 1 to 3 members");
    assert!(report.failed() <= 1, "{}", report.summary());
    let (code, out, err) = etcdctl(&lab, "node1", &all, "endpoint health");
    assert_eq!(format!("{out}{err}").matches("is healthy").count(), 3, "{code}: {out}{err}");
    let (_, out, _) = etcdctl(&lab, "node3", &endpoint(&lab, 2), "get day2 --print-value-only");
    assert_eq!(out.trim(), "kept", "through a new member");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "converged after the growth");

    // Rename etcd2: an in-place update; the member keeps its id and data, no probe fails.
    let before = ids_and_names(&lab);
    let renamed: Vec<(usize, String)> = vec![(0, "etcd1".into()), (1, "etcd-b".into()), (2, "etcd3".into())];
    wd.write("main.tf", &main_tf_named(&lab, &renamed, "ca", "")).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    let (_, report) = apply_probed(&lab, &wd, "etcd member renamed");
    assert_eq!(report.failed(), 0, "{}", report.summary());
    let after = ids_and_names(&lab);
    let expect: Vec<(String, String)> = before
        .iter()
        .map(|(id, name)| (id.clone(), if name == "etcd2" { "etcd-b".to_string() } else { name.clone() }))
        .collect();
    assert_eq!(after, expect, "same member ids, etcd2 now etcd-b (before: {before:?})");
    assert!(sh_ok(&lab, "node2", "cat /etc/etcd/strata.env").contains("ETCD_NAME=etcd-b"));
    let (_, out, _) = etcdctl(&lab, "node2", &endpoint(&lab, 1), "get day2 --print-value-only");
    assert_eq!(out.trim(), "kept", "through the renamed member");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "converged after the rename");

    // A snapshot for later, then every member's data directory lost on running nodes.
    let (code, out, err) = etcdctl(&lab, "node1", &endpoint(&lab, 0), "snapshot save /root/snap.db");
    assert_eq!(code, 0, "{out}{err}");
    let snap_file = wd.path().join("snap.db");
    std::fs::write(&snap_file, lab.exec("node1", &["cat", "/root/snap.db"]).unwrap().stdout).unwrap();
    let restore = format!("  restore_from_snapshot = \"{}\"\n", snap_file.display());
    // Set on a running cluster (unused there), a snapshot file that has moved since
    // breaks no plan.
    wd.write("main.tf", &main_tf_named(&lab, &renamed, "ca", &restore)).unwrap();
    wd.apply().unwrap();
    let moved = wd.path().join("moved.db");
    std::fs::rename(&snap_file, &moved).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "a moved snapshot broke the plan of a running cluster: {}{}", plan.stdout, plan.stderr);
    std::fs::rename(&moved, &snap_file).unwrap();

    let refused = |what: &str| {
        wd.write("main.tf", &main_tf_named(&lab, &renamed, "ca", "")).unwrap();
        // The plan says so (a warning, the rest of a configuration still plans) ...
        let plan = wd.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]).unwrap();
        let said = format!("{}{}", plan.stdout, plan.stderr);
        assert_eq!(plan.code, 2, "{what}: {said}");
        assert!(said.contains("etcd cluster data lost") && said.contains("will refuse"), "{what}: {said}");
        // ... and the apply refuses, naming both ways out.
        let apply = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
        assert_eq!(apply.code, 1, "{what}: {}{}", apply.stdout, apply.stderr);
        let said = format!("{}{}", apply.stdout, apply.stderr);
        assert!(
            said.contains("restore_from_snapshot")
                && said.contains("allow_empty_cluster")
                && said.contains("lost its data"),
            "{what}: {said}"
        );
        stopped_and_empty(&lab, &nodes);
    };
    let restored = |what: &str| {
        wd.write("main.tf", &main_tf_named(&lab, &renamed, "ca", &restore)).unwrap();
        wd.apply().unwrap();
        for (n, i) in [("node1", 0), ("node2", 1), ("node3", 2)] {
            let (_, out, _) = etcdctl(&lab, n, &endpoint(&lab, i), "get day2 --print-value-only");
            assert_eq!(out.trim(), "kept", "{what}: {n} after the restore");
        }
        assert_eq!(wd.plan_exit_code().unwrap().code, 0, "{what}: converged after the restore");
    };
    for n in nodes {
        sh_ok(&lab, n, "systemctl stop etcd && rm -rf /var/lib/etcd");
    }
    refused("data directories lost");
    restored("data directories lost");

    // The nodes come back blank (as VMs re-created from the template): no etcd settings,
    // certificates, data or service.
    for n in nodes {
        sh_ok(
            &lab,
            n,
            "systemctl disable --now etcd && rm -rf /var/lib/etcd /etc/etcd /etc/systemd/system/etcd.service.d \
             && systemctl daemon-reload",
        );
    }
    refused("nodes blank");
    for n in nodes {
        assert_ne!(sh(&lab, n, "test -e /etc/etcd/strata.env").0, 0, "{n}: configured by a refused apply");
    }
    restored("nodes blank");
}
