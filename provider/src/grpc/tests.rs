//! The service driven the way Terraform drives it, in process, with msgpack on the wire.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use strata_proto::tfplugin6 as pb;
use strata_proto::tfplugin6::provider_server::Provider;
use tonic::Request;

use super::ProviderService;
use crate::framework::{msgpack, ApplyResult, Attribute, Block, Context, Diagnostics, Resource, Schema, Type, Value};
use crate::provider::StrataProvider;

fn service() -> ProviderService {
    ProviderService::new(Arc::new(StrataProvider))
}

fn secrets_type() -> Type {
    crate::framework::AnyResource::schema(&crate::resources::cluster_secrets::ClusterSecrets).value_type()
}

fn dv(v: &Value, ty: &Type) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue { msgpack: msgpack::encode(v, ty).unwrap(), json: vec![] })
}

fn config(name: &str) -> Value {
    crate::framework::json::decode(
        &serde_json::json!({"cluster_name": name}),
        &secrets_type(),
        crate::framework::json::Extra::Reject,
    )
    .unwrap()
}

fn errors(d: &[pb::Diagnostic]) -> Vec<String> {
    d.iter().filter(|d| d.severity == pb::diagnostic::Severity::Error as i32).map(|d| d.summary.clone()).collect()
}

#[tokio::test]
async fn schema_lists_the_resources() {
    let s =
        service().get_provider_schema(Request::new(pb::get_provider_schema::Request {})).await.unwrap().into_inner();
    assert!(s.resource_schemas.contains_key("strata_cluster_secrets"));
    assert!(s.server_capabilities.unwrap().get_provider_schema_optional);
}

