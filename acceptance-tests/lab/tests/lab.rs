//! The lab against the real thing: mmdebstrap image, systemd-nspawn boots, sshd started
//! by systemd, OpenSSH client with the lab's key and known_hosts, the local apt
//! repository, pve-sim started and stopped by pid. Needs root; installs missing Debian
//! packages and builds the image (Debian's mirror) on first use.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use strata_lab::{down_dir, image, Lab, LabGuard, LabInfo, LabState, NodeState, PveMode, UpOptions};

const BIN: &str = env!("CARGO_BIN_EXE_strata-lab");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests need root (namespaces, mounts, apt-get, systemd-nspawn); run them as root"
    );
}

fn lab_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lab").tempdir_in("/tmp").unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed ({}): {}\n{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("running strata-lab")
}

fn ssh(info: &LabInfo, user: &str, address: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes"])
        .arg("-i")
        .arg(&info.ssh.private_key_file)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", info.ssh.known_hosts_file.display()))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .arg(format!("{user}@{address}"))
        .arg(command)
        .output()
        .unwrap()
}

fn opts(dir: &Path, nodes: usize) -> UpOptions {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    opts
}

/// The real simulator if it has been built into this target dir.
fn built_pve_sim() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("pve-sim"); // target/debug/deps/x -> target/debug
    p.is_file().then_some(p)
}

