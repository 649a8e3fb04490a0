//! The VM operations the provider needs, each safe to retry: creates and clones that
//! failed ambiguously are checked (does the VM exist, is it ours?) before anything is
//! sent again, and lock contention is waited out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, Idempotent};
use crate::error::{Error, Result};
use crate::guest::{GuestKind, CREATE_ATTEMPTS, UNLOCK_WAIT};

/// A node as `GET /nodes` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub node: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub maxcpu: Option<f64>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub mem: Option<u64>,
    #[serde(default)]
    pub uptime: Option<u64>,
}

/// A VM as `GET /cluster/resources?type=vm` lists it: where it runs, its power state,
/// pool and tags, for every VM in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterVm {
    /// QEMU VM or LXC container (both are listed, in one VMID space).
    pub kind: GuestKind,
    pub vmid: u32,
    pub node: String,
    pub name: Option<String>,
    pub status: String,
    pub template: bool,
    pub tags: Option<String>,
    pub pool: Option<String>,
    pub lock: Option<String>,
}

impl ClusterVm {
    pub(crate) fn from_json(v: &Value) -> Option<ClusterVm> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let kind = match v.get("type").and_then(Value::as_str) {
            Some("qemu") => GuestKind::Qemu,
            Some("lxc") => GuestKind::Lxc,
            _ => return None,
        };
        Some(ClusterVm {
            kind,
            vmid: v.get("vmid").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())?,
            node: s("node")?,
            name: s("name"),
            status: s("status").unwrap_or_default(),
            template: v.get("template").map(|t| t.as_u64() == Some(1) || t.as_bool() == Some(true)).unwrap_or(false),
            tags: s("tags"),
            pool: s("pool"),
            lock: s("lock"),
        })
    }

    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// A VM's config exactly as PVE stores it (no defaults filled in), values as strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmConfig(pub BTreeMap<String, String>);

