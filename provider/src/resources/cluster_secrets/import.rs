//! Import from an existing kubeadm PKI directory, so a cluster that was not built with
//! Strata (or whose state was lost) is rebuilt with its own identity. The ID is a
//! directory on the Terraform host, or `ssh://[user@]host[:port]` for
//! /etc/kubernetes/pki on a control-plane node (with the provider's `ssh` settings);
//! `#NAME` at the end sets `cluster_name` (default `kubernetes`, kubeadm's own default).

use anyhow::{anyhow, bail, Context as _};

use super::ClusterSecretsModel;
use crate::framework::Context;
use crate::node::Node;
use crate::pki::{self, KeyAlgorithm};
use crate::resources::connection::ConnectionModel;

pub const ID_FORMAT: &str = "a kubeadm PKI directory on the Terraform host (e.g. `/backup/pki`), or \
    `ssh://[user@]host[:port]` to read `/etc/kubernetes/pki` on a control-plane node with the provider's `ssh` \
    settings; append `#CLUSTER_NAME` when `cluster_name` is not `kubernetes`. The directory must hold `ca.crt`, \
    `ca.key`, `front-proxy-ca.crt`, `front-proxy-ca.key`, `sa.key`, `sa.pub`, `etcd/ca.crt` and `etcd/ca.key` \
    (with external etcd the etcd CA key is not on kubeadm's nodes unless `strata_control_plane` placed it \
    there from `etcd.ca_key`: copy it into `etcd/` of a local directory first)";

pub const DEFAULT_PKI_DIR: &str = "/etc/kubernetes/pki";

#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Local(String),
    Ssh { user: Option<String>, host: String, port: Option<u16> },
}

#[derive(Debug, PartialEq, Eq)]
pub struct ImportId {
    pub source: Source,
    pub cluster_name: String,
}

pub fn parse_id(id: &str) -> Result<ImportId, String> {
    let (location, name) = match id.rsplit_once('#') {
        Some((l, n)) => (l, n.to_string()),
        None => (id, "kubernetes".to_string()),
    };
    let bad = |why: &str| format!("{id:?}: {why}. Expected {ID_FORMAT}.");
    if name.is_empty() {
        return Err(bad("empty cluster name after '#'"));
    }
    let source = match location.strip_prefix("ssh://") {
        Some(rest) => {
            let rest = rest.trim_end_matches('/');
            let (user, hostport) = match rest.split_once('@') {
                Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
                None => (None, rest),
            };
            let (host, port) = match hostport.strip_prefix('[') {
                Some(v6) => {
                    let (h, p) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
                    (h.to_string(), p.strip_prefix(':'))
                }
                None => match hostport.split_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p)),
                    None => (hostport.to_string(), None),
                },
            };
            if host.is_empty() || host.contains('/') {
                return Err(bad("no host (or a path, which ssh:// IDs do not take)"));
            }
            let port = match port {
                Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"))?),
                None => None,
            };
            Source::Ssh { user, host, port }
        }
        None if location.contains("://") => return Err(bad("only ssh:// URLs are supported")),
        None if location.is_empty() => return Err(bad("empty")),
        None => Source::Local(location.to_string()),
    };
    Ok(ImportId { source, cluster_name: name })
}

/// The files an import reads, relative to the PKI directory: (file, required).
const FILES: [&str; 8] =
    ["ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key"];

/// Reads the PKI files of `source`: (file, content) in FILES order, `None` when missing.
async fn read_files(ctx: &Context, source: &Source) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    match source {
        Source::Local(dir) => {
            let dir = crate::node::expand(dir);
            if !std::path::Path::new(&dir).is_dir() {
                bail!("{dir} is not a directory");
            }
            for f in FILES {
                let p = format!("{}/{f}", dir.trim_end_matches('/'));
                match std::fs::read_to_string(&p) {
                    Ok(t) => out.push(Some(t)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(None),
                    Err(e) => return Err(anyhow!(e).context(format!("reading {p}"))),
                }
            }
        }
        Source::Ssh { user, host, port } => {
            let mut conn = ConnectionModel { host: host.clone(), port: port.map(i64::from), ..Default::default() };
            conn.settings.user = user.clone();
            let node = Node::connect(ctx, &conn).await.map_err(|d| anyhow!("{d}"))?;
            for f in FILES {
                let bytes = node.read_file(&format!("{DEFAULT_PKI_DIR}/{f}")).await?;
                out.push(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()));
            }
        }
    }
    Ok(out)
}