fn tcp_answers(address: &str) -> bool {
    let addr: SocketAddr = format!("{address}:22").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

fn link_names() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

/// Nothing of the lab remains: processes (nspawn, each machine's systemd and anything in
/// its network namespace), mounts, namespaces, veths, bridge.
fn assert_nothing_left(info: &LabInfo) {
    let netns = text(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout);
    let netns: Vec<&str> = netns.lines().filter_map(|l| l.split_whitespace().next()).collect();
    let links = link_names();
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    for n in &info.nodes {
        assert!(!netns.contains(&n.namespace.as_str()), "namespace {} left: {netns:?}", n.namespace);
        assert!(!links.contains(&n.veth), "veth {} left", n.veth);
        assert!(!mounts.contains(&n.namespace), "mount of {} left:\n{mounts}", n.namespace);
        for cg in strata_lab::machine::cgroup_dirs(n) {
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
        for p in n.nspawn.iter().chain(n.init.iter()) {
            assert!(!p.is_alive(), "process {} of {} still runs", p.pid, n.name);
        }
    }
    assert!(!links.contains(&info.bridge), "bridge {} left", info.bridge);
    let dir = info.dir.to_string_lossy();
    assert!(!mounts.contains(&*dir), "mount under {dir} left:\n{mounts}");
    for p in &info.pve_processes {
        assert!(!p.is_alive(), "pve-sim {} still runs", p.pid);
    }
}

/// `systemctl is-system-running` in the node, polled (bounded) until it is no longer
/// starting up.
fn system_state(lab: &Lab, node: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = lab.exec(node, &["systemctl", "is-system-running"]).unwrap();
        let state = text(&out.stdout);
        if !matches!(state.as_str(), "initializing" | "starting") || Instant::now() > deadline {
            return state;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nodes_boot_answer_ssh_and_down_leaves_nothing() {
    require_root();
    let dir = lab_dir();
    let started = Instant::now();
    let mut with_pve = opts(dir.path(), 3);
    with_pve.pve = built_pve_sim().map(PveMode::Binary).unwrap_or(PveMode::Disabled);
    let lab = LabGuard::up(&with_pve).expect("lab up with 3 nodes");
    eprintln!("up of 3 systemd nodes (image build included if the cache was empty): {:.1?}", started.elapsed());
    let info = lab.info().clone();
    assert_eq!(info.state, LabState::Up);
    assert_eq!(info.nodes.len(), 3);
    let image = image::image_dir(&image::cache_root().unwrap());
    assert!(image.join("usr/lib/os-release").is_file(), "image not cached at {}", image.display());

    // lab.json: network, kinds, pids.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("lab.json")).unwrap()).unwrap();
    assert_eq!(json["network"]["cidr"], info.subnet.as_deref().unwrap());
    assert_eq!(json["network"]["host_address"], info.gateway.as_deref().unwrap());
    assert_eq!(json["ssh"]["user"], "root");
    assert!(Path::new(json["ssh"]["private_key_file"].as_str().unwrap()).is_file());
    match built_pve_sim() {
        Some(_) => {
            assert!(json["pve"]["endpoint"].as_str().unwrap().starts_with("https://"));
            assert!(lab.status().pve.unwrap().reachable);
        }
        None => assert!(json["pve"].is_null()),
    }
    for n in &info.nodes {
        // Each machine has cgroups of its own (none shared with the other nodes).
        let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", n.init.unwrap().pid)).unwrap();
        assert!(cgroup.contains(&format!("/strata-lab/{}/payload", n.namespace)), "{cgroup}");
        assert_eq!(n.state, NodeState::Running);
        assert!(n.nspawn.unwrap().is_alive() && n.init.unwrap().is_alive(), "{n:?}");
    }

    let mut fingerprints = Vec::new();
    for (i, n) in info.nodes.iter().enumerate() {
        let name = format!("node{}", i + 1);
        assert_eq!(system_state(&lab, &name), "running", "systemd state of {name}");
        // systemd is PID 1 in the node, and sshd runs as its service.
        assert_eq!(ok(&lab.exec(&name, &["cat", "/proc/1/comm"]).unwrap(), "comm of pid 1"), "systemd");
        let out =
            ssh(&info, "root", &n.address, "hostname; systemctl is-active ssh.service; ip -o -4 addr show dev eth0");
        let out = ok(&out, &format!("ssh root@{name}"));
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(name.as_str()), "{out}");
        assert_eq!(lines.next(), Some("active"), "{out}");
        assert!(out.contains(&format!("inet {}/24", n.address)), "{out}");
        // Root owns the node's network as on a VM: an address (a VIP) and forwarding.
        let net = "ip addr add 10.77.250.1/32 dev eth0 && ip addr del 10.77.250.1/32 dev eth0 \
                   && sysctl -qw net.ipv4.ip_forward=1 && sysctl -n net.ipv4.ip_forward";
        assert_eq!(ok(&ssh(&info, "root", &n.address, net), &format!("network admin on {name}")), "1");
        // Air-gapped: only the lab subnet is routed.
        let routes = ok(&lab.exec(&name, &["ip", "-4", "route"]).unwrap(), "ip route");
        assert!(!routes.contains("default"), "{name} has a default route: {routes}");
        // /srv is a plain directory (file handles for ganesha), not the overlay.
        let fs_type = ok(&lab.exec(&name, &["stat", "-f", "-c", "%T", "/srv", "/"]).unwrap(), "stat -f");
        let types: Vec<&str> = fs_type.lines().collect();
        assert_eq!(types[1], "overlayfs", "{fs_type}");
        assert_ne!(types[0], "overlayfs", "{fs_type}");
        fingerprints.push(n.host_key_fingerprint.clone().unwrap());
    }
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 3, "each node has its own host key");

    // known_hosts pins the keys: an empty one makes strict ssh refuse.
    let mut wrong = info.clone();
    wrong.ssh.known_hosts_file = dir.path().join("empty_known_hosts");
    fs::write(&wrong.ssh.known_hosts_file, "").unwrap();
    assert!(!ssh(&wrong, "root", &info.nodes[0].address, "true").status.success());

    // The non-root user with passwordless sudo.
    assert_eq!(ok(&ssh(&info, "strata", &info.nodes[1].address, "sudo -n id -u"), "sudo"), "0");

    // Writes land on the node's own disk, never in the shared image or another node.
    ok(&ssh(&info, "root", &info.nodes[0].address, "echo mine > /etc/strata-probe"), "write");
    assert!(!image.join("etc/strata-probe").exists(), "the write reached the shared image");
    assert!(!lab.exec("node2", &["test", "-e", "/etc/strata-probe"]).unwrap().status.success());

    // node2 reaches node3's sshd over the bridge.
    let probe = format!("exec 3<>/dev/tcp/{}/22; head -c 7 <&3", info.nodes[2].address);
    assert_eq!(ok(&lab.exec("node2", &["timeout", "10", "bash", "-c", &probe]).unwrap(), "node2 -> node3"), "SSH-2.0");

    // `up` again with the same options is a no-op (same machines).
    let again = Lab::up(&with_pve).expect("second up");
    assert_eq!(again.info(), &info);

    // `status --json` sees every node up.
    let d = dir.path().to_str().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&ok(&cli(&["status", "--dir", d, "--json"]), "status --json")).unwrap();
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["reachable"], true, "{status}");
        assert_eq!(n["sshd_alive"], true, "{status}");
    }

    // CLI exec propagates exit codes.
    let out = cli(&["node", "exec", "--dir", d, "node3", "--", "sh", "-c", "hostname; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "node3");

    let started = Instant::now();
    drop(lab);
    eprintln!("down of 3 systemd nodes: {:.1?}", started.elapsed());
    assert_nothing_left(&info);
    // A clean shutdown, not a kill: systemd logged its halt on the console.
    let console = fs::read_to_string(info.nodes[0].data_dir.join("console.log")).unwrap();
    assert!(console.contains("Halting system") || console.contains("System Halt"), "no clean shutdown:\n{console}");
}

#[test]
fn killed_node_is_gone_and_down_still_cleans_up() {
    require_root();
    let dir = lab_dir();
    let lab = LabGuard::up(&opts(dir.path(), 2)).expect("lab up");
    let info = lab.info().clone();
    let (n1, n2) = (&info.nodes[0], &info.nodes[1]);
    let out = lab.exec("node2", &["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"]).unwrap();
    let in_node = ok(&out, "start sleeper");
    assert!(!in_node.is_empty());

    let d = dir.path().to_str().unwrap();
    ok(&cli(&["node", "kill", "--dir", d, "node2"]), "node kill");
    assert!(!n2.nspawn.unwrap().is_alive() && !n2.init.unwrap().is_alive());
    let pids = text(&Command::new("ip").args(["netns", "pids", &n2.namespace]).output().unwrap().stdout);
    assert!(pids.is_empty(), "processes left in node2: {pids}");
    let addr: SocketAddr = format!("{}:22", n2.address).parse().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "node2 still answers");
    let status = Lab::load(dir.path()).unwrap().status();
    assert_eq!(status.nodes[1].state, NodeState::Killed);
    assert!(!status.nodes[1].alive);
    assert!(status.nodes[0].alive && status.nodes[0].reachable, "node1 must be unaffected");
    assert_eq!(ok(&ssh(&info, "root", &n1.address, "hostname"), "ssh node1"), "node1");
    let dead = cli(&["node", "exec", "--dir", d, "node2", "--", "true"]);
    assert!(!dead.status.success() && text(&dead.stderr).contains("not running"), "{}", text(&dead.stderr));

    drop(lab);
    assert_nothing_left(&info);
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Brings the lab in `dir` down when dropped (for CLI-driven tests).
struct DownOnDrop(String);
impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = down_dir(&self.0);
    }
}

