//! The traits a resource and a data source implement, and their type-erased forms the
//! gRPC layer drives.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::diagnostics::{AttributePath, Diagnostic, Diagnostics};
use super::json::{self, Extra};
use super::model::{from_model, to_model};
use super::plan::{self, PlanChange, ProviderHandle};
use super::schema::Schema;
use super::validate::validate_block;
use super::value::Value;

/// What every operation gets: the configured provider's data, what is being done (for
/// messages and logs), and a cancellation token that fires when Terraform sends
/// StopProvider (Ctrl-C) or when the operation's time limit (`timeouts`) runs out.
/// Each operation has its own token: a stop ends what is in flight, nothing after it.
#[derive(Clone)]
pub struct Context {
    pub cancel: CancellationToken,
    data: Option<Arc<dyn Any + Send + Sync>>,
    type_name: String,
    operation: &'static str,
    stop: Arc<std::sync::Mutex<Option<String>>>,
}

impl Context {
    pub fn new(cancel: CancellationToken, data: Option<Arc<dyn Any + Send + Sync>>) -> Context {
        Context { cancel, data, type_name: String::new(), operation: "", stop: Default::default() }
    }

    /// A context with no provider data and its own token (tests, tools).
    pub fn detached() -> Context {
        Context::new(CancellationToken::new(), None)
    }

    /// Names the operation, e.g. (`strata_vm`, `create`).
    pub fn for_operation(mut self, type_name: impl Into<String>, operation: &'static str) -> Context {
        self.type_name = type_name.into();
        self.operation = operation;
        self
    }

    /// The resource or data source type, e.g. `strata_nfs_export` (empty outside one).
    pub fn resource_type(&self) -> &str {
        &self.type_name
    }

    /// `create`, `read`, `update`, `delete`, `import` (empty outside one).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// Cancels the operation, recording why (first reason wins).
    pub fn stop(&self, reason: impl Into<String>) {
        let mut r = self.stop.lock().expect("stop reason");
        if r.is_none() {
            *r = Some(reason.into());
        }
        drop(r);
        self.cancel.cancel();
    }

    /// Why the token fired, e.g. "timed out after 5m (timeouts.create)" or "cancelled:
    /// Terraform asked the provider to stop"; `None` while it has not.
    pub fn stop_reason(&self) -> Option<String> {
        if !self.cancel.is_cancelled() {
            return None;
        }
        Some(
            self.stop
                .lock()
                .expect("stop reason")
                .clone()
                .unwrap_or_else(|| "cancelled: Terraform asked the provider to stop".to_string()),
        )
    }

    /// Whether the provider block has been configured in this process.
    pub fn is_configured(&self) -> bool {
        self.data.is_some()
    }

    /// The provider's configured data (clients, defaults).
    pub fn provider_data<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Diagnostics> {
        self.data.clone().and_then(|d| d.downcast::<T>().ok()).ok_or_else(|| {
            Diagnostic::error("Provider not configured", "The provider block was not configured before use.").into()
        })
    }
}

/// A failed create or update. `state` is what exists despite the failure: Terraform
/// records it as tainted instead of losing track of a half-made object.
#[derive(Debug)]
pub struct Failure<M> {
    pub state: Option<M>,
    pub diagnostics: Diagnostics,
}

impl<M> Failure<M> {
    pub fn with_state(state: M, diagnostics: impl Into<Diagnostics>) -> Failure<M> {
        Failure { state: Some(state), diagnostics: diagnostics.into() }
    }
}

impl<M> From<Diagnostics> for Failure<M> {
    fn from(diagnostics: Diagnostics) -> Failure<M> {
        Failure { state: None, diagnostics }
    }
}
impl<M> From<Diagnostic> for Failure<M> {
    fn from(d: Diagnostic) -> Failure<M> {
        Failure { state: None, diagnostics: d.into() }
    }
}
impl<M> From<anyhow::Error> for Failure<M> {
    fn from(e: anyhow::Error) -> Failure<M> {
        Failure { state: None, diagnostics: e.into() }
    }
}

pub type ApplyResult<M> = Result<M, Failure<M>>;

