//! `strata_pve_nodes`: the cluster's nodes and whether they are online.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::framework::{Attribute, Block, Context, DataSource, Diagnostics, Schema, Type};
use crate::proxmox::{client, pve_error};

pub struct PveNodes;

#[derive(Serialize, Deserialize, Default)]
pub struct PveNodesModel {
    pub online_only: Option<bool>,
    pub nodes: Option<Vec<NodeModel>>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct NodeModel {
    pub name: String,
    pub status: String,
    pub cpu_count: Option<i64>,
    pub memory_total_bytes: Option<i64>,
    pub memory_used_bytes: Option<i64>,
    pub uptime_seconds: Option<i64>,
}

#[async_trait]
impl DataSource for PveNodes {
    type Model = PveNodesModel;

    fn name(&self) -> &'static str {
        "pve_nodes"
    }

    fn schema(&self) -> Schema {
        let node = Type::object([
            ("name", Type::String),
            ("status", Type::String),
            ("cpu_count", Type::Number),
            ("memory_total_bytes", Type::Number),
            ("memory_used_bytes", Type::Number),
            ("uptime_seconds", Type::Number),
        ]);
        Schema::new(
            0,
            Block::new("The Proxmox VE cluster's nodes with their status, sorted by name.")
                .attribute(
                    Attribute::optional("online_only", Type::Bool).description("Only nodes whose status is `online`."),
                )
                .attribute(
                    Attribute::computed("nodes", Type::list(node))
                        .description("Nodes: name, status, CPUs, memory, uptime."),
                ),
        )
    }

    async fn read(&self, ctx: &Context, config: PveNodesModel) -> Result<PveNodesModel, Diagnostics> {
        let c = client(ctx)?;
        let mut nodes = c.nodes().await.map_err(|e| pve_error("list the nodes", &e))?;
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let list = nodes
            .into_iter()
            .filter(|n| config.online_only != Some(true) || n.status == "online")
            .map(|n| NodeModel {
                name: n.node,
                status: n.status,
                cpu_count: n.maxcpu.map(|c| c as i64),
                memory_total_bytes: n.maxmem.map(|m| m as i64),
                memory_used_bytes: n.mem.map(|m| m as i64),
                uptime_seconds: n.uptime.map(|u| u as i64),
            })
            .collect();
        Ok(PveNodesModel { online_only: config.online_only, nodes: Some(list) })
    }
}