#[test]
fn failed_up_then_down_leaves_nothing() {
    require_root();
    let dir = lab_dir();
    let tools = tempfile::tempdir().unwrap();
    // A simulator that crashes at start: `up` fails after both machines booted.
    let broken = tools.path().join("pve-sim");
    write_script(&broken, "echo 'pve-sim: cannot bind' >&2\nexit 3\n");
    let d = dir.path().to_str().unwrap();
    let out = cli(&["up", "--dir", d, "--nodes", "2", "--pve-sim-bin", broken.to_str().unwrap()]);
    let _cleanup = DownOnDrop(d.to_string());
    assert!(!out.status.success(), "up with a crashing pve-sim must fail");
    assert!(text(&out.stderr).contains("strata-lab down --dir"), "{}", text(&out.stderr));
    let info = Lab::load(dir.path()).unwrap().info().clone();
    assert_eq!(info.state, LabState::Failed);
    assert!(info.nodes.iter().all(|n| n.init.is_some_and(|p| p.is_alive())), "machines were up before the failure");

    ok(&cli(&["down", "--dir", d]), "down after failed up");
    assert_nothing_left(&info);
}

#[test]
fn stop_start_keeps_the_disk_and_recreate_gives_a_blank_machine() {
    require_root();
    let dir = lab_dir();
    let mut lab = LabGuard::up(&opts(dir.path(), 2)).expect("lab up");
    let info = lab.info().clone();
    let n1 = info.nodes[0].clone();
    ok(&ssh(&info, "root", &n1.address, "echo kept > /srv/data; echo kept > /etc/strata-disk"), "write");

    lab.stop_node("node1").unwrap();
    let stopped = lab.node("node1").unwrap().clone();
    assert_eq!(stopped.state, NodeState::Stopped);
    assert!(!n1.nspawn.unwrap().is_alive() && !n1.init.unwrap().is_alive());
    let console = fs::read_to_string(n1.data_dir.join("console.log")).unwrap();
    assert!(console.contains("Halting system") || console.contains("System Halt"), "not a clean shutdown:\n{console}");
    let addr: SocketAddr = format!("{}:22", n1.address).parse().unwrap();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "a stopped node answers");
    assert!(!lab.is_healthy());

    lab.start_node("node1", Duration::from_secs(30)).unwrap();
    let started = lab.node("node1").unwrap().clone();
    assert_eq!(started.state, NodeState::Running);
    assert_ne!(started.init, n1.init, "a new boot");
    // Same disk: files and host key survive (the old known_hosts still matches).
    let out = ok(&ssh(&info, "root", &n1.address, "cat /srv/data /etc/strata-disk"), "ssh after start");
    assert_eq!(out, "kept\nkept");
    assert_eq!(system_state(&lab, "node1"), "running");
    assert!(lab.is_healthy());

    // Killed (power loss), then powered on again.
    lab.kill_node("node1").unwrap();
    lab.start_node("node1", Duration::from_secs(30)).unwrap();
    assert_eq!(ok(&ssh(&info, "root", &n1.address, "cat /srv/data"), "ssh after kill+start"), "kept");

    lab.recreate_node("node1", Duration::from_secs(30)).unwrap();
    let fresh = lab.node("node1").unwrap().clone();
    assert_eq!(fresh.address, n1.address);
    assert_ne!(fresh.host_key_fingerprint, n1.host_key_fingerprint, "a new machine has a new host key");
    // known_hosts was updated: strict ssh (root and the sudo user) works against the new key.
    let out = ok(&ssh(&info, "root", &n1.address, "ls /srv; test -e /etc/strata-disk || echo blank"), "ssh recreated");
    assert_eq!(out, "blank");
    assert_eq!(ok(&ssh(&info, "strata", &n1.address, "sudo -n id -u"), "sudo recreated"), "0");
    assert_eq!(ok(&ssh(&info, "root", &info.nodes[1].address, "hostname"), "node2"), "node2");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("lab.json")).unwrap()).unwrap();
    assert_eq!(json["nodes"][0]["host_key_fingerprint"], fresh.host_key_fingerprint.clone().unwrap().as_str());

    let last = lab.info().clone();
    drop(lab);
    assert_nothing_left(&last);
    assert_nothing_left(&info);
}

