//! What happens on each load balancer node: packages and the check user, validation of
//! both configurations, installing them with a reload of what changed, observing the
//! node for drift, and removing everything on destroy.

use anyhow::bail;

use super::render::{
    self, BRIDGE_INTERFACE, CERT_DIR, DROP_IN_NAME, HAPROXY_CFG, KEEPALIVED_CONF, SCRIPT_USER, SYSCTL_FILE,
};
use super::LoadBalancerModel;
use crate::node::services::UnitAction;
use crate::node::{quote, Node};

const PACKAGES: [&str; 2] = ["haproxy", "keepalived"];
const HAPROXY: &str = "haproxy.service";
const KEEPALIVED: &str = "keepalived.service";
const HAPROXY_CHECK: &str = "haproxy -c -f {}";
/// keepalived 2.2.7 ends its own configuration test with SIGTERM (exit 143) whenever the
/// configuration has a `vrrp_script`, valid or not, so its diagnostics decide: a clean
/// configuration prints none.
const KEEPALIVED_CHECK: &str = "out=$(keepalived --config-test -f {} 2>&1); rc=$?; \
     if [ -n \"$out\" ] || [ $rc -ne 0 -a $rc -ne 143 ]; then printf '%s\\n' \"$out\" >&2; exit 1; fi";

/// Everything one node gets.
#[derive(Clone)]
pub struct NodeFiles {
    pub haproxy: String,
    pub keepalived: String,
    /// (path, PEM) of the TLS certificates haproxy.cfg names.
    pub certificates: Vec<(String, String)>,
}

impl NodeFiles {
    pub fn render(m: &LoadBalancerModel, index: usize, priority: i64) -> NodeFiles {
        NodeFiles {
            haproxy: render::haproxy(m, index),
            keepalived: render::keepalived(m, index, priority),
            certificates: m
                .frontend
                .iter()
                .filter(|f| f.mode.as_deref() == Some("http"))
                .filter_map(|f| f.tls_certificate.clone().map(|pem| (render::cert_path(f), pem)))
                .collect(),
        }
    }
}

/// The node lock every change of a load balancer node holds (`flock`), so concurrent
/// Terraform runs never interleave their checks and installs on one node.
pub const LOCK_FILE: &str = "/run/lock/strata-load-balancer.lock";

/// What a node runs from: systemd, both packages, the check's user. Then both new files
/// are validated there; nothing live has changed when this fails.
pub async fn prepare_and_check(node: &Node, files: &NodeFiles) -> anyhow::Result<()> {
    let _exclusive = node.exclusive(LOCK_FILE).await?;
    node.require_systemd().await?;
    node.install_packages(&PACKAGES).await?;
    let user = quote(SCRIPT_USER);
    node.run_ok(
        "creating the keepalived check user",
        &format!("id -u {user} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin {user}"),
    )
    .await?;
    // haproxy -c loads the certificates the configuration names.
    write_certificates(node, files).await?;
    node.check_candidate(HAPROXY_CFG, files.haproxy.as_bytes(), 0o644, HAPROXY_CHECK).await?;
    node.check_candidate(KEEPALIVED_CONF, files.keepalived.as_bytes(), 0o640, KEEPALIVED_CHECK).await
}

async fn write_certificates(node: &Node, files: &NodeFiles) -> anyhow::Result<()> {
    for (path, pem) in &files.certificates {
        node.write_validated(path, pem.as_bytes(), 0o600, None).await?;
    }
    Ok(())
}

/// What keepalived does once its new configuration is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalived {
    /// Runs; reloaded when its configuration changed.
    Reload,
    /// Runs; restarted when its configuration changed (see [`super::LoadBalancer::converge`]:
    /// the VIP holder leaving its VRRP group when it cannot hand the VIP over).
    Restart,
    /// Stopped, the new configuration waiting: the node is out of every VRRP group until
    /// it is started (see `super::regroup`).
    Park,
}

/// Installs the files (each validated again as it replaces the live one) and makes
/// haproxy run, reloaded (never restarted) when its configuration changed; keepalived
/// as `keepalived` says.
pub async fn install(
    node: &Node,
    m: &LoadBalancerModel,
    files: &NodeFiles,
    keepalived: Keepalived,
) -> anyhow::Result<()> {
    let _exclusive = node.exclusive(LOCK_FILE).await?;
    if node.write_validated(SYSCTL_FILE, render::sysctl(m).as_bytes(), 0o644, None).await? {
        node.run_ok("applying the sysctl file", &format!("sysctl -q -p {}", quote(SYSCTL_FILE))).await?;
    }
    // Also when the file was already there: the value does not survive a reboot of a
    // node whose sysctl service did not run.
    node.run_ok("allowing binds to the VIP", "sysctl -q -w net.ipv4.ip_nonlocal_bind=1").await?;
    node.drop_in(HAPROXY, DROP_IN_NAME, &render::haproxy_drop_in(m)).await?;
    write_certificates(node, files).await?;
    let haproxy_changed =
        node.write_validated(HAPROXY_CFG, files.haproxy.as_bytes(), 0o644, Some(HAPROXY_CHECK)).await?;
    let keepalived_changed =
        node.write_validated(KEEPALIVED_CONF, files.keepalived.as_bytes(), 0o640, Some(KEEPALIVED_CHECK)).await?;
    node.ensure_running(HAPROXY, haproxy_changed.then_some(UnitAction::Reload)).await?;
    match keepalived {
        Keepalived::Park => {
            if node.unit_state(KEEPALIVED).await?.is_active() {
                node.unit(KEEPALIVED, UnitAction::Stop).await?;
            }
        }
        Keepalived::Reload | Keepalived::Restart => {
            let action = if keepalived == Keepalived::Restart { UnitAction::Restart } else { UnitAction::Reload };
            node.ensure_running(KEEPALIVED, keepalived_changed.then_some(action)).await?;
        }
    }
    let state = node.unit_state(HAPROXY).await?;
    if !state.is_active() {
        bail!("load_balancer: haproxy on {} is {} after starting it", node.label(), state.active);
    }
    Ok(())
}

