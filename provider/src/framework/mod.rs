//! A small Terraform provider framework: schemas, values, codecs, diagnostics, and the
//! resource traits. Knows nothing of gRPC; the `grpc` module adapts it to the protocol.

pub mod diagnostics;
pub mod json;
pub mod model;
pub mod msgpack;
pub mod plan;
pub mod resource;
pub mod schema;
pub mod timeouts;
pub mod types;
pub mod validate;
pub mod value;
pub mod write_only;

pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, Severity};
pub use plan::PlanChange;
pub use resource::{
    AnyDataSource, AnyResource, ApplyResult, Context, DataSource, Failure, ProviderDefinition, Resource,
};
pub use schema::{Attribute, Block, Mode, NestedBlock, Nesting, Schema, Validator};
pub use timeouts::Timeouts;
pub use types::Type;
pub use value::Value;