#[test]
fn air_gapped_node_installs_packages_from_the_local_repository() {
    require_root();
    let dir = lab_dir();
    let lab = LabGuard::up(&opts(dir.path(), 1)).expect("lab up");
    let info = lab.info().clone();
    let repo = info.repo.clone().expect("lab.json records the local repository");
    assert!(repo.join("Packages").is_file());
    let node = &info.nodes[0];

    // No way off the lab network: no default route, and a route lookup (no packet sent)
    // for an outside address fails.
    let routes = ok(&lab.exec("node1", &["ip", "-4", "route"]).unwrap(), "ip route");
    assert!(!routes.contains("default"), "{routes}");
    assert!(!lab.exec("node1", &["ip", "route", "get", "192.0.2.1"]).unwrap().status.success(), "route off the lab");
    // The lab's repository (and the stand-ins' one, when the lab packaged them) are the
    // only apt sources.
    let sources = ok(
        &lab.exec("node1", &["sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; true"])
            .unwrap(),
        "apt sources",
    );
    let mut expected = vec![repo_source_line()];
    if info.standins_repo.is_some() {
        expected.push(strata_lab::standins::source_line().trim().to_string());
    }
    let mut found: Vec<String> = sources.lines().map(str::to_string).collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected, "{sources}");

    let install = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy jq \
                   && jq --version && systemctl is-active haproxy";
    let out = ok(&ssh(&info, "root", &node.address, install), "apt-get install from the local repository");
    assert!(out.contains("jq-1."), "{out}");
    assert!(out.ends_with("active"), "{out}");
    // A package that is not in the repository cannot come from anywhere else.
    let missing = ssh(&info, "root", &node.address, "apt-get install -y -q cowsay");
    assert!(!missing.status.success(), "{}", text(&missing.stdout));

    drop(lab);
    assert_nothing_left(&info);
}

