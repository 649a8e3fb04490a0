//! strata_cluster_secrets through the real Terraform CLI.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster-secrets/main.tf");
    std::fs::read_to_string(path).expect("examples/cluster-secrets/main.tf")
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} missing in state"))
}

/// Signs a fresh leaf certificate with the CA's key and verifies the chain, the way
/// kubeadm issues the API server's and etcd's certificates from these CAs.
fn chain_leaf_to_ca(dir: &Path, name: &str, cert: &str, key: &str) {
    std::fs::write(dir.join(format!("{name}.crt")), cert).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
    // The CA is self-signed and valid on its own...
    let out = openssl(dir, &["verify", "-CAfile", &format!("{name}.crt"), &format!("{name}.crt")]);
    assert!(out.contains(": OK"), "{out}");
    // ...and its key issues certificates that chain to it.
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}-leaf"),
            "-keyout",
            &format!("{name}-leaf.key"),
            "-out",
            &format!("{name}-leaf.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}-leaf.csr"),
            "-CA",
            &format!("{name}.crt"),
            "-CAkey",
            &format!("{name}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &format!("{name}-leaf.crt"),
        ],
    );
    let out = openssl(dir, &["verify", "-CAfile", &format!("{name}.crt"), &format!("{name}-leaf.crt")]);
    assert!(out.contains(&format!("{name}-leaf.crt: OK")), "{out}");
    let text = openssl(dir, &["x509", "-in", &format!("{name}.crt"), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{name} is a CA");
}

#[test]
fn cluster_secrets_lifecycle_with_real_terraform() {
    let mut wd = Workdir::new(&provider_dir(), &example()).unwrap();
    wd.set_env("TF_LOG", "trace");
    let mut logs = String::new();

    let apply = wd.apply().unwrap();
    logs.push_str(&apply.stdout);
    logs.push_str(&apply.stderr);
    let v = wd.resource_values("strata_cluster_secrets.this").unwrap();

    let pki = wd.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    chain_leaf_to_ca(&pki, "ca", s(&v, "kubernetes_ca_cert"), s(&v, "kubernetes_ca_key"));
    chain_leaf_to_ca(&pki, "front-proxy-ca", s(&v, "front_proxy_ca_cert"), s(&v, "front_proxy_ca_key"));
    chain_leaf_to_ca(&pki, "etcd-ca", s(&v, "etcd_ca_cert"), s(&v, "etcd_ca_key"));

    // The service-account public key belongs to the private key.
    std::fs::write(pki.join("sa.key"), s(&v, "service_account_private_key")).unwrap();
    let derived = openssl(&pki, &["pkey", "-in", "sa.key", "-pubout"]);
    assert_eq!(derived.trim(), s(&v, "service_account_public_key").trim());

    // The join hash is what kubeadm's documentation computes from ca.crt.
    let spki = Command::new("sh")
        .current_dir(&pki)
        .args(["-c", "openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1"])
        .output()
        .unwrap();
    assert_eq!(s(&v, "ca_cert_hash"), format!("sha256:{}", String::from_utf8_lossy(&spki.stdout).trim()));

    let token = s(&v, "bootstrap_token").to_string();
    assert!(regex::Regex::new("^[a-z0-9]{6}\\.[a-z0-9]{16}$").unwrap().is_match(&token), "token format");
    let cert_key = s(&v, "certificate_key").to_string();
    assert!(regex::Regex::new("^[0-9a-f]{64}$").unwrap().is_match(&cert_key));

    // Nothing to do on a second plan.
    let plan = wd.plan_exit_code().unwrap();
    logs.push_str(&plan.stdout);
    logs.push_str(&plan.stderr);
    assert_eq!(plan.code, 0, "second plan must be empty:\n{}", plan.stdout);

    // A validity change is an in-place update that keeps keys, token and join hash.
    let plan = wd.run(&["plan", "-detailed-exitcode", "-var", "validity_days=400"]).unwrap();
    logs.push_str(&plan.stdout);
    logs.push_str(&plan.stderr);
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    let apply = wd.run(&["apply", "-auto-approve", "-var", "validity_days=400"]).unwrap().ok().unwrap();
    logs.push_str(&apply.stdout);
    logs.push_str(&apply.stderr);
    let v2 = wd.resource_values("strata_cluster_secrets.this").unwrap();
    assert_eq!(v2["ca_cert_hash"], v["ca_cert_hash"]);
    assert_eq!(v2["kubernetes_ca_key"], v["kubernetes_ca_key"]);
    assert_eq!(v2["bootstrap_token"], v["bootstrap_token"]);
    assert_ne!(v2["kubernetes_ca_cert"], v["kubernetes_ca_cert"]);
    assert_eq!(v2["validity_days"], 400);

    // A new name is a rename in place (a new identity over a running cluster would
    // invalidate its certificates and tokens); a new identity only when asked for.
    let plan = wd.run(&["plan", "-var", "validity_days=400", "-var", "cluster_name=staging"]).unwrap().ok().unwrap();
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add, 1 to change, 0 to destroy"), "{}", plan.stdout);
    let plan =
        wd.run(&["plan", "-var", "validity_days=400", "-replace=strata_cluster_secrets.this"]).unwrap().ok().unwrap();
    assert!(plan.stdout.contains("1 to add, 0 to change, 1 to destroy"), "{}", plan.stdout);

    let destroy = wd.run(&["destroy", "-auto-approve", "-var", "validity_days=400"]).unwrap().ok().unwrap();
    logs.push_str(&destroy.stdout);
    logs.push_str(&destroy.stderr);
    let state = wd.show().unwrap();
    assert!(state["values"]["root_module"]["resources"].as_array().is_none_or(|r| r.is_empty()));

    // The trace log really holds the provider's own lines...
    assert!(logs.contains("ApplyResourceChange"), "provider log lines missing from TF_LOG=trace output");
    assert!(logs.contains("terraform-provider-strata"), "provider log lines missing");
    // ...and no secret, whole or in part.
    for (name, secret) in [
        ("kubernetes_ca_key", s(&v, "kubernetes_ca_key")),
        ("front_proxy_ca_key", s(&v, "front_proxy_ca_key")),
        ("etcd_ca_key", s(&v, "etcd_ca_key")),
        ("service_account_private_key", s(&v, "service_account_private_key")),
    ] {
        let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body.len() > 40);
        assert!(!logs.contains(&body[..40]), "{name} leaked into the logs");
    }
    let token_secret = token.split('.').nth(1).unwrap();
    assert!(!logs.contains(token_secret), "bootstrap token leaked into the logs");
    assert!(!logs.contains(&cert_key), "certificate key leaked into the logs");
}

