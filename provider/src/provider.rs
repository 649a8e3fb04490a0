//! The Strata provider: its configuration block and the resources it offers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::framework::model::to_model;
use crate::framework::{AnyDataSource, AnyResource, Block, Diagnostics, ProviderDefinition, Schema, Value};
use crate::resources::cluster_secrets::ClusterSecrets;
use crate::resources::connection::{self, ProviderSshModel};

/// Registry address users put in `required_providers`.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/strata-iac/strata";

pub struct StrataProvider;

/// The provider block. Each section is read by the part of the provider that uses it;
/// serde ignores the sections a struct does not name.
#[derive(Deserialize, Default)]
struct ProviderConfig {
    ssh: Option<ProviderSshModel>,
}

/// What every resource operation receives once the provider block is configured.
pub struct ProviderData {
    /// SSH defaults for node-facing resources.
    pub ssh_defaults: ProviderSshModel,
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
                .block(connection::provider_block()),
        )
    }

    async fn configure(&self, config: &Value) -> Result<Arc<dyn Any + Send + Sync>, Diagnostics> {
        let cfg: ProviderConfig = if config.is_null() { ProviderConfig::default() } else { to_model(config)? };
        // No network traffic here: plans of unrelated resources must not need any node.
        Ok(Arc::new(ProviderData { ssh_defaults: cfg.ssh.unwrap_or_default() }))
    }

    fn resources(&self) -> Vec<Arc<dyn AnyResource>> {
        vec![Arc::new(ClusterSecrets)]
    }

    fn data_sources(&self) -> Vec<Arc<dyn AnyDataSource>> {
        vec![]
    }
}
