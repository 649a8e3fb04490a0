//! VM config locks. PVE has two kinds: the `lock:` property written into a
//! config (e.g. `clone` while a clone runs; blocks changes until removed) and
//! the flock on `/var/lock/qemu-server/lock-ID.conf` that every modifying
//! operation takes (exclusive) and clone takes shared on its source. Waiting
//! for the flock is bounded; on timeout PVE says "got timeout".

use std::time::Duration;

use crate::error::{ApiError, ApiResult};
use crate::faults;
use crate::sim::Sim;
use crate::store::{State, Vm};

/// Fails if the config carries a `lock:` property (unless skiplock).
pub fn check_config_lock(vm: &Vm, skiplock: bool) -> Result<(), String> {
    match vm.config.get("lock") {
        Some(l) if !skiplock => Err(format!("VM is locked ({l})")),
        _ => Ok(()),
    }
}

/// Waits until no clone holds a shared lock on `vmid`, bounded by
/// `lock_wait_ms`; lock-contention faults strike here.
pub async fn wait_shared_clear(sim: &Sim, vmid: u32) -> Result<(), String> {
    let timeout_msg = || match sim.read(|st| st.vms.get(&vmid).map(|v| v.kind)) {
        Some(crate::store::GuestKind::Lxc) => faults::ct_lock_timeout_msg(vmid),
        _ => faults::lock_timeout_msg(vmid),
    };
    if faults::roll(sim.faults().lock_contention_pct) {
        return Err(timeout_msg());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(sim.cfg.lock_wait_ms);
    loop {
        if !sim.read(|st| st.shared_locked(vmid)) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timeout_msg());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a synchronous modification of `vmid` under its exclusive lock.
pub async fn exclusive<R>(sim: &Sim, vmid: u32, f: impl FnOnce(&mut State) -> ApiResult<R>) -> ApiResult<R> {
    wait_shared_clear(sim, vmid).await.map_err(ApiError::internal)?;
    sim.mutate(f)
}
