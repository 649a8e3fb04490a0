//! `strata_image_registry`: a local OCI registry on a node (Debian's `docker-registry`)
//! loaded from image bundles on the Terraform host, for air-gapped sites.

pub(crate) mod bundle;
mod schema;
mod server;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Value,
};
use crate::node::Node;
use crate::pki;
use crate::resources::connection::{self, ConnectionModel};

pub use bundle::Reference;

pub struct ImageRegistry;

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ImageBundleModel {
    pub archive: String,
    pub sha256: String,
    pub images: Option<Vec<String>>,
}

/// No `Debug`: holds private keys.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ImageRegistryModel {
    pub id: Option<String>,
    pub ssh: ConnectionModel,
    pub address: String,
    pub port: Option<i64>,
    pub storage_path: Option<String>,
    pub ca_cert: Option<String>,
    pub ca_key: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub delete_data_on_destroy: Option<bool>,
    pub url: Option<String>,
    pub mirrors: Option<BTreeMap<String, String>>,
    pub repositories: Option<BTreeMap<String, String>>,
    pub images: Option<BTreeMap<String, String>>,
    pub catalog: Option<Vec<String>>,
    pub running: Option<bool>,
    pub image_bundle: Option<Vec<ImageBundleModel>>,
}

const CA_DAYS: i64 = 3650;
const TLS_DAYS: i64 = 825;

impl ImageRegistryModel {
    pub fn port(&self) -> i64 {
        self.port.unwrap_or(schema::DEFAULT_PORT)
    }

    pub fn storage(&self) -> &str {
        self.storage_path.as_deref().unwrap_or(schema::DEFAULT_STORAGE)
    }

    fn host_port(&self) -> String {
        format!("{}:{}", server::url_host(&self.address), self.port())
    }
}

/// What the plan learns from the bundles on the Terraform host: each bundle's images, and
/// the images' digests where the archive says (OCI).
struct Bundles {
    per_bundle: Vec<Vec<String>>,
    digests: BTreeMap<String, Option<String>>,
    registries: Vec<String>,
}

/// Reads every bundle whose path and checksum are known; errors name the attribute.
fn read_bundles(bundles: &[Value], diags: &mut Diagnostics) -> Option<Bundles> {
    let mut out = Bundles { per_bundle: Vec::new(), digests: BTreeMap::new(), registries: Vec::new() };
    let mut complete = true;
    for (i, b) in bundles.iter().enumerate() {
        let at = AttributePath::root("image_bundle").index(i);
        let (Some(path), Some(want)) =
            (b.attr("archive").and_then(Value::as_str), b.attr("sha256").and_then(Value::as_str))
        else {
            complete = false;
            out.per_bundle.push(Vec::new());
            continue;
        };
        let got = match bundle::sha256_file(Path::new(path)) {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::error("Image bundle not readable", format!("{e:#}")).at(at.attr("archive")));
                return None;
            }
        };
        if got != want {
            diags.push(
                Diagnostic::error(
                    "Image bundle checksum mismatch",
                    format!("{path} has SHA-256 {got}, not the configured {want}: the archive is not the pinned one."),
                )
                .at(at.attr("sha256")),
            );
            return None;
        }
        let archive = match bundle::read(Path::new(path)) {
            Ok(a) => a,
            Err(e) => {
                diags.push(Diagnostic::error("Invalid image bundle", format!("{path}: {e:#}")).at(at.attr("archive")));
                return None;
            }
        };
        let mut names = Vec::new();
        for image in &archive.images {
            let full = image.reference.full();
            if out.digests.contains_key(&full) {
                diags.push(
                    Diagnostic::error("Duplicate image", format!("{full} is in more than one bundle ({path})."))
                        .at(at.attr("archive")),
                );
                return None;
            }
            if !out.registries.contains(&image.reference.registry) {
                out.registries.push(image.reference.registry.clone());
            }
            out.digests.insert(full.clone(), image.digest.clone());
            names.push(full);
        }
        out.per_bundle.push(names);
    }
    complete.then_some(out)
}

fn string_map(m: BTreeMap<String, String>) -> Value {
    Value::Map(m.into_iter().map(|(k, v)| (k, Value::string(v))).collect())
}

impl ImageRegistry {
    async fn node(ctx: &Context, m: &ImageRegistryModel) -> Result<Node, Diagnostics> {
        Node::connect(ctx, &m.ssh).await
    }