impl VmConfig {
    pub(crate) fn from_json(v: &Value) -> VmConfig {
        let map = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "digest")
                    .filter_map(|(k, v)| {
                        let s = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => {
                                if *b {
                                    "1".into()
                                } else {
                                    "0".into()
                                }
                            }
                            _ => return None,
                        };
                        Some((k.clone(), s))
                    })
                    .collect()
            })
            .unwrap_or_default();
        VmConfig(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

/// One `/cluster/resources` answer shared by every read in this process for a short
/// while: refreshing N guests then costs one listing plus one config request each.
#[derive(Default)]
pub(crate) struct ResourceCache {
    slot: tokio::sync::Mutex<Option<(Instant, Arc<Vec<ClusterVm>>)>>,
}

/// A new VM from scratch (`POST /nodes/{node}/qemu`).
pub struct CreateSpec {
    pub node: String,
    pub vmid: u32,
    /// Config keys and create options (`pool`, ...). `vmid` is added.
    pub params: Vec<(String, String)>,
}

/// A clone of an existing VM or template.
pub struct CloneSpec {
    pub node: String,
    pub source_vmid: u32,
    pub newid: u32,
    /// Used to recognise our clone after an ambiguous failure.
    pub name: String,
    pub full: bool,
    pub storage: Option<String>,
    pub pool: Option<String>,
    pub description: Option<String>,
}

/// `tags` as PVE stores them with its default tag style: lower-case, sorted and
/// de-duplicated (it also accepts `,` and spaces as separators).
pub fn split_tags(v: &str) -> Vec<String> {
    let mut t: Vec<String> = v
        .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
        .collect();
    t.sort();
    t.dedup();
    t
}

pub(crate) fn random_uuid() -> String {
    let h: String = (0..16).map(|_| format!("{:02x}", fastrand::u8(..))).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

impl Client {
    pub async fn version(&self) -> Result<Value> {
        self.get("/version", &[]).await
    }

    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let data = self.get("/nodes", &[]).await?;
        serde_json::from_value(data).map_err(|e| Error::Decode { op: "GET /nodes".into(), message: e.to_string() })
    }

    /// Every guest (VMs, containers, templates of both) in the cluster (one request).
    pub async fn cluster_guests(&self) -> Result<Vec<ClusterVm>> {
        let data = self.get("/cluster/resources", &[("type", "vm".to_string())]).await?;
        Ok(data.as_array().map(|a| a.iter().filter_map(ClusterVm::from_json).collect()).unwrap_or_default())
    }

    /// Every QEMU VM and VM template in the cluster (one request).
    pub async fn cluster_vms(&self) -> Result<Vec<ClusterVm>> {
        Ok(self.cluster_guests().await?.into_iter().filter(|g| g.kind == GuestKind::Qemu).collect())
    }

    /// [`Client::cluster_guests`], shared with other callers for up to `max_age`.
    pub async fn cluster_guests_cached(&self, max_age: Duration) -> Result<Arc<Vec<ClusterVm>>> {
        let mut slot = self.inner.resources.slot.lock().await;
        if let Some((at, list)) = slot.as_ref() {
            if at.elapsed() <= max_age {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(self.cluster_guests().await?);
        *slot = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// [`Client::cluster_vms`], shared with other callers for up to `max_age`.
    pub async fn cluster_vms_cached(&self, max_age: Duration) -> Result<Arc<Vec<ClusterVm>>> {
        let all = self.cluster_guests_cached(max_age).await?;
        Ok(Arc::new(all.iter().filter(|g| g.kind == GuestKind::Qemu).cloned().collect()))
    }

    /// Forgets the shared listing (after a change this process made).
    pub async fn invalidate_cache(&self) {
        *self.inner.resources.slot.lock().await = None;
    }

    /// The VM's config, or `None` if there is no such VM on that node.
    pub async fn vm_config(&self, node: &str, vmid: u32) -> Result<Option<VmConfig>> {
        self.guest_config(GuestKind::Qemu, node, vmid).await
    }

    /// Waits until the VM's config carries no `lock:` (a clone or create finishing).
    pub async fn wait_unlocked(&self, node: &str, vmid: u32) -> Result<VmConfig> {
        self.wait_guest_unlocked(GuestKind::Qemu, node, vmid).await
    }

    /// Creates a VM. Never sends the create twice blindly: after an ambiguous failure
    /// it looks for the VM and recognises its own by a `vmgenid` marker it chose.
    pub async fn create_vm(&self, spec: &CreateSpec) -> Result<()> {
        let path = format!("/nodes/{}/qemu", spec.node);
        let marker =
            spec.params.iter().find(|(k, _)| k == "vmgenid").map(|(_, v)| v.clone()).unwrap_or_else(random_uuid);
        let mut form: Vec<(&str, String)> =
            spec.params.iter().filter(|(k, _)| k != "vmgenid").map(|(k, v)| (k.as_str(), v.clone())).collect();
        form.push(("vmid", spec.vmid.to_string()));
        form.push(("vmgenid", marker.clone()));
        let result = self
            .create_like(GuestKind::Qemu, &spec.node, spec.vmid, &path, &form, |cfg| {
                cfg.get("vmgenid") == Some(marker.as_str())
            })
            .await;
        self.invalidate_cache().await;
        result
    }

    /// Clones a VM/template; recognises its own clone after an ambiguous failure by
    /// the new id and name.
    pub async fn clone_vm(&self, spec: &CloneSpec) -> Result<()> {
        let path = format!("/nodes/{}/qemu/{}/clone", spec.node, spec.source_vmid);
        let mut form: Vec<(&str, String)> = vec![
            ("newid", spec.newid.to_string()),
            ("name", spec.name.clone()),
            ("full", if spec.full { "1" } else { "0" }.to_string()),
        ];
        if let (Some(s), true) = (&spec.storage, spec.full) {
            form.push(("storage", s.clone()));
        }
        if let Some(p) = &spec.pool {
            form.push(("pool", p.clone()));
        }
        if let Some(d) = &spec.description {
            form.push(("description", d.clone()));
        }
        let name = spec.name.clone();
        let result = self
            .create_like(GuestKind::Qemu, &spec.node, spec.newid, &path, &form, |cfg| {
                cfg.get("name") == Some(name.as_str())
            })
            .await;
        self.invalidate_cache().await;
        result
    }

    /// Sets and deletes config keys (async `POST .../config`), waiting for the task.
    /// Setting the same values again is harmless, so lost answers are simply retried.
    pub async fn update_config(
        &self,
        node: &str,
        vmid: u32,
        sets: &[(String, String)],
        deletes: &[String],
    ) -> Result<()> {
        if sets.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let mut form: Vec<(&str, String)> = sets.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        if !deletes.is_empty() {
            form.push(("delete", deletes.join(",")));
        }
        let r = self.run_task(Method::POST, &format!("/nodes/{node}/qemu/{vmid}/config"), &form, Idempotent::Yes).await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    /// Removes disks and destroys their volumes (`force`), instead of leaving
    /// `unusedN` volumes behind.
    pub async fn remove_disks(&self, node: &str, vmid: u32, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let form = vec![("delete", keys.join(",")), ("force", "1".to_string())];
        let r = self.run_task(Method::POST, &format!("/nodes/{node}/qemu/{vmid}/config"), &form, Idempotent::Yes).await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    /// Allocates a new disk (`key=storage:SIZE_GB`). Allocation is not idempotent: a
    /// lost answer is resolved by looking at the config.
    pub async fn add_disk(&self, node: &str, vmid: u32, key: &str, storage: &str, size_gb: u64) -> Result<()> {
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let form = vec![(key, format!("{storage}:{size_gb}"))];
        for attempt in 0..CREATE_ATTEMPTS {
            let sent = self.write(Method::POST, &path, &form, Idempotent::No).await;
            let result = match sent {
                Ok(data) => match data.as_str() {
                    Some(upid) => self.wait_task(upid).await.map(|_| ()),
                    None => Ok(()),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.invalidate_cache().await;
                    return Ok(());
                }
                Err(e) if e.is_ambiguous() || e.is_transient() || e.is_lock() => {
                    self.sleep("proxmox_retry", self.inner.cfg.retry.delay(attempt)).await?;
                    if self.vm_config(node, vmid).await?.is_some_and(|c| c.get(key).is_some()) {
                        self.invalidate_cache().await;
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Timeout(format!("adding disk {key} to VM {vmid}")))
    }

    /// Grows a disk to an absolute size (absolute, so a repeated request is harmless).
    pub async fn resize_disk(&self, node: &str, vmid: u32, disk: &str, size_gb: u64) -> Result<()> {
        let form = vec![("disk", disk.to_string()), ("size", format!("{size_gb}G"))];
        let r = self.run_task(Method::PUT, &format!("/nodes/{node}/qemu/{vmid}/resize"), &form, Idempotent::Yes).await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    async fn power(&self, node: &str, vmid: u32, action: &str) -> Result<()> {
        let r = self
            .run_task(Method::POST, &format!("/nodes/{node}/qemu/{vmid}/status/{action}"), &[], Idempotent::Yes)
            .await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    /// Starts the VM; one that already runs (a retried start that had landed) is fine.
    pub async fn start_vm(&self, node: &str, vmid: u32) -> Result<()> {
        match self.power(node, vmid, "start").await {
            Err(Error::Task { exitstatus, .. }) if exitstatus.contains("already running") => Ok(()),
            r => r,
        }
    }

    /// Hard stop (not an ACPI shutdown, which a hung guest can ignore).
    pub async fn stop_vm(&self, node: &str, vmid: u32) -> Result<()> {
        self.power(node, vmid, "stop").await
    }

    /// Clean shutdown (ACPI or guest agent) that waits up to `timeout` for the guest,
    /// then stops it hard (`forceStop`), so a hung guest cannot block an apply. A VM
    /// that is already stopped (a repeated request that had landed) is fine.
    pub async fn shutdown_vm(&self, node: &str, vmid: u32, timeout: Duration) -> Result<()> {
        let form = vec![("timeout", timeout.as_secs().max(1).to_string()), ("forceStop", "1".to_string())];
        let r = self
            .run_task(Method::POST, &format!("/nodes/{node}/qemu/{vmid}/status/shutdown"), &form, Idempotent::Yes)
            .await;
        self.invalidate_cache().await;
        match r {
            Err(Error::Task { exitstatus, .. }) if exitstatus == format!("VM {vmid} not running") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Migrates the VM to `target` (same VMID, disks copied). A running VM moves live
    /// with its local disks (`with-local-disks`, which Proxmox requires for them); a
    /// stopped one offline. After an ambiguous failure the cluster listing tells
    /// whether the migration happened, so it is never started twice.
    pub async fn migrate_vm(&self, node: &str, vmid: u32, target: &str, online: bool) -> Result<()> {
        let path = format!("/nodes/{node}/qemu/{vmid}/migrate");
        let mut form = vec![("target", target.to_string())];
        if online {
            form.push(("online", "1".to_string()));
            form.push(("with-local-disks", "1".to_string()));
        }
        let mut result = Err(Error::Timeout(format!("migrating VM {vmid} to {target}")));
        for attempt in 0..CREATE_ATTEMPTS {
            result = match self.write(Method::POST, &path, &form, Idempotent::No).await {
                Ok(data) => match data.as_str() {
                    Some(upid) => self.wait_task(upid).await.map(|_| ()),
                    None => Ok(()),
                },
                Err(e) => Err(e),
            };
            match &result {
                Err(e) if e.is_ambiguous() || e.is_transient() || e.is_lock() => {
                    if self.migrated(vmid, target).await? {
                        result = Ok(());
                        break;
                    }
                    self.sleep("proxmox_retry", self.inner.cfg.retry.delay(attempt)).await?;
                }
                _ => break,
            }
        }
        self.invalidate_cache().await;
        result?;
        // Check rather than assume: for an HA-managed VM the task only hands the
        // request to the HA manager, and a later step must not act on the wrong node.
        if !self.migrated(vmid, target).await? {
            return Err(Error::Api {
                op: format!("POST {path}"),
                status: 500,
                message: format!("VM {vmid} is not on node '{target}' after its migration task"),
            });
        }
        Ok(())
    }

    /// Waits while a migration of the VM runs (`lock: migrate`), then tells whether
    /// the VM is on `target`.
    async fn migrated(&self, vmid: u32, target: &str) -> Result<bool> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let vm = self.cluster_vms().await?.into_iter().find(|v| v.vmid == vmid);
            match vm {
                Some(vm) if vm.node == target => return Ok(true),
                Some(vm) if vm.lock.as_deref() == Some("migrate") && start.elapsed() < UNLOCK_WAIT => {
                    self.sleep("proxmox_migration", delay).await?;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                _ => return Ok(false),
            }
        }
    }

    /// Moves the VM into `pool` (out of any other: `allow-move`), or out of
    /// `current` when `pool` is `None`. Repeating either is harmless.
    pub async fn set_pool(&self, vmid: u32, current: Option<&str>, pool: Option<&str>) -> Result<()> {
        let r = match (current, pool) {
            (c, Some(p)) if c != Some(p) => {
                let form = vec![("vms", vmid.to_string()), ("allow-move", "1".to_string())];
                match self.write(Method::PUT, &format!("/pools/{p}"), &form, Idempotent::Yes).await {
                    Err(e) if e.to_string().contains("is already a pool member") => Ok(()),
                    r => r.map(|_| ()),
                }
            }
            (Some(c), None) => {
                let form = vec![("vms", vmid.to_string()), ("delete", "1".to_string())];
                match self.write(Method::PUT, &format!("/pools/{c}"), &form, Idempotent::Yes).await {
                    Err(e) if e.to_string().contains("is not a pool member") => Ok(()),
                    r => r.map(|_| ()),
                }
            }
            _ => Ok(()),
        };
        self.invalidate_cache().await;
        r
    }

    pub async fn reboot_vm(&self, node: &str, vmid: u32) -> Result<()> {
        self.power(node, vmid, "reboot").await
    }

    /// Stops and destroys the VM with its disks and every reference to it (purge).
    /// A VM that is already gone counts as destroyed.
    pub async fn destroy_vm(&self, node: &str, vmid: u32) -> Result<()> {
        self.destroy_guest(GuestKind::Qemu, node, vmid).await
    }

    /// IPv4 addresses the guest agent reports (no loopback / link-local), or `None`
    /// when there is no agent to ask: not running yet (guest booting), not enabled, or
    /// the VM is stopped. Any other failure is an error (transient ones were retried).
    pub async fn agent_ipv4(&self, node: &str, vmid: u32) -> Result<Option<Vec<String>>> {
        let data = match self.get(&format!("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"), &[]).await {
            Ok(d) => d,
            Err(e) if e.is_no_agent() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = vec![];
        for iface in data.get("result").and_then(Value::as_array).into_iter().flatten() {
            for a in iface.get("ip-addresses").and_then(Value::as_array).into_iter().flatten() {
                if a.get("ip-address-type").and_then(Value::as_str) != Some("ipv4") {
                    continue;
                }
                let Some(ip) = a.get("ip-address").and_then(Value::as_str) else { continue };
                if ip.starts_with("127.") || ip.starts_with("169.254.") {
                    continue;
                }
                out.push(ip.to_string());
            }
        }
        Ok(Some(out))
    }

    /// A file of the guest through the agent's `file-read`: `Ok(None)` when there is no
    /// agent to ask (yet), `Err` with [`Error::is_agent_error`] when the agent answered
    /// that it cannot read it (e.g. it does not exist yet).
    pub async fn agent_file_read(&self, node: &str, vmid: u32, file: &str) -> Result<Option<String>> {
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/file-read");
        let data = match self.get(&path, &[("file", file.to_string())]).await {
            Ok(d) => d,
            Err(e) if e.is_no_agent() => return Ok(None),
            Err(e) => return Err(e),
        };
        if data.get("truncated").and_then(Value::as_bool) == Some(true) {
            return Err(Error::Decode {
                op: format!("GET {path}"),
                message: format!("the guest agent truncated {file}"),
            });
        }
        Ok(Some(data.get("content").and_then(Value::as_str).unwrap_or_default().to_string()))
    }
}
