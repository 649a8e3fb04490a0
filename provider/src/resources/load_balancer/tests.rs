use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::AnyResource;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &AnyResource::schema(&LoadBalancer).value_type(), Extra::Ignore).unwrap()
}

fn base() -> serde_json::Value {
    serde_json::json!({
        "name": "k8s",
        "vip": "10.77.0.100/24",
        "interface": "eth0",
        "virtual_router_id": 51,
        "auth_pass": "s3cret",
        "node": [
            {"name": "lb1", "ssh": {"host": "10.77.0.11"}},
            {"name": "lb2", "ssh": {"host": "10.77.0.12"}},
            {"name": "lb3", "ssh": {"host": "10.77.0.13"}}
        ],
        "frontend": [{
            "name": "kube-apiserver",
            "bind_port": 6443,
            "backend": [
                {"name": "cp1", "address": "10.77.0.21", "port": 6443},
                {"name": "cp2", "address": "cp2.example.com", "port": 6443}
            ],
            "health_check": {"type": "https", "path": "/readyz", "expect_status": 200}
        }]
    })
}

fn error_paths(j: serde_json::Value) -> Vec<String> {
    let d = AnyResource::validate(&LoadBalancer, &config(j), true);
    assert!(d.iter().all(|d| !d.detail.contains("s3cret") && !d.summary.contains("s3cret")), "{d}");
    d.iter().map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
}

#[test]
fn the_issue_example_is_valid() {
    assert_eq!(error_paths(base()), Vec::<String>::new());
}

#[test]
fn bad_input_is_refused_naming_the_attribute() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("vip", "10.77.0.100".into(), "vip"),
        ("vip", "10.77.0.300/24".into(), "vip"),
        ("virtual_router_id", 0.into(), "virtual_router_id"),
        ("virtual_router_id", 256.into(), "virtual_router_id"),
        ("auth_pass", "ninechars".into(), "auth_pass"),
        ("auth_pass", "a\"b".into(), "auth_pass"),
        ("auth_pass", "a\\b".into(), "auth_pass"),
        ("auth_pass", "a$_HASH".into(), "auth_pass"),
        ("auth_pass", "pässwd".into(), "auth_pass"),
        ("stats_port", 70000.into(), "stats_port"),
        ("advert_interval", 0.05.into(), "advert_interval"),
        ("advert_interval", 0.125.into(), "advert_interval"),
        ("client_timeout", "10".into(), "client_timeout"),
    ];
    for (attr, v, path) in cases {
        let mut j = base();
        if attr == "advert_interval" {
            j.as_object_mut().unwrap().remove("auth_pass");
        }
        j[attr] = v;
        assert_eq!(error_paths(j), vec![path], "{attr}");
    }
    let mut j = base();
    j["frontend"][0]["backend"][0]["address"] = "not an address".into();
    assert_eq!(error_paths(j), vec!["frontend[0].backend[0].address"]);
    let mut j = base();
    j["frontend"][0]["backend"][1]["port"] = 0.into();
    assert_eq!(error_paths(j), vec!["frontend[0].backend[1].port"]);
    let mut j = base();
    j["frontend"][0]["bind_port"] = 65536.into();
    assert_eq!(error_paths(j), vec!["frontend[0].bind_port"]);
}

#[test]
fn duplicates_are_refused_at_the_later_one() {
    let mut j = base();
    j["node"][2]["ssh"]["host"] = "10.77.0.11".into();
    assert_eq!(error_paths(j), vec!["node[2].ssh.host"]);
    let mut j = base();
    j["node"][2]["name"] = "lb1".into();
    assert_eq!(error_paths(j), vec!["node[2].name"]);
    let mut j = base();
    j["node"][0]["address"] = "10.77.0.50".into();
    j["node"][1]["address"] = "10.77.0.50".into();
    assert_eq!(error_paths(j), vec!["node[1].address"]);
    // An explicit priority equal to another node's derived one (the second is 99).
    let mut j = base();
    j["node"][2]["priority"] = 99.into();
    assert_eq!(error_paths(j), vec!["node[2].priority"]);
    let mut j = base();
    let second = serde_json::json!({"name": "other", "bind_port": 6443,
        "backend": [{"name": "a", "address": "10.0.0.1", "port": 80}]});
    j["frontend"].as_array_mut().unwrap().push(second);
    assert_eq!(error_paths(j), vec!["frontend[1].bind_port"]);
}

