//! End-to-end tests: the real binary against a temp root seeded with a fake
//! Debian node. Live state is simulated inside the root (`--simulate`, see `system.rs`).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use strata_agent::handlers::{Pending, PENDING_FILE};
use strata_agent::report::{Report, RunMode, Status};
use strata_agent::system::{SimSystemd, SimulatedSystem, SIM_SYSTEMD};

const BIN: &str = env!("CARGO_BIN_EXE_strata-agent");

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

fn write(root: &Path, p: &str, content: &str) {
    let p = root.join(p.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// A fake Debian node: accounts, fstab with active swap, dpkg status with an
/// older containerd, /proc with ip_forward=0 and only `overlay` loaded.
fn seeded_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    write(r, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    write(r, "/etc/group", "root:x:0:\n");
    write(
        r,
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    );
    write(r, "/etc/fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=0a1b / ext4 errors=remount-ro 0 1\n/swap.img\tnone\tswap\tsw\t0\t0\n");
    write(r, "/var/lib/dpkg/status", "Package: containerd\nStatus: install ok installed\nPriority: optional\nVersion: 1.6.12~ds1-1\nArchitecture: amd64\n\nPackage: runc\nStatus: install ok installed\nVersion: 1.1.5+ds1-1\nArchitecture: amd64\n");
    write(r, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swap.img\tfile\t2097148\t0\t-2\n");
    write(r, "/proc/modules", "overlay 151552 0 - Live 0x0000000000000000\n");
    write(r, "/proc/sys/net/ipv4/ip_forward", "0\n");
    write(r, "/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    write(
        r,
        "/proc/meminfo",
        "MemTotal:        4028440 kB\nMemFree:          100000 kB\nSwapTotal:       2097148 kB\n",
    );
    write(r, "/proc/cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n");
    write(r, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
    d
}

fn agent(args: &[&str], root: &Path) -> Output {
    Command::new(BIN).args(args).arg("--simulate").arg("--root").arg(root).output().unwrap()
}

fn json_report(args: &[&str], root: &Path) -> (i32, Report) {
    let mut a = args.to_vec();
    a.push("--json");
    let out = agent(&a, root);
    let report: Report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: stdout={} stderr={}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap(), report)
}

/// Every entry under `root`: type, mode, content (or link target) hashed.
fn tree_hash(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let mut h = Sha256::new();
            h.update(format!("{:o}", m.permissions().mode()));
            if m.is_symlink() {
                h.update(fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes());
            } else if m.is_dir() {
                stack.push(p.clone());
            } else {
                h.update(fs::read(&p).unwrap());
            }
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), format!("{:x}", h.finalize()));
        }
    }
    out
}

fn sim(root: &Path) -> SimSystemd {
    SimulatedSystem { root: root.to_path_buf() }.load_systemd().unwrap()
}

fn restarts(root: &Path, unit: &str) -> u32 {
    sim(root).units.get(unit).map_or(0, |u| u.restarts)
}

#[test]
fn apply_changes_then_second_apply_is_a_noop() {
    let d = seeded_root();
    let r = d.path();
    let hcl = example("k8s-node.hcl");
    let out = agent(&["apply", hcl.to_str().unwrap()], r);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("changed: containerd config (")), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("ok=0 changed=13 failed=0 skipped=0"), "{stdout}");

    // The node now looks like a Kubernetes node.
    let read = |p: &str| fs::read_to_string(r.join(p)).unwrap();
    assert!(read("etc/containerd/config.toml").contains("SystemdCgroup = true"));
    assert!(read("etc/containerd/certs.d/docker.io/hosts.toml").contains("https://mirror.example:5000"));
    assert!(read("etc/kubernetes/kubelet.conf.d/50-strata.conf").contains("cgroupDriver: systemd"));
    assert!(!r.join("var/lib/kubelet/config.yaml").exists(), "kubeadm's");
    assert!(read("etc/fstab").contains("#/swap.img"));
    assert_eq!(read("proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert!(read("proc/modules").contains("br_netfilter"));
    assert!(
        read("var/lib/dpkg/status").contains("Status: hold ok installed\nPriority: optional\nVersion: 1.6.20~ds1-1")
    );
    assert_eq!(read("proc/swaps").lines().count(), 1, "only the header is left");
    assert_eq!(restarts(r, "containerd.service"), 1);
    // kubelet is only enabled, not running: try-restart leaves it stopped.
    assert_eq!(restarts(r, "kubelet.service"), 0);
    assert!(!sim(r).units["kubelet.service"].active);
    assert!(!r.join(PENDING_FILE.trim_start_matches('/')).exists());

    // Second run: nothing to do, exit 0, no restarts.
    let out = agent(&["apply", hcl.to_str().unwrap()], r);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("ok=11 changed=0 failed=0 skipped=0\n"), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("ok: ") || l.starts_with("ok=")), "{stdout}");
    assert_eq!(restarts(r, "containerd.service"), 1);

    // The JSON spec describes the same node.
    let (code, rep) = json_report(&["apply", example("k8s-node.json").to_str().unwrap()], r);
    assert_eq!((code, rep.recap.changed), (0, 0));
}

