//! The reference platform (`examples/ha-cluster`) on the lab, shared by `make demo`
//! (the `strata-demo` binary) and the rehearsal test: the cloud-init template users
//! prepare on Proxmox, the variables that point the example at the lab, the checks that
//! prove the platform runs, the backups, the disaster (every VM deleted through the
//! Proxmox API), and the critical path of an apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use strata_lab::Lab;
use strata_pve_client::vm::CreateSpec;
use strata_pve_client::{Auth, Client, ClientConfig, GuestKind, Secret};

use crate::terraform::Workdir;

pub const PVE_NODE: &str = "pve1";
pub const TEMPLATE_VMID: u32 = 9000;
pub const TEMPLATE_NAME: &str = "debian-12-cloudinit";
/// The etcd key and the export file the rehearsal writes before the disaster.
pub const ETCD_KEY: &str = "/strata/rehearsal";
pub const PROD_FILE: &str = "rehearsal.txt";

/// The example, in the repository.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ha-cluster")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// A Proxmox API client for the lab's pve-sim.
pub fn pve_client(lab: &Lab) -> Result<Client> {
    let pve = lab.info().pve.clone().context("the lab runs no pve-sim")?;
    let mut cfg = ClientConfig::new(&pve.endpoint, Auth::Token(Secret::new(&pve.api_token)));
    cfg.ca_cert_pem = Some(std::fs::read_to_string(&pve.ca_cert_file)?);
    Ok(Client::new(cfg)?)
}

/// The template, as users prepare one on Proxmox (`qm create 9000 ... --ide2
/// local-lvm:cloudinit --agent 1 --ciupgrade 0; qm template 9000`): the Debian cloud
/// image with cloud-init and the guest agent. Returns false when it already exists.
pub fn prepare_template(lab: &Lab) -> Result<bool> {
    let client = pve_client(lab)?;
    let rt = runtime();
    if rt.block_on(client.vm_config(PVE_NODE, TEMPLATE_VMID))?.is_some() {
        return Ok(false);
    }
    let params: Vec<(String, String)> = [
        ("name", TEMPLATE_NAME),
        ("memory", "1024"),
        ("scsi0", "local-lvm:2"),
        ("ide2", "local-lvm:cloudinit"),
        ("net0", "virtio,bridge=vmbr0"),
        ("agent", "1"),
        ("ciupgrade", "0"),
        ("template", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    rt.block_on(client.create_vm(&CreateSpec { node: PVE_NODE.into(), vmid: TEMPLATE_VMID, params }))?;
    Ok(true)
}

/// The first three octets of the lab's /24.
pub fn network_prefix(lab: &Lab) -> Result<String> {
    let gw = lab.info().gateway.clone().context("lab.json records no gateway")?;
    Ok(gw.rsplit_once('.').context("gateway is not IPv4")?.0.to_string())
}

/// Restore sources: the off-site copies of the backups.
pub struct Restore {
    pub etcd_snapshot: PathBuf,
    pub nfs_archives: BTreeMap<String, PathBuf>,
}

/// `terraform.tfvars` pointing the example at the lab (and at restore sources, after a
/// disaster), plus the Proxmox access in the environment, as a user would set it. The
/// NFS server is nfs-ganesha: the lab's machines are containers on one kernel, where
/// the kernel NFS server cannot serve.
/// `bundles`: a directory of image bundles with bundles.json (strata_lab::bundles), for
/// the example's air-gapped registry; `None` runs it without one.
pub fn configure(
    wd: &mut Workdir,
    lab: &Lab,
    worker_count: u32,
    restore: Option<&Restore>,
    bundles: Option<&Path>,
) -> Result<()> {
    let info = lab.info();
    let pve = info.pve.clone().context("the lab runs no pve-sim")?;
    let prefix = network_prefix(lab)?;
    let pubkey = std::fs::read_to_string(&info.ssh.public_key_file)?;
    let q = |s: &str| serde_json::to_string(s).expect("string");
    let mut vars = format!(
        "network_prefix       = {}\ngateway              = {}\ntemplate_name        = {}\nworker_count         = {worker_count}\n\
         ssh_public_key       = {}\nssh_private_key_file = {}\nvrrp_password        = \"rehears1\"\n\
         nfs_backend          = \"ganesha\"\n",
        q(&prefix),
        q(info.gateway.as_deref().unwrap_or_default()),
        q(TEMPLATE_NAME),
        q(pubkey.trim()),
        q(&info.ssh.private_key_file.display().to_string()),
    );
    if let Some(r) = restore {
        vars.push_str(&format!(
            "etcd_restore_snapshot = {}\nnfs_restore_archives = {{\n",
            q(&r.etcd_snapshot.display().to_string())
        ));
        for (name, path) in &r.nfs_archives {
            vars.push_str(&format!("  {} = {}\n", q(name), q(&path.display().to_string())));
        }
        vars.push_str("}\n");
    }
    if let Some(dir) = bundles {
        vars.push_str(&format!("image_bundle_dir = {}\n", q(&dir.display().to_string())));
    }
    wd.write("terraform.tfvars", &vars)?;
    wd.set_env("STRATA_PVE_ENDPOINT", &pve.endpoint);
    wd.set_env("STRATA_PVE_API_TOKEN", &pve.api_token);
    wd.set_env("STRATA_PVE_CA_CERT", &pve.ca_cert_file.display().to_string());
    Ok(())
}

/// The VMs in state: name -> (VMID, address).
pub fn vms(state: &Value) -> BTreeMap<String, (u32, String)> {
    resources(state)
        .filter(|r| r["type"] == "strata_vm")
        .filter_map(|r| {
            let v = &r["values"];
            Some((
                v["name"].as_str()?.to_string(),
                (v["vm_id"].as_u64()? as u32, v["ipv4_addresses"][0].as_str().unwrap_or_default().to_string()),
            ))
        })
        .collect()
}

fn resources(state: &Value) -> impl Iterator<Item = &Value> {
    state["values"]["root_module"]["resources"].as_array().into_iter().flatten()
}

/// An attribute of one resource instance in `state`.
pub fn attr<'a>(state: &'a Value, address: &str, name: &str) -> Option<&'a Value> {
    resources(state).find(|r| r["address"] == address).map(|r| &r["values"][name])
}

