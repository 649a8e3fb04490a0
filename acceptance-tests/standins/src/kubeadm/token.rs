//! Bootstrap tokens: the Secrets `kubeadm init` and `kubeadm token create` store
//! (kube-system/bootstrap-token-<id>, type bootstrap.kubernetes.io/token).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use super::config::DEFAULT_BOOTSTRAP_GROUP;
use super::types::BootstrapToken;
use super::validation::{self, token_re};
use crate::apiclient::ApiClient;
use crate::duration::{format_go_duration, parse_go_duration};
use crate::kubeconfig::Kubeconfig;

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create bootstrap tokens on the server
    Create {
        token: Option<String>,
        #[arg(long, default_value = "24h0m0s")]
        ttl: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_delimiter = ',', default_value = "signing,authentication")]
        usages: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = DEFAULT_BOOTSTRAP_GROUP)]
        groups: Vec<String>,
        #[arg(long = "print-join-command")]
        print_join_command: bool,
    },
    /// List bootstrap tokens on the server
    List,
    /// Delete bootstrap tokens on the server
    Delete { tokens: Vec<String> },
    /// Generate and print a bootstrap token, but do not create it on the server
    Generate,
}

/// A random token `[a-z0-9]{6}.[a-z0-9]{16}` from the system's CSPRNG.
pub fn generate() -> String {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut b = [0u8; 22];
    ring::rand::SystemRandom::new().fill(&mut b).expect("system randomness");
    let s: String = b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    format!("{}.{}", &s[..6], &s[6..])
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The Secret for a token, as kubeadm's bootstraptoken/v1 encodes it.
pub fn secret_for(t: &BootstrapToken) -> Result<Value> {
    let caps = token_re()
        .captures(&t.token)
        .with_context(|| format!("the bootstrap token was not of the form {:?}", validation::TOKEN_PATTERN))?;
    let (id, secret) = (&caps[1], &caps[2]);
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), json!(id));
    data.insert("token-secret".into(), json!(secret));
    if !t.description.is_empty() {
        data.insert("description".into(), json!(t.description));
    }
    let expiration = match (&t.expires, &t.ttl) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(ttl)) => {
            let d = parse_go_duration(ttl)?;
            (d > Duration::ZERO).then(|| rfc3339(time::OffsetDateTime::now_utc() + d))
        }
        _ => None,
    };
    if let Some(e) = expiration {
        data.insert("expiration".into(), json!(e));
    }
    for u in &t.usages {
        data.insert(format!("usage-bootstrap-{u}"), json!("true"));
    }
    if !t.groups.is_empty() {
        data.insert("auth-extra-groups".into(), json!(t.groups.join(",")));
    }
    Ok(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "stringData": data,
    }))
}

pub async fn create_secret(api: &ApiClient, t: &BootstrapToken) -> Result<()> {
    let s = secret_for(t)?;
    let name = s["metadata"]["name"].as_str().unwrap_or_default().to_string();
    println!("[bootstrap-token] Configured bootstrap token {name}");
    api.create_or_update("/api/v1/namespaces/kube-system/secrets", &name, &s).await
}

fn field(secret: &Value, key: &str) -> String {
    secret["data"][key]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub async fn run(kubeconfig: &str, cmd: TokenCmd) -> Result<()> {
    if let TokenCmd::Generate = cmd {
        println!("{}", generate());
        return Ok(());
    }
    let k = Kubeconfig::load(kubeconfig)?;
    let api = ApiClient::from_kubeconfig(&k)?;
    match cmd {
        TokenCmd::Create { token, ttl, description, usages, groups, print_join_command } => {
            let t = BootstrapToken {
                token: token.unwrap_or_else(generate),
                description,
                ttl: Some(ttl),
                expires: None,
                usages,
                groups,
            };
            let errs = validation::validate_bootstrap_tokens(std::slice::from_ref(&t));
            if !errs.is_empty() {
                bail!("{}", validation::aggregate(&errs));
            }
            let s = secret_for(&t)?;
            let r = api.post("/api/v1/namespaces/kube-system/secrets", &s).await?;
            if !r.status.is_success() {
                bail!(
                    "failed to create or update bootstrap token with name {}: {}",
                    s["metadata"]["name"],
                    r.message()
                );
            }
            if print_join_command {
                let hash = crate::pki::ca_cert_hash(&k.ca_pem()?)?;
                println!(
                    "kubeadm join {} --token {} --discovery-token-ca-cert-hash {hash} ",
                    k.server()?.trim_start_matches("https://"),
                    t.token
                );
            } else {
                println!("{}", t.token);
            }
        }
        TokenCmd::List => {
            let r = api.get("/api/v1/namespaces/kube-system/secrets").await?;
            if !r.status.is_success() {
                bail!("failed to list bootstrap tokens: {}", r.message());
            }
            println!("TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS");
            for s in r.body["items"].as_array().into_iter().flatten() {
                if s["type"] != "bootstrap.kubernetes.io/token" {
                    continue;
                }
                let exp = field(s, "expiration");
                let ttl = time::OffsetDateTime::parse(&exp, &time::format_description::well_known::Rfc3339)
                    .map(|t| {
                        let left = t - time::OffsetDateTime::now_utc();
                        if left.is_negative() {
                            "<invalid>".into()
                        } else {
                            format_go_duration(Duration::from_secs(left.whole_seconds() as u64))
                        }
                    })
                    .unwrap_or_else(|_| "<forever>".into());
                let usages: Vec<&str> = ["authentication", "signing"]
                    .into_iter()
                    .filter(|u| field(s, &format!("usage-bootstrap-{u}")) == "true")
                    .collect();
                // Like kubeadm, the list shows the whole token: it is for the cluster admin.
                println!(
                    "{}.{}   {ttl:<11} {exp:<22} {:<24} {:<13} {}",
                    field(s, "token-id"),
                    field(s, "token-secret"),
                    usages.join(","),
                    field(s, "description"),
                    field(s, "auth-extra-groups")
                );
            }
        }
        TokenCmd::Delete { tokens } => {
            for t in tokens {
                let id = t.split('.').next().unwrap_or_default();
                let r = api.delete(&format!("/api/v1/namespaces/kube-system/secrets/bootstrap-token-{id}")).await?;
                if !r.status.is_success() {
                    bail!("failed to delete bootstrap token {id:?}: {}", r.message());
                }
                println!("bootstrap token {id:?} deleted");
            }
        }
        TokenCmd::Generate => unreachable!(),
    }
    Ok(())
}
