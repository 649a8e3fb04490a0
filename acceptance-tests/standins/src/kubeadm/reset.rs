//! `kubeadm reset -f`: stops the kubelet and the static pods, removes what init/join
//! wrote (kubeconfigs, manifests, the certificates directory, the kubelet's state).

use anyhow::{bail, Result};

use super::files;

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[arg(long = "cert-dir", default_value = "/etc/kubernetes/pki")]
    pub cert_dir: String,
    #[arg(long = "cri-socket")]
    pub cri_socket: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
}

fn empty_dir(dir: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let _ = if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
}

pub fn run(a: ResetArgs) -> Result<()> {
    if !a.force {
        use std::io::BufRead;
        println!("[reset] Are you sure you want to proceed? [y/N]: ");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y") {
            bail!("aborted reset operation");
        }
    }
    println!("[preflight] Running pre-flight checks");
    println!("[reset] Stopping the kubelet service");
    let _ = std::process::Command::new("systemctl").args(["stop", "kubelet.service"]).status();
    // The "containers": the static pods the stand-in kubelet started as systemd units.
    println!("[reset] Removing Kubernetes-managed containers");
    let _ = std::process::Command::new("systemctl").args(["stop", crate::kubelet::APISERVER_UNIT]).status();
    let k = files::kdir();
    let dirs = [format!("{k}/manifests"), files::KUBELET_DIR.to_string(), a.cert_dir.clone()];
    println!("[reset] Deleting contents of directories: {dirs:?}");
    for d in &dirs {
        empty_dir(d);
    }
    let confs: Vec<String> = [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ]
    .iter()
    .map(|f| format!("{k}/{f}"))
    .collect();
    println!("[reset] Deleting files: {confs:?}");
    for f in &confs {
        let _ = std::fs::remove_file(f);
    }
    println!("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d");
    Ok(())
}
