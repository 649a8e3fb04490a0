//! One node of a multi-node resource (load balancer nodes; etcd members, control-plane
//! nodes and workers to follow): `name` is its identity, what state, plans and
//! renames key on; `address` is what the cluster and the other nodes use; `ssh {}` is
//! how Terraform reaches it. Changing `ssh` changes nothing on the node, and a node is
//! never identified by the text of `ssh.host` or by its position in the list.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::framework::{Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Type, Validator, Value};
use crate::resources::connection::{self, ConnectionModel};

/// The shared fields; a resource adds its own next to them with `#[serde(flatten)]`.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ClusterNodeModel {
    pub name: String,
    pub address: Option<String>,
    pub ssh: ConnectionModel,
}

impl ClusterNodeModel {
    /// The cluster-facing address: `address`, else `ssh.host` (then an IP address).
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.ssh.host)
    }
}

/// What a node's name may be: short, printable, usable as a map key and in messages.
pub const NAME: (&str, &str) =
    ("[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", "letters, digits, '.', '_' or '-' (at most 63)");

/// The block with `name`, `address` and `ssh`; `what` says what the node is for, and
/// `address_default` what `address` means when unset.
pub fn block(what: &str, address_default: &str) -> Block {
    Block::new(what)
        .attribute(Attribute::required("name", Type::String).validate(Validator::Matches(NAME.0, NAME.1)).description(
            "The node's identity: what state and plans key on. Renaming a node changes nothing on a machine that \
                 keeps its address; a node is never identified by `ssh.host` or by its position.",
        ))
        .attribute(
            Attribute::optional("address", Type::String)
                .validate(Validator::IpAddress(""))
                .description(format!("The node's cluster-facing IP address ({address_default}).")),
        )
        .block(ssh_block())
}

/// The shared `ssh` block, in place: it says how Terraform reaches the node, not
/// which node it is, so changing any of it (host, user, port, key, bastion, host
/// keys) is an in-place update that only checks the node answers.
pub fn ssh_block() -> NestedBlock {
    let mut ssh = connection::resource_block();
    ssh.block.description = "How Terraform reaches the node. Changing it (host, user, port, key, bastion, host keys) \
                             is an in-place update that runs nothing on the node beyond a reachability check."
        .into();
    if let Some(host) = ssh.block.attributes.iter_mut().find(|a| a.name == "host") {
        host.requires_replace = false;
        host.description =
            "Address or DNS name Terraform connects to. Not the node's identity (that is `name`).".into();
    }
    ssh
}

/// The checks every node list shares: its `ssh` block, and names and addresses that
/// are unique (the second use is the one reported, naming the first).
pub fn validate(nodes: &[Value], at: impl Fn(usize) -> AttributePath, diags: &mut Diagnostics) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        connection::validate(n.attr("ssh"), &at(i).attr("ssh"), diags);
        if let Some(name) = n.attr("name").and_then(Value::as_str) {
            if let Some(first) = names.insert(name, i) {
                names.insert(name, first);
                diags.push(
                    Diagnostic::error("Duplicate node name", format!("{name:?} is already the name of {}.", at(first)))
                        .at(at(i).attr("name")),
                );
            }
        }
        if let Some(a) = n.attr("address").and_then(Value::as_str) {
            if let Some(first) = addresses.insert(a, i) {
                addresses.insert(a, first);
                diags.push(
                    Diagnostic::error(
                        "Duplicate node address",
                        format!("{a:?} is already the address of {}.", at(first)),
                    )
                    .at(at(i).attr("address")),
                );
            }
        }
    }
}

/// Fills `name` in state written before nodes had one, from what identified the node
/// then (`ssh.host`), so that existing state upgrades without a destroy.
pub fn name_from_host(nodes: Option<&mut serde_json::Value>) {
    let Some(serde_json::Value::Array(nodes)) = nodes else { return };
    for n in nodes {
        let host = n.pointer("/ssh/0/host").or_else(|| n.pointer("/ssh/host")).cloned();
        if let (Some(obj), Some(host)) = (n.as_object_mut(), host) {
            obj.entry("name").or_insert(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_filled_from_the_host_that_identified_the_node() {
        // A single nested block is stored as an object; older states may hold a list.
        let mut nodes = serde_json::json!([
            {"address": null, "ssh": {"host": "10.0.0.1"}},
            {"address": "10.0.0.2", "ssh": [{"host": "lb2.example"}]},
            {"name": "kept", "ssh": {"host": "10.0.0.3"}}
        ]);
        name_from_host(Some(&mut nodes));
        let names: Vec<_> = nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["10.0.0.1", "lb2.example", "kept"]);
    }

    #[test]
    fn the_address_is_the_hosts_unless_set() {
        let mut n = ClusterNodeModel { name: "a".into(), address: None, ssh: ConnectionModel::default() };
        n.ssh.host = "10.0.0.1".into();
        assert_eq!(n.address(), "10.0.0.1");
        n.address = Some("10.0.1.1".into());
        n.ssh.host = "a.example".into();
        assert_eq!(n.address(), "10.0.1.1");
    }
}
