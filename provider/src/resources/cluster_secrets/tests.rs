use super::*;
use crate::framework::{AnyResource, AttributePath, Value};
use rcgen::PublicKeyData;
use tokio_util::sync::CancellationToken;

fn ctx() -> Context {
    Context::new(CancellationToken::new(), None)
}

fn planned(name: &str, algo: Option<&str>) -> ClusterSecretsModel {
    ClusterSecretsModel {
        cluster_name: name.into(),
        validity_days: Some(30),
        key_algorithm: algo.map(str::to_string),
        ..Default::default()
    }
}

fn is_token(t: &str) -> bool {
    regex::Regex::new("^[a-z0-9]{6}\\.[a-z0-9]{16}$").unwrap().is_match(t)
}

#[tokio::test]
async fn create_generates_a_complete_identity() {
    let m = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
    assert_eq!(m.id.as_deref(), Some("prod"));
    assert_eq!(m.key_algorithm.as_deref(), Some("ecdsa-p256"));
    assert!(is_token(m.bootstrap_token.as_deref().unwrap()));
    let ck = m.certificate_key.as_deref().unwrap();
    assert_eq!(ck.len(), 64);
    assert!(ck.chars().all(|c| c.is_ascii_hexdigit()));
    for pem in [&m.kubernetes_ca_cert, &m.front_proxy_ca_cert, &m.etcd_ca_cert] {
        let pem = pem.as_deref().unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = p.parse_x509().unwrap();
        assert!(cert.is_ca(), "CA flag");
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86400;
        assert_eq!(days, 30);
    }
    for key in [&m.kubernetes_ca_key, &m.etcd_ca_key, &m.front_proxy_ca_key, &m.service_account_private_key] {
        assert!(key.as_deref().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    assert!(m.service_account_public_key.as_deref().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    // The hash is over the CA's SubjectPublicKeyInfo.
    let hash = m.ca_cert_hash.as_deref().unwrap();
    let key = rcgen::KeyPair::from_pem(m.kubernetes_ca_key.as_deref().unwrap()).unwrap();
    use sha2::Digest;
    let expected = format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.subject_public_key_info())));
    assert_eq!(hash, expected);
    // Three distinct CAs, two distinct runs.
    assert_ne!(m.kubernetes_ca_key, m.etcd_ca_key);
    let other = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
    assert_ne!(other.bootstrap_token, m.bootstrap_token);
    assert_ne!(other.ca_cert_hash, m.ca_cert_hash);
}

#[tokio::test]
async fn rsa_keys_are_rsa() {
    let m = ClusterSecrets.create(&ctx(), planned("lab", Some("rsa-2048"))).await.ok().unwrap();
    let key = rcgen::KeyPair::from_pem(m.kubernetes_ca_key.as_deref().unwrap()).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
    let sa = rcgen::KeyPair::from_pem(m.service_account_private_key.as_deref().unwrap()).unwrap();
    assert_eq!(sa.algorithm(), &rcgen::PKCS_RSA_SHA256);
}

#[tokio::test]
async fn changing_validity_reissues_certificates_for_the_same_keys() {
    let prior = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
    let mut want = prior.clone();
    want.validity_days = Some(365);
    let next = ClusterSecrets.update(&ctx(), prior.clone(), want).await.ok().unwrap();
    assert_eq!(next.validity_days, Some(365));
    assert_ne!(next.kubernetes_ca_cert, prior.kubernetes_ca_cert);
    assert_eq!(next.kubernetes_ca_key, prior.kubernetes_ca_key);
    assert_eq!(next.ca_cert_hash, prior.ca_cert_hash, "joins pin the key, which did not change");
    assert_eq!(next.bootstrap_token, prior.bootstrap_token);
    assert_ne!(next.ca_expires_at, prior.ca_expires_at);
}

fn value_of(m: &ClusterSecretsModel) -> Value {
    crate::framework::model::from_model(m, &Resource::schema(&ClusterSecrets).value_type()).unwrap()
}

#[tokio::test]
async fn plan_marks_what_will_change() {
    let prior_m = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
    let prior = value_of(&prior_m);
    // Unchanged config: nothing unknown, nothing to replace.
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &prior, &prior, &prior);
    assert!(p.planned.is_fully_known());
    assert!(p.requires_replace.is_empty());
    assert_eq!(p.planned, prior);
    // Validity change: certificates unknown, keys kept, no replacement.
    let mut proposed = prior.clone();
    *proposed.attr_mut("validity_days").unwrap() = Value::int(90);
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &prior, &proposed, &proposed);
    assert_eq!(p.planned.attr("kubernetes_ca_cert"), Some(&Value::Unknown));
    assert_eq!(p.planned.attr("kubernetes_ca_key"), prior.attr("kubernetes_ca_key"));
    assert!(p.requires_replace.is_empty());
    // Name change: replacement.
    let mut proposed = prior.clone();
    *proposed.attr_mut("cluster_name").unwrap() = "other".into();
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &prior, &proposed, &proposed);
    assert_eq!(p.requires_replace, vec![AttributePath::root("cluster_name")]);
}

#[test]
fn create_plan_knows_the_id_and_defaults() {
    let ty = Resource::schema(&ClusterSecrets).value_type();
    let mut config = crate::framework::json::decode(
        &serde_json::json!({"cluster_name": "prod"}),
        &ty,
        crate::framework::json::Extra::Reject,
    )
    .unwrap();
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &Value::Null, &config, &config);
    assert_eq!(p.planned.attr("id"), Some(&Value::string("prod")));
    assert_eq!(p.planned.attr("validity_days"), Some(&Value::int(3650)));
    assert_eq!(p.planned.attr("key_algorithm"), Some(&Value::string("ecdsa-p256")));
    assert_eq!(p.planned.attr("bootstrap_token"), Some(&Value::Unknown));
    // An unknown cluster name (from another resource) leaves the id unknown.
    *config.attr_mut("cluster_name").unwrap() = Value::Unknown;
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &Value::Null, &config, &config);
    assert_eq!(p.planned.attr("id"), Some(&Value::Unknown));
}

#[test]
fn validation_names_the_attribute() {
    let ty = Resource::schema(&ClusterSecrets).value_type();
    let config = crate::framework::json::decode(
        &serde_json::json!({"cluster_name": "Prod_1", "validity_days": 0, "key_algorithm": "dsa"}),
        &ty,
        crate::framework::json::Extra::Reject,
    )
    .unwrap();
    let d = AnyResource::validate(&ClusterSecrets, &config);
    let mut paths: Vec<String> = d.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
    paths.sort();
    assert_eq!(paths, vec!["cluster_name", "key_algorithm", "validity_days"]);
}

#[test]
fn secrets_are_marked_sensitive() {
    let schema = Resource::schema(&ClusterSecrets);
    for name in [
        "kubernetes_ca_key",
        "front_proxy_ca_key",
        "etcd_ca_key",
        "service_account_private_key",
        "bootstrap_token",
        "certificate_key",
    ] {
        assert!(schema.block.find_attribute(name).unwrap().sensitive, "{name}");
    }
    assert!(!schema.block.find_attribute("ca_cert_hash").unwrap().sensitive);
}
