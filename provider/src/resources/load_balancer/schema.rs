//! The schema of `strata_load_balancer`, with the checks on single attributes.

use crate::framework::timeouts::parse_go_duration;
use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator, Value};
use crate::resources::cluster_node;

/// The smallest `advert_interval`: VRRPv3 counts in centiseconds, but below 0.1 s the
/// scheduling jitter of a busy host alone makes backups take over from a live master.
pub const MIN_ADVERT_INTERVAL: f64 = 0.1;
/// VRRPv2's largest advertisement interval (an 8-bit number of seconds).
pub const MAX_ADVERT_INTERVAL: f64 = 255.0;

/// haproxy section and server names: what its parser accepts as an identifier.
const IDENTIFIER: (&str, &str) =
    ("[A-Za-z0-9][A-Za-z0-9._:-]{0,62}", "letters, digits, '.', '_', ':' or '-' (at most 63)");

fn check_cidr(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if !s.contains('/') {
        return Err(format!("{s:?} is not in CIDR form: give the address with its prefix length, e.g. 10.0.0.100/24."));
    }
    s.parse::<ipnet::IpNet>()
        .map(|_| ())
        .map_err(|e| format!("{s:?} is not an address in CIDR form ({e}), e.g. 10.0.0.100/24."))
}

/// An IP address or an RFC 1123 host name.
pub fn is_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // All-numeric dotted names are malformed addresses, not host names.
    s.len() <= 253 && s.split('.').all(label) && !s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

fn check_host(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if is_host(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is neither an IP address nor a host name."))
    }
}

fn check_advert_interval(v: &Value) -> Result<(), String> {
    let Value::Number(n) = v else { return Ok(()) };
    let f: f64 = n.to_string().parse().unwrap_or(f64::NAN);
    if !(MIN_ADVERT_INTERVAL..=MAX_ADVERT_INTERVAL).contains(&f) {
        return Err(format!("Must be between {MIN_ADVERT_INTERVAL} and {MAX_ADVERT_INTERVAL} seconds, got {n}."));
    }
    // keepalived counts VRRPv3 intervals in centiseconds.
    if (f * 100.0 - (f * 100.0).round()).abs() > 1e-9 {
        return Err(format!("Must be a multiple of 0.01 s (VRRPv3 counts centiseconds), got {n}."));
    }
    Ok(())
}

/// What keepalived 2.2's parser can hold in a quoted `auth_pass "..."`: inside double
/// quotes `#` and `!` start no comment and spaces do not split, but a quoted string
/// ends at the next `"` (no escape), a `\` before the closing quote swallows it, and
/// `$NAME` is replaced by a definition (`$_HASH`, `$_PWD`, ...) even inside quotes.
/// Printable ASCII only, so that 8 characters are the 8 bytes VRRP carries.
pub fn check_auth_pass(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.chars().all(|c| (' '..='~').contains(&c) && !matches!(c, '"' | '\\' | '$')) {
        Ok(())
    } else {
        // The value is secret: say what is refused, never which character it holds.
        Err("May hold printable ASCII characters (space to ~) except `\"`, `\\` and `$`, which keepalived's \
             configuration parser cannot carry inside a quoted auth_pass."
            .into())
    }
}

fn check_duration(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    let d = parse_go_duration(s).map_err(|e| format!("Must be a duration such as \"5s\" or \"1h\": {e}."))?;
    if d.as_millis() == 0 {
        return Err("Must be longer than 0 (haproxy reads 0 as no timeout at all).".into());
    }
    Ok(())
}

fn port(name: &str, description: &str) -> Attribute {
    Attribute::required(name, Type::Number).validate(Validator::IntBetween(1, 65535)).description(description)
}

fn timeout(name: &str, default: &str, what: &str) -> Attribute {
    Attribute::optional(name, Type::String)
        .default(default)
        .validate(Validator::Custom(check_duration))
        .description(format!("haproxy `timeout {what}` (Go duration, default `{default}`)."))
}

fn node_block() -> NestedBlock {
    NestedBlock::list(
        "node",
        cluster_node::block(
            "A load balancer node: it runs haproxy and keepalived as their Debian systemd units. Two or more; \
             keepalived's priority follows their order unless set (the first node is preferred for the VIP). \
             Nodes are matched by `name`: changing `ssh` or renaming a node that keeps its address changes \
             nothing on it; an added node is configured alone (the others' keepalived is reloaded, one at a \
             time, only where its peer list changes); a removed node is cleaned.",
            &cluster_node::Identity::named(
                "its VRRP source and unicast peer address on `interface`; default: `ssh.host`, which must then \
                 be an IP address",
            ),
        )
        .attribute(
            Attribute::optional_computed("priority", Type::Number)
                .validate(Validator::IntBetween(1, 254))
                .description("keepalived priority, 1-254 (default: 100 for the first node, one less for each next)."),
        ),
    )
    .items(2, 0)
}

