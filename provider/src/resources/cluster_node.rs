//! One node of a multi-node resource (load balancer nodes, etcd members, control-plane
//! nodes, workers): `name` is its identity, what state, plans and renames key on;
//! `address` is what the cluster and the other nodes use; `ssh {}` is how Terraform
//! reaches it. Changing `ssh` changes nothing on the node, and a node is never
//! identified by the text of `ssh.host` or by its position in the list.

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
/// A Kubernetes Node name (`nodeRegistration.name`).
pub const DNS_SUBDOMAIN: (&str, &str) =
    ("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", "a DNS subdomain (lower-case letters, digits, '-', '.')");

/// What `name` and `address` are to one kind of node. The shape (and the model) is
/// shared; the rules are the resource's, because the name and the address become
/// something on the node whose own rules bound them (an etcd `--name` in certificates,
/// a Kubernetes Node name, an API server's advertise address, a kubelet's `--node-ip`).
pub struct Identity {
    /// `name`'s pattern and how to say it.
    pub name_rule: (&'static str, &'static str),
    pub name_description: &'static str,
    /// Set where the address is the node's place in the cluster (etcd's peer URL, the
    /// advertise address): it is then never taken from `ssh.host`, so that changing how
    /// Terraform reaches a node can never move it in the cluster.
    pub address_required: bool,
    /// What the address is for, in the message that refuses one that is not an IP.
    pub address_for: &'static str,
    pub address_description: String,
    /// Both are fixed once the node joined and a change replaces the resource (a
    /// worker's Node name and `--node-ip`), instead of being refused or renamed at plan.
    pub replace_on_change: bool,
}

impl Identity {
    /// A node named by [`NAME`] whose optional `address` means `address_default` when unset.
    pub fn named(address_default: &str) -> Identity {
        Identity {
            name_rule: NAME,
            name_description: "The node's identity: what state and plans key on. Renaming a node changes nothing on \
                               a machine that keeps its address; a node is never identified by `ssh.host` or by \
                               its position.",
            address_required: false,
            address_for: "",
            address_description: format!("The node's cluster-facing IP address ({address_default})."),
            replace_on_change: false,
        }
    }

    fn attributes(&self) -> [Attribute; 2] {
        let mut name = Attribute::required("name", Type::String)
            .validate(Validator::Matches(self.name_rule.0, self.name_rule.1))
            .description(self.name_description);
        let mut address = match self.address_required {
            true => Attribute::required("address", Type::String),
            false => Attribute::optional("address", Type::String),
        };
        if self.replace_on_change {
            name = name.requires_replace();
            address = address.requires_replace();
        }
        address =
            address.validate(Validator::IpAddress(self.address_for)).description(self.address_description.clone());
        [name, address]
    }
}

/// A node block: `what` says what the node is for and how its changes run.
pub fn block(what: &str, identity: &Identity) -> Block {
    add_to(Block::new(what), identity)
}

