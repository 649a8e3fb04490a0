//! A VRRP group change (`virtual_router_id`, password, interface, unicast or
//! advertisement interval) while one node holds the VIP. Nodes of different groups do
//! not hear each other, so rolling node by node (backups first, holder last) lets the
//! new group elect a master of its own while the holder still serves the old group, and
//! the holder takes the VIP back once it joins: two moves, each resetting the
//! connections under way. Here the VIP never leaves the holder:
//! 1. every other node gets its new files with keepalived stopped ("parked"), so the old
//!    group is the holder alone and nobody takes the VIP when it leaves;
//! 2. the holder reloads into the new group as MASTER with the owner's priority (255),
//!    which keepalived makes master at once instead of after a master-down interval:
//!    the VIP is re-added within milliseconds, and a second copy of it ("bridge",
//!    see `handover_holding_vip`) answers for those milliseconds;
//! 3. the parked nodes start one at a time, hear the owner and stay backups;
//! 4. the holder reloads its final configuration: the same group now, so keepalived
//!    keeps it master (a reload of an instance that exists keeps its state).
//!
//! Only for the seconds of steps 1-3 can the VIP not fail over.

use std::time::{Duration, Instant};

use super::deploy::{self, Keepalived, NodeFiles};
use super::{holders, on_node, render, Healthy, LoadBalancer, LoadBalancerModel};
use crate::framework::{Diagnostic, Diagnostics};
use crate::node::Node;

const KEEPALIVED: &str = "keepalived.service";
/// How long the VIP bridge outlives the first sight of keepalived's VIP after a reload.
const RELOAD_SETTLING: Duration = Duration::from_millis(1500);

/// Moves the nodes `todo` (which include `holder`, the only node holding the VIP) into
/// the new VRRP group of `m` without the VIP leaving `holder`.
pub async fn regroup(
    nodes: &[Node],
    m: &LoadBalancerModel,
    files: &[NodeFiles],
    todo: &[usize],
    holder: usize,
) -> Result<(), Diagnostics> {
    let install = |i: usize, files: &NodeFiles, keepalived: Keepalived| {
        let name = m.node[i].node.name.clone();
        let files = files.clone();
        async move {
            deploy::install(&nodes[i], m, &files, keepalived).await.map_err(|e| Diagnostics::from(on_node(&name, e)))
        }
    };
    let parked: Vec<usize> = todo.iter().copied().filter(|i| *i != holder).collect();
    for i in &parked {
        install(*i, &files[*i], Keepalived::Park).await?;
    }
    let handover = NodeFiles { keepalived: render::keepalived_handover(m, holder), ..files[holder].clone() };
    handover_holding_vip(nodes, m, holder, install(holder, &handover, Keepalived::Reload)).await?;
    wait_only_holder(nodes, m, holder, holder, Duration::ZERO).await?;
    for i in &parked {
        install(*i, &files[*i], Keepalived::Reload).await?;
        wait_only_holder(nodes, m, *i, holder, Duration::ZERO).await?;
    }
    // A started node that does not hear the holder claims the VIP once its master-down
    // interval (three advertisements plus skew) has passed: watch for that before the
    // holder gives up the owner's priority.
    if let Some(last) = parked.last() {
        let master_down = Duration::from_secs_f64(3.0 * m.advert_interval.unwrap_or(1.0)) + Duration::from_secs(1);
        wait_only_holder(nodes, m, *last, holder, master_down).await?;
    }
    install(holder, &files[holder], Keepalived::Reload).await?;
    // With preemption, a node of higher priority (one added in this change) takes over.
    let settled_on = (m.nopreempt != Some(true)).then(|| (0..m.node.len()).max_by_key(|x| m.priority(*x))).flatten();
    let h = Healthy { rolled: todo, group_changes: false, need_rolled: false, settled_on };
    LoadBalancer::wait_healthy(nodes, m, holder, h).await
}