fn repo_source_line() -> String {
    strata_lab::repo::source_line().trim().to_string()
}

#[test]
fn cli_up_twice_is_safe_and_down_leaves_nothing() {
    require_root();
    let dir = lab_dir();
    let d = dir.path().to_str().unwrap();
    let pve_args: Vec<String> = match built_pve_sim() {
        Some(p) => vec!["--pve-sim-bin".into(), p.to_string_lossy().into_owned()],
        None => vec!["--no-pve".into()],
    };
    let mut up = vec!["up", "--dir", d, "--nodes", "2"];
    up.extend(pve_args.iter().map(String::as_str));
    let first = cli(&up);
    // Guard from here on: whatever fails below, the lab goes down.
    let _cleanup = DownOnDrop(d.to_string());
    ok(&first, "first up");
    let info = Lab::load(dir.path()).unwrap().info().clone();
    assert_eq!(info.state, LabState::Up);

    // The CLI has exited; the nodes run on as daemons.
    for n in &info.nodes {
        assert!(n.init.unwrap().is_alive() && n.nspawn.unwrap().is_alive());
        assert!(tcp_answers(&n.address));
    }

    // Same up again: a no-op that keeps the very same processes.
    ok(&cli(&up), "second up");
    assert_eq!(Lab::load(dir.path()).unwrap().info(), &info);
    // A different shape while up is refused clearly.
    let other = cli(&["up", "--dir", d, "--nodes", "3", "--no-pve"]);
    assert!(!other.status.success());
    assert!(text(&other.stderr).contains("already up"), "{}", text(&other.stderr));

    ok(&cli(&["down", "--dir", d]), "down");
    assert_nothing_left(&info);
    assert_eq!(Lab::load(dir.path()).unwrap().info().state, LabState::Down);
    ok(&cli(&["down", "--dir", d]), "second down");

    // After down the dir can be brought up again, as fresh nodes.
    let again = cli(&["up", "--dir", d, "--nodes", "1", "--no-pve"]);
    ok(&again, "up after down");
    let info2 = Lab::load(dir.path()).unwrap().info().clone();
    assert_eq!(info2.nodes.len(), 1);
    assert_ne!(info2.nodes[0].host_key_fingerprint, info.nodes[0].host_key_fingerprint);
    ok(&cli(&["down", "--dir", d]), "final down");
    assert_nothing_left(&info2);
}