    /// Fills what follows from the configuration alone.
    fn finish(mut m: ImageRegistryModel) -> ImageRegistryModel {
        if m.id.is_none() {
            m.id = Some(format!("{}:{}", m.ssh.host, m.port()));
        }
        let hp = m.host_port();
        m.url = Some(format!("https://{hp}"));
        let mut registries: Vec<String> = Vec::new();
        for b in m.image_bundle.iter().flatten() {
            for name in b.images.iter().flatten() {
                if let Ok(r) = Reference::parse(name) {
                    if !registries.contains(&r.registry) {
                        registries.push(r.registry);
                    }
                }
            }
        }
        m.mirrors = Some(registries.iter().map(|r| (r.clone(), format!("https://{hp}/v2/{r}"))).collect());
        m.repositories = Some(registries.iter().map(|r| (r.clone(), format!("{hp}/{r}"))).collect());
        m
    }

    /// Issues what is missing: the CA (when none is given) and the registry's certificate
    /// (when there is none, or it is not for this address from this CA).
    fn credentials(m: &mut ImageRegistryModel) -> anyhow::Result<()> {
        if m.ca_cert.is_none() {
            let ca = pki::new_ca("strata image registry CA", pki::KeyAlgorithm::EcdsaP256, CA_DAYS)?;
            m.ca_cert = Some(ca.cert_pem);
            m.ca_key = Some(ca.key_pem);
        }
        let (ca_cert, ca_key) = (m.ca_cert.clone().unwrap_or_default(), m.ca_key.clone().unwrap_or_default());
        let valid = m.tls_cert.as_deref().is_some_and(|c| Self::cert_fits(c, &ca_cert, &m.address));
        if !valid || m.tls_key.is_none() {
            let sans = vec![m.address.clone(), "localhost".to_string(), "127.0.0.1".to_string()];
            let leaf = pki::issue_leaf(&ca_cert, &ca_key, &m.address, &sans, pki::Usage::Server, TLS_DAYS)
                .map_err(|e| anyhow!("issuing the registry's certificate from ca_cert/ca_key: {e:#}"))?;
            m.tls_cert = Some(leaf.cert_pem);
            m.tls_key = Some(leaf.key_pem);
        }
        Ok(())
    }

    fn cert_fits(cert: &str, ca: &str, address: &str) -> bool {
        pki::signed_by(cert, ca).unwrap_or(false)
            && pki::subject_alt_names(cert).is_ok_and(|s| s.iter().any(|n| n == address))
            && pki::seconds_left(cert).is_ok_and(|s| s > 30 * 86400)
    }

    /// Installs the registry and pushes every image it does not serve with the
    /// archive's digest (or, for a docker-archive, the digest of the last push).
    async fn converge(
        ctx: &Context,
        planned: ImageRegistryModel,
        prior: Option<&ImageRegistryModel>,
    ) -> ApplyResult<ImageRegistryModel> {
        let mut m = planned;
        Self::credentials(&mut m)?;
        let node = Self::node(ctx, &m).await?;
        server::install(&node, &m).await?;
        let mut images = BTreeMap::new();
        let mut bundles = m.image_bundle.clone().unwrap_or_default();
        for b in bundles.iter_mut() {
            let path = Path::new(&b.archive);
            let archive = bundle::read(path).map_err(|e| anyhow!("{}: {e:#}", b.archive))?;
            let wanted: Vec<(String, String)> =
                archive.images.iter().map(|i| (i.reference.mirror_path(), i.reference.tag.clone())).collect();
            let serving = server::digests(&node, &m, &wanted).await?;
            let mut missing = Vec::new();
            for (i, image) in archive.images.iter().enumerate() {
                let full = image.reference.full();
                let have = serving.get(&wanted[i]);
                // A docker-archive's digest is what skopeo made of it: the one recorded
                // at the last push, if the archive is still the same.
                let expected = image.digest.clone().or_else(|| {
                    prior
                        .filter(|p| p.image_bundle.iter().flatten().any(|pb| pb.sha256 == b.sha256))
                        .and_then(|p| p.images.as_ref()?.get(&full).cloned())
                });
                match (have, expected) {
                    (Some(h), Some(e)) if *h == e => {
                        images.insert(full, e);
                    }
                    _ => missing.push(i),
                }
            }
            if !missing.is_empty() {
                let content = std::fs::read(path).map_err(|e| anyhow!("reading {}: {e}", b.archive))?;
                let sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
                if sum != b.sha256 {
                    Err(anyhow!("{} changed since the plan: SHA-256 {sum}, not {}", b.archive, b.sha256))?;
                }
                tracing::info!(archive = %b.archive, bytes = content.len(), images = missing.len(), "uploading an image bundle");
                for (i, digest) in server::push(&node, &m, &content, &b.sha256, &archive, &missing).await? {
                    images.insert(archive.images[i].reference.full(), digest);
                }
            }
            b.images = Some(archive.images.iter().map(|i| i.reference.full()).collect());
        }
        m.image_bundle = if m.image_bundle.is_some() { Some(bundles) } else { None };
        m.images = Some(images);
        m.catalog = Some(server::catalog(&node, &m).await?);
        m.running = Some(true);
        Ok(Self::finish(m))
    }
}

