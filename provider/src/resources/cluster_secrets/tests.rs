use super::*;
use crate::framework::{AnyResource, Value};
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
    // Name change: a rename in place, every key and certificate kept (a new identity
    // over a running cluster would invalidate its certificates and tokens).
    let mut proposed = prior.clone();
    *proposed.attr_mut("cluster_name").unwrap() = "other".into();
    let p = AnyResource::plan(&ClusterSecrets, &crate::framework::Context::detached(), &prior, &proposed, &proposed);
    assert!(p.requires_replace.is_empty(), "{:?}", p.requires_replace);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert_eq!(p.planned.attr("id"), Some(&Value::string("other")));
    for a in
        ["kubernetes_ca_cert", "kubernetes_ca_key", "service_account_private_key", "ca_cert_hash", "bootstrap_token"]
    {
        assert_eq!(p.planned.attr(a), prior.attr(a), "{a} kept");
    }
}

#[tokio::test]
async fn a_rename_keeps_the_identity() {
    let prior = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
    let renamed = ClusterSecretsModel { cluster_name: "prod-eu".into(), id: Some("prod-eu".into()), ..prior.clone() };
    let after = ClusterSecrets.update(&ctx(), prior.clone(), renamed).await.ok().unwrap();
    assert_eq!(after.id.as_deref(), Some("prod-eu"));
    assert_eq!(after.cluster_name, "prod-eu");
    assert_eq!(after.kubernetes_ca_cert, prior.kubernetes_ca_cert);
    assert_eq!(after.kubernetes_ca_key, prior.kubernetes_ca_key);
    assert_eq!(after.service_account_private_key, prior.service_account_private_key);
    assert_eq!(after.bootstrap_token, prior.bootstrap_token);
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
    let d = AnyResource::validate(&ClusterSecrets, &config, true);
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

mod import_tests {
    use super::super::import::{self, parse_id, ImportId, Source};
    use super::*;
    use crate::framework::json::{decode, Extra};

    #[test]
    fn import_ids_are_a_local_directory_or_an_ssh_url() {
        assert_eq!(
            parse_id("/backup/pki").unwrap(),
            ImportId { source: Source::Local("/backup/pki".into()), cluster_name: "kubernetes".into() }
        );
        assert_eq!(
            parse_id("ssh://admin@10.0.0.1:2222#prod").unwrap(),
            ImportId {
                source: Source::Ssh { user: Some("admin".into()), host: "10.0.0.1".into(), port: Some(2222) },
                cluster_name: "prod".into()
            }
        );
        assert_eq!(
            parse_id("ssh://cp1.example.org").unwrap().source,
            Source::Ssh { user: None, host: "cp1.example.org".into(), port: None }
        );
        assert_eq!(
            parse_id("ssh://[fd00::1]:22").unwrap().source,
            Source::Ssh { user: None, host: "fd00::1".into(), port: Some(22) }
        );
        for bad in ["", "ssh://", "ssh://host:0", "ssh://host:x", "https://host", "/pki#", "ssh://host/etc/pki"] {
            assert!(parse_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    const FILES: [&str; 8] = [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.crt",
        "etcd/ca.key",
    ];

    fn write_pki(dir: &std::path::Path, m: &ClusterSecretsModel) {
        std::fs::create_dir_all(dir.join("etcd")).unwrap();
        let contents = [
            &m.kubernetes_ca_cert,
            &m.kubernetes_ca_key,
            &m.front_proxy_ca_cert,
            &m.front_proxy_ca_key,
            &m.service_account_private_key,
            &m.service_account_public_key,
            &m.etcd_ca_cert,
            &m.etcd_ca_key,
        ];
        for (f, c) in FILES.iter().zip(contents) {
            std::fs::write(dir.join(f), c.as_deref().unwrap()).unwrap();
        }
    }

    #[tokio::test]
    async fn an_imported_pki_gives_the_state_a_create_made_and_an_empty_plan() {
        let mut p = planned("prod", None);
        p.validity_days = Some(3650);
        let made = ClusterSecrets.create(&ctx(), p).await.ok().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path(), &made);
        let id = format!("{}#prod", dir.path().display());
        let got = Resource::import(&ClusterSecrets, &ctx(), &id).await.ok().unwrap();
        let schema = Resource::schema(&ClusterSecrets).value_type();
        let mut a = crate::framework::model::from_model(&made, &schema).unwrap();
        let mut b = crate::framework::model::from_model(&got, &schema).unwrap();
        for v in [&mut a, &mut b] {
            // Not part of the PKI: fresh on import.
            *v.attr_mut("bootstrap_token").unwrap() = Value::Null;
            *v.attr_mut("certificate_key").unwrap() = Value::Null;
        }
        assert_eq!(a, b);
        // The next plan against `cluster_name = "prod"` changes nothing.
        let state = crate::framework::model::from_model(&got, &schema).unwrap();
        let config = decode(&serde_json::json!({"cluster_name": "prod"}), &schema, Extra::Ignore).unwrap();
        let mut proposed = state.clone();
        *proposed.attr_mut("validity_days").unwrap() = Value::Null;
        *proposed.attr_mut("key_algorithm").unwrap() = Value::Null;
        let plan = AnyResource::plan(&ClusterSecrets, &ctx(), &state, &proposed, &config);
        assert!(!plan.diagnostics.has_errors(), "{}", plan.diagnostics);
        assert_eq!(plan.planned, state);
        assert!(plan.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn a_missing_etcd_ca_key_or_a_mismatched_key_is_refused_saying_which() {
        let made = ClusterSecrets.create(&ctx(), planned("prod", None)).await.ok().unwrap();
        let other = ClusterSecrets.create(&ctx(), planned("other", None)).await.ok().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path(), &made);
        std::fs::remove_file(dir.path().join("etcd/ca.key")).unwrap();
        let e =
            Resource::import(&ClusterSecrets, &ctx(), dir.path().to_str().unwrap()).await.err().unwrap().to_string();
        assert!(e.contains("etcd/ca.key is missing"), "{e}");
        write_pki(dir.path(), &made);
        std::fs::write(dir.path().join("ca.key"), other.kubernetes_ca_key.unwrap()).unwrap();
        let e =
            Resource::import(&ClusterSecrets, &ctx(), dir.path().to_str().unwrap()).await.err().unwrap().to_string();
        assert!(e.contains("ca.key is not the key of ca.crt"), "{e}");
    }

    /// kubeadm writes PKCS#1 RSA keys; openssl makes the same kind here.
    #[test]
    fn a_kubeadm_style_rsa_pki_imports_as_rsa_2048() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("etcd")).unwrap();
        let sh = |script: &str| {
            let out = std::process::Command::new("sh").arg("-c").arg(script).current_dir(d).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        for ca in ["ca", "front-proxy-ca", "etcd/ca"] {
            sh(&format!(
                "openssl genrsa -traditional -out {ca}.key 2048 2>/dev/null && \
                 openssl req -x509 -new -key {ca}.key -subj /CN=kubernetes -days 3650 -out {ca}.crt"
            ));
        }
        sh("openssl genrsa -traditional -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null");
        assert!(std::fs::read_to_string(d.join("ca.key")).unwrap().contains("BEGIN RSA PRIVATE KEY"));
        let files = FILES.iter().map(|f| std::fs::read_to_string(d.join(f)).ok()).collect();
        let m = import::model_from_files("kubernetes", files).unwrap();
        assert_eq!(m.key_algorithm.as_deref(), Some("rsa-2048"));
        assert_eq!(m.validity_days, Some(3650));
        // The imported CA still signs (e.g. the admin kubeconfig of strata_control_plane).
        let leaf = crate::pki::issue_client(
            m.kubernetes_ca_cert.as_deref().unwrap(),
            m.kubernetes_ca_key.as_deref().unwrap(),
            "kubernetes-admin",
            &["kubeadm:cluster-admins"],
            1,
        )
        .unwrap();
        assert!(crate::pki::signed_by(&leaf.cert_pem, m.kubernetes_ca_cert.as_deref().unwrap()).unwrap());
    }
}