#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The resource's data, field names equal to schema names.
    type Model: Serialize + DeserializeOwned + Send + Sync;

    /// Type name without the provider prefix, e.g. `cluster_secrets`.
    fn name(&self) -> &'static str;
    fn schema(&self) -> Schema;

    /// Checks across attributes (single-attribute checks belong in schema validators).
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}

    /// Refines the generic plan: mark computed values that will change as unknown,
    /// refuse impossible changes, force replacement. `plan.provider_data()` gives the
    /// configured provider (no network calls at plan time unless unavoidable).
    fn modify_plan(&self, _plan: &mut PlanChange) {}

    /// How `terraform import` identifies an object of this type, for the docs (e.g.
    /// "`node/vm_id`, e.g. `pve1/101`"); `None` when import is not supported.
    fn import_id(&self) -> Option<&'static str> {
        None
    }

    async fn create(&self, ctx: &Context, planned: Self::Model) -> ApplyResult<Self::Model>;
    /// `None` when the object no longer exists.
    async fn read(&self, ctx: &Context, state: Self::Model) -> Result<Option<Self::Model>, Diagnostics>;
    async fn update(&self, ctx: &Context, prior: Self::Model, planned: Self::Model) -> ApplyResult<Self::Model>;
    async fn delete(&self, ctx: &Context, state: Self::Model) -> Result<(), Diagnostics>;

    async fn import(&self, _ctx: &Context, _id: &str) -> Result<Self::Model, Diagnostics> {
        Err(Diagnostic::error("Import not supported", format!("strata_{} cannot be imported.", self.name())).into())
    }

    /// Rewrites state stored by an older schema version into the current shape.
    fn upgrade_state(&self, _from_version: i64, raw: Json) -> Result<Json, Diagnostics> {
        Ok(raw)
    }
}

#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    type Model: Serialize + DeserializeOwned + Send + Sync;
    fn name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    async fn read(&self, ctx: &Context, config: Self::Model) -> Result<Self::Model, Diagnostics>;
}

/// The outcome of an operation at the value level: a new value and diagnostics.
pub struct Outcome {
    pub value: Value,
    pub diagnostics: Diagnostics,
}

impl Outcome {
    fn failed(value: Value, diagnostics: Diagnostics) -> Outcome {
        Outcome { value, diagnostics }
    }
}

/// A resource with its model erased, as the gRPC layer sees it.
#[async_trait]
pub trait AnyResource: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: &Value) -> Diagnostics;
    fn plan(&self, ctx: &Context, prior: &Value, proposed: &Value, config: &Value) -> PlanChange;
    fn import_id(&self) -> Option<&'static str>;
    async fn apply(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome;
    async fn read(&self, ctx: &Context, state: &Value) -> Outcome;
    async fn import(&self, ctx: &Context, id: &str) -> Outcome;
    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Outcome;
}

