//! Shared by the strata_vm acceptance tests: pve-sim (the named stand-in for Proxmox
//! VE) started in-process, the provider block pointing at it, and state helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use pve_sim::{SimConfig, SimHandle};
use serde_json::Value;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{Run, Workdir};
use strata_pve_client::ct::CtCreateSpec;
use strata_pve_client::vm::CreateSpec;
use strata_pve_client::{Auth, Client, ClientConfig, ClusterVm, GuestKind, Secret};

pub const TOKEN: &str = "root@pam!strata=acc-test-secret-7d1e";
pub const TEMPLATE: u32 = 9000;
/// The container template strata_container tests clone.
pub const CT_TEMPLATE: u32 = 9100;
pub const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
/// root@pam's password login on the simulator (see [`Sim::start_with_root`]).
pub const ROOT_PASSWORD: &str = "acc-root-pw-51c2";

pub struct Sim {
    pub handle: SimHandle,
    pub client: Client,
    pub dir: tempfile::TempDir,
    // Last: the simulator's tasks run on this runtime until the test ends.
    pub rt: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start(f: impl FnOnce(&mut SimConfig)) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SimConfig::new(dir.path().join("sim"), TOKEN);
        cfg.task_ms = 50;
        f(&mut cfg);
        let handle = rt.block_on(pve_sim::start(cfg)).expect("pve-sim starts");
        let mut ccfg = ClientConfig::new(handle.endpoint(), Auth::Token(Secret::new(TOKEN)));
        ccfg.ca_cert_pem = Some(handle.ca_cert_pem().to_string());
        let client = Client::new(ccfg).unwrap();
        Sim { handle, client, dir, rt }
    }

    /// A simulator that also accepts a root@pam password login (a ticket), which is
    /// the only identity Proxmox lets set some container settings.
    pub fn start_with_root() -> Sim {
        Sim::start(|c| {
            c.user = Some("root@pam".into());
            c.password = Some(ROOT_PASSWORD.into());
        })
    }

    /// The provider block logging in as root@pam with a password instead of the token.
    pub fn provider_block_root(&self) -> String {
        self.provider_block().replace(
            &format!("api_token = \"{TOKEN}\""),
            &format!("username  = \"root@pam\"\n    password  = \"{ROOT_PASSWORD}\""),
        )
    }

    /// A client logged in as root@pam with a password (needs [`Sim::start_with_root`]).
    pub fn root_client(&self) -> Client {
        let auth = Auth::Password { username: "root@pam".into(), password: Secret::new(ROOT_PASSWORD) };
        let mut ccfg = ClientConfig::new(self.handle.endpoint(), auth);
        ccfg.ca_cert_pem = Some(self.handle.ca_cert_pem().to_string());
        Client::new(ccfg).unwrap()
    }

    /// Every LXC container and container template.
    pub fn cts(&self) -> Vec<ClusterVm> {
        self.block_on(self.client.cluster_guests()).unwrap().into_iter().filter(|g| g.kind == GuestKind::Lxc).collect()
    }

    pub fn ct_config(&self, vmid: u32) -> strata_pve_client::VmConfig {
        self.block_on(self.client.ct_config("pve1", vmid)).unwrap().expect("container exists")
    }

    /// A container template (`CT_TEMPLATE`) made from the Debian OS template, as one
    /// would prepare a golden image for clones.
    pub fn seed_ct_template(&self) {
        let params: Vec<(String, String)> = [
            ("ostemplate", DEBIAN),
            ("hostname", "debian-golden"),
            ("memory", "512"),
            ("rootfs", "local-lvm:4"),
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ("features", "nesting=1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.block_on(self.client.create_ct(&CtCreateSpec { node: "pve1".into(), vmid: CT_TEMPLATE, params })).unwrap();
        self.block_on(self.client.ct_to_template("pve1", CT_TEMPLATE)).unwrap();
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn provider_block(&self) -> String {
        format!(
            r#"terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}

provider "strata" {{
  proxmox {{
    endpoint  = "{}"
    api_token = "{TOKEN}"
    ca_cert   = "{}"
  }}
}}
"#,
            self.handle.endpoint(),
            self.handle.ca_cert_file().display()
        )
    }

    pub fn workdir(&self, resources: &str) -> Workdir {
        Workdir::new(&provider_dir(), &format!("{}\n{resources}", self.provider_block())).unwrap()
    }

    pub fn vms(&self) -> Vec<ClusterVm> {
        self.block_on(self.client.cluster_vms()).unwrap()
    }

    /// A running VM made through the API, as by hand (the import tests' "legacy-db").
    pub fn create_legacy_vm(&self, vmid: u32) {
        let params: Vec<(String, String)> = [
            ("name", "legacy-db"),
            ("memory", "4096"),
            ("cores", "2"),
            ("sockets", "1"),
            ("tags", "db;prod"),
            ("description", "made by hand"),
            ("onboot", "1"),
            ("scsi0", "local-lvm:16"),
            ("net0", "virtio,bridge=vmbr0,firewall=1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.block_on(self.client.create_vm(&CreateSpec { node: "pve1".into(), vmid, params })).unwrap();
        self.block_on(self.client.start_vm("pve1", vmid)).unwrap();
    }

    pub fn seed_template(&self) {
        let params: Vec<(String, String)> = [
            ("name", "ubuntu-tmpl"),
            ("memory", "1024"),
            ("cores", "1"),
            ("agent", "1"),
            ("scsi0", "local-lvm:2"),
            ("ide2", "local-lvm:cloudinit"),
            ("net0", "virtio,bridge=vmbr0"),
            ("template", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.block_on(self.client.create_vm(&CreateSpec { node: "pve1".into(), vmid: TEMPLATE, params })).unwrap();
    }

    /// `PUT /_sim/faults`, the simulator's fault-injection switch.
    pub fn set_faults(&self, faults: Value) {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.handle.ca_cert_pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let url = format!("{}/_sim/faults", self.handle.endpoint());
        let r = self
            .block_on(http.put(url).header("Authorization", format!("PVEAPIToken={TOKEN}")).json(&faults).send())
            .unwrap();
        assert!(r.status().is_success(), "setting faults: {}", r.status());
    }
}

pub fn must(run: Run, what: &str) -> Run {
    assert_eq!(run.code, 0, "{what} failed:\n{}\n{}", run.stdout, run.stderr);
    run
}

pub fn assert_plan_empty(wd: &Workdir) {
    let r = wd.plan_exit_code().unwrap();
    assert_eq!(r.code, 0, "expected an empty plan:\n{}\n{}", r.stdout, r.stderr);
}

pub fn workers(count: usize, memory: i64, cores: i64, disk_gb: i64) -> String {
    format!(
        r#"
resource "strata_vm" "w" {{
  count     = {count}
  node      = "pve1"
  name      = "w${{count.index}}"
  tags      = ["k8s", "worker"]
  memory_mb = {memory}

  clone {{
    source_vm_id = {TEMPLATE}
  }}
  cpu {{
    cores = {cores}
  }}
  disks = [{{ interface = "scsi0", storage = "local-lvm", size_gb = {disk_gb} }}]
  network_devices {{
    bridge = "vmbr0"
  }}
  cloud_init {{
    user            = "ops"
    ssh_public_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcc ops@example"]
    ipv4 {{
      address = "10.0.0.${{10 + count.index}}/24"
      gateway = "10.0.0.1"
    }}
  }}
}}
"#
    )
}

/// vm_id by address, from `terraform show -json`.
pub fn state_vmids(wd: &Workdir) -> BTreeMap<String, u64> {
    let state = wd.show().unwrap();
    state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["type"] == "strata_vm")
        .map(|r| (r["address"].as_str().unwrap().to_string(), r["values"]["vm_id"].as_u64().unwrap()))
        .collect()
}

pub fn vm_config(sim: &Sim, vmid: u32) -> strata_pve_client::VmConfig {
    sim.block_on(sim.client.vm_config("pve1", vmid)).unwrap().expect("VM exists")
}

/// Plan after an outside change: exactly the changed attributes differ.
pub fn planned_changes(wd: &Workdir, address: &str) -> BTreeSet<String> {
    must(wd.run(&["plan", "-out=drift.tfplan", "-input=false"]).unwrap(), "plan");
    let shown = must(wd.run(&["show", "-json", "drift.tfplan"]).unwrap(), "show plan");
    let plan: Value = serde_json::from_str(&shown.stdout).unwrap();
    let rc = plan["resource_changes"].as_array().unwrap().iter().find(|r| r["address"] == address).unwrap().clone();
    let before = rc["change"]["before"].as_object().unwrap().clone();
    let after = rc["change"]["after"].as_object().unwrap().clone();
    before.keys().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}
