//! Fault injection decisions. The middleware in `http` acts on them.

use axum::http::{Method, StatusCode};

use crate::config::Faults;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    /// Answer with this 5xx before doing anything (so a retry is safe).
    Fail(StatusCode),
    /// Drop the connection before the request is handled.
    ResetBefore,
    /// Handle the request, then drop the connection instead of answering.
    ResetAfter,
}

/// True with probability `pct`%.
pub fn roll(pct: u8) -> bool {
    pct > 0 && (pct >= 100 || fastrand::u8(0..100) < pct)
}

pub fn decide(f: &Faults, method: &Method) -> Injected {
    if roll(f.fail_5xx_pct) {
        let code = if fastrand::bool() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::SERVICE_UNAVAILABLE };
        return Injected::Fail(code);
    }
    if roll(f.reset_pct) {
        // Only a non-GET has an effect that can be lost with the answer.
        if *method != Method::GET && roll(f.reset_after_pct) {
            return Injected::ResetAfter;
        }
        return Injected::ResetBefore;
    }
    Injected::None
}

/// The lock-timeout message PVE prints when flock on the VM config fails.
pub fn lock_timeout_msg(vmid: u32) -> String {
    format!("can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
}

/// The same for a container's config (`/run/lock/lxc/pve-config-ID.lock`).
pub fn ct_lock_timeout_msg(vmid: u32) -> String {
    format!("can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_deterministic() {
        let always = Faults { fail_5xx_pct: 100, ..Faults::default() };
        let never = Faults::default();
        for _ in 0..200 {
            assert!(matches!(decide(&always, &Method::GET), Injected::Fail(_)));
            assert_eq!(decide(&never, &Method::POST), Injected::None);
        }
        let after = Faults { reset_pct: 100, reset_after_pct: 100, ..Faults::default() };
        assert_eq!(decide(&after, &Method::POST), Injected::ResetAfter);
        assert_eq!(decide(&after, &Method::GET), Injected::ResetBefore);
    }
}
