//! Taking a worker out of service as `kubectl drain` does, and the cluster-wide lock
//! that makes workers change one at a time.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::task::JoinHandle;

use crate::framework::Context;
use crate::kube::{KubeClient, NodeObject};

/// The Lease every worker change takes: one worker at a time across every resource and
/// every provider process that manages this cluster.
pub const LEASE: &str = "strata-worker-roll";
/// A holder that died stops renewing; the lock frees itself this long after.
const LEASE_DURATION: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_secs(1);

/// The annotation a worker's upgrade puts on the Node it cordons (the target version),
/// removed when it uncordons it.
pub const CORDONED_FOR_UPGRADE: &str = "strata.dev/cordoned-for-upgrade";

/// Whether the Node was cordoned by someone else than an upgrade of ours (by hand with
/// `kubectl cordon`, or another tool): then the upgrade leaves it cordoned afterwards.
/// One our upgrade cordoned and did not finish (it failed) is uncordoned when it is done.
pub fn cordoned_by_someone_else(n: &NodeObject) -> bool {
    n.unschedulable && !n.annotations.contains_key(CORDONED_FOR_UPGRADE)
}

/// The held Lease; renewed in the background until released.
struct RollLock {
    client: KubeClient,
    holder: String,
    renew: JoinHandle<()>,
}

impl RollLock {
    /// Waits (bounded by the operation's `timeouts`) until the Lease is free, then takes it.
    async fn take(ctx: &Context, client: &KubeClient, worker: &str) -> anyhow::Result<RollLock> {
        let holder =
            format!("strata-worker/{worker}/{}", crate::pki::bootstrap_token().split('.').next().unwrap_or(""));
        loop {
            let Some(last) = client.try_lease(LEASE, &holder, LEASE_DURATION).await? else { break };
            tokio::select! {
                _ = ctx.cancel.cancelled() => bail!(
                    "worker {worker}: waiting for Lease kube-system/{LEASE} (workers change one at a time), held by {last}: {}",
                    ctx.stop_reason().unwrap_or_default()
                ),
                _ = crate::wait::sleep("worker_lease", POLL) => {}
            }
        }
        let renewer = client.clone();
        let h = holder.clone();
        let renew = tokio::spawn(async move {
            loop {
                // A background timer nothing waits on: not a wait record (crate::wait).
                tokio::time::sleep(RENEW_EVERY).await;
                let _ = renewer.try_lease(LEASE, &h, LEASE_DURATION).await;
            }
        });
        Ok(RollLock { client: client.clone(), holder, renew })
    }

    async fn release(self) {
        self.renew.abort();
        // A release that fails leaves a Lease that expires by itself.
        let _ = self.client.release_lease(LEASE, &self.holder).await;
    }
}

/// Runs `work` holding the Lease for `worker`, so that it runs while no other worker
/// changes: every step that restarts a kubelet, drains or resets a worker goes through
/// here. The wait is bounded by the operation's `timeouts`; its error names the holder.
pub async fn in_turn<T>(
    ctx: &Context,
    client: &KubeClient,
    worker: &str,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let lock = RollLock::take(ctx, client, worker).await?;
    let result = work.await;
    lock.release().await;
    result
}

/// Cordons Node `name`, then evicts its pods through the eviction API (which refuses
/// while a PodDisruptionBudget would be violated: retried) and waits until they are
/// gone. Bounded by the operation's `timeouts`; the error then names what is left.
pub async fn cordon_and_drain(ctx: &Context, client: &KubeClient, name: &str) -> anyhow::Result<()> {
    client.set_unschedulable(name, true).await?;
    let mut waiting = String::new();
    loop {
        let pods = client.pods_to_evict(name).await?;
        if pods.is_empty() {
            return Ok(());
        }
        waiting.clear();
        for (ns, pod) in &pods {
            if let Some(why) = client.evict(ns, pod).await? {
                waiting = format!("the eviction of pod {ns}/{pod} is refused: {why}");
            } else if client.pod_exists(ns, pod).await? {
                waiting = format!("pod {ns}/{pod} is being evicted");
            }
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => bail!(
                "draining worker {name}: {waiting}; gave up ({}). The node is left cordoned and nothing was \
                 reset or upgraded; allow the eviction (e.g. the PodDisruptionBudget) or raise timeouts.{}.",
                ctx.stop_reason().unwrap_or_default(),
                ctx.operation()
            ),
            _ = crate::wait::sleep("drain", POLL) => {}
        }
    }
}