#[tokio::test]
async fn full_lifecycle_through_the_protocol() {
    let svc = service();
    let ty = secrets_type();
    let cfg = config("prod");
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "strata_cluster_secrets".into(),
            prior_state: dv(&Value::Null, &ty),
            proposed_new_state: dv(&cfg, &ty),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&plan.diagnostics).is_empty(), "{:?}", plan.diagnostics);
    let planned = msgpack::decode(&plan.planned_state.as_ref().unwrap().msgpack, &ty).unwrap();
    assert_eq!(planned.attr("bootstrap_token"), Some(&Value::Unknown));

    let applied = svc
        .apply_resource_change(Request::new(pb::apply_resource_change::Request {
            type_name: "strata_cluster_secrets".into(),
            prior_state: dv(&Value::Null, &ty),
            planned_state: plan.planned_state.clone(),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&applied.diagnostics).is_empty());
    let state = msgpack::decode(&applied.new_state.as_ref().unwrap().msgpack, &ty).unwrap();
    assert!(state.is_fully_known());
    // Every value known in the plan is unchanged after apply.
    for (k, v) in match &planned {
        Value::Object(m) => m.clone(),
        _ => unreachable!(),
    } {
        if !v.is_unknown() {
            assert_eq!(state.attr(&k), Some(&v), "{k}");
        }
    }

    // Stored as JSON, upgraded back to msgpack unchanged.
    let json = serde_json::to_vec(&crate::framework::json::to_model_json(&state)).unwrap();
    let up = svc
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "strata_cluster_secrets".into(),
            version: 0,
            raw_state: Some(pb::RawState { json, flatmap: Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(up.diagnostics.is_empty());
    assert_eq!(msgpack::decode(&up.upgraded_state.unwrap().msgpack, &ty).unwrap(), state);

    let read = svc
        .read_resource(Request::new(pb::read_resource::Request {
            type_name: "strata_cluster_secrets".into(),
            current_state: applied.new_state.clone(),
            private: b"opaque".to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(msgpack::decode(&read.new_state.unwrap().msgpack, &ty).unwrap(), state);
    assert_eq!(read.private, b"opaque", "private state passes through");

    // A second plan with the same config is a no-op.
    let replan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "strata_cluster_secrets".into(),
            prior_state: applied.new_state.clone(),
            proposed_new_state: applied.new_state.clone(),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(msgpack::decode(&replan.planned_state.unwrap().msgpack, &ty).unwrap(), state);
    assert!(replan.requires_replace.is_empty());

    // Destroy: planned null, new state null.
    let destroyed = svc
        .apply_resource_change(Request::new(pb::apply_resource_change::Request {
            type_name: "strata_cluster_secrets".into(),
            prior_state: applied.new_state,
            planned_state: dv(&Value::Null, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&destroyed.diagnostics).is_empty());
    assert!(msgpack::decode(&destroyed.new_state.unwrap().msgpack, &ty).unwrap().is_null());
}

#[tokio::test]
async fn invalid_config_is_refused_at_plan_time_with_the_path() {
    let svc = service();
    let ty = secrets_type();
    let mut cfg = config("prod");
    *cfg.attr_mut("validity_days").unwrap() = Value::int(0);
    let resp = svc
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "strata_cluster_secrets".into(),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.diagnostics.len(), 1);
    let path = resp.diagnostics[0].attribute.as_ref().unwrap();
    assert_eq!(path.steps[0].selector, Some(pb::attribute_path::step::Selector::AttributeName("validity_days".into())));
}

#[tokio::test]
async fn garbage_from_the_client_gives_diagnostics_not_panics() {
    let svc = service();
    let bad = Some(pb::DynamicValue { msgpack: vec![0xde, 0xad, 0xbe, 0xef], json: vec![] });
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "strata_cluster_secrets".into(),
            prior_state: bad.clone(),
            proposed_new_state: bad.clone(),
            config: bad.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&plan.diagnostics).len(), 1);
    let up = svc
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "strata_cluster_secrets".into(),
            version: 0,
            raw_state: Some(pb::RawState { json: b"{\"cluster_name\": [".to_vec(), flatmap: Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&up.diagnostics).len(), 1);
    let newer = svc
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "strata_cluster_secrets".into(),
            version: 7,
            raw_state: Some(pb::RawState { json: b"{}".to_vec(), flatmap: Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&newer.diagnostics), vec!["State from a newer provider"]);
    let unknown = svc
        .read_resource(Request::new(pb::read_resource::Request {
            type_name: "strata_nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&unknown.diagnostics), vec!["Unknown resource type"]);
}

/// A resource whose read waits until it is cancelled, to show StopProvider reaches it.
struct Slow;

#[derive(Serialize, Deserialize)]
struct SlowModel {
    id: Option<String>,
}

#[async_trait]
impl Resource for Slow {
    type Model = SlowModel;
    fn name(&self) -> &'static str {
        "slow"
    }
    fn schema(&self) -> Schema {
        Schema::new(0, Block::new("slow").attribute(Attribute::computed("id", Type::String)))
    }
    async fn create(&self, _: &Context, m: SlowModel) -> ApplyResult<SlowModel> {
        Ok(m)
    }
    async fn read(&self, ctx: &Context, _: SlowModel) -> Result<Option<SlowModel>, Diagnostics> {
        ctx.cancel.cancelled().await;
        Err(crate::framework::Diagnostic::error("Read stopped", ctx.stop_reason().unwrap_or_default()).into())
    }
    async fn update(&self, _: &Context, _: SlowModel, m: SlowModel) -> ApplyResult<SlowModel> {
        Ok(m)
    }
    async fn delete(&self, _: &Context, _: SlowModel) -> Result<(), Diagnostics> {
        Ok(())
    }
}

struct SlowProvider;

#[async_trait]
impl crate::framework::ProviderDefinition for SlowProvider {
    fn type_name(&self) -> &'static str {
        "test"
    }
    fn schema(&self) -> Schema {
        // A write-only provider argument: never stored by Terraform anyway, but only a
        // client with write-only support may be sent a schema flag it understands.
        Schema::new(0, Block::new("test").attribute(Attribute::optional("token", Type::String).write_only()))
    }
    async fn configure(&self, _: &Value) -> Result<Arc<dyn std::any::Any + Send + Sync>, Diagnostics> {
        Ok(Arc::new(()))
    }
    fn resources(&self) -> Vec<Arc<dyn crate::framework::AnyResource>> {
        vec![Arc::new(Slow), Arc::new(Probe)]
    }
    fn data_sources(&self) -> Vec<Arc<dyn crate::framework::AnyDataSource>> {
        vec![]
    }
}

/// Starts a ReadResource of `test_slow` in the background.
fn spawn_slow_read(
    svc: &Arc<ProviderService>,
    state: &Value,
    ty: &Type,
) -> tokio::task::JoinHandle<Result<tonic::Response<pb::read_resource::Response>, tonic::Status>> {
    let svc = svc.clone();
    let current_state = dv(state, ty);
    tokio::spawn(async move {
        svc.read_resource(Request::new(pb::read_resource::Request {
            type_name: "test_slow".into(),
            current_state,
            ..Default::default()
        }))
        .await
    })
}

#[tokio::test]
async fn stop_provider_cancels_in_flight_reads_and_nothing_after_them() {
    let svc = Arc::new(ProviderService::new(Arc::new(SlowProvider)));
    let ty = crate::framework::AnyResource::schema(&Slow).value_type();
    let state = Value::Object([("id".to_string(), Value::string("x")), ("timeouts".to_string(), Value::Null)].into());
    for round in ["first", "second"] {
        // The second round shows the stop ended what was in flight, not what came after.
        let reader = spawn_slow_read(&svc, &state, &ty);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!reader.is_finished(), "{round} read: it waits until stopped");
        svc.stop_provider(Request::new(pb::stop_provider::Request {})).await.unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("read ended").unwrap().unwrap();
        // The read's own error (it knows where it stopped) reaches Terraform.
        assert_eq!(errors(&resp.into_inner().diagnostics), vec!["Read stopped"], "{round} read");
    }
}

/// A resource with a write-only `secret` (its create reports the length it received)
/// whose create can hang until its context is cancelled.
struct Probe;

#[derive(Serialize, Deserialize)]
struct ProbeModel {
    secret: Option<String>,
    secret_len: Option<i64>,
    hang: Option<bool>,
}

#[async_trait]
impl Resource for Probe {
    type Model = ProbeModel;
    fn name(&self) -> &'static str {
        "probe"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new("probe")
                .attribute(Attribute::optional("secret", Type::String).write_only())
                .attribute(Attribute::computed("secret_len", Type::Number))
                .attribute(Attribute::optional("hang", Type::Bool)),
        )
    }
    async fn create(&self, ctx: &Context, mut m: ProbeModel) -> ApplyResult<ProbeModel> {
        if m.hang == Some(true) {
            ctx.cancel.cancelled().await;
            return Err(crate::framework::Diagnostic::error("stopped", ctx.stop_reason().unwrap_or_default()).into());
        }
        m.secret_len = Some(m.secret.as_deref().map_or(-1, |s| s.len() as i64));
        Ok(m)
    }
    async fn read(&self, _: &Context, m: ProbeModel) -> Result<Option<ProbeModel>, Diagnostics> {
        Ok(Some(m))
    }
    async fn update(&self, ctx: &Context, _: ProbeModel, m: ProbeModel) -> ApplyResult<ProbeModel> {
        self.create(ctx, m).await
    }
    async fn delete(&self, _: &Context, _: ProbeModel) -> Result<(), Diagnostics> {
        Ok(())
    }
}

fn probe_value(pairs: serde_json::Value) -> (Value, Type) {
    let ty = crate::framework::AnyResource::schema(&Probe).value_type();
    (crate::framework::json::decode(&pairs, &ty, crate::framework::json::Extra::Reject).unwrap(), ty)
}

/// What Terraform 1.11 and later send with ValidateResourceConfig, ConfigureProvider
/// and PlanResourceChange (seen in Terraform 1.15.5's requests); older ones send none.
fn terraform_1_11() -> Option<pb::ClientCapabilities> {
    Some(pb::ClientCapabilities { deferral_allowed: false, write_only_attributes_allowed: true })
}

async fn plan_and_apply(svc: &ProviderService, cfg: &Value, ty: &Type) -> (Value, pb::apply_resource_change::Response) {
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "test_probe".into(),
            prior_state: dv(&Value::Null, ty),
            proposed_new_state: dv(cfg, ty),
            config: dv(cfg, ty),
            client_capabilities: terraform_1_11(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(errors(&plan.diagnostics).is_empty(), "{:?}", plan.diagnostics);
    let planned = msgpack::decode(&plan.planned_state.as_ref().unwrap().msgpack, ty).unwrap();
    let applied = svc
        .apply_resource_change(Request::new(pb::apply_resource_change::Request {
            type_name: "test_probe".into(),
            prior_state: dv(&Value::Null, ty),
            planned_state: plan.planned_state.clone(),
            config: dv(cfg, ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    (planned, applied)
}

#[tokio::test]
async fn write_only_values_reach_apply_and_never_plan_or_state() {
    let svc = ProviderService::new(Arc::new(SlowProvider));
    let (cfg, ty) = probe_value(serde_json::json!({"secret": "s3cret"}));
    let (planned, applied) = plan_and_apply(&svc, &cfg, &ty).await;
    assert_eq!(planned.attr("secret"), Some(&Value::Null), "write-only value planned");
    assert!(errors(&applied.diagnostics).is_empty(), "{:?}", applied.diagnostics);
    let state = msgpack::decode(&applied.new_state.unwrap().msgpack, &ty).unwrap();
    assert_eq!(state.attr("secret"), Some(&Value::Null), "write-only value stored");
    assert_eq!(state.attr("secret_len"), Some(&Value::int(6)), "create did not receive the value");
    let schema = svc.get_provider_schema(Request::new(pb::get_provider_schema::Request {})).await.unwrap().into_inner();
    let attrs = &schema.resource_schemas["test_probe"].block.as_ref().unwrap().attributes;
    let secret = attrs.iter().find(|a| a.name == "secret").unwrap();
    assert!(secret.write_only && secret.sensitive);
}

#[tokio::test]
async fn a_create_that_outlives_its_timeout_is_cancelled_and_says_so() {
    let svc = ProviderService::new(Arc::new(SlowProvider));
    let (cfg, ty) = probe_value(serde_json::json!({"hang": true, "timeouts": {"create": "300ms"}}));
    let started = std::time::Instant::now();
    let (_, applied) = tokio::time::timeout(Duration::from_secs(10), plan_and_apply(&svc, &cfg, &ty))
        .await
        .expect("the timeout ended the create");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let text: Vec<String> = applied.diagnostics.iter().map(|d| format!("{} {}", d.summary, d.detail)).collect();
    assert!(text.iter().any(|t| t.contains("test_probe create timed out after 300ms (timeouts.create)")), "{text:?}");
    // The resource's own token fired with the reason.
    assert!(text.iter().any(|t| t.starts_with("stopped timed out after 300ms")), "{text:?}");
}

#[tokio::test]
async fn an_invalid_timeout_is_refused_naming_the_attribute() {
    let svc = ProviderService::new(Arc::new(SlowProvider));
    let (cfg, ty) = probe_value(serde_json::json!({"timeouts": {"delete": "ten minutes"}}));
    let resp = svc
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_probe".into(),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(errors(&resp.diagnostics), vec!["Invalid value for timeouts.delete"]);
}

/// How many times `Counted::schema` ran.
static COUNTED_SCHEMA_BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A resource counting how often its schema is built.
struct Counted;

#[async_trait]
impl Resource for Counted {
    type Model = SlowModel;
    fn name(&self) -> &'static str {
        "counted"
    }
    fn schema(&self) -> Schema {
        COUNTED_SCHEMA_BUILDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Schema::new(0, Block::new("counted").attribute(Attribute::optional("id", Type::String)))
    }
    async fn create(&self, _: &Context, m: SlowModel) -> ApplyResult<SlowModel> {
        Ok(m)
    }
    async fn read(&self, _: &Context, m: SlowModel) -> Result<Option<SlowModel>, Diagnostics> {
        Ok(Some(m))
    }
    async fn update(&self, _: &Context, _: SlowModel, m: SlowModel) -> ApplyResult<SlowModel> {
        Ok(m)
    }
    async fn delete(&self, _: &Context, _: SlowModel) -> Result<(), Diagnostics> {
        Ok(())
    }
}

struct CountedProvider;

#[async_trait]
impl crate::framework::ProviderDefinition for CountedProvider {
    fn type_name(&self) -> &'static str {
        "test"
    }
    fn schema(&self) -> Schema {
        // A write-only provider argument: never stored by Terraform anyway, but only a
        // client with write-only support may be sent a schema flag it understands.
        Schema::new(0, Block::new("test").attribute(Attribute::optional("token", Type::String).write_only()))
    }
    async fn configure(&self, _: &Value) -> Result<Arc<dyn std::any::Any + Send + Sync>, Diagnostics> {
        Ok(Arc::new(()))
    }
    fn resources(&self) -> Vec<Arc<dyn crate::framework::AnyResource>> {
        vec![Arc::new(Counted)]
    }
    fn data_sources(&self) -> Vec<Arc<dyn crate::framework::AnyDataSource>> {
        vec![]
    }
}

#[tokio::test]
async fn a_resource_schema_is_built_once_per_process_not_per_rpc() {
    let svc = ProviderService::new(Arc::new(CountedProvider));
    let ty = crate::framework::AnyResource::schema(&Counted).value_type();
    let state = Value::Object([("id".to_string(), Value::string("x")), ("timeouts".to_string(), Value::Null)].into());
    for _ in 0..3 {
        let v = svc
            .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                type_name: "test_counted".into(),
                config: dv(&state, &ty),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert!(v.into_inner().diagnostics.is_empty());
        let raw = br#"{"id":"x","timeouts":null}"#.to_vec();
        let u = svc
            .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
                type_name: "test_counted".into(),
                raw_state: Some(pb::RawState { json: raw, ..Default::default() }),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert!(u.into_inner().upgraded_state.is_some());
        let r = svc
            .read_resource(Request::new(pb::read_resource::Request {
                type_name: "test_counted".into(),
                current_state: dv(&state, &ty),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert!(r.into_inner().diagnostics.is_empty());
        let p = svc
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "test_counted".into(),
                prior_state: dv(&state, &ty),
                proposed_new_state: dv(&state, &ty),
                config: dv(&state, &ty),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert!(p.into_inner().planned_state.is_some());
    }
    assert_eq!(COUNTED_SCHEMA_BUILDS.load(std::sync::atomic::Ordering::SeqCst), 1, "built once, then shared");
}

/// Every diagnostic as "summary: detail (path)".
fn texts(d: &[pb::Diagnostic]) -> Vec<String> {
    d.iter()
        .map(|d| {
            let path: Vec<String> = d
                .attribute
                .iter()
                .flat_map(|p| &p.steps)
                .filter_map(|s| match &s.selector {
                    Some(pb::attribute_path::step::Selector::AttributeName(n)) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            format!("{}: {} ({})", d.summary, d.detail, path.join("."))
        })
        .collect()
}

#[tokio::test]
async fn a_write_only_value_is_refused_at_validate_and_plan_only_without_the_client_capability() {
    let svc = ProviderService::new(Arc::new(SlowProvider));
    let (cfg, ty) = probe_value(serde_json::json!({"secret": "s3cret-value"}));
    let validate = |caps: Option<pb::ClientCapabilities>| {
        svc.validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_probe".into(),
            config: dv(&cfg, &ty),
            client_capabilities: caps,
        }))
    };
    // Terraform 1.11+.
    let ok = validate(terraform_1_11()).await.unwrap().into_inner();
    assert!(ok.diagnostics.is_empty(), "{:?}", texts(&ok.diagnostics));
    // Terraform before 1.11: no capabilities at all; and a client that says "not allowed".
    let none = pb::ClientCapabilities { deferral_allowed: true, write_only_attributes_allowed: false };
    for caps in [None, Some(none)] {
        let refused = validate(caps).await.unwrap().into_inner();
        assert_eq!(errors(&refused.diagnostics).len(), 1, "{:?}", texts(&refused.diagnostics));
        let t = &texts(&refused.diagnostics)[0];
        assert!(t.contains("Terraform 1.11 or later") && t.contains("`secret`") && t.ends_with("(secret)"), "{t}");
        assert!(!t.contains("s3cret-value") && !t.contains("bug in the provider"), "{t}");
    }
    // Unset, it passes without the capability.
    let (unset, _) = probe_value(serde_json::json!({"hang": false}));
    let resp = svc
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_probe".into(),
            config: dv(&unset, &ty),
            client_capabilities: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.diagnostics.is_empty(), "{:?}", texts(&resp.diagnostics));
    // Plan checks again (it carries the capabilities too): no planned state to mismatch.
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "test_probe".into(),
            prior_state: dv(&Value::Null, &ty),
            proposed_new_state: dv(&cfg, &ty),
            config: dv(&cfg, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(plan.planned_state.is_none());
    assert!(texts(&plan.diagnostics).iter().any(|t| t.contains("Terraform 1.11 or later")), "{:?}", plan.diagnostics);
}

/// Provider configuration is never stored: a write-only provider argument works on
/// any client (Terraform 1.6.6 and 1.10.5 ignore the flag and store nothing).
#[tokio::test]
async fn a_write_only_provider_argument_is_accepted_with_or_without_the_client_capability() {
    let ty = crate::framework::ProviderDefinition::schema(&SlowProvider).value_type();
    let cfg = Value::Object([("token".to_string(), Value::string("tok-123"))].into());
    for caps in [terraform_1_11(), None] {
        let svc = ProviderService::new(Arc::new(SlowProvider));
        let resp = svc
            .configure_provider(Request::new(pb::configure_provider::Request {
                terraform_version: "x".into(),
                config: dv(&cfg, &ty),
                client_capabilities: caps,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", texts(&resp.diagnostics));
    }
}

#[tokio::test]
async fn a_node_whose_only_key_is_the_write_only_one_gets_a_plan_warning_naming_it() {
    use crate::framework::AnyResource;
    let svc = service();
    let ty = AnyResource::schema(&crate::resources::node_config::NodeConfig).value_type();
    let config = |ssh: serde_json::Value| {
        crate::framework::json::decode(
            &serde_json::json!({"ssh": ssh, "file": [{"path": "/etc/x", "content": "x"}]}),
            &ty,
            crate::framework::json::Extra::Ignore,
        )
        .unwrap()
    };
    let provider_ty = svc.provider_schema.value_type();
    let configure = svc
        .configure_provider(Request::new(pb::configure_provider::Request {
            terraform_version: "1.15.5".into(),
            config: dv(&Value::Null, &provider_ty),
            client_capabilities: terraform_1_11(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(configure.diagnostics.is_empty(), "{:?}", texts(&configure.diagnostics));
    let plan = |cfg: Value| {
        svc.plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "strata_node_config".into(),
            prior_state: dv(&Value::Null, &ty),
            proposed_new_state: dv(&cfg, &ty),
            config: dv(&cfg, &ty),
            client_capabilities: terraform_1_11(),
            ..Default::default()
        }))
    };
    let warned =
        plan(config(serde_json::json!({"host": "10.0.0.5", "private_key": "KEY-BODY"}))).await.unwrap().into_inner();
    assert!(warned.planned_state.is_some() && errors(&warned.diagnostics).is_empty());
    let t = texts(&warned.diagnostics);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].starts_with("Refresh and destroy will need another SSH key") && t[0].ends_with("(ssh.private_key)"));
    assert!(t[0].contains("private_key_file") && t[0].contains("ssh-agent") && !t[0].contains("KEY-BODY"), "{t:?}");
    let quiet = plan(config(serde_json::json!({"host": "10.0.0.5", "private_key_file": "/k"}))).await.unwrap();
    assert!(quiet.into_inner().diagnostics.is_empty());
}
