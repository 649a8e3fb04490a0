//! The tfplugin6 Provider service: decodes requests, drives the framework, encodes
//! responses. Resources never see anything from here.
//!
//! Every RPC runs in a debug-level span named after it; with `TF_LOG_PROVIDER=debug`
//! each one logs its duration as it ends (see strata-plugin-server's logging), which
//! is what scripts/bench_provider.py adds up per RPC.

mod convert;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use strata_proto::tfplugin6 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::framework::validate::validate_block;
use crate::framework::{
    AnyDataSource, AnyResource, AttributePath, Context, Diagnostic, Diagnostics, ProviderDefinition, Schema, Type,
};

type Data = Arc<dyn Any + Send + Sync>;

pub struct ProviderService {
    definition: Arc<dyn ProviderDefinition>,
    provider_schema: Schema,
    resources: HashMap<String, Arc<dyn AnyResource>>,
    /// Each resource's value type, computed once: every RPC decodes or encodes with it.
    resource_types: HashMap<String, Type>,
    data_sources: HashMap<String, Arc<dyn AnyDataSource>>,
    configured: RwLock<Option<Data>>,
    /// The parent of every operation's token. StopProvider cancels it (ending what is in
    /// flight) and puts a fresh one in its place, so later operations run normally: a
    /// reattached provider outlives many Ctrl-Cs.
    stop: std::sync::Mutex<CancellationToken>,
}

impl ProviderService {
    pub fn new(definition: Arc<dyn ProviderDefinition>) -> ProviderService {
        let prefix = definition.type_name();
        let resources: HashMap<_, _> =
            definition.resources().into_iter().map(|r| (format!("{prefix}_{}", r.name()), r)).collect();
        let resource_types = resources.iter().map(|(k, r)| (k.clone(), r.schema().value_type())).collect();
        let data_sources =
            definition.data_sources().into_iter().map(|d| (format!("{prefix}_{}", d.name()), d)).collect();
        ProviderService {
            provider_schema: definition.schema(),
            definition,
            resources,
            resource_types,
            data_sources,
            configured: RwLock::new(None),
            stop: std::sync::Mutex::new(CancellationToken::new()),
        }
    }

    /// A context for one operation, with its own token under the current stop token.
    fn context(&self, type_name: &str, operation: &'static str) -> Context {
        let data = self.configured.read().expect("configured lock").clone();
        let token = self.stop.lock().expect("stop lock").child_token();
        Context::new(token, data).for_operation(type_name, operation)
    }

    /// The resource of that type name and its value type.
    fn resource(&self, type_name: &str) -> Result<(&Arc<dyn AnyResource>, &Type), Diagnostics> {
        match (self.resources.get(type_name), self.resource_types.get(type_name)) {
            (Some(r), Some(ty)) => Ok((r, ty)),
            _ => Err(unknown_type("resource", type_name)),
        }
    }

    fn data_source(&self, type_name: &str) -> Result<&Arc<dyn AnyDataSource>, Diagnostics> {
        self.data_sources.get(type_name).ok_or_else(|| unknown_type("data source", type_name))
    }

    /// Runs a read-only operation until it ends or its context is cancelled. After a
    /// cancel the operation gets a short grace to stop on its own (remote commands are
    /// killed, and its error names the step it was at); then it is abandoned.
    async fn cancellable<F: std::future::Future<Output = T>, T>(ctx: &Context, f: F) -> Result<T, Diagnostics> {
        tokio::pin!(f);
        tokio::select! {
            v = &mut f => return Ok(v),
            _ = ctx.cancel.cancelled() => {}
        }
        tokio::time::timeout(STOP_GRACE, f).await.map_err(|_| {
            Diagnostic::error(
                "Operation cancelled",
                format!("{} {}: {}.", ctx.resource_type(), ctx.operation(), ctx.stop_reason().unwrap_or_default()),
            )
            .into()
        })
    }
}

