//! The files this resource owns on each node, rendered from the model: haproxy.cfg,
//! keepalived.conf, the sysctl file and haproxy's systemd drop-in.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{FrontendModel, LoadBalancerModel};
use crate::framework::timeouts::parse_go_duration;

pub const HAPROXY_CFG: &str = "/etc/haproxy/haproxy.cfg";
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-strata-load-balancer.conf";
pub const CERT_DIR: &str = "/etc/haproxy/strata";
/// The unprivileged user keepalived runs its haproxy check as (`script_user`).
pub const SCRIPT_USER: &str = "keepalived_script";
pub const DROP_IN_NAME: &str = "strata-load-balancer";
/// What a digest map says for a file that is not there.
pub const ABSENT: &str = "absent";

/// The default priority of the node at `index`: the first is preferred.
pub fn default_priority(index: usize) -> i64 {
    100 - index as i64
}

/// The node's VRRP address: `address`, else its SSH host.
pub fn node_address(m: &LoadBalancerModel, index: usize) -> String {
    m.node[index].node.address().to_string()
}

/// The VIP without its prefix length.
pub fn vip_address(m: &LoadBalancerModel) -> String {
    m.vip.split('/').next().unwrap_or_default().to_string()
}

/// The VIP as keepalived configures it (address and prefix length). `None` for one
/// that does not parse (refused at plan before it gets here).
pub fn vip_net(m: &LoadBalancerModel) -> Option<ipnet::IpNet> {
    m.vip.parse().ok()
}

/// A second copy of the VIP that keeps it answering while keepalived replaces its own
/// (see `regroup`): the VIP as a host address on the loopback interface
/// ([`BRIDGE_INTERFACE`]), where the kernel accepts it as local on every interface and
/// answers ARP for it. Not on keepalived's interface: keepalived watches that one and,
/// when an address equal to its VIP goes away there (whatever the prefix length), it
/// deletes and re-adds its own VIP, a gap in which a SYN is lost (CI saw it as one probe
/// unanswered for 200 ms when the bridge was removed).
pub fn vip_bridge(m: &LoadBalancerModel) -> Option<ipnet::IpNet> {
    let vip = vip_net(m)?;
    ipnet::IpNet::new(vip.addr(), vip.max_prefix_len()).ok()
}

/// Where the VIP bridge lives.
pub const BRIDGE_INTERFACE: &str = "lo";

