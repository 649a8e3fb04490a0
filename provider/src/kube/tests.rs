use super::*;

#[test]
fn bootstrap_token_secrets_are_what_kubeadm_token_create_makes() {
    let s = bootstrap_token_secret("abcdef", "0123456789abcdef", "2026-12-03T00:00:00Z");
    assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
    assert_eq!(s["metadata"]["namespace"], "kube-system");
    assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
    let d = &s["stringData"];
    assert_eq!(d["token-id"], "abcdef");
    assert_eq!(d["token-secret"], "0123456789abcdef");
    assert_eq!(d["expiration"], "2026-12-03T00:00:00Z");
    assert_eq!(d["usage-bootstrap-authentication"], "true");
    assert_eq!(d["usage-bootstrap-signing"], "true");
    assert_eq!(d["auth-extra-groups"], "system:bootstrappers:kubeadm:default-node-token");
}

#[test]
fn node_patches_set_owned_labels_delete_removed_ones_and_carry_the_taint_list() {
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let taints = vec![json!({"key": "dedicated", "effect": "NoSchedule"})];
    let p = node_patch(&labels, &["old".to_string()], &taints);
    assert_eq!(
        p,
        json!({"metadata": {"labels": {"env": "prod", "old": null}}, "spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}})
    );
    // No taints: an empty list clears them.
    assert_eq!(node_patch(&BTreeMap::new(), &[], &[])["spec"]["taints"], json!([]));
}

#[test]
fn nodes_read_back_labels_and_taints() {
    let n = parse_node(&json!({
        "metadata": {"name": "w1", "labels": {"env": "prod", "kubernetes.io/hostname": "w1"}},
        "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule", "timeAdded": null}]}
    }))
    .unwrap();
    assert_eq!(n.labels["env"], "prod");
    assert_eq!(
        n.taints,
        vec![Taint { key: "dedicated".into(), value: Some("db".into()), effect: "NoSchedule".into() }]
    );
    let bare = parse_node(&json!({"metadata": {"name": "w1"}, "spec": {}})).unwrap();
    assert_eq!(bare, NodeObject::default());
}

#[test]
fn a_bootstrap_token_is_valid_only_with_its_secret_and_before_it_expires() {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = |id: &str, secret: &str, expiration: Option<&str>| {
        let mut data = serde_json::json!({"token-id": b(id), "token-secret": b(secret)});
        if let Some(e) = expiration {
            data["expiration"] = serde_json::json!(b(e));
        }
        serde_json::json!({"metadata": {"name": format!("bootstrap-token-{id}")}, "data": data})
    };
    let now =
        time::OffsetDateTime::parse("2026-12-02T12:00:00Z", &time::format_description::well_known::Rfc3339).unwrap();
    let token = "abcdef.0123456789abcdef";
    assert!(bootstrap_token_matches(&secret("abcdef", "0123456789abcdef", Some("2026-12-03T00:00:00Z")), token, now));
    assert!(bootstrap_token_matches(&secret("abcdef", "0123456789abcdef", None), token, now), "no expiry");
    assert!(!bootstrap_token_matches(&secret("abcdef", "0123456789abcdef", Some("2026-12-02T11:00:00Z")), token, now));
    assert!(!bootstrap_token_matches(&secret("abcdef", "ffffffffffffffff", Some("2026-12-03T00:00:00Z")), token, now));
    assert!(!bootstrap_token_matches(&secret("abcdef", "0123456789abcdef", Some("not a time")), token, now));
    assert!(!bootstrap_token_matches(&serde_json::json!({}), token, now));
}

fn taint(k: &str, v: Option<&str>, e: &str) -> Taint {
    Taint { key: k.into(), value: v.map(str::to_string), effect: e.into() }
}

#[test]
fn merged_taints_change_only_the_owned_ones_and_keep_the_rest_as_the_api_gave_them() {
    let current = vec![
        json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}),
        json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-04T00:00:00Z"}),
        json!({"key": "old", "effect": "NoExecute"}),
        json!({"key": "dedicated", "value": "x", "effect": "NoExecute"}),
    ];
    let desired = vec![taint("dedicated", Some("gpu"), "NoSchedule"), taint("new", None, "PreferNoSchedule")];
    let removed = vec![taint("old", None, "NoExecute")];
    assert_eq!(
        merge_taints(&current, &desired, &removed),
        vec![
            json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}),
            json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}),
            json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-04T00:00:00Z"}),
            // Same key, another effect: another taint, not ours.
            json!({"key": "dedicated", "value": "x", "effect": "NoExecute"}),
            json!({"key": "new", "effect": "PreferNoSchedule"}),
        ]
    );
    // Nothing owned, nothing removed: the list is left exactly as it is.
    assert_eq!(merge_taints(&current, &[], &[]), current);
}

