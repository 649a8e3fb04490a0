//! The `strata-agent` build a node-facing resource uploads: which file, for which
//! architecture, and whether it can run on a bare node (no dynamic dependencies).
//! Checked before anything is uploaded, so a node of another architecture gets an
//! error naming it instead of an agent that cannot start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use goblin::elf::{header, Elf};
use sha2::{Digest, Sha256};

/// An agent executable read from disk.
pub struct AgentBinary {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sha256: String,
    /// The architecture as `uname -m` prints it, e.g. `x86_64`, `aarch64`.
    pub arch: &'static str,
    /// Whether it needs a dynamic loader or shared libraries on the node.
    pub dynamic: bool,
}

/// `uname -m` names for an ELF machine; `None` for one the agent is not built for.
fn arch_of(machine: u16) -> Option<&'static str> {
    match machine {
        header::EM_X86_64 => Some("x86_64"),
        header::EM_AARCH64 => Some("aarch64"),
        header::EM_RISCV => Some("riscv64"),
        header::EM_PPC64 => Some("ppc64le"),
        header::EM_S390 => Some("s390x"),
        _ => None,
    }
}

impl AgentBinary {
    /// Reads and inspects an agent executable.
    pub fn load(path: &Path) -> Result<AgentBinary, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the strata-agent binary at {}: {e}", path.display()))?;
        let elf = Elf::parse(&bytes).map_err(|e| format!("{} is not a Linux executable (ELF): {e}", path.display()))?;
        let arch = arch_of(elf.header.e_machine).ok_or_else(|| {
            format!("{} is built for an unsupported machine (ELF e_machine {})", path.display(), elf.header.e_machine)
        })?;
        let dynamic = elf.interpreter.is_some() || !elf.libraries.is_empty();
        drop(elf);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(AgentBinary { path: path.to_path_buf(), bytes, sha256, arch, dynamic })
    }

    /// Refuses a node whose `uname -m` is not what this build runs on, before upload.
    pub fn check_node(&self, host: &str, node_arch: &str) -> Result<(), String> {
        let node_arch = node_arch.trim();
        // Debian and Proxmox call x86_64 "amd64" and aarch64 "arm64" in package names.
        let same =
            node_arch == self.arch || matches!((node_arch, self.arch), ("amd64", "x86_64") | ("arm64", "aarch64"));
        if same {
            Ok(())
        } else {
            Err(format!(
                "{host} is a {node_arch} machine, but the strata-agent at {} is built for {}. Build the agent for \
                 {node_arch} and point the resource's `agent_binary` at it.",
                self.path.display(),
                self.arch
            ))
        }
    }
}

/// What the static agent build is called beside the provider: `make build` installs it
/// as `strata-agent-static` next to the debug provider (see
/// scripts/build-agent-static.sh), and the release zip ships it under the same name next
/// to `terraform-provider-strata_vVERSION` (see scripts/release.sh), so a provider
/// installed by `terraform init` finds it in its own package directory.
pub const STATIC_AGENT_NAME: &str = "strata-agent-static";

/// The agent beside a provider executable in `dir`: the static build when present, else
/// (a plain `cargo build` tree) `strata-agent`, which needs the node's glibc to be
/// compatible.
pub fn agent_beside(dir: &Path) -> PathBuf {
    let static_build = dir.join(STATIC_AGENT_NAME);
    if static_build.exists() {
        static_build
    } else {
        dir.join("strata-agent")
    }
}

/// The build this provider ships: `$STRATA_AGENT_BINARY`, else [`agent_beside`] the
/// provider's own executable (a cargo target directory, or the package directory
/// `terraform init` unpacked the release zip into).
/// Read and inspected once per provider process.
pub fn shipped() -> Result<Arc<AgentBinary>, String> {
    static AGENT: OnceLock<Result<Arc<AgentBinary>, String>> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            let path = match std::env::var_os("STRATA_AGENT_BINARY") {
                Some(p) => PathBuf::from(p),
                None => {
                    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                    agent_beside(exe.parent().ok_or("provider executable has no directory")?)
                }
            };
            AgentBinary::load(&path).map(Arc::new).map_err(|e| format!("{e}; set STRATA_AGENT_BINARY"))
        })
        .clone()
}

/// The build for one resource: its `agent_binary` (a path on the machine running
/// Terraform, e.g. an aarch64 build) when set, else the shipped one.
pub fn for_resource(agent_binary: Option<&str>) -> Result<Arc<AgentBinary>, String> {
    match agent_binary {
        Some(p) => AgentBinary::load(Path::new(&crate::node::expand(p)))
            .map(Arc::new)
            .map_err(|e| format!("agent_binary: {e}")),
        None => shipped(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_read_as_an_x86_64_executable() {
        let me = AgentBinary::load(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(me.arch, std::env::consts::ARCH);
        assert_eq!(me.sha256.len(), 64);
        // A test binary of the gnu target is linked dynamically.
        assert!(me.dynamic);
    }

    #[test]
    fn another_architecture_is_refused_naming_it() {
        let me = AgentBinary::load(&std::env::current_exe().unwrap()).unwrap();
        assert!(me.check_node("n1", "x86_64\n").is_ok());
        assert!(me.check_node("n1", "amd64").is_ok());
        let e = me.check_node("10.0.0.5", "aarch64").unwrap_err();
        assert!(e.contains("10.0.0.5 is a aarch64 machine") && e.contains("agent_binary"), "{e}");
    }

    /// The release zip's layout (scripts/release.sh): the provider as
    /// `terraform-provider-strata_vVERSION` with the static agent beside it. What
    /// `terraform init` unpacks is exactly these files in one directory.
    #[test]
    fn the_agent_is_found_beside_the_provider_in_the_release_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("terraform-provider-strata_v{}", env!("CARGO_PKG_VERSION"))), b"")
            .unwrap();
        // Nothing beside it yet: the error that follows names the path looked at.
        assert_eq!(agent_beside(dir.path()), dir.path().join("strata-agent"));
        std::fs::write(dir.path().join("strata-agent"), b"").unwrap();
        assert_eq!(agent_beside(dir.path()), dir.path().join("strata-agent"));
        // The static build wins over a plain cargo build in the same directory.
        std::fs::write(dir.path().join(STATIC_AGENT_NAME), b"").unwrap();
        assert_eq!(agent_beside(dir.path()), dir.path().join("strata-agent-static"));
    }

    #[test]
    fn a_file_that_is_not_an_executable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("agent");
        std::fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
        let e = AgentBinary::load(&f).err().unwrap();
        assert!(e.contains("not a Linux executable"), "{e}");
    }
}
