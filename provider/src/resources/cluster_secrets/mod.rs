//! `strata_cluster_secrets`: the identity of a kubeadm HA cluster with external etcd,
//! generated once and kept in state, so a disaster-recovery rebuild gets back the same
//! cluster (same CAs, same join hash, same service-account signing key).

mod import;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{
    ApplyResult, Attribute, Block, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Type, Validator,
};
use crate::pki::{self, KeyAlgorithm};

pub struct ClusterSecrets;

/// Field names equal schema names. No `Debug`: this struct holds private keys.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct ClusterSecretsModel {
    pub id: Option<String>,
    pub cluster_name: String,
    pub validity_days: Option<i64>,
    pub key_algorithm: Option<String>,
    pub kubernetes_ca_cert: Option<String>,
    pub kubernetes_ca_key: Option<String>,
    pub front_proxy_ca_cert: Option<String>,
    pub front_proxy_ca_key: Option<String>,
    pub etcd_ca_cert: Option<String>,
    pub etcd_ca_key: Option<String>,
    pub service_account_public_key: Option<String>,
    pub service_account_private_key: Option<String>,
    pub bootstrap_token: Option<String>,
    pub certificate_key: Option<String>,
    pub ca_cert_hash: Option<String>,
    pub ca_expires_at: Option<String>,
}

const DEFAULT_VALIDITY_DAYS: i64 = 3650;

/// The CA certificates and what derives from them: re-issued when validity changes.
const CA_CERTS: [&str; 4] = ["kubernetes_ca_cert", "front_proxy_ca_cert", "etcd_ca_cert", "ca_expires_at"];

fn cert(name: &str, what: &str) -> Attribute {
    Attribute::computed(name, Type::String).description(format!("{what} (PEM)."))
}

fn secret(name: &str, what: &str) -> Attribute {
    Attribute::computed(name, Type::String).sensitive().description(what.to_string())
}

impl ClusterSecrets {
    fn validity(m: &ClusterSecretsModel) -> i64 {
        m.validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS)
    }

    fn algorithm(m: &ClusterSecretsModel) -> Result<KeyAlgorithm, Diagnostics> {
        let name = m.key_algorithm.as_deref().unwrap_or("ecdsa-p256");
        KeyAlgorithm::parse(name).ok_or_else(|| {
            Diagnostic::error(
                "Unsupported key algorithm",
                format!("key_algorithm must be one of {:?}.", KeyAlgorithm::NAMES),
            )
            .at(crate::framework::AttributePath::root("key_algorithm"))
            .into()
        })
    }

    fn generate(planned: ClusterSecretsModel) -> anyhow::Result<ClusterSecretsModel> {
        let algorithm = Self::algorithm(&planned).map_err(|d| anyhow::anyhow!("{d}"))?;
        let days = Self::validity(&planned);
        // CN values follow kubeadm's own, so tools that inspect the PKI recognise them.
        let kubernetes = pki::new_ca("kubernetes", algorithm, days)?;
        let front_proxy = pki::new_ca("front-proxy-ca", algorithm, days)?;
        let etcd = pki::new_ca("etcd-ca", algorithm, days)?;
        let service_account = algorithm.generate()?;
        Ok(ClusterSecretsModel {
            id: Some(planned.cluster_name.clone()),
            validity_days: Some(days),
            key_algorithm: Some(planned.key_algorithm.clone().unwrap_or_else(|| "ecdsa-p256".into())),
            ca_cert_hash: Some(pki::ca_cert_hash(&kubernetes.cert_pem)?),
            ca_expires_at: Some(pki::not_after(&kubernetes.cert_pem)?),
            kubernetes_ca_cert: Some(kubernetes.cert_pem),
            kubernetes_ca_key: Some(kubernetes.key_pem),
            front_proxy_ca_cert: Some(front_proxy.cert_pem),
            front_proxy_ca_key: Some(front_proxy.key_pem),
            etcd_ca_cert: Some(etcd.cert_pem),
            etcd_ca_key: Some(etcd.key_pem),
            service_account_public_key: Some(service_account.public_key_pem()),
            service_account_private_key: Some(service_account.serialize_pem()),
            bootstrap_token: Some(pki::bootstrap_token()),
            certificate_key: Some(pki::certificate_key()),
            cluster_name: planned.cluster_name,
        })
    }

    /// New CA certificates for the same keys with the new validity.
    fn reissue(prior: ClusterSecretsModel, days: i64) -> anyhow::Result<ClusterSecretsModel> {
        let reissue = |cn: &str, key_pem: &Option<String>| -> anyhow::Result<String> {
            let key_pem = key_pem.as_deref().ok_or_else(|| anyhow::anyhow!("state holds no {cn} key"))?;
            let key = pki::load_key(key_pem).map_err(|_| anyhow::anyhow!("state holds an unreadable {cn} key"))?;
            pki::issue_ca(cn, &key, days)
        };
        let kubernetes = reissue("kubernetes", &prior.kubernetes_ca_key)?;
        let front_proxy = reissue("front-proxy-ca", &prior.front_proxy_ca_key)?;
        let etcd = reissue("etcd-ca", &prior.etcd_ca_key)?;
        Ok(ClusterSecretsModel {
            validity_days: Some(days),
            ca_expires_at: Some(pki::not_after(&kubernetes)?),
            kubernetes_ca_cert: Some(kubernetes),
            front_proxy_ca_cert: Some(front_proxy),
            etcd_ca_cert: Some(etcd),
            ..prior
        })
    }
}

#[async_trait]
impl Resource for ClusterSecrets {
    type Model = ClusterSecretsModel;

