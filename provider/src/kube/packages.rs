//! The pkgs.k8s.io packages on a node: `kubeadm`, `kubelet`, `kubectl` at one version,
//! installed with apt-get and held (as kubespray and KubeOne do), so an unattended
//! upgrade never moves them.

use crate::node::{quote, Node};

const APT_LOCK_TIMEOUT_SECS: u32 = 120;

/// The installed version of a package, `None` when it is not installed.
pub async fn installed_version(node: &Node, package: &str) -> anyhow::Result<Option<String>> {
    let out = node
        .run(
            &format!("checking package {package}"),
            &format!("dpkg-query -W -f='${{Status}} ${{Version}}' {} 2>/dev/null", quote(package)),
        )
        .await?;
    Ok(out.stdout.strip_prefix("install ok installed ").map(|v| v.trim().to_string()))
}

/// Installs `packages` at the version the node's package sources offer (tools the
/// provider itself needs on a node, such as etcdctl); the caller found them missing.
pub async fn install_unpinned(node: &Node, packages: &[&str]) -> anyhow::Result<()> {
    let names: Vec<String> = packages.iter().map(|p| quote(p)).collect();
    let cmd = format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get -q -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} update \
         >/dev/null && apt-get -q -y -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} install --no-install-recommends {}",
        names.join(" "),
    );
    node.run_ok(&format!("installing {}", packages.join(" ")), &cmd).await.map(|_| ())
}

/// Installs `packages` at `version` (e.g. `1.35.0-1.1`) unless they already are, and
/// holds them.
pub async fn install_held(node: &Node, packages: &[&str], version: &str) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    for p in packages {
        if installed_version(node, p).await?.as_deref() != Some(version) {
            wanted.push(format!("{p}={version}"));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let words: Vec<String> = wanted.iter().map(|w| quote(w)).collect();
    let names: Vec<String> = packages.iter().map(|p| quote(p)).collect();
    let cmd = format!(
        "export DEBIAN_FRONTEND=noninteractive; \
         if [ -z \"$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')\" ] || \
            ! apt-cache show {first} >/dev/null 2>&1; then \
           apt-get -q -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} update >/dev/null || exit $?; fi; \
         apt-get -q -y -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} -o Dpkg::Options::=--force-confold \
           install --no-install-recommends --allow-change-held-packages --allow-downgrades {words} && \
         apt-mark hold {names} >/dev/null",
        first = quote(&wanted[0]),
        words = words.join(" "),
        names = names.join(" "),
    );
    node.run_ok(&format!("installing {}", wanted.join(" ")), &cmd).await.map(|_| ())
}
