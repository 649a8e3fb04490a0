//! Finds (building if needed) the Kubernetes stand-in binaries the lab packages.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::provider::target_dir;

/// The directory holding freshly built `kubeadm`, `kubelet` and `kube-apiserver`
/// stand-ins; pass it as `UpOptions::standins = StandinsMode::Dir(..)`.
pub fn standins_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Through cargo so the binaries match the sources under test; a no-op after `make build`.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "strata-standins", "--bins"])
            .status()
            .expect("running cargo build for the stand-ins");
        assert!(status.success(), "building strata-standins failed");
        target_dir().join("debug")
    })
    .clone()
}