/// Runs `reload` (the holder's keepalived into the new group) with the VIP bridged:
/// keepalived deletes the old instance's VIP before the new instance adds it again, a
/// gap of milliseconds (more on a loaded node) in which a connection attempt waits for a
/// SYN retransmission, a second. The bridge (the same address, another prefix length)
/// answers meanwhile and goes once keepalived's own VIP is back.
async fn handover_holding_vip(
    nodes: &[Node],
    m: &LoadBalancerModel,
    holder: usize,
    reload: impl std::future::Future<Output = Result<(), Diagnostics>>,
) -> Result<(), Diagnostics> {
    let name = &m.node[holder].node.name;
    let node = &nodes[holder];
    deploy::bridge_vip(node, m).await.map_err(|e| on_node(name, e))?;
    let moved = async {
        reload.await?;
        let deadline = Instant::now() + m.election_bound();
        while !deploy::keepalived_vip_on(node, m).await.map_err(|e| on_node(name, e))? {
            if Instant::now() > deadline {
                let state = node.unit_state(KEEPALIVED).await.map_err(|e| on_node(name, e))?;
                let held = holders(nodes, m).await?;
                return Err(not_handed_over(
                    m,
                    holder,
                    holder,
                    &state.active,
                    &held,
                    "did not come back from keepalived",
                ));
            }
            crate::wait::sleep("vip_back_from_keepalived", Duration::from_millis(100)).await;
        }
        // `systemctl reload keepalived` only sends SIGHUP: the VIP seen at once can be the
        // old instance's, which keepalived removes a moment later, once it has read the
        // new configuration. The bridge stays a settling time longer, and goes only while
        // keepalived's VIP is there.
        crate::wait::sleep("keepalived_reload_settling", RELOAD_SETTLING).await;
        while !deploy::keepalived_vip_on(node, m).await.map_err(|e| on_node(name, e))? {
            if Instant::now() > deadline + RELOAD_SETTLING {
                let held = holders(nodes, m).await?;
                let state = node.unit_state(KEEPALIVED).await.map_err(|e| on_node(name, e))?;
                return Err(not_handed_over(m, holder, holder, &state.active, &held, "went again after the reload"));
            }
            crate::wait::sleep("vip_back_from_keepalived", Duration::from_millis(100)).await;
        }
        Ok(())
    }
    .await;
    // Also after a failure: the node may not hold the VIP for keepalived any more.
    let unbridged = deploy::unbridge_vip(node, m).await.map_err(|e| Diagnostics::from(on_node(name, e)));
    moved.and(unbridged)
}

/// Waits until keepalived runs on `node` and the VIP is on `holder` alone; with a
/// `hold` window, also that this stays so for that long.
async fn wait_only_holder(
    nodes: &[Node],
    m: &LoadBalancerModel,
    node: usize,
    holder: usize,
    hold: Duration,
) -> Result<(), Diagnostics> {
    let deadline = Instant::now() + m.election_bound() + hold;
    let name = &m.node[node].node.name;
    let mut good_since: Option<Instant> = None;
    loop {
        let state = nodes[node].unit_state(KEEPALIVED).await.map_err(|e| on_node(name, e))?;
        let held = holders(nodes, m).await?;
        if state.is_active() && held == [holder] {
            if good_since.get_or_insert_with(Instant::now).elapsed() >= hold {
                return Ok(());
            }
        } else {
            good_since = None;
            if !hold.is_zero() && held.iter().any(|x| *x != holder) {
                // Another node claimed the VIP: it does not hear the holder.
                return Err(not_handed_over(m, node, holder, &state.active, &held, "was claimed by another node"));
            }
        }
        if Instant::now() > deadline {
            return Err(not_handed_over(m, node, holder, &state.active, &held, "did not settle"));
        }
        crate::wait::sleep("vip_settle", Duration::from_millis(200)).await;
    }
}

fn not_handed_over(
    m: &LoadBalancerModel,
    node: usize,
    holder: usize,
    active: &str,
    held: &[usize],
    what: &str,
) -> Diagnostics {
    let names: Vec<&str> = held.iter().map(|i| m.node[*i].node.name.as_str()).collect();
    Diagnostic::error(
        "VRRP group change not handed over",
        format!(
            "Moving the VIP holder {:?} into the new VRRP group (virtual_router_id {}), the VIP {what}: keepalived on \
             {:?} is {active} and the VIP is held by [{}]. Check that the nodes reach each other on {} \
             (journalctl -u keepalived); the next apply completes the change.",
            m.node[holder].node.name,
            m.virtual_router_id,
            m.node[node].node.name,
            names.join(", "),
            m.interface
        ),
    )
    .into()
}
