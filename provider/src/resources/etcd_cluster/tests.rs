use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::AnyResource;
use crate::resources::connection::ConnectionModel;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&EtcdCluster).value_type(), Extra::Ignore).unwrap()
}

fn member(name: &str, address: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "address": address, "ssh": {"host": address}})
}

fn base(members: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"ca_cert": "CERT", "ca_key": "KEY", "member": members})
}

fn three() -> Vec<serde_json::Value> {
    vec![member("etcd1", "10.0.0.1"), member("etcd2", "10.0.0.2"), member("etcd3", "10.0.0.3")]
}

fn paths(d: &Diagnostics, errors: bool) -> Vec<String> {
    d.iter()
        .filter(|d| (d.severity == crate::framework::Severity::Error) == errors)
        .map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect()
}

#[test]
fn member_counts_names_and_addresses_are_checked_at_plan_time() {
    let d = AnyResource::validate(&EtcdCluster, &config(base(vec![])), true);
    assert_eq!(paths(&d, true), vec!["member"]);
    let d = AnyResource::validate(
        &EtcdCluster,
        &config(base(vec![member("a", "10.0.0.1"), member("b", "10.0.0.2")])),
        true,
    );
    assert_eq!(paths(&d, true), Vec::<String>::new());
    assert_eq!(paths(&d, false), vec!["member"], "an even count is a warning");
    let d = AnyResource::validate(
        &EtcdCluster,
        &config(base(vec![member("a", "10.0.0.1"), member("a", "10.0.0.2"), member("c", "10.0.0.2")])),
        true,
    );
    assert_eq!(paths(&d, true), vec!["member[1].name", "member[2].address"]);
    assert!(AnyResource::validate(&EtcdCluster, &config(base(three())), true).is_empty());
}

#[test]
fn paths_keep_and_addresses_are_validated() {
    let mut j = base(three());
    j["data_dir"] = "var/lib/etcd".into();
    j["backup"] = serde_json::json!({"dir": "/srv/backup", "keep": 0});
    j["member"][0]["address"] = "not-an-ip".into();
    let d = AnyResource::validate(&EtcdCluster, &config(j), true);
    let mut p = paths(&d, true);
    p.sort();
    assert_eq!(p, vec!["backup.keep", "data_dir", "member[0].address"]);
    for bad in ["/", "/var/../etc", "relative", "/var/lib/etcd/"] {
        assert!(schema::check_dir(&Value::string(bad)).is_err(), "{bad}");
    }
}

/// A bbolt header: what snapshot::check takes for an etcd snapshot.
fn snapshot_file(dir: &std::path::Path) -> String {
    let f = dir.join("snap.db");
    let mut bytes = vec![0u8; 4096];
    bytes[8..10].copy_from_slice(&0x04u16.to_le_bytes());
    bytes[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    bytes[20..24].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&f, bytes).unwrap();
    f.to_str().unwrap().to_string()
}

/// Prior state of a running cluster (`cluster_id` set), or of one whose data every
/// member lost (`cluster_id` null, `id` kept: what Read records then).
fn prior_state(j: &serde_json::Value, lost: bool) -> serde_json::Value {
    let mut p = j.clone();
    p["data_dir"] = "/var/lib/etcd".into();
    p["id"] = "cdf818194e3a8c32".into();
    p["cluster_id"] = if lost { serde_json::Value::Null } else { "cdf818194e3a8c32".into() };
    p
}

#[test]
fn a_restore_file_is_checked_at_plan_only_when_it_will_be_used() {
    let ctx = crate::framework::Context::detached();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.db");
    std::fs::write(&f, "text, not a database, long enough to read a header").unwrap();
    let mut j = base(three());
    j["restore_from_snapshot"] = f.to_str().unwrap().into();
    // Create: used, so checked.
    let p = AnyResource::plan(&EtcdCluster, &ctx, &Value::Null, &config(j.clone()), &config(j.clone()));
    assert_eq!(paths(&p.diagnostics, true), vec!["restore_from_snapshot"]);
    // A running cluster: not used, so a moved or replaced file breaks nothing.
    let prior = prior_state(&j, false);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior), &config(j.clone()), &config(j.clone()));
    assert!(p.diagnostics.is_empty(), "{}", p.diagnostics);
    // A cluster that lost its data: used, so checked.
    let prior = prior_state(&j, true);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior), &config(j.clone()), &config(j));
    assert_eq!(paths(&p.diagnostics, true), vec!["restore_from_snapshot"]);
}