#[test]
fn check_changes_nothing_and_reports_would_change() {
    let d = seeded_root();
    let before = tree_hash(d.path());
    let (code, rep) = json_report(&["check", example("k8s-node.hcl").to_str().unwrap(), "--diff"], d.path());
    assert_eq!(code, 2);
    assert_eq!(rep.mode, RunMode::Check);
    assert!(rep.changed && !rep.failed);
    assert!(rep.tasks.iter().any(|t| t.name == "restart containerd.service" && t.status == Status::Changed));
    let motd = rep.tasks.iter().find(|t| t.name == "file /etc/motd").unwrap();
    assert!(
        motd.changes[0].diff.as_deref().unwrap().contains("+Managed by Strata."),
        "--diff puts diffs in the JSON report"
    );
    assert_eq!(tree_hash(d.path()), before, "check modified the tree");

    // After apply, check agrees that nothing is left to do.
    assert_eq!(agent(&["apply", example("k8s-node.hcl").to_str().unwrap()], d.path()).status.code(), Some(2));
    let before = tree_hash(d.path());
    let out = agent(&["check", example("k8s-node.hcl").to_str().unwrap()], d.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(tree_hash(d.path()), before);
}

#[test]
fn diff_flag_prints_unified_diff() {
    let d = seeded_root();
    let spec = example("k8s-node.hcl");
    agent(&["apply", spec.to_str().unwrap()], d.path());
    write(d.path(), "/etc/motd", "hand edited\n");
    let out = agent(&["check", spec.to_str().unwrap(), "--diff"], d.path());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2));
    assert!(s.contains("changed: file /etc/motd ("), "{s}");
    assert!(s.contains("--- a/etc/motd\n+++ b/etc/motd\n@@ -1 +1 @@\n-hand edited\n+Managed by Strata.\n"), "{s}");
    // Without --diff there is no diff.
    let out = agent(&["check", spec.to_str().unwrap()], d.path());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("+++"));
}

#[test]
fn json_report_is_machine_readable() {
    let d = seeded_root();
    let (code, rep) = json_report(&["apply", example("k8s-node.json").to_str().unwrap()], d.path());
    assert_eq!(code, 2);
    assert_eq!(rep.format, 1);
    assert_eq!(rep.recap.changed, rep.tasks.iter().filter(|t| t.status == Status::Changed).count());
    let swap = rep.tasks.iter().find(|t| t.module == "swap").unwrap();
    let whats: Vec<&str> = swap.changes.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(whats, vec!["swapoff /swap.img", "update /etc/fstab", "mask swap.img.swap"]);
    assert!(rep.tasks.iter().flat_map(|t| &t.changes).all(|c| c.diff.is_none()), "file contents only with --diff");
    let raw: serde_json::Value = serde_json::from_slice(
        &agent(&["check", example("k8s-node.json").to_str().unwrap(), "--json"], d.path()).stdout,
    )
    .unwrap();
    assert_eq!(raw["mode"], "check");
    assert_eq!(raw["recap"]["changed"], 0);
}

#[test]
fn spec_from_stdin_is_sniffed() {
    let d = seeded_root();
    let mut child = Command::new(BIN)
        .args(["check", "-", "--simulate", "--root"])
        .arg(d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"sysctl": {"net.ipv4.ip_forward": 1}}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("changed: sysctl ("));
}

#[test]
fn unknown_key_in_hcl_names_key_and_line() {
    let d = seeded_root();
    let spec = d.path().join("bad.hcl");
    fs::write(&spec, "swap_off = true\n\ncontainerd {\n  version = 2\n  sandbox_imagee = \"x\"\n}\n").unwrap();
    let out = agent(&["apply", spec.to_str().unwrap()], d.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "a spec error has its own code");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("containerd.sandbox_imagee"), "{err}");
    assert!(err.contains("unknown field `sandbox_imagee`"), "{err}");
    // Nothing was applied.
    assert!(fs::read_to_string(d.path().join("etc/fstab")).unwrap().contains("\n/swap.img"));
}