fn frontend_block() -> NestedBlock {
    let backend = NestedBlock::list(
        "backend",
        Block::new("A server traffic goes to.")
            .attribute(
                Attribute::required("name", Type::String)
                    .validate(Validator::Matches(IDENTIFIER.0, IDENTIFIER.1))
                    .description("Server name in haproxy's configuration and statistics."),
            )
            .attribute(
                Attribute::required("address", Type::String)
                    .validate(Validator::Custom(check_host))
                    .description("IP address or host name (resolved by haproxy when it loads the configuration)."),
            )
            .attribute(port("port", "Server port, 1-65535."))
            .attribute(
                Attribute::optional("weight", Type::Number)
                    .default(1i64)
                    .validate(Validator::IntBetween(0, 256))
                    .description("haproxy `weight` (0-256, default 1; 0 sends no new traffic)."),
            )
            .attribute(
                Attribute::optional("backup", Type::Bool)
                    .default(false)
                    .description("Only used when every non-backup server is down (haproxy `backup`)."),
            ),
    )
    .items(1, 0);
    let health = NestedBlock::single(
        "health_check",
        Block::new("How haproxy checks the servers (default: a TCP connect).")
            .attribute(
                Attribute::optional("type", Type::String)
                    .default("tcp")
                    .validate(Validator::OneOf(vec!["tcp", "http", "https"]))
                    .description(
                        "`tcp` (connect), `http` or `https` (a GET of `path`; https does not verify the \
                         certificate, as kube-apiserver's /readyz is checked without client credentials).",
                    ),
            )
            .attribute(
                Attribute::optional("path", Type::String)
                    .validate(Validator::Matches("/[!-~]*", "an absolute URL path without spaces"))
                    .description("http and https only: the path to GET (default `/`)."),
            )
            .attribute(
                Attribute::optional("expect_status", Type::Number)
                    .validate(Validator::IntBetween(100, 599))
                    .description("http and https only: the status a healthy server answers (default: any 2xx or 3xx)."),
            )
            .attribute(
                Attribute::optional("interval", Type::String)
                    .default("2s")
                    .validate(Validator::Custom(check_duration))
                    .description("Time between checks (Go duration, default `2s`)."),
            ),
    );
    NestedBlock::list(
        "frontend",
        Block::new("A port on the VIP and the servers behind it.")
            .attribute(
                Attribute::required("name", Type::String)
                    .validate(Validator::Matches(IDENTIFIER.0, IDENTIFIER.1))
                    .description("Frontend (and backend section) name, e.g. `kube-apiserver`."),
            )
            .attribute(port("bind_port", "Port on the VIP, 1-65535."))
            .attribute(
                Attribute::optional("mode", Type::String)
                    .default("tcp")
                    .validate(Validator::OneOf(vec!["tcp", "http"]))
                    .description("`tcp` (passthrough, default) or `http`."),
            )
            .attribute(
                Attribute::optional("balance", Type::String)
                    .default("roundrobin")
                    .validate(Validator::OneOf(vec!["roundrobin", "leastconn", "source", "first", "static-rr"]))
                    .description("haproxy `balance` algorithm (default `roundrobin`)."),
            )
            .attribute(Attribute::optional("tls_certificate", Type::String).sensitive().description(
                "`mode = \"http\"` only: terminate TLS on the VIP with this PEM (certificate chain, then its \
                 private key, as haproxy's `crt` reads it). Sensitive; written to /etc/haproxy/strata/NAME.pem, \
                 mode 0600.",
            ))
            .block(backend)
            .block(health),
    )
    .items(1, 0)
}