#[test]
fn a_cluster_that_lost_its_data_is_restored_or_formed_empty_only_when_asked() {
    let ctx = crate::framework::Context::detached();
    let dir = tempfile::tempdir().unwrap();
    let j = base(three());
    let lost = prior_state(&j, true);
    // Neither a snapshot nor the opt-in: the plan warns, naming both, that the apply
    // will refuse (which cluster::recover_if_lost does before anything is formed).
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(lost.clone()), &config(j.clone()), &config(j.clone()));
    assert_eq!(paths(&p.diagnostics, false), vec!["restore_from_snapshot"]);
    let said = p.diagnostics.to_string();
    assert!(
        said.contains("will refuse") && said.contains("restore_from_snapshot") && said.contains("allow_empty_cluster"),
        "{said}"
    );
    // A snapshot, or the opt-in: planned, the cluster id to be known after the apply.
    let mut restore = j.clone();
    restore["restore_from_snapshot"] = snapshot_file(dir.path()).into();
    let mut empty = j.clone();
    empty["allow_empty_cluster"] = true.into();
    for (c, then) in [(restore, "restores it"), (empty, "new, empty cluster")] {
        let p = AnyResource::plan(&EtcdCluster, &ctx, &config(lost.clone()), &config(c.clone()), &config(c));
        assert_eq!(paths(&p.diagnostics, true), Vec::<String>::new());
        assert!(p.diagnostics.to_string().contains(then), "{}", p.diagnostics);
        assert!(p.planned.attr("cluster_id").unwrap().is_unknown());
    }
    // A running cluster plans nothing of the sort.
    let running = prior_state(&j, false);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(running), &config(j.clone()), &config(j));
    assert!(p.diagnostics.is_empty(), "{}", p.diagnostics);
    assert!(!p.planned.attr("cluster_id").unwrap().is_unknown());
}

#[test]
fn a_renamed_member_is_not_a_removed_one() {
    let ctx = crate::framework::Context::detached();
    let prior = prior_state(&base(three()), false);
    // Two of three renamed in one apply: no member leaves, so no majority is removed.
    let renamed = base(vec![member("etcd-a", "10.0.0.1"), member("etcd-b", "10.0.0.2"), member("etcd3", "10.0.0.3")]);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior), &config(renamed.clone()), &config(renamed));
    assert!(p.diagnostics.is_empty(), "{}", p.diagnostics);
    // The running member is matched by its peer URL, whatever its name there.
    let listed = cluster::Listed {
        id: 7,
        name: "etcd1".into(),
        peer_urls: vec!["https://10.0.0.1:2380".into()],
        client_urls: vec![],
        is_learner: false,
    };
    assert!(cluster::matches(&listed, &models(&[("etcd-a", "10.0.0.1")])[0]));
    assert!(!cluster::matches(&listed, &models(&[("etcd1", "10.0.0.9")])[0]));
}

fn ca() -> (String, String) {
    let c = crate::pki::new_ca("etcd-ca", crate::pki::KeyAlgorithm::EcdsaP256, 3650).unwrap();
    (c.cert_pem, c.key_pem)
}

fn models(names: &[(&str, &str)]) -> Vec<MemberModel> {
    names
        .iter()
        .map(|(n, a)| MemberModel {
            name: n.to_string(),
            address: Some(a.to_string()),
            ssh: ConnectionModel { host: a.to_string(), ..Default::default() },
        })
        .collect()
}

#[test]
fn certificates_are_kept_until_the_ca_the_sans_or_the_expiry_ask_otherwise() {
    let (cert, key) = ca();
    let ms = models(&[("etcd1", "10.0.0.1"), ("etcd2", "10.0.0.2")]);
    let (issued, fresh) = certs::ensure(None, true, &cert, &key, &ms, 365, 30).unwrap();
    assert_eq!(fresh.len(), 6, "server and peer per member, two clients");
    let sans = crate::pki::subject_alt_names(&issued["etcd1/server"].cert).unwrap();
    assert_eq!(sans, vec!["10.0.0.1", "etcd1", "127.0.0.1", "localhost"]);
    // Same CA, same members: nothing new.
    assert!(certs::would_issue(Some(&issued), true, &ms, 30).is_empty());
    let (again, fresh) = certs::ensure(Some(&issued), true, &cert, &key, &ms, 365, 30).unwrap();
    assert!(fresh.is_empty() && again == issued);
    // A member moving address gets new certificates; the others keep theirs.
    let moved = models(&[("etcd1", "10.0.0.9"), ("etcd2", "10.0.0.2")]);
    assert_eq!(certs::would_issue(Some(&issued), true, &moved, 30), vec!["etcd1/server", "etcd1/peer"]);
    // Within renew_before_days of expiry (365 days left, renew 400 before): re-issued.
    assert_eq!(certs::would_issue(Some(&issued), true, &ms, 400).len(), 6);
    // Another CA: everything re-issued.
    assert_eq!(certs::would_issue(Some(&issued), false, &ms, 30).len(), 6);
}