#[test]
fn a_host_name_needs_an_address_and_vrrp3_has_no_password() {
    let mut j = base();
    j["node"][1]["ssh"]["host"] = "lb2.example.com".into();
    assert_eq!(error_paths(j.clone()), vec!["node[1].address"]);
    j["node"][1]["address"] = "10.77.0.12".into();
    assert_eq!(error_paths(j), Vec::<String>::new());
    let mut j = base();
    j["advert_interval"] = 0.1.into();
    assert_eq!(error_paths(j.clone()), vec!["auth_pass"]);
    j.as_object_mut().unwrap().remove("auth_pass");
    assert_eq!(error_paths(j), Vec::<String>::new());
}

#[test]
fn tls_needs_http_and_tcp_checks_take_no_path() {
    let mut j = base();
    j["frontend"][0]["tls_certificate"] = "PEM".into();
    j["frontend"][0]["health_check"]["type"] = "tcp".into();
    assert_eq!(
        error_paths(j),
        vec!["frontend[0].tls_certificate", "frontend[0].health_check.path", "frontend[0].health_check.expect_status"]
    );
}

fn planned(j: serde_json::Value) -> Value {
    let c = config(j);
    AnyResource::plan(&LoadBalancer, &Context::detached(), &Value::Null, &c, &c).planned
}

#[test]
fn plan_derives_priorities_and_knows_the_digests() {
    let p = planned(base());
    let Some(Value::List(nodes)) = p.attr("node") else { panic!() };
    let prios: Vec<_> = nodes.iter().map(|n| n.attr("priority").and_then(Value::as_i64)).collect();
    assert_eq!(prios, vec![Some(100), Some(99), Some(98)]);
    let Some(Value::Map(digests)) = p.attr("haproxy_config_sha256") else { panic!("{p:?}") };
    assert_eq!(digests.keys().collect::<Vec<_>>(), vec!["lb1", "lb2", "lb3"], "keyed by name");
    assert_eq!(p.attr("master_node"), Some(&Value::Unknown));
    assert_eq!(p.attr("id"), Some(&Value::string("k8s")));
    // Nothing changed: no diff, the master stays as refreshed.
    let mut prior = p.unknown_as_null();
    if let Some(v) = prior.attr_mut("master_node") {
        *v = "lb1".into();
    }
    let c = config(base());
    let mut proposed = prior.clone();
    if let Some(v) = proposed.attr_mut("auth_pass") {
        *v = c.attr("auth_pass").unwrap().clone();
    }
    let again = AnyResource::plan(&LoadBalancer, &Context::detached(), &prior, &proposed, &c);
    assert!(again.planned.semantically_equal(&prior), "{:?}", again.planned);
    // A hand edit on one node shows as a change of that node's digest only.
    let mut drifted = prior.clone();
    if let Some(Value::Map(d)) = drifted.attr_mut("haproxy_config_sha256") {
        d.insert("lb2".into(), "edited".into());
    }
    let mut proposed = drifted.clone();
    if let Some(v) = proposed.attr_mut("auth_pass") {
        *v = c.attr("auth_pass").unwrap().clone();
    }
    let again = AnyResource::plan(&LoadBalancer, &Context::detached(), &drifted, &proposed, &c);
    assert_eq!(again.planned.attr("haproxy_config_sha256"), prior.attr("haproxy_config_sha256"), "back to rendered");
    assert_eq!(again.planned.attr("master_node"), Some(&Value::Unknown), "an update may move the VIP");
}

fn model() -> LoadBalancerModel {
    let c = planned(base()).unknown_as_null();
    to_model(&c).unwrap()
}

#[test]
fn rendered_files_say_what_the_issue_asks() {
    let m = model();
    let h = render::haproxy(&m, 0);
    for part in [
        "master-worker",
        "bind 10.77.0.100:6443",
        "mode tcp",
        "balance roundrobin",
        "option httpchk GET /readyz",
        "http-check expect status 200",
        "server cp1 10.77.0.21:6443 check check-ssl verify none weight 1",
        "server cp2 cp2.example.com:6443 check",
        "timeout tunnel 3600000ms",
    ] {
        assert!(h.contains(part), "haproxy.cfg lacks {part:?}:\n{h}");
    }
    let k = render::keepalived(&m, 1, 99);
    for part in [
        "enable_script_security",
        "script_user keepalived_script",
        "systemctl is-active --quiet haproxy.service",
        "priority 99",
        "advert_int 1\n",
        "unicast_src_ip 10.77.0.12",
        "        10.77.0.11\n        10.77.0.13\n",
        "auth_pass \"s3cret\"",
        "10.77.0.100/24 dev eth0",
    ] {
        assert!(k.contains(part), "keepalived.conf lacks {part:?}:\n{k}");
    }
    assert!(!k.contains("vrrp_version") && !k.contains("nopreempt") && !k.contains("killall"));
    assert!(render::sysctl(&m).contains("net.ipv4.ip_nonlocal_bind = 1"));
    assert!(render::haproxy_drop_in(&m).contains("Restart=no"));
}

