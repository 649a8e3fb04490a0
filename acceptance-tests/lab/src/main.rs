//! `strata-lab`: bring the lab up and down, inspect it, run commands in nodes, lose and
//! replace nodes.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use strata_lab::{down_dir, Lab, PveMode, UpOptions};

#[derive(Parser)]
#[command(
    name = "strata-lab",
    about = "Debian machines booted with systemd plus the Proxmox simulator, on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args)]
struct DirArg {
    /// Lab directory (holds lab.json, keys, node data).
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// The stand-in k3s air-gap artifacts of every pinned version (built or cached); prints
    /// their JSON ({"dir", "versions": [{"version", "binary", "images", "sha256"}]}).
    K3sArtifacts,
    /// Create the nodes (and start pve-sim), then return with everything running.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Number of nodes (node1..nodeN).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Prefix for namespace and interface names (1-8 of a-z0-9); default derived from --dir.
        #[arg(long)]
        name: Option<String>,
        /// Do not start the Proxmox simulator ("pve": null in lab.json).
        #[arg(long)]
        no_pve: bool,
        /// pve-sim binary (default: next to this executable, else on PATH).
        #[arg(long, conflicts_with = "no_pve")]
        pve_sim_bin: Option<PathBuf>,
        /// Fail instead of running apt-get when packages are missing.
        #[arg(long)]
        no_install: bool,
        /// Directory with the Kubernetes stand-in binaries (default: beside this executable,
        /// else $STRATA_STANDINS_DIR / $CARGO_TARGET_DIR/debug; none found = no stand-ins).
        #[arg(long)]
        standins_dir: Option<PathBuf>,
        /// Do not offer the Kubernetes stand-in packages to the nodes.
        #[arg(long, conflicts_with = "standins_dir")]
        no_standins: bool,
        /// Bound in seconds on each readiness wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Stop everything `up` started and remove namespaces, links and mounts (idempotent).
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Show whether each node is reachable and its sshd alive.
    Status {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
    /// Build (or reuse) the image bundles for air-gapped nodes (OCI archives made from
    /// Debian's busybox-static, standing for registry.k8s.io/pause and docker.io busybox)
    /// and print their directory.
    Bundles {
        /// Copy the archives and bundles.json into this directory and print it instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Commands on one node.
    Node {
        #[command(subcommand)]
        command: NodeCmd,
    },
    /// pve-sim's guest hook: a VM's power change, applied to its guest node.
    #[command(hide = true)]
    Guest {
        #[command(flatten)]
        dir: DirArg,
        /// start, stop, shutdown, reboot, destroy, or file-read (the guest agent's).
        action: String,
        vmid: u32,
        /// Where pve-sim wrote guest.json and the NoCloud data.
        guest_dir: PathBuf,
        /// file-read: the file in the guest.
        path: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Run a command inside the node (the namespaces of its systemd).
    Exec {
        #[command(flatten)]
        dir: DirArg,
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Power loss: unplug the node's link, then kill all its processes at once; the disk is kept.
    Kill {
        #[command(flatten)]
        dir: DirArg,
        name: String,
    },
    /// Clean shutdown; the disk is kept.
    Stop {
        #[command(flatten)]
        dir: DirArg,
        name: String,
    },
    /// Boot a stopped or killed node from the same disk.
    Start {
        #[command(flatten)]
        dir: DirArg,
        name: String,
        /// Bound in seconds on each wait of the boot.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Replace by a blank machine (same address, new host key; known_hosts updated).
    Recreate {
        #[command(flatten)]
        dir: DirArg,
        name: String,
        /// Bound in seconds on each wait of the boot.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    // Printing into a closed pipe (`status | head`) should end quietly, not panic.
    default_sigpipe();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: setting the default disposition installs no Rust handler; done before any threads.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Up { dir, nodes, name, no_pve, pve_sim_bin, no_install, standins_dir, no_standins, timeout } => {
            let mut opts = UpOptions::new(dir.dir);
            opts.nodes = nodes;
            opts.name = name;
            opts.standins = match (no_standins, standins_dir) {
                (true, _) => strata_lab::StandinsMode::Disabled,
                (false, Some(d)) => strata_lab::StandinsMode::Dir(d),
                (false, None) => strata_lab::StandinsMode::Auto,
            };
            opts.pve = match (no_pve, pve_sim_bin) {
                (true, _) => PveMode::Disabled,
                (false, Some(p)) => PveMode::Binary(p),
                (false, None) => PveMode::Auto,
            };
            opts.install_packages = !no_install;
            opts.ready_timeout = std::time::Duration::from_secs(timeout);
            let lab = Lab::up(&opts)?;
            let info = lab.info();
            println!(
                "lab {} up in {} (bridge {}, subnet {})",
                info.name,
                info.dir.display(),
                info.bridge,
                info.subnet.as_deref().unwrap_or("?")
            );
            for n in lab.nodes() {
                println!("  {:<8} {:<14} {}", n.name, n.address, n.host_key_fingerprint.as_deref().unwrap_or(""));
            }
            match &info.pve {
                Some(p) => println!("  pve-sim  {}", p.endpoint),
                None => println!("  pve-sim  (not started)"),
            }
            println!("state: {}", info.dir.join("lab.json").display());
        }
        Cmd::Guest { dir, action, vmid, guest_dir: _, path: Some(path) } if action == "file-read" => {
            let bytes = strata_lab::guest::read_file(&dir.dir, vmid, &path)?;
            std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
        }
        Cmd::Guest { dir, action, vmid, guest_dir, path: _ } => {
            strata_lab::guest::handle(&dir.dir, &action, vmid, &guest_dir)?;
        }
        Cmd::Bundles { out } => {
            let set = strata_lab::bundles::build_bundles(&strata_lab::image::cache_root()?)?;
            let dir = match out {
                None => set.dir.clone(),
                Some(out) => {
                    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                    for b in &set.bundles {
                        let name = b.archive.file_name().context("an archive file name")?;
                        std::fs::copy(&b.archive, out.join(name))
                            .with_context(|| format!("copying {}", b.archive.display()))?;
                    }
                    std::fs::copy(set.dir.join("bundles.json"), out.join("bundles.json"))?;
                    out
                }
            };
            println!("{}", dir.display());
        }
        Cmd::K3sArtifacts => {
            let a = strata_lab::k3s::airgap_artifacts(&strata_lab::image::cache_root()?)?;
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
        Cmd::Down { dir } => {
            down_dir(&dir.dir)?;
            println!("lab in {} is down", dir.dir.display());
        }
        Cmd::Status { dir, json } => {
            let status = Lab::load(&dir.dir)?.status();
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "lab {} ({:?}) bridge {} subnet {}",
                    status.name,
                    status.state,
                    status.bridge,
                    status.subnet.as_deref().unwrap_or("-")
                );
                for n in &status.nodes {
                    println!(
                        "  {:<8} {:<14} {:<9} {:?} systemd {}",
                        n.name,
                        n.address,
                        if n.reachable { "reachable" } else { "DOWN" },
                        n.state,
                        if n.alive { "alive" } else { "dead" }
                    );
                }
                if let Some(p) = &status.pve {
                    println!(
                        "  pve-sim  {} pids {:?} {}",
                        p.endpoint.as_deref().unwrap_or("-"),
                        p.pids,
                        if p.alive && p.reachable { "up" } else { "DOWN" }
                    );
                }
            }
        }
        Cmd::Node { command: NodeCmd::Exec { dir, name, command } } => {
            let lab = Lab::load(&dir.dir)?;
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            let status =
                strata_lab::node::exec_command(lab.node(&name)?, &argv)?.status().context("running nsenter")?;
            // Propagate the command's exit code (128+N for a signal, like a shell).
            let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Cmd::Node { command: NodeCmd::Kill { dir, name } } => {
            let mut lab = Lab::load(&dir.dir)?;
            lab.kill_node(&name)?;
            println!("node {name} killed");
        }
        Cmd::Node { command: NodeCmd::Stop { dir, name } } => {
            Lab::load(&dir.dir)?.stop_node(&name)?;
            println!("node {name} stopped");
        }
        Cmd::Node { command: NodeCmd::Start { dir, name, timeout } } => {
            Lab::load(&dir.dir)?.start_node(&name, std::time::Duration::from_secs(timeout))?;
            println!("node {name} started");
        }
        Cmd::Node { command: NodeCmd::Recreate { dir, name, timeout } } => {
            let mut lab = Lab::load(&dir.dir)?;
            lab.recreate_node(&name, std::time::Duration::from_secs(timeout))?;
            println!("node {name} recreated: {}", lab.node(&name)?.host_key_fingerprint.as_deref().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}