/// The lab's name of the machine of VM `vmid`.
pub fn machine(vmid: u32) -> String {
    strata_lab::guest::node_name(vmid)
}

/// Runs `script` on a lab machine; its stdout, or an error with its output.
pub fn sh(lab: &Lab, node: &str, script: &str) -> Result<String> {
    let out = lab.exec(node, &["sh", "-c", script])?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{node}: `{script}` failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

fn etcdctl(address: &str, args: &str) -> String {
    let pki = "/etc/etcd/pki";
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://{address}:2379 --cacert={pki}/ca.crt \
         --cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key {args}"
    )
}

/// `/readyz` through `vip:6443`, verified against `ca_pem`.
pub fn readyz(vip: &str, ca_pem: &str) -> Result<()> {
    let http = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = http.get(format!("https://{vip}:6443/readyz")).send()?;
    if !r.status().is_success() {
        bail!("/readyz through {vip}:6443 answered {}", r.status());
    }
    Ok(())
}

/// What `make demo` and the rehearsal check after an apply: TCP and `/readyz` through
/// the VIP (verified against the cluster CA), etcd healthy, and the exports listed over
/// NFS from another machine (the lab's node1). Returns one line per proof.
pub fn prove(lab: &Lab, state: &Value) -> Result<Vec<String>> {
    let vms = vms(state);
    let vip = format!("{}.100", network_prefix(lab)?);
    let mut proofs = Vec::new();
    std::net::TcpStream::connect_timeout(&format!("{vip}:6443").parse()?, Duration::from_secs(5))
        .with_context(|| format!("TCP to {vip}:6443"))?;
    for port in [80, 443] {
        // HAProxy listens on the ingress ports even before Traefik runs on the workers.
        std::net::TcpStream::connect_timeout(&format!("{vip}:{port}").parse()?, Duration::from_secs(5))
            .with_context(|| format!("TCP to {vip}:{port}"))?;
    }
    proofs.push(format!("TCP {vip}:6443, :80 and :443 accept connections (HAProxy behind keepalived's VIP)"));
    let ca = attr(state, "strata_cluster_secrets.this", "kubernetes_ca_cert")
        .and_then(Value::as_str)
        .context("no cluster CA in state")?;
    readyz(&vip, ca)?;
    proofs.push(format!("https://{vip}:6443/readyz answers ok, verified against the cluster CA"));
    let (vmid, address) = vms.get("cp1").context("no cp1 VM in state")?;
    let health = sh(lab, &machine(*vmid), &format!("{} 2>&1", etcdctl(address, "endpoint health --cluster")))?;
    let healthy = health.lines().filter(|l| l.contains("is healthy")).count();
    if healthy != 3 {
        bail!("etcd: {healthy} of 3 members healthy:\n{health}");
    }
    proofs.push("etcd: 3 of 3 members healthy (etcdctl endpoint health --cluster over TLS)".into());
    let (_, nfs) = vms.get("nfs1").context("no nfs1 VM in state")?;
    sh(
        lab,
        "node1",
        "command -v nfs-ls >/dev/null || { apt-get -q update >/dev/null && \
         DEBIAN_FRONTEND=noninteractive apt-get -q -y install libnfs-utils >/dev/null; }",
    )?;
    for export in ["k8s-prod", "k8s-nonprod"] {
        sh(lab, "node1", &format!("timeout 20 nfs-ls 'nfs://{nfs}/srv/nfs/{export}?version=4'"))?;
    }
    proofs.push(format!("nfs://{nfs}/srv/nfs/k8s-prod and k8s-nonprod list over NFSv4 from node1"));
    Ok(proofs)
}

