//! strata_load_balancer through real Terraform against systemd lab nodes: three load
//! balancer nodes running Debian's haproxy and keepalived as systemd units, three
//! backends running a TCP responder that answers with its name. Round robin through
//! the VIP, one VIP holder, failover on power loss and on a dead haproxy, reload that
//! keeps connections, refusal by haproxy itself, drift per node, and destroy.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use strata_acceptance_tests::names::{known_hosts_with_names, HostsEntries};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir, REQUIRED_PROVIDERS};
use strata_lab::{LabGuard, PveMode, UpOptions};

const LBS: [&str; 3] = ["node1", "node2", "node3"];
const BACKENDS: [&str; 3] = ["node4", "node5", "node6"];
const PORT: u16 = 6443;
/// An http frontend that terminates TLS on the VIP.
const TLS_PORT: u16 = 8443;
const TLS_NAME: &str = "lb.strata.test";
/// Eight characters: the longest keepalived takes; must never show in any output.
const PASSWORD: &str = "Vr4pW0rd";
/// VRRP's master-down interval at 1 s adverts and priority 99 (the node that takes
/// over): 3 x 1 s + (256 - 99) / 256 s; the issue's bound is this floor plus 1 s.
const FAILOVER_BOUND_1S: Duration = Duration::from_millis(4600);

fn lab(dir: &Path, nodes: usize) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = nodes;
    opts.pve = PveMode::Disabled;
    LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)")
}

