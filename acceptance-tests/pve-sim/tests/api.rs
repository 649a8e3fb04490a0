//! Behaviour of the simulated PVE API.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn auth_rejects_missing_and_wrong_tokens() {
    let env = start().await;
    let r = env.client.get(env.url("/version")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = env
        .client
        .get(env.url("/version"))
        .header("Authorization", "PVEAPIToken=root@pam!strata=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = env.get("/version", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["release"], "9.1");
    // The admin API is authenticated too.
    let r = env.client.get(format!("{}/_sim/state", env.sim.endpoint())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn ticket_login_requires_csrf_for_writes() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| {
        c.user = Some("root@pam".into());
        c.password = Some("pw".into());
    })
    .await;
    let bad = env
        .client
        .post(env.url("/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let r: Value = env
        .client
        .post(env.url("/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "pw")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = r["data"]["ticket"].as_str().unwrap();
    let csrf = r["data"]["CSRFPreventionToken"].as_str().unwrap();
    assert!(ticket.starts_with("PVE:root@pam:"));
    let cookie = format!("PVEAuthCookie={}", urlencode(ticket));
    let r = env.client.get(env.url("/nodes")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let form = [("vmid", "100"), ("name", "t1")];
    let r = env.client.post(env.url("/nodes/pve1/qemu")).header("Cookie", &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "write without CSRF header must fail");
    let r = env
        .client
        .post(env.url("/nodes/pve1/qemu"))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", csrf)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let upid: Value = r.json().await.unwrap();
    assert!(upid["data"].as_str().unwrap().ends_with(":qmcreate:100:root@pam:"));
}

#[tokio::test]
async fn version_nodes_and_unknown_paths() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.nodes = vec!["pve1".into(), "pve2".into()]).await;
    let r = env.get("/version", &[]).await;
    assert_eq!(r.data()["version"], "9.1.1");
    let r = env.get("/nodes", &[]).await;
    let names: Vec<&str> = r.data().as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["pve1", "pve2"]);
    assert_eq!(r.data()[0]["status"], "online");
    assert!(r.data()[0]["maxmem"].as_u64().unwrap() > 0);
    let r = env.get("/nodes/pve2/status", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.data()["memory"]["total"].as_u64().unwrap() > 0);
    let r = env.get("/nodes/nope/status", &[]).await;
    assert_eq!(r.status, 500);
    let r = env.get("/nodes/pve1/lxc/100/snapshot", &[]).await;
    assert_eq!(r.status, 501);
}

#[tokio::test]
async fn parallel_clones_race_on_nextid() {
    let env = std::sync::Arc::new(start().await);
    env.create_vm(
        9000,
        &[("name", "ubuntu-tmpl"), ("template", "1"), ("scsi0", "local-lvm:8"), ("net0", "virtio,bridge=vmbr0")],
    )
    .await;

    // nextid only suggests: ten callers asking before anyone creates all get the same id.
    let mut ids = BTreeSet::new();
    for _ in 0..10 {
        ids.insert(env.get("/cluster/nextid", &[]).await.data().as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    let contested = ids.into_iter().next().unwrap();

    let mut handles = Vec::new();
    for i in 0..10 {
        let env = env.clone();
        let newid = contested.clone();
        handles.push(tokio::spawn(async move {
            let name = format!("worker-{i}");
            let first = env.post("/nodes/pve1/qemu/9000/clone", &[("newid", &newid), ("name", &name)]).await;
            let mut lost = None;
            let mut r = first;
            // Losers re-ask nextid and retry, as a correct client must.
            for _ in 0..50 {
                if r.status == 200 {
                    env.task_ok(&r.upid()).await;
                    return (name, lost);
                }
                assert_eq!(r.status, 500);
                lost.get_or_insert(r.reason.clone());
                let id = env.get("/cluster/nextid", &[]).await.data().as_str().unwrap().to_string();
                r = env.post("/nodes/pve1/qemu/9000/clone", &[("newid", &id), ("name", &name)]).await;
            }
            panic!("clone never succeeded");
        }));
    }
    let mut losers = 0;
    for h in handles {
        let (_, lost) = h.await.unwrap();
        if let Some(reason) = lost {
            losers += 1;
            assert!(reason.starts_with("VM ") && reason.contains(" already exists on node 'pve1'"), "{reason}");
        }
    }
    assert_eq!(losers, 9, "exactly one caller wins the contested id");
    let r = env.get("/cluster/resources", &[("type", "vm")]).await;
    let vms = r.data().as_array().unwrap();
    let names: BTreeSet<&str> =
        vms.iter().filter(|v| v["template"] == 0).map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 10);
    let ids: BTreeSet<u64> = vms.iter().map(|v| v["vmid"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 11);
    let tmpl = vms.iter().find(|v| v["vmid"] == 9000).unwrap();
    assert_eq!(tmpl["id"], "qemu/9000");
    assert_eq!(tmpl["template"], 1);
    // nextid with an explicit vmid checks availability.
    let r = env.get("/cluster/nextid", &[("vmid", "9000")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["vmid"].as_str().unwrap().contains("already exists"));
}

#[tokio::test]
async fn config_round_trips_exactly_as_written() {
    let env = start().await;
    let keys = "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIGk%20me%40laptop";
    env.create_vm(
        120,
        &[
            ("name", "cp-1"),
            ("memory", "4096"),
            ("cores", "2"),
            ("onboot", "true"),
            ("agent", "enabled=1"),
            ("scsi0", "local-lvm:32,discard=on"),
            ("net0", "virtio,bridge=vmbr0,tag=10,firewall=1"),
            ("net1", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1"),
            ("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1"),
            ("ciuser", "ubuntu"),
            ("sshkeys", keys),
            ("nameserver", "1.1.1.1 8.8.8.8"),
            ("searchdomain", "lab.local"),
            ("tags", "Prod;k8s,alpha"),
            ("description", "control plane"),
            ("cpu", "host"),
        ],
    )
    .await;
    let c = env.config_of(120).await;
    assert_eq!(c["name"], "cp-1");
    assert_eq!(c["memory"], "4096");
    assert_eq!(c["cores"], 2);
    assert_eq!(c["onboot"], 1, "booleans are normalised to 1/0");
    assert_eq!(c["agent"], "enabled=1");
    assert_eq!(c["scsi0"], "local-lvm:vm-120-disk-0,discard=on,size=32G");
    let net0 = c["net0"].as_str().unwrap();
    assert!(net0.starts_with("virtio=BC:24:11:"), "MAC generated and written back: {net0}");
    assert!(net0.ends_with(",bridge=vmbr0,firewall=1,tag=10"), "{net0}");
    assert_eq!(c["net1"], "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1");
    assert_eq!(c["ipconfig0"], "ip=10.0.0.5/24,gw=10.0.0.1");
    assert_eq!(c["sshkeys"], keys);
    assert_eq!(c["nameserver"], "1.1.1.1 8.8.8.8");
    assert_eq!(c["tags"], "alpha;k8s;prod");
    assert_eq!(c["cpu"], "host");
    for default_key in ["sockets", "ostype", "scsihw", "bios", "kvm", "acpi", "balloon", "boot"] {
        assert!(c.get(default_key).is_none(), "default '{default_key}' must not be filled in");
    }
    assert_eq!(c["digest"].as_str().unwrap().len(), 40);

    // Sync update with delete; a stale digest is refused.
    let digest = c["digest"].as_str().unwrap().to_string();
    let r = env
        .put("/nodes/pve1/qemu/120/config", &[("cores", "4"), ("delete", "description,onboot"), ("digest", &digest)])
        .await;
    assert_eq!(r.status, 200, "{}", r.reason);
    assert!(r.data().is_null());
    let c2 = env.config_of(120).await;
    assert_eq!(c2["cores"], 4);
    assert!(c2.get("description").is_none() && c2.get("onboot").is_none());
    let r = env.put("/nodes/pve1/qemu/120/config", &[("cores", "8"), ("digest", &digest)]).await;
    assert_eq!(r.status, 500);
    assert!(r.reason.contains("detected modified configuration"), "{}", r.reason);

    // Async update returns a task and applies when it finishes.
    let r = env.post("/nodes/pve1/qemu/120/config", &[("memory", "8192"), ("scsi1", "local-lvm:10")]).await;
    env.task_ok(&r.upid()).await;
    let c3 = env.config_of(120).await;
    assert_eq!(c3["memory"], "8192");
    assert_eq!(c3["scsi1"], "local-lvm:vm-120-disk-1,size=10G");

    // Deleting a disk detaches it as unused0, like PVE.
    env.put("/nodes/pve1/qemu/120/config", &[("delete", "scsi1")]).await;
    let c4 = env.config_of(120).await;
    assert_eq!(c4["unused0"], "local-lvm:vm-120-disk-1");

    // JSON bodies are accepted too.
    let r = env
        .client
        .put(env.url("/nodes/pve1/qemu/120/config"))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .json(&serde_json::json!({ "sockets": 2, "protection": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let c5 = env.config_of(120).await;
    assert_eq!(c5["sockets"], 2);
    assert_eq!(c5["protection"], 0);
}

#[tokio::test]
async fn invalid_parameters_return_400_naming_the_parameter() {
    let env = start().await;
    env.create_vm(130, &[("name", "v")]).await;
    let cases: &[(&str, &str, &str)] = &[
        ("bogus", "1", "property is not defined"),
        ("cores", "two", "type check ('integer') failed"),
        ("cores", "0", "minimum value"),
        ("memory", "lots", "integer"),
        ("memory", "8", "minimum value of 16"),
        ("onboot", "maybe", "boolean"),
        ("net0", "virtio,bridge=vmbr0,tag=5000", "tag"),
        ("net0", "bridge=vmbr0", "model"),
        ("net1", "virtio=01:00:00:00:00:01,bridge=vmbr0", "MAC"),
        ("scsi0", "local-lvm:32,cache=fast", "cache"),
        ("ipconfig0", "ip=10.0.0.300/24", "address"),
        ("tags", "ok;bad tag!", "invalid tag"),
        ("sshkeys", "ssh-ed25519 AAAA me", "regex"),
        ("nameserver", "not-an-ip", "address"),
        ("name", "bad_name!", "DNS name"),
        ("ostype", "beos", "enumeration"),
        ("net99", "virtio,bridge=vmbr0", "property is not defined"),
        ("delete", "nonsense", "configuration ID"),
    ];
    for (param, value, needle) in cases {
        let r = env.put("/nodes/pve1/qemu/130/config", &[(param, value)]).await;
        assert_eq!(r.status, 400, "{param}={value}: {} {}", r.reason, r.body);
        assert_eq!(r.reason, "Parameter verification failed.");
        assert!(r.body["data"].is_null());
        let msg = r.body["errors"][param].as_str().unwrap_or_else(|| panic!("{param} not named: {}", r.body));
        assert!(msg.contains(needle), "{param}={value}: '{msg}' lacks '{needle}'");
    }
    // vmid range on create, and a missing required parameter.
    let r = env.post("/nodes/pve1/qemu", &[("vmid", "99")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["vmid"].as_str().unwrap().contains("minimum value of 100"));
    let r = env.post("/nodes/pve1/qemu/130/clone", &[("name", "x")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["newid"].as_str().unwrap().contains("missing"));
    // Setting and deleting the same key at once is refused.
    let r = env.put("/nodes/pve1/qemu/130/config", &[("cores", "2"), ("delete", "cores")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["delete"].is_string());
    // Nothing was changed by the failed calls.
    let c = env.config_of(130).await;
    assert!(c.get("cores").is_none());
}

#[tokio::test]
async fn resize_grows_and_refuses_to_shrink() {
    let env = start().await;
    env.create_vm(140, &[("scsi0", "local-lvm:8")]).await;
    let r = env.put("/nodes/pve1/qemu/140/resize", &[("disk", "scsi0"), ("size", "+2G")]).await;
    env.task_ok(&r.upid()).await;
    assert_eq!(env.config_of(140).await["scsi0"], "local-lvm:vm-140-disk-0,size=10G");
    let r = env.put("/nodes/pve1/qemu/140/resize", &[("disk", "scsi0"), ("size", "12G")]).await;
    env.task_ok(&r.upid()).await;
    assert_eq!(env.config_of(140).await["scsi0"], "local-lvm:vm-140-disk-0,size=12G");
    let r = env.put("/nodes/pve1/qemu/140/resize", &[("disk", "scsi0"), ("size", "5G")]).await;
    let st = env.wait_task(&r.upid()).await;
    assert_eq!(st["exitstatus"], "shrinking disks is not supported");
    assert_eq!(env.config_of(140).await["scsi0"], "local-lvm:vm-140-disk-0,size=12G");
    let r = env.put("/nodes/pve1/qemu/140/resize", &[("disk", "scsi1"), ("size", "+1G")]).await;
    let st = env.wait_task(&r.upid()).await;
    assert_eq!(st["exitstatus"], "disk 'scsi1' does not exist");
    let r = env.put("/nodes/pve1/qemu/140/resize", &[("disk", "scsi0"), ("size", "big")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["size"].is_string());
}

#[tokio::test]
async fn clone_locks_new_vm_and_holds_source() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| {
        c.task_ms = 3000;
        c.lock_wait_ms = 100;
    })
    .await;
    let r = env.post("/nodes/pve1/qemu", &[("vmid", "9000"), ("template", "1"), ("scsi0", "local-lvm:4")]).await;
    env.task_ok(&r.upid()).await;
    let clone = env.post("/nodes/pve1/qemu/9000/clone", &[("newid", "150"), ("name", "locked")]).await.upid();
    let c = env.config_of(150).await;
    assert_eq!(c["lock"], "clone");
    assert_eq!(c["scsi0"], "local-lvm:base-9000-disk-0/vm-150-disk-0,size=4G", "linked clone from template");

    let r = env.put("/nodes/pve1/qemu/150/config", &[("cores", "2")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM is locked (clone)"));
    let r = env.post("/nodes/pve1/qemu/150/status/start", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM is locked (clone)"));
    let r = env.delete("/nodes/pve1/qemu/150", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM is locked (clone)"));
    // The source's config lock is held (shared) by the clone: exclusive
    // changes time out.
    let r = env.put("/nodes/pve1/qemu/9000/config", &[("description", "x")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.reason, "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout");

    env.task_ok(&clone).await;
    let c = env.config_of(150).await;
    assert!(c.get("lock").is_none());
    let r = env.put("/nodes/pve1/qemu/150/config", &[("cores", "2")]).await;
    assert_eq!(r.status, 200);
    let r = env.put("/nodes/pve1/qemu/9000/config", &[("description", "x")]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn tasks_have_pve_upids_and_progress() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.task_ms = 3000).await;
    let upid = env.post("/nodes/pve1/qemu", &[("vmid", "160"), ("scsi0", "local-lvm:1")]).await.upid();
    let parts: Vec<&str> = upid.split(':').collect();
    assert_eq!(parts.len(), 9, "{upid}");
    assert_eq!(parts[0], "UPID");
    assert_eq!(parts[1], "pve1");
    for hex in &parts[2..5] {
        assert_eq!(hex.len(), 8, "{upid}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{upid}");
    }
    assert_eq!(parts[5], "qmcreate");
    assert_eq!(parts[6], "160");
    assert_eq!(parts[7], TOKEN_ID, "token user is user@realm!tokenid");
    assert_eq!(parts[8], "", "UPIDs end with a colon");
    assert_eq!(pve_sim::parse_upid(&upid).unwrap().6, TOKEN_ID);

    let path = format!("/nodes/pve1/tasks/{}/status", urlencode(&upid));
    let first = env.get(&path, &[]).await;
    assert_eq!(first.data()["status"], "running");
    assert!(first.data().get("exitstatus").is_none());
    assert_eq!(first.data()["type"], "qmcreate");
    assert_eq!(first.data()["user"], TOKEN_ID);
    let done = env.wait_task(&upid).await;
    assert_eq!(done["exitstatus"], "OK");
    let log = env.get(&format!("/nodes/pve1/tasks/{}/log", urlencode(&upid)), &[]).await;
    let lines = log.data().as_array().unwrap();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(lines[0]["n"], 1);

    // Failures carry the error text as exitstatus.
    let r = env.post("/nodes/pve1/qemu/160/status/shutdown", &[]).await;
    let st = env.wait_task(&r.upid()).await;
    assert_eq!(st["exitstatus"], "VM 160 not running");
    let r = env.get("/nodes/pve1/tasks/not-a-upid/status", &[]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn guest_agent_reports_interfaces() {
    let env = start().await;
    env.create_vm(
        170,
        &[
            ("agent", "1"),
            ("net0", "virtio=BC:24:11:00:00:AA,bridge=vmbr0"),
            ("net1", "virtio=BC:24:11:00:00:BB,bridge=vmbr1"),
            ("ipconfig0", "ip=192.168.50.10/24,gw=192.168.50.1"),
            ("ipconfig1", "ip=dhcp"),
        ],
    )
    .await;
    env.create_vm(171, &[("net0", "virtio,bridge=vmbr0")]).await;
    let path = "/nodes/pve1/qemu/170/agent/network-get-interfaces";
    let r = env.get(path, &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 170 is not running"));
    env.task_ok(&env.post("/nodes/pve1/qemu/170/status/start", &[]).await.upid()).await;
    assert_eq!(env.get("/nodes/pve1/qemu/170/status/current", &[]).await.data()["status"], "running");
    let r = env.get(path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.reason);
    let ifaces = r.data()["result"].as_array().unwrap();
    let find = |name: &str| ifaces.iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name} missing"));
    let ipv4 = |i: &Value| -> Vec<String> {
        i["ip-addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["ip-address-type"] == "ipv4")
            .map(|a| a["ip-address"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ipv4(find("lo")), ["127.0.0.1"]);
    let e0 = find("ens18");
    assert_eq!(e0["hardware-address"], "bc:24:11:00:00:aa");
    assert_eq!(ipv4(e0), ["192.168.50.10"]);
    let dhcp = ipv4(find("ens19"));
    assert_eq!(dhcp.len(), 1);
    assert!(dhcp[0].starts_with("10."), "{dhcp:?}");
    // Deterministic across calls.
    assert_eq!(
        ipv4(find("ens19")),
        ipv4(
            env.get(path, &[]).await.data()["result"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == "ens19")
                .unwrap()
        )
    );

    env.task_ok(&env.post("/nodes/pve1/qemu/171/status/start", &[]).await.upid()).await;
    let r = env.get("/nodes/pve1/qemu/171/agent/network-get-interfaces", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "No QEMU guest agent configured"));
}

#[tokio::test]
async fn guest_agent_needs_boot_time() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.agent_boot_ms = 60_000).await;
    env.create_vm(172, &[("agent", "1"), ("net0", "virtio,bridge=vmbr0"), ("start", "1")]).await;
    let r = env.get("/nodes/pve1/qemu/172/agent/network-get-interfaces", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "QEMU guest agent is not running"));
}

#[tokio::test]
async fn restart_from_state_json_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let env = start_with(dir, |_| {}).await;
    env.create_vm(180, &[("name", "keep-me"), ("scsi0", "local-lvm:4"), ("net0", "virtio,bridge=vmbr0")]).await;
    env.task_ok(&env.post("/nodes/pve1/qemu/180/status/start", &[]).await.upid()).await;
    let before = env.config_of(180).await;
    let cert = env.sim.ca_cert_pem().to_string();
    let Env { sim, dir, .. } = env;
    sim.shutdown().await.unwrap();
    assert!(path.join("state.json").exists());

    let env2 = start_with(dir, |_| {}).await;
    assert_eq!(env2.sim.ca_cert_pem(), cert, "certificate is reused");
    assert_eq!(env2.config_of(180).await, before);
    let st = env2.get("/nodes/pve1/qemu/180/status/current", &[]).await;
    assert_eq!(st.data()["status"], "running");
    assert_eq!(env2.get("/cluster/nextid", &[]).await.data(), "100");
    // Volumes survive too: a new disk gets the next index.
    env2.task_ok(&env2.post("/nodes/pve1/qemu/180/config", &[("scsi1", "local-lvm:1")]).await.upid()).await;
    assert_eq!(env2.config_of(180).await["scsi1"], "local-lvm:vm-180-disk-1,size=1G");
}

#[tokio::test]
async fn delete_purges_vm_volumes_and_pool_membership() {
    let env = start().await;
    assert_eq!(env.post("/pools", &[("poolid", "k8s")]).await.status, 200);
    env.create_vm(190, &[("scsi0", "local-lvm:4"), ("pool", "k8s"), ("start", "1")]).await;
    let r = env.get("/cluster/resources", &[("type", "vm")]).await;
    assert_eq!(r.data()[0]["pool"], "k8s");
    let r = env.delete("/nodes/pve1/qemu/190", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 190 is running - destroy failed"));
    env.task_ok(&env.post("/nodes/pve1/qemu/190/status/stop", &[]).await.upid()).await;
    let upid = env.delete("/nodes/pve1/qemu/190", &[("purge", "1"), ("destroy-unreferenced-disks", "1")]).await.upid();
    env.task_ok(&upid).await;
    let r = env.get("/nodes/pve1/qemu/190/config", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.reason, "Configuration file 'nodes/pve1/qemu-server/190.conf' does not exist");
    let state = env.sim.state_json();
    assert!(state["volumes"].as_object().unwrap().is_empty(), "{state}");
    assert!(state["pools"]["k8s"]["members"].as_array().unwrap().is_empty());
    assert!(env.get("/nodes/pve1/qemu", &[]).await.data().as_array().unwrap().is_empty());
}

#[tokio::test]
async fn creating_an_existing_vmid_fails() {
    let env = start().await;
    env.create_vm(200, &[]).await;
    let r = env.post("/nodes/pve1/qemu", &[("vmid", "200")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "VM 200 already exists on node 'pve1'"));
}