fn algorithm_of(key_pem: &str, what: &str) -> anyhow::Result<KeyAlgorithm> {
    let key = pki::load_key(key_pem).with_context(|| what.to_string())?;
    if key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Ok(KeyAlgorithm::EcdsaP256)
    } else if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
        Ok(KeyAlgorithm::Rsa2048)
    } else {
        bail!("{what}: a key of a kind strata_cluster_secrets does not support (ecdsa-p256 or rsa-2048)")
    }
}

/// The state a create would have made, from the files (FILES order).
pub fn model_from_files(cluster_name: &str, files: Vec<Option<String>>) -> anyhow::Result<ClusterSecretsModel> {
    let mut it = FILES.iter().zip(files);
    let mut take = || -> anyhow::Result<String> {
        let (name, content) = it.next().expect("one entry per file");
        content.ok_or_else(|| {
            if *name == "etcd/ca.key" {
                anyhow!(
                    "etcd/ca.key is missing: with external etcd kubeadm keeps only the etcd CA certificate. Copy \
                     the PKI directory to the Terraform host, put the etcd CA's ca.crt and ca.key (from where the \
                     etcd cluster was set up) into its etcd/ directory, and import from that directory"
                )
            } else {
                anyhow!("{name} is missing from the PKI directory")
            }
        })
    };
    let (ca_cert, ca_key, fp_cert, fp_key, sa_key, sa_pub, etcd_cert, etcd_key) =
        (take()?, take()?, take()?, take()?, take()?, take()?, take()?, take()?);
    // The keys must be the certificates' keys: a mismatched pair would be a broken identity.
    for (cert, key, name) in
        [(&ca_cert, &ca_key, "ca"), (&fp_cert, &fp_key, "front-proxy-ca"), (&etcd_cert, &etcd_key, "etcd/ca")]
    {
        let k = pki::load_key(key).with_context(|| format!("{name}.key"))?;
        if !pki::key_matches_cert(&k, cert)? {
            bail!("{name}.key is not the key of {name}.crt");
        }
    }
    let algorithm = algorithm_of(&ca_key, "ca.key")?;
    let name = KeyAlgorithm::NAMES[match algorithm {
        KeyAlgorithm::EcdsaP256 => 0,
        KeyAlgorithm::Rsa2048 => 1,
    }];
    Ok(ClusterSecretsModel {
        id: Some(cluster_name.to_string()),
        cluster_name: cluster_name.to_string(),
        validity_days: Some(pki::validity_days(&ca_cert)?),
        key_algorithm: Some(name.to_string()),
        ca_cert_hash: Some(pki::ca_cert_hash(&ca_cert)?),
        ca_expires_at: Some(pki::not_after(&ca_cert)?),
        kubernetes_ca_cert: Some(ca_cert),
        kubernetes_ca_key: Some(ca_key),
        front_proxy_ca_cert: Some(fp_cert),
        front_proxy_ca_key: Some(fp_key),
        etcd_ca_cert: Some(etcd_cert),
        etcd_ca_key: Some(etcd_key),
        service_account_public_key: Some(sa_pub),
        service_account_private_key: Some(sa_key),
        // Not recoverable from the PKI, and not part of the identity: new ones.
        bootstrap_token: Some(pki::bootstrap_token()),
        certificate_key: Some(pki::certificate_key()),
    })
}

pub async fn import(ctx: &Context, id: &str) -> anyhow::Result<ClusterSecretsModel> {
    let parsed = parse_id(id).map_err(|e| anyhow!(e))?;
    let files = read_files(ctx, &parsed.source).await?;
    model_from_files(&parsed.cluster_name, files)
}
