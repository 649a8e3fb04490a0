//! The client against pve-sim (the named stand-in for Proxmox VE), in-process.

use std::collections::BTreeSet;
use std::time::Duration;

use pve_sim::{Faults, SimConfig, SimHandle};
use strata_pve_client::vm::{CloneSpec, CreateSpec};
use strata_pve_client::{Auth, Client, ClientConfig, Error, Secret};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "root@pam!strata=s3cr3t-token-value";

async fn sim_with(f: impl FnOnce(&mut SimConfig)) -> (SimHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path(), TOKEN);
    cfg.task_ms = 30;
    f(&mut cfg);
    (pve_sim::start(cfg).await.unwrap(), dir)
}

fn client(sim: &SimHandle, auth: Auth) -> Client {
    let mut cfg = ClientConfig::new(sim.endpoint(), auth);
    cfg.ca_cert_pem = Some(sim.ca_cert_pem().to_string());
    Client::new(cfg).unwrap()
}

fn token() -> Auth {
    Auth::Token(Secret::new(TOKEN))
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn template(c: &Client, vmid: u32) {
    let spec = CreateSpec {
        node: "pve1".into(),
        vmid,
        params: params(&[
            ("name", "tmpl"),
            ("scsi0", "local-lvm:2"),
            ("net0", "virtio,bridge=vmbr0"),
            ("template", "1"),
        ]),
    };
    c.create_vm(&spec).await.unwrap();
}

#[tokio::test]
async fn token_auth_reads_the_cluster_and_tls_is_verified() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, token());
    let nodes = c.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), vec!["pve1"]);
    assert_eq!(nodes[0].status, "online");

    // Without trusting the simulator's self-signed certificate the handshake fails...
    let untrusted = Client::new(ClientConfig::new(sim.endpoint(), token())).unwrap();
    let e = untrusted.version().await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    // ...unless verification is explicitly switched off.
    let mut cfg = ClientConfig::new(sim.endpoint(), token());
    cfg.insecure = true;
    Client::new(cfg).unwrap().version().await.unwrap();

    // A wrong token is refused, and the error does not echo it.
    let bad = client(&sim, Auth::Token(Secret::new("root@pam!strata=wrong-secret-xyz")));
    let e = bad.version().await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 401, .. }), "{e}");
    assert!(!e.to_string().contains("wrong-secret-xyz"), "{e}");
}

#[tokio::test]
async fn password_login_uses_ticket_and_csrf_for_writes() {
    let (sim, _d) = sim_with(|c| {
        c.user = Some("admin@pve".into());
        c.password = Some("pa55word".into());
    })
    .await;
    let c = client(&sim, Auth::Password { username: "admin@pve".into(), password: Secret::new("pa55word") });
    let spec = CreateSpec { node: "pve1".into(), vmid: 150, params: params(&[("name", "t1"), ("memory", "1024")]) };
    c.create_vm(&spec).await.unwrap();
    let cfg = c.vm_config("pve1", 150).await.unwrap().unwrap();
    assert_eq!(cfg.get("memory"), Some("1024"));
    // Writes went through with the ticket: the task was run as the user, not a token.
    let log = sim.request_log();
    assert!(log.iter().any(|r| r.path.ends_with("/access/ticket") && r.status == 200));
    assert!(log
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/qemu"))
        .all(|r| r.user.as_deref() == Some("admin@pve")));

    let wrong = client(&sim, Auth::Password { username: "admin@pve".into(), password: Secret::new("nope-nope") });
    let e = wrong.nodes().await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert!(!e.to_string().contains("nope-nope"));
}

#[tokio::test]
async fn parameter_errors_name_the_parameter_and_task_failures_carry_the_log() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, token());
    let spec = CreateSpec { node: "pve1".into(), vmid: 101, params: params(&[("memory", "8")]) };
    match c.create_vm(&spec).await.unwrap_err() {
        Error::Params { errors, .. } => assert!(errors.contains_key("memory"), "{errors:?}"),
        e => panic!("expected a parameter error, got {e}"),
    }
    template(&c, 9000).await;
    let e = c.start_vm("pve1", 9000).await.unwrap_err();
    match &e {
        Error::Task { exitstatus, log_tail, .. } => {
            assert!(exitstatus.contains("template"), "{exitstatus}");
            assert!(log_tail.iter().any(|l| l.starts_with("TASK ERROR")), "{log_tail:?}");
        }
        e => panic!("expected a task error, got {e}"),
    }
    assert!(c.vm_config("pve1", 4242).await.unwrap().is_none());
    drop(sim);
}

