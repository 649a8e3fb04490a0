//! The LXC container operations the provider needs, each safe to retry like the VM
//! ones (see [`crate::guest`]): creates and clones that failed ambiguously are
//! checked before anything is sent again, lock contention is waited out, power
//! requests that already happened count as done. Also the OS templates a storage
//! holds (`vztmpl` content).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::client::{Client, Idempotent};
use crate::error::{Error, Result};
use crate::guest::GuestKind;
use crate::vm::VmConfig;

const CT: GuestKind = GuestKind::Lxc;

/// A new container from an OS template (`POST /nodes/{node}/lxc`).
pub struct CtCreateSpec {
    pub node: String,
    pub vmid: u32,
    /// Config keys and create options (`ostemplate`, `hostname`, `password`,
    /// `ssh-public-keys`, `pool`, ...). `vmid` is added. Never logged.
    pub params: Vec<(String, String)>,
}

/// A clone of a container or container template.
pub struct CtCloneSpec {
    pub node: String,
    pub source_vmid: u32,
    pub newid: u32,
    /// Set on the clone; also how the clone is recognised after an ambiguous failure.
    pub hostname: String,
    pub full: bool,
    pub storage: Option<String>,
    pub pool: Option<String>,
    pub description: Option<String>,
}

/// A volume on a storage, as `GET /nodes/{node}/storage/{storage}/content` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageVolume {
    pub volid: String,
    pub content: String,
    pub size: Option<u64>,
}

impl Client {
    /// The container's config, or `None` if there is no such container on that node.
    pub async fn ct_config(&self, node: &str, vmid: u32) -> Result<Option<VmConfig>> {
        self.guest_config(CT, node, vmid).await
    }

    /// Creates a container. After an ambiguous failure it looks for the container and
    /// adopts it when its hostname is the one asked for.
    pub async fn create_ct(&self, spec: &CtCreateSpec) -> Result<()> {
        let path = format!("/nodes/{}/lxc", spec.node);
        let mut form: Vec<(&str, String)> = spec.params.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        form.push(("vmid", spec.vmid.to_string()));
        let hostname = spec.params.iter().find(|(k, _)| k == "hostname").map(|(_, v)| v.clone());
        let result = self
            .create_like(CT, &spec.node, spec.vmid, &path, &form, |cfg| cfg.get("hostname") == hostname.as_deref())
            .await;
        self.invalidate_cache().await;
        result
    }