/// Writes the rehearsal's data: a key into etcd and a file into the prod export.
pub fn write_data(lab: &Lab, state: &Value, marker: &str) -> Result<()> {
    let vms = vms(state);
    let (cp, address) = vms.get("cp1").context("no cp1 VM")?;
    sh(lab, &machine(*cp), &etcdctl(address, &format!("put {ETCD_KEY} {marker}")))?;
    let (nfs, _) = vms.get("nfs1").context("no nfs1 VM")?;
    sh(lab, &machine(*nfs), &format!("echo {marker} > /srv/nfs/k8s-prod/{PROD_FILE}"))?;
    Ok(())
}

/// Reads them back: (etcd value, file content).
pub fn read_data(lab: &Lab, state: &Value) -> Result<(String, String)> {
    let vms = vms(state);
    let (cp, address) = vms.get("cp1").context("no cp1 VM")?;
    let value = sh(lab, &machine(*cp), &etcdctl(address, &format!("get --print-value-only {ETCD_KEY}")))?;
    let (nfs, _) = vms.get("nfs1").context("no nfs1 VM")?;
    let file = sh(lab, &machine(*nfs), &format!("cat /srv/nfs/k8s-prod/{PROD_FILE}"))?;
    Ok((value.trim().to_string(), file.trim().to_string()))
}

