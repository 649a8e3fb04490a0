use super::model::*;
use super::*;
use crate::framework::model::from_model;
use crate::framework::AnyResource;
use strata_pve_client::{ClusterVm, VmConfig};

fn vm(node: &str, vmid: u32, running: bool) -> ClusterVm {
    ClusterVm {
        kind: strata_pve_client::GuestKind::Qemu,
        vmid,
        node: node.into(),
        name: Some("w1".into()),
        status: if running { "running" } else { "stopped" }.into(),
        template: false,
        tags: None,
        pool: None,
        lock: None,
    }
}

fn planned() -> VmModel {
    VmModel {
        node: "pve1".into(),
        vm_id: Some(120),
        name: "w1".into(),
        description: Some("worker".into()),
        tags: Some(vec!["k8s".into(), "worker".into()]),
        memory_mb: Some(2048),
        disks: Some(vec![Disk { interface: "scsi0".into(), storage: "local-lvm".into(), size_gb: 20 }]),
        on_boot: Some(true),
        started: Some(true),
        shutdown_timeout: Some("3m".into()),
        agent_enabled: Some(true),
        reboot_after_update: Some(true),
        cpu: Some(Cpu { cores: Some(2), sockets: Some(1), cpu_type: Some("host".into()) }),
        network_devices: vec![Nic {
            bridge: "vmbr0".into(),
            model: Some("virtio".into()),
            vlan_tag: Some(10),
            firewall: Some(true),
            mac_address: Some("BC:24:11:00:00:01".into()),
        }],
        cloud_init: Some(CloudInit {
            user: Some("ops".into()),
            ssh_public_keys: Some(vec!["ssh-ed25519 AAAAC3Nz ops@laptop".into()]),
            dns_servers: Some(vec!["10.0.0.53".into(), "10.0.0.54".into()]),
            search_domain: Some("lab.example".into()),
            ipv4: Some(Ipv4 { address: Some("10.0.0.20/24".into()), dhcp: None, gateway: Some("10.0.0.1".into()) }),
        }),
        ..Default::default()
    }
}

/// What Proxmox would store for the create parameters (disk allocation resolved).
fn stored(params: &[(String, String)]) -> VmConfig {
    let mut cfg = VmConfig::default();
    for (k, v) in params {
        let v = if k == "scsi0" {
            "local-lvm:vm-120-disk-0,size=20G".to_string()
        } else if v.ends_with(":cloudinit") {
            "local-lvm:vm-120-cloudinit,media=cdrom".to_string()
        } else {
            v.clone()
        };
        if k != "pool" {
            cfg.0.insert(k.clone(), v);
        }
    }
    cfg
}

#[test]
fn create_parameters_read_back_as_the_plan() {
    let p = planned();
    let params = create_params(&p);
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("memory"), Some("2048"));
    assert_eq!(get("tags"), Some("k8s;worker"));
    assert_eq!(get("scsi0"), Some("local-lvm:20"));
    assert_eq!(get("ide2"), Some("local-lvm:cloudinit"));
    assert_eq!(get("ipconfig0"), Some("ip=10.0.0.20/24,gw=10.0.0.1"));
    assert_eq!(get("net0"), Some("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=10"));
    assert_eq!(get("sshkeys"), Some("ssh-ed25519%20AAAAC3Nz%20ops%40laptop"));
    let cfg = stored(&params);
    let m = from_pve(&cfg, &vm("pve1", 120, true), Some(&p), ReadMode::Refresh);
    let mut want = p.clone();
    want.id = Some("pve1/120".into());
    want.ipv4_addresses = Some(vec!["10.0.0.20".into()]);
    assert_eq!(m, want);
    // Nothing left to change.
    assert!(config_change(&p, &cfg, Some(&p)).is_empty(), "{:?}", config_change(&p, &cfg, Some(&p)));
}

