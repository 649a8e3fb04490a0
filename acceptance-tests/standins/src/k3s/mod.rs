//! STAND-IN k3s: `k3s server`, `k3s agent`, `k3s etcd-snapshot`, `k3s kubectl`,
//! `k3s crictl`, `k3s --version`, with REAL k3s's interface (flags, config.yaml, tokens,
//! file layout, supervisor endpoints; see k3s-interface.md and README.md).
//! What runs for real: etcd (Debian's, as a child), containerd (Debian's, as a child,
//! with the air-gap images imported), TLS everywhere, real kubectl against the stand-in
//! API server (in-process). No pods run, no flannel, no kine/SQLite, no packaged
//! components.
//!
//! Split along k3s's seams: [`config`] (flags + config.yaml), [`token`], [`bootstrap`]
//! (encrypted CA data in etcd), [`etcd`] (embedded etcd), [`supervisor`] (the extra
//! paths on 6443), [`containerd`] (agent runtime, registries, image import), [`node`]
//! (Node registration and heartbeat), [`snapshot`], [`server`], [`agent`].

pub mod agent;
pub mod bootstrap;
pub mod config;
pub mod containerd;
pub mod etcd;
pub mod node;
pub mod server;
pub mod snapshot;
pub mod supervisor;
pub mod token;
pub mod version;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub const DATA_DIR: &str = "/var/lib/rancher/k3s";
pub const CONFIG_FILE: &str = "/etc/rancher/k3s/config.yaml";
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
pub const REGISTRIES: &str = "/etc/rancher/k3s/registries.yaml";

const HELP: &str = "NAME:
   k3s - Kubernetes, but small and simple (Strata STAND-IN)

USAGE:
   k3s [global options] command [command options] [arguments...]

COMMANDS:
   server         Run management server
   agent          Run node agent
   kubectl        Run kubectl
   crictl         Run crictl
   etcd-snapshot  Manage etcd snapshots
";

pub fn main(argv: Vec<String>) -> i32 {
    let version = match version::current() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("FATA[0000] {e:#}");
            return 1;
        }
    };
    let args = &argv[1..];
    let Some(cmd) = args.first() else {
        print!("{HELP}");
        return 0;
    };
    match cmd.as_str() {
        "--version" | "-v" | "version" => {
            println!("k3s version {version} (standin)\ngo version go1.24.0");
            0
        }
        "--help" | "-h" | "help" => {
            print!("{HELP}");
            0
        }
        "kubectl" => kubectl(&args[1..]),
        "crictl" => {
            let mut a = vec!["crictl".to_string(), "-r".into(), format!("unix://{}", containerd::SOCKET)];
            a.extend(args[1..].iter().cloned());
            crate::cri_cli::main(a)
        }
        "server" | "agent" | "etcd-snapshot" => {
            let command = match cmd.as_str() {
                "server" => config::Command::Server,
                "agent" => config::Command::Agent,
                _ => config::Command::EtcdSnapshot,
            };
            let cfg = match config::load(command, &args[1..], Path::new(CONFIG_FILE)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e:#}");
                    return 1;
                }
            };
            let r = match command {
                config::Command::Server => crate::block_on(server::run(cfg, version)),
                config::Command::Agent => crate::block_on(agent::run(cfg, version)),
                config::Command::EtcdSnapshot => etcd_snapshot(cfg),
            };
            match r {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("FATA[0000] {e:#}");
                    1
                }
            }
        }
        other => {
            eprintln!("Incorrect Usage: No help topic for '{other}'");
            1
        }
    }
}

fn kubectl(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new("kubectl");
    c.args(args);
    if std::env::var_os("KUBECONFIG").is_none() {
        c.env("KUBECONFIG", KUBECONFIG);
    }
    let e = c.exec();
    eprintln!("FATA[0000] running kubectl: {e} (the stand-in k3s runs the kubectl on PATH)");
    1
}

