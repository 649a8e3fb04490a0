//! The Strata provider: its configuration block and the resources it offers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use crate::framework::{AnyDataSource, AnyResource, Block, Diagnostics, ProviderDefinition, Schema, Value};
use crate::resources::cluster_secrets::ClusterSecrets;

/// Registry address users put in `required_providers`.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/strata-iac/strata";

pub struct StrataProvider;

/// What every resource operation receives once the provider block is configured.
#[derive(Default)]
pub struct ProviderData {}

#[async_trait]
impl ProviderDefinition for StrataProvider {
    fn type_name(&self) -> &'static str {
        "strata"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new("Strata rebuilds on-premises Kubernetes platforms on Proxmox VE from code."),
        )
    }

    async fn configure(&self, _config: &Value) -> Result<Arc<dyn Any + Send + Sync>, Diagnostics> {
        Ok(Arc::new(ProviderData::default()))
    }

    fn resources(&self) -> Vec<Arc<dyn AnyResource>> {
        vec![Arc::new(ClusterSecrets)]
    }

    fn data_sources(&self) -> Vec<Arc<dyn AnyDataSource>> {
        vec![]
    }
}
