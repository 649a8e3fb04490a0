//! `strata_containers`: find LXC containers or container templates by hostname, regex
//! or tag (one cluster listing), and the OS templates a node's storage holds.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::vms::{check_regex, matching, VmEntry, VmsModel};
use crate::framework::{Attribute, Block, Context, DataSource, Diagnostics, Schema, Type, Validator};
use crate::proxmox::{client, pve_error};
use strata_pve_client::GuestKind;

pub struct Containers;

#[derive(Serialize, Deserialize, Default)]
pub struct ContainersModel {
    pub node: Option<String>,
    pub name: Option<String>,
    pub name_regex: Option<String>,
    pub tags: Option<Vec<String>>,
    pub templates: Option<bool>,
    pub os_template_storage: Option<String>,
    pub containers: Option<Vec<VmEntry>>,
    pub os_templates: Option<Vec<String>>,
}

#[async_trait]
impl DataSource for Containers {
    type Model = ContainersModel;

    fn name(&self) -> &'static str {
        "containers"
    }

    fn schema(&self) -> Schema {
        let ct = Type::object([
            ("vm_id", Type::Number),
            ("name", Type::String),
            ("node", Type::String),
            ("status", Type::String),
            ("template", Type::Bool),
            ("tags", Type::list(Type::String)),
            ("pool", Type::String),
        ]);
        Schema::new(
            0,
            Block::new(
                "LXC containers and container templates matching every given filter, sorted by VMID; with `node`, \
                 also the OS templates (`vztmpl` content) on that node's `os_template_storage`.",
            )
            .attribute(Attribute::optional("node", Type::String).description("Only containers on this node."))
            .attribute(Attribute::optional("name", Type::String).description("Exact hostname."))
            .attribute(
                Attribute::optional("name_regex", Type::String)
                    .validate(Validator::Custom(check_regex))
                    .description("Hostname matches this regular expression."),
            )
            .attribute(
                Attribute::optional("tags", Type::set(Type::String))
                    .description("Containers carrying all of these tags."),
            )
            .attribute(
                Attribute::optional("templates", Type::Bool)
                    .description("true: only container templates; false: only containers; unset: both."),
            )
            .attribute(
                Attribute::optional("os_template_storage", Type::String)
                    .validate(Validator::Matches("[A-Za-z][A-Za-z0-9_.-]*", "a Proxmox storage ID"))
                    .description("Storage whose OS templates `os_templates` lists (default `local`; needs `node`)."),
            )
            .attribute(
                Attribute::computed("containers", Type::list(ct))
                    .description("Matching containers: vm_id, name (hostname), node, status, template, tags, pool."),
            )
            .attribute(Attribute::computed("os_templates", Type::list(Type::String)).description(
                "OS template volumes on `node`'s `os_template_storage`, e.g. \
                     `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`, for `strata_container.ostemplate` \
                     (empty without `node`).",
            )),
        )
    }

    async fn read(&self, ctx: &Context, config: ContainersModel) -> Result<ContainersModel, Diagnostics> {
        let c = client(ctx)?;
        let all: Vec<_> = c
            .cluster_guests()
            .await
            .map_err(|e| pve_error("list the containers", &e))?
            .into_iter()
            .filter(|g| g.kind == GuestKind::Lxc)
            .collect();
        let filter = VmsModel {
            node: config.node.clone(),
            name: config.name.clone(),
            name_regex: config.name_regex.clone(),
            tags: config.tags.clone(),
            templates: config.templates,
            vms: None,
        };
        let containers = matching(&all, &filter);
        let mut os_templates = vec![];
        if let Some(node) = &config.node {
            let storage = config.os_template_storage.as_deref().unwrap_or("local");
            os_templates = c
                .storage_content(node, storage, Some("vztmpl"))
                .await
                .map_err(|e| pve_error("list the OS templates", &e))?
                .into_iter()
                .map(|v| v.volid)
                .collect();
            os_templates.sort();
        }
        Ok(ContainersModel { containers: Some(containers), os_templates: Some(os_templates), ..config })
    }
}