#[test]
fn fractional_adverts_use_vrrp3() {
    let mut m = model();
    m.advert_interval = Some(0.1);
    m.auth_pass = None;
    let k = render::keepalived(&m, 0, 100);
    assert!(k.contains("vrrp_version 3") && k.contains("advert_int 0.1\n"), "{k}");
    assert!(!k.contains("authentication"));
}

#[test]
fn the_keepalived_digest_shows_a_changed_password_without_depending_on_it() {
    let m = model();
    let k = render::keepalived(&m, 0, 100);
    let d = render::keepalived_digest(&k, Some("s3cret"));
    let other = render::keepalived(&LoadBalancerModel { auth_pass: Some("x".into()), ..m.clone() }, 0, 100);
    assert_eq!(render::keepalived_digest(&other, Some("x")), d, "the digest does not depend on the password");
    assert_ne!(render::keepalived_digest(&other, Some("s3cret")), d, "a changed password is drift");
    assert_ne!(render::keepalived_digest(&k.replace("priority 100", "priority 1"), Some("s3cret")), d);
}

#[test]
fn auth_pass_is_quoted_so_hash_and_bang_do_not_cut_it_short() {
    let mut j = base();
    j["auth_pass"] = "a#b!c d".into();
    assert_eq!(error_paths(j), Vec::<String>::new(), "keepalived holds these when quoted");
    let m = LoadBalancerModel { auth_pass: Some("a#b!c d".into()), ..model() };
    let k = render::keepalived(&m, 0, 100);
    assert!(k.contains("        auth_pass \"a#b!c d\"\n"), "{k}");
    // The digest reads both the quoted form and the bare one written before.
    let d = render::keepalived_digest(&k, Some("a#b!c d"));
    let bare = render::keepalived(&LoadBalancerModel { auth_pass: Some("s3cret".into()), ..model() }, 0, 100);
    assert_eq!(render::keepalived_digest(&bare.replace("\"s3cret\"", "s3cret"), Some("s3cret")), d);
}

/// The converged state a plan promises for `j`, as the next plan's prior.
fn applied(j: serde_json::Value) -> LoadBalancerModel {
    let mut m: LoadBalancerModel = to_model(&planned(j).unknown_as_null()).unwrap();
    m.master_node = Some("lb1".into());
    m
}

#[test]
fn a_changed_ssh_or_name_changes_no_node_and_keeps_the_digests() {
    let prior = applied(base());
    // Every node's ssh.host from its address to a DNS name of the same machine.
    let mut j = base();
    for (i, n) in j["node"].as_array_mut().unwrap().iter_mut().enumerate() {
        n["address"] = format!("10.77.0.1{}", i + 1).into();
        n["ssh"]["host"] = format!("lb{}.lab.example", i + 1).into();
        n["ssh"]["port"] = 2222.into();
    }
    assert_eq!(error_paths(j.clone()), Vec::<String>::new());
    let next = applied(j);
    assert_eq!(next.haproxy_config_sha256, prior.haproxy_config_sha256);
    assert_eq!(next.keepalived_config_sha256, prior.keepalived_config_sha256);
    assert!((0..3).all(|i| !next.changes(Some(&prior), i)), "nothing to run on any node");
    // A rename: the same machine under another name has the same files.
    let mut j = base();
    j["node"][1]["name"] = "edge-b".into();
    let renamed = applied(j);
    assert_eq!(
        renamed.haproxy_config_sha256.as_ref().unwrap()["edge-b"],
        prior.haproxy_config_sha256.as_ref().unwrap()["lb2"]
    );
    assert!((0..3).all(|i| !renamed.changes(Some(&prior), i)), "a rename runs nothing on the node");
    // A new node at a new address is a new node.
    let mut j = base();
    j["node"][1]["name"] = "edge-b".into();
    j["node"][1]["ssh"]["host"] = "10.77.0.22".into();
    assert!(applied(j).changes(Some(&prior), 1));
}

