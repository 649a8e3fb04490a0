//! One module per kind of task, each implementing [`crate::task::Task`].

pub mod apt_repository;
pub mod containerd;
pub mod crictl;
pub mod directory;
pub mod file;
pub mod kmod;
pub mod kubelet;
pub mod package;
pub mod service;
pub mod swap;
pub mod sysctl;

/// `containerd` -> `containerd.service`; names with a unit suffix are kept.
pub fn unit_name(name: &str) -> String {
    const SUFFIXES: [&str; 7] = [".service", ".socket", ".timer", ".swap", ".mount", ".target", ".path"];
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::task::Context;
    use std::fs;

    /// A temp root with accounts, so owner lookups work.
    pub fn root() -> (tempfile::TempDir, Context) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        fs::write(d.path().join("etc/group"), "root:x:0:\n").unwrap();
        let ctx = Context::simulated(d.path()).unwrap();
        (d, ctx)
    }
}
