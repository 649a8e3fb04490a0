//! terraform-provider-strata: the provider as a library, so tests and tools can drive it.

pub mod framework;
pub mod grpc;
// pub mod node; (enabled once strata-ssh's client API lands)
pub mod provider;
pub mod resources;