/// How long a cancelled read may take to wind down before it is abandoned.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn unknown_type(kind: &str, name: &str) -> Diagnostics {
    Diagnostic::error(format!("Unknown {kind} type"), format!("This provider has no {kind} type {name:?}.")).into()
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    #[tracing::instrument(level = "debug", name = "GetMetadata", skip_all)]
    async fn get_metadata(
        &self,
        _req: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: self
                .resources
                .keys()
                .map(|t| pb::get_metadata::ResourceMetadata { type_name: t.clone() })
                .collect(),
            data_sources: self
                .data_sources
                .keys()
                .map(|t| pb::get_metadata::DataSourceMetadata { type_name: t.clone() })
                .collect(),
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", name = "GetProviderSchema", skip_all)]
    async fn get_provider_schema(
        &self,
        _req: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(convert::schema(&self.provider_schema)),
            resource_schemas: self.resources.iter().map(|(k, r)| (k.clone(), convert::schema(&r.schema()))).collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|(k, d)| (k.clone(), convert::schema(&d.schema())))
                .collect(),
            server_capabilities: Some(capabilities()),
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", name = "GetResourceIdentitySchemas", skip_all)]
    async fn get_resource_identity_schemas(
        &self,
        _req: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        Ok(Response::new(pb::get_resource_identity_schemas::Response::default()))
    }

    #[tracing::instrument(level = "debug", name = "ValidateProviderConfig", skip_all)]
    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        match convert::decode(req.config.as_ref(), &self.provider_schema.value_type(), "provider configuration") {
            Ok(config) => {
                validate_block(&self.provider_schema.block, &config, &AttributePath::default(), &mut diags);
                self.definition.validate(&config, &mut diags);
            }
            Err(d) => diags.extend(d),
        }
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: convert::diagnostics(&diags) }))
    }

    #[tracing::instrument(level = "debug", name = "ConfigureProvider", skip_all, fields(terraform_version = %req.get_ref().terraform_version))]
    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let req = req.into_inner();
        // A write-only provider argument is not refused on a client without write-only
        // support (unlike a resource's): provider configuration never enters state, and
        // Terraform 1.6.6 and 1.10.5 were seen to ignore the flag and apply without
        // storing the value (docs/guides/terraform-versions.md).
        let result =
            match convert::decode(req.config.as_ref(), &self.provider_schema.value_type(), "provider configuration") {
                Ok(config) => self.definition.configure(&config).await,
                Err(d) => Err(d),
            };
        let diags = match result {
            Ok(data) => {
                *self.configured.write().expect("configured lock") = Some(data);
                Diagnostics::new()
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response { diagnostics: convert::diagnostics(&diags) }))
    }

    #[tracing::instrument(level = "debug", name = "ValidateResourceConfig", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let req = req.into_inner();
        let write_only = write_only_allowed(req.client_capabilities.as_ref());
        let diags = self.resource(&req.type_name).and_then(|(r, ty)| {
            let config = convert::decode(req.config.as_ref(), ty, "configuration")?;
            Ok(r.validate(&config, write_only))
        });
        let diags = diags.unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: convert::diagnostics(&diags) }))
    }

    #[tracing::instrument(level = "debug", name = "ValidateDataResourceConfig", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let req = req.into_inner();
        let diags = self.data_source(&req.type_name).and_then(|d| {
            let config = convert::decode(req.config.as_ref(), &d.schema().value_type(), "configuration")?;
            Ok(d.validate(&config))
        });
        let diags = diags.unwrap_or_else(|d| d);
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: convert::diagnostics(&diags) }))
    }

    #[tracing::instrument(level = "debug", name = "UpgradeResourceState", skip_all, fields(type_name = %req.get_ref().type_name, version = req.get_ref().version))]
    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let req = req.into_inner();
        let result = self.resource(&req.type_name).and_then(|(r, ty)| {
            let raw = req.raw_state.as_ref().map(|s| s.json.as_slice()).unwrap_or_default();
            if raw.is_empty() {
                return Err(Diagnostic::error(
                    "Unsupported state format",
                    "The stored state has no JSON form (flatmap state from Terraform 0.11 is not supported).",
                )
                .into());
            }
            let outcome = r.upgrade(req.version, raw);
            if outcome.diagnostics.has_errors() {
                return Err(outcome.diagnostics);
            }
            convert::encode(&outcome.value, ty)
        });
        Ok(Response::new(match result {
            Ok(v) => pb::upgrade_resource_state::Response { upgraded_state: Some(v), diagnostics: vec![] },
            Err(d) => {
                pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: convert::diagnostics(&d) }
            }
        }))
    }

    #[tracing::instrument(level = "debug", name = "ReadResource", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let req = req.into_inner();
        let mut diags = Diagnostics::new();
        let mut new_state = req.current_state.clone();
        if let Ok((r, ty)) = self.resource(&req.type_name).map_err(|d| diags.extend(d)) {
            match convert::decode(req.current_state.as_ref(), ty, "state") {
                Ok(state) => {
                    let ctx = self.context(&req.type_name, "read");
                    let read = Self::cancellable(&ctx, r.read(&ctx, &state)).await;
                    match read {
                        Ok(outcome) => {
                            diags.extend(outcome.diagnostics);
                            match convert::encode(&outcome.value, ty) {
                                Ok(v) => new_state = Some(v),
                                Err(d) => diags.extend(d),
                            }
                        }
                        Err(d) => diags.extend(d),
                    }
                }
                Err(d) => diags.extend(d),
            }
        }
        Ok(Response::new(pb::read_resource::Response {
            new_state,
            diagnostics: convert::diagnostics(&diags),
            private: req.private,
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", name = "PlanResourceChange", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let req = req.into_inner();
        let result = self.resource(&req.type_name).and_then(|(r, ty)| {
            let prior = convert::decode(req.prior_state.as_ref(), ty, "prior state")?;
            let proposed = convert::decode(req.proposed_new_state.as_ref(), ty, "proposed state")?;
            let config = convert::decode(req.config.as_ref(), ty, "configuration")?;
            // Values unknown at validation time may be known now: check them again.
            let write_only = write_only_allowed(req.client_capabilities.as_ref());
            let mut diags = if config.is_null() { Diagnostics::new() } else { r.validate(&config, write_only) };
            let mut change = r.plan(&self.context(&req.type_name, "plan"), &prior, &proposed, &config);
            if !change.planned.is_null() {
                self.definition.modify_plan(&mut change);
            }
            diags.extend(change.diagnostics);
            if diags.has_errors() {
                return Err(diags);
            }
            let planned = convert::encode(&change.planned, ty)?;
            Ok((planned, change.requires_replace, diags))
        });
        Ok(Response::new(match result {
            Ok((planned, replace, diags)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: replace.iter().map(convert::path).collect(),
                planned_private: req.prior_private,
                diagnostics: convert::diagnostics(&diags),
                ..Default::default()
            },
            Err(d) => {
                pb::plan_resource_change::Response { diagnostics: convert::diagnostics(&d), ..Default::default() }
            }
        }))
    }

    #[tracing::instrument(level = "debug", name = "ApplyResourceChange", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let req = req.into_inner();
        let (r, ty) = match self.resource(&req.type_name) {
            Ok(found) => found,
            Err(d) => {
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: req.prior_state,
                    diagnostics: convert::diagnostics(&d),
                    ..Default::default()
                }))
            }
        };
        let decoded = convert::decode(req.prior_state.as_ref(), ty, "prior state").and_then(|p| {
            Ok((
                p,
                convert::decode(req.planned_state.as_ref(), ty, "planned state")?,
                convert::decode(req.config.as_ref(), ty, "configuration")?,
            ))
        });
        let (prior, planned, config) = match decoded {
            Ok(v) => v,
            Err(d) => {
                return Ok(Response::new(pb::apply_resource_change::Response {
                    new_state: req.prior_state,
                    diagnostics: convert::diagnostics(&d),
                    ..Default::default()
                }))
            }
        };
        // Not raced against StopProvider: a resource decides itself where it can stop
        // without leaving a half-made object, through the context's token.
        let op = if planned.is_null() {
            "delete"
        } else if prior.is_null() {
            "create"
        } else {
            "update"
        };
        let outcome = r.apply(&self.context(&req.type_name, op), &prior, &planned, &config).await;
        let mut diags = outcome.diagnostics;
        let new_state = match convert::encode(&outcome.value, ty) {
            Ok(v) => Some(v),
            Err(d) => {
                diags.extend(d);
                req.prior_state
            }
        };
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: convert::diagnostics(&diags),
            ..Default::default()
        }))
    }

    #[tracing::instrument(level = "debug", name = "ImportResourceState", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let req = req.into_inner();
        let result = match self.resource(&req.type_name) {
            Ok((r, ty)) => {
                let ctx = self.context(&req.type_name, "import");
                match Self::cancellable(&ctx, r.import(&ctx, &req.id)).await {
                    Ok(outcome) if !outcome.diagnostics.has_errors() => {
                        convert::encode(&outcome.value, ty).map(|state| (state, outcome.diagnostics))
                    }
                    Ok(outcome) => Err(outcome.diagnostics),
                    Err(d) => Err(d),
                }
            }
            Err(d) => Err(d),
        };
        Ok(Response::new(match result {
            Ok((state, diags)) => pb::import_resource_state::Response {
                imported_resources: vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name,
                    state: Some(state),
                    ..Default::default()
                }],
                diagnostics: convert::diagnostics(&diags),
                ..Default::default()
            },
            Err(d) => {
                pb::import_resource_state::Response { diagnostics: convert::diagnostics(&d), ..Default::default() }
            }
        }))
    }

    #[tracing::instrument(level = "debug", name = "ReadDataSource", skip_all, fields(type_name = %req.get_ref().type_name))]
    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let req = req.into_inner();
        let result = match self.data_source(&req.type_name) {
            Ok(d) => {
                let ty = d.schema().value_type();
                match convert::decode(req.config.as_ref(), &ty, "configuration") {
                    Ok(config) => {
                        let ctx = self.context(&req.type_name, "read");
                        match Self::cancellable(&ctx, d.read(&ctx, &config)).await {
                            Ok(o) if !o.diagnostics.has_errors() => {
                                convert::encode(&o.value, &ty).map(|s| (s, o.diagnostics))
                            }
                            Ok(o) => Err(o.diagnostics),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        Ok(Response::new(match result {
            Ok((state, diags)) => pb::read_data_source::Response {
                state: Some(state),
                diagnostics: convert::diagnostics(&diags),
                ..Default::default()
            },
            Err(d) => pb::read_data_source::Response { diagnostics: convert::diagnostics(&d), ..Default::default() },
        }))
    }

    async fn stop_provider(
        &self,
        _req: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        tracing::info!("StopProvider: cancelling in-flight operations");
        let mut stop = self.stop.lock().expect("stop lock");
        stop.cancel();
        *stop = CancellationToken::new();
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}

/// Whether the client announced write-only attributes (Terraform 1.11+). Terraform
/// before 1.11 sends no capabilities at all, which means "not allowed".
fn write_only_allowed(c: Option<&pb::ClientCapabilities>) -> bool {
    let allowed = c.is_some_and(|c| c.write_only_attributes_allowed);
    tracing::debug!(write_only_allowed = allowed, "client capabilities");
    allowed
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        // Terraform may reuse a cached schema instead of asking every process for it.
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: false,
    }
}

#[cfg(test)]
mod tests;