/// Adds `name`, `address` and `ssh` to `block`: a node block, or the top level of a
/// resource that is one node (a worker).
pub fn add_to(block: Block, identity: &Identity) -> Block {
    let [name, address] = identity.attributes();
    block.attribute(name).attribute(address).block(ssh_block())
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

/// The checks of a resource that is one node (a worker): its `ssh` block.
pub fn validate_single(config: &Value, diags: &mut Diagnostics) {
    connection::validate(config.attr("ssh"), &AttributePath::root("ssh"), diags);
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

    use crate::framework::json::{decode, Extra};
    use crate::framework::model::{from_model, to_model};
    use crate::framework::{Mode, Resource, Schema};
    use crate::resources::worker::Worker;
    use crate::resources::{control_plane::ControlPlane, etcd_cluster::EtcdCluster, load_balancer::LoadBalancer};

    /// The block that holds a resource's node identity: its node list's, or its top level.
    fn node_block(schema: &Schema, list: Option<&str>) -> Block {
        match list {
            Some(name) => schema.block.find_block(name).expect("the node list").block.clone(),
            None => schema.block.clone(),
        }
    }

    #[test]
    fn every_multi_node_resource_has_the_same_node_shape() {
        let shared = ssh_block();
        for (resource, schema, list, address_mode, version) in [
            ("load_balancer", LoadBalancer.schema(), Some("node"), Mode::Optional, 1),
            ("etcd_cluster", EtcdCluster.schema(), Some("member"), Mode::Required, 0),
            ("control_plane", ControlPlane.schema(), Some("node"), Mode::Required, 0),
            ("worker", Worker.schema(), None, Mode::Optional, 0),
            ("k3s_cluster", crate::resources::k3s_cluster::K3sCluster.schema(), Some("server"), Mode::Optional, 0),
            ("k3s_agent", crate::resources::k3s_agent::K3sAgent.schema(), None, Mode::Optional, 0),
        ] {
            let b = node_block(&schema, list);
            let name = b.find_attribute("name").unwrap_or_else(|| panic!("{resource}: name"));
            assert_eq!((name.mode, &name.ty), (Mode::Required, &Type::String), "{resource}");
            let address = b.find_attribute("address").unwrap_or_else(|| panic!("{resource}: address"));
            assert_eq!((address.mode, &address.ty), (address_mode, &Type::String), "{resource}");
            assert!(address.validators.iter().any(|v| matches!(v, Validator::IpAddress(_))), "{resource}");
            let ssh = b.find_block("ssh").unwrap_or_else(|| panic!("{resource}: ssh"));
            assert_eq!(ssh.value_type(), shared.value_type(), "{resource}");
            assert_eq!(ssh.block.description, shared.block.description, "{resource}");
            // Changing how Terraform reaches a node never replaces anything.
            assert!(!ssh.requires_replace && ssh.block.attributes.iter().all(|a| !a.requires_replace), "{resource}");
            // Where the node list is, the identity is what its items are keyed by.
            if list.is_some() {
                assert!(!name.requires_replace && !address.requires_replace, "{resource}");
            }
            // The stored shape is what it was: no state upgrade is needed.
            assert_eq!(schema.version, version, "{resource}");
        }
        // A worker's Node name and --node-ip are fixed when it joins.
        let w = Worker.schema();
        assert!(w.block.find_attribute("name").unwrap().requires_replace);
        assert!(w.block.find_attribute("address").unwrap().requires_replace);
    }

    /// State as the resource stored it before its nodes shared this model: it reads into
    /// the model and is written back unchanged.
    fn round_trips<R: Resource>(r: &R, stored: serde_json::Value) {
        let ty = r.schema().value_type();
        let v = decode(&stored, &ty, Extra::Reject).unwrap();
        let m: R::Model = to_model(&v).unwrap();
        assert_eq!(from_model(&m, &ty).unwrap(), v, "{}", r.name());
    }

    #[test]
    fn state_stored_before_the_shared_model_reads_and_writes_back_unchanged() {
        let ssh = |host: &str| serde_json::json!({"host": host, "user": "ops", "port": 2222, "private_key_file": "/k"});
        round_trips(
            &EtcdCluster,
            serde_json::json!({
                "id": "abc", "ca_cert": "C", "ca_key": "K", "data_dir": "/var/lib/etcd",
                "member": [
                    {"name": "etcd1", "address": "10.0.0.1", "ssh": ssh("10.0.0.1")},
                    {"name": "etcd2", "address": "10.0.0.2", "ssh": ssh("etcd2.example")}
                ]
            }),
        );
        round_trips(
            &ControlPlane,
            serde_json::json!({
                "endpoint": "10.0.0.100:6443", "kubernetes_version": "v1.35.0", "ca_cert": "C", "ca_key": "K",
                "front_proxy_ca_cert": "C", "front_proxy_ca_key": "K", "service_account_public_key": "P",
                "service_account_private_key": "K",
                "etcd": {"endpoints": ["https://10.0.0.1:2379"], "ca_cert": "C", "client_cert": "C", "client_key": "K"},
                "node": [{"name": "cp1", "address": "10.0.0.11", "ssh": ssh("cp1.example")}]
            }),
        );
        round_trips(
            &Worker,
            serde_json::json!({
                "id": "w1", "name": "w1", "address": null, "kubernetes_version": "v1.35.0", "kubeconfig": "K",
                "join": {"endpoint": "10.0.0.100:6443", "ca_cert_hash": "sha256:00", "token": "t", "token_expires_at": "x"},
                "taint": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], "joined": true,
                "ssh": ssh("10.0.0.21")
            }),
        );
    }
}
