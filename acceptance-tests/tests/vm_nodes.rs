//! VMs that become nodes: against the lab's pve-sim (the named stand-in for Proxmox VE),
//! real Terraform clones two `strata_vm`s from a cloud-init template prepared through
//! the API as users do on Proxmox; each started VM boots as a systemd node where real
//! cloud-init reads the NoCloud data pve-sim built as Proxmox does (user, SSH key,
//! static address), and `strata_node_config` then configures it over SSH. Nothing in
//! the configuration is lab-specific. Power changes through the API reach the machine:
//! stop = no answer, start = same disk and host key, delete = the node is gone.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use strata_acceptance_tests::platform;
use strata_acceptance_tests::provider::{provider_dir, target_dir};
use strata_acceptance_tests::terraform::Workdir;
use strata_lab::{LabGuard, PveMode, UpOptions};
use strata_pve_client::client::Idempotent;
use strata_pve_client::GuestKind;

const TEMPLATE: u32 = platform::TEMPLATE_VMID;

fn require_root() {
    assert!(nix_is_root(), "this test needs root (network namespaces, systemd-nspawn): run it as root");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
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

fn resources(lab: &LabGuard, addrs: &[String]) -> String {
    let info = lab.info();
    let pve = info.pve.as_ref().expect("the lab runs pve-sim");
    let pubkey = std::fs::read_to_string(&info.ssh.public_key_file).unwrap();
    let gateway = info.gateway.clone().unwrap();
    let node_config = r#"
resource "strata_node_config" "vm" {
  count = 2
  ssh {
    host                  = strata_vm.vm[count.index].ipv4_addresses[0]
    user                  = "ops"
    sudo                  = true
    host_key_fingerprints = strata_vm.vm[count.index].ssh_host_key_fingerprints
  }
  package {
    name = "jq"
  }
}
"#;

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

resource "strata_vm" "vm" {{
  count     = 2
  node      = "pve1"
  name      = "app${{count.index}}"
  memory_mb = 1024
  clone {{
    source_vm_id = {TEMPLATE}
  }}
  network_devices {{
    bridge = "vmbr0"
  }}
  cloud_init {{
    user            = "ops"
    ssh_public_keys = ["{pubkey}"]
    ipv4 {{
      address = "${{local.addresses[count.index]}}/24"
      gateway = "{gateway}"
    }}
  }}
}}
{node_config}"#,
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

/// The guest node as lab.json records it now (pve-sim's hook changes it).
fn guest_info(lab: &LabGuard, node: &str) -> strata_lab::NodeInfo {
    strata_lab::Lab::load(lab.dir()).unwrap().node(node).unwrap().clone()
}

/// The user's own known_hosts (not the lab's): filled in from each VM's console.
fn known_hosts_file(lab: &LabGuard) -> std::path::PathBuf {
    lab.dir().join("user_known_hosts")
}

fn vmid_of(wd: &Workdir, i: usize) -> u32 {
    wd.resource_values(&format!("strata_vm.vm[{i}]")).unwrap()["vm_id"].as_u64().unwrap() as u32
}

#[test]
fn cloned_vms_boot_with_cloud_init_are_configured_over_ssh_and_follow_power_changes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // The lab runs pve-sim as a process with strata-lab as its guest hook: build both.
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
    let client = platform::pve_client(&lab).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // The cloud-init template, as users prepare one on Proxmox: a VM with a cloud-init
    // drive and the guest agent, no package upgrade on first boot (air-gapped).
    assert!(platform::prepare_template(&lab).unwrap());

    // Addresses in the lab's /24 (lab.json tells the user), away from the lab's nodes.
    let subnet_prefix = lab.info().gateway.clone().unwrap().rsplit_once('.').unwrap().0.to_string();
    let addrs: Vec<String> = [150, 151].iter().map(|h| format!("{subnet_prefix}.{h}")).collect();
    // The user's known_hosts stays empty: the host keys come from each VM's guest agent
    // (through the hypervisor), so one apply creates the VMs and configures them over
    // SSH with strict host key checking.
    std::fs::write(known_hosts_file(&lab), "").unwrap();
    let provider = provider_dir(); // builds the provider and agent if needed: not timed
    let wd = Workdir::new(&provider, &resources(&lab, &addrs)).unwrap();
    let t_apply = Instant::now();
    must(wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap(), "apply of the VMs and their configuration");
    let vm_apply = t_apply.elapsed();
    let vmids = [vmid_of(&wd, 0), vmid_of(&wd, 1)];
    let nodes: Vec<String> = vmids.iter().map(|id| format!("vm{id}")).collect();

    // Each VM booted; real cloud-init configured it from pve-sim's NoCloud data.
    for (i, (node, addr)) in nodes.iter().zip(&addrs).enumerate() {
        let status = sh(&lab, node, "cloud-init status --wait >/dev/null; cloud-init status");
        assert_eq!(status.trim(), "status: done", "{node}: {}", sh(&lab, node, "cloud-init status --long || true"));
        let ip = sh(&lab, node, "ip -4 -o addr show dev eth0");
        assert!(ip.contains(&format!("inet {addr}/24")), "{node}: {ip}");
        assert_eq!(sh(&lab, node, "hostname").trim(), format!("app{i}"));
        let keys = sh(&lab, node, "cat ~ops/.ssh/authorized_keys");
        let lab_key = std::fs::read_to_string(&lab.info().ssh.public_key_file).unwrap();
        assert!(keys.contains(lab_key.trim()), "{node}: {keys}");
        // The fingerprints in state are the machine's own keys, as ssh-keygen sees them.
        let on_node = sh(&lab, node, "for f in /etc/ssh/ssh_host_*_key.pub; do ssh-keygen -lf $f; done");
        let vm = wd.resource_values(&format!("strata_vm.vm[{i}]")).unwrap();
        let fps: Vec<&str> =
            vm["ssh_host_key_fingerprints"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(!fps.is_empty(), "{node}: no host key fingerprints in state");
        for fp in &fps {
            assert!(on_node.contains(fp), "{node}: {fp} is not one of the machine's host keys:\n{on_node}");
        }
        assert!(sh(&lab, node, "dpkg-query -W -f='${Status}' jq").contains("install ok installed"), "{node}");
    }
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // Shutdown through the API (clean: systemd powers off): the machine is off. Start:
    // same disk, same host key.
    let key_before = sh(&lab, &nodes[0], "cat /etc/ssh/ssh_host_ed25519_key.pub");
    rt.block_on(client.shutdown_vm("pve1", vmids[0], Duration::from_secs(30))).unwrap();
    assert!(!answers_ssh(&addrs[0]), "a VM that was shut down must not answer");
    let console = std::fs::read_to_string(guest_info(&lab, &nodes[0]).data_dir.join("console.log")).unwrap();
    assert!(console.contains("Power-Off") || console.contains("Halting"), "no clean shutdown: {console}");
    assert!(lab.exec(&nodes[0], &["true"]).is_err(), "a stopped VM runs no processes");
    let t_start = Instant::now();
    rt.block_on(client.start_vm("pve1", vmids[0])).unwrap();
    let start_task = t_start.elapsed();
    wait_for("the restarted VM to answer SSH", Duration::from_secs(60), || answers_ssh(&addrs[0]));
    let restart_ssh = t_start.elapsed();
    assert_eq!(sh(&lab, &nodes[0], "cat /etc/ssh/ssh_host_ed25519_key.pub"), key_before, "same disk, same host key");
    assert!(sh(&lab, &nodes[0], "dpkg-query -W -f='${Status}' jq").contains("install ok installed"));

    // Reboot through the API: a new boot (new PID 1) of the same disk.
    let init_before = guest_info(&lab, &nodes[0]).init.unwrap();
    let reboot = rt.block_on(client.run_task(
        reqwest::Method::POST,
        &format!("/nodes/pve1/qemu/{}/status/reboot", vmids[0]),
        &[],
        Idempotent::No,
    ));
    reboot.unwrap();
    let init_after = guest_info(&lab, &nodes[0]).init.unwrap();
    assert_ne!(init_after, init_before, "a reboot boots the machine again");
    assert!(!init_before.is_alive());
    wait_for("the rebooted VM to answer SSH", Duration::from_secs(60), || answers_ssh(&addrs[0]));
    assert_eq!(sh(&lab, &nodes[0], "cat /etc/ssh/ssh_host_ed25519_key.pub"), key_before);

    // Delete through the API (as after a disaster): the node and its disk are gone.
    let recorded = strata_lab::Lab::load(lab.dir()).unwrap();
    let data_dir = recorded.node(&nodes[1]).unwrap().data_dir.clone();
    let namespace = recorded.node(&nodes[1]).unwrap().namespace.clone();
    rt.block_on(client.stop_vm("pve1", vmids[1])).unwrap();
    rt.block_on(client.destroy_guest(GuestKind::Qemu, "pve1", vmids[1])).unwrap();
    assert!(!answers_ssh(&addrs[1]));
    assert!(!data_dir.exists(), "the deleted VM's disk {} must be gone", data_dir.display());
    assert!(!Path::new("/run/netns").join(&namespace).exists(), "namespace {namespace} must be gone");
    let lab_now = strata_lab::Lab::load(lab.dir()).unwrap();
    assert!(lab_now.node(&nodes[1]).is_err(), "lab.json still lists {}", nodes[1]);
    eprintln!(
        "vm_nodes: one apply of 2 clones and their node configuration {vm_apply:.1?}; \
         start task {start_task:.1?}, SSH after start {restart_ssh:.1?}; \
         after lab up {:.1?}",
        started.elapsed()
    );

    // `down` removes the remaining guest node too.
    let guest_ns = lab_now.node(&nodes[0]).unwrap().namespace.clone();
    drop(wd);
    drop(lab);
    assert!(!Path::new("/run/netns").join(&guest_ns).exists(), "down must remove guest node {guest_ns}");
}
