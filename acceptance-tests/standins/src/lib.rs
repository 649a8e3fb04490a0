//! **Stand-ins** for kubeadm, kubelet and kube-apiserver, for the Strata lab only (kubectl
//! is the real one, Debian's, which the lab packages).
//!
//! The real Kubernetes tools cannot be installed on the lab machines, so these binaries
//! take their place. They are not Kubernetes: no pods, no scheduler, no controllers. What
//! they do is present the real tools' interface (command lines, kubeadm v1beta4 files,
//! file layout, REST endpoints) and check their input the way the real tools do, against
//! the real parts of the lab (containerd, etcd, systemd, the PKI on disk). README.md lists
//! exactly what is checked for real and what is not.

pub mod apiclient;
pub mod apiserver;
pub mod cri;
pub mod cri_cli;
pub mod duration;
pub mod etcd;
pub mod jws;
pub mod k3s;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubelet;
pub mod kubelet_config;
pub mod pki;
pub mod record;
pub mod version;

/// Runs an async entry point on a small runtime (the tools are short-lived or light).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
