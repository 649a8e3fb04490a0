//! `strata_nfs_export`: one NFS export on a node, with the kernel server (a file in
//! /etc/exports.d, then `exportfs -ra`) or nfs-ganesha (one EXPORT block file included
//! from ganesha.conf, then a reload). Feeds nfs-subdir-external-provisioner.

mod options;
mod render;

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{
    ApplyResult, Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, NestedBlock, PlanChange,
    Resource, Schema, Type, Validator, Value,
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
    pub delete_data_on_destroy: Option<bool>,
    pub storage_class_parameters: Option<BTreeMap<String, String>>,
}

const GANESHA_DIR: &str = "/etc/ganesha/strata.d";
const GANESHA_INDEX: &str = "/etc/ganesha/strata.d/index.conf";
const GANESHA_CONF: &str = "/etc/ganesha/ganesha.conf";
const GANESHA_PID: &str = "/run/ganesha/ganesha.pid";
const GANESHA_LOG: &str = "/var/log/ganesha/ganesha.log";
const DEFAULT_OPTIONS: [&str; 3] = ["rw", "sync", "no_subtree_check"];

fn check_path(v: &Value) -> Result<(), String> {
    let p = v.as_str().unwrap_or_default();
    let ok = p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if !ok {
        return Err("Must be an absolute, normalised path of letters, digits, '.', '_', '-' and '/'.".into());
    }
    if p.matches('/').count() < 2 {
        return Err("Must be at least two levels deep (e.g. /srv/nfs): exporting or deleting a top-level directory is refused.".into());
    }
    Ok(())
}

impl NfsExport {
    fn backend(m: &NfsExportModel) -> Backend {
        m.backend.as_deref().and_then(Backend::parse).unwrap_or(Backend::Kernel)
    }