/// One node as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub haproxy_sha256: String,
    pub keepalived_sha256: String,
    pub haproxy_state: String,
    pub keepalived_state: String,
    pub holds_vip: bool,
}

pub async fn observe(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<Observed> {
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    let haproxy = text(node.read_file(HAPROXY_CFG).await?);
    let keepalived = text(node.read_file(KEEPALIVED_CONF).await?);
    Ok(Observed {
        haproxy_sha256: haproxy.as_deref().map(render::sha256).unwrap_or_else(|| render::ABSENT.into()),
        keepalived_sha256: keepalived
            .as_deref()
            .map(|k| render::keepalived_digest(k, m.auth_pass.as_deref()))
            .unwrap_or_else(|| render::ABSENT.into()),
        haproxy_state: node.unit_state(HAPROXY).await?.active,
        keepalived_state: node.unit_state(KEEPALIVED).await?.active,
        holds_vip: holds_vip(node, m).await?,
    })
}

/// Whether `node` holds keepalived's VIP (the bridge of a reload under way is on
/// another interface, see [`render::vip_bridge`]).
pub async fn holds_vip(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<bool> {
    let vip = render::vip_net(m).map(|v| v.addr());
    Ok(interface_addresses(node, m).await?.iter().any(|a| Some(a.addr()) == vip))
}

/// The addresses on the VIP's interface.
async fn interface_addresses(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<Vec<ipnet::IpNet>> {
    let out =
        node.run("looking for the VIP", &format!("ip -o addr show dev {} 2>/dev/null", quote(&m.interface))).await?;
    Ok(render::addresses(&out.stdout))
}

/// Adds the VIP bridge (see [`render::vip_bridge`]) to `node`: no prefix route, and a
/// kernel lifetime so that it goes away by itself should the apply stop before
/// [`unbridge_vip`]. `replace` also renews one left from an earlier attempt.
pub async fn bridge_vip(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<()> {
    let Some(bridge) = render::vip_bridge(m) else { bail!("load_balancer: vip {:?} is not an address/prefix", m.vip) };
    let nodad = if bridge.addr().is_ipv6() { " nodad" } else { "" };
    node.run_ok(
        "keeping the VIP during the keepalived reload",
        &format!(
            "ip addr replace {} dev {BRIDGE_INTERFACE} noprefixroute{nodad} valid_lft {BRIDGE_LIFETIME_SECS} \
             preferred_lft {BRIDGE_LIFETIME_SECS}",
            quote(&bridge.to_string()),
        ),
    )
    .await
    .map(drop)
}

/// How long a VIP bridge lives if nobody removes it: longer than a reload and an
/// election, short enough that a node that lost the VIP does not answer for it long.
const BRIDGE_LIFETIME_SECS: u32 = 30;

/// Removes the VIP bridge (if its lifetime has not ended it already).
pub async fn unbridge_vip(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<()> {
    let Some(bridge) = render::vip_bridge(m) else { return Ok(()) };
    let out =
        node.run("looking for the VIP bridge", &format!("ip -o addr show dev {BRIDGE_INTERFACE} 2>/dev/null")).await?;
    if render::addresses(&out.stdout).contains(&bridge) {
        let cmd = format!("ip addr del {} dev {BRIDGE_INTERFACE}", quote(&bridge.to_string()));
        node.run_ok("removing the VIP kept during the reload", &cmd).await?;
    }
    Ok(())
}

/// Whether keepalived's own VIP (not the bridge) is on `node`.
pub async fn keepalived_vip_on(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<bool> {
    let vip = render::vip_net(m);
    Ok(interface_addresses(node, m).await?.iter().any(|a| Some(*a) == vip))
}

/// Stops keepalived (it takes the VIP away) and haproxy, disables both, removes every
/// file this resource wrote, and deletes the VIP should it still be there.
pub async fn remove(node: &Node, m: &LoadBalancerModel) -> anyhow::Result<()> {
    let _exclusive = node.exclusive(LOCK_FILE).await?;
    for unit in [KEEPALIVED, HAPROXY] {
        let state = node.unit_state(unit).await?;
        if state.enabled == "not-found" {
            continue;
        }
        if state.is_active() || state.active == "activating" {
            node.unit(unit, UnitAction::Stop).await?;
        }
        if state.enabled == "enabled" {
            node.unit(unit, UnitAction::Disable).await?;
        }
    }
    for path in [HAPROXY_CFG, KEEPALIVED_CONF, SYSCTL_FILE] {
        node.remove_file(path).await?;
    }
    node.run_ok("removing the TLS certificates", &format!("rm -rf -- {}", quote(CERT_DIR))).await?;
    let drop_in = format!("/etc/systemd/system/{HAPROXY}.d/{DROP_IN_NAME}.conf");
    node.remove_file(&drop_in).await?;
    node.run_ok("reloading systemd units", "systemctl daemon-reload").await?;
    // A bridge left by a reload that failed would answer for the VIP until it expires.
    unbridge_vip(node, m).await?;
    if holds_vip(node, m).await? {
        node.run_ok("removing the VIP", &format!("ip addr del {} dev {}", quote(&m.vip), quote(&m.interface))).await?;
    }
    Ok(())
}