#[test]
fn import_fills_blocks_proxmox_has_and_nothing_else() {
    let cfg = VmConfig(
        [
            ("name", "w1"),
            ("cores", "4"),
            ("memory", "4096"),
            ("net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"),
            ("scsi0", "local-lvm:vm-7-disk-0,size=512M"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let m = from_pve(&cfg, &vm("pve1", 7, false), None, ReadMode::Import);
    assert_eq!(m.cpu, Some(Cpu { cores: Some(4), sockets: None, cpu_type: None }));
    assert_eq!(m.cloud_init, None);
    assert_eq!(m.tags, None);
    assert_eq!(m.description, None);
    assert_eq!(m.on_boot, None, "an absent key reads as null, not PVE's default");
    assert_eq!(m.started, Some(false));
    assert_eq!(m.disks.as_ref().unwrap()[0].size_gb, 1, "sizes round up to whole GiB");
    assert_eq!(m.network_devices[0].firewall, None);
    // A refresh of a state without cpu block does not start managing it.
    let refreshed = from_pve(
        &cfg,
        &vm("pve1", 7, false),
        Some(&VmModel { name: "w1".into(), ..Default::default() }),
        ReadMode::Refresh,
    );
    assert_eq!(refreshed.cpu, None);
}

#[test]
fn changes_touch_only_what_differs_and_drop_removed_nics() {
    let p = planned();
    let cfg = stored(&create_params(&p));
    let mut next = p.clone();
    next.memory_mb = Some(4096);
    next.tags = Some(vec!["worker".into()]);
    next.network_devices[0].mac_address = None; // unknown in a plan: keep Proxmox's
    let mut cfg2 = cfg.clone();
    cfg2.0.insert("net1".into(), "e1000=BC:24:11:00:00:02,bridge=vmbr1".into());
    let ch = config_change(&next, &cfg2, Some(&p));
    assert_eq!(ch.set, vec![("tags".to_string(), "worker".to_string()), ("memory".to_string(), "4096".to_string())]);
    assert_eq!(ch.delete, vec!["net1".to_string()]);
    assert!(ch.keys().any(needs_reboot));
    // Dropping cloud_init removes its settings.
    next.cloud_init = None;
    let ch = config_change(&next, &cfg, Some(&p));
    for k in CI_KEYS {
        assert!(ch.delete.contains(&k.to_string()), "{k}");
    }
}

#[test]
fn ssh_keys_round_trip_through_url_encoding() {
    let keys = vec!["ssh-ed25519 AAAA+/= a@b".to_string(), "ssh-rsa BBBB c".to_string()];
    let enc = encode_ssh_keys(&keys);
    assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)), "{enc}");
    assert_eq!(decode_ssh_keys(&enc), keys);
}

fn value(m: &VmModel) -> Value {
    from_model(m, &schema::schema().value_type()).unwrap()
}

fn paths(d: &Diagnostics) -> Vec<String> {
    d.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect()
}

#[test]
fn bad_input_is_refused_with_the_attribute_path() {
    let mut m = planned();
    m.memory_mb = Some(0);
    m.disks = Some(vec![
        Disk { interface: "scsi0".into(), storage: "local-lvm".into(), size_gb: 10 },
        Disk { interface: "nvme0".into(), storage: "local-lvm".into(), size_gb: 10 },
        Disk { interface: "scsi0".into(), storage: "local-lvm".into(), size_gb: 0 },
    ]);
    m.tags = Some(vec!["Prod".into()]);
    m.cloud_init.as_mut().unwrap().ipv4.as_mut().unwrap().address = Some("10.0.0.300/24".into());
    m.network_devices[0].vlan_tag = Some(5000);
    m.shutdown_timeout = Some("ten minutes".into());
    let d = AnyResource::validate(&Vm, &value(&m), true);
    let p = paths(&d);
    for want in [
        "memory_mb",
        "tags",
        "disks[1].interface",
        "disks[2].interface",
        "disks[2].size_gb",
        "cloud_init.ipv4.address",
        "network_devices[0].vlan_tag",
        "shutdown_timeout",
    ] {
        assert!(p.contains(&want.to_string()), "missing {want} in {p:?}");
    }
    assert!(AnyResource::validate(&Vm, &value(&planned()), true).is_empty());
}

#[test]
fn shrinking_a_disk_is_refused_at_plan_time_and_growing_is_in_place() {
    let mut prior = planned();
    prior.id = Some("pve1/120".into());
    prior.ipv4_addresses = Some(vec![]);
    let mut smaller = prior.clone();
    smaller.disks.as_mut().unwrap()[0].size_gb = 10;
    let plan = AnyResource::plan(
        &Vm,
        &crate::framework::Context::detached(),
        &value(&prior),
        &value(&smaller),
        &value(&smaller),
    );
    assert_eq!(paths(&plan.diagnostics), vec!["disks[0].size_gb"]);
    let mut bigger = prior.clone();
    bigger.disks.as_mut().unwrap()[0].size_gb = 40;
    bigger.memory_mb = Some(8192);
    let plan = AnyResource::plan(
        &Vm,
        &crate::framework::Context::detached(),
        &value(&prior),
        &value(&bigger),
        &value(&bigger),
    );
    assert!(plan.diagnostics.is_empty(), "{}", plan.diagnostics);
    assert!(plan.requires_replace.is_empty(), "{:?}", plan.requires_replace);
    // Another clone source replaces; another node migrates (in place).
    prior.clone = Some(CloneFrom { source_vm_id: 9000, full: Some(true) });
    let mut other = prior.clone();
    other.clone = Some(CloneFrom { source_vm_id: 9001, full: Some(true) });
    other.node = "pve2".into();
    let plan =
        AnyResource::plan(&Vm, &crate::framework::Context::detached(), &value(&prior), &value(&other), &value(&other));
    let rr: Vec<String> = plan.requires_replace.iter().map(|p| p.to_string()).collect();
    assert_eq!(rr, vec!["clone".to_string()]);
}