/// The backups a site takes, copied to `offsite` (outside the lab): an etcd snapshot
/// and an archive of each export.
pub fn take_backups(lab: &Lab, state: &Value, offsite: &Path) -> Result<Restore> {
    std::fs::create_dir_all(offsite)?;
    let vms = vms(state);
    let (cp, address) = vms.get("cp1").context("no cp1 VM")?;
    let node = machine(*cp);
    sh(lab, &node, &etcdctl(address, "snapshot save /var/backups/rehearsal.db >/dev/null"))?;
    let etcd_snapshot = offsite.join("etcd.db");
    copy_out(lab, &node, "/var/backups/rehearsal.db", &etcd_snapshot)?;
    let (nfs, _) = vms.get("nfs1").context("no nfs1 VM")?;
    let mut nfs_archives = BTreeMap::new();
    for export in ["k8s-prod", "k8s-nonprod"] {
        let remote = format!("/var/backups/{export}.tar.gz");
        sh(lab, &machine(*nfs), &format!("tar -C /srv/nfs/{export} -czf {remote} ."))?;
        let local = offsite.join(format!("{export}.tar.gz"));
        copy_out(lab, &machine(*nfs), &remote, &local)?;
        nfs_archives.insert(export.to_string(), local);
    }
    Ok(Restore { etcd_snapshot, nfs_archives })
}

fn copy_out(lab: &Lab, node: &str, remote: &str, local: &Path) -> Result<()> {
    let out = lab.exec(node, &["cat", remote])?;
    if !out.status.success() || out.stdout.is_empty() {
        bail!("{node}: reading {remote}: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(local, &out.stdout).with_context(|| format!("writing {}", local.display()))
}

/// The disaster: every VM of the platform stopped and deleted through the Proxmox API
/// (the template stays, as it would on a site that lost its VMs). Returns how many.
pub fn delete_vms(lab: &Lab, state: &Value) -> Result<usize> {
    let client = pve_client(lab)?;
    let rt = runtime();
    let vms = vms(state);
    for (vmid, _) in vms.values() {
        rt.block_on(client.stop_vm(PVE_NODE, *vmid))?;
        rt.block_on(client.destroy_guest(GuestKind::Qemu, PVE_NODE, *vmid))?;
    }
    Ok(vms.len())
}

/// One resource's part of an apply: its instances ran from `start` to `end` (seconds
/// from the first event).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub resource: String,
    pub start: f64,
    pub end: f64,
    pub slowest: f64,
}

/// An apply's wall time next to the longest chain of its dependency graph.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// First `apply_start` to last `apply_complete`.
    pub wall: f64,
    /// When the first resource started (seconds since midnight UTC, as [`utc_seconds`]).
    pub started_at: f64,
    /// The longest chain, each resource weighted by its slowest instance.
    pub length: f64,
    pub chain: Vec<(String, f64)>,
    /// Every resource in start order: its first instance's start and its last one's end
    /// (seconds from the first event), and its slowest instance.
    pub spans: Vec<Step>,
}