    fn file_path(m: &NfsExportModel) -> String {
        match Self::backend(m) {
            Backend::Kernel => format!("/etc/exports.d/strata-{}.exports", m.name),
            Backend::Ganesha => format!("{GANESHA_DIR}/strata-{}.conf", m.name),
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
                    options: c.options.clone().unwrap_or_else(|| DEFAULT_OPTIONS.iter().map(|s| s.to_string()).collect()),
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

    fn finish(mut m: NfsExportModel) -> NfsExportModel {
        m.id = Some(format!("{}:{}", m.ssh.host, m.name));
        let path = match Self::backend(&m) {
            Backend::Kernel => m.path.clone(),
            Backend::Ganesha => m.pseudo_path.clone().unwrap_or_else(|| m.path.clone()),
        };
        m.storage_class_parameters =
            Some(BTreeMap::from([("server".to_string(), m.ssh.host.clone()), ("path".to_string(), path)]));
        m
    }

    async fn node(ctx: &Context, m: &NfsExportModel) -> Result<Node, Diagnostics> {
        Node::connect(ctx, &m.ssh).await
    }

    async fn ensure_directory(node: &Node, m: &NfsExportModel) -> anyhow::Result<()> {
        let path = quote(&m.path);
        match &m.create_directory {
            Some(d) => {
                let mode = d.mode.as_deref().unwrap_or("0755");
                let owner = format!("{}:{}", d.owner.as_deref().unwrap_or("root"), d.group.as_deref().unwrap_or("root"));
                node.run_ok(
                    &format!("mkdir -p {path} && chmod {} {path} && chown {} {path}", quote(mode), quote(&owner)),
                    "creating the export directory",
                )
                .await?;
            }
            None => {
                if node.run(&format!("test -d {path}")).await?.status != 0 {
                    bail!("{} does not exist on {}; create it or set a create_directory block", m.path, m.ssh.host);
                }
            }
        }
        Ok(())
    }

    /// Writes the export and activates it; if the server refuses it, the previous file is
    /// put back (and re-activated) and the server's own message is the error.
    async fn install(node: &Node, m: &mut NfsExportModel) -> anyhow::Result<()> {
        let _exclusive = node.exclusive().await;
        let file = Self::file_path(m);
        let previous = node.read_file(&file).await?;
        if Self::backend(m) == Backend::Ganesha && m.export_id.is_none() {
            m.export_id = Some(Self::free_export_id(node).await?);
        }
        node.write_file(&file, Self::render(m).as_bytes(), 0o644).await?;
        let activated = Self::activate(node, Self::backend(m)).await;
        if let Err(e) = activated {
            match previous {
                Some(old) => node.write_file(&file, &old, 0o644).await?,
                None => node.remove_file(&file).await?,
            }
            // Best effort: the error to report is the refusal, not the rollback's.
            let _ = Self::activate(node, Self::backend(m)).await;
            return Err(e);
        }
        Ok(())
    }

    async fn activate(node: &Node, backend: Backend) -> anyhow::Result<()> {
        match backend {
            Backend::Kernel => {
                let out = node.run("mkdir -p /etc/exports.d && exportfs -ra").await?;
                if out.status != 0 {
                    bail!("exportfs refused the exports: {}", out.stderr.trim());
                }
                Ok(())
            }
            Backend::Ganesha => Self::reload_ganesha(node).await,
        }
    }

    /// Rebuilds the include index from the export files present, makes sure ganesha.conf
    /// includes it, then reloads ganesha (systemd, else SIGHUP, else start it) and reads
    /// its log for configuration errors.
    async fn reload_ganesha(node: &Node) -> anyhow::Result<()> {
        let script = format!(
            r#"set -e
mkdir -p {dir} /run/ganesha /var/log/ganesha
: > {index}.tmp
for f in {dir}/strata-*.conf; do [ -e "$f" ] && echo "%include \"$f\"" >> {index}.tmp; done
mv {index}.tmp {index}
grep -qF '%include "{index}"' {conf} 2>/dev/null || printf '\n%%include "{index}"\n' >> {conf}
touch {log}
start=$(stat -c %s {log})
if [ -d /run/systemd/system ]; then
  systemctl reload-or-restart nfs-ganesha
elif [ -f {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null; then
  kill -HUP "$(cat {pid})"
  sleep 1
else
  # Without systemd nothing else runs rpcbind, which ganesha's NFSv3 side needs.
  if command -v rpcbind >/dev/null && ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then rpcbind -w; fi
  ganesha.nfsd -f {conf} -L {log} -p {pid}
  sleep 1
fi
tail -c +$((start + 1)) {log} | grep -E ':CONFIG :(CRIT|MAJ) |:EXPORT :(CRIT|MAJ) ' || true
if [ ! -d /run/systemd/system ]; then kill -0 "$(cat {pid})" 2>/dev/null || echo "ganesha.nfsd is not running"; fi
"#,
            dir = GANESHA_DIR,
            index = GANESHA_INDEX,
            conf = GANESHA_CONF,
            log = GANESHA_LOG,
            pid = GANESHA_PID,
        );
        let out = node.run(&script).await?;
        let problems = out.stdout.trim();
        if out.status != 0 || !problems.is_empty() {
            bail!("nfs-ganesha refused the exports: {}{}", problems, out.stderr.trim());
        }
        Ok(())
    }

    async fn free_export_id(node: &Node) -> anyhow::Result<i64> {
        let out = node
            .run(&format!("cat {GANESHA_DIR}/strata-*.conf {GANESHA_CONF} 2>/dev/null | grep -i 'Export_Id' || true"))
            .await?;
        let used: Vec<i64> = out
            .stdout
            .lines()
            .filter_map(|l| l.split('=').nth(1))
            .filter_map(|v| v.trim().trim_end_matches(';').trim().parse().ok())
            .collect();
        (100..65535).find(|id| !used.contains(id)).ok_or_else(|| anyhow!("no free ganesha Export_Id left"))
    }
}

#[async_trait]
impl Resource for NfsExport {
    type Model = NfsExportModel;

    fn name(&self) -> &'static str {
        "nfs_export"
    }

    fn schema(&self) -> Schema {
        let block = Block::new(
            "One NFS export on a node, served by the kernel NFS server (`backend = \"kernel\"`: a file in \
             /etc/exports.d, then `exportfs -ra`) or by nfs-ganesha (`backend = \"ganesha\"`: one EXPORT block \
             included from ganesha.conf, then a reload). Options are checked at plan time; an option the server \
             still refuses is reported with the server's message and the previous export is restored. \
             `storage_class_parameters` feeds nfs-subdir-external-provisioner.",
        )
        .attribute(Attribute::computed("id", Type::String).description("`HOST:NAME`."))
        .attribute(
            Attribute::required("name", Type::String)
                .requires_replace()
                .validate(Validator::Matches("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a DNS label (lower-case letters, digits, '-')"))
                .description("Name of the export; names its file on the node (`strata-NAME.exports` / `strata-NAME.conf`)."),
        )
        .attribute(
            Attribute::required("path", Type::String)
                .requires_replace()
                .validate(Validator::Custom(check_path))
                .description("Directory to export, e.g. `/srv/nfs/k8s-prod`."),
        )
        .attribute(
            Attribute::optional("backend", Type::String)
                .default("kernel")
                .requires_replace()
                .validate(Validator::OneOf(Backend::NAMES.to_vec()))
                .description("`kernel` (default) or `ganesha`."),
        )
        .attribute(
            Attribute::optional("pseudo_path", Type::String)
                .requires_replace()
                .validate(Validator::Matches("/[A-Za-z0-9._/-]*", "an absolute path"))
                .description("ganesha only: the NFSv4 pseudo path clients mount (default: `path`)."),
        )
        .attribute(
            Attribute::optional_computed("export_id", Type::Number)
                .validate(Validator::IntBetween(1, 65534))
                .description("ganesha only: the export's Export_Id (default: the lowest free id from 100)."),
        )
        .attribute(
            Attribute::optional("delete_data_on_destroy", Type::Bool)
                .default(false)
                .description("Delete the exported directory with the export. Off by default: destroying an export keeps the data."),
        )
        .attribute(
            Attribute::computed("storage_class_parameters", Type::map(Type::String))
                .description("`server` and `path` for nfs-subdir-external-provisioner (`nfs.server`, `nfs.path`)."),
        )
        .block(connection::resource_block())
        .block(NestedBlock::single(
            "create_directory",
            Block::new("Create the directory if missing, with this mode and owner.")
                .attribute(Attribute::optional("mode", Type::String).default("0755").validate(Validator::Matches("0?[0-7]{3}", "an octal mode like 0755")).description("Mode (default 0755)."))
                .attribute(Attribute::optional("owner", Type::String).default("root").description("Owner (default root)."))
                .attribute(Attribute::optional("group", Type::String).default("root").description("Group (default root).")),
        ))
        .block(
            NestedBlock::list(
                "clients",
                Block::new("Who may mount the export, with which options.")
                    .attribute(
                        Attribute::required("client", Type::String)
                            .validate(Validator::Custom(|v| options::check_client(v.as_str().unwrap_or_default())))
                            .description("A host, an address, a network in CIDR form, a wildcard or an @netgroup."),
                    )
                    .attribute(
                        Attribute::optional("options", Type::list(Type::String))
                            .description("exports(5) options, e.g. `[\"rw\", \"sync\", \"no_subtree_check\"]` (the default)."),
                    ),
            )
            .items(1, 0),
        );
        Schema::new(0, block)
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let backend = config.attr("backend").and_then(Value::as_str).and_then(Backend::parse).unwrap_or(Backend::Kernel);
        if config.attr("backend").is_some_and(Value::is_unknown) {
            return;
        }
        if let Some(Value::List(clients)) = config.attr("clients") {
            for (i, c) in clients.iter().enumerate() {
                if let Some(Value::List(opts)) = c.attr("options") {
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
        if backend == Backend::Kernel {
            for attr in ["pseudo_path", "export_id"] {
                if config.attr(attr).is_some_and(|v| !v.is_null() && !v.is_unknown()) {
                    diags.push(
                        Diagnostic::error("Attribute needs the ganesha backend", format!("{attr} applies to backend = \"ganesha\" only."))
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
        if let (Some(Value::String(h)), Some(Value::String(n))) = (&host, &name) {
            if let Some(id) = plan.planned.attr_mut("id") {
                *id = Value::string(format!("{h}:{n}"));
            }
        }
        if backend.as_deref() == Some("kernel") {
            if let Some(v) = plan.planned.attr_mut("export_id") {
                *v = Value::Null;
            }
        }
        let share = match (backend.as_deref(), pseudo) {
            (Some("ganesha"), Some(p @ Value::String(_))) => Some(p),
            _ => path,
        };
        if let (Some(Value::String(h)), Some(Value::String(p))) = (host, share) {
            if let Some(v) = plan.planned.attr_mut("storage_class_parameters") {
                *v = Value::Map(BTreeMap::from([("server".into(), Value::String(h)), ("path".into(), Value::String(p))]));
            }
        }
    }

    async fn create(&self, ctx: &Context, planned: NfsExportModel) -> ApplyResult<NfsExportModel> {
        let node = Self::node(ctx, &planned).await?;
        Self::ensure_directory(&node, &planned).await?;
        let mut m = planned;
        Self::install(&node, &mut m).await?;
        Ok(Self::finish(m))
    }

    async fn read(&self, ctx: &Context, state: NfsExportModel) -> Result<Option<NfsExportModel>, Diagnostics> {
        let node = Self::node(ctx, &state).await?;
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
                        let defaulted = configured.get(i).is_some_and(|k| k.options.is_none())
                            && c.options.iter().map(String::as_str).eq(DEFAULT_OPTIONS);
                        ClientModel { client: c.client, options: if defaulted { None } else { Some(c.options) } }
                    })
                    .collect();
            }
            // Edited beyond recognition: show it as a change back to the configuration.
            None => m.clients = Vec::new(),
        }
        Ok(Some(Self::finish(m)))
    }

    async fn update(&self, ctx: &Context, _prior: NfsExportModel, planned: NfsExportModel) -> ApplyResult<NfsExportModel> {
        let node = Self::node(ctx, &planned).await?;
        Self::ensure_directory(&node, &planned).await?;
        let mut m = planned;
        Self::install(&node, &mut m).await?;
        Ok(Self::finish(m))
    }

    async fn delete(&self, ctx: &Context, state: NfsExportModel) -> Result<(), Diagnostics> {
        let node = Self::node(ctx, &state).await?;
        let _exclusive = node.exclusive().await;
        node.remove_file(&Self::file_path(&state)).await?;
        Self::activate(&node, Self::backend(&state)).await?;
        if state.delete_data_on_destroy == Some(true) {
            node.run_ok(&format!("rm -rf -- {}", quote(&state.path)), "deleting the exported data").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
