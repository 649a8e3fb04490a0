//! The provider's node services on a real Debian node booted with systemd (a lab
//! systemd node, air-gapped, with the lab's local apt repository as its only source):
//! packages, files written only after a validator accepted them, units and drop-ins.

use std::sync::Arc;

use strata_lab::{LabGuard, PveMode, UpOptions};
use strata_provider::framework::Context;
use strata_provider::node::services::UnitAction;
use strata_provider::node::{Node, SshAccess};
use strata_provider::provider::ProviderData;
use strata_provider::resources::connection::{ConnectionModel, SshSettings};
use tokio_util::sync::CancellationToken;

fn lab(dir: &std::path::Path) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)")
}

async fn node(lab: &LabGuard) -> Node {
    let ssh = &lab.info().ssh;
    node_at(lab, None, &ssh.known_hosts_file).await
}

async fn node_at(lab: &LabGuard, port: Option<i64>, known_hosts: &std::path::Path) -> Node {
    let data = ProviderData {
        ssh: SshAccess::new(SshSettings::default()),
        proxmox: strata_provider::proxmox::ProxmoxAccess::NotConfigured,
    };
    let ctx = Context::new(CancellationToken::new(), Some(Arc::new(data))).for_operation("strata_test", "create");
    let ssh = &lab.info().ssh;
    let conn = ConnectionModel {
        host: lab.nodes()[0].address.clone(),
        port,
        settings: SshSettings {
            private_key_file: Some(ssh.private_key_file.display().to_string()),
            known_hosts_file: Some(known_hosts.display().to_string()),
            ..Default::default()
        },
    };
    Node::connect(&ctx, &conn).await.unwrap()
}

fn sh(lab: &LabGuard, script: &str) -> (i32, String) {
    let out = lab.exec("node1", &["sh", "-c", script]).expect("node exec");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_validated_files_units_and_drop_ins_on_a_systemd_node() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"));
    let n = node(&lab).await;
    n.require_systemd().await.unwrap();

    // A package from the local repository (the node has no route out).
    n.install_packages(&["haproxy"]).await.unwrap();
    assert_eq!(sh(&lab, "dpkg-query -W -f='${Status}' haproxy").1, "install ok installed");
    n.install_packages(&["haproxy"]).await.unwrap();

    // A configuration haproxy refuses is never installed; one it accepts is.
    let cfg = "/etc/haproxy/haproxy.cfg";
    let before = sh(&lab, &format!("cat {cfg}")).1;
    let validator = Some("haproxy -c -q -f {}");
    let bad = n.write_validated(cfg, b"frontend x\n  bind :80\n  use_backend nowhere\n", 0o644, validator).await;
    let e = bad.unwrap_err().to_string();
    assert!(e.contains("refused by its validator") && e.contains(cfg), "{e}");
    assert_eq!(sh(&lab, &format!("cat {cfg}")).1, before, "a refused file must leave the old one");
    assert_eq!(sh(&lab, "ls -A /etc/haproxy | grep -c strata-candidate").1.trim(), "0");
    let good = format!("{before}\nlisten stats\n  bind 127.0.0.1:8404\n  mode http\n");
    assert!(n.write_validated(cfg, good.as_bytes(), 0o644, validator).await.unwrap());
    assert!(!n.write_validated(cfg, good.as_bytes(), 0o644, validator).await.unwrap(), "unchanged is no change");

    // Units: running per systemd, reload keeps the main pid, stop is a stop.
    n.ensure_running("haproxy.service", None).await.unwrap();
    let state = n.unit_state("haproxy.service").await.unwrap();
    assert!(state.is_active() && state.enabled == "enabled", "{state:?}");
    let pid = sh(&lab, "systemctl show -p MainPID --value haproxy").1;
    n.unit("haproxy.service", UnitAction::Reload).await.unwrap();
    assert_eq!(sh(&lab, "systemctl show -p MainPID --value haproxy").1, pid, "a reload must not restart");
    n.unit("haproxy.service", UnitAction::Stop).await.unwrap();
    n.unit("haproxy.service", UnitAction::TryRestart).await.unwrap();
    assert_eq!(sh(&lab, "systemctl is-active haproxy").1.trim(), "inactive", "try-restart started a stopped unit");

    // A drop-in reaches systemd (daemon-reload) and is seen by the unit.
    assert!(n.drop_in("haproxy.service", "50-strata", "[Service]\nEnvironment=STRATA_TEST=1\n").await.unwrap());
    assert!(sh(&lab, "systemctl show -p Environment --value haproxy").1.contains("STRATA_TEST=1"));
    assert!(!n.drop_in("haproxy.service", "50-strata", "[Service]\nEnvironment=STRATA_TEST=1\n").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_systemd_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"));
    // The same machine seen through a second sshd (port 2222) in a mount namespace where
    // /run/systemd is an empty tmpfs: to a client, a host whose init is not systemd.
    let start = "setsid -f unshare --mount --propagation private sh -c \
                 'mount -t tmpfs none /run/systemd && exec /usr/sbin/sshd -D -p 2222 -o PidFile=none' \
                 </dev/null >/dev/null 2>&1; \
                 for i in $(seq 50); do ss -ltn | grep -q ':2222 ' && exit 0; sleep 0.1; done; exit 1";
    assert_eq!(sh(&lab, start).0, 0, "second sshd did not start");
    let info = &lab.nodes()[0];
    let known_hosts = tmp.path().join("known_hosts_2222");
    let line = format!("[{}]:2222 {}\n", info.address, info.host_public_key.as_deref().unwrap());
    std::fs::write(&known_hosts, line).unwrap();
    let n = node_at(&lab, Some(2222), &known_hosts).await;
    let e = n.require_systemd().await.unwrap_err().to_string();
    assert!(e.contains("does not run systemd") && e.contains(&lab.nodes()[0].address), "{e}");
}