#[test]
fn member_list_and_health_output_are_read() {
    let json = r#"{"header":{"cluster_id":14841639068965178418,"member_id":1,"raft_term":2},"members":[{"ID":10276657743932975437,"name":"etcd1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},{"ID":42,"peerURLs":["https://10.0.0.2:2380"]}]}"#;
    let (id, listed) = cluster::parse_member_list(json).unwrap();
    assert_eq!(format!("{id:x}"), "cdf818194e3a8c32");
    assert_eq!(listed[1].name, "", "an added member that has not started has no name yet");
    let health = cluster::parse_health(
        "https://10.0.0.1:2379 is healthy: successfully committed proposal: took = 2ms\n\
         https://10.0.0.2:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n",
    );
    assert_eq!(health.into_iter().collect::<Vec<_>>(), vec!["https://10.0.0.1:2379"]);
}

#[test]
fn quorum_is_never_given_up_by_one_change() {
    let view = |healthy: &[&str], listed: usize| cluster::View {
        via: 0,
        cluster_id: 1,
        listed: (0..listed)
            .map(|i| cluster::Listed {
                id: i as u64,
                name: format!("m{i}"),
                peer_urls: vec![],
                client_urls: vec![format!("u{i}")],
                is_learner: false,
            })
            .collect(),
        healthy: healthy.iter().map(|s| s.to_string()).collect(),
    };
    let all = |n: usize| (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>();
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // Growth one member at a time from every healthy size: 1 -> 2 -> 3 -> 4 -> 5.
    for n in 1..=4 {
        let h = all(n);
        assert!(cluster::require_quorum_after(&view(&refs(&h), n), None, 1, "new").is_ok(), "{n} -> {}", n + 1);
    }
    // Shrinking a healthy cluster one at a time: 5 -> 4 -> 3 -> 2 -> 1, never to 0.
    for n in 2..=5 {
        let h = all(n);
        assert!(cluster::require_quorum_after(&view(&refs(&h), n), Some(true), 0, "m0").is_ok(), "{n} -> {}", n - 1);
    }
    assert!(cluster::require_quorum_after(&view(&["u0"], 1), Some(true), 0, "m0").is_err(), "1 -> 0");
    // Three members, one lost: removing the lost one is fine, removing a healthy one is not.
    let v = view(&["u0", "u1"], 3);
    assert!(cluster::require_quorum_after(&v, Some(false), 0, "m2").is_ok());
    assert!(cluster::require_quorum_after(&v, Some(true), 0, "m1").is_err());
    // Adding to two healthy of three (one lost): four members, three healthy, a quorum.
    assert!(cluster::require_quorum_after(&v, None, 1, "m3").is_ok());
    // Adding to one healthy of two (no quorum now): no.
    assert!(cluster::require_quorum_after(&view(&["u0"], 2), None, 1, "m2").is_err());
    // Five members, two lost: quorum now (3 of 5), but not after removing a healthy one.
    let v = view(&["u0", "u1", "u2"], 5);
    assert!(cluster::require_quorum_after(&v, Some(false), 0, "m4").is_ok());
    assert!(cluster::require_quorum_after(&v, Some(true), 0, "m0").is_err());
    // A learner (being added) does not count towards the quorum.
    let mut v = view(&["u0", "u1"], 3);
    v.listed[2].is_learner = true;
    assert!(cluster::require_quorum_after(&v, Some(true), 0, "m0").is_ok(), "2 voters -> 1");
    for (size, healthy, ok) in [(1, 1, true), (2, 1, false), (2, 2, true), (3, 2, true), (4, 2, false), (5, 3, true)] {
        assert_eq!(cluster::quorum(size, healthy), ok, "{healthy} of {size}");
    }
}

#[test]
fn the_added_member_id_is_read() {
    let out = "Member 8e9e05c52164694d added to cluster cdf818194e3a8c32\n\nETCD_NAME=\"etcd2\"\n";
    assert_eq!(cluster::added_id(out), Some(0x8e9e05c52164694d));
    assert_eq!(cluster::added_id("nothing"), None);
}

#[test]
fn settings_are_tls_on_both_urls_with_client_certificates() {
    let ms = models(&[("etcd1", "10.0.0.1")]);
    let env = member::render_env(&ms[0], "/var/lib/etcd");
    for line in [
        "ETCD_LISTEN_CLIENT_URLS=https://10.0.0.1:2379,https://127.0.0.1:2379",
        "ETCD_LISTEN_PEER_URLS=https://10.0.0.1:2380",
        "ETCD_CLIENT_CERT_AUTH=true",
        "ETCD_PEER_CLIENT_CERT_AUTH=true",
        "ETCD_DATA_DIR=/var/lib/etcd",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in {env}");
    }
    assert_eq!(
        member::initial_cluster(&models(&[("a", "10.0.0.1"), ("b", "fd00::2")])),
        "a=https://10.0.0.1:2380,b=https://[fd00::2]:2380"
    );
}

#[test]
fn a_data_dir_change_is_refused_and_removing_a_majority_too() {
    let ctx = crate::framework::Context::detached();
    let mut prior = base(three());
    prior["data_dir"] = "/var/lib/etcd".into();
    let mut moved = prior.clone();
    moved["data_dir"] = "/srv/etcd".into();
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior.clone()), &config(moved.clone()), &config(moved));
    assert_eq!(paths(&p.diagnostics, true), vec!["data_dir"]);
    assert!(p.requires_replace.is_empty(), "never replaced: that would wipe the data");
    let mut shrunk = prior.clone();
    shrunk["member"] = serde_json::json!([member("etcd1", "10.0.0.1")]);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior.clone()), &config(shrunk.clone()), &config(shrunk));
    assert_eq!(paths(&p.diagnostics, true), vec!["member"]);
    let mut one_less = prior.clone();
    one_less["member"] = serde_json::json!([member("etcd1", "10.0.0.1"), member("etcd2", "10.0.0.2")]);
    let p = AnyResource::plan(&EtcdCluster, &ctx, &config(prior.clone()), &config(one_less.clone()), &config(one_less));
    assert!(p.diagnostics.is_empty(), "{}", p.diagnostics);
}

