//! `strata_vms`: find VMs or templates by name or tag (one cluster listing).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{Attribute, Block, Context, DataSource, Diagnostics, Schema, Type, Validator};
use crate::proxmox::{client, pve_error};
use strata_pve_client::vm::split_tags;
use strata_pve_client::ClusterVm;

pub struct Vms;

#[derive(Serialize, Deserialize, Default)]
pub struct VmsModel {
    pub node: Option<String>,
    pub name: Option<String>,
    pub name_regex: Option<String>,
    pub tags: Option<Vec<String>>,
    pub templates: Option<bool>,
    pub vms: Option<Vec<VmEntry>>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct VmEntry {
    pub vm_id: i64,
    pub name: Option<String>,
    pub node: String,
    pub status: String,
    pub template: bool,
    pub tags: Vec<String>,
    pub pool: Option<String>,
}

/// The guests of `all` matching every filter of `f`, sorted by VMID (shared with
/// `strata_containers`).
pub fn matching(all: &[ClusterVm], f: &VmsModel) -> Vec<VmEntry> {
    let re = f.name_regex.as_deref().and_then(|r| regex::Regex::new(r).ok());
    let want_tags: Vec<String> = f.tags.iter().flatten().map(|t| t.to_ascii_lowercase()).collect();
    let mut list: Vec<VmEntry> = all
        .iter()
        .filter(|v| f.node.as_ref().is_none_or(|n| *n == v.node))
        .filter(|v| f.name.as_ref().is_none_or(|n| v.name.as_ref() == Some(n)))
        .filter(|v| re.as_ref().is_none_or(|r| v.name.as_deref().is_some_and(|n| r.is_match(n))))
        .filter(|v| f.templates.is_none_or(|t| t == v.template))
        .map(|v| VmEntry {
            vm_id: v.vmid as i64,
            name: v.name.clone(),
            node: v.node.clone(),
            status: v.status.clone(),
            template: v.template,
            tags: v.tags.as_deref().map(split_tags).unwrap_or_default(),
            pool: v.pool.clone(),
        })
        .filter(|v| want_tags.iter().all(|t| v.tags.contains(t)))
        .collect();
    list.sort_by_key(|v| v.vm_id);
    list
}

pub(crate) fn check_regex(v: &crate::framework::Value) -> Result<(), String> {
    match v.as_str().map(regex::Regex::new) {
        Some(Err(e)) => Err(format!("Not a valid regular expression: {e}")),
        _ => Ok(()),
    }
}

#[async_trait]
impl DataSource for Vms {
    type Model = VmsModel;

    fn name(&self) -> &'static str {
        "vms"
    }

    fn schema(&self) -> Schema {
        let vm = Type::object([
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
            Block::new("VMs and templates matching every given filter, sorted by VMID.")
                .attribute(Attribute::optional("node", Type::String).description("Only VMs on this node."))
                .attribute(Attribute::optional("name", Type::String).description("Exact name."))
                .attribute(
                    Attribute::optional("name_regex", Type::String)
                        .validate(Validator::Custom(check_regex))
                        .description("Name matches this regular expression."),
                )
                .attribute(
                    Attribute::optional("tags", Type::set(Type::String)).description("VMs carrying all of these tags."),
                )
                .attribute(
                    Attribute::optional("templates", Type::Bool)
                        .description("true: only templates; false: only VMs; unset: both."),
                )
                .attribute(
                    Attribute::computed("vms", Type::list(vm))
                        .description("Matching VMs: vm_id, name, node, status, template, tags, pool."),
                ),
        )
    }

    async fn read(&self, ctx: &Context, config: VmsModel) -> Result<VmsModel, Diagnostics> {
        let c = client(ctx)?;
        let all = c.cluster_vms().await.map_err(|e| pve_error("list the VMs", &e))?;
        let list = matching(&all, &config);
        Ok(VmsModel { vms: Some(list), ..config })
    }
}