#[test]
fn a_drain_evicts_the_nodes_pods_but_not_daemonset_mirror_or_finished_ones() {
    let list = json!({"items": [
        {"metadata": {"namespace": "default", "name": "web-1"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Running"}},
        {"metadata": {"namespace": "default", "name": "web-2"}, "spec": {"nodeName": "w2"}},
        {"metadata": {"namespace": "kube-system", "name": "proxy-x", "ownerReferences": [{"kind": "DaemonSet", "name": "proxy"}]}, "spec": {"nodeName": "w1"}},
        {"metadata": {"namespace": "kube-system", "name": "static-w1", "annotations": {"kubernetes.io/config.mirror": "h"}}, "spec": {"nodeName": "w1"}},
        {"metadata": {"namespace": "default", "name": "job-1"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Succeeded"}},
        {"metadata": {"namespace": "db", "name": "pg-0", "ownerReferences": [{"kind": "StatefulSet", "name": "pg"}]}, "spec": {"nodeName": "w1"}},
    ]});
    assert_eq!(
        evictable_pods(&list, "w1"),
        vec![("default".to_string(), "web-1".to_string()), ("db".to_string(), "pg-0".to_string())]
    );
    assert!(evictable_pods(&json!({}), "w1").is_empty());
}

#[test]
fn a_lease_blocks_others_until_it_expires_or_is_released() {
    let t = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    let lease = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 30, "renewTime": "2026-12-04T10:00:00.000000Z"}});
    assert_eq!(lease_held_by_other(&lease, "b", t("2026-12-04T10:00:20Z")).as_deref(), Some("a"));
    assert_eq!(lease_held_by_other(&lease, "a", t("2026-12-04T10:00:20Z")), None, "its holder may renew it");
    assert_eq!(lease_held_by_other(&lease, "b", t("2026-12-04T10:00:31Z")), None, "expired");
    let released = json!({"spec": {"holderIdentity": null, "leaseDurationSeconds": 30, "renewTime": "2026-12-04T10:00:00.000000Z"}});
    assert_eq!(lease_held_by_other(&released, "b", t("2026-12-04T10:00:01Z")), None);
}

#[test]
fn lease_times_are_micro_times() {
    let t =
        time::OffsetDateTime::parse("2026-12-04T10:00:01.5Z", &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(micro_time(t), "2026-12-04T10:00:01.500000Z");
}

#[test]
fn names_stay_readable_in_paths_and_only_what_a_segment_cannot_hold_is_escaped() {
    assert_eq!(path_segment("web-1.apps"), "web-1.apps");
    assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
}

/// The stale registration of a node (its own address, or not Ready) may be deleted before
/// the new machine joins; a Ready Node registered from another address may not.
#[test]
fn a_stale_node_may_be_deleted_a_live_one_elsewhere_is_refused() {
    let node = |ip: &str, ready: &str| {
        parse_node(&json!({
            "metadata": {"name": "w1"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "w1"}],
                       "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    };
    let restored = node("10.0.0.4", "True");
    assert_eq!(restored.internal_ips, ["10.0.0.4"]);
    assert_eq!(restored.ready.as_deref(), Some("True"));
    assert_eq!(live_node_elsewhere(&restored, "w1", "10.0.0.4"), None, "its own stale registration");
    let other = live_node_elsewhere(&restored, "w1", "10.0.0.9").expect("a live machine elsewhere");
    assert!(other.contains("\"w1\"") && other.contains("10.0.0.4") && other.contains("10.0.0.9"), "{other}");
    assert_eq!(live_node_elsewhere(&node("10.0.0.4", "Unknown"), "w1", "10.0.0.9"), None, "a dead one elsewhere");
    assert_eq!(live_node_elsewhere(&restored, "w1", "w1.lan"), None, "a host name cannot be compared");
    let bare = parse_node(&json!({"metadata": {"name": "w1"}})).unwrap();
    assert_eq!((bare.internal_ips.len(), bare.ready), (0, None));
}