#[test]
fn unknown_key_in_json_names_key_and_line() {
    let d = seeded_root();
    let spec = d.path().join("bad.json");
    fs::write(
        &spec,
        "{\n  \"kubelet\": {\n    \"cluster_dns\": [\"10.96.0.10\"],\n    \"clusterDomain\": \"x\"\n  }\n}\n",
    )
    .unwrap();
    let out = agent(&["check", spec.to_str().unwrap()], d.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65));
    assert!(err.contains("line 4") && err.contains("kubelet.clusterDomain"), "{err}");
    // With --json the error is machine-readable too.
    let out = agent(&["check", spec.to_str().unwrap(), "--json"], d.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["key"].as_str(), v["line"].as_u64()), (Some("kubelet.clusterDomain"), Some(4)));
}

#[test]
fn wrong_type_is_reported_with_key_and_line() {
    let d = seeded_root();
    let spec = d.path().join("bad.hcl");
    fs::write(&spec, "package \"kubelet\" {\n  hold = \"yes\"\n}\n").unwrap();
    let err = String::from_utf8_lossy(&agent(&["check", spec.to_str().unwrap()], d.path()).stderr).into_owned();
    assert!(err.contains("line 2") && err.contains("package.kubelet.hold") && err.contains("invalid type"), "{err}");
}

