//! Worker tasks with PVE-format UPIDs. A task is `running` for `task_ms`,
//! then its finish step runs under the state lock and the task becomes
//! `stopped` with `exitstatus` "OK" or the error text.

use std::time::Duration;

use crate::sim::{now, SharedSim, Sim};
use crate::store::{State, Task};
use crate::{guest_hook, locks};

/// The finish step: returns extra log lines, or the error message.
pub type Finish = Box<dyn FnOnce(&Sim, &mut State) -> Result<Vec<String>, String> + Send>;

pub struct TaskSpec {
    pub node: String,
    /// PVE worker type: qmcreate, qmclone, qmstart, ...
    pub kind: &'static str,
    /// Usually the VMID.
    pub id: String,
    pub user: String,
    pub log: Vec<String>,
}

pub fn format_upid(node: &str, pid: u32, pstart: u32, starttime: u64, kind: &str, id: &str, user: &str) -> String {
    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:")
}

/// Parses a UPID into (node, pid, pstart, starttime, type, id, user).
pub fn parse_upid(upid: &str) -> Option<(String, u32, u32, u64, String, String, String)> {
    let rest = upid.strip_prefix("UPID:")?.strip_suffix(':')?;
    let parts: Vec<&str> = rest.splitn(7, ':').collect();
    if parts.len() != 7 {
        return None;
    }
    let hex32 = |s: &str| (s.len() == 8).then(|| u32::from_str_radix(s, 16).ok()).flatten();
    Some((
        parts[0].to_string(),
        hex32(parts[1])?,
        hex32(parts[2])?,
        u64::from_str_radix(parts[3], 16).ok()?,
        parts[4].to_string(),
        parts[5].to_string(),
        parts[6].to_string(),
    ))
}

/// Registers the task (already inside the caller's state mutation) and
/// returns its UPID; call `run` afterwards to start the worker.
pub fn register(st: &mut State, spec: &TaskSpec) -> String {
    st.next_pid = st.next_pid.wrapping_add(1).max(1);
    let pid = 0x0010_0000 + st.next_pid;
    let pstart = 0x0100_0000 + st.next_pid * 7;
    let starttime = now() as u64;
    let upid = format_upid(&spec.node, pid, pstart, starttime, spec.kind, &spec.id, &spec.user);
    st.tasks.insert(
        upid.clone(),
        Task {
            upid: upid.clone(),
            node: spec.node.clone(),
            pid,
            pstart,
            starttime,
            kind: spec.kind.to_string(),
            id: spec.id.clone(),
            user: spec.user.clone(),
            status: "running".into(),
            exitstatus: None,
            endtime: None,
            log: spec.log.clone(),
        },
    );
    upid
}

/// Spawns the worker for a registered task. `lock_vmid` is the VM whose
/// config lock the finish step needs: the worker first waits for shared
/// (clone) locks on it, and lock-contention faults strike there.
pub fn run(sim: &SharedSim, upid: String, lock_vmid: Option<u32>, finish: Finish) {
    run_after(sim, upid, lock_vmid, Duration::ZERO, finish)
}

/// [`run`] for a worker that takes `extra` longer than `task_ms` (a guest's shutdown).
pub fn run_after(sim: &SharedSim, upid: String, lock_vmid: Option<u32>, extra: Duration, finish: Finish) {
    run_guest(sim, upid, lock_vmid, extra, None, finish)
}

/// [`run_after`] that first runs the guest hook for the action on `(action, vmid)`
/// (outside the state lock: it boots or stops a machine); its failure fails the task.
pub fn run_guest(
    sim: &SharedSim,
    upid: String,
    lock_vmid: Option<u32>,
    extra: Duration,
    guest: Option<(guest_hook::Action, u32)>,
    finish: Finish,
) {
    let sim = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(sim.cfg.task_ms) + extra).await;
        let mut lock_err = match lock_vmid {
            Some(vmid) => locks::wait_shared_clear(&sim, vmid).await.err(),
            None => None,
        };
        let mut hook_log = vec![];
        if let (None, Some((action, vmid))) = (&lock_err, guest) {
            match guest_hook::call(&sim, action, vmid).await {
                Ok(lines) => hook_log = lines,
                Err(e) => lock_err = Some(e),
            }
        }
        sim.mutate(|st| {
            let result = match lock_err {
                Some(e) => Err(e),
                None => finish(&sim, st).map(|lines| hook_log.into_iter().chain(lines).collect::<Vec<_>>()),
            };
            if let Some(t) = st.tasks.get_mut(&upid) {
                match result {
                    Ok(lines) => {
                        // Lines a worker `warn`s end the task as `WARNINGS: N`, like PVE.
                        let warnings = lines.iter().filter(|l| l.starts_with("WARN: ")).count();
                        t.log.extend(lines);
                        let status = if warnings > 0 { format!("WARNINGS: {warnings}") } else { "OK".into() };
                        t.log.push(format!("TASK {status}"));
                        t.exitstatus = Some(status);
                    }
                    Err(e) => {
                        t.log.push(format!("TASK ERROR: {e}"));
                        t.exitstatus = Some(e);
                    }
                }
                t.status = "stopped".into();
                t.endtime = Some(now() as u64);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_round_trips() {
        let u = format_upid("pve1", 0x1234, 0xABCDEF, 0x6500_0000, "qmclone", "100", "root@pam!strata");
        assert_eq!(u, "UPID:pve1:00001234:00ABCDEF:65000000:qmclone:100:root@pam!strata:");
        let p = parse_upid(&u).unwrap();
        assert_eq!(p.0, "pve1");
        assert_eq!(p.4, "qmclone");
        assert_eq!(p.6, "root@pam!strata");
        assert!(parse_upid("UPID:pve1:xyz").is_none());
    }
}
