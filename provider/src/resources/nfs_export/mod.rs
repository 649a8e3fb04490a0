//! `strata_nfs_export`: one NFS export on a node, with the kernel server (a file in
//! /etc/exports.d, then `exportfs -ra`) or nfs-ganesha (one EXPORT block file included
//! from ganesha.conf, then a reload). Feeds nfs-subdir-external-provisioner.

mod options;
mod render;
mod schema;
mod server;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use anyhow::bail;

use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Value,
};
use crate::node::{quote, Node};
use crate::resources::connection::{self, ConnectionModel};
use options::Backend;
use render::{Client, ExportFile};

pub struct NfsExport;

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct CreateDirectoryModel {
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq)]
pub struct ClientModel {
    pub client: String,
    pub options: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct NfsExportModel {
    pub id: Option<String>,
    pub ssh: ConnectionModel,
    pub name: String,
    pub path: String,
    pub backend: Option<String>,
    pub pseudo_path: Option<String>,
    pub export_id: Option<i64>,
    pub create_directory: Option<CreateDirectoryModel>,
    pub clients: Vec<ClientModel>,
    pub restore_from: Option<String>,
    pub delete_data_on_destroy: Option<bool>,
    pub server: Option<String>,
    pub storage_class_parameters: Option<BTreeMap<String, String>>,
}

const DEFAULT_OPTIONS: [&str; 3] = ["rw", "sync", "no_subtree_check"];

impl NfsExport {
    fn backend(m: &NfsExportModel) -> Backend {
        m.backend.as_deref().and_then(Backend::parse).unwrap_or(Backend::Kernel)
    }

    fn file_path(m: &NfsExportModel) -> String {
        match Self::backend(m) {
            Backend::Kernel => format!("/etc/exports.d/strata-{}.exports", m.name),
            Backend::Ganesha => format!("{}/strata-{}.conf", server::GANESHA_DIR, m.name),
        }
    }

    fn export_file(m: &NfsExportModel) -> ExportFile {
        ExportFile {
            path: m.path.clone(),
            pseudo_path: m.pseudo_path.clone(),
            export_id: m.export_id,
            clients: m
                .clients
                .iter()
                .map(|c| Client {
                    client: c.client.clone(),
                    options: c
                        .options
                        .clone()
                        .unwrap_or_else(|| DEFAULT_OPTIONS.iter().map(|s| s.to_string()).collect()),
                })
                .collect(),
        }
    }

    fn render(m: &NfsExportModel) -> String {
        let e = Self::export_file(m);
        match Self::backend(m) {
            Backend::Kernel => render::kernel(&m.name, &e),
            Backend::Ganesha => render::ganesha(&m.name, &e),
        }
    }

    /// Fills what is derived: `id` and `server` only where the create (or import) has
    /// not fixed them yet, since a later `ssh.host` is just how Terraform reaches the node.
    fn finish(mut m: NfsExportModel) -> NfsExportModel {
        if m.id.is_none() {
            m.id = Some(format!("{}:{}", m.ssh.host, m.name));
        }
        let server = m.server.get_or_insert_with(|| m.ssh.host.clone()).clone();
        let path = match Self::backend(&m) {
            Backend::Kernel => m.path.clone(),
            Backend::Ganesha => m.pseudo_path.clone().unwrap_or_else(|| m.path.clone()),
        };
        m.storage_class_parameters = Some(BTreeMap::from([("server".to_string(), server), ("path".to_string(), path)]));
        m
    }

    async fn node(ctx: &Context, m: &NfsExportModel) -> Result<Node, Diagnostics> {
        Node::connect(ctx, &m.ssh).await
    }