/// The `address/prefix` words of `ip -o addr` output, however the text spells them.
pub fn addresses(ip_addr_output: &str) -> Vec<ipnet::IpNet> {
    ip_addr_output.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

fn ms(go: &Option<String>, default: &str) -> u128 {
    parse_go_duration(go.as_deref().unwrap_or(default)).map(|d| d.as_millis()).unwrap_or(0)
}

/// `host:port` in haproxy's syntax (IPv6 literals too: haproxy splits at the last colon).
fn endpoint(host: &str, port: i64) -> String {
    format!("{host}:{port}")
}

pub fn cert_path(f: &FrontendModel) -> String {
    format!("{CERT_DIR}/{}.pem", f.name)
}

fn header(m: &LoadBalancerModel) -> String {
    format!(
        "# Managed by Strata (strata_load_balancer {:?}). Hand edits show as drift and are overwritten on apply.\n",
        m.name
    )
}

/// haproxy.cfg of the node at `index` (only the statistics page binds the node's own
/// address; every frontend binds the VIP).
pub fn haproxy(m: &LoadBalancerModel, index: usize) -> String {
    let mut s = header(m);
    let vip = vip_address(m);
    s.push_str(
        "global\n    log /dev/log local0\n    chroot /var/lib/haproxy\n    \
         stats socket /run/haproxy/admin.sock mode 660 level admin\n    user haproxy\n    group haproxy\n    \
         master-worker\n\n",
    );
    // retries + redispatch on every retry: a connect a backend refuses (one restarting)
    // is tried at once on another server, so clients of the VIP never see it.
    let _ = write!(
        s,
        "defaults\n    log global\n    option dontlognull\n    retries 3\n    option redispatch 1\n    timeout connect {}ms\n    timeout client {}ms\n    \
         timeout server {}ms\n    timeout tunnel {}ms\n",
        ms(&m.connect_timeout, "5s"),
        ms(&m.client_timeout, "1m"),
        ms(&m.server_timeout, "1m"),
        ms(&m.tunnel_timeout, "1h"),
    );
    for f in &m.frontend {
        let mode = f.mode.as_deref().unwrap_or("tcp");
        let tls = match (&f.tls_certificate, mode) {
            (Some(_), "http") => format!(" ssl crt {}", cert_path(f)),
            _ => String::new(),
        };
        let _ = write!(
            s,
            "\nfrontend {name}\n    bind {bind}{tls}\n    mode {mode}\n    option {log}\n{fwd}    default_backend {name}\n",
            name = f.name,
            bind = endpoint(&vip, f.bind_port),
            log = if mode == "http" { "httplog" } else { "tcplog" },
            fwd = if mode == "http" { "    option forwardfor\n" } else { "" },
        );
        let hc = f.health_check.clone().unwrap_or_default();
        let kind = hc.kind.as_deref().unwrap_or("tcp");
        let _ = write!(
            s,
            "\nbackend {}\n    mode {mode}\n    balance {}\n    default-server inter {}ms fall 3 rise 2\n",
            f.name,
            f.balance.as_deref().unwrap_or("roundrobin"),
            ms(&hc.interval, "2s"),
        );
        if kind != "tcp" {
            let _ = writeln!(s, "    option httpchk GET {}", hc.path.as_deref().unwrap_or("/"));
            if let Some(status) = hc.expect_status {
                let _ = writeln!(s, "    http-check expect status {status}");
            }
        }
        let ssl_check = if kind == "https" { " check-ssl verify none" } else { "" };
        for b in &f.backend {
            let _ = writeln!(
                s,
                "    server {} {} check{ssl_check} weight {}{}",
                b.name,
                endpoint(&b.address, b.port),
                b.weight.unwrap_or(1),
                if b.backup == Some(true) { " backup" } else { "" },
            );
        }
    }
    if let Some(port) = m.stats_port {
        let _ = write!(
            s,
            "\nlisten stats\n    bind {}\n    mode http\n    stats enable\n    stats uri /stats\n    stats refresh 10s\n",
            endpoint(&node_address(m, index), port)
        );
    }
    s
}

/// Whether the advertisement interval needs VRRPv3 (fractions of a second).
pub fn is_vrrp3(advert_interval: f64) -> bool {
    advert_interval.fract() != 0.0
}

/// keepalived.conf of the node at `index`.
pub fn keepalived(m: &LoadBalancerModel, index: usize, priority: i64) -> String {
    keepalived_as(m, index, priority, false)
}

/// The priority of the address owner (RFC 5798 5.2.4): an instance of it that starts as
/// MASTER takes the VIP at once instead of waiting out a master-down interval.
pub const OWNER_PRIORITY: i64 = 255;

/// keepalived.conf of the VIP holder at `index` while it carries the VIP into a new
/// VRRP group (see `super::regroup`): the node's final configuration, except that it
/// starts as MASTER with the owner's priority, so a reload moves it into the new group
/// without the VIP leaving it, and no other node of the new group can take it.
pub fn keepalived_handover(m: &LoadBalancerModel, index: usize) -> String {
    keepalived_as(m, index, OWNER_PRIORITY, true)
}

fn keepalived_as(m: &LoadBalancerModel, index: usize, priority: i64, handover: bool) -> String {
    let advert = m.advert_interval.unwrap_or(1.0);
    let mut s = header(m);
    let _ = write!(
        s,
        "global_defs {{\n    router_id strata-{}-{}\n    # The check runs unprivileged, as a user that exists.\n    \
         enable_script_security\n    script_user {SCRIPT_USER}\n{}}}\n\n",
        m.name,
        index + 1,
        if is_vrrp3(advert) { "    vrrp_version 3\n" } else { "" },
    );
    // Asks systemd (over D-Bus) rather than probing for the process: works whatever
    // user the check runs as and whatever /proc lets it see.
    s.push_str(
        "vrrp_script strata_haproxy {\n    script \"/usr/bin/systemctl is-active --quiet haproxy.service\"\n    \
         interval 1\n    timeout 2\n    fall 1\n    rise 1\n}\n\n",
    );
    let _ = write!(
        s,
        "vrrp_instance {name} {{\n    state {state}\n    interface {iface}\n    virtual_router_id {vrid}\n    \
         priority {priority}\n    advert_int {advert}\n",
        name = m.name,
        state = if handover { "MASTER" } else { "BACKUP" },
        iface = m.interface,
        vrid = m.virtual_router_id,
    );
    // keepalived refuses nopreempt with state MASTER or the owner's priority.
    if m.nopreempt == Some(true) && !handover {
        s.push_str("    nopreempt\n");
    }
    if m.unicast != Some(false) {
        let _ = writeln!(s, "    unicast_src_ip {}\n    unicast_peer {{", node_address(m, index));
        for j in (0..m.node.len()).filter(|j| *j != index) {
            let _ = writeln!(s, "        {}", node_address(m, j));
        }
        s.push_str("    }\n");
    }
    if let Some(pass) = &m.auth_pass {
        // Quoted: unquoted, keepalived reads `#` or `!` as the start of a comment and cuts
        // the password short (the schema refuses what quotes cannot hold).
        let _ = writeln!(s, "    authentication {{\n        auth_type PASS\n        auth_pass \"{pass}\"\n    }}");
    }
    let _ = write!(
        s,
        "    virtual_ipaddress {{\n        {} dev {}\n    }}\n    track_script {{\n        strata_haproxy\n    }}\n}}\n",
        m.vip, m.interface
    );
    s
}

pub fn sysctl(m: &LoadBalancerModel) -> String {
    let v6 = if vip_address(m).contains(':') { "net.ipv6.ip_nonlocal_bind = 1\n" } else { "" };
    format!("{}# haproxy binds the VIP on nodes that do not hold it.\nnet.ipv4.ip_nonlocal_bind = 1\n{v6}", header(m))
}

pub fn haproxy_drop_in(m: &LoadBalancerModel) -> String {
    let v6 = if vip_address(m).contains(':') {
        "ExecStartPre=/usr/sbin/sysctl -q -w net.ipv6.ip_nonlocal_bind=1\n"
    } else {
        ""
    };
    format!(
        "{}# A haproxy that dies stays down: keepalived moves the VIP to a healthy node instead\n\
         # of it flapping back here; the next apply restarts it.\n[Service]\nRestart=no\n\
         # Binding the VIP where keepalived does not hold it needs this, whether or not\n\
         # systemd-sysctl ran before (it does not where /proc/sys is read-only, e.g. a container).\n\
         ExecStartPre=/usr/sbin/sysctl -q -w net.ipv4.ip_nonlocal_bind=1\n{v6}",
        header(m)
    )
}

/// SHA-256 (hex) of a file's content.
pub fn sha256(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// The keepalived digest: `auth_pass` values are replaced by `*` when they are the
/// expected password and by `(changed)` otherwise, so the digest shows a changed
/// password as drift but never depends on (or leaks a hash of) the password.
pub fn keepalived_digest(content: &str, expected_pass: Option<&str>) -> String {
    let masked: String = content
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("auth_pass") {
                Some(v) if v.starts_with(char::is_whitespace) => {
                    let indent = &l[..l.len() - t.len()];
                    let v = v.trim();
                    // Written quoted; files written before quoting have it bare.
                    let v = v.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(v);
                    let mark = if Some(v) == expected_pass { "*" } else { "(changed)" };
                    format!("{indent}auth_pass {mark}\n")
                }
                _ => format!("{l}\n"),
            }
        })
        .collect();
    sha256(&masked)
}