pub fn schema() -> Schema {
    let block = Block::new(
        "A virtual IP kept by keepalived (VRRP) on two or more nodes that run haproxy, in front of the API \
         servers or an ingress. Renders haproxy.cfg and keepalived.conf per node and has each validated on its \
         node (`haproxy -c`, `keepalived --config-test`) before anything live changes: a refusal names the node \
         and carries the validator's message. haproxy runs in master-worker mode and is reloaded, never \
         restarted, on a configuration change (established connections continue); keepalived is reloaded only \
         when its own configuration changed. keepalived tracks haproxy with a script run as a dedicated \
         unprivileged user (`enable_script_security`); a haproxy that dies is not restarted in place by systemd \
         (`Restart=no` drop-in) so the VIP fails over to a healthy node instead of flapping; the next apply \
         restarts it. `net.ipv4.ip_nonlocal_bind = 1` on every node lets haproxy bind the VIP where keepalived \
         does not hold it. Refresh reports per node whether the files are as rendered and whether both services \
         run; apply repairs both. Nodes are identified by `name` (state, plans and the per-node maps key on it), \
         never by `ssh.host` or their position: changing a node's `ssh` block (host, user, port, key, bastion, host \
         keys) is an in-place update that only checks the node answers; renaming a node that keeps its address \
         changes nothing on it; an added node is configured, and the others are touched only where their files \
         change (unicast peers); a removed node is cleaned, unless its address is still in the list. Changes run \
         one node at a time, each healthy (keepalived active, the VIP held) before the next: backups first, the VIP \
         holder last. When the VRRP group changes (`virtual_router_id`, `auth_pass`, `advert_interval`, \
         `interface`, `unicast`), the VIP never moves: the other nodes get their new configuration with keepalived \
         stopped for a few seconds, the holder reloads into the new group as its master (with the owner's \
         priority, 255, so it takes the VIP at once; a second copy of the VIP address, another prefix length with a 30 s lifetime, answers while keepalived swaps its own and is removed after), the others start one at a time as backups of it, and the \
         holder then reloads with its own priority. Only for those seconds can the VIP not fail over. A node counts as gone only when it \
         does not answer on its own address (refused, no route, timed out); a bastion, DNS, login or host-key \
         failure fails the refresh naming the node, and nothing is planned for creation. See \
         examples/load-balancer.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The `name`."))
    .attribute(
        Attribute::required("name", Type::String)
            .validate(Validator::Matches("[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?", "a DNS label of at most 32 characters"))
            .description("Name of the load balancer: the keepalived VRRP instance and router id."),
    )
    .attribute(
        Attribute::required("vip", Type::String)
            .validate(Validator::Custom(check_cidr))
            .description("The virtual IP with its prefix length, e.g. `10.0.0.100/24`."),
    )
    .attribute(
        Attribute::required("interface", Type::String)
            .validate(Validator::Matches("[A-Za-z0-9_.@-]{1,15}", "a network interface name"))
            .description("The interface the VIP is added to on every node, e.g. `eth0`."),
    )
    .attribute(
        Attribute::required("virtual_router_id", Type::Number)
            .validate(Validator::IntBetween(1, 255))
            .description("VRRP virtual router id, 1-255; unique among the VRRP instances of the network."),
    )
    .attribute(
        Attribute::optional("auth_pass", Type::String)
            .sensitive()
            .validate(Validator::LengthBetween(1, 8))
            .validate(Validator::Custom(check_auth_pass))
            .description(
                "VRRP PASS authentication, at most 8 characters (keepalived silently truncates longer ones): \
                 printable ASCII except `\"`, `\\` and `$`; `#`, `!` and spaces are fine (written quoted). \
                 Sensitive. VRRPv2 only: not with a fractional `advert_interval`.",
            ),
    )
    .attribute(
        Attribute::optional("advert_interval", Type::Number)
            .default(Value::int(1))
            .validate(Validator::Custom(check_advert_interval))
            .description(
                "Seconds between VRRP advertisements, 0.1 to 255 (default 1). A fraction of a second selects \
                 VRRPv3. A backup takes over 3 x advert_interval + skew after the last advertisement.",
            ),
    )
    .attribute(Attribute::optional("unicast", Type::Bool).default(true).description(
        "Send VRRP to the other nodes' addresses (default) instead of multicast, which many networks filter (a \
         split brain: every node holds the VIP).",
    ))
    .attribute(Attribute::optional("nopreempt", Type::Bool).default(false).description(
        "A node that comes back does not take the VIP back from the current holder (keepalived `nopreempt`).",
    ))
    .attribute(
        Attribute::optional("stats_port", Type::Number)
            .validate(Validator::IntBetween(1, 65535))
            .description("haproxy statistics page (HTTP, `/stats`) on this port of every node's address."),
    )
    .attribute(timeout("connect_timeout", "5s", "connect"))
    .attribute(timeout("client_timeout", "1m", "client"))
    .attribute(timeout("server_timeout", "1m", "server"))
    .attribute(timeout("tunnel_timeout", "1h", "tunnel"))
    .attribute(
        Attribute::computed("master_node", Type::String)
            .description("The node (`name`) that holds the VIP now; null when none does."),
    )
    .attribute(Attribute::computed("haproxy_config_sha256", Type::map(Type::String)).description(
        "Per node (`name`): SHA-256 of its haproxy.cfg (`absent` when missing). A hand edit shows as a \
         change on that node.",
    ))
    .attribute(Attribute::computed("keepalived_config_sha256", Type::map(Type::String)).description(
        "Per node (`name`): SHA-256 of its keepalived.conf with the `auth_pass` value masked (`absent` \
         when missing).",
    ))
    .attribute(
        Attribute::computed("haproxy_state", Type::map(Type::String))
            .description("Per node (`name`): the haproxy unit's state (`active`, `failed`, `inactive`, ...)."),
    )
    .attribute(
        Attribute::computed("keepalived_state", Type::map(Type::String))
            .description("Per node (`name`): the keepalived unit's state."),
    )
    .block(node_block())
    .block(frontend_block());
    // 1: nodes have a `name` and the per-node maps are keyed by it (were `ssh.host`).
    Schema::new(1, block)
}