    /// The export as the node has it, `None` when its file is gone. `imported`: nothing
    /// was configured yet, so default options read back as unset, as a create with
    /// `options` left out would have stored them.
    async fn observe(node: &Node, state: NfsExportModel, imported: bool) -> anyhow::Result<Option<NfsExportModel>> {
        let Some(bytes) = node.read_file(&Self::file_path(&state)).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let parsed = match Self::backend(&state) {
            Backend::Kernel => render::parse_kernel(&text),
            Backend::Ganesha => render::parse_ganesha(&text),
        };
        let mut m = state;
        match parsed {
            Some(e) => {
                m.path = e.path;
                if Self::backend(&m) == Backend::Ganesha {
                    m.export_id = e.export_id;
                    // Pseudo path was defaulted to path when unset: keep it unset then.
                    m.pseudo_path = e.pseudo_path.filter(|p| m.pseudo_path.is_some() || *p != m.path);
                }
                let configured = m.clients.clone();
                m.clients = e
                    .clients
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        // Options left unset mean the defaults: keep them unset if unchanged.
                        let unset = imported || configured.get(i).is_some_and(|k| k.options.is_none());
                        let defaulted = unset && c.options.iter().map(String::as_str).eq(DEFAULT_OPTIONS);
                        ClientModel { client: c.client, options: if defaulted { None } else { Some(c.options) } }
                    })
                    .collect();
            }
            // Edited beyond recognition: show it as a change back to the configuration.
            None => m.clients = Vec::new(),
        }
        Ok(Some(Self::finish(m)))
    }
}

impl NfsExport {
    /// Whether the server would get exactly what it has: same export file, same
    /// directory settings. Then `ssh`, `server`, `restore_from` or
    /// `delete_data_on_destroy` changed, none of which the server sees.
    fn same_on_the_node(prior: &NfsExportModel, planned: &NfsExportModel) -> bool {
        let dir = |m: &NfsExportModel| serde_json::to_value(&m.create_directory).ok();
        Self::file_path(prior) == Self::file_path(planned)
            && Self::render(prior) == Self::render(planned)
            && dir(prior) == dir(planned)
    }

