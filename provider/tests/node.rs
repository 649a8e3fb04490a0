//! `Node` against a real OpenSSH server on loopback: every step runs under the
//! operation's cancellation token, and a stopped command dies on the node.

#[path = "../ssh-client/tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{keygen, Sshd, SshdOptions};
use strata_provider::framework::Context;
use strata_provider::node::{Node, SshAccess};
use strata_provider::provider::ProviderData;
use strata_provider::resources::connection::{ConnectionModel, SshSettings};
use tokio_util::sync::CancellationToken;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("strata-node-test-").tempdir().unwrap()
}

/// Processes on this machine (where the test sshd runs) whose command line is `args`.
fn processes(args: &str) -> String {
    let out = Command::new("ps").args(["-eo", "pid,args"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().split_once(' ').is_some_and(|(_, a)| a == args))
        .collect::<Vec<_>>()
        .join("\n")
}

fn context(sshd: &Sshd, key: &common::KeyPair, operation: &'static str) -> (Context, ConnectionModel) {
    let data = ProviderData {
        ssh: SshAccess::new(SshSettings::default()),
        proxmox: strata_provider::proxmox::ProxmoxAccess::NotConfigured,
    };
    let ctx =
        Context::new(CancellationToken::new(), Some(Arc::new(data))).for_operation("strata_nfs_export", operation);
    let conn = ConnectionModel {
        host: "127.0.0.1".into(),
        port: Some(sshd.port.into()),
        settings: SshSettings {
            private_key_file: Some(key.private_path.display().to_string()),
            known_hosts: Some(sshd.known_hosts_line()),
            ..Default::default()
        },
    };
    (ctx, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_command_is_killed_on_the_node_when_the_operation_times_out() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let (ctx, conn) = context(&sshd, &key, "create");
    let node = Node::connect(&ctx, &conn).await.unwrap();
    // Unique per run, so other runs' leftovers cannot confuse the check.
    let hung = format!("sleep 6{}", sshd.port);
    let timer = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            ctx.stop("timed out after 2s (timeouts.create)");
        })
    };
    let started = Instant::now();
    // A child of the shell, like apt's dpkg: the whole tree must go.
    let err = node.run("reloading nfs-ganesha", &format!("{hung} & wait; echo done")).await.unwrap_err();
    timer.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let msg = format!("{err:#}");
    for part in [
        "strata_nfs_export",
        "reloading nfs-ganesha",
        &format!("root@127.0.0.1:{}", sshd.port),
        "timed out after 2s (timeouts.create)",
    ] {
        assert!(msg.contains(part), "error names {part:?}: {msg}");
    }
    let mut left = processes(&hung);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = processes(&hung);
    }
    assert_eq!(left, "", "the hung command survived on the node");

    // Once stopped, nothing more runs for this operation: no upload, no command.
    let marker = keys.path().join("written-after-stop");
    let err = node.write_file(marker.to_str().unwrap(), b"x", 0o644).await.unwrap_err();
    assert!(format!("{err:#}").contains("timed out after 2s"), "{err:#}");
    assert!(!marker.exists(), "nothing was written after the stop");
    let err = node.read_file("/etc/hostname").await.unwrap_err();
    assert!(format!("{err:#}").contains("reading /etc/hostname"), "{err:#}");

    // Putting things back still works after the stop, on its own token.
    let cleanup = node.for_cleanup();
    cleanup.cleanup(cleanup.write_file(marker.to_str().unwrap(), b"restored", 0o644)).await.unwrap();
    assert_eq!(std::fs::read(&marker).unwrap(), b"restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_names_the_cancel_and_steps_work_while_not_stopped() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let (ctx, conn) = context(&sshd, &key, "update");
    let node = Node::connect(&ctx, &conn).await.unwrap();
    let file = keys.path().join("dir/file");
    let path = file.to_str().unwrap();
    node.write_file(path, b"hello", 0o600).await.unwrap();
    assert_eq!(node.read_file(path).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(node.run_ok("echoing", "echo hi").await.unwrap(), "hi\n");
    let err = node.run_ok("failing on purpose", "echo oops >&2; exit 3").await.unwrap_err().to_string();
    assert!(err.contains("failing on purpose") && err.contains("exit 3") && err.contains("oops"), "{err}");

    let canceller = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // What the framework records on StopProvider.
            ctx.stop("cancelled: Terraform asked the provider to stop");
        })
    };
    let err = node.run("installing packages", &format!("exec sleep 7{}", sshd.port)).await.unwrap_err();
    canceller.await.unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("installing packages") && msg.contains("cancelled: Terraform asked"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_known_hosts_is_checked_even_when_the_provider_ignores_host_keys() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let other = keygen(keys.path(), "other_host", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let defaults = SshSettings { insecure_ignore_host_key: Some(true), ..Default::default() };
    let data =
        ProviderData { ssh: SshAccess::new(defaults), proxmox: strata_provider::proxmox::ProxmoxAccess::NotConfigured };
    let ctx = Context::new(CancellationToken::new(), Some(Arc::new(data))).for_operation("strata_nfs_export", "create");
    let conn = |known_hosts: String| ConnectionModel {
        host: "127.0.0.1".into(),
        port: Some(sshd.port.into()),
        settings: SshSettings {
            private_key_file: Some(key.private_path.display().to_string()),
            known_hosts: Some(known_hosts),
            ..Default::default()
        },
    };
    let marker = keys.path().join("ran");
    let wrong = format!("[127.0.0.1]:{} {}\n", sshd.port, other.public);
    let node = Node::connect(&ctx, &conn(wrong)).await.unwrap();
    let err = format!("{:#}", node.run("touching", &format!("touch {}", marker.display())).await.unwrap_err());
    assert!(err.contains("host key verification failed"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", sshd.port)), "names the host: {err}");
    assert!(err.contains(&sshd.host_key.fingerprint) && err.contains(&other.fingerprint), "names both keys: {err}");
    assert!(!marker.exists(), "nothing ran on the node");
    // The right known_hosts connects.
    let node = Node::connect(&ctx, &conn(sshd.known_hosts_line())).await.unwrap();
    node.run_ok("touching", &format!("touch {}", marker.display())).await.unwrap();
    assert!(marker.exists());
}
