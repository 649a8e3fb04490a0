//! Migration, pool membership and clean shutdown, as PVE does them.

mod common;

use common::*;
use serde_json::Value;

async fn two_nodes() -> Env {
    start_with(tempfile::tempdir().unwrap(), |c| c.nodes = vec!["pve1".into(), "pve2".into()]).await
}

fn vm_entry(r: &Resp, vmid: u64) -> Value {
    r.data().as_array().unwrap().iter().find(|v| v["vmid"] == vmid).cloned().expect("VM listed")
}

#[tokio::test]
async fn migration_refusals_match_pve() {
    let env = two_nodes().await;
    env.create_vm(100, &[("scsi0", "local-lvm:4"), ("start", "1")]).await;
    let r = env.post("/nodes/pve1/qemu/100/migrate", &[("target", "pve1")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"]["target"], "target is local node.");
    let r = env.post("/nodes/pve1/qemu/100/migrate", &[("target", "pve9")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "no such cluster node 'pve9'"));
    let r = env.post("/nodes/pve1/qemu/100/migrate", &[("target", "pve2")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "can't migrate running VM without --online"));
    // Live migration of a local disk needs with-local-disks; the task fails and the
    // VM stays where it was, unlocked.
    let upid = env.post("/nodes/pve1/qemu/100/migrate", &[("target", "pve2"), ("online", "1")]).await.upid();
    assert!(upid.contains(":qmigrate:100:"), "{upid}");
    let st = env.wait_task(&upid).await;
    assert_eq!(st["exitstatus"], "can't live migrate attached local disks without with-local-disks option");
    let cfg = env.config_of(100).await;
    assert!(cfg.get("lock").is_none(), "{cfg}");
    assert_eq!(vm_entry(&env.get("/cluster/resources", &[("type", "vm")]).await, 100)["node"], "pve1");
}

#[tokio::test]
async fn online_migration_moves_vm_and_disks_and_locks_meanwhile() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| {
        c.nodes = vec!["pve1".into(), "pve2".into()];
        c.task_ms = 300;
    })
    .await;
    env.create_vm(101, &[("scsi0", "local-lvm:4"), ("start", "1")]).await;
    let form = [("target", "pve2"), ("online", "1"), ("with-local-disks", "1")];
    let upid = env.post("/nodes/pve1/qemu/101/migrate", &form).await.upid();
    // While it runs, the VM is locked.
    assert_eq!(env.config_of(101).await["lock"], "migrate");
    let r = env.post("/nodes/pve1/qemu/101/status/stop", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM is locked (migrate)"));
    env.task_ok(&upid).await;
    let r = env.get("/nodes/pve1/qemu/101/config", &[]).await;
    assert_eq!(r.reason, "Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist");
    let r = env.get("/nodes/pve2/qemu/101/config", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.data()["scsi0"].as_str().unwrap().starts_with("local-lvm:vm-101-disk-0"), "{}", r.body);
    let vm = vm_entry(&env.get("/cluster/resources", &[("type", "vm")]).await, 101);
    assert_eq!((vm["node"].as_str(), vm["status"].as_str()), (Some("pve2"), Some("running")));
    let state = env.sim.state_json();
    assert_eq!(state["volumes"]["local-lvm:vm-101-disk-0"]["node"], "pve2");
}

#[tokio::test]
async fn offline_migration_of_a_stopped_vm_needs_no_flags() {
    let env = two_nodes().await;
    env.create_vm(102, &[("scsi0", "local-lvm:4")]).await;
    let upid = env.post("/nodes/pve1/qemu/102/migrate", &[("target", "pve2"), ("online", "1")]).await.upid();
    env.task_ok(&upid).await;
    let log = env.get(&format!("/nodes/pve1/tasks/{}/log", urlencode(&upid)), &[]).await;
    let text: Vec<&str> = log.data().as_array().unwrap().iter().filter_map(|l| l["t"].as_str()).collect();
    assert!(text.contains(&"VM isn't running. Doing offline migration instead."), "{text:?}");
    assert_eq!(vm_entry(&env.get("/cluster/resources", &[("type", "vm")]).await, 102)["node"], "pve2");
}

#[tokio::test]
async fn pool_membership_changes_through_the_pool_api() {
    let env = start().await;
    for p in ["a", "b"] {
        assert_eq!(env.post("/pools", &[("poolid", p)]).await.status, 200);
    }
    env.create_vm(110, &[("pool", "a")]).await;
    let pool_of = |r: &Resp| vm_entry(r, 110)["pool"].clone();
    let r = env.put("/pools/b", &[("vms", "110")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 110 belongs already to pool 'a' and 'allow-move' is not set"));
    let r = env.put("/pools/b", &[("vms", "110"), ("allow-move", "1")]).await;
    assert_eq!(r.status, 200, "{}", r.reason);
    assert_eq!(pool_of(&env.get("/cluster/resources", &[("type", "vm")]).await), "b");
    let r = env.put("/pools/a", &[("vms", "110"), ("delete", "1")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 110 is not a pool member"));
    let r = env.put("/pools/b", &[("vms", "110"), ("delete", "1")]).await;
    assert_eq!(r.status, 200, "{}", r.reason);
    assert!(pool_of(&env.get("/cluster/resources", &[("type", "vm")]).await).is_null());
    let r = env.put("/pools/nosuch", &[("vms", "110")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "pool 'nosuch' does not exist"));
    let r = env.put("/pools/a", &[("vms", "999")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 999 does not exist"));
    // PVE 8.1's form: the pool id as a parameter.
    let r = env.put("/pools", &[("poolid", "a"), ("vms", "110")]).await;
    assert_eq!(r.status, 200, "{}", r.reason);
    assert_eq!(pool_of(&env.get("/cluster/resources", &[("type", "vm")]).await), "a");
}

#[tokio::test]
async fn shutdown_waits_for_the_guest_then_fails_or_force_stops() {
    // The guest needs 1.5 s to power off.
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.guest_shutdown_ms = 1500).await;
    env.create_vm(120, &[("start", "1")]).await;
    let running = |r: &Resp| vm_entry(r, 120)["status"].as_str().map(str::to_string);

    let st = env.wait_task(&env.post("/nodes/pve1/qemu/120/status/shutdown", &[("timeout", "1")]).await.upid()).await;
    assert_eq!(st["exitstatus"], "VM quit/powerdown failed - got timeout");
    assert_eq!(running(&env.get("/cluster/resources", &[("type", "vm")]).await).as_deref(), Some("running"));

    let form = [("timeout", "1"), ("forceStop", "1")];
    let st = env.wait_task(&env.post("/nodes/pve1/qemu/120/status/shutdown", &form).await.upid()).await;
    assert_eq!(st["exitstatus"], "WARNINGS: 1");
    assert_eq!(running(&env.get("/cluster/resources", &[("type", "vm")]).await).as_deref(), Some("stopped"));

    env.task_ok(&env.post("/nodes/pve1/qemu/120/status/start", &[]).await.upid()).await;
    let started = std::time::Instant::now();
    env.task_ok(&env.post("/nodes/pve1/qemu/120/status/shutdown", &[("timeout", "5")]).await.upid()).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "the guest takes its time");
    assert_eq!(running(&env.get("/cluster/resources", &[("type", "vm")]).await).as_deref(), Some("stopped"));
}
