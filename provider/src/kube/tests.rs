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
fn node_patches_set_owned_labels_delete_removed_ones_and_replace_taints() {
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let taints = vec![Taint { key: "dedicated".into(), value: None, effect: "NoSchedule".into() }];
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