#[test]
fn invalid_values_are_refused_at_plan_time_naming_the_attribute() {
    let wd = Workdir::new(&provider_dir(), &example()).unwrap();
    for (var, attr) in [("validity_days=0", "validity_days"), ("cluster_name=Not_A_Label", "cluster_name")] {
        let plan = wd.run(&["plan", "-var", var]).unwrap();
        assert_eq!(plan.code, 1, "{var}: {}", plan.stdout);
        assert!(plan.stderr.contains(&format!("Invalid value for {attr}")), "{var}: {}", plan.stderr);
    }
    wd.write(
        "main.tf",
        "resource \"strata_cluster_secrets\" \"x\" {\n  cluster_name  = \"a\"\n  key_algorithm = \"dsa-1024\"\n}\n\
         terraform {\n  required_providers {\n    strata = { source = \"strata-iac/strata\" }\n  }\n}\n",
    )
    .unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1);
    assert!(plan.stderr.contains("Invalid value for key_algorithm"), "{}", plan.stderr);
    assert!(plan.stderr.contains("ecdsa-p256"), "lists the allowed values: {}", plan.stderr);
    // Nothing was created.
    assert!(!wd.path().join("terraform.tfstate").exists());
}

/// Import reads a kubeadm PKI directory (see the control-plane tests for a real one); an
/// ID that is no such directory is refused naming it, and nothing is written to state.
#[test]
fn import_of_something_that_is_not_a_pki_directory_is_refused_with_a_clear_message() {
    let wd = Workdir::new(&provider_dir(), &example()).unwrap();
    let run = wd.run(&["import", "strata_cluster_secrets.this", "/nonexistent/pki#prod"]).unwrap();
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("/nonexistent/pki"), "names the directory: {}", run.stderr);
    assert!(run.stderr.contains("is not a directory"), "says what is wrong: {}", run.stderr);
    assert!(!wd.path().join("terraform.tfstate").exists(), "nothing imported");
}