#[test]
fn a_pinned_etcd_older_than_kubeadms_minimum_is_refused_at_plan() {
    let mut j = base(three());
    j["package_version"] = "3.4.23-4+b4".into();
    let d = AnyResource::validate(&EtcdCluster, &config(j.clone()), true);
    assert_eq!(paths(&d, true), vec!["package_version"]);
    let msg = d.iter().map(|d| format!("{} {}", d.summary, d.detail)).collect::<String>();
    assert!(msg.contains("3.4.23") && msg.contains("3.5.24"), "{msg}");
    for ok in ["3.5.30-2", "3.5.24-1", "3.6.6-1"] {
        j["package_version"] = ok.into();
        assert!(AnyResource::validate(&EtcdCluster, &config(j.clone()), true).is_empty(), "{ok}");
    }
}

/// The leader hands over to a started voting member other than itself before its restart.
#[test]
fn the_leader_and_a_member_to_hand_over_to_are_read() {
    let status = r#"[{"Endpoint":"https://10.0.0.1:2379","Status":{"header":{"cluster_id":1,"member_id":11,"revision":5,"raft_term":3},"version":"3.5.30","dbSize":20480,"leader":11,"raftIndex":9,"raftTerm":3}}]"#;
    assert_eq!(member::parse_status(status), Some((11, 11)));
    assert_eq!(member::parse_status("not json"), None);
    let list = r#"{"header":{"member_id":11},"members":[{"ID":11,"name":"etcd1"},{"ID":12,"name":"","peerURLs":["https://10.0.0.2:2380"]},{"ID":13,"name":"etcd3","isLearner":true},{"ID":14,"name":"etcd4"}]}"#;
    assert_eq!(member::other_started_member(list, 11), Some(14), "not itself, not unstarted, not a learner");
    assert_eq!(member::other_started_member(r#"{"members":[{"ID":11,"name":"etcd1"}]}"#, 11), None);
}