    /// The node answers where `ssh` now points and holds this export: a new `ssh.host`
    /// must name the same machine, not another one that would then be managed instead.
    async fn check_reachable(node: &Node, m: &NfsExportModel) -> anyhow::Result<()> {
        if !node.answers().await? {
            bail!("{} does not answer SSH: check the ssh block", node.label());
        }
        if node.read_file(&Self::file_path(m)).await?.is_none() {
            bail!(
                "{} has no {}: ssh must reach the server that holds this export (id {}); to move the export to \
                 another server, replace it (terraform apply -replace)",
                node.label(),
                Self::file_path(m),
                m.id.as_deref().unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// `HOST:NAME` (the last `:` separates them, so an IPv6 host works).
fn parse_import_id(id: &str) -> Result<(String, String), Diagnostics> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-')
    };
    match id.rsplit_once(':') {
        Some((host, name)) if !host.is_empty() && valid_name(name) => Ok((host.to_string(), name.to_string())),
        _ => Err(Diagnostic::error(
            "Invalid import ID",
            format!("{id:?} is not HOST:NAME, e.g. 10.0.0.5:k8s-prod (the node's ssh host and the export's name)."),
        )
        .into()),
    }
}

#[async_trait]
impl Resource for NfsExport {
    type Model = NfsExportModel;

    fn name(&self) -> &'static str {
        "nfs_export"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        connection::validate(config.attr("ssh"), &AttributePath::root("ssh"), diags);
        let backend =
            config.attr("backend").and_then(Value::as_str).and_then(Backend::parse).unwrap_or(Backend::Kernel);
        if config.attr("backend").is_some_and(Value::is_unknown) {
            return;
        }
        if let Some(Value::List(clients)) = config.attr("clients") {
            for (i, c) in clients.iter().enumerate() {
                if let Some(Value::List(opts)) = c.attr("options") {
                    let known: Vec<&str> = opts.iter().filter_map(Value::as_str).collect();
                    if known.len() == opts.len() {
                        for (j, msg) in options::conflicts(&known, backend) {
                            diags.push(
                                Diagnostic::error("Contradictory export options", msg).at(AttributePath::root(
                                    "clients",
                                )
                                .index(i)
                                .attr("options")
                                .index(j)),
                            );
                        }
                    }
                    for (j, o) in opts.iter().enumerate() {
                        if let Some(o) = o.as_str() {
                            if let Err(msg) = options::check(o, backend) {
                                diags.push(
                                    Diagnostic::error("Invalid export option", msg)
                                        .at(AttributePath::root("clients").index(i).attr("options").index(j)),
                                );
                            }
                        }
                    }
                }
            }
        }
        if let Some(Value::String(archive)) = config.attr("restore_from") {
            if let Err(e) = server::archive_format_of(archive) {
                diags.push(Diagnostic::error("Invalid restore_from", e).at(AttributePath::root("restore_from")));
            }
        }
        if backend == Backend::Kernel {
            for attr in ["pseudo_path", "export_id"] {
                if config.attr(attr).is_some_and(|v| !v.is_null() && !v.is_unknown()) {
                    diags.push(
                        Diagnostic::error(
                            "Attribute needs the ganesha backend",
                            format!("{attr} applies to backend = \"ganesha\" only."),
                        )
                        .at(AttributePath::root(attr)),
                    );
                }
            }
        }
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        // Known at plan time; nothing about them is decided by the server.
        let host = plan.planned.attr("ssh").and_then(|c| c.attr("host")).cloned();
        let name = plan.planned.attr("name").cloned();
        let backend = plan.planned.attr("backend").and_then(Value::as_str).map(str::to_string);
        let path = plan.planned.attr("path").cloned();
        let pseudo = plan.planned.attr("pseudo_path").cloned();
        // `id` and the default `server` come from `ssh.host` at create only; on an update
        // they are the prior ones, which Terraform proposes (UseStateForUnknown), so a new
        // `ssh.host` text changes neither. A state without them (import) gets them here.
        let fresh = |attr: &str| plan.is_create() || plan.prior.attr(attr).is_none_or(Value::is_null);
        let (new_id, new_server) = (fresh("id"), fresh("server"));
        if new_id {
            if let (Some(Value::String(h)), Some(Value::String(n))) = (&host, &name) {
                if let Some(id) = plan.planned.attr_mut("id") {
                    *id = Value::string(format!("{h}:{n}"));
                }
            }
        }
        let configured = plan.config.attr("server").is_some_and(|v| !v.is_null());
        if !configured && new_server {
            if let (Some(h), Some(v)) = (&host, plan.planned.attr_mut("server")) {
                *v = h.clone();
            }
        }
        let server = plan.planned.attr("server").cloned();
        if backend.as_deref() == Some("kernel") {
            if let Some(v) = plan.planned.attr_mut("export_id") {
                *v = Value::Null;
            }
        }
        let share = match (backend.as_deref(), pseudo) {
            (Some("ganesha"), Some(p @ Value::String(_))) => Some(p),
            _ => path,
        };
        if let (Some(Value::String(h)), Some(Value::String(p))) = (server, share) {
            if let Some(v) = plan.planned.attr_mut("storage_class_parameters") {
                *v = Value::Map(BTreeMap::from([
                    ("server".into(), Value::String(h)),
                    ("path".into(), Value::String(p)),
                ]));
            }
        }
    }

    /// Version 0 had no `server`: clients mounted `ssh.host`, as recorded in
    /// `storage_class_parameters`, which is what `server` keeps.
    fn upgrade_state(&self, from_version: i64, mut raw: serde_json::Value) -> Result<serde_json::Value, Diagnostics> {
        if from_version < 1 {
            let server = raw
                .pointer("/storage_class_parameters/server")
                .or_else(|| raw.pointer("/ssh/host"))
                .or_else(|| raw.pointer("/ssh/0/host"))
                .cloned();
            if let (Some(obj), Some(server)) = (raw.as_object_mut(), server) {
                obj.entry("server").or_insert(server);
            }
        }
        Ok(raw)
    }

    fn import_id(&self) -> Option<&'static str> {
        Some(
            "`HOST:NAME`, e.g. `10.0.0.5:k8s-prod`: any address or DNS name Terraform reaches the node at (not \
             necessarily the one in the `id` the export had before), and the export's `name`. The imported `id` is \
             this ID and `server` is `HOST`, as if created with `ssh.host = HOST`. The node is \
             reached with the provider's `ssh` settings; the backend is found from the export file on the node. \
             `create_directory` and ssh settings other than `host` are not imported: set them in the configuration \
             (a later apply then only records them)",
        )
    }