fn etcd_snapshot(cfg: config::Config) -> Result<i32> {
    let data = PathBuf::from(cfg.string_or("data-dir", DATA_DIR));
    let p = etcd::EtcdPaths::new(&data.join("server"));
    let dir = cfg
        .str("dir")
        .or(cfg.str("etcd-snapshot-dir"))
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join("server/db/snapshots"));
    let node = node_name(&cfg);
    match cfg.args.first().map(String::as_str).unwrap_or("save") {
        "save" => {
            let base = cfg.str("name").or(cfg.str("etcd-snapshot-name")).unwrap_or("on-demand");
            let f = snapshot::save(&p, &dir, base, &node)?;
            eprintln!("I Snapshot {} saved.", f.file_name().unwrap_or_default().to_string_lossy());
            Ok(0)
        }
        "ls" | "list" | "l" => {
            print!("{}", snapshot::ls_table(&dir));
            Ok(0)
        }
        "prune" => {
            let keep = cfg.int_or("etcd-snapshot-retention", 5).max(0) as usize;
            let base = cfg.str("name").or(cfg.str("etcd-snapshot-name")).unwrap_or("on-demand");
            for f in snapshot::prune(&dir, base, &node, keep)? {
                eprintln!("I Removing local snapshot {}", f.display());
            }
            Ok(0)
        }
        other => bail!("etcd-snapshot: unknown subcommand {other:?} (save, ls, prune)"),
    }
}

pub fn node_name(cfg: &config::Config) -> String {
    cfg.str("node-name").map(str::to_string).unwrap_or_else(crate::kubeadm::config::default_node_name)
}

pub fn node_ip(cfg: &config::Config) -> Result<String> {
    match cfg.list("node-ip").first() {
        Some(ip) => {
            ip.parse::<std::net::IpAddr>().with_context(|| format!("invalid node-ip {ip:?}"))?;
            Ok(ip.clone())
        }
        None => crate::kubeadm::init::detect_address().context("no node-ip given and no global address found"),
    }
}

/// `READY=1` to `$NOTIFY_SOCKET` (systemd Type=notify).
pub fn sd_notify_ready() {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let p = path.to_string_lossy().into_owned();
    let r = if let Some(abs) = p.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes())
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &p)
    };
    if let Err(e) = r {
        eprintln!("W sd_notify: {e}");
    }
}

/// A client for the supervisor at `url`: without CA (for `/cacerts` only) or with it.
pub fn http(ca_pem: Option<&[u8]>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    b = match ca_pem {
        None => b.danger_accept_invalid_certs(true),
        Some(pem) => b.tls_built_in_root_certs(false).add_root_certificate(reqwest::Certificate::from_pem(pem)?),
    };
    Ok(b.build()?)
}

/// GET `/cacerts` from `server` and check it against the token's CA hash; the CA bytes.
pub async fn fetch_cacerts(server: &str, tok: &token::Token) -> Result<Vec<u8>> {
    let url = format!("{}/cacerts", server.trim_end_matches('/'));
    let mut last = None;
    for _ in 0..30 {
        match http(None)?.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                let ca = r.bytes().await?.to_vec();
                tok.check_ca(&ca).with_context(|| format!("failed to validate the server CA from {url}"))?;
                return Ok(ca);
            }
            Ok(r) => last = Some(anyhow::anyhow!("{url}: {}", r.status())),
            Err(e) => last = Some(anyhow::anyhow!("{url}: {e}")),
        }
        eprintln!("I Waiting for the server at {server}: {:#}", last.as_ref().unwrap());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(last.unwrap()).context("failed to get CA certs")
}

/// Waits for SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut t = signal(SignalKind::terminate()).expect("signal");
    let mut i = signal(SignalKind::interrupt()).expect("signal");
    tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
}

/// SIGTERM to a child, then up to 10 s for it to exit (SIGKILL after).
pub async fn stop_child(name: &str, child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            eprintln!("W {name} did not stop within 10s; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Stops processes left from an earlier run of this k3s (its etcd or containerd, found by
/// a command-line argument only they have), e.g. after the stand-in itself was killed:
/// real k3s embeds them, so they die with it.
pub fn kill_stale(program: &str, marker: &str) {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_prog = args.first().is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == program));
        if is_prog && args.iter().any(|a| a.contains(marker)) {
            pids.push(pid);
        }
    }
    for pid in &pids {
        eprintln!("W stopping {program} (pid {pid}) left from an earlier run");
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    }
    for _ in 0..100 {
        if pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
}
