//! terraform-provider-strata: the provider as a library, so tests and tools can drive it.

pub mod agent_binary;
pub mod data_sources;
pub mod docs;
pub mod etcd;
pub mod framework;
pub mod grpc;
pub mod kube;
pub mod node;
pub mod pki;
pub mod provider;
pub mod proxmox;
pub mod resources;
pub mod wait;
