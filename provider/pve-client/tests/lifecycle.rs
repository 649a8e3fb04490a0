//! Migration, pools, shutdown, guest-agent answers and request logging against
//! pve-sim (the named stand-in for Proxmox VE), in-process.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pve_sim::{SimConfig, SimHandle};
use strata_pve_client::vm::CreateSpec;
use strata_pve_client::{Auth, Client, ClientConfig, Secret};

const TOKEN: &str = "root@pam!strata=s3cr3t-token-value";

async fn sim_with(f: impl FnOnce(&mut SimConfig)) -> (SimHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path(), TOKEN);
    cfg.task_ms = 30;
    cfg.nodes = vec!["pve1".into(), "pve2".into()];
    f(&mut cfg);
    (pve_sim::start(cfg).await.unwrap(), dir)
}

fn client(sim: &SimHandle, auth: Auth) -> Client {
    let mut cfg = ClientConfig::new(sim.endpoint(), auth);
    cfg.ca_cert_pem = Some(sim.ca_cert_pem().to_string());
    Client::new(cfg).unwrap()
}

async fn vm(c: &Client, vmid: u32, extra: &[(&str, &str)]) {
    let mut params: Vec<(String, String)> =
        vec![("name".into(), format!("vm{vmid}")), ("scsi0".into(), "local-lvm:4".into())];
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    c.create_vm(&CreateSpec { node: "pve1".into(), vmid, params }).await.unwrap();
}

async fn where_is(c: &Client, vmid: u32) -> (String, bool, Option<String>) {
    let v = c.cluster_vms().await.unwrap().into_iter().find(|v| v.vmid == vmid).unwrap();
    (v.node.clone(), v.running(), v.pool.clone())
}

#[tokio::test]
async fn migrates_running_vms_live_with_local_disks_and_stopped_ones_offline() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, Auth::Token(Secret::new(TOKEN)));
    vm(&c, 100, &[]).await;
    c.start_vm("pve1", 100).await.unwrap();
    c.migrate_vm("pve1", 100, "pve2", true).await.unwrap();
    assert_eq!(where_is(&c, 100).await, ("pve2".into(), true, None));
    let cfg = c.vm_config("pve2", 100).await.unwrap().unwrap();
    assert!(cfg.get("scsi0").unwrap().starts_with("local-lvm:vm-100-disk-0"), "disks kept: {cfg:?}");
    vm(&c, 101, &[]).await;
    c.migrate_vm("pve1", 101, "pve2", false).await.unwrap();
    assert_eq!(where_is(&c, 101).await, ("pve2".into(), false, None));
    let migrations = sim.request_log().iter().filter(|r| r.path.ends_with("/migrate")).count();
    assert_eq!(migrations, 2, "one request per migration");
    // A running VM without `online` is refused by Proxmox, and the error says so.
    c.start_vm("pve2", 101).await.unwrap();
    let e = c.migrate_vm("pve2", 101, "pve1", false).await.unwrap_err();
    assert!(e.to_string().contains("can't migrate running VM without --online"), "{e}");
}

#[tokio::test]
async fn migrations_whose_answers_are_lost_are_never_started_twice() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, Auth::Token(Secret::new(TOKEN)));
    vm(&c, 105, &[]).await;
    c.start_vm("pve1", 105).await.unwrap();
    // A third of the requests lose their answer, writes after they were carried out.
    sim.set_faults(pve_sim::Faults { reset_pct: 30, reset_after_pct: 100, ..Default::default() }).unwrap();
    let lost = |sim: &SimHandle| {
        let log = sim.request_log();
        log.iter().filter(|r| r.path.ends_with("/migrate") && r.fault.as_deref() == Some("reset-after")).count()
    };
    // Migrate back and forth until some answers were lost (bounded).
    let mut node = "pve1";
    let mut migrations = 0;
    while migrations < 20 && (migrations < 4 || lost(&sim) < 2 || node != "pve1") {
        let target = if node == "pve1" { "pve2" } else { "pve1" };
        c.migrate_vm(node, 105, target, true).await.unwrap();
        node = target;
        migrations += 1;
    }
    sim.set_faults(pve_sim::Faults::default()).unwrap();
    assert!(lost(&sim) > 0, "no migration answer was lost; the test proves nothing");
    assert_eq!(where_is(&c, 105).await.0, node);
    let state = sim.state_json();
    let tasks = state["tasks"].as_object().unwrap().values().filter(|t| t["type"] == "qmigrate").count();
    assert_eq!(tasks, migrations, "one migration task per migration");
}

