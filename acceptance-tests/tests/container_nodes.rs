//! Containers that become nodes: against the lab's pve-sim (the named stand-in for
//! Proxmox VE), real Terraform creates two `strata_container`s from the Debian template
//! with a static address and root's SSH key; each started container boots as a systemd
//! node set up the way PVE sets up a Debian container (no cloud-init: hostname, hosts,
//! resolv.conf, /etc/network/interfaces written into the rootfs; root's keys and fresh
//! host keys on the first start), and `strata_node_config` then configures it over SSH
//! as root with strict host-key checking. Containers have no guest agent: the host key
//! is read off the lab's record of the console, as an operator would, into the user's
//! known_hosts. Power changes through the API reach the machine.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_acceptance_tests::provider::{provider_dir, target_dir};
use strata_acceptance_tests::terraform::Workdir;
use strata_lab::{LabGuard, PveMode, UpOptions};
use strata_pve_client::{Auth, Client, ClientConfig, Secret};

const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn require_root() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    assert!(root, "this test needs root (network namespaces, systemd-nspawn): run it as root");
}

fn answers_ssh(addr: &str) -> bool {
    let a: SocketAddr = format!("{addr}:22").parse().unwrap();
    TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> String {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    assert!(out.status.success(), "{node}: {script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn must(run: strata_acceptance_tests::terraform::Run, what: &str) {
    assert_eq!(run.code, 0, "{what} failed:\n{}\n{}", run.stdout, run.stderr);
}

/// The user's own known_hosts (not the lab's).
fn known_hosts_file(lab: &LabGuard) -> PathBuf {
    lab.dir().join("user_known_hosts")
}

fn guest_info(lab_dir: &Path, node: &str) -> Option<strata_lab::NodeInfo> {
    strata_lab::Lab::load(lab_dir).ok()?.node(node).ok().cloned()
}

fn resources(lab: &LabGuard, addrs: &[String]) -> String {
    let info = lab.info();
    let pve = info.pve.as_ref().expect("the lab runs pve-sim");
    let pubkey = std::fs::read_to_string(&info.ssh.public_key_file).unwrap();
    let gateway = info.gateway.clone().unwrap();
    format!(
        r#"terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}

provider "strata" {{
  proxmox {{
    endpoint  = "{endpoint}"
    api_token = "{token}"
    ca_cert   = "{ca}"
  }}
  ssh {{
    private_key_file = "{key}"
    known_hosts_file = "{known_hosts}"
  }}
}}

locals {{
  addresses = ["{a0}", "{a1}"]
}}

resource "strata_container" "ct" {{
  count           = 2
  node            = "pve1"
  hostname        = "web${{count.index}}"
  ostemplate      = "{DEBIAN}"
  memory_mb       = 512
  ssh_public_keys = ["{pubkey}"]
  rootfs {{
    storage = "local-lvm"
    size_gb = 4
  }}
  network {{
    name    = "eth0"
    bridge  = "vmbr0"
    ip      = "${{local.addresses[count.index]}}/24"
    gateway = "{gateway}"
  }}
}}

resource "strata_node_config" "ct" {{
  count = 2
  ssh {{
    host = split("/", strata_container.ct[count.index].network[0].ip)[0]
    user = "root"
  }}
  package {{
    name = "jq"
  }}
}}
"#,
        endpoint = pve.endpoint,
        token = pve.api_token,
        ca = pve.ca_cert_file.display(),
        key = info.ssh.private_key_file.display(),
        known_hosts = known_hosts_file(lab).display(),
        a0 = addrs[0],
        a1 = addrs[1],
        pubkey = pubkey.trim(),
    )
}

/// Adds each container's host key to the user's known_hosts as soon as the lab records
/// it (the console of its first boot), until `stop` is set.
fn pin_host_keys(lab_dir: PathBuf, known_hosts: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut written = String::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(lab) = strata_lab::Lab::load(&lab_dir) {
                let mut lines = String::new();
                for g in lab.info().guests.iter().filter(|g| g.name.starts_with("ct") && !g.address.is_empty()) {
                    if let Some(k) = &g.host_public_key {
                        let mut parts = k.split_whitespace();
                        let (kind, blob) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                        lines.push_str(&format!("{} {kind} {blob}\n", g.address));
                    }
                }
                if lines != written {
                    std::fs::write(&known_hosts, &lines).unwrap();
                    written = lines;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

fn vmid_of(wd: &Workdir, i: usize) -> u32 {
    wd.resource_values(&format!("strata_container.ct[{i}]")).unwrap()["vm_id"].as_u64().unwrap() as u32
}

#[test]
fn started_containers_are_set_up_like_pve_does_configured_over_ssh_and_follow_power_changes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "pve-sim", "-p", "strata-lab", "--bins"])
        .status()
        .expect("running cargo build for pve-sim and strata-lab");
    assert!(built.success(), "building pve-sim and strata-lab failed");
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Binary(target_dir().join("debug/pve-sim"));
    opts.ready_timeout = Duration::from_secs(60);
    let lab = LabGuard::up(&opts).expect("lab up");
    let started = Instant::now();
    let pve = lab.info().pve.clone().unwrap();
    let mut ccfg = ClientConfig::new(&pve.endpoint, Auth::Token(Secret::new(&pve.api_token)));
    ccfg.ca_cert_pem = Some(std::fs::read_to_string(&pve.ca_cert_file).unwrap());
    let client = Client::new(ccfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Addresses in the lab's /24, away from the lab's nodes and the VM tests'.
    let gateway = lab.info().gateway.clone().unwrap();
    let prefix = gateway.rsplit_once('.').unwrap().0.to_string();
    let addrs: Vec<String> = [160, 161].iter().map(|h| format!("{prefix}.{h}")).collect();
    std::fs::write(known_hosts_file(&lab), "").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pinner = pin_host_keys(lab.dir().to_path_buf(), known_hosts_file(&lab), stop.clone());

    let provider = provider_dir(); // builds the provider and agent if needed: not timed
    let wd = Workdir::new(&provider, &resources(&lab, &addrs)).unwrap();
    let t_apply = Instant::now();
    let apply = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    let ct_apply = t_apply.elapsed();
    stop.store(true, Ordering::Relaxed);
    pinner.join().unwrap();
    must(apply, "apply of the containers and their configuration");
    let vmids = [vmid_of(&wd, 0), vmid_of(&wd, 1)];
    let nodes: Vec<String> = vmids.iter().map(|id| format!("ct{id}")).collect();
    let lab_key = std::fs::read_to_string(&lab.info().ssh.public_key_file).unwrap();

    for (i, (node, addr)) in nodes.iter().zip(&addrs).enumerate() {
        assert!(answers_ssh(addr), "{node} does not answer SSH on {addr}");
        assert_eq!(sh(&lab, node, "hostname").trim(), format!("web{i}"));
        assert_eq!(sh(&lab, node, "cat /etc/hostname").trim(), format!("web{i}"));
        let ip = sh(&lab, node, "ip -4 -o addr show dev eth0");
        assert!(ip.contains(&format!("inet {addr}/24")), "{node}: {ip}");
        let route = sh(&lab, node, "ip -4 route show default");
        assert!(route.contains(&format!("via {gateway}")), "{node}: {route}");
        // PVE's files, as its Debian setup writes them.
        let ifaces = sh(&lab, node, "cat /etc/network/interfaces");
        let want = format!("iface eth0 inet static\n\taddress {addr}/24\n\tgateway {gateway}\n");
        assert!(ifaces.contains(&want), "{node}: {ifaces}");
        let hosts = sh(&lab, node, "cat /etc/hosts");
        assert!(hosts.contains(&format!("# --- BEGIN PVE ---\n{addr} ")), "{node}: {hosts}");
        assert!(sh(&lab, node, "cat /etc/resolv.conf").contains("nameserver "), "{node}: no nameserver");
        // No cloud-init in a container: the rootfs was written before the start.
        assert!(sh(&lab, node, "test -e /etc/cloud/cloud-init.disabled && echo off").contains("off"));
        let keys = sh(&lab, node, "cat /root/.ssh/authorized_keys");
        assert!(keys.contains(lab_key.trim()), "{node}: {keys}");
        // The fingerprint the lab recorded is the machine's own host key.
        let recorded = guest_info(lab.dir(), node).unwrap().host_key_fingerprint.expect("recorded fingerprint");
        let on_node = sh(&lab, node, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
        assert!(on_node.contains(&recorded), "{node}: {recorded} is not its host key: {on_node}");
        assert!(sh(&lab, node, "dpkg-query -W -f='${Status}' jq").contains("install ok installed"), "{node}");
    }
    let h0 = guest_info(lab.dir(), &nodes[0]).unwrap().host_key_fingerprint;
    let h1 = guest_info(lab.dir(), &nodes[1]).unwrap().host_key_fingerprint;
    assert_ne!(h0, h1, "each new container has its own host keys");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // Shutdown through the API: the machine is off; start: same disk, same host key.
    let key_before = sh(&lab, &nodes[0], "cat /etc/ssh/ssh_host_ed25519_key.pub");
    rt.block_on(client.shutdown_ct("pve1", vmids[0], Duration::from_secs(30))).unwrap();
    assert!(!answers_ssh(&addrs[0]), "a container that was shut down must not answer");
    assert!(lab.exec(&nodes[0], &["true"]).is_err(), "a stopped container runs no processes");
    let t_start = Instant::now();
    rt.block_on(client.start_ct("pve1", vmids[0])).unwrap();
    wait_for("the restarted container to answer SSH", Duration::from_secs(60), || answers_ssh(&addrs[0]));
    let restart_ssh = t_start.elapsed();
    assert_eq!(sh(&lab, &nodes[0], "cat /etc/ssh/ssh_host_ed25519_key.pub"), key_before, "same disk, same host key");
    assert!(sh(&lab, &nodes[0], "dpkg-query -W -f='${Status}' jq").contains("install ok installed"));
    assert_eq!(guest_info(lab.dir(), &nodes[0]).unwrap().host_key_fingerprint, h0);
    // The PVE block of /etc/hosts is replaced at the next start, not added again.
    assert_eq!(sh(&lab, &nodes[0], "grep -c 'BEGIN PVE' /etc/hosts").trim(), "1");

    // Delete through the API: the machine and its disk are gone.
    let recorded = guest_info(lab.dir(), &nodes[1]).unwrap();
    rt.block_on(client.stop_ct("pve1", vmids[1])).unwrap();
    rt.block_on(client.destroy_ct("pve1", vmids[1])).unwrap();
    assert!(!answers_ssh(&addrs[1]));
    assert!(!recorded.data_dir.exists(), "the deleted container's disk {} must be gone", recorded.data_dir.display());
    assert!(!Path::new("/run/netns").join(&recorded.namespace).exists(), "namespace must be gone");
    assert!(guest_info(lab.dir(), &nodes[1]).is_none(), "lab.json still lists {}", nodes[1]);
    eprintln!(
        "container_nodes: one apply of 2 containers and their node configuration {ct_apply:.1?}; \
         SSH after start {restart_ssh:.1?}; after lab up {:.1?}",
        started.elapsed()
    );

    // `down` removes the remaining container machine too.
    let ns = guest_info(lab.dir(), &nodes[0]).unwrap().namespace;
    drop(wd);
    drop(lab);
    assert!(!Path::new("/run/netns").join(&ns).exists(), "down must remove container node {ns}");
}
