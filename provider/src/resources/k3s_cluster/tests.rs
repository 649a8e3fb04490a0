use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::{AnyResource, Severity};
use serde_json::json;

fn value(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&K3sCluster).value_type(), Extra::Ignore).unwrap()
}

fn server(name: &str, ip: &str) -> serde_json::Value {
    json!({"name": name, "address": ip, "ssh": {"host": ip}})
}

fn base() -> serde_json::Value {
    json!({
        "version": "v1.36.1+k3s1",
        "server": [server("s1", "10.0.0.1"), server("s2", "10.0.0.2"), server("s3", "10.0.0.3")],
    })
}

/// (attribute path, detail) of each error of validation and of the plan's file checks
/// (`terraform plan` runs both; `terraform validate` only the first).
fn errors(j: serde_json::Value) -> Vec<(String, String)> {
    let config = value(j);
    let mut d = AnyResource::validate(&K3sCluster, &config, true);
    k3s::airgap::check_checksums(&config, &AttributePath::root("airgap"), &mut d);
    let mut out: Vec<(String, String)> = d
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default(), d.detail.clone()))
        .collect();
    out.sort();
    out
}

fn paths(j: serde_json::Value) -> Vec<String> {
    errors(j).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_valid_configuration_has_no_errors() {
    assert!(errors(base()).is_empty(), "{:?}", errors(base()));
}

#[test]
fn embedded_etcd_needs_an_odd_number_of_servers() {
    let mut j = base();
    j["server"] = json!([server("s1", "10.0.0.1"), server("s2", "10.0.0.2")]);
    let e = errors(j.clone());
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "server");
    assert!(e[0].1.contains("embedded etcd needs an odd number of servers (quorum), got 2"), "{}", e[0].1);
    // An external datastore has no such rule.
    j["datastore"] = json!({"endpoint": "https://10.0.0.9:2379"});
    assert!(errors(j).is_empty());
}