#[tokio::test]
async fn pool_membership_moves_and_is_removed_repeatably() {
    let (sim, _d) = sim_with(|_| {}).await;
    let c = client(&sim, Auth::Token(Secret::new(TOKEN)));
    for p in ["a", "b"] {
        c.write(
            reqwest::Method::POST,
            "/pools",
            &[("poolid", p.to_string())],
            strata_pve_client::client::Idempotent::No,
        )
        .await
        .unwrap();
    }
    vm(&c, 110, &[("pool", "a")]).await;
    c.set_pool(110, Some("a"), Some("b")).await.unwrap();
    assert_eq!(where_is(&c, 110).await.2.as_deref(), Some("b"));
    c.set_pool(110, Some("a"), Some("b")).await.unwrap();
    c.set_pool(110, Some("b"), None).await.unwrap();
    assert_eq!(where_is(&c, 110).await.2, None);
    c.set_pool(110, Some("b"), None).await.unwrap();
}

#[tokio::test]
async fn shutdown_is_clean_when_the_guest_complies_and_forced_after_the_timeout() {
    let (sim, _d) = sim_with(|c| c.guest_shutdown_ms = 1500).await;
    let c = client(&sim, Auth::Token(Secret::new(TOKEN)));
    vm(&c, 120, &[]).await;
    c.start_vm("pve1", 120).await.unwrap();
    c.shutdown_vm("pve1", 120, Duration::from_secs(1)).await.unwrap();
    assert!(!where_is(&c, 120).await.1, "stopped after the timeout (forceStop)");
    c.start_vm("pve1", 120).await.unwrap();
    c.shutdown_vm("pve1", 120, Duration::from_secs(10)).await.unwrap();
    assert!(!where_is(&c, 120).await.1);
    // Already stopped: nothing to do, no error.
    c.shutdown_vm("pve1", 120, Duration::from_secs(10)).await.unwrap();
    let log = sim.request_log();
    assert!(log.iter().any(|r| r.path.ends_with("/status/shutdown")));
    assert!(!log.iter().any(|r| r.path.ends_with("/status/stop")), "never a hard stop request");
}

#[tokio::test]
async fn guest_agent_absence_is_none_and_other_failures_are_errors() {
    let (sim, _d) = sim_with(|c| c.agent_boot_ms = 60_000).await;
    let c = client(&sim, Auth::Token(Secret::new(TOKEN)));
    vm(&c, 130, &[("agent", "1"), ("net0", "virtio,bridge=vmbr0")]).await;
    assert_eq!(c.agent_ipv4("pve1", 130).await.unwrap(), None, "stopped VM");
    c.start_vm("pve1", 130).await.unwrap();
    assert_eq!(c.agent_ipv4("pve1", 130).await.unwrap(), None, "agent still booting");
    vm(&c, 131, &[]).await;
    c.start_vm("pve1", 131).await.unwrap();
    assert_eq!(c.agent_ipv4("pve1", 131).await.unwrap(), None, "no agent configured");
    // A VM that is not on that node is an error, not "no agent".
    assert!(c.agent_ipv4("pve2", 131).await.is_err());
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_request_is_logged_at_debug_without_secrets() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (sim, _d) = sim_with(|c| {
                c.user = Some("root@pam".into());
                c.password = Some("pa55-w0rd-value".into());
            })
            .await;
            let t = client(&sim, Auth::Token(Secret::new(TOKEN)));
            vm(&t, 140, &[]).await;
            let p =
                client(&sim, Auth::Password { username: "root@pam".into(), password: Secret::new("pa55-w0rd-value") });
            p.start_vm("pve1", 140).await.unwrap();
            p.version().await.unwrap();
        })
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("Proxmox request"), "{text}");
    assert!(text.contains("path=\"/version\"") || text.contains("path=/version"), "{text}");
    assert!(text.contains("status=200") && text.contains("duration_ms="), "{text}");
    assert!(text.contains("method=POST"), "{text}");
    for secret in ["s3cr3t-token-value", "pa55-w0rd-value", "PVE:root@pam:", "PVEAuthCookie", "CSRFPrevention"] {
        assert!(!text.contains(secret), "log leaks {secret}:\n{text}");
    }
}
