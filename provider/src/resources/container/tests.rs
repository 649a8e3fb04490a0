use super::model::*;
use strata_pve_client::{ClusterVm, GuestKind, VmConfig};

fn ct(vmid: u32, running: bool) -> ClusterVm {
    ClusterVm {
        kind: GuestKind::Lxc,
        vmid,
        node: "pve1".into(),
        name: Some("k8s-master".into()),
        status: if running { "running" } else { "stopped" }.into(),
        template: false,
        tags: None,
        pool: None,
        lock: None,
    }
}

fn planned() -> CtModel {
    CtModel {
        node: "pve1".into(),
        vm_id: Some(120),
        hostname: "k8s-master".into(),
        ostemplate: Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()),
        tags: Some(vec!["k8s".into(), "master".into()]),
        cores: Some(4),
        memory_mb: Some(8192),
        swap_mb: Some(0),
        unprivileged: Some(true),
        kubernetes_node: Some(false),
        onboot: Some(true),
        started: Some(true),
        shutdown_timeout: Some("3m".into()),
        rootfs: Some(RootFs { storage: "local-lvm".into(), size_gb: 50 }),
        network: vec![Net {
            name: "eth0".into(),
            bridge: "vmbr0".into(),
            ip: Some("10.0.0.10/24".into()),
            gateway: Some("10.0.0.1".into()),
            firewall: Some(true),
            ..Default::default()
        }],
        features: Some(Features { nesting: Some(true), ..Default::default() }),
        startup: Some(Startup { order: Some(1), up: Some(30), down: None }),
        ..Default::default()
    }
}