#[test]
fn missing_pve_sim_is_a_clear_error_before_anything_is_created() {
    require_root();
    let dir = lab_dir();
    let d = dir.path().to_str().unwrap();
    let out = cli(&["up", "--dir", d, "--nodes", "1", "--pve-sim-bin", "/nonexistent/pve-sim"]);
    let _cleanup = DownOnDrop(d.to_string());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/pve-sim is not an executable"), "{}", text(&out.stderr));
    assert!(Lab::load(dir.path()).is_err(), "nothing may be recorded (nor created) for a usage error");
    ok(&cli(&["down", "--dir", d]), "down of a dir without a lab");
}

#[test]
fn pve_sim_contract_started_recorded_and_stopped_by_pid() {
    require_root();
    let dir = lab_dir();
    let tools = tempfile::tempdir().unwrap();
    // Stand-in following pve-sim's documented start-up contract (args, ready file, ready
    // line); the real simulator is exercised by the other tests once it is built.
    let sim = tools.path().join("pve-sim");
    write_script(
        &sim,
        r#"while [ $# -gt 0 ]; do case "$1" in --data-dir) d="$2"; shift;; --token) t="$2"; shift;; --listen) l="$2"; shift;; esac; shift; done
[ "$l" = "127.0.0.1:0" ] || { echo "bad --listen $l" >&2; exit 2; }
printf '{"endpoint":"https://127.0.0.1:1","api_token":"%s","ca_cert_file":"%s/ca.pem","pid":%s}' "$t" "$d" $$ > "$d/pve-sim.json.tmp"
mv "$d/pve-sim.json.tmp" "$d/pve-sim.json"
echo "PVE_SIM_READY https://127.0.0.1:1"
exec sleep 600
"#,
    );
    let mut opts = UpOptions::new(dir.path());
    opts.nodes = 1;
    opts.pve = PveMode::Binary(sim);
    let mut lab = LabGuard::up(&opts).expect("lab up");
    let info = lab.info().clone();
    let pve = info.pve.clone().expect("pve info recorded");
    let token = pve.api_token.strip_prefix("root@pam!strata=").expect("token format");
    assert_eq!(token.len(), 32);
    assert_eq!(pve.ca_cert_file, dir.path().canonicalize().unwrap().join("pve/ca.pem"));
    assert_eq!(info.pve_processes.len(), 1, "reported pid is the spawned one");
    let sim_proc = info.pve_processes[0];
    assert!(sim_proc.is_alive());
    assert!(fs::read_to_string(dir.path().join("pve/pve-sim.log")).unwrap().contains("PVE_SIM_READY"));
    lab.down().unwrap();
    assert!(!sim_proc.is_alive());
    assert!(lab.info().pve.is_none());
    assert_nothing_left(&info);
}

#[test]
fn two_labs_coexist_on_separate_bridges_and_subnets() {
    require_root();
    let (da, db) = (lab_dir(), lab_dir());
    let mut oa = UpOptions::new(da.path());
    oa.nodes = 1;
    oa.pve = PveMode::Disabled;
    let mut ob = oa.clone();
    ob.dir = db.path().to_path_buf();
    let a = LabGuard::up(&oa).expect("lab a");
    let b = LabGuard::up(&ob).expect("lab b");
    let (ia, ib) = (a.info().clone(), b.info().clone());
    assert_ne!(ia.bridge, ib.bridge);
    assert_ne!(ia.subnet, ib.subnet);
    assert_ne!(ia.nodes[0].namespace, ib.nodes[0].namespace);
    assert_eq!(ok(&ssh(&ia, "root", &ia.nodes[0].address, "hostname"), "ssh a"), "node1");
    assert_eq!(ok(&ssh(&ib, "root", &ib.nodes[0].address, "hostname"), "ssh b"), "node1");
    drop(a);
    assert_nothing_left(&ia);
    // Lab b is untouched by a's down.
    assert!(tcp_answers(&ib.nodes[0].address));
    drop(b);
    assert_nothing_left(&ib);
}
