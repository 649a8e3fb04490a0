//! A tiny real provider over the strata-plugin-server transport, with one resource,
//! `echo_value` (optional `value`, a string, `values` and `secrets`, maps of strings,
//! `secrets` sensitive), whose RPCs answer at once with what they
//! were given: the state is upgraded as stored, read back unchanged, planned as
//! proposed and applied as planned. Used by the integration tests, and by
//! scripts/bench_provider.py as the floor of a plugin provider (Terraform's own work
//! per RPC, with no work in the provider); `--debug` runs it for TF_REATTACH_PROVIDERS.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::Value as Json;

use strata_plugin_server::{init_logging, serve, ServeOptions};
use strata_proto::tfplugin6::provider_server::Provider;
use strata_proto::tfplugin6::{
    apply_resource_change, configure_provider, get_provider_schema, plan_resource_change, read_resource, schema,
    upgrade_resource_state, validate_provider_config, validate_resource_config, DynamicValue, Schema,
    ServerCapabilities,
};
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl Provider for Echo {
    async fn get_provider_schema(
        &self,
        _request: Request<get_provider_schema::Request>,
    ) -> Result<Response<get_provider_schema::Response>, Status> {
        let attribute = |name: &str, ty: &[u8], sensitive: bool| schema::Attribute {
            name: name.into(),
            r#type: ty.to_vec(),
            optional: true,
            sensitive,
            ..Default::default()
        };
        let attributes = vec![
            attribute("value", br#""string""#, false),
            attribute("values", br#"["map","string"]"#, false),
            attribute("secrets", br#"["map","string"]"#, true),
        ];
        let resource = Schema { version: 0, block: Some(schema::Block { attributes, ..Default::default() }) };
        let mut resource_schemas = HashMap::from([("echo_value".to_string(), resource)]);
        if let Ok(path) = std::env::var("STRATA_ECHO_SCHEMAS") {
            resource_schemas.extend(borrowed_schemas(&path).map_err(Status::failed_precondition)?);
        }
        tracing::info!(rpc = "GetProviderSchema", resources = 1_u64, "returning provider schema");
        Ok(Response::new(get_provider_schema::Response {
            provider: Some(Schema { version: 0, block: Some(schema::Block::default()) }),
            resource_schemas,
            server_capabilities: Some(ServerCapabilities { get_provider_schema_optional: true, ..Default::default() }),
            ..Default::default()
        }))
    }

    async fn validate_provider_config(
        &self,
        _request: Request<validate_provider_config::Request>,
    ) -> Result<Response<validate_provider_config::Response>, Status> {
        Ok(Response::new(validate_provider_config::Response::default()))
    }

    async fn configure_provider(
        &self,
        _request: Request<configure_provider::Request>,
    ) -> Result<Response<configure_provider::Response>, Status> {
        Ok(Response::new(configure_provider::Response::default()))
    }

    async fn validate_resource_config(
        &self,
        _request: Request<validate_resource_config::Request>,
    ) -> Result<Response<validate_resource_config::Response>, Status> {
        Ok(Response::new(validate_resource_config::Response::default()))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<upgrade_resource_state::Request>,
    ) -> Result<Response<upgrade_resource_state::Response>, Status> {
        // Terraform accepts the stored JSON as it is when the schema did not change.
        let json = request.into_inner().raw_state.map(|s| s.json).unwrap_or_default();
        Ok(Response::new(upgrade_resource_state::Response {
            upgraded_state: Some(DynamicValue { msgpack: Vec::new(), json }),
            ..Default::default()
        }))
    }

    async fn read_resource(
        &self,
        request: Request<read_resource::Request>,
    ) -> Result<Response<read_resource::Response>, Status> {
        let request = request.into_inner();
        Ok(Response::new(read_resource::Response {
            new_state: request.current_state,
            private: request.private,
            ..Default::default()
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<plan_resource_change::Request>,
    ) -> Result<Response<plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        Ok(Response::new(plan_resource_change::Response {
            planned_state: request.proposed_new_state,
            planned_private: request.prior_private,
            ..Default::default()
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<apply_resource_change::Request>,
    ) -> Result<Response<apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        Ok(Response::new(apply_resource_change::Response {
            new_state: request.planned_state,
            private: request.planned_private,
            ..Default::default()
        }))
    }
}

/// The resource schemas of the first provider in a `terraform providers schema -json`
/// file, each renamed `echo_<name without its provider prefix>`.
fn borrowed_schemas(path: &str) -> Result<HashMap<String, Schema>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let json: Json = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let provider = json["provider_schemas"].as_object().and_then(|p| p.values().next()).ok_or("no provider")?;
    let resources = provider["resource_schemas"].as_object().ok_or("no resource_schemas")?;
    Ok(resources
        .iter()
        .map(|(name, s)| {
            let short = name.split_once('_').map_or(name.as_str(), |(_, rest)| rest);
            let schema = Schema { version: s["version"].as_i64().unwrap_or(0), block: Some(block(&s["block"])) };
            (format!("echo_{short}"), schema)
        })
        .collect())
}

fn block(b: &Json) -> schema::Block {
    let flag = |a: &Json, k: &str| a[k].as_bool().unwrap_or(false);
    let attributes = b["attributes"].as_object().into_iter().flatten().map(|(name, a)| schema::Attribute {
        name: name.clone(),
        r#type: serde_json::to_vec(&a["type"]).unwrap_or_default(),
        required: flag(a, "required"),
        optional: flag(a, "optional"),
        computed: flag(a, "computed"),
        sensitive: flag(a, "sensitive"),
        write_only: flag(a, "write_only"),
        ..Default::default()
    });
    let block_types = b["block_types"].as_object().into_iter().flatten().map(|(name, nb)| {
        use schema::nested_block::NestingMode;
        let nesting = match nb["nesting_mode"].as_str() {
            Some("list") => NestingMode::List,
            Some("set") => NestingMode::Set,
            Some("map") => NestingMode::Map,
            Some("group") => NestingMode::Group,
            _ => NestingMode::Single,
        };
        schema::NestedBlock {
            type_name: name.clone(),
            block: Some(block(&nb["block"])),
            nesting: nesting as i32,
            min_items: nb["min_items"].as_i64().unwrap_or(0),
            max_items: nb["max_items"].as_i64().unwrap_or(0),
        }
    });
    schema::Block { attributes: attributes.collect(), block_types: block_types.collect(), ..Default::default() }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let debug = std::env::args().skip(1).any(|a| a == "--debug" || a == "-debug");
    serve(Echo, ServeOptions { provider_address: "registry.terraform.io/strata-iac/echo".into(), debug }).await
}
