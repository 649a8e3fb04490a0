//! VMID allocation. `GET /cluster/nextid` only suggests an id and reserves nothing, so
//! parallel creates in one apply would all get the same suggestion. The allocator keeps
//! the ids handed out in this process (until the VM exists, or forever once an id
//! turned out to be taken) and skips them; a collision with another process still
//! surfaces as "already exists" and the caller asks for another id.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};

#[derive(Default)]
pub struct VmidAllocator {
    /// Serialises suggestion + reservation so two callers never pick the same id.
    pick: tokio::sync::Mutex<()>,
    reserved: Arc<Mutex<BTreeSet<u32>>>,
}

/// A reserved VMID. Dropping it releases the reservation, unless [`VmidLease::keep`]
/// was called because the id is known to be in use.
pub struct VmidLease {
    pub id: u32,
    reserved: Arc<Mutex<BTreeSet<u32>>>,
    keep: bool,
}

impl VmidLease {
    /// Never hand this id out again in this process (it exists, or someone else has it).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for VmidLease {
    fn drop(&mut self) {
        if !self.keep {
            self.reserved.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        }
    }
}

impl VmidAllocator {
    /// Reserves a specific id (a configured `vm_id`), so the allocator skips it.
    pub fn reserve(&self, id: u32) -> VmidLease {
        self.reserved.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        VmidLease { id, reserved: self.reserved.clone(), keep: false }
    }
}

impl Client {
    /// A VMID no other allocation in this process holds, starting at the cluster's
    /// suggestion.
    pub async fn allocate_vmid(&self) -> Result<VmidLease> {
        let alloc = &self.inner.vmids;
        let _turn = alloc.pick.lock().await;
        let data = self.get("/cluster/nextid", &[]).await?;
        let suggested: u32 = match &data {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            _ => None,
        }
        .ok_or_else(|| Error::Decode { op: "GET /cluster/nextid".into(), message: format!("not an id: {data}") })?;
        let mut reserved = alloc.reserved.lock().unwrap_or_else(|p| p.into_inner());
        let id = (suggested..).find(|id| !reserved.contains(id)).expect("id space");
        reserved.insert(id);
        Ok(VmidLease { id, reserved: alloc.reserved.clone(), keep: false })
    }

    pub fn reserve_vmid(&self, id: u32) -> VmidLease {
        self.inner.vmids.reserve(id)
    }
}