/// The config as Proxmox writes it back after the create: its own order and
/// spelling, a generated MAC, `type=veth`, the volume allocated.
fn stored() -> VmConfig {
    VmConfig(
        [
            ("hostname", "k8s-master"),
            ("tags", "k8s;master"),
            ("cores", "4"),
            ("memory", "8192"),
            ("swap", "0"),
            ("onboot", "1"),
            ("startup", "order=1,up=30"),
            ("features", "nesting=1"),
            ("unprivileged", "1"),
            ("rootfs", "local-lvm:vm-120-disk-0,size=50G"),
            (
                "net0",
                "name=eth0,bridge=vmbr0,firewall=1,gw=10.0.0.1,hwaddr=BC:24:11:00:00:07,ip=10.0.0.10/24,type=veth",
            ),
            ("arch", "amd64"),
            ("ostype", "debian"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
}

#[test]
fn create_sends_everything_in_one_request_and_reads_back_as_planned() {
    let p = planned();
    let params = create_params(&p);
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    assert_eq!(get("rootfs"), Some("local-lvm:50"));
    assert_eq!(get("features"), Some("nesting=1"));
    assert_eq!(get("unprivileged"), Some("1"));
    assert_eq!(get("net0"), Some("name=eth0,bridge=vmbr0,firewall=1,gw=10.0.0.1,ip=10.0.0.10/24"));
    let m = from_pve(&stored(), &ct(120, true), Some(&p), ReadMode::Refresh);
    let mut want = p.clone();
    want.id = Some("pve1/120".into());
    want.ipv4_addresses = Some(vec!["10.0.0.10".into()]);
    want.network[0].mac_address = Some("BC:24:11:00:00:07".into());
    assert_eq!(m, want);
    let mut p2 = p.clone();
    p2.network[0].mac_address = None; // unknown in a plan: Proxmox's stays
    assert!(config_change(&p2, &stored()).is_empty(), "{:?}", config_change(&p2, &stored()));
}

#[test]
fn normalised_values_compare_equal_and_real_changes_touch_only_their_key() {
    let p = planned();
    let mut cfg = stored();
    cfg.0.insert("features".into(), "nesting=true".into());
    cfg.0.insert("tags".into(), "master;k8s".into());
    cfg.0.insert(
        "net0".into(),
        "bridge=vmbr0,name=eth0,ip=10.0.0.10/24,gw=10.0.0.1,firewall=true,hwaddr=bc:24:11:00:00:07,type=veth".into(),
    );
    assert!(config_change(&p, &cfg).is_empty(), "{:?}", config_change(&p, &cfg));
    let mut next = p.clone();
    next.memory_mb = Some(4096);
    next.features = Some(Features { nesting: Some(true), fuse: Some(true), ..Default::default() });
    let ch = config_change(&next, &cfg);
    assert_eq!(
        ch.set,
        vec![("memory".to_string(), "4096".to_string()), ("features".to_string(), "fuse=1,nesting=1".to_string())]
    );
    // Flags the resource does not manage survive a change of the ones it does.
    cfg.0.insert("features".into(), "mount=nfs;cifs,nesting=1".into());
    let ch = config_change(&next, &cfg);
    assert!(ch.set.contains(&("features".to_string(), "fuse=1,mount=nfs;cifs,nesting=1".to_string())), "{ch:?}");
}

#[test]
fn kubernetes_preset_turns_on_nesting_and_keyctl_and_shows_when_undone() {
    let mut p = planned();
    p.kubernetes_node = Some(true);
    p.features = None;
    let params = create_params(&p);
    assert!(params.contains(&("features".to_string(), "keyctl=1,nesting=1".to_string())), "{params:?}");
    let settings = root_only_settings(&p);
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(settings[0].0, "kubernetes_node (features.keyctl)");
    let mut cfg = stored();
    cfg.0.insert("features".into(), "keyctl=1,nesting=1".into());
    let m = from_pve(&cfg, &ct(120, true), Some(&p), ReadMode::Refresh);
    assert_eq!(m.kubernetes_node, Some(true));
    assert_eq!(m.features, None, "the preset's flags are not drift in an absent block");
    cfg.0.insert("features".into(), "nesting=1".into());
    let m = from_pve(&cfg, &ct(120, true), Some(&p), ReadMode::Refresh);
    assert_eq!(m.kubernetes_node, Some(false), "keyctl turned off outside shows as the preset undone");
}

#[test]
fn root_only_settings_name_the_flag_or_the_privileged_mode() {
    let mut p = planned();
    assert!(root_only_settings(&p).is_empty(), "nesting on an unprivileged container is open to tokens");
    p.features = Some(Features { nesting: Some(true), fuse: Some(true), ..Default::default() });
    assert_eq!(root_only_settings(&p).iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), vec!["features.fuse"]);
    p.unprivileged = Some(false);
    let s = root_only_settings(&p);
    assert_eq!(s.len(), 2);
    assert!(s[0].1.contains("privileged"));
}

#[test]
fn import_shows_what_proxmox_has_and_absent_keys_as_null() {
    let mut cfg = stored();
    cfg.0.remove("onboot");
    cfg.0.insert("mp0".into(), "local-lvm:vm-120-disk-1,mp=/srv/nfs,backup=1,size=512M".into());
    let m = from_pve(&cfg, &ct(120, false), None, ReadMode::Import);
    assert_eq!(m.onboot, None);
    assert_eq!(m.ostemplate, None, "Proxmox keeps no record of the template");
    assert_eq!(m.rootfs, Some(RootFs { storage: "local-lvm".into(), size_gb: 50 }));
    assert_eq!(m.mount_point[0].size_gb, 1, "sizes round up to whole GiB");
    assert_eq!(m.mount_point[0].backup, Some(true));
    assert_eq!(m.features, Some(Features { nesting: Some(true), ..Default::default() }));
    assert_eq!(m.started, Some(false));
}

fn mp(path: &str, size_gb: i64) -> MountPoint {
    MountPoint {
        storage: "local-lvm".into(),
        size_gb,
        path: path.into(),
        backup: None,
        read_only: None,
        delete_on_remove: None,
    }
}

/// `stored()` with mount points `(key, value)`.
fn with_mps(mps: &[(&str, &str)]) -> VmConfig {
    let mut cfg = stored();
    for (k, v) in mps {
        cfg.0.insert(k.to_string(), v.to_string());
    }
    cfg
}

#[test]
fn removing_the_first_mount_point_detaches_only_it_and_keeps_the_other_volume_as_it_is() {
    let cfg = with_mps(&[
        ("mp0", "local-lvm:vm-120-disk-1,mp=/logs,size=10G"),
        ("mp1", "local-lvm:vm-120-disk-2,mp=/data,size=50G"),
    ]);
    let prior = vec![mp("/logs", 10), mp("/data", 50)];
    let ch = mount_point_changes(&[mp("/data", 50)], &prior, &cfg);
    assert_eq!(ch, MountPointChanges { detach: vec!["mp0".into()], ..Default::default() });
}

#[test]
fn mount_points_are_matched_by_path_whatever_their_order_or_numbering() {
    // An imported container with a gap (mp0, mp2), configured in the other order.
    let cfg = with_mps(&[
        ("mp0", "local-lvm:vm-120-disk-1,mp=/srv/a,size=8G"),
        ("mp2", "local-lvm:vm-120-disk-2,mp=/srv/b,size=16G"),
    ]);
    let want = vec![mp("/srv/b", 16), mp("/srv/a", 8)];
    assert_eq!(mount_point_changes(&want, &[], &cfg), MountPointChanges::default());
    let m = from_pve(&cfg, &ct(120, true), None, ReadMode::Import);
    let paths: Vec<&str> = m.mount_point.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/srv/a", "/srv/b"]);

    // A new one takes the lowest free number; growing one resizes its own key.
    let want = vec![mp("/srv/b", 20), mp("/srv/a", 8), mp("/srv/c", 4)];
    let ch = mount_point_changes(&want, &[], &cfg);
    assert_eq!(ch.set, vec![("mp1".to_string(), "local-lvm:4,mp=/srv/c".to_string())]);
    assert_eq!(ch.grow, vec![("mp2".to_string(), 16, 20, "/srv/b".to_string())]);
    assert!(ch.detach.is_empty() && ch.destroy.is_empty() && ch.shrink.is_empty(), "{ch:?}");
}

#[test]
fn only_a_removed_mount_point_recorded_with_delete_on_remove_has_its_volume_destroyed() {
    let cfg = with_mps(&[
        ("mp0", "local-lvm:vm-120-disk-1,mp=/logs,size=10G"),
        ("mp1", "local-lvm:vm-120-disk-2,mp=/scratch,size=5G"),
        ("mp3", "local-lvm:vm-120-disk-3,mp=/outside,size=1G"),
        ("unused0", "local-lvm:vm-120-disk-9"),
    ]);
    let mut scratch = mp("/scratch", 5);
    scratch.delete_on_remove = Some(true);
    let prior = vec![mp("/logs", 10), scratch];
    let ch = mount_point_changes(&[], &prior, &cfg);
    assert_eq!(ch.detach, vec!["mp0", "mp1", "mp3"]);
    assert_eq!(ch.destroy, vec!["local-lvm:vm-120-disk-2"]);
    // After the detach, only the unusedN holding that volume is deleted.
    let after = with_mps(&[
        ("unused0", "local-lvm:vm-120-disk-9"),
        ("unused1", "local-lvm:vm-120-disk-1"),
        ("unused2", "local-lvm:vm-120-disk-2"),
        ("unused3", "local-lvm:vm-120-disk-3"),
    ]);
    assert_eq!(unused_holding(&after, &ch.destroy), vec!["unused2"]);
    // The flag is carried over from the state by path on refresh.
    let m = from_pve(&cfg, &ct(120, true), Some(&CtModel { mount_point: prior, ..planned() }), ReadMode::Refresh);
    let flag = |p: &str| m.mount_point.iter().find(|m| m.path == p).and_then(|m| m.delete_on_remove);
    assert_eq!((flag("/scratch"), flag("/logs"), flag("/outside")), (Some(true), None, None));
}

#[test]
fn a_smaller_mount_point_is_reported_as_a_shrink_not_resized() {
    let cfg = with_mps(&[("mp0", "local-lvm:vm-120-disk-1,mp=/data,size=50G")]);
    let ch = mount_point_changes(&[mp("/data", 10)], &[], &cfg);
    assert_eq!(ch.shrink, vec![("mp0".to_string(), 50, 10, "/data".to_string())]);
    assert!(ch.grow.is_empty() && ch.set.is_empty());
}

#[test]
fn state_stored_with_mount_points_as_a_list_reads_as_the_set() {
    use crate::framework::{AnyResource, Value};
    // What the provider stored before mount points became a set keyed by path.
    let old = serde_json::json!({
        "id": "pve1/120", "node": "pve1", "vm_id": 120, "hostname": "db",
        "mount_point": [
            {"storage": "local-lvm", "size_gb": 10, "path": "/logs", "backup": null, "read_only": null},
            {"storage": "local-lvm", "size_gb": 50, "path": "/data", "backup": null, "read_only": null}
        ]
    });
    let out = super::Container.upgrade(0, old.to_string().as_bytes());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let Some(Value::Set(mps)) = out.value.attr("mount_point") else { panic!("{:?}", out.value) };
    assert_eq!(mps.len(), 2);
    assert!(mps.iter().all(|m| m.attr("delete_on_remove") == Some(&Value::Null)), "{mps:?}");
}