#[test]
fn an_added_node_changes_it_and_the_peers_whose_list_changes_and_a_vrid_change_changes_all() {
    let prior = applied(base());
    let mut j = base();
    j["node"].as_array_mut().unwrap().push(serde_json::json!({"name": "lb4", "ssh": {"host": "10.77.0.14"}}));
    let grown = applied(j);
    // Unicast peers: every keepalived.conf lists the new node, so each is reloaded (rolling).
    assert!((0..4).all(|i| grown.changes(Some(&prior), i)));
    let mut j = base();
    j["unicast"] = false.into();
    j["node"].as_array_mut().unwrap().push(serde_json::json!({"name": "lb4", "ssh": {"host": "10.77.0.14"}}));
    let (p, g) = (
        applied({
            let mut b = base();
            b["unicast"] = false.into();
            b
        }),
        applied(j),
    );
    assert_eq!(
        (0..4).map(|i| g.changes(Some(&p), i)).collect::<Vec<_>>(),
        vec![false, false, false, true],
        "multicast: only the new node"
    );
    let mut j = base();
    j["virtual_router_id"] = 52.into();
    let v = applied(j);
    assert!((0..3).all(|i| v.changes(Some(&prior), i)));
    assert!(!v.same_vrrp_group(&prior) && prior.same_vrrp_group(&prior));
}

#[test]
fn state_of_version_0_gets_names_from_the_hosts_its_maps_were_keyed_by() {
    let raw = serde_json::json!({
        "id": "k8s", "name": "k8s", "master_node": "10.77.0.11",
        "haproxy_config_sha256": {"10.77.0.11": "a", "10.77.0.12": "b"},
        "node": [
            {"address": null, "priority": 100, "ssh": {"host": "10.77.0.11"}},
            {"address": null, "priority": 99, "ssh": {"host": "10.77.0.12"}}
        ]
    });
    let up = LoadBalancer.upgrade_state(0, raw).unwrap();
    assert_eq!(up["node"][0]["name"], "10.77.0.11");
    assert_eq!(up["node"][1]["name"], "10.77.0.12");
    // The maps' keys are the names now, unchanged.
    assert_eq!(up["haproxy_config_sha256"]["10.77.0.12"], "b");
    assert_eq!(up["master_node"], "10.77.0.11");
    assert_eq!(AnyResource::schema(&LoadBalancer).version, 1);
}

#[test]
fn the_holder_carries_the_vip_into_a_new_group_as_its_owner() {
    let m = LoadBalancerModel { nopreempt: Some(true), ..model() };
    let k = render::keepalived_handover(&m, 0);
    assert!(k.contains("state MASTER\n") && !k.contains("state BACKUP"), "{k}");
    assert!(k.contains(&format!("priority {}\n", render::OWNER_PRIORITY)), "{k}");
    assert!(!k.contains("nopreempt"), "keepalived refuses nopreempt with state MASTER: {k}");
    // Otherwise the node's final configuration: same group, peers and VIP.
    let last = render::keepalived(&m, 0, 100);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("state ") && !l.contains("priority ") && !l.contains("nopreempt"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&k), strip(&last));
}

#[test]
fn the_vip_bridge_is_the_vip_as_a_host_address_on_loopback() {
    let mut m = model();
    let bridge = |m: &LoadBalancerModel| render::vip_bridge(m).map(|n| n.to_string());
    m.vip = "10.77.0.100/24".into();
    assert_eq!(bridge(&m).as_deref(), Some("10.77.0.100/32"));
    m.vip = "10.77.0.100/32".into();
    assert_eq!(bridge(&m).as_deref(), Some("10.77.0.100/32"));
    m.vip = "fd00:0:0::64/64".into();
    assert_eq!(bridge(&m).as_deref(), Some("fd00::64/128"));
    assert_eq!(render::BRIDGE_INTERFACE, "lo");
}

#[test]
fn keepalived_s_vip_is_told_from_the_bridge_in_ip_addr_output() {
    let mut m = model();
    m.vip = "10.77.0.100/24".into();
    let keepalived_s = |out: &str, m: &LoadBalancerModel| render::addresses(out).contains(&render::vip_net(m).unwrap());
    let bridge_only = "2: eth0    inet 10.77.0.11/24 brd 10.77.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                       2: eth0    inet 10.77.0.100/32 scope global noprefixroute eth0\\       valid_lft 29sec preferred_lft 29sec\n";
    assert!(!keepalived_s(bridge_only, &m));
    assert!(render::addresses(bridge_only).contains(&render::vip_bridge(&m).unwrap()));
    let both = format!(
        "{bridge_only}2: eth0    inet 10.77.0.100/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever\n"
    );
    assert!(keepalived_s(&both, &m));
    m.vip = "fd00:0::64/64".into();
    assert!(keepalived_s(
        "3: eth0    inet6 fd00::64/64 scope global \\       valid_lft forever preferred_lft forever\n",
        &m
    ));
}