/// Many concurrent clones in one process: the allocator hands out distinct ids
/// although `/cluster/nextid` suggests the same one to everybody.
#[tokio::test]
async fn parallel_clones_get_distinct_vmids() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, token());
    template(&c, 9000).await;
    let mut tasks = vec![];
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { clone_one(&c, &format!("w{i}")).await }));
    }
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 10);
    let vms = c.cluster_vms().await.unwrap();
    assert_eq!(vms.len(), 11);
    drop(sim);
}

async fn clone_one(c: &Client, name: &str) -> u32 {
    loop {
        let lease = c.allocate_vmid().await.unwrap();
        let spec = CloneSpec {
            node: "pve1".into(),
            source_vmid: 9000,
            newid: lease.id,
            name: name.into(),
            full: true,
            storage: None,
            pool: None,
            description: None,
        };
        match c.clone_vm(&spec).await {
            Ok(()) => {
                let id = lease.id;
                lease.keep();
                return id;
            }
            Err(e) if e.is_already_exists() => lease.keep(),
            Err(e) => panic!("clone {name}: {e}"),
        }
    }
}

/// 5xx answers, connection resets (some after the server acted) and lock timeouts:
/// every clone happens exactly once, every VM can be started and destroyed.
#[tokio::test]
async fn faults_do_not_duplicate_or_lose_vms() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, token());
    template(&c, 9000).await;
    sim.set_faults(Faults {
        fail_5xx_pct: 15,
        reset_pct: 10,
        reset_after_pct: 50,
        lock_contention_pct: 10,
        latency_ms: 0,
    })
    .unwrap();
    let mut tasks = vec![];
    for i in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("f{i}");
            let id = clone_one(&c, &name).await;
            c.update_config("pve1", id, &params(&[("memory", "2048"), ("tags", "a;b")]), &[]).await.unwrap();
            c.resize_disk("pve1", id, "scsi0", 5).await.unwrap();
            c.start_vm("pve1", id).await.unwrap();
            (name, id)
        }));
    }
    let mut made = vec![];
    for t in tasks {
        made.push(t.await.unwrap());
    }
    let faults_seen = sim.request_log().iter().filter(|r| r.fault.is_some()).count();
    assert!(faults_seen > 0, "the fault injection did not strike; the test proves nothing");
    sim.set_faults(Faults::with_defaults()).unwrap();
    let vms = c.cluster_vms().await.unwrap();
    assert_eq!(vms.len(), 9, "{vms:?}");
    for (name, id) in &made {
        let vm = vms.iter().find(|v| v.vmid == *id).unwrap();
        assert_eq!(vm.name.as_deref(), Some(name.as_str()));
        assert!(vm.running());
        let cfg = c.vm_config("pve1", *id).await.unwrap().unwrap();
        assert_eq!(cfg.get("memory"), Some("2048"));
        assert!(cfg.get("scsi0").unwrap().contains("size=5G"), "{cfg:?}");
    }
    sim.set_faults(Faults {
        fail_5xx_pct: 15,
        reset_pct: 10,
        reset_after_pct: 50,
        lock_contention_pct: 10,
        latency_ms: 0,
    })
    .unwrap();
    for (_, id) in &made {
        c.destroy_vm("pve1", *id).await.unwrap();
    }
    sim.set_faults(Faults::with_defaults()).unwrap();
    let left: Vec<u32> = c.cluster_vms().await.unwrap().iter().map(|v| v.vmid).collect();
    assert_eq!(left, vec![9000]);
}

#[tokio::test]
async fn cancellation_ends_waits() {
    let (sim, _d) = sim_with(|_| {}).await;
    let cancel = CancellationToken::new();
    let c = client(&sim, token()).with_cancel(cancel.clone());
    template(&c, 9000).await;
    // Every request now hangs for a minute: only the cancellation can end the call.
    sim.set_faults(Faults { latency_ms: 60_000, ..Faults::with_defaults() }).unwrap();
    let start = c.clone();
    let h = tokio::spawn(async move { start.stop_vm("pve1", 9000).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(10), h).await.expect("cancel ends the wait").unwrap();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
}

#[tokio::test]
async fn cluster_listing_is_shared_while_fresh() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, token());
    template(&c, 9000).await;
    sim.clear_request_log();
    for _ in 0..5 {
        let l = c.cluster_vms_cached(Duration::from_secs(30)).await.unwrap();
        assert_eq!(l.len(), 1);
    }
    let n = sim.request_log().iter().filter(|r| r.path.ends_with("/cluster/resources")).count();
    assert_eq!(n, 1);
}
