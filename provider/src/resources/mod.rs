//! Every resource, one module each: schema, model and logic side by side.

pub mod cluster_node;
pub mod cluster_secrets;
pub mod connection;
pub mod container;
pub mod control_plane;
pub mod etcd_cluster;
pub mod image_registry;
pub mod k3s;
pub mod k3s_agent;
pub mod k3s_cluster;
pub mod load_balancer;
pub mod nfs_export;
pub mod node_config;
pub mod vm;
pub mod worker;
