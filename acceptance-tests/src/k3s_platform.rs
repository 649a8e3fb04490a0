//! `examples/k3s-ha` on the lab, shared by `make demo EXAMPLE=k3s-ha` and the k3s
//! acceptance test: the variables that point the example at the lab and the release
//! files, and the checks that prove the cluster runs (embedded etcd members, the Nodes
//! through the VIP with the real kubectl, the archive's images in each node's containerd).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use strata_lab::Lab;

use crate::platform::{machine, network_prefix, sh, vms, TEMPLATE_NAME};
use crate::terraform::Workdir;

pub const SERVERS: [&str; 3] = ["server1", "server2", "server3"];
pub const AGENTS: [&str; 2] = ["agent1", "agent2"];
/// What the lab's stand-in k3s needs on a node and real k3s embeds (containerd, etcd,
/// kubectl for `k3s kubectl`: the stand-in runs the real one);
/// Debian's etcd-server starts its own etcd on 127.0.0.1:2379, which is stopped
/// (`stopped_services`) for k3s's embedded one.
pub const STANDIN_PACKAGES: &str = r#"["containerd", "etcd-server", "etcd-client", "kubectl"]"#;
/// Images every node's containerd must hold after an air-gapped install (the lab's
/// airgap archive).
pub const AIRGAP_IMAGES: [&str; 2] = ["docker.io/rancher/mirrored-pause", "docker.io/library/busybox"];

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k3s-ha")
}

/// `terraform.tfvars` for the lab: its network and SSH key, the release files of the
/// pinned versions (`release_dir/<version>/`), and a snapshot to restore from.
pub fn configure(wd: &mut Workdir, lab: &Lab, release_dir: &Path, version: &str, restore: Option<&Path>) -> Result<()> {
    let info = lab.info();
    let pve = info.pve.clone().context("the lab runs no pve-sim")?;
    let q = |s: &str| serde_json::to_string(s).expect("string");
    let pubkey = std::fs::read_to_string(&info.ssh.public_key_file)?;
    let mut vars = format!(
        "network_prefix       = {}\ngateway              = {}\ntemplate_name        = {}\n\
         ssh_public_key       = {}\nssh_private_key_file = {}\nvrrp_password        = \"k3s-lab1\"\n\
         nfs_backend          = \"ganesha\"\nk3s_release_dir      = {}\nk3s_version          = {}\n\
         node_packages        = {STANDIN_PACKAGES}\nstopped_services     = [\"etcd\"]\n",
        q(&network_prefix(lab)?),
        q(info.gateway.as_deref().unwrap_or_default()),
        q(TEMPLATE_NAME),
        q(pubkey.trim()),
        q(&info.ssh.private_key_file.display().to_string()),
        q(&release_dir.display().to_string()),
        q(version),
    );
    if let Some(path) = restore {
        vars.push_str(&format!("k3s_restore_snapshot = {}\n", q(&path.display().to_string())));
    }
    wd.write("terraform.tfvars", &vars)?;
    wd.set_env("STRATA_PVE_ENDPOINT", &pve.endpoint);
    wd.set_env("STRATA_PVE_API_TOKEN", &pve.api_token);
    wd.set_env("STRATA_PVE_CA_CERT", &pve.ca_cert_file.display().to_string());
    Ok(())
}

/// One Node as kubectl lists it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    pub kubelet_version: String,
    pub ready: bool,
    pub unschedulable: bool,
}

/// Runs the real kubectl with `kubeconfig`: (exit code, stdout, stderr).
pub fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

pub fn kubectl_ok(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let (code, out, err) = kubectl(bin, kubeconfig, args)?;
    if code != 0 {
        bail!("kubectl {}: {out}{err}", args.join(" "));
    }
    Ok(out)
}

/// The Nodes of a `kubectl get nodes -o json` document, by name.
pub fn parse_nodes(json: &str) -> Result<BTreeMap<String, NodeView>> {
    let v: Value = serde_json::from_str(json)?;
    let mut nodes = BTreeMap::new();
    for n in v["items"].as_array().context("no items")? {
        let labels = n["metadata"]["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let ready = n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        nodes.insert(
            n["metadata"]["name"].as_str().context("a Node without a name")?.to_string(),
            NodeView {
                labels,
                kubelet_version: n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or_default().to_string(),
                ready,
                unschedulable: n["spec"]["unschedulable"].as_bool().unwrap_or(false),
            },
        );
    }
    Ok(nodes)
}

pub fn nodes(bin: &Path, kubeconfig: &Path) -> Result<BTreeMap<String, NodeView>> {
    parse_nodes(&kubectl_ok(bin, kubeconfig, &["get", "nodes", "-o", "json"])?)
}

/// `etcdctl member list` on a server's machine, with k3s's etcd client certificate: the
/// started members' lines.
pub fn etcd_members(lab: &Lab, machine: &str) -> Result<Vec<String>> {
    let tls = "/var/lib/rancher/k3s/server/tls/etcd";
    let out = sh(
        lab,
        machine,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={tls}/server-ca.crt \
             --cert={tls}/client.crt --key={tls}/client.key member list"
        ),
    )?;
    Ok(out.lines().filter(|l| l.contains("started")).map(str::to_string).collect())
}

/// What `make demo EXAMPLE=k3s-ha` and the test check after an apply: three started
/// embedded-etcd members, five Ready Nodes through the VIP with the kubeconfig output,
/// and the airgap archive's images in every node's containerd. One line per proof.
pub fn prove(lab: &Lab, state: &Value, kubectl_bin: &Path, kubeconfig: &Path) -> Result<Vec<String>> {
    let vms = vms(state);
    let node =
        |name: &str| -> Result<String> { Ok(machine(vms.get(name).with_context(|| format!("no VM {name}"))?.0)) };
    let mut proofs = Vec::new();
    let members = etcd_members(lab, &node("server1")?)?;
    if members.len() != 3 {
        bail!("embedded etcd: {} started members, not 3:\n{}", members.len(), members.join("\n"));
    }
    proofs.push("embedded etcd: 3 started members (etcdctl member list over TLS with k3s's client certificate)".into());
    let listed = nodes(kubectl_bin, kubeconfig)?;
    let names: Vec<&str> = listed.keys().map(String::as_str).collect();
    let expected: Vec<&str> = AGENTS.iter().chain(SERVERS.iter()).copied().collect();
    if names != expected {
        bail!("kubectl get nodes lists {names:?}, not {expected:?}");
    }
    if let Some((name, _)) = listed.iter().find(|(_, n)| !n.ready) {
        bail!("Node {name} is not Ready");
    }
    let vip = format!("{}.100", network_prefix(lab)?);
    proofs.push(format!("kubectl get nodes through https://{vip}:6443: 5 Ready (3 servers, 2 agents)"));
    for name in SERVERS.iter().chain(AGENTS.iter()) {
        let images = sh(lab, &node(name)?, "k3s crictl images")?;
        if let Some(missing) = AIRGAP_IMAGES.iter().find(|i| !images.contains(*i)) {
            bail!("{name}: {missing} from the airgap archive is not in containerd:\n{images}");
        }
    }
    proofs.push(format!("k3s crictl images: {} in every node's containerd", AIRGAP_IMAGES.join(", ")));
    Ok(proofs)
}