/// The ansible/ansible#4766 scenario: the containerd config changes, a later
/// task fails, and the run stops before handlers. The next run finds the
/// config already in place but must still restart containerd.
#[test]
fn restart_owed_by_a_failed_run_happens_on_the_next_run() {
    let d = seeded_root();
    let r = d.path();
    let good = fs::read_to_string(example("k8s-node.hcl")).unwrap();
    // kubelet runs after containerd; a value with a space is rejected by the kubelet task.
    let bad = good.replace("\"node-ip\" = \"10.0.0.5\"", "\"node-ip\" = \"10.0.0.5 10.0.0.6\"");
    assert_ne!(bad, good);
    fs::write(r.join("bad.hcl"), &bad).unwrap();
    fs::write(r.join("good.hcl"), &good).unwrap();

    let (code, rep) = json_report(&["apply", r.join("bad.hcl").to_str().unwrap()], r);
    assert_eq!(code, 1);
    let status = |rep: &Report, name: &str| rep.tasks.iter().find(|t| t.name == name).map(|t| t.status);
    assert_eq!(status(&rep, "containerd config"), Some(Status::Changed));
    assert_eq!(status(&rep, "kubelet config"), Some(Status::Failed));
    assert_eq!(status(&rep, "service containerd.service"), Some(Status::Skipped));
    assert!(rep.tasks.iter().all(|t| t.module != "handler"), "handlers must not run after a failure");
    assert!(rep
        .tasks
        .iter()
        .find(|t| t.name == "kubelet config")
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("node-ip"));
    assert_eq!(restarts(r, "containerd.service"), 0);
    assert!(Pending::load(r).unwrap().restart.contains("containerd.service"));

    let (code, rep) = json_report(&["apply", r.join("good.hcl").to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert_eq!(status(&rep, "containerd config"), Some(Status::Ok), "config was already written");
    assert_eq!(status(&rep, "restart containerd.service"), Some(Status::Changed));
    assert_eq!(restarts(r, "containerd.service"), 1);
    assert!(Pending::load(r).unwrap().is_empty());
}

#[test]
fn failed_restart_stays_pending_until_it_succeeds() {
    let d = seeded_root();
    let r = d.path();
    let spec = example("k8s-node.hcl");
    // kubelet already runs (try-restart restarts only running units).
    write(
        r,
        SIM_SYSTEMD,
        r#"{"fail_restart": ["containerd.service"], "units": {"kubelet.service": {"active": true}}}"#,
    );
    let (code, rep) = json_report(&["apply", spec.to_str().unwrap()], r);
    assert_eq!(code, 1);
    let h = rep.tasks.iter().find(|t| t.name == "restart containerd.service").unwrap();
    assert_eq!(h.status, Status::Failed);
    assert_eq!(Pending::load(r).unwrap().restart.into_iter().collect::<Vec<_>>(), vec!["containerd.service"]);
    assert_eq!(restarts(r, "kubelet.service"), 1, "other handlers still ran");

    let mut s = sim(r);
    s.fail_restart.clear();
    write(r, SIM_SYSTEMD, &serde_json::to_string(&s).unwrap());
    let (code, rep) = json_report(&["apply", spec.to_str().unwrap()], r);
    assert_eq!((code, rep.recap.changed), (2, 1));
    assert_eq!(restarts(r, "containerd.service"), 1);
    assert_eq!(restarts(r, "kubelet.service"), 1);
    assert!(Pending::load(r).unwrap().is_empty());
}

#[test]
fn facts_json_reads_the_root() {
    let d = seeded_root();
    let out = Command::new(BIN).args(["facts", "--json", "--root"]).arg(d.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["os"]["id"], "debian");
    assert_eq!(v["os"]["version_codename"], "bookworm");
    assert_eq!(v["kernel"], "6.1.0-18-amd64");
    assert_eq!(v["cpus"], 2);
    assert_eq!(v["memory_bytes"], 4028440u64 * 1024);
    assert_eq!(v["swap_total_bytes"], 2097148u64 * 1024);
    assert_eq!(v["cgroup_version"], "v2");
    assert_eq!(v["containerd"], "1.6.12~ds1-1");
    assert_eq!(v["runc"], "1.1.5+ds1-1");
    assert!(v["kubelet"].is_null());
}

#[test]
fn hcl_and_json_examples_are_the_same_spec() {
    let hcl = strata_agent::parse::parse_hcl(&fs::read_to_string(example("k8s-node.hcl")).unwrap()).unwrap();
    let json = strata_agent::parse::parse_json(&fs::read_to_string(example("k8s-node.json")).unwrap()).unwrap();
    assert_eq!(hcl, json);
    assert!(hcl.swap_off && hcl.containerd.is_some() && hcl.kubelet.is_some() && hcl.crictl.is_some());
}

/// 2 means "changed": a usage error must never exit with it (clap's default).
#[test]
fn usage_errors_exit_64_never_2() {
    let d = seeded_root();
    let spec = example("k8s-node.json");
    let spec = spec.to_str().unwrap();
    let missing = d.path().join("no-such-spec.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["apply", spec, "--bogus-flag"], "--bogus-flag"),
        (vec!["apply"], "SPEC"),
        (vec![], "Usage"),
        (vec!["frobnicate"], "frobnicate"),
        (vec!["apply", missing.to_str().unwrap(), "--root", d.path().to_str().unwrap()], "no-such-spec.json"),
        (vec!["check", spec, "--root", "/no/such/root"], "--root"),
        // A simulation of the running system itself is refused, whatever the spelling of `/`.
        (vec!["check", spec, "--simulate", "--root", "/"], "own root"),
        (vec!["check", spec, "--simulate", "--root", "/usr/.."], "own root"),
    ];
    for (args, names) in cases {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(names), "{args:?} names {names:?}: {err}");
    }
    // With --json the error is on stdout as JSON, still with its own code.
    let out = Command::new(BIN).args(["apply", missing.to_str().unwrap(), "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no-such-spec.json"), "{v}");
    // Nothing was applied.
    assert!(fs::read_to_string(d.path().join("etc/fstab")).unwrap().contains("\n/swap.img"));
}

#[test]
fn help_documents_the_exit_codes_and_exits_0() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0   nothing changed",
        "2   something changed",
        "1   a task failed",
        "64  usage error",
        "65  the spec does not parse",
    ] {
        assert!(help.contains(line), "--help lists {line:?}: {help}");
    }
}

fn spec_file(dir: &Path, name: &str, json: serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, json.to_string()).unwrap();
    p
}