/// Seconds since midnight UTC of an RFC 3339 timestamp as Terraform writes them:
/// `2026-12-02T16:13:42.123456+01:00` (the `-json` UI, local time) or
/// `2026-12-02T15:13:42.123Z` (its log). The day does not change within an apply.
pub fn utc_seconds(ts: &str) -> Option<f64> {
    let time = ts.split('T').nth(1)?;
    let zone_at = time.find(['+', '-', 'Z']).unwrap_or(time.len());
    let (hms, zone) = time.split_at(zone_at);
    let mut parts = hms.split(':');
    let (h, m, s): (f64, f64, f64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    let offset = match zone.chars().next() {
        None | Some('Z') => 0.0,
        Some(sign) => {
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let (oh, om): (f64, f64) = (digits.get(..2)?.parse().ok()?, digits.get(2..4).unwrap_or("0").parse().ok()?);
            (oh * 3600.0 + om * 60.0) * if sign == '-' { -1.0 } else { 1.0 }
        }
    };
    Some(h * 3600.0 + m * 60.0 + s - offset)
}

/// The resource of an instance address: `strata_vm.this["cp1"]` -> `strata_vm.this`.
fn resource_of(addr: &str) -> &str {
    addr.split('[').next().unwrap_or(addr)
}

/// Computes the critical path from `terraform apply -json` output and the state's
/// recorded dependencies (`terraform show -json`). Terraform orders resources, not
/// instances: an instance starts when every instance of what its resource depends on is
/// done, so a resource weighs as much as its slowest instance.
pub fn critical_path(apply_json: &str, state: &Value) -> Result<CriticalPath> {
    let mut start: BTreeMap<String, f64> = BTreeMap::new();
    let mut end: BTreeMap<String, f64> = BTreeMap::new();
    let (mut first, mut last) = (f64::MAX, 0.0f64);
    for line in apply_json.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let kind = v["type"].as_str().unwrap_or_default();
        if kind != "apply_start" && kind != "apply_complete" {
            continue;
        }
        let (Some(addr), Some(t)) =
            (v["hook"]["resource"]["addr"].as_str(), v["@timestamp"].as_str().and_then(utc_seconds))
        else {
            continue;
        };
        // Data sources are read while planning (their hooks come before the apply
        // phase): counting them would add the plan's time to the apply's.
        if addr.starts_with("data.") || addr.contains(".data.") {
            continue;
        }
        if kind == "apply_start" {
            first = first.min(t);
            start.insert(addr.to_string(), t);
        } else {
            last = last.max(t);
            end.insert(addr.to_string(), t);
        }
    }
    if start.is_empty() {
        bail!("the apply output has no apply_start events (was it run with -json?)");
    }
    let mut weight: BTreeMap<String, f64> = BTreeMap::new();
    let mut spans: BTreeMap<String, Step> = BTreeMap::new();
    for (addr, s) in &start {
        let e = end.get(addr).with_context(|| format!("{addr} started but never completed"))?;
        let r = resource_of(addr).to_string();
        let w = weight.entry(r.clone()).or_default();
        *w = w.max(e - s);
        let span = spans.entry(r.clone()).or_insert(Step { resource: r, start: f64::MAX, end: 0.0, slowest: 0.0 });
        span.start = span.start.min(s - first);
        span.end = span.end.max(e - first);
        span.slowest = span.slowest.max(e - s);
    }
    let mut spans: Vec<Step> = spans.into_values().collect();
    spans.sort_by(|a, b| a.start.total_cmp(&b.start));
    let deps: BTreeMap<String, Vec<String>> = resources(state)
        .filter_map(|r| {
            let addr = r["address"].as_str()?;
            let d = r["depends_on"].as_array().into_iter().flatten().filter_map(Value::as_str);
            Some((resource_of(addr).to_string(), d.map(|x| resource_of(x).to_string()).collect()))
        })
        .collect();
    /// A chain's length and its resources with their weights.
    type Chain = (f64, Vec<(String, f64)>);
    // Longest path ending at each resource (the graph is a DAG; memoised depth-first).
    fn longest(
        r: &str,
        weight: &BTreeMap<String, f64>,
        deps: &BTreeMap<String, Vec<String>>,
        memo: &mut BTreeMap<String, Chain>,
    ) -> Chain {
        if let Some(m) = memo.get(r) {
            return m.clone();
        }
        let mut best = (0.0, Vec::new());
        for d in deps.get(r).into_iter().flatten() {
            let p = longest(d, weight, deps, memo);
            if p.0 > best.0 {
                best = p;
            }
        }
        let w = weight.get(r).copied().unwrap_or(0.0);
        if w > 0.0 {
            best.0 += w;
            best.1.push((r.to_string(), w));
        }
        memo.insert(r.to_string(), best.clone());
        best
    }
    let mut memo = BTreeMap::new();
    let mut best = (0.0, Vec::new());
    for r in weight.keys() {
        let p = longest(r, &weight, &deps, &mut memo);
        if p.0 > best.0 {
            best = p;
        }
    }
    Ok(CriticalPath { wall: last - first, started_at: first, length: best.0, chain: best.1, spans })
}