    /// Clones a container or template under a new VMID and hostname.
    pub async fn clone_ct(&self, spec: &CtCloneSpec) -> Result<()> {
        let path = format!("/nodes/{}/lxc/{}/clone", spec.node, spec.source_vmid);
        let mut form: Vec<(&str, String)> = vec![
            ("newid", spec.newid.to_string()),
            ("hostname", spec.hostname.clone()),
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
        let hostname = spec.hostname.clone();
        let result = self
            .create_like(CT, &spec.node, spec.newid, &path, &form, |cfg| cfg.get("hostname") == Some(hostname.as_str()))
            .await;
        self.invalidate_cache().await;
        result
    }

    /// Sets and deletes config keys (`PUT .../config`, synchronous for containers).
    /// Setting the same values again is harmless, so lost answers are retried.
    pub async fn update_ct_config(
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
        let r = self.run_task(Method::PUT, &format!("/nodes/{node}/lxc/{vmid}/config"), &form, Idempotent::Yes).await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    /// Grows `rootfs` or `mpN` to an absolute size (a repeated request is harmless).
    pub async fn resize_ct_volume(&self, node: &str, vmid: u32, disk: &str, size_gb: u64) -> Result<()> {
        let form = vec![("disk", disk.to_string()), ("size", format!("{size_gb}G"))];
        let r = self.run_task(Method::PUT, &format!("/nodes/{node}/lxc/{vmid}/resize"), &form, Idempotent::Yes).await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    async fn ct_power(&self, node: &str, vmid: u32, action: &str, form: &[(&str, String)]) -> Result<()> {
        let r = self
            .run_task(Method::POST, &format!("/nodes/{node}/lxc/{vmid}/status/{action}"), form, Idempotent::Yes)
            .await;
        self.invalidate_cache().await;
        r.map(|_| ())
    }

    /// Starts the container; one that already runs (a retried start that had landed)
    /// is fine. Proxmox refuses that before starting a task, so it is an API error.
    pub async fn start_ct(&self, node: &str, vmid: u32) -> Result<()> {
        match self.ct_power(node, vmid, "start", &[]).await {
            Err(e) if is_power_state(&e, &format!("CT {vmid} already running")) => Ok(()),
            r => r,
        }
    }

    /// Hard stop; a container that is not running is fine.
    pub async fn stop_ct(&self, node: &str, vmid: u32) -> Result<()> {
        match self.ct_power(node, vmid, "stop", &[]).await {
            Err(e) if is_power_state(&e, &format!("CT {vmid} not running")) => Ok(()),
            r => r,
        }
    }

    /// Clean shutdown that waits up to `timeout`, then stops it (`forceStop`).
    pub async fn shutdown_ct(&self, node: &str, vmid: u32, timeout: Duration) -> Result<()> {
        let form = vec![("timeout", timeout.as_secs().max(1).to_string()), ("forceStop", "1".to_string())];
        match self.ct_power(node, vmid, "shutdown", &form).await {
            Err(e) if is_power_state(&e, &format!("CT {vmid} not running")) => Ok(()),
            r => r,
        }
    }

    pub async fn reboot_ct(&self, node: &str, vmid: u32) -> Result<()> {
        self.ct_power(node, vmid, "reboot", &[]).await
    }

    /// Makes a stopped container a template (`POST .../template`).
    pub async fn ct_to_template(&self, node: &str, vmid: u32) -> Result<()> {
        let r = self.write(Method::POST, &format!("/nodes/{node}/lxc/{vmid}/template"), &[], Idempotent::No).await;
        self.invalidate_cache().await;
        match r {
            Err(e) if e.to_string().contains("already a template") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Stops and destroys the container with its volumes and every reference to it.
    /// A container that is already gone counts as destroyed.
    pub async fn destroy_ct(&self, node: &str, vmid: u32) -> Result<()> {
        self.destroy_guest(GuestKind::Lxc, node, vmid).await
    }

    /// IPv4 addresses of the running container's interfaces (no loopback or
    /// link-local), or `None` when it is not running.
    pub async fn ct_ipv4(&self, node: &str, vmid: u32) -> Result<Option<Vec<String>>> {
        let data = match self.get(&format!("/nodes/{node}/lxc/{vmid}/interfaces"), &[]).await {
            Ok(d) => d,
            Err(e) if is_power_state(&e, &format!("CT {vmid} not running")) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = vec![];
        for iface in data.as_array().into_iter().flatten() {
            let Some(inet) = iface.get("inet").and_then(Value::as_str) else { continue };
            let ip = inet.split('/').next().unwrap_or(inet);
            if ip.starts_with("127.") || ip.starts_with("169.254.") {
                continue;
            }
            out.push(ip.to_string());
        }
        Ok(Some(out))
    }

    /// What a storage on a node holds, optionally of one content type (`vztmpl`).
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageVolume>> {
        let query: Vec<(&str, String)> = content.map(|c| vec![("content", c.to_string())]).unwrap_or_default();
        let data = self.get(&format!("/nodes/{node}/storage/{storage}/content"), &query).await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some(StorageVolume {
                    volid: v.get("volid")?.as_str()?.to_string(),
                    content: v.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
                    size: v.get("size").and_then(Value::as_u64),
                })
            })
            .collect())
    }
}

/// Proxmox refuses power changes that are already in effect with these texts,
/// synchronously for containers (older versions inside the task).
fn is_power_state(e: &Error, text: &str) -> bool {
    match e {
        Error::Api { message, .. } => message == text,
        Error::Task { exitstatus, .. } => exitstatus == text,
        _ => false,
    }
}