#[async_trait]
impl Resource for ImageRegistry {
    type Model = ImageRegistryModel;

    fn name(&self) -> &'static str {
        "image_registry"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config.attr("ssh"), &AttributePath::root("ssh"), diags);
        let set = |n: &str| config.attr(n).is_some_and(|v| !v.is_null());
        if set("ca_cert") != set("ca_key") {
            let missing = if set("ca_cert") { "ca_key" } else { "ca_cert" };
            diags.push(
                Diagnostic::error(
                    "ca_cert and ca_key go together",
                    "Give both the CA certificate and its key (the registry's certificate is issued from them), or neither (Strata issues a CA).",
                )
                .at(AttributePath::root(missing)),
            );
        }
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        if plan.planned.is_null() {
            return;
        }
        if !plan.is_create() && plan.changed("storage_path") {
            let (old, new) = (
                plan.prior.attr("storage_path").and_then(Value::as_str).unwrap_or_default().to_string(),
                plan.planned.attr("storage_path").and_then(Value::as_str).unwrap_or("(unknown)").to_string(),
            );
            plan.diagnostics.push(
                Diagnostic::error(
                    "storage_path of a running registry cannot change",
                    format!(
                        "The registry stores its images in {old}; moving them to {new} is not something an apply does \
                         (an empty registry would serve nodes that expect their images). Copy the data and create a \
                         new registry, or keep storage_path = \"{old}\"."
                    ),
                )
                .at(AttributePath::root("storage_path")),
            );
            return;
        }
        // The id follows ssh.host and port of the create only.
        if plan.is_create() || plan.prior.attr("id").is_none_or(Value::is_null) {
            let host =
                plan.planned.attr("ssh").and_then(|s| s.attr("host")).and_then(Value::as_str).map(str::to_string);
            let port = plan.planned.attr("port").and_then(Value::as_i64);
            if let (Some(h), Some(p)) = (host, port) {
                *plan.planned.attr_mut("id").expect("id") = Value::string(format!("{h}:{p}"));
            }
        }
        let address = plan.planned.attr("address").and_then(Value::as_str).map(str::to_string);
        let port = plan.planned.attr("port").and_then(Value::as_i64);
        // A CA given by the configuration, or none yet: the CA (and so the certificate)
        // is settled at apply.
        let ca_changes =
            plan.changed("ca_cert") || plan.planned.attr("ca_cert").is_none_or(|v| v.is_null() || v.is_unknown());
        if ca_changes && plan.config.attr("ca_cert").is_none_or(Value::is_null) && plan.is_create() {
            plan.set_unknown("ca_cert");
            plan.set_unknown("ca_key");
        }
        let cert_fits = match (
            plan.prior.attr("tls_cert").and_then(Value::as_str),
            plan.planned.attr("ca_cert").and_then(Value::as_str),
            &address,
        ) {
            (Some(c), Some(ca), Some(a)) => Self::cert_fits(c, ca, a),
            _ => false,
        };
        if !cert_fits {
            plan.set_unknown("tls_cert");
            plan.set_unknown("tls_key");
        }
        if let Some(v) = plan.planned.attr_mut("running") {
            *v = Value::Bool(true);
        }
        let bundles = match plan.planned.attr("image_bundle") {
            Some(Value::List(b)) => b.clone(),
            _ => Vec::new(),
        };
        let mut diags = Diagnostics::new();
        let read = read_bundles(&bundles, &mut diags);
        let failed = diags.has_errors();
        plan.diagnostics.extend(diags);
        if failed {
            return;
        }
        let hp = match (&address, port) {
            (Some(a), Some(p)) => Some(format!("{}:{p}", server::url_host(a))),
            _ => None,
        };
        if let Some(hp) = &hp {
            *plan.planned.attr_mut("url").expect("url") = Value::string(format!("https://{hp}"));
        }
        match (read, hp) {
            (Some(b), Some(hp)) => {
                if let Some(Value::List(items)) = plan.planned.attr_mut("image_bundle") {
                    for (item, names) in items.iter_mut().zip(&b.per_bundle) {
                        if let Some(v) = item.attr_mut("images") {
                            *v = Value::List(names.iter().cloned().map(Value::string).collect());
                        }
                    }
                }
                let prior_images = plan.prior.attr("images").cloned();
                let prior_bundles = plan.prior.attr("image_bundle").cloned();
                let mut images = BTreeMap::new();
                let mut all_known = true;
                for (name, digest) in &b.digests {
                    // A docker-archive's digest: the last push's, while its archive is unchanged.
                    let digest = digest.clone().or_else(|| {
                        let same_archive = bundles.iter().any(|nb| {
                            let sha = nb.attr("sha256");
                            matches!(&prior_bundles, Some(Value::List(pb)) if pb.iter().any(|p| p.attr("sha256") == sha))
                        });
                        same_archive
                            .then(|| prior_images.as_ref()?.attr(name).and_then(Value::as_str).map(str::to_string))
                            .flatten()
                    });
                    match digest {
                        Some(d) => {
                            images.insert(name.clone(), Value::string(d));
                        }
                        None => all_known = false,
                    }
                }
                *plan.planned.attr_mut("images").expect("images") =
                    if all_known { Value::Map(images) } else { Value::Unknown };
                let registries: BTreeMap<String, String> =
                    b.registries.iter().map(|r| (r.clone(), format!("https://{hp}/v2/{r}"))).collect();
                let repos: BTreeMap<String, String> =
                    b.registries.iter().map(|r| (r.clone(), format!("{hp}/{r}"))).collect();
                *plan.planned.attr_mut("mirrors").expect("mirrors") = string_map(registries);
                *plan.planned.attr_mut("repositories").expect("repositories") = string_map(repos);
                if plan.changed("images") {
                    plan.set_unknown("catalog");
                }
            }
            _ => {
                for a in ["images", "mirrors", "repositories", "catalog"] {
                    plan.set_unknown(a);
                }
            }
        }
    }

    async fn create(&self, ctx: &Context, planned: ImageRegistryModel) -> ApplyResult<ImageRegistryModel> {
        Self::converge(ctx, planned, None).await
    }

    async fn read(&self, ctx: &Context, state: ImageRegistryModel) -> Result<Option<ImageRegistryModel>, Diagnostics> {
        let node = Self::node(ctx, &state).await?;
        if !node.answers().await? {
            ctx.warn(crate::node::gone_warning(
                &node,
                "the registry is planned again (its images are pushed from the bundles)",
            ));
            return Ok(None);
        }
        let mut m = state;
        // A certificate on the node that is not the one in state is drift: the plan
        // issues a new one if it is not this CA's.
        if let Some(on_node) = node.read_file(&format!("{}/tls.crt", server::TLS_DIR)).await? {
            m.tls_cert = Some(String::from_utf8_lossy(&on_node).into_owned());
        } else {
            m.tls_cert = None;
        }
        m.running = Some(server::running(&node, &m).await?);
        if m.running == Some(true) {
            let names: Vec<(String, Reference)> = m
                .images
                .iter()
                .flatten()
                .filter_map(|(n, _)| Reference::parse(n).ok().map(|r| (n.clone(), r)))
                .collect();
            let wanted: Vec<(String, String)> = names.iter().map(|(_, r)| (r.mirror_path(), r.tag.clone())).collect();
            let serving = server::digests(&node, &m, &wanted).await?;
            // Per image: one gone or changed in the registry shows as a change of its digest.
            m.images = Some(
                names
                    .iter()
                    .zip(&wanted)
                    .filter_map(|((n, _), w)| serving.get(w).map(|d| (n.clone(), d.clone())))
                    .collect(),
            );
            m.catalog = Some(server::catalog(&node, &m).await?);
        }
        Ok(Some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: ImageRegistryModel,
        planned: ImageRegistryModel,
    ) -> ApplyResult<ImageRegistryModel> {
        let mut planned = planned;
        // Kept from state unless the plan settled new ones.
        if planned.ca_cert.is_none() {
            planned.ca_cert = prior.ca_cert.clone();
            planned.ca_key = prior.ca_key.clone();
        }
        Self::converge(ctx, planned, Some(&prior)).await
    }

    async fn delete(&self, ctx: &Context, state: ImageRegistryModel) -> Result<(), Diagnostics> {
        let node = Self::node(ctx, &state).await?;
        if !node.answers().await? {
            return Ok(());
        }
        server::remove(&node, &state).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