/// The refresh before a plan or apply, from its `-json` output: first `refresh_start` to
/// last `refresh_complete`, and each resource in start order: its first instance's start
/// and its last one's end (seconds from the first refresh), and its slowest instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    pub wall: f64,
    pub resources: Vec<Step>,
}

pub fn refresh(json_lines: &str) -> Refresh {
    let mut start: BTreeMap<String, f64> = BTreeMap::new();
    let mut done: Vec<(String, f64, f64)> = Vec::new();
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let kind = v["type"].as_str().unwrap_or_default();
        let (Some(addr), Some(t)) =
            (v["hook"]["resource"]["addr"].as_str(), v["@timestamp"].as_str().and_then(utc_seconds))
        else {
            continue;
        };
        match kind {
            "refresh_start" => {
                start.insert(addr.to_string(), t);
            }
            "refresh_complete" => {
                if let Some(s) = start.get(addr) {
                    done.push((addr.to_string(), *s, t));
                }
            }
            _ => {}
        }
    }
    let first = done.iter().map(|d| d.1).fold(f64::MAX, f64::min);
    let last = done.iter().map(|d| d.2).fold(f64::MIN, f64::max);
    let mut spans: BTreeMap<String, Step> = BTreeMap::new();
    for (addr, s, e) in done {
        let r = resource_of(&addr).to_string();
        let span = spans.entry(r.clone()).or_insert(Step { resource: r, start: f64::MAX, end: 0.0, slowest: 0.0 });
        span.start = span.start.min(s - first);
        span.end = span.end.max(e - first);
        span.slowest = span.slowest.max(e - s);
    }
    let mut resources: Vec<Step> = spans.into_values().collect();
    resources.sort_by(|a, b| a.start.total_cmp(&b.start).then_with(|| a.resource.cmp(&b.resource)));
    Refresh { wall: if last >= first { last - first } else { 0.0 }, resources }
}

