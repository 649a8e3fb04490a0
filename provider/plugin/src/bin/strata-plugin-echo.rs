//! A tiny real provider over the strata-plugin-server transport. It answers
//! GetProviderSchema with a trivial schema; every other RPC is Unimplemented.
//! Used by the integration tests; `--debug` runs it for TF_REATTACH_PROVIDERS.

use std::collections::HashMap;
use std::process::ExitCode;

use strata_plugin_server::{init_logging, serve, ServeOptions};
use strata_proto::tfplugin6::provider_server::Provider;
use strata_proto::tfplugin6::{get_provider_schema, schema, Schema};
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl Provider for Echo {
    async fn get_provider_schema(
        &self,
        _request: Request<get_provider_schema::Request>,
    ) -> Result<Response<get_provider_schema::Response>, Status> {
        let value = schema::Attribute {
            name: "value".into(),
            r#type: br#""string""#.to_vec(),
            optional: true,
            ..Default::default()
        };
        let resource =
            Schema { version: 0, block: Some(schema::Block { attributes: vec![value], ..Default::default() }) };
        tracing::info!(rpc = "GetProviderSchema", resources = 1_u64, "returning provider schema");
        Ok(Response::new(get_provider_schema::Response {
            provider: Some(Schema { version: 0, block: Some(schema::Block::default()) }),
            resource_schemas: HashMap::from([("echo_value".to_string(), resource)]),
            ..Default::default()
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let debug = std::env::args().skip(1).any(|a| a == "--debug" || a == "-debug");
    serve(Echo, ServeOptions { provider_address: "registry.terraform.io/strata-iac/echo".into(), debug }).await
}
