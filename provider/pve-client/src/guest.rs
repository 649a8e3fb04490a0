//! What QEMU VMs and LXC containers share: their kind (the path segment), config
//! reads, waiting for a `lock:` to clear, and creates/clones that are never sent twice
//! blindly after an ambiguous failure.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::client::{Client, Idempotent};
use crate::error::{Error, Result};
use crate::vm::VmConfig;

/// How long to wait for a guest's `lock:` (e.g. `clone`, `create`) to go away.
pub(crate) const UNLOCK_WAIT: Duration = Duration::from_secs(30 * 60);
/// Attempts at a create/clone whose earlier attempts provably did not happen.
pub(crate) const CREATE_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    /// The path segment under `/nodes/{node}` (and `type` in `/cluster/resources`).
    pub fn segment(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }

    /// How Proxmox names it in messages: "VM 100", "CT 100".
    pub fn label(self) -> &'static str {
        match self {
            GuestKind::Qemu => "VM",
            GuestKind::Lxc => "CT",
        }
    }
}

impl Client {
    /// Stops and destroys the guest with its volumes and every reference to it
    /// (purge). A guest that is already gone counts as destroyed.
    pub async fn destroy_guest(&self, kind: GuestKind, node: &str, vmid: u32) -> Result<()> {
        let path = format!("/nodes/{node}/{}/{vmid}", kind.segment());
        let form = vec![("purge", "1".to_string()), ("destroy-unreferenced-disks", "1".to_string())];
        for attempt in 0..CREATE_ATTEMPTS {
            let stopped = match kind {
                GuestKind::Qemu => self.stop_vm(node, vmid).await,
                GuestKind::Lxc => self.stop_ct(node, vmid).await,
            };
            match stopped {
                Ok(()) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
            match self.run_task(Method::DELETE, &path, &form, Idempotent::Yes).await {
                Ok(_) => break,
                Err(e) if e.is_not_found() => break,
                // Something started it again between stop and destroy: stop again.
                Err(Error::Task { exitstatus, .. }) | Err(Error::Api { message: exitstatus, .. })
                    if exitstatus.contains("is running") && attempt + 1 < CREATE_ATTEMPTS => {}
                Err(e) => return Err(e),
            }
        }
        self.invalidate_cache().await;
        Ok(())
    }

    /// The guest's config as stored, or `None` if there is no such guest of that kind
    /// on that node.
    pub async fn guest_config(&self, kind: GuestKind, node: &str, vmid: u32) -> Result<Option<VmConfig>> {
        match self.get(&format!("/nodes/{node}/{}/{vmid}/config", kind.segment()), &[]).await {
            Ok(v) => Ok(Some(VmConfig::from_json(&v))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the guest's config carries no `lock:` (a clone or create finishing).
    pub async fn wait_guest_unlocked(&self, kind: GuestKind, node: &str, vmid: u32) -> Result<VmConfig> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let cfg = self.guest_config(kind, node, vmid).await?.ok_or_else(|| Error::Api {
                op: format!("GET /nodes/{node}/{}/{vmid}/config", kind.segment()),
                status: 500,
                message: format!("{} {vmid} disappeared while waiting for its lock", kind.label()),
            })?;
            if cfg.get("lock").is_none() {
                return Ok(cfg);
            }
            if start.elapsed() > UNLOCK_WAIT {
                return Err(Error::Timeout(format!(
                    "{} {vmid} stayed locked ({})",
                    kind.label(),
                    cfg.get("lock").unwrap_or("")
                )));
            }
            self.sleep("proxmox_unlock", delay).await?;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// After an ambiguous failure: did our create/clone happen? `Some(true)` ours,
    /// `Some(false)` someone else's guest has that id, `None` nothing there.
    async fn check_ours(
        &self,
        kind: GuestKind,
        node: &str,
        vmid: u32,
        ours: impl Fn(&VmConfig) -> bool,
    ) -> Result<Option<bool>> {
        // Give a request that is still being processed a moment to land.
        self.sleep("proxmox_retry", Duration::from_millis(200)).await?;
        match self.guest_config(kind, node, vmid).await? {
            Some(cfg) => Ok(Some(ours(&cfg))),
            // A guest of the other kind with this id is someone else's.
            None => match self.cluster_guests().await?.iter().any(|g| g.vmid == vmid) {
                true => Ok(Some(false)),
                false => Ok(None),
            },
        }
    }

    /// POSTs a create or clone of guest `vmid` and waits until it exists unlocked.
    /// An ambiguous failure is resolved by looking: our guest (recognised by `ours`)
    /// is adopted, someone else's is "already exists", nothing there is sent again.
    pub(crate) async fn create_like(
        &self,
        kind: GuestKind,
        node: &str,
        vmid: u32,
        path: &str,
        form: &[(&str, String)],
        ours: impl Fn(&VmConfig) -> bool,
    ) -> Result<()> {
        let op = format!("POST {path}");
        for attempt in 0..CREATE_ATTEMPTS {
            match self.write(Method::POST, path, form, Idempotent::No).await {
                Ok(data) => {
                    if let Some(upid) = data.as_str() {
                        self.wait_task(upid).await?;
                    }
                    // A clone keeps its lock until its worker is done.
                    self.wait_guest_unlocked(kind, node, vmid).await?;
                    return Ok(());
                }
                Err(e) if e.is_ambiguous() || e.is_transient() => match self.check_ours(kind, node, vmid, &ours).await?
                {
                    Some(true) => {
                        tracing::debug!(vmid, "create answer was lost but the guest is ours; adopting it");
                        self.wait_guest_unlocked(kind, node, vmid).await?;
                        return Ok(());
                    }
                    Some(false) => {
                        return Err(Error::Api {
                            op,
                            status: 500,
                            message: format!("{} {vmid} already exists (not created by this request)", kind.label()),
                        })
                    }
                    None if attempt + 1 < CREATE_ATTEMPTS => {
                        self.sleep("proxmox_retry", self.inner.cfg.retry.delay(attempt)).await?
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Err(Error::Timeout(format!("{op}: no attempt succeeded")))
    }
}