    async fn import(&self, ctx: &Context, id: &str) -> Result<NfsExportModel, Diagnostics> {
        let (host, name) = parse_import_id(id)?;
        let base = NfsExportModel {
            ssh: ConnectionModel { host: host.clone(), ..Default::default() },
            name: name.clone(),
            delete_data_on_destroy: Some(false),
            ..Default::default()
        };
        let node = Self::node(ctx, &base).await?;
        for backend in Backend::NAMES {
            let candidate = NfsExportModel { backend: Some(backend.to_string()), ..base.clone() };
            if let Some(m) = Self::observe(&node, candidate, true).await? {
                if m.clients.is_empty() {
                    return Err(Diagnostic::error(
                        "Cannot import the export",
                        format!("{} on {host} is not an export file this provider can read.", Self::file_path(&m)),
                    )
                    .into());
                }
                return Ok(m);
            }
        }
        Err(Diagnostic::error(
            "Export not found",
            format!(
                "{host} has no strata export named {name:?} (neither /etc/exports.d/strata-{name}.exports nor {}/strata-{name}.conf).",
                server::GANESHA_DIR
            ),
        )
        .into())
    }

    async fn create(&self, ctx: &Context, planned: NfsExportModel) -> ApplyResult<NfsExportModel> {
        let node = Self::node(ctx, &planned).await?;
        server::ensure_directory(&node, &planned).await?;
        if let Some(archive) = &planned.restore_from {
            // Before the export exists, so no client sees a half-restored tree.
            if !server::restore(&node, &planned.path, archive).await? {
                ctx.warn(
                    Diagnostic::warning(
                        "Archive not restored",
                        format!(
                            "{} on {} is not empty, so restore_from ({archive}) was not unpacked: existing data is \
                             never overwritten. Empty the directory and re-create the export to restore.",
                            planned.path, planned.ssh.host
                        ),
                    )
                    .at(AttributePath::root("restore_from")),
                );
            }
        }
        let mut m = planned;
        server::install_locked(&node, &mut m).await?;
        Ok(Self::finish(m))
    }

    async fn read(&self, ctx: &Context, state: NfsExportModel) -> Result<Option<NfsExportModel>, Diagnostics> {
        let node = Self::node(ctx, &state).await?;
        if !node.answers().await? {
            ctx.warn(crate::node::gone_warning(
                &node,
                "the export is planned again (its data comes back from restore_from, if set)",
            ));
            return Ok(None);
        }
        Ok(Self::observe(&node, state, false).await?)
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: NfsExportModel,
        planned: NfsExportModel,
    ) -> ApplyResult<NfsExportModel> {
        let node = Self::node(ctx, &planned).await?;
        if Self::same_on_the_node(&prior, &planned) {
            // Only how Terraform reaches the server (or what Terraform alone keeps)
            // changed: nothing is written or reloaded, only checked.
            Self::check_reachable(&node, &planned).await?;
            return Ok(Self::finish(planned));
        }
        server::ensure_directory(&node, &planned).await?;
        let mut m = planned;
        server::install_locked(&node, &mut m).await?;
        Ok(Self::finish(m))
    }

    async fn delete(&self, ctx: &Context, state: NfsExportModel) -> Result<(), Diagnostics> {
        let node = Self::node(ctx, &state).await?;
        let exclusive = node.exclusive(server::LOCK_FILE).await?;
        let removed = async {
            node.remove_file(&Self::file_path(&state)).await?;
            server::activate(&node, Self::backend(&state)).await
        }
        .await;
        exclusive.release().await;
        removed?;
        if state.delete_data_on_destroy == Some(true) {
            node.run_ok("deleting the exported data", &format!("rm -rf -- {}", quote(&state.path))).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