#[test]
fn proxmox_parameter_errors_point_at_attributes() {
    let e = strata_pve_client::Error::Params {
        op: "POST /nodes/pve1/qemu".into(),
        errors: [("memory".to_string(), "too small".to_string()), ("net1".to_string(), "bad".to_string())].into(),
    };
    let d = pve_diags("create the VM", &e);
    assert_eq!(paths(&d), vec!["memory_mb", "network_devices[1]"]);
}

#[test]
fn unset_computed_values_proxmox_lacks_stay_null_on_update() {
    let mut prior = planned();
    prior.id = Some("pve1/120".into());
    prior.ipv4_addresses = Some(vec!["10.0.0.20".into()]);
    prior.on_boot = None;
    prior.cpu = Some(Cpu { cores: Some(2), sockets: None, cpu_type: None });
    let mut config = prior.clone();
    config.id = None;
    config.ipv4_addresses = None;
    config.network_devices[0].mac_address = None;
    let plan =
        AnyResource::plan(&Vm, &crate::framework::Context::detached(), &value(&prior), &value(&prior), &value(&config));
    assert!(plan.diagnostics.is_empty());
    assert!(plan.planned.semantically_equal(&value(&prior)), "{:?}", plan.planned);
}

#[test]
fn omitted_network_devices_keep_the_templates_nics() {
    let mut p = planned();
    p.network_devices = vec![];
    let mut cfg = stored(&create_params(&planned()));
    cfg.0.insert("net1".into(), "e1000=BC:24:11:00:00:02,bridge=vmbr1".into());
    let ch = config_change(&p, &cfg, Some(&p));
    assert!(!ch.keys().any(|k| k.starts_with("net")), "NICs must be left alone: {ch:?}");
    // Refresh reports them as unmanaged (none), so the plan stays empty...
    let m = from_pve(&cfg, &vm("pve1", 120, true), Some(&p), ReadMode::Refresh);
    assert!(m.network_devices.is_empty());
    // ...while an import shows what the VM has.
    let m = from_pve(&cfg, &vm("pve1", 120, true), None, ReadMode::Import);
    assert_eq!(m.network_devices.len(), 2);
}

fn update_plan(prior: &VmModel, next: &VmModel) -> crate::framework::PlanChange {
    let s = super::schema::schema();
    let prior = value(prior);
    let next = value(next);
    let mut plan = crate::framework::plan::plan(&s, &prior, &next, &next);
    super::plan::modify_plan(&mut plan);
    plan
}

#[test]
fn node_and_pool_changes_are_in_place_and_the_id_follows_the_node() {
    let mut prior = planned();
    prior.id = Some("pve1/120".into());
    prior.pool = Some("a".into());
    let mut next = prior.clone();
    next.node = "pve2".into();
    next.pool = Some("b".into());
    let plan = update_plan(&prior, &next);
    assert!(plan.requires_replace.is_empty(), "{:?}", plan.requires_replace);
    assert!(!plan.diagnostics.has_errors(), "{:?}", plan.diagnostics);
    assert_eq!(plan.planned.attr("id"), Some(&Value::string("pve2/120")));
}

#[test]
fn import_shows_no_cpu_block_for_proxmox_defaults_a_clone_inherited() {
    let mut cfg = VmConfig::default();
    cfg.0.insert("name".into(), "w0".into());
    cfg.0.insert("cores".into(), "1".into());
    let m = from_pve(&cfg, &vm("pve1", 120, true), None, ReadMode::Import);
    assert_eq!(m.cpu, None, "cores=1 is Proxmox's default; a configuration without cpu block made it");
    cfg.0.insert("sockets".into(), "2".into());
    let m = from_pve(&cfg, &vm("pve1", 120, true), None, ReadMode::Import);
    assert_eq!(m.cpu, Some(Cpu { cores: Some(1), sockets: Some(2), cpu_type: None }));
}

#[test]
fn import_recognises_a_linked_clone_by_its_base_volume() {
    let mut cfg = VmConfig::default();
    cfg.0.insert("name".into(), "w0".into());
    cfg.0.insert("scsi0".into(), "local-lvm:base-9000-disk-0/vm-101-disk-0,size=2G".into());
    let m = from_pve(&cfg, &vm("pve1", 101, true), None, ReadMode::Import);
    assert_eq!(m.clone, Some(CloneFrom { source_vm_id: 9000, full: Some(false) }));
    cfg.0.insert("scsi0".into(), "local-lvm:vm-101-disk-0,size=2G".into());
    let m = from_pve(&cfg, &vm("pve1", 101, true), None, ReadMode::Import);
    assert_eq!(m.clone, None, "a full clone leaves no trace of its source");
}