#[async_trait]
impl<R: Resource> AnyResource for R {
    fn name(&self) -> &'static str {
        Resource::name(self)
    }
    fn schema(&self) -> Schema {
        Resource::schema(self)
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        validate_block(&Resource::schema(self).block, config, &AttributePath::default(), &mut diags);
        Resource::validate(self, config, &mut diags);
        diags
    }

    fn import_id(&self) -> Option<&'static str> {
        Resource::import_id(self)
    }

    fn plan(&self, ctx: &Context, prior: &Value, proposed: &Value, config: &Value) -> PlanChange {
        let mut change = plan::plan(&Resource::schema(self), prior, proposed, config);
        change.provider = ctx.data.clone().map(ProviderHandle);
        if !change.planned.is_null() {
            self.modify_plan(&mut change);
        }
        change
    }

    async fn apply(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome {
        let ty = Resource::schema(self).value_type();
        let to_value = |m: &R::Model| from_model(m, &ty);
        if planned.is_null() {
            let result = match to_model::<R::Model>(prior) {
                Ok(state) => self.delete(ctx, state).await,
                Err(d) => Err(d),
            };
            return match result {
                Ok(()) => Outcome { value: Value::Null, diagnostics: Diagnostics::new() },
                Err(d) => Outcome::failed(prior.clone(), d),
            };
        }
        let planned_model = match to_model::<R::Model>(planned) {
            Ok(m) => m,
            Err(d) => return Outcome::failed(prior.clone(), d),
        };
        let result = if prior.is_null() {
            self.create(ctx, planned_model).await
        } else {
            match to_model::<R::Model>(prior) {
                Ok(p) => self.update(ctx, p, planned_model).await,
                Err(d) => Err(d.into()),
            }
        };
        match result {
            Ok(m) => match to_value(&m) {
                Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
                Err(d) => Outcome::failed(prior.clone(), d),
            },
            Err(Failure { state: Some(m), mut diagnostics }) => match to_value(&m) {
                Ok(v) => Outcome::failed(v.unknown_as_null(), diagnostics),
                Err(d) => {
                    diagnostics.extend(d);
                    Outcome::failed(prior.clone(), diagnostics)
                }
            },
            Err(Failure { state: None, diagnostics }) => Outcome::failed(prior.clone(), diagnostics),
        }
    }

    async fn read(&self, ctx: &Context, state: &Value) -> Outcome {
        let ty = Resource::schema(self).value_type();
        let model = match to_model::<R::Model>(state) {
            Ok(m) => m,
            Err(d) => return Outcome::failed(state.clone(), d),
        };
        match Resource::read(self, ctx, model).await {
            Ok(Some(m)) => match from_model(&m, &ty) {
                Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
                Err(d) => Outcome::failed(state.clone(), d),
            },
            Ok(None) => Outcome { value: Value::Null, diagnostics: Diagnostics::new() },
            Err(d) => Outcome::failed(state.clone(), d),
        }
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome {
        let ty = Resource::schema(self).value_type();
        match Resource::import(self, ctx, id).await.and_then(|m| from_model(&m, &ty)) {
            Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
            Err(d) => Outcome::failed(Value::Null, d),
        }
    }

    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Outcome {
        let schema = Resource::schema(self);
        if version > schema.version {
            return Outcome::failed(
                Value::Null,
                Diagnostic::error(
                    "State from a newer provider",
                    format!(
                        "The stored state of this strata_{} has schema version {version}, newer than this provider's {}. Upgrade the provider.",
                        Resource::name(self),
                        schema.version
                    ),
                )
                .into(),
            );
        }
        let raw: Json = match serde_json::from_slice(raw_json) {
            Ok(j) => j,
            Err(e) => {
                return Outcome::failed(
                    Value::Null,
                    Diagnostic::error("Stored state is not valid JSON", e.to_string()).into(),
                )
            }
        };
        let raw = if version < schema.version {
            match self.upgrade_state(version, raw) {
                Ok(j) => j,
                Err(d) => return Outcome::failed(Value::Null, d),
            }
        } else {
            raw
        };
        // Attributes a newer schema dropped are ignored rather than failing the refresh.
        match json::decode(&raw, &schema.value_type(), Extra::Ignore) {
            Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
            Err(e) => {
                Outcome::failed(Value::Null, Diagnostic::error("Stored state does not match the schema", e).into())
            }
        }
    }
}

/// A data source with its model erased.
#[async_trait]
pub trait AnyDataSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: &Value) -> Diagnostics;
    async fn read(&self, ctx: &Context, config: &Value) -> Outcome;
}

#[async_trait]
impl<D: DataSource> AnyDataSource for D {
    fn name(&self) -> &'static str {
        DataSource::name(self)
    }
    fn schema(&self) -> Schema {
        DataSource::schema(self)
    }
    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        validate_block(&DataSource::schema(self).block, config, &AttributePath::default(), &mut diags);
        DataSource::validate(self, config, &mut diags);
        diags
    }
    async fn read(&self, ctx: &Context, config: &Value) -> Outcome {
        let ty = DataSource::schema(self).value_type();
        let result = match to_model::<D::Model>(config) {
            Ok(m) => DataSource::read(self, ctx, m).await.and_then(|m| from_model(&m, &ty)),
            Err(d) => Err(d),
        };
        match result {
            Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
            Err(d) => Outcome::failed(Value::Null, d),
        }
    }
}

/// The provider itself: its configuration and what it offers.
#[async_trait]
pub trait ProviderDefinition: Send + Sync + 'static {
    /// The prefix of every type name, e.g. `strata`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, _config: &Value, _diags: &mut Diagnostics) {}
    /// Builds the data (API clients, defaults) every resource operation receives.
    async fn configure(&self, config: &Value) -> Result<Arc<dyn Any + Send + Sync>, Diagnostics>;
    fn resources(&self) -> Vec<Arc<dyn AnyResource>>;
    fn data_sources(&self) -> Vec<Arc<dyn AnyDataSource>>;
}