#[test]
fn unknown_and_owned_config_keys_are_refused_naming_the_key() {
    let mut j = base();
    j["config"] = json!({"cluster-cidr": "10.42.0.0/16", "no-such-flag": "1", "tls-san": "x", "node-name": "y"});
    let e = errors(j);
    let p: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(p, vec![r#"config["no-such-flag"]"#, r#"config["node-name"]"#, r#"config["tls-san"]"#]);
    assert!(e[0].1.contains("flag provided but not defined: -no-such-flag"), "{}", e[0].1);
    assert!(e[1].1.contains("server[*].name"), "{}", e[1].1);
    assert!(e[2].1.contains("set it with tls_san"), "{}", e[2].1);
    // An agent-only table has no server flags.
    assert_eq!(k3s::config::known_flag(Role::Agent, "v1.36.1+k3s1", "cluster-cidr"), Some(false));
    assert_eq!(k3s::config::known_flag(Role::Server, "v1.36.1+k3s1", "cluster-cidr"), Some(true));
    assert_eq!(k3s::config::known_flag(Role::Server, "v1.20.0+k3s1", "cluster-cidr"), None);
}

#[test]
fn airgap_files_are_checked_against_their_sha256_at_plan() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("k3s");
    std::fs::write(&bin, b"binary").unwrap();
    let images = dir.path().join("k3s-airgap-images-amd64.tar");
    std::fs::write(&images, b"images").unwrap();
    let sum = |p: &std::path::Path| crate::resources::image_registry::bundle::sha256_file(p).unwrap();
    let airgap = |sha: serde_json::Value| {
        let mut j = base();
        j["airgap"] = json!({"binary": bin.to_str().unwrap(), "images": [images.to_str().unwrap()], "sha256": sha});
        j
    };
    assert!(errors(airgap(json!({"k3s": sum(&bin), "k3s-airgap-images-amd64.tar": sum(&images)}))).is_empty());
    // `terraform validate` does not read the files (they may not exist there yet).
    let wrong_bin = airgap(json!({"k3s": "0".repeat(64), "k3s-airgap-images-amd64.tar": sum(&images)}));
    let v = AnyResource::validate(&K3sCluster, &value(wrong_bin), true);
    assert!(!v.iter().any(|d| d.severity == Severity::Error), "validate read the files");
    let wrong = "0".repeat(64);
    let e = errors(airgap(json!({"k3s": wrong, "k3s-airgap-images-amd64.tar": sum(&images)})));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, r#"airgap.sha256["k3s"]"#);
    assert!(e[0].1.contains(&sum(&bin)) && e[0].1.contains(&wrong), "both hashes: {}", e[0].1);
    let e = errors(airgap(json!({"k3s": sum(&bin)})));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, r#"airgap.sha256["k3s-airgap-images-amd64.tar"]"#);
}

#[test]
fn invalid_versions_and_taints_are_refused_naming_them() {
    let mut j = base();
    j["version"] = json!("v1.36.1");
    assert_eq!(paths(j), vec!["version"]);
    let mut j = base();
    j["server"][0]["taints"] = json!(["dedicated=db:NoSchedule", "role:Sometimes", "no-effect"]);
    j["server"][1]["labels"] = json!({"bad key": "x"});
    assert_eq!(paths(j), vec![r#"server[0].taints[1]"#, r#"server[0].taints[2]"#, r#"server[1].labels["bad key"]"#]);
    assert!(k3s::check_taint("node-role.kubernetes.io/control-plane:NoSchedule").is_ok());
    assert!(k3s::check_taint("a=b:NoExecute").is_ok());
}

#[test]
fn an_external_datastore_refuses_snapshots() {
    let mut j = base();
    j["datastore"] = json!({"endpoint": "https://10.0.0.9:2379"});
    j["etcd_snapshot"] = json!({"dir": "/srv/snap"});
    j["restore_from_snapshot"] = json!("/srv/snap/s1");
    assert_eq!(paths(j), vec!["etcd_snapshot", "restore_from_snapshot"]);
}

#[test]
fn disable_and_flannel_backend_take_only_k3s_values() {
    let mut j = base();
    j["disable"] = json!(["traefik", "nginx"]);
    j["flannel_backend"] = json!("udp");
    assert_eq!(paths(j), vec!["disable", "flannel_backend"]);
}

fn plan(prior: &Value, config: &Value) -> PlanChange {
    let proposed = match (prior, config) {
        (Value::Object(p), Value::Object(c)) => Value::Object(
            c.iter()
                .map(|(k, v)| {
                    let computed = ["id", "token", "server_url", "kubeconfig", "ca_cert", "join_token", "servers"]
                        .contains(&k.as_str());
                    (
                        k.clone(),
                        if computed && v.is_null() { p.get(k).cloned().unwrap_or(Value::Null) } else { v.clone() },
                    )
                })
                .collect(),
        ),
        _ => config.clone(),
    };
    AnyResource::plan(&K3sCluster, &crate::framework::Context::detached(), prior, &proposed, config)
}

fn state() -> serde_json::Value {
    let mut j = base();
    j["id"] = json!("https://10.0.0.1:6443");
    j["token"] = json!("secret-a");
    j["server_url"] = json!("https://10.0.0.1:6443");
    j["kubeconfig"] = json!("K");
    j["ca_cert"] = json!("CA");
    j["join_token"] = json!("K10x::server:secret-a");
    j["flannel_backend"] = json!("vxlan");
    j["delete_data_on_destroy"] = json!(false);
    j["servers"] = json!([
        {"name": "s1", "active": true, "version": "v1.36.1+k3s1", "configured": true},
        {"name": "s2", "active": true, "version": "v1.36.1+k3s1", "configured": true},
        {"name": "s3", "active": true, "version": "v1.36.1+k3s1", "configured": true},
    ]);
    j
}

fn plan_errors(p: &PlanChange) -> Vec<String> {
    p.diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect()
}

#[test]
fn the_token_of_an_existing_cluster_cannot_change() {
    let prior = value(state());
    let mut c = base();
    c["token"] = json!("secret-b");
    let p = plan(&prior, &value(c));
    assert_eq!(plan_errors(&p), vec!["token"]);
    // Unset keeps the token in state; the same token is no change.
    let p = plan(&prior, &value(base()));
    assert!(plan_errors(&p).is_empty());
    assert_eq!(p.planned.attr("token"), Some(&Value::string("secret-a")));
    assert_eq!(p.planned.attr("servers"), prior.attr("servers"), "nothing to roll");
    let mut c = base();
    c["token"] = json!("secret-a");
    assert!(plan_errors(&plan(&prior, &value(c))).is_empty());
}

#[test]
fn a_version_change_plans_a_roll_and_server_url_follows_tls_san() {
    let prior = value(state());
    let mut c = base();
    c["version"] = json!("v1.36.2+k3s1");
    let p = plan(&prior, &value(c));
    assert!(p.planned.attr("servers").is_some_and(Value::is_unknown));
    let mut c = base();
    c["tls_san"] = json!(["10.0.0.100", "k3s.example"]);
    let p = plan(&prior, &value(c));
    assert_eq!(p.planned.attr("server_url"), Some(&Value::string("https://10.0.0.100:6443")));
    assert!(p.planned.attr("kubeconfig").is_some_and(Value::is_unknown));
}

#[test]
fn a_lost_cluster_is_not_silently_formed_empty() {
    let mut s = state();
    s["ca_cert"] = json!(null);
    s["servers"] = json!(null);
    let p = plan(&value(s), &value(base()));
    let w: Vec<&str> =
        p.diagnostics.iter().filter(|d| d.severity == Severity::Warning).map(|d| d.detail.as_str()).collect();
    assert!(
        w.iter().any(|d| d.contains("refusing to form a new, empty cluster") && d.contains("allow_empty_cluster")),
        "{w:?}"
    );
    assert!(p.planned.attr("ca_cert").is_some_and(Value::is_unknown));
}

fn model(j: serde_json::Value) -> K3sClusterModel {
    crate::framework::model::to_model(&value(j)).unwrap()
}

#[test]
fn the_first_server_initialises_and_the_others_join_server_url() {
    let mut j = base();
    j["tls_san"] = json!(["10.0.0.100"]);
    j["disable"] = json!(["traefik"]);
    j["config"] = json!({"cluster-cidr": "10.42.0.0/16"});
    j["etcd_snapshot"] = json!({"schedule": "0 */6 * * *", "retention": 3});
    j["registry"] = json!({"mirrors": {"docker.io": ["https://10.0.0.5:5000/v2/docker.io"]}, "ca_cert": "CA"});
    j["server"][1]["labels"] = json!({"zone": "a"});
    j["server"][1]["taints"] = json!(["dedicated=cp:NoSchedule"]);
    let m = model(j);
    let first: serde_json::Value = serde_yaml_ng::from_str(&install::render(&m, 0, "s3cr3t")).unwrap();
    assert_eq!(first["cluster-init"], true);
    assert!(first.get("server").is_none());
    assert_eq!(first["token"], "s3cr3t");
    assert_eq!(first["node-name"], "s1");
    assert_eq!(first["node-ip"], "10.0.0.1");
    assert_eq!(first["tls-san"], json!(["10.0.0.100"]));
    assert_eq!(first["disable"], json!(["traefik"]));
    assert_eq!(first["flannel-backend"], "vxlan");
    assert_eq!(first["etcd-snapshot-schedule-cron"], "0 */6 * * *");
    assert_eq!(first["etcd-snapshot-retention"], 3);
    assert_eq!(first["disable-default-registry-endpoint"], true);
    assert_eq!(first["cluster-cidr"], "10.42.0.0/16");
    let second: serde_json::Value = serde_yaml_ng::from_str(&install::render(&m, 1, "s3cr3t")).unwrap();
    assert!(second.get("cluster-init").is_none());
    assert_eq!(second["server"], "https://10.0.0.100:6443");
    assert_eq!(second["node-label"], json!(["zone=a"]));
    assert_eq!(second["node-taint"], json!(["dedicated=cp:NoSchedule"]));
    let reg: serde_json::Value = serde_yaml_ng::from_str(&k3s::registry::render(m.registry.as_ref().unwrap())).unwrap();
    assert_eq!(reg["mirrors"]["docker.io"]["endpoint"], json!(["https://10.0.0.5:5000/v2/docker.io"]));
    assert_eq!(reg["configs"]["10.0.0.5:5000"]["tls"]["ca_file"], k3s::registry::CA_FILE);
}

#[test]
fn an_external_datastore_writes_its_keys_and_no_cluster_init() {
    let mut j = base();
    j["server"] = json!([server("s1", "10.0.0.1"), server("s2", "10.0.0.2")]);
    j["datastore"] = json!({"endpoint": "https://10.0.0.9:2379", "ca_cert": "C", "cert": "C", "key": "K"});
    let m = model(j);
    let first: serde_json::Value = serde_yaml_ng::from_str(&install::render(&m, 0, "t")).unwrap();
    assert!(first.get("cluster-init").is_none());
    assert_eq!(first["datastore-endpoint"], "https://10.0.0.9:2379");
    assert_eq!(first["datastore-keyfile"], "/etc/rancher/k3s/datastore/client.key");
    assert_eq!(first["datastore-cafile"], "/etc/rancher/k3s/datastore/ca.crt");
    // Without tls_san the registration address is the first server's.
    let second: serde_json::Value = serde_yaml_ng::from_str(&install::render(&m, 1, "t")).unwrap();
    assert_eq!(second["server"], "https://10.0.0.1:6443");
}

#[test]
fn node_side_details_follow_the_k3s_contract() {
    assert_eq!(
        k3s::parse_version("k3s version v1.36.1+k3s1 (standin)\ngo version go1.24.0\n").as_deref(),
        Some("v1.36.1+k3s1")
    );
    assert_eq!(roll::secret_of("K10abc::server:s3cr3t"), "s3cr3t");
    assert_eq!(roll::secret_of("s3cr3t"), "s3cr3t");
    let kc = "clusters:\n- cluster:\n    server: https://127.0.0.1:6443\n";
    assert!(roll::point_at(kc, "https://10.0.0.100:6443").contains("server: https://10.0.0.100:6443"));
    let u = k3s::unit("server");
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/k3s server",
        "KillMode=process",
        "Delegate=yes",
        "Restart=always",
        "TimeoutStartSec=0",
        "EnvironmentFile=-/etc/systemd/system/k3s.service.env",
    ] {
        assert!(u.lines().any(|l| l == line), "{line}");
    }
    assert!(k3s::unit("agent").contains("ExecStart=/usr/local/bin/k3s agent\n"));
    assert_eq!(model::server_url(None, Some("fd00::1")), "https://[fd00::1]:6443");
}

#[test]
fn servers_have_the_shared_node_shape() {
    let s = Resource::schema(&K3sCluster);
    let b = &s.block.find_block("server").unwrap().block;
    let shared = cluster_node::ssh_block();
    assert_eq!(b.find_block("ssh").unwrap().value_type(), shared.value_type());
    assert!(b.find_attribute("name").is_some() && b.find_attribute("address").is_some());
    assert!(s.block.find_attribute("token").unwrap().sensitive);
    assert!(s.block.find_attribute("kubeconfig").unwrap().sensitive);
}

#[test]
fn etcd_members_are_matched_by_peer_url_or_k3s_member_name() {
    let list = r#"{"header":{},"members":[
        {"ID":"1111","name":"s1-1a2b3c4d","peerURLs":["https://10.0.0.1:2380"]},
        {"ID":"2222","name":"other","peerURLs":["https://10.0.0.2:2380"]}]}"#;
    let ms = roll::parse_members(list).unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(roll::member_of(&ms, "s1", "10.9.9.9").map(|m| m.id.as_str()), Some("1111"));
    assert_eq!(roll::member_of(&ms, "s2", "10.0.0.2").map(|m| m.id.as_str()), Some("2222"));
    assert!(roll::member_of(&ms, "s3", "10.0.0.3").is_none());
    // A name that only starts like another is not it.
    assert!(roll::member_of(&ms, "s", "10.0.0.3").is_none());
    assert!(
        roll::member_of(&roll::parse_members(r#"{"members":[{"ID":1,"name":"s10-x"}]}"#).unwrap(), "s1", "x").is_none()
    );
    // Added but not started: matched by its peer URL, and not started.
    let added = roll::parse_members(r#"{"members":[{"ID":"3333","peerURLs":["https://10.0.0.3:2380"]}]}"#).unwrap();
    let m = roll::member_of(&added, "s3", "10.0.0.3").unwrap();
    assert!(!m.started());
    assert!(ms.iter().all(roll::Member::started));
}

#[test]
fn the_kubeconfig_points_at_server_url() {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let k3s_yaml = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b("CA"),
        b("CERT"),
        b("KEY")
    );
    let kc = crate::kube::kubeconfig::parse(&roll::point_at(&k3s_yaml, "https://10.0.0.100:6443")).unwrap();
    assert_eq!(kc.endpoint(), "10.0.0.100:6443");
    assert_eq!(kc.ca_pem, "CA");
}

#[test]
fn mirror_endpoints_must_be_urls_and_disable_is_written_sorted() {
    let mut j = base();
    j["registry"] = json!({"mirrors": {"docker.io": ["https://10.0.0.5:5000", "10.0.0.6:5000"]}});
    assert_eq!(paths(j), vec![r#"registry.mirrors["docker.io"][1]"#]);
    let mut j = base();
    j["disable"] = json!(["traefik", "coredns", "servicelb"]);
    let mut m = model(j);
    m.disable = Some(vec!["traefik".into(), "coredns".into(), "servicelb".into()]);
    let c: serde_json::Value = serde_yaml_ng::from_str(&install::render(&m, 0, "t")).unwrap();
    assert_eq!(c["disable"], json!(["coredns", "servicelb", "traefik"]));
}