/// What leaves the spec is undone on the next apply, and `check` shows it
/// beforehand without touching anything.
#[test]
fn removed_files_mirrors_and_sysctls_are_undone() {
    let d = seeded_root();
    let r = d.path();
    let specs = tempfile::tempdir().unwrap();
    write(r, "/proc/sys/vm/swappiness", "60\n");
    let mirror = |host: &str| serde_json::json!({ "endpoints": [format!("https://{host}")] });
    let full = spec_file(
        specs.path(),
        "full.json",
        serde_json::json!({
            "file": { "/etc/a.conf": { "content": "a\n" }, "/etc/b.conf": { "content": "b\n" } },
            "containerd": { "registry_mirror": { "docker.io": mirror("m1.example"), "quay.io": mirror("m2.example") } },
            "sysctl": { "net.ipv4.ip_forward": 1, "vm.swappiness": 10 },
        }),
    );
    let (code, _) = json_report(&["apply", full.to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert_eq!(fs::read_to_string(r.join("proc/sys/vm/swappiness")).unwrap().trim(), "10");

    let less = spec_file(
        specs.path(),
        "less.json",
        serde_json::json!({
            "file": { "/etc/b.conf": { "content": "b\n" } },
            "containerd": { "registry_mirror": { "docker.io": mirror("m1.example") } },
            "sysctl": { "net.ipv4.ip_forward": 1 },
        }),
    );
    // check: the removals are planned, the tree is byte-identical.
    let before = tree_hash(r);
    let (code, rep) = json_report(&["check", less.to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert_eq!(tree_hash(r), before, "check modified the tree");
    let cleanup = rep.tasks.iter().find(|t| t.module == "cleanup").expect("a clean-up task");
    let whats: Vec<&str> = cleanup.changes.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(
        whats,
        vec![
            "remove /etc/a.conf (no longer in the spec)",
            "remove /etc/containerd/certs.d/quay.io/hosts.toml (no longer in the spec)",
            "restore vm.swappiness: 10 -> 60 (its value before strata-agent; no longer in the spec)",
        ]
    );

    let (code, _) = json_report(&["apply", less.to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert!(!r.join("etc/a.conf").exists());
    assert!(r.join("etc/b.conf").exists());
    assert!(!r.join("etc/containerd/certs.d/quay.io").exists(), "the mirror's directory goes with it");
    assert!(r.join("etc/containerd/certs.d/docker.io/hosts.toml").exists());
    assert_eq!(fs::read_to_string(r.join("proc/sys/vm/swappiness")).unwrap().trim(), "60");
    let dropin = fs::read_to_string(r.join("etc/sysctl.d/99-strata.conf")).unwrap();
    assert!(!dropin.contains("swappiness") && dropin.contains("ip_forward"), "{dropin}");
    // Undone once: the next runs have nothing to do.
    let (code, rep) = json_report(&["apply", less.to_str().unwrap()], r);
    assert_eq!((code, rep.recap.changed), (0, 0), "{rep:#?}");

    // An empty spec removes the rest, the sysctl drop-in included.
    let none = spec_file(specs.path(), "none.json", serde_json::json!({}));
    let (code, _) = json_report(&["apply", none.to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert!(!r.join("etc/b.conf").exists() && !r.join("etc/sysctl.d/99-strata.conf").exists());
    assert_eq!(fs::read_to_string(r.join("proc/sys/net/ipv4/ip_forward")).unwrap().trim(), "0");
    let (code, _) = json_report(&["apply", none.to_str().unwrap()], r);
    assert_eq!(code, 0);
}

/// An earlier agent wrote kubeadm's /var/lib/kubelet/config.yaml; the new one
/// writes a --config-dir drop-in and lets go of that file without deleting it.
#[test]
fn kubelet_config_moves_to_the_drop_in_and_kubeadms_file_stays() {
    let d = seeded_root();
    let r = d.path();
    write(r, "/var/lib/kubelet/config.yaml", "# from kubeadm\nkind: KubeletConfiguration\n");
    write(r, strata_agent::managed::MANAGED_FILE, r#"{"files": ["/var/lib/kubelet/config.yaml"], "sysctl": {}}"#);
    let specs = tempfile::tempdir().unwrap();
    let spec = spec_file(specs.path(), "k.json", serde_json::json!({ "kubelet": { "cgroup_driver": "systemd" } }));
    let (code, rep) = json_report(&["apply", spec.to_str().unwrap()], r);
    assert_eq!(code, 2);
    assert!(rep.tasks.iter().all(|t| t.module != "cleanup"), "nothing to remove: {rep:#?}");
    assert_eq!(
        fs::read_to_string(r.join("var/lib/kubelet/config.yaml")).unwrap(),
        "# from kubeadm\nkind: KubeletConfiguration\n"
    );
    assert!(fs::read_to_string(r.join("etc/kubernetes/kubelet.conf.d/50-strata.conf"))
        .unwrap()
        .contains("cgroupDriver: systemd"));
    assert!(fs::read_to_string(r.join("etc/default/kubelet"))
        .unwrap()
        .contains("--config-dir=/etc/kubernetes/kubelet.conf.d"));
    let record = fs::read_to_string(r.join(strata_agent::managed::MANAGED_FILE.trim_start_matches('/'))).unwrap();
    assert!(!record.contains("/var/lib/kubelet/config.yaml"), "{record}");
    assert!(record.contains("50-strata.conf"), "{record}");
}