fn sh(lab: &LabGuard, node: &str, script: &str) -> String {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    assert!(out.status.success(), "{node}: {script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn address(lab: &LabGuard, node: &str) -> String {
    lab.node(node).unwrap().address.clone()
}

/// The VIP: .200 of the lab's /24.
fn vip(lab: &LabGuard) -> String {
    let a = address(lab, "node1");
    format!("{}.200", a.rsplit_once('.').unwrap().0)
}

/// A TCP server on each backend (perl from the minimal image: no package needed) that
/// greets with the node's name and echoes every line prefixed with it, as a systemd
/// transient unit.
fn start_responders(lab: &LabGuard) {
    const SCRIPT: &str = r#"use IO::Socket::INET; $SIG{CHLD} = 'IGNORE'; my ($name, $port) = @ARGV;
my $l = IO::Socket::INET->new(LocalPort => $port, Listen => 128, ReuseAddr => 1) or die "listen: $!";
while (1) { my $c = $l->accept or next; if (fork() == 0) { close $l; $c->autoflush(1); print $c "$name\n";
while (my $line = <$c>) { print $c "$name $line"; } exit 0; } close $c; }"#;
    for b in BACKENDS {
        let port = PORT.to_string();
        let out = lab
            .exec(b, &["systemd-run", "--quiet", "--unit=strata-responder", "perl", "-e", SCRIPT, b, &port])
            .unwrap();
        assert!(out.status.success(), "{b}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for b in BACKENDS {
        let addr: SocketAddr = format!("{}:{PORT}", address(lab, b)).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while greeting(addr, Duration::from_millis(500)).is_none() {
            assert!(Instant::now() < deadline, "responder on {b} does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The first line a new connection gets: the backend's name.
fn greeting(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let name = line.trim().to_string();
    (!name.is_empty()).then_some(name)
}

fn vip_addr(lab: &LabGuard) -> SocketAddr {
    format!("{}:{PORT}", vip(lab)).parse().unwrap()
}

fn lb_config(lab: &LabGuard, backends: &[&str], advert_interval: &str, extra_backend: &str) -> String {
    let ssh = &lab.info().ssh;
    let nodes: String = LBS
        .iter()
        .map(|n| format!("  node {{\n    name = \"{n}\"\n    ssh {{ host = \"{}\" }}\n  }}\n", address(lab, n)))
        .collect();
    let servers: String = backends
        .iter()
        .map(|b| {
            format!(
                "    backend {{\n      name = \"{b}\"\n      address = \"{}\"\n      port = {PORT}\n    }}\n",
                address(lab, b)
            )
        })
        .collect();
    let auth =
        if advert_interval.contains('.') { String::new() } else { "  auth_pass         = var.vrrp_password\n".into() };
    format!(
        r#"{provider}variable "vrrp_password" {{
  type      = string
  sensitive = true
  default   = "{PASSWORD}"
}}

resource "strata_load_balancer" "api" {{
  name              = "k8s"
  vip               = "{vip}/24"
  interface         = "eth0"
  virtual_router_id = 51
{auth}  advert_interval   = {advert_interval}
  stats_port        = 8404
{nodes}  frontend {{
    name      = "kube-apiserver"
    bind_port = {PORT}
{servers}{extra_backend}    health_check {{
      type     = "tcp"
      interval = "1s"
    }}
  }}
  frontend {{
    name            = "web-tls"
    bind_port       = {TLS_PORT}
    mode            = "http"
    tls_certificate = file("tls.pem")
    backend {{
      name    = "web"
      address = "{web}"
      port    = {PORT}
    }}
  }}
}}
"#,
        web = address(lab, "node4"),
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
        vip = vip(lab),
    )
}

/// A Terraform directory for `main_tf`, with the TLS frontend's certificate and key
/// (`tls.pem`) beside it; also returns the certificate (PEM).
fn workdir(main_tf: &str) -> (Workdir, String) {
    let wd = Workdir::new(&provider_dir(), main_tf).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec![TLS_NAME.to_string()]).unwrap();
    wd.write("tls.pem", &format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem())).unwrap();
    (wd, cert.cert.pem())
}

/// The certificate (PEM) the VIP presents on the TLS port.
fn tls_certificate(lab: &LabGuard) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {}:{TLS_PORT} -servername {TLS_NAME} </dev/null 2>/dev/null | openssl x509",
            vip(lab)
        ))
        .output()
        .expect("openssl (Makefile deps)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Which load balancer nodes hold the VIP now (checked on each of them).
fn holders(lab: &LabGuard, nodes: &[&str]) -> Vec<String> {
    let vip = format!(" {}/", vip(lab));
    nodes.iter().filter(|n| sh(lab, n, "ip -o addr show dev eth0").contains(&vip)).map(|n| n.to_string()).collect()
}

fn main_pid(lab: &LabGuard, node: &str, unit: &str) -> String {
    sh(lab, node, &format!("systemctl show -p MainPID --value {unit}")).trim().to_string()
}

/// Waits until a new connection through the VIP is answered; returns the time since
/// `since`. Panics past `bound` (plus slack to report the real figure).
fn wait_for_service(addr: SocketAddr, since: Instant, bound: Duration) -> Duration {
    loop {
        if greeting(addr, Duration::from_millis(200)).is_some() {
            return since.elapsed();
        }
        assert!(since.elapsed() < bound + Duration::from_secs(10), "no connection through the VIP after {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until exactly one of `nodes` holds the VIP.
fn single_holder(lab: &LabGuard, nodes: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = holders(lab, nodes);
        if h.len() == 1 {
            return h[0].clone();
        }
        assert!(Instant::now() < deadline, "VIP holders among {nodes:?}: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until `node` alone holds the VIP, then one advert interval more.
fn wait_for_holder(lab: &LabGuard, node: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    while holders(lab, &LBS) != [node] {
        assert!(Instant::now() < deadline, "{node} did not take the VIP: {:?}", holders(lab, &LBS));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    node.to_string()
}

fn backend_names_seen(addr: SocketAddr, connections: usize) -> Vec<String> {
    (0..connections).map(|_| greeting(addr, Duration::from_secs(2)).expect("a connection through the VIP")).collect()
}

#[test]
fn load_balancer_balances_fails_over_reloads_and_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = lab(&tmp.path().join("lab"), 6);
    start_responders(&lab);
    let addr = vip_addr(&lab);
    let (wd, cert) = workdir(&lb_config(&lab, &BACKENDS, "1", ""));
    let applied = wd.apply().unwrap();
    assert!(!applied.stdout.contains(PASSWORD) && !applied.stderr.contains(PASSWORD), "the password leaked");

    // Steady state: whichever node's keepalived started first took the VIP; node1
    // (priority 100) preempts it once it has heard the others. Exactly one holder then,
    // checked on all three, and refresh names it.
    wait_for_holder(&lab, "node1");
    assert_eq!(holders(&lab, &LBS), ["node1"], "the first node (priority 100) holds the VIP");
    wd.run(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).unwrap().ok().unwrap();
    let state = wd.resource_values("strata_load_balancer.api").unwrap();
    assert_eq!(state["master_node"], "node1", "named by the node's name");

    // Round robin over all three backends, through the VIP.
    let seen = backend_names_seen(addr, 6);
    let mut distinct = seen[..3].to_vec();
    distinct.sort();
    assert_eq!(distinct, BACKENDS, "three connections reach the three backends: {seen:?}");
    assert_eq!(seen[..3], seen[3..], "in turn: {seen:?}");
    // The http frontend terminates TLS on the VIP with the configured certificate.
    assert_eq!(tls_certificate(&lab).trim(), cert.trim(), "the VIP presents the configured certificate");
    for n in LBS {
        assert_eq!(sh(&lab, n, "sysctl -n net.ipv4.ip_nonlocal_bind").trim(), "1", "{n}");
        assert_eq!(
            sh(&lab, n, "systemctl is-active haproxy keepalived").split_whitespace().collect::<Vec<_>>(),
            ["active"; 2]
        );
        assert!(sh(&lab, n, "cat /etc/keepalived/keepalived.conf").contains("script_user keepalived_script"));
    }
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after apply must be empty:\n{}{}", plan.stdout, plan.stderr);

    // A backend leaves: haproxy is reloaded (same master pid), keepalived untouched, and a
    // connection opened before keeps exchanging data.
    let long = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(long.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let on = line.trim().to_string();
    let mut exchange = |msg: &str| {
        (&long).write_all(format!("{msg}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        reply.trim().to_string()
    };
    assert_eq!(exchange("before"), format!("{on} before"));
    let removed = *BACKENDS.iter().find(|b| **b != on).unwrap();
    let kept: Vec<&str> = BACKENDS.iter().copied().filter(|b| *b != removed).collect();
    let pids = |unit: &str| LBS.iter().map(|n| main_pid(&lab, n, unit)).collect::<Vec<_>>();
    let (keepalived_before, haproxy_before) = (pids("keepalived"), pids("haproxy"));
    wd.write("main.tf", &lb_config(&lab, &kept, "1", "")).unwrap();
    wd.apply().unwrap();
    assert_eq!(pids("keepalived"), keepalived_before, "keepalived was not reloaded or restarted");
    assert_eq!(pids("haproxy"), haproxy_before, "haproxy was reloaded, not restarted");
    assert_eq!(exchange("after"), format!("{on} after"), "the connection opened before the reload still works");
    let seen = backend_names_seen(addr, 6);
    assert!(!seen.iter().any(|n| n == removed), "{removed} still gets connections: {seen:?}");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // A configuration only haproxy rejects (a server name that does not resolve): its
    // message, naming the node; the old configuration still serves everywhere.
    let cfg_before: Vec<String> = LBS.iter().map(|n| sh(&lab, n, "sha256sum /etc/haproxy/haproxy.cfg")).collect();
    let bad = "    backend {\n      name = \"ghost\"\n      address = \"no-such-backend.invalid\"\n      port = 6443\n    }\n";
    wd.write("main.tf", &lb_config(&lab, &kept, "1", bad)).unwrap();
    let refused = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    // Terraform wraps a diagnostic's detail: compare with the line breaks as spaces.
    let flat = refused.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("could not resolve address 'no-such-backend.invalid'"), "{}", refused.stderr);
    assert!(flat.contains("load balancer node \"node1\""), "the error names the node: {}", refused.stderr);
    assert!(refused.stderr.contains(&address(&lab, "node1")), "the error names the node: {}", refused.stderr);
    assert!(!refused.stderr.contains(PASSWORD) && !refused.stdout.contains(PASSWORD));
    let cfg_after: Vec<String> = LBS.iter().map(|n| sh(&lab, n, "sha256sum /etc/haproxy/haproxy.cfg")).collect();
    assert_eq!(cfg_after, cfg_before, "a refused configuration changed a live file");
    assert!(backend_names_seen(addr, 4).iter().all(|n| kept.contains(&n.as_str())));
    assert_eq!(exchange("still"), format!("{on} still"));
    drop(long);
    wd.write("main.tf", &lb_config(&lab, &kept, "1", "")).unwrap();
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "the refused apply left the state as it was");

    // A configuration only keepalived rejects (an interface the nodes do not have): the
    // provider's `keepalived --config-test` check refuses it with keepalived's message,
    // naming the node; the live keepalived.conf and the running keepalived are unchanged.
    let conf_before: Vec<String> =
        LBS.iter().map(|n| sh(&lab, n, "sha256sum /etc/keepalived/keepalived.conf")).collect();
    let keepalived_before = pids("keepalived");
    let holder_before = single_holder(&lab, &LBS);
    let no_such_interface = lb_config(&lab, &kept, "1", "").replace("\"eth0\"", "\"nosuch0\"");
    assert!(no_such_interface.contains("interface         = \"nosuch0\""), "{no_such_interface}");
    wd.write("main.tf", &no_such_interface).unwrap();
    let refused = wd.run(&["apply", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let flat = refused.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("interface nosuch0 for vrrp_instance k8s doesn't exist")
            && flat.contains("Non-existent interface specified in configuration"),
        "keepalived's own message: {}",
        refused.stderr
    );
    assert!(flat.contains("load balancer node \""), "the error names the node: {}", refused.stderr);
    assert!(!refused.stderr.contains(PASSWORD) && !refused.stdout.contains(PASSWORD));
    let conf_after: Vec<String> =
        LBS.iter().map(|n| sh(&lab, n, "sha256sum /etc/keepalived/keepalived.conf")).collect();
    assert_eq!(conf_after, conf_before, "a refused keepalived.conf changed a live file");
    assert_eq!(pids("keepalived"), keepalived_before, "keepalived was reloaded or restarted");
    assert_eq!(holders(&lab, &LBS), [holder_before], "the VIP stayed where it was");
    assert!(backend_names_seen(addr, 2).iter().all(|n| kept.contains(&n.as_str())));
    wd.write("main.tf", &lb_config(&lab, &kept, "1", "")).unwrap();
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "the refused apply left the state as it was");

    // A hand edit on node2 is drift on node2, repaired by apply.
    sh(&lab, "node2", "sed -i 's/balance roundrobin/balance leastconn/' /etc/haproxy/haproxy.cfg");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let node2 = "node2";
    let drift: Vec<&str> = plan.stdout.lines().filter(|l| l.trim_start().starts_with("~ \"")).collect();
    assert_eq!(drift.len(), 1, "one changed digest: {}", plan.stdout);
    assert!(drift[0].contains(&format!("\"{node2}\"")), "names node2: {}", plan.stdout);
    wd.apply().unwrap();
    assert!(sh(&lab, "node2", "cat /etc/haproxy/haproxy.cfg").contains("balance roundrobin"));
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // haproxy dies on the VIP holder (the node stays up): the VIP moves. Not the power
    // loss's bound: keepalived's own check (render.rs's vrrp_script: every 1 s, one failure
    // is enough) sees the dead haproxy within interval x fall; the holder then goes to
    // FAULT and sends a priority-0 advert, so the backup (priority 99) takes over after its
    // skew, (256 - 99) / 256 of the 1 s advert, instead of the 3-advert master-down
    // interval; plus the issue's 1 s. About 2.6 s, where about 1 s is measured.
    let (check_interval, check_fall, advert) = (1.0, 1.0, 1.0);
    let dead_haproxy_bound =
        Duration::from_secs_f64(check_interval * check_fall + (256.0 - 99.0) / 256.0 * advert + 1.0);
    let holder = single_holder(&lab, &LBS);
    let check = sh(&lab, &holder, "sed -n '/^vrrp_script/,/}/p' /etc/keepalived/keepalived.conf");
    let others: Vec<&str> = LBS.iter().copied().filter(|n| *n != holder).collect();
    let killed_at = Instant::now();
    sh(&lab, &holder, "systemctl kill --signal=SIGKILL haproxy");
    let new_holder = {
        let deadline = killed_at + dead_haproxy_bound + Duration::from_secs(5);
        loop {
            let h = holders(&lab, &others);
            if h.len() == 1 && holders(&lab, &[holder.as_str()]).is_empty() {
                break h[0].clone();
            }
            assert!(Instant::now() < deadline, "the VIP did not leave {holder} after haproxy died");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let took = wait_for_service(addr, killed_at, dead_haproxy_bound);
    eprintln!("haproxy killed on {holder}: {new_holder} serves the VIP after {took:?} (bound {dead_haproxy_bound:?})");
    assert!(took < dead_haproxy_bound, "failover took {took:?}, bound {dead_haproxy_bound:?}");
    // The bound holds for the check it was derived from.
    let line = |k: &str| check.lines().find(|l| l.trim().starts_with(k)).map(|l| l.trim().to_string());
    assert_eq!(line("interval"), Some(format!("interval {check_interval}")), "{check}");
    assert_eq!(line("fall"), Some(format!("fall {check_fall}")), "{check}");
    // Drift names the node; apply starts haproxy again.
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let dead = &holder;
    assert!(
        plan.stdout.contains(&format!("~ \"{dead}\" = \"failed\" -> \"active\"")),
        "a dead haproxy is drift on {dead}: {}",
        plan.stdout
    );
    wd.apply().unwrap();
    assert_eq!(sh(&lab, &holder, "systemctl is-active haproxy").trim(), "active");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // Power loss of the VIP holder: the VIP moves, new connections succeed. First the
    // steady state: node1 (priority 100) has taken the VIP back, and the backups have
    // seen its adverts, so the failover below waits the full master-down interval.
    let holder = wait_for_holder(&lab, "node1");
    let others: Vec<&str> = LBS.iter().copied().filter(|n| *n != holder).collect();
    let killed_at = Instant::now();
    lab.kill_node(&holder).unwrap();
    let took = wait_for_service(addr, killed_at, FAILOVER_BOUND_1S);
    eprintln!("power loss of {holder}: the VIP serves again after {took:?}");
    assert!(took < FAILOVER_BOUND_1S, "failover took {took:?}");
    // And not sooner than a power loss allows: the backup hears nothing (no priority-0
    // advert of a keepalived shutting down) and waits out its master-down interval,
    // counted from the last advert it heard, at most one advert before the loss.
    let lowest = power_loss_lowest(1.0);
    assert!(took >= lowest, "failover took {took:?}, below {lowest:?}: the holder handed over, it did not lose power");
    single_holder(&lab, &others);
    // Back from the power loss, node1 runs haproxy again (it binds the VIP it does not
    // hold yet) and takes the VIP back: nothing to plan.
    lab.start_node(&holder, Duration::from_secs(60)).unwrap();
    wait_for_holder(&lab, &holder);
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "after the reboot of {holder}");

    // Destroy leaves no VIP, no configuration and no daemon on any node.
    wd.destroy().unwrap();
    for n in LBS {
        assert!(holders(&lab, &[n]).is_empty(), "{n} still holds the VIP");
        let left = sh(&lab, n, "ls /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf /etc/sysctl.d/90-strata-load-balancer.conf 2>/dev/null; pgrep -x 'haproxy|keepalived' || true");
        assert_eq!(left.trim(), "", "{n}: left behind");
    }
    assert!(greeting(addr, Duration::from_millis(500)).is_none(), "the VIP still answers");
}

/// Bad input fails at plan, naming the attribute, before any node is contacted (the
/// hosts are loopback addresses nothing listens on for SSH in this test).
#[test]
fn bad_load_balancer_input_is_refused_at_plan_naming_the_attribute() {
    let node = |h: &str| {
        format!("  node {{\n    name = \"n-{}\"\n    ssh {{\n      host = \"{h}\"\n      insecure_ignore_host_key = true\n      private_key = \"unused\"\n    }}\n  }}\n", h.replace(['.', ':'], "-"))
    };
    let frontend = |name: &str, port: &str, address: &str| {
        format!("  frontend {{\n    name = \"{name}\"\n    bind_port = {port}\n    backend {{\n      name = \"b\"\n      address = \"{address}\"\n      port = 80\n    }}\n  }}\n")
    };
    let config = |vip: &str, vrid: &str, pass: &str, nodes: &[&str], frontends: &str| {
        format!(
            "{REQUIRED_PROVIDERS}variable \"pw\" {{\n  type = string\n  sensitive = true\n  default = \"{pass}\"\n}}\n\
             resource \"strata_load_balancer\" \"lb\" {{\n  name = \"k8s\"\n  vip = \"{vip}\"\n  interface = \"eth0\"\n  \
             virtual_router_id = {vrid}\n  auth_pass = var.pw\n{}{frontends}}}\n",
            nodes.iter().map(|h| node(h)).collect::<String>()
        )
    };
    let two = ["127.0.0.2", "127.0.0.3"];
    let fe = frontend("api", "6443", "10.0.0.1");
    let cases: Vec<(String, &str)> = vec![
        (config("10.0.0.100", "51", "pw", &two, &fe), "vip"),
        (config("10.0.0.100/24", "256", "pw", &two, &fe), "virtual_router_id"),
        (config("10.0.0.100/24", "51", "ninechars", &two, &fe), "auth_pass"),
        (config("10.0.0.100/24", "51", "pw", &["127.0.0.2"], &fe), "node"),
        (
            config("10.0.0.100/24", "51", "pw", &two, &format!("{fe}{}", frontend("other", "6443", "10.0.0.2"))),
            "bind_port",
        ),
        (config("10.0.0.100/24", "51", "pw", &two, &frontend("api", "6443", "not a host!")), "address"),
        (config("10.0.0.100/24", "51", "pw", &two, &frontend("api", "70000", "10.0.0.1")), "bind_port"),
        (config("10.0.0.100/24", "51", "pw", &["127.0.0.2", "127.0.0.2"], &fe), "host"),
    ];
    // The documented example is valid as it is.
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/load-balancer/main.tf"))
            .unwrap();
    let wd = Workdir::new(&provider_dir(), &example).unwrap();
    let valid = wd.run(&["validate"]).unwrap();
    assert_eq!(valid.code, 0, "examples/load-balancer: {}{}", valid.stdout, valid.stderr);
    for (tf, attr) in cases {
        wd.write("main.tf", &tf).unwrap();
        let plan = wd.run(&["plan", "-input=false"]).unwrap();
        assert_eq!(plan.code, 1, "{attr}: {}", plan.stdout);
        assert!(plan.stderr.contains(attr), "{attr} is named:\n{}", plan.stderr);
        assert!(!plan.stderr.contains("ninechars"), "the password is not shown: {}", plan.stderr);
        assert!(!plan.stderr.contains("connect"), "no node was contacted: {}", plan.stderr);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// VRRP's master-down interval for the backup that takes over (priority 99): 3 adverts
/// plus its skew, (256 - priority) / 256 of an advert (VRRPv3; VRRPv2 whole seconds
/// give the same figure).
fn master_down_floor(advert: f64) -> Duration {
    Duration::from_secs_f64(3.0 * advert + (256.0 - 99.0) / 256.0 * advert)
}

/// Failover times for docs/benchmarks.md (scripts/bench_load_balancer.sh runs it):
/// The quickest failover a power loss allows: the master-down floor less one advert
/// interval (the last advert the backup heard can precede the loss by that much).
fn power_loss_lowest(advert: f64) -> Duration {
    master_down_floor(advert) - Duration::from_secs_f64(advert)
}

/// BENCH_RUNS (default 5) power losses and dead haproxys of the VIP holder at
/// `advert_interval` 1 s and 0.1 s, each measured from the kill to the first new
/// connection answered through the VIP. Writes a markdown section to STRATA_BENCH_OUT.
#[test]
#[ignore = "benchmark: scripts/bench_load_balancer.sh"]
fn failover_benchmark() {
    let out = std::env::var("STRATA_BENCH_OUT").expect("STRATA_BENCH_OUT: where to write the section");
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5).max(5);
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = lab(&tmp.path().join("lab"), 6);
    start_responders(&lab);
    let addr = vip_addr(&lab);
    let (wd, _) = workdir(&lb_config(&lab, &BACKENDS, "1", ""));
    let (mut rows, mut each) = (Vec::new(), Vec::new());
    // The issue's targets: within 1 s of the floor, and under 1 s at 0.1 s adverts.
    for (advert, target) in [("1", 4.6), ("0.1", 1.0)] {
        wd.write("main.tf", &lb_config(&lab, &BACKENDS, advert, "")).unwrap();
        wd.apply().unwrap();
        let (mut power, mut haproxy) = (Vec::new(), Vec::new());
        for run in 0..runs {
            wait_for_holder(&lab, "node1");
            let t0 = Instant::now();
            lab.kill_node("node1").unwrap();
            power.push(wait_for_service(addr, t0, Duration::from_secs(10)));
            lab.start_node("node1", Duration::from_secs(60)).unwrap();
            wait_for_holder(&lab, "node1");
            let t0 = Instant::now();
            sh(&lab, "node1", "systemctl kill --signal=SIGKILL haproxy");
            haproxy.push(wait_for_service(addr, t0, Duration::from_secs(10)));
            sh(&lab, "node1", "systemctl start haproxy");
            eprintln!(
                "advert {advert} s, run {}: power loss {:?}, haproxy killed {:?}",
                run + 1,
                power[run],
                haproxy[run]
            );
        }
        let secs = |v: &[Duration]| v.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(", ");
        each.push(format!("- {advert} s: power loss {} s; haproxy killed {} s", secs(&power), secs(&haproxy)));
        let floor = master_down_floor(advert.parse().unwrap());
        let lowest = power_loss_lowest(advert.parse().unwrap());
        assert!(power.iter().all(|t| *t >= lowest), "advert {advert} s: a power loss below {lowest:?}: {power:?}");
        rows.push(format!(
            "| {advert} s | {:.2} s | {:.2} s | under {:.1} s | {:.2} s |",
            floor.as_secs_f64(),
            median(power).as_secs_f64(),
            target,
            median(haproxy).as_secs_f64(),
        ));
    }
    wd.destroy().unwrap();
    let section = format!(
        "## Load balancer failover\n\n\
         `strata_load_balancer` on three systemd lab nodes (Debian's haproxy 2.6 and keepalived 2.2.7, unicast \
         VRRP, priorities 100/99/98), three backends behind it. Time from killing the VIP holder to the first new \
         TCP connection through the VIP answered by a backend, median of {runs} runs each \
         (scripts/bench_load_balancer.sh). Power loss: `strata-lab node kill` (the node's link removed first, \
         then every process of it at once through its cgroup's `cgroup.kill`). Dead haproxy: `systemctl kill --signal=SIGKILL haproxy` on the holder, which stays up; keepalived's \
         check runs every second (its smallest interval), so that column does not shrink with the advert \
         interval. The floor is VRRP's master-down interval of the backup that takes over (3 x advert + \
         (256 - 99) / 256 x advert); it runs from the last advertisement the backup heard, which can precede the \
         kill by up to one interval, so single runs can beat it by at most that (the benchmark fails on a \
         power loss below floor minus one advert: that would be a handover, not a loss). Targets as in the issue (floor plus 1 s, under 1 s \
         at 0.1 s). The machine ran other engineers' builds and tests meanwhile. 0.1 s is the smallest `advert_interval` the \
         resource allows (VRRPv3).\n\n\
         | advert_interval | master-down floor | power loss (median) | target | haproxy killed (median) |\n\
         | --- | --- | --- | --- | --- |\n{}\n\nEvery run, in order:\n\n{}\n\n",
        rows.join("\n"),
        each.join("\n")
    );
    std::fs::write(&out, section).unwrap();
}

/// One load balancer node of the day-2 test: name, how Terraform reaches it, address.
struct Day2Node {
    name: String,
    host: String,
    address: String,
}

fn day2_config(lab: &LabGuard, known_hosts: &Path, nodes: &[Day2Node], vrid: u8, pass: &str, bastion: &str) -> String {
    let ssh = &lab.info().ssh;
    let nodes: String = nodes
        .iter()
        .map(|n| {
            format!(
                "  node {{\n    name    = \"{}\"\n    address = \"{}\"\n    ssh {{\n      host = \"{}\"\n{bastion}    }}\n  }}\n",
                n.name, n.address, n.host
            )
        })
        .collect();
    format!(
        r#"{provider}variable "vrrp_password" {{
  type      = string
  sensitive = true
  default   = "{pass}"
}}

resource "strata_load_balancer" "api" {{
  name              = "day2"
  vip               = "{vip}/24"
  interface         = "eth0"
  virtual_router_id = {vrid}
  auth_pass         = var.vrrp_password
{nodes}  frontend {{
    name      = "kube-apiserver"
    bind_port = {PORT}
    backend {{
      name    = "node4"
      address = "{backend}"
      port    = {PORT}
    }}
  }}
}}
"#,
        provider = ssh_provider(&ssh.private_key_file, known_hosts),
        vip = vip(lab),
        backend = address(lab, "node4"),
    )
}

/// What shows a daemon was restarted or reloaded, or a file rewritten: MainPID and
/// start time of both units, inode and mtime of both files, on every node.
fn untouched_marks(lab: &LabGuard) -> Vec<String> {
    LBS.iter()
        .map(|n| {
            sh(
                lab,
                n,
                "systemctl show -p MainPID -p ActiveEnterTimestamp -p ExecMainStartTimestamp haproxy keepalived; \
                 stat -c '%n %i %Y' /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf",
            )
        })
        .collect()
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The load balancer nodes whose keepalived entered MASTER state since `since` (Unix
/// seconds), from their journals: where the VIP went.
/// `ip monitor address` on one node, as a transient unit, for the span of a change.
struct AddressMonitor {
    node: &'static str,
}

impl AddressMonitor {
    const UNIT: &'static str = "strata-test-addr-monitor";
    const LOG: &'static str = "/run/strata-test-addr-monitor.log";

    /// The node's addresses first (as `ip -o addr` lines), then every change.
    fn start(lab: &LabGuard, node: &'static str) -> AddressMonitor {
        sh(
            lab,
            node,
            &format!(
                "systemctl stop {u} 2>/dev/null; rm -f {l}; \
                 systemd-run --quiet --unit={u} sh -c 'ip -o addr show > {l}; exec ip -o monitor address >> {l}'; \
                 for i in $(seq 50); do [ -s {l} ] && break; sleep 0.1; done",
                u = Self::UNIT,
                l = Self::LOG
            ),
        );
        // `ip monitor` subscribes as it starts: give it a moment before the change.
        std::thread::sleep(Duration::from_millis(300));
        AddressMonitor { node }
    }

    /// After every address change, some address of the node was the VIP: keepalived's
    /// on eth0 or the provider's bridge on lo, whatever the prefix length. So the VIP
    /// never stopped being local to its holder, not even for the microseconds between
    /// keepalived deleting and re-adding it. At the end only keepalived's is left.
    fn assert_vip_never_gone(self, lab: &LabGuard, vip: &str) {
        let log = sh(lab, self.node, &format!("systemctl stop {}; cat {}", Self::UNIT, Self::LOG));
        // `[Deleted] N: IFACE inet|inet6 ADDR/LEN ...`: (IFACE, ADDR/LEN).
        let parse = |line: &str| {
            let words: Vec<&str> = line.split_whitespace().skip_while(|w| *w == "Deleted").collect();
            let at = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
            Some((words.get(1)?.to_string(), words.get(at + 1)?.to_string()))
        };
        let mut held = std::collections::BTreeSet::new();
        for line in log.lines() {
            let Some((iface, addr)) = parse(line) else { continue };
            if !addr.starts_with(&format!("{vip}/")) {
                continue;
            }
            if line.starts_with("Deleted") {
                held.remove(&(iface, addr));
                assert!(!held.is_empty(), "{}: the VIP {vip} was on no interface after: {line}\n{log}", self.node);
            } else {
                held.insert((iface, addr));
            }
        }
        let ifaces: Vec<&str> = held.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ifaces, ["eth0"], "{}: at the end, keepalived's VIP alone:\n{log}", self.node);
    }
}

fn became_master(lab: &LabGuard, since: u64) -> Vec<String> {
    LBS.iter()
        .filter(|n| {
            sh(lab, n, &format!("journalctl -u keepalived --since @{since} --no-pager -o cat"))
                .contains("Entering MASTER STATE")
        })
        .map(|n| n.to_string())
        .collect()
}

/// Plans `config`: only in-place updates; then applies it under the prober, returning
/// the apply time and the report.
fn day2_step(
    wd: &Workdir,
    lab: &LabGuard,
    change: &str,
    config: &str,
) -> (Duration, strata_acceptance_tests::prober::ProbeReport) {
    use strata_acceptance_tests::prober::{ProbeTargets, Prober};
    wd.write("main.tf", config).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{change}: {}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{change}: only in place: {}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced") && !plan.stdout.contains(PASSWORD), "{}", plan.stdout);
    let prober = Prober::start(ProbeTargets::tcp(&vip(lab), PORT));
    let started = Instant::now();
    let applied = wd.apply();
    let took = started.elapsed();
    let report = prober.stop();
    let applied = applied.unwrap_or_else(|e| panic!("{change}: {e}"));
    assert!(!applied.stdout.contains(PASSWORD) && !applied.stderr.contains(PASSWORD), "the password leaked");
    report.record(change, took);
    eprintln!("day-2 {change}: apply {took:?}, {}", report.summary());
    let again = wd.plan_exit_code().unwrap();
    assert_eq!(again.code, 0, "{change}: nothing left to do: {}", again.stdout);
    (took, report)
}

/// Day-2 changes on one live load balancer, each planned as an in-place update and
/// applied while a prober connects to the VIP every 100 ms: every node's ssh.host from
/// its address to a DNS name, a renamed node, a bastion added (then down: the refresh
/// fails naming it and nothing is planned for creation), a new virtual_router_id, and
/// an auth_pass with `#` and `!` that keepalived reads whole.
#[test]
fn load_balancer_day2_changes_keep_the_vip_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"), 4);
    start_on_node4(&lab);
    let info_ssh = lab.info().ssh.clone();
    let names: Vec<(String, String)> =
        LBS.iter().map(|n| (address(&lab, n), format!("{n}-{}.day2.strata.test", std::process::id()))).collect();
    // known_hosts also under the DNS names (as a user's would be).
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, known_hosts_with_names(&info_ssh.known_hosts_file, &names)).unwrap();
    let _hosts = HostsEntries::add("lb-day2", &names);

    let mut nodes: Vec<Day2Node> = LBS
        .iter()
        .map(|n| Day2Node { name: n.to_string(), host: address(&lab, n), address: address(&lab, n) })
        .collect();
    let config = |nodes: &[Day2Node], vrid: u8, pass: &str, bastion: &str| {
        day2_config(&lab, &known_hosts, nodes, vrid, pass, bastion)
    };
    let (wd, _) = workdir(&config(&nodes, 51, PASSWORD, ""));
    wd.apply().unwrap();
    wait_for_holder(&lab, "node1");

    // (a) Every node's ssh.host from its address to a DNS name of the same machine.
    let before = untouched_marks(&lab);
    for (n, (_, name)) in nodes.iter_mut().zip(&names) {
        n.host = name.clone();
    }
    let (_, r) =
        day2_step(&wd, &lab, "load balancer: ssh.host from address to DNS name", &config(&nodes, 51, PASSWORD, ""));
    assert_eq!(r.failed(), 0, "{}", r.summary());
    assert_eq!(untouched_marks(&lab), before, "nothing restarted, reloaded or rewritten");
    assert_eq!(holders(&lab, &LBS), ["node1"]);

    // (b) A node renamed.
    nodes[1].name = "edge-2".into();
    let (_, r) = day2_step(&wd, &lab, "load balancer: a node renamed", &config(&nodes, 51, PASSWORD, ""));
    assert_eq!(r.failed(), 0, "{}", r.summary());
    assert_eq!(untouched_marks(&lab), before, "nothing restarted, reloaded or rewritten");
    let state = wd.resource_values("strata_load_balancer.api").unwrap();
    assert!(state["haproxy_state"].get("edge-2").is_some(), "keyed by the new name: {}", state["haproxy_state"]);

    // A bastion added (node4's sshd, which resolves the nodes' names itself): in place,
    // nothing run on the nodes.
    let on_bastion: String = names.iter().map(|(ip, name)| format!("{ip} {name}\n")).collect();
    sh(&lab, "node4", &format!("printf '%s' '{on_bastion}' >> /etc/hosts"));
    let bastion = format!(
        "      bastion {{\n        host = \"{}\"\n        private_key_file = \"{}\"\n      }}\n",
        address(&lab, "node4"),
        info_ssh.private_key_file.display()
    );
    let (_, r) = day2_step(&wd, &lab, "load balancer: a bastion added", &config(&nodes, 51, PASSWORD, &bastion));
    assert_eq!(r.failed(), 0, "{}", r.summary());
    assert_eq!(untouched_marks(&lab), before, "nothing restarted, reloaded or rewritten");

    // (d) The bastion is down: the refresh fails naming it; nothing is planned for
    // creation, and a refresh-only apply drops nothing.
    sh(&lab, "node4", "systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh");
    let plan = wd.plan_exit_code().unwrap();
    let bastion_label = format!("root@{}:22", address(&lab, "node4"));
    assert_eq!(plan.code, 1, "the refresh fails: {}{}", plan.stdout, plan.stderr);
    assert!(plan.stderr.contains("bastion") && plan.stderr.contains(&bastion_label), "{}", plan.stderr);
    assert!(!plan.stdout.contains("will be created"), "{}", plan.stdout);
    let refresh = wd.run(&["apply", "-refresh-only", "-auto-approve", "-input=false"]).unwrap();
    assert_ne!(refresh.code, 0, "{}", refresh.stdout);
    assert!(wd.resource_values("strata_load_balancer.api").is_ok(), "the state still holds the load balancer");
    sh(&lab, "node4", "systemctl start ssh");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "back to nothing to do");

    // (c) A new virtual_router_id: the holder carries the VIP into the new group, so it
    // never moves (no other node became master); at most one failed probe.
    let since = epoch_now();
    let monitor = AddressMonitor::start(&lab, "node1");
    let (_, r) =
        day2_step(&wd, &lab, "load balancer: virtual_router_id changed", &config(&nodes, 52, PASSWORD, &bastion));
    monitor.assert_vip_never_gone(&lab, &vip(&lab));
    assert!(r.failed() <= 1, "{}", r.summary());
    assert_eq!(became_master(&lab, since), ["node1"], "the VIP stayed on its holder");
    single_holder(&lab, &LBS);
    for n in LBS {
        assert!(sh(&lab, n, "cat /etc/keepalived/keepalived.conf").contains("virtual_router_id 52"), "{n}");
    }

    // (e) An auth_pass with '#', '!' and a space: keepalived reads all 8 characters.
    let pass = "p#s!w d8";
    let since = epoch_now();
    let monitor = AddressMonitor::start(&lab, "node1");
    let (_, r) = day2_step(&wd, &lab, "load balancer: auth_pass changed", &config(&nodes, 52, pass, &bastion));
    monitor.assert_vip_never_gone(&lab, &vip(&lab));
    assert!(r.failed() <= 1, "{}", r.summary());
    // Same VRID: the holder's instance is kept across its reload, master throughout.
    assert!(became_master(&lab, since).iter().all(|n| n == "node1"), "the VIP stayed on its holder");
    for n in LBS {
        // SIGUSR1: keepalived writes its parsed configuration to /tmp/keepalived.data.
        let dump = sh(
            &lab,
            n,
            "rm -f /tmp/keepalived.data; systemctl kill -s USR1 --kill-whom=main keepalived; \
             for i in $(seq 50); do [ -s /tmp/keepalived.data ] && break; sleep 0.1; done; cat /tmp/keepalived.data",
        );
        assert!(dump.contains(&format!("Password = {pass}")), "{n} reads the whole password: {dump}");
    }
    single_holder(&lab, &LBS);
    // And after the apply: clients are not left with a stale ARP entry.
    let after = strata_acceptance_tests::prober::Prober::start(strata_acceptance_tests::prober::ProbeTargets::tcp(
        &vip(&lab),
        PORT,
    ));
    std::thread::sleep(Duration::from_secs(5));
    let after = after.stop();
    assert_eq!(after.failed(), 0, "after the auth_pass change: {}", after.summary());
    wd.destroy().unwrap();
}

/// The one backend of the day-2 test: the TCP responder on node4.
fn start_on_node4(lab: &LabGuard) {
    const SCRIPT: &str = r#"use IO::Socket::INET; $SIG{CHLD} = 'IGNORE'; my ($name, $port) = @ARGV;
my $l = IO::Socket::INET->new(LocalPort => $port, Listen => 128, ReuseAddr => 1) or die "listen: $!";
while (1) { my $c = $l->accept or next; if (fork() == 0) { close $l; print $c "$name\n"; exit 0; } close $c; }"#;
    let out = lab
        .exec(
            "node4",
            &["systemd-run", "--quiet", "--unit=strata-responder", "perl", "-e", SCRIPT, "node4", &PORT.to_string()],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