/// What `make demo` checks with the air-gapped registry: a worker pulls an upstream image
/// through the CRI (containerd's CRI plugin, as the kubelet pulls), which can only come
/// from the registry on the NFS VM (no upstream fallback, no route out), and gets the
/// digest the registry serves for it.
pub fn prove_pull(lab: &Lab, state: &Value, image: &str) -> Result<String> {
    let vms = vms(state);
    let (vmid, _) = vms.get("worker1").context("no worker1 VM in state")?;
    let want = attr(state, "strata_image_registry.site[0]", "images")
        .and_then(|m| m[image].as_str())
        .with_context(|| format!("the registry has no {image}"))?
        .to_string();
    let node = machine(*vmid);
    sh(lab, &node, &format!("strata-cri pull {image}"))?;
    let out = sh(lab, &node, &format!("strata-cri inspecti {image}"))?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("strata-cri inspecti: {out}"))?;
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    let got = v["status"]["repoDigests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|d| d.strip_prefix(&format!("{repo}@")))
        .with_context(|| format!("no digest for {repo}: {out}"))?
        .to_string();
    if got != want {
        bail!("worker1 pulled {image} as {got}; the registry serves {want}");
    }
    Ok(format!("worker1 pulled {image} through the registry on nfs1 ({got}), CRI namespace k8s.io"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, addr: &str, t: &str) -> String {
        json!({"type": kind, "@timestamp": format!("2026-12-02T10:00:{t}+00:00"), "hook": {"resource": {"addr": addr}}})
            .to_string()
    }

    #[test]
    fn the_critical_path_weighs_each_resource_by_its_slowest_instance() {
        // vm[a] 0-10, vm[b] 0-4; cfg (after vm) 10-13; secrets 0-1; cp (after cfg, secrets) 13-20.
        let log = [
            // A data source: not part of the apply phase (were it counted, the wall would be 30 s).
            event("apply_start", "data.strata_vms.template", "30.0"),
            event("apply_complete", "data.strata_vms.template", "30.0"),
            event("apply_start", "strata_vm.this[\"a\"]", "00.0"),
            event("apply_start", "strata_vm.this[\"b\"]", "00.0"),
            event("apply_start", "strata_cluster_secrets.this", "00.0"),
            event("apply_complete", "strata_cluster_secrets.this", "01.0"),
            event("apply_complete", "strata_vm.this[\"b\"]", "04.0"),
            event("apply_complete", "strata_vm.this[\"a\"]", "10.0"),
            event("apply_start", "strata_node_config.kube[\"a\"]", "10.0"),
            event("apply_complete", "strata_node_config.kube[\"a\"]", "13.0"),
            event("apply_start", "strata_control_plane.k8s", "14.0"),
            event("apply_complete", "strata_control_plane.k8s", "21.0"),
        ]
        .join("\n");
        let state = json!({"values": {"root_module": {"resources": [
            {"address": "strata_vm.this[\"a\"]", "depends_on": []},
            {"address": "strata_node_config.kube[\"a\"]", "depends_on": ["strata_vm.this"]},
            {"address": "strata_control_plane.k8s", "depends_on": ["strata_node_config.kube", "strata_cluster_secrets.this"]},
            {"address": "strata_cluster_secrets.this"},
        ]}}});
        let cp = critical_path(&log, &state).unwrap();
        assert_eq!(cp.wall, 21.0);
        assert_eq!(cp.started_at, 10.0 * 3600.0);
        assert_eq!(cp.length, 20.0);
        let names: Vec<&str> = cp.chain.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strata_vm.this", "strata_node_config.kube", "strata_control_plane.k8s"]);
        // The control plane waited 1 s after node_config was done: visible in the spans.
        let span = cp.spans.iter().find(|s| s.resource == "strata_control_plane.k8s").unwrap();
        assert_eq!((span.start, span.end, span.slowest), (14.0, 21.0, 7.0));
    }

    #[test]
    fn refresh_times_per_resource_are_the_slowest_instance() {
        let log = [
            event("refresh_start", "strata_vm.this[\"a\"]", "00.0"),
            event("refresh_start", "strata_node_config.kube[\"a\"]", "00.5"),
            event("refresh_start", "strata_node_config.kube[\"b\"]", "00.5"),
            event("refresh_complete", "strata_vm.this[\"a\"]", "01.0"),
            event("refresh_complete", "strata_node_config.kube[\"b\"]", "03.5"),
            event("refresh_complete", "strata_node_config.kube[\"a\"]", "16.5"),
            event("apply_start", "strata_vm.this[\"a\"]", "20.0"),
        ]
        .join("\n");
        let r = refresh(&log);
        assert_eq!(r.wall, 16.5);
        let step = |r: &str, start, end, slowest| Step { resource: r.to_string(), start, end, slowest };
        assert_eq!(
            r.resources,
            [step("strata_vm.this", 0.0, 1.0, 1.0), step("strata_node_config.kube", 0.5, 16.5, 16.0)]
        );
        assert_eq!(refresh("").wall, 0.0);
    }

    #[test]
    fn timestamps_with_an_offset_are_read_as_utc() {
        assert_eq!(utc_seconds("2026-12-02T16:13:42.5+01:00"), Some(15.0 * 3600.0 + 13.0 * 60.0 + 42.5));
        assert_eq!(utc_seconds("2026-12-02T15:13:42.5Z"), Some(15.0 * 3600.0 + 13.0 * 60.0 + 42.5));
        assert_eq!(utc_seconds("2026-12-02T10:13:42.5-0530"), Some(15.0 * 3600.0 + 43.0 * 60.0 + 42.5));
        assert_eq!(utc_seconds("2026-12-02T15:13:42.5"), Some(15.0 * 3600.0 + 13.0 * 60.0 + 42.5));
        assert_eq!(utc_seconds("not a time"), None);
    }

    #[test]
    fn an_apply_without_json_events_is_an_error() {
        assert!(critical_path("Apply complete!", &json!({})).is_err());
    }
}