    fn name(&self) -> &'static str {
        "cluster_secrets"
    }

    fn schema(&self) -> Schema {
        let block = Block::new(
            "Generates and keeps the identity of a kubeadm high-availability control plane with external etcd: \
             the Kubernetes, front-proxy and etcd CAs, the service-account signing key, a bootstrap token and the \
             certificate key. Kept in Terraform state so a rebuild restores the same cluster identity. \
             Changing `validity_days` re-issues the CA certificates for the same keys (joins keep working).",
        )
        .attribute(Attribute::computed("id", Type::String).description("The cluster name."))
        .attribute(
            // Not `requires_replace`: a new identity over a running cluster's data would
            // invalidate every certificate and token; a rename keeps the keys.
            Attribute::required("cluster_name", Type::String)
                .validate(Validator::Matches("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a DNS label: lower-case letters, digits and '-', at most 63 characters"))
                .description("Name of the cluster (the `id`). Changing it renames the identity in place: the CAs and keys stay, so a control plane that uses them keeps working. A new identity is generated only when asked for, with `terraform apply -replace=strata_cluster_secrets.NAME`."),
        )
        .attribute(
            Attribute::optional("validity_days", Type::Number)
                .default(DEFAULT_VALIDITY_DAYS)
                .validate(Validator::IntBetween(1, 36500))
                .description("Validity of the CA certificates in days (default 3650)."),
        )
        .attribute(
            Attribute::optional("key_algorithm", Type::String)
                .default("ecdsa-p256")
                .requires_replace()
                .validate(Validator::OneOf(KeyAlgorithm::NAMES.to_vec()))
                .description("Key algorithm of every key: `ecdsa-p256` (default) or `rsa-2048`. Changing it generates a new identity."),
        )
        .attribute(cert("kubernetes_ca_cert", "Kubernetes cluster CA certificate (`/etc/kubernetes/pki/ca.crt`)"))
        .attribute(secret("kubernetes_ca_key", "Kubernetes cluster CA private key, PKCS#8 PEM (`ca.key`)."))
        .attribute(cert("front_proxy_ca_cert", "Front-proxy CA certificate (`front-proxy-ca.crt`)"))
        .attribute(secret("front_proxy_ca_key", "Front-proxy CA private key, PKCS#8 PEM."))
        .attribute(cert("etcd_ca_cert", "etcd CA certificate (`etcd/ca.crt`)"))
        .attribute(secret("etcd_ca_key", "etcd CA private key, PKCS#8 PEM."))
        .attribute(
            Attribute::computed("service_account_public_key", Type::String)
                .description("Service-account token verification key (`sa.pub`, PEM)."),
        )
        .attribute(secret("service_account_private_key", "Service-account token signing key (`sa.key`, PKCS#8 PEM)."))
        .attribute(secret("bootstrap_token", "kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`."))
        .attribute(secret("certificate_key", "kubeadm `--certificate-key`: 64 hex characters."))
        .attribute(
            Attribute::computed("ca_cert_hash", Type::String)
                .description("`sha256:<hex>` of the cluster CA's public key, for `kubeadm join --discovery-token-ca-cert-hash`."),
        )
        .attribute(Attribute::computed("ca_expires_at", Type::String).description("When the CA certificates expire (RFC 3339)."));
        Schema::new(0, block)
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        // The id is the cluster name: known at plan time, not "known after apply".
        if let Some(name) = plan.planned.attr("cluster_name").cloned() {
            let renamed = plan.is_create() || plan.prior.attr("cluster_name") != Some(&name);
            if let (true, Some(id)) = (renamed, plan.planned.attr_mut("id")) {
                *id = name;
            }
        }
        if !plan.is_create() && plan.changed("validity_days") {
            for attr in CA_CERTS {
                plan.set_unknown(attr);
            }
        }
    }

    async fn create(&self, _ctx: &Context, planned: ClusterSecretsModel) -> ApplyResult<ClusterSecretsModel> {
        // Key generation (RSA especially) is CPU work: keep it off the async workers.
        let model = tokio::task::spawn_blocking(move || Self::generate(planned))
            .await
            .map_err(|e| anyhow::anyhow!("key generation task failed: {e}"))??;
        Ok(model)
    }

    async fn read(
        &self,
        _ctx: &Context,
        state: ClusterSecretsModel,
    ) -> Result<Option<ClusterSecretsModel>, Diagnostics> {
        // Nothing exists outside the state: it is the source of truth.
        Ok(Some(state))
    }

    async fn update(
        &self,
        _ctx: &Context,
        prior: ClusterSecretsModel,
        planned: ClusterSecretsModel,
    ) -> ApplyResult<ClusterSecretsModel> {
        let days = Self::validity(&planned);
        // A rename keeps every key and certificate.
        let prior = ClusterSecretsModel {
            id: Some(planned.cluster_name.clone()),
            cluster_name: planned.cluster_name.clone(),
            ..prior
        };
        if Self::validity(&prior) == days {
            return Ok(prior);
        }
        let model = tokio::task::spawn_blocking(move || Self::reissue(prior, days))
            .await
            .map_err(|e| anyhow::anyhow!("certificate task failed: {e}"))??;
        Ok(model)
    }

    async fn delete(&self, _ctx: &Context, _state: ClusterSecretsModel) -> Result<(), Diagnostics> {
        Ok(())
    }

    fn import_id(&self) -> Option<&'static str> {
        Some(import::ID_FORMAT)
    }

    async fn import(&self, ctx: &Context, id: &str) -> Result<ClusterSecretsModel, Diagnostics> {
        import::import(ctx, id)
            .await
            .map_err(|e| Diagnostic::error("Cannot import the cluster secrets", format!("{e:#}")).into())
    }
}

#[cfg(test)]
mod tests;
