//! `--guest-hook`: which power changes run it, with what data, and that its failure
//! fails the task. The hook here is a script that records its calls (the lab's real hook
//! boots a machine; see strata-acceptance-tests' vm_nodes test).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn hook_script(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("hook.sh");
    let log = dir.join("calls.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             [ -e \"{fail}\" ] && {{ echo 'machine refused to boot' >&2; exit 3; }}\n\
             echo \"$1 $2 $3\" >> '{log}'\n\
             [ \"$1\" = start ] && cp -r \"$3\" '{copy}'\n\
             exit 0\n",
            fail = dir.join("fail").display(),
            log = log.display(),
            copy = dir.join("seen").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default().lines().map(str::to_string).collect()
}

#[tokio::test]
async fn the_hook_follows_power_changes_with_the_cloud_init_data() {
    let tools = tempfile::tempdir().unwrap();
    let hook = hook_script(tools.path());
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.guest_hook = Some(hook.clone())).await;
    let keys = urlencode("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 ops@example\n");
    env.create_vm(
        9000,
        &[
            ("name", "tmpl"),
            ("net0", "virtio,bridge=vmbr0"),
            ("ide2", "local-lvm:cloudinit"),
            ("ciuser", "ops"),
            ("sshkeys", &keys),
            ("ipconfig0", "ip=10.77.1.50/24,gw=10.77.1.1"),
            ("nameserver", "10.77.1.1"),
            ("template", "1"),
        ],
    )
    .await;
    // A template never runs: its start fails as before, without the hook.
    let r = env.post("/nodes/pve1/qemu/9000/status/start", &[]).await;
    let st = env.wait_task(&r.upid()).await;
    assert_ne!(st["exitstatus"], "OK");
    assert!(calls(tools.path()).is_empty(), "{:?}", calls(tools.path()));

    let r = env.post("/nodes/pve1/qemu/9000/clone", &[("newid", "101"), ("name", "web1")]).await;
    env.task_ok(&r.upid()).await;
    let r = env.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    env.task_ok(&r.upid()).await;
    let guest_dir = env.dir.path().join("guests/101");
    assert_eq!(calls(tools.path()), vec![format!("start 101 {}", guest_dir.display())]);
    // What the hook saw while the start task ran: the clone's identity and its seed.
    let seen = tools.path().join("seen");
    let guest: serde_json::Value = serde_json::from_slice(&std::fs::read(seen.join("guest.json")).unwrap()).unwrap();
    let mac = env.config_of(101).await["net0"].as_str().unwrap().split(['=', ',']).nth(1).unwrap().to_lowercase();
    assert_eq!(guest["name"], "web1");
    assert_eq!(guest["ipv4"], "10.77.1.50");
    assert_eq!(guest["nics"][0]["macaddr"], mac.as_str());
    let user_data = std::fs::read_to_string(seen.join("nocloud/user-data")).unwrap();
    assert!(user_data.starts_with("#cloud-config\nhostname: web1\n"), "{user_data}");
    assert!(user_data.contains("user: ops\n"));
    assert!(user_data.contains("ssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 ops@example\n"));
    let net = std::fs::read_to_string(seen.join("nocloud/network-config")).unwrap();
    assert!(net.contains(&format!("mac_address: '{mac}'")), "{net}");
    assert!(net.contains("address: '10.77.1.50'\n        netmask: '255.255.255.0'\n        gateway: '10.77.1.1'"));
    assert!(net.contains("- type: nameserver\n      address:\n      - '10.77.1.1'\n"), "{net}");
    assert!(std::fs::read_to_string(seen.join("nocloud/meta-data")).unwrap().starts_with("instance-id: "));

    // A start of a running VM fails as before, without the hook; shutdown, stop after
    // a start, and delete run it.
    let r = env.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    assert_ne!(env.wait_task(&r.upid()).await["exitstatus"], "OK");
    let r = env.post("/nodes/pve1/qemu/101/status/shutdown", &[]).await;
    env.task_ok(&r.upid()).await;
    let r = env.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    env.task_ok(&r.upid()).await;
    let r = env.post("/nodes/pve1/qemu/101/status/stop", &[]).await;
    env.task_ok(&r.upid()).await;
    let r = env.delete("/nodes/pve1/qemu/101", &[]).await;
    env.task_ok(&r.upid()).await;
    let words: Vec<String> = calls(tools.path()).iter().map(|c| c.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(words, ["start", "shutdown", "start", "stop", "destroy"]);
    assert!(!guest_dir.exists(), "the guest dir goes with the VM");
}

#[tokio::test]
async fn a_failing_hook_fails_the_task_and_the_vm_stays_stopped() {
    let tools = tempfile::tempdir().unwrap();
    let hook = hook_script(tools.path());
    std::fs::write(tools.path().join("fail"), "").unwrap();
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.guest_hook = Some(hook.clone())).await;
    env.create_vm(101, &[("net0", "virtio,bridge=vmbr0")]).await;
    let r = env.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    let st = env.wait_task(&r.upid()).await;
    let exit = st["exitstatus"].as_str().unwrap();
    assert!(exit.contains("guest hook start 101 failed") && exit.contains("machine refused to boot"), "{exit}");
    let r = env.get("/nodes/pve1/qemu/101/status/current", &[]).await;
    assert_eq!(r.data()["status"], "stopped");
}
