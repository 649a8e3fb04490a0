//! The Strata provider: its configuration block and the resources it offers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::data_sources::{containers::Containers, kubernetes_images::KubernetesImages, pve_nodes::PveNodes, vms::Vms};
use crate::framework::model::to_model;
use crate::framework::{
    AnyDataSource, AnyResource, AttributePath, Block, Diagnostics, PlanChange, ProviderDefinition, Schema, Value,
};
use crate::node::SshAccess;
use crate::proxmox::{self, ProxmoxAccess};
use crate::resources::cluster_secrets::ClusterSecrets;
use crate::resources::connection::{self, ProviderSshModel};
use crate::resources::container::Container;
use crate::resources::control_plane::ControlPlane;
use crate::resources::etcd_cluster::EtcdCluster;
use crate::resources::image_registry::ImageRegistry;
use crate::resources::k3s_agent::K3sAgent;
use crate::resources::k3s_cluster::K3sCluster;
use crate::resources::load_balancer::LoadBalancer;
use crate::resources::nfs_export::NfsExport;
use crate::resources::node_config::NodeConfig;
use crate::resources::vm::Vm;
use crate::resources::worker::Worker;

/// Registry address users put in `required_providers`.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/strata-iac/strata";

/// The provider's version: the workspace's `version` in Cargo.toml, the one place it is
/// set. `--version` prints it, the start-up log line carries it, and scripts/release.sh
/// names the release files after it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `terraform-provider-strata --version` prints. The release script reads the
/// version and the protocol from it (the registry manifest's `protocol_versions` is the
/// protocol the server speaks, as `MAJOR.0`), so both come from the binary it packs.
pub fn version_text() -> String {
    format!(
        "terraform-provider-strata {VERSION}\nplugin protocol {}\n",
        strata_plugin_server::handshake::APP_PROTOCOL_VERSION
    )
}

pub struct StrataProvider;

/// The provider block. Each section is read by the part of the provider that uses it;
/// serde ignores the sections a struct does not name.
#[derive(Deserialize, Default)]
struct ProviderConfig {
    ssh: Option<ProviderSshModel>,
}

/// What every resource operation receives once the provider block is configured.
pub struct ProviderData {
    /// SSH defaults and the connection pool node-facing resources share.
    pub ssh: SshAccess,
    /// Proxmox VE API access: not configured, known only after apply, or a client.
    pub proxmox: ProxmoxAccess,
}

#[async_trait]
impl ProviderDefinition for StrataProvider {
    fn type_name(&self) -> &'static str {
        "strata"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new("Strata rebuilds on-premises Kubernetes platforms on Proxmox VE from code.")
                // ssh: defaults for node-facing resources.
                .block(connection::provider_block())
                // proxmox: API access for strata_vm and the Proxmox data sources.
                .block(proxmox::proxmox_block()),
        )
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        proxmox::validate(config, diags);
        connection::validate(config.attr("ssh"), &AttributePath::root("ssh"), diags);
    }

    async fn configure(&self, config: &Value) -> Result<Arc<dyn Any + Send + Sync>, Diagnostics> {
        let cfg: ProviderConfig = if config.is_null() { ProviderConfig::default() } else { to_model(config)? };
        // No network traffic here: plans of unrelated resources must not need any node.
        let proxmox = proxmox::configure(config)?;
        Ok(Arc::new(ProviderData { ssh: SshAccess::new(cfg.ssh.unwrap_or_default()), proxmox }))
    }

    /// Every node-facing resource: a write-only `ssh.private_key` that is the only key
    /// gets a warning at plan, before a refresh or destroy finds no key.
    fn modify_plan(&self, change: &mut PlanChange) {
        let data = change.provider_data::<ProviderData>();
        let defaults = data.as_ref().map(|d| &d.ssh.defaults);
        connection::write_only_key_warnings(&change.config, defaults, &mut change.diagnostics);
    }

    fn resources(&self) -> Vec<Arc<dyn AnyResource>> {
        vec![
            Arc::new(ClusterSecrets),
            Arc::new(Container),
            Arc::new(EtcdCluster),
            Arc::new(ControlPlane),
            Arc::new(LoadBalancer),
            Arc::new(ImageRegistry),
            Arc::new(K3sCluster),
            Arc::new(K3sAgent),
            Arc::new(NfsExport),
            Arc::new(NodeConfig),
            Arc::new(Vm),
            Arc::new(Worker),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn AnyDataSource>> {
        vec![Arc::new(Containers), Arc::new(KubernetesImages), Arc::new(PveNodes), Arc::new(Vms)]
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    /// The version has one home, the workspace's Cargo.toml: the provider inherits it
    /// (`version.workspace = true`), so the release named after it is what it reports.
    #[test]
    fn the_reported_version_is_the_workspace_version() {
        let root = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
        let workspace = root.split("[workspace.package]").nth(1).expect("[workspace.package] in Cargo.toml");
        let line = workspace.lines().find(|l| l.trim_start().starts_with("version")).expect("a version");
        let version = line.split('"').nth(1).expect("a quoted version");
        assert_eq!(VERSION, version);
        assert!(version_text().starts_with(&format!("terraform-provider-strata {version}\n")), "{}", version_text());
        assert!(version_text().contains("plugin protocol 6\n"), "{}", version_text());
    }
}
