//! The traits a resource and a data source implement, and their type-erased forms the
//! gRPC layer drives.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

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
use super::timeouts::{self, Timeouts};
use super::types::Type;
use super::validate::validate_block;
use super::value::Value;
use super::write_only;

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
    /// Warnings an operation reports beside a successful result (e.g. a read that could
    /// not reach one of several nodes but still observed the rest).
    warnings: Arc<std::sync::Mutex<Diagnostics>>,
}

impl Context {
    pub fn new(cancel: CancellationToken, data: Option<Arc<dyn Any + Send + Sync>>) -> Context {
        Context {
            cancel,
            data,
            type_name: String::new(),
            operation: "",
            stop: Default::default(),
            warnings: Default::default(),
        }
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

    /// Adds a warning to what the operation reports, whether it succeeds or fails.
    pub fn warn(&self, d: Diagnostic) {
        self.warnings.lock().expect("warnings").push(d);
    }

    fn take_warnings(&self) -> Diagnostics {
        std::mem::take(&mut *self.warnings.lock().expect("warnings"))
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
    /// Built once per process and kept per resource type: it must depend on the type only.
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

    /// Time limits used when the `timeouts` block leaves one unset.
    fn timeouts(&self) -> Timeouts {
        Timeouts::default()
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

/// A resource with its model erased, as the gRPC layer sees it. The framework adds the
/// `timeouts` block to every resource and enforces it, and keeps write-only values out
/// of plans and state; resources see neither.
#[async_trait]
pub trait AnyResource: Send + Sync {
    fn name(&self) -> &'static str;
    /// The schema Terraform sees (the resource's own plus `timeouts`), built once per process.
    fn schema(&self) -> Arc<Schema>;
    /// `write_only_allowed`: the client announced write-only support (Terraform 1.11+);
    /// without it a set write-only attribute is an error naming it.
    fn validate(&self, config: &Value, write_only_allowed: bool) -> Diagnostics;
    fn plan(&self, ctx: &Context, prior: &Value, proposed: &Value, config: &Value) -> PlanChange;
    fn import_id(&self) -> Option<&'static str>;
    /// `config` is null for a destroy; it carries the write-only values otherwise.
    async fn apply(&self, ctx: &Context, prior: &Value, planned: &Value, config: &Value) -> Outcome;
    async fn read(&self, ctx: &Context, state: &Value) -> Outcome;
    async fn import(&self, ctx: &Context, id: &str) -> Outcome;
    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Outcome;
}

/// How long an operation that was told to stop (its time limit ran out) may take to
/// wind down and report what exists, before the framework gives up on it.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs `work` within the operation's time limit. When the limit runs out the context
/// is cancelled (remote commands are killed, waits end) and the work gets a short
/// grace to return what it has; its own error then says where it stopped.
async fn within_limit<T>(
    ctx: &Context,
    limit: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Diagnostics> {
    tokio::pin!(work);
    tokio::select! {
        v = &mut work => return Ok(v),
        _ = tokio::time::sleep(limit) => {}
    }
    let key = if ctx.operation() == "import" { "read" } else { ctx.operation() };
    ctx.stop(format!("timed out after {} (timeouts.{key})", timeouts::go_form(limit)));
    match tokio::time::timeout(STOP_GRACE, work).await {
        Ok(v) => Ok(v),
        Err(_) => Err(Diagnostic::error(
            format!("{} {} timed out", ctx.resource_type(), ctx.operation()),
            format!(
                "Not done after {} (timeouts.{key}), and it did not stop within {}s of being cancelled.",
                timeouts::go_form(limit),
                STOP_GRACE.as_secs()
            ),
        )
        .into()),
    }
}

/// Adds a diagnostic saying the operation ran out of time, when it did and failed.
fn note_timeout(ctx: &Context, diags: &mut Diagnostics) {
    if diags.has_errors() {
        if let Some(reason) = ctx.stop_reason().filter(|r| r.starts_with("timed out")) {
            diags.push(Diagnostic::error(
                format!("{} {} {reason}", ctx.resource_type(), ctx.operation()),
                "The operation was cancelled when its time limit ran out; raise the limit in the resource's timeouts block if it needs longer.",
            ));
        }
    }
}

/// A resource type's schemas and value types (see `ResourceExt::schemas`).
struct Schemas {
    /// The resource's own schema.
    own: Schema,
    own_type: Type,
    /// What Terraform sees: the own schema plus `timeouts` unless it declares its own.
    full: Arc<Schema>,
    full_type: Type,
    framework_timeouts: bool,
}

impl<R: Resource> ResourceExt for R {}

/// What the erased form needs beyond the typed trait.
trait ResourceExt: Resource {
    /// Whether the framework adds `timeouts` (a resource that declares its own keeps it).
    /// This resource type's schemas, built on first use and then shared by every RPC of
    /// the process: a resource builds its schema from scratch (attributes, descriptions,
    /// validators), and each RPC used to build it up to four times.
    fn schemas(&self) -> Arc<Schemas> {
        static BUILT: LazyLock<RwLock<HashMap<TypeId, Arc<Schemas>>>> = LazyLock::new(Default::default);
        let key = TypeId::of::<Self>();
        if let Some(s) = BUILT.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return s.clone();
        }
        let own = Resource::schema(self);
        let framework_timeouts = own.block.find_block(timeouts::BLOCK).is_none();
        let mut full = own.clone();
        if framework_timeouts {
            full.block.blocks.push(timeouts::block(&self.timeouts()));
        }
        let built = Arc::new(Schemas {
            own_type: own.value_type(),
            own,
            full_type: full.value_type(),
            full: Arc::new(full),
            framework_timeouts,
        });
        BUILT.write().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(built).clone()
    }

    /// Model -> value of the full schema, carrying `timeouts` over from `source`.
    fn to_value(&self, m: &Self::Model, source: &Value) -> Result<Value, Diagnostics> {
        let schemas = self.schemas();
        let own = &schemas.own;
        let mut v = from_model(m, &schemas.own_type)?;
        if schemas.framework_timeouts {
            if let Value::Object(attrs) = &mut v {
                let t = source.attr(timeouts::BLOCK).cloned().unwrap_or(Value::Null);
                attrs.insert(timeouts::BLOCK.to_string(), t.unknown_as_null());
            }
        }
        write_only::clear(&own.block, &mut v);
        Ok(v)
    }
}

#[async_trait]
impl<R: Resource> AnyResource for R {
    fn name(&self) -> &'static str {
        Resource::name(self)
    }
    fn schema(&self) -> Arc<Schema> {
        self.schemas().full.clone()
    }

    fn validate(&self, config: &Value, write_only_allowed: bool) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let block = &self.schemas().full.block;
        validate_block(block, config, &AttributePath::default(), &mut diags);
        if !write_only_allowed {
            write_only::refuse_unsupported(block, config, &AttributePath::default(), &mut diags);
        }
        Resource::validate(self, config, &mut diags);
        diags
    }

    fn import_id(&self) -> Option<&'static str> {
        Resource::import_id(self)
    }

    fn plan(&self, ctx: &Context, prior: &Value, proposed: &Value, config: &Value) -> PlanChange {
        let mut change = plan::plan(&self.schemas().full, prior, proposed, config);
        change.provider = ctx.data.clone().map(ProviderHandle);
        if !change.planned.is_null() {
            self.modify_plan(&mut change);
        }
        change
    }

    async fn apply(&self, ctx: &Context, prior: &Value, planned: &Value, config: &Value) -> Outcome {
        let (limit, _) =
            timeouts::limit(if planned.is_null() { prior } else { planned }, ctx.operation(), &self.timeouts());
        if planned.is_null() {
            let result = match to_model::<R::Model>(prior) {
                Ok(state) => within_limit(ctx, limit, self.delete(ctx, state)).await.and_then(|r| r),
                Err(d) => Err(d),
            };
            return match result {
                Ok(()) => Outcome { value: Value::Null, diagnostics: Diagnostics::new() },
                Err(mut d) => {
                    note_timeout(ctx, &mut d);
                    Outcome::failed(prior.clone(), d)
                }
            };
        }
        // The resource works with the write-only values; they never leave this function.
        let mut with_secrets = planned.clone();
        write_only::fill_from_config(&self.schemas().own.block, &mut with_secrets, config);
        let planned_model = match to_model::<R::Model>(&with_secrets) {
            Ok(m) => m,
            Err(d) => return Outcome::failed(prior.clone(), d),
        };
        let work = async {
            if prior.is_null() {
                self.create(ctx, planned_model).await
            } else {
                match to_model::<R::Model>(prior) {
                    Ok(p) => self.update(ctx, p, planned_model).await,
                    Err(d) => Err(d.into()),
                }
            }
        };
        let result = within_limit(ctx, limit, work).await.unwrap_or_else(|d| Err(d.into()));
        match result {
            Ok(m) => match self.to_value(&m, planned) {
                Ok(v) => Outcome { value: v, diagnostics: ctx.take_warnings() },
                Err(d) => Outcome::failed(prior.clone(), d),
            },
            Err(Failure { state: Some(m), mut diagnostics }) => {
                note_timeout(ctx, &mut diagnostics);
                match self.to_value(&m, planned) {
                    Ok(v) => Outcome::failed(v.unknown_as_null(), diagnostics),
                    Err(d) => {
                        diagnostics.extend(d);
                        Outcome::failed(prior.clone(), diagnostics)
                    }
                }
            }
            Err(Failure { state: None, mut diagnostics }) => {
                note_timeout(ctx, &mut diagnostics);
                Outcome::failed(prior.clone(), diagnostics)
            }
        }
    }

    async fn read(&self, ctx: &Context, state: &Value) -> Outcome {
        let model = match to_model::<R::Model>(state) {
            Ok(m) => m,
            Err(d) => return Outcome::failed(state.clone(), d),
        };
        let (limit, _) = timeouts::limit(state, "read", &self.timeouts());
        match within_limit(ctx, limit, Resource::read(self, ctx, model)).await.and_then(|r| r) {
            Ok(Some(m)) => match self.to_value(&m, state) {
                Ok(v) => Outcome { value: v, diagnostics: ctx.take_warnings() },
                Err(d) => Outcome::failed(state.clone(), d),
            },
            // Warnings say why the object is gone (e.g. its node does not answer).
            Ok(None) => Outcome { value: Value::Null, diagnostics: ctx.take_warnings() },
            Err(mut d) => {
                note_timeout(ctx, &mut d);
                Outcome::failed(state.clone(), d)
            }
        }
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome {
        let limit = self.timeouts().read;
        match within_limit(ctx, limit, Resource::import(self, ctx, id))
            .await
            .and_then(|r| r)
            .and_then(|m| self.to_value(&m, &Value::Null))
        {
            Ok(v) => Outcome { value: v, diagnostics: Diagnostics::new() },
            Err(mut d) => {
                note_timeout(ctx, &mut d);
                Outcome::failed(Value::Null, d)
            }
        }
    }

    fn upgrade(&self, version: i64, raw_json: &[u8]) -> Outcome {
        let schemas = self.schemas();
        let schema = &schemas.full;

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
        match json::decode(&raw, &schemas.full_type, Extra::Ignore) {
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
    /// Refines every resource's plan (creates and updates, not destroys) with what
    /// the provider knows across resource types, e.g. warnings about its own settings.
    fn modify_plan(&self, _change: &mut PlanChange) {}
    fn resources(&self) -> Vec<Arc<dyn AnyResource>>;
    fn data_sources(&self) -> Vec<Arc<dyn AnyDataSource>>;
}
