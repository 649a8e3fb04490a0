//! Integration tests against a real lab: namespaces, overlays, sshd, OpenSSH client.
//! They need root (CI runs as root) and install missing Debian packages themselves.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use strata_lab::{down_dir, Lab, LabGuard, LabInfo, LabState, NodeState, ProcessRef, PveMode, UpOptions};

const BIN: &str = env!("CARGO_BIN_EXE_strata-lab");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests need root (network namespaces, mounts, apt-get); run `cargo test -p strata-lab` as root"
    );
    for tool in ["ip", "unshare", "nsenter", "ssh-keygen", "setsid"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        assert!(found.status.success(), "{tool} is missing: apt-get install -y iproute2 util-linux openssh-client");
    }
}

/// The real simulator if it has been built into this target dir.
fn built_pve_sim() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("pve-sim"); // target/debug/deps/x -> target/debug
    p.is_file().then_some(p)
}

fn pve_mode() -> PveMode {
    built_pve_sim().map(PveMode::Binary).unwrap_or(PveMode::Disabled)
}

fn lab_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("lab").tempdir_in("/tmp").unwrap()
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("running strata-lab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

fn ssh(info: &LabInfo, user: &str, address: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
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

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed ({}): {}\n{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
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

fn recorded_processes(info: &LabInfo) -> Vec<ProcessRef> {
    let mut p: Vec<ProcessRef> = info.nodes.iter().filter_map(|n| n.sshd).collect();
    p.extend(info.pve_processes.iter().copied());
    p
}

/// Nothing of the lab in `info` remains: namespaces, links, mounts, processes.
fn assert_nothing_left(info: &LabInfo) {
    let netns = text(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout);
    let netns: Vec<&str> = netns.lines().filter_map(|l| l.split_whitespace().next()).collect();
    let links = link_names();
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    for n in &info.nodes {
        assert!(!netns.contains(&n.namespace.as_str()), "namespace {} left: {netns:?}", n.namespace);
        assert!(!links.contains(&n.veth), "veth {} left", n.veth);
        assert!(!mounts.contains(&n.namespace), "mount of {} left:\n{mounts}", n.namespace);
    }
    assert!(!links.contains(&info.bridge), "bridge {} left", info.bridge);
    let dir = info.dir.to_string_lossy();
    assert!(!mounts.contains(&*dir), "mount under {dir} left:\n{mounts}");
    for p in recorded_processes(info) {
        assert!(!p.is_alive(), "process {} still runs", p.pid);
    }
}

#[test]
fn nodes_are_separate_machines_reachable_over_ssh() {
    require_root();
    let dir = lab_dir();
    let mut opts = UpOptions::new(dir.path());
    opts.nodes = 2;
    opts.pve = pve_mode();
    let lab = LabGuard::up(&opts).expect("lab up");
    let info = lab.info().clone();
    assert_eq!(info.state, LabState::Up);
    assert_eq!(info.nodes.len(), 2);
    let (n1, n2) = (&info.nodes[0], &info.nodes[1]);
    assert_ne!(n1.address, n2.address);

    // lab.json carries the scripting interface.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("lab.json")).unwrap()).unwrap();
    assert_eq!(json["nodes"][1]["address"], n2.address.as_str());
    assert!(json["nodes"][0]["host_key_fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert_eq!(json["ssh"]["user"], "root");
    assert!(Path::new(json["ssh"]["private_key_file"].as_str().unwrap()).is_file());
    match built_pve_sim() {
        Some(_) => {
            assert!(json["pve"]["endpoint"].as_str().unwrap().starts_with("https://"));
            assert!(lab.status().pve.unwrap().reachable);
        }
        None => assert!(json["pve"].is_null()),
    }

    // OpenSSH with strict host key checking against the lab's known_hosts: each node
    // answers with its own hostname.
    let host_hostname = text(&Command::new("hostname").output().unwrap().stdout);
    assert_eq!(ok(&ssh(&info, "root", &n1.address, "hostname"), "ssh node1"), "node1");
    assert_eq!(ok(&ssh(&info, "root", &n2.address, "hostname"), "ssh node2"), "node2");
    assert_eq!(text(&Command::new("hostname").output().unwrap().stdout), host_hostname);

    // The known_hosts really pins the keys: an empty one makes strict ssh refuse.
    let mut wrong = info.clone();
    wrong.ssh.known_hosts_file = dir.path().join("empty_known_hosts");
    fs::write(&wrong.ssh.known_hosts_file, "").unwrap();
    assert!(!ssh(&wrong, "root", &n1.address, "true").status.success());

    // node1 reaches node2's sshd from inside its own namespace.
    let probe = format!("exec 3<>/dev/tcp/{}/22; head -c 7 <&3", n2.address);
    let out = lab.exec("node1", &["timeout", "10", "bash", "-c", &probe]).unwrap();
    assert_eq!(ok(&out, "node1 -> node2"), "SSH-2.0");

    // A file written in node1's /etc over ssh stays on node1.
    let name = format!("strata-lab-probe-{}", std::process::id());
    ok(&ssh(&info, "root", &n1.address, &format!("echo from-node1 > /etc/{name}")), "write /etc");
    assert!(!Path::new("/etc").join(&name).exists(), "the write reached the host's /etc");
    let on_node2 = lab.exec("node2", &["test", "-e", &format!("/etc/{name}")]).unwrap();
    assert!(!on_node2.status.success(), "the write reached node2's /etc");
    let back = lab.exec("node1", &["cat", &format!("/etc/{name}")]).unwrap();
    assert_eq!(ok(&back, "read back"), "from-node1");

    // The non-root user logs in with the same key and has passwordless sudo.
    assert_eq!(ok(&ssh(&info, "strata", &n1.address, "id -un"), "ssh strata"), "strata");
    ok(&ssh(&info, "strata", &n2.address, "sudo -n true"), "sudo -n true");
    assert_eq!(ok(&ssh(&info, "strata", &n2.address, "sudo -n id -u"), "sudo id"), "0");

    // `node exec` from the CLI: node's namespaces, exit code propagated.
    let d = dir.path().to_str().unwrap();
    let out =
        cli(&["node", "exec", "--dir", d, "node2", "--", "sh", "-c", "hostname; ip -o -4 addr show dev eth0; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("node2"), "{stdout}");
    assert!(stdout.contains(&format!("inet {}/24", n2.address)), "{stdout}");

    // `status --json` sees both nodes up.
    let out = cli(&["status", "--dir", d, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&ok(&out, "status --json")).unwrap();
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["reachable"], true, "{status}");
        assert_eq!(n["sshd_alive"], true, "{status}");
    }
    drop(lab);
    assert_nothing_left(&info);
}

#[test]
fn node_kill_stops_every_process_and_the_address() {
    require_root();
    let dir = lab_dir();
    let mut opts = UpOptions::new(dir.path());
    opts.nodes = 2;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up");
    let info = lab.info().clone();
    let (n1, n2) = (&info.nodes[0], &info.nodes[1]);

    // Extra processes on node2: a background daemon and a live ssh session.
    let out = lab.exec("node2", &["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"]).unwrap();
    let sleeper = ProcessRef::of(ok(&out, "start sleeper").parse().unwrap()).unwrap();
    let mut session = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-i")
        .arg(&info.ssh.private_key_file)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", info.ssh.known_hosts_file.display()))
        .arg(format!("root@{}", n2.address))
        .arg("sleep 600")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sshd = n2.sshd.unwrap();
    assert!(sleeper.is_alive() && sshd.is_alive());
    assert!(tcp_answers(&n2.address));

    let d = dir.path().to_str().unwrap();
    ok(&cli(&["node", "kill", "--dir", d, "node2"]), "node kill");

    assert!(!sshd.is_alive(), "node2's sshd survived");
    assert!(!sleeper.is_alive(), "node2's background process survived");
    let pids = text(&Command::new("ip").args(["netns", "pids", &n2.namespace]).output().unwrap().stdout);
    assert!(pids.is_empty(), "processes left in node2: {pids}");
    // Not merely a closed port (a live address answers with a reset): nothing answers.
    let addr: SocketAddr = format!("{}:22", n2.address).parse().unwrap();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => panic!("node2's sshd still answers"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::ConnectionRefused, "node2's address still answers"),
    }
    let probe = format!("exec 3<>/dev/tcp/{}/22", n2.address);
    let from_node1 = lab.exec("node1", &["timeout", "5", "bash", "-c", &probe]).unwrap();
    assert!(!from_node1.status.success(), "node2 still answers node1");
    // The ssh client's session died with the node (bounded wait via ssh's own exit).
    let _ = session.kill();
    let _ = session.wait();

    let status = Lab::load(dir.path()).unwrap().status();
    let s2 = status.nodes.iter().find(|n| n.name == "node2").unwrap();
    assert!(!s2.reachable && !s2.sshd_alive);
    assert_eq!(s2.state, NodeState::Killed);
    let s1 = status.nodes.iter().find(|n| n.name == "node1").unwrap();
    assert!(s1.reachable && s1.sshd_alive, "node1 must be unaffected");
    assert!(tcp_answers(&n1.address));
    let exec_dead = cli(&["node", "exec", "--dir", d, "node2", "--", "true"]);
    assert!(!exec_dead.status.success());
    assert!(text(&exec_dead.stderr).contains("not running"), "{}", text(&exec_dead.stderr));

    drop(lab);
    assert_nothing_left(&info);
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
    let _cleanup = scopeguard(d);
    ok(&first, "first up");
    let info = Lab::load(dir.path()).unwrap().info().clone();
    assert_eq!(info.state, LabState::Up);

    // The CLI has exited; the nodes run on as daemons.
    for n in &info.nodes {
        assert!(n.sshd.unwrap().is_alive());
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

/// Brings the lab in `dir` down when dropped (for CLI-driven tests).
struct DownOnDrop(String);
impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = down_dir(&self.0);
    }
}
fn scopeguard(dir: &str) -> DownOnDrop {
    DownOnDrop(dir.to_string())
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn failed_up_then_down_leaves_nothing() {
    require_root();
    let dir = lab_dir();
    let tools = tempfile::tempdir().unwrap();
    // A simulator that crashes at start: fails `up` after both nodes are running.
    let broken = tools.path().join("pve-sim");
    write_script(&broken, "echo 'pve-sim: cannot bind' >&2\nexit 3\n");
    let d = dir.path().to_str().unwrap();
    let out = cli(&["up", "--dir", d, "--nodes", "2", "--pve-sim-bin", broken.to_str().unwrap()]);
    let _cleanup = scopeguard(d);
    assert!(!out.status.success(), "up with a crashing pve-sim must fail");
    let err = text(&out.stderr);
    // Whether it is caught running or already gone, its own log line is surfaced.
    assert!(
        (err.contains("pve-sim exited before becoming ready") || err.contains("pve-sim did not start"))
            && err.contains("cannot bind"),
        "{err}"
    );
    assert!(err.contains("strata-lab down --dir"), "the error must say how to undo: {err}");

    let info = Lab::load(dir.path()).unwrap().info().clone();
    assert_eq!(info.state, LabState::Failed);
    assert_eq!(info.nodes.len(), 2);
    assert!(info.nodes.iter().all(|n| n.sshd.is_some_and(|p| p.is_alive())), "nodes were up before the failure");
    // A second up refuses to build on top of the wreck.
    let again = cli(&["up", "--dir", d, "--nodes", "2", "--no-pve"]);
    assert!(!again.status.success() && text(&again.stderr).contains("down"), "{}", text(&again.stderr));

    ok(&cli(&["down", "--dir", d]), "down after failed up");
    assert_nothing_left(&info);
}

#[test]
fn missing_pve_sim_is_a_clear_error_before_anything_is_created() {
    require_root();
    let dir = lab_dir();
    let d = dir.path().to_str().unwrap();
    let out = cli(&["up", "--dir", d, "--nodes", "1", "--pve-sim-bin", "/nonexistent/pve-sim"]);
    let _cleanup = scopeguard(d);
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
