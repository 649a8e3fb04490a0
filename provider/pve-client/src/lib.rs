//! Proxmox VE API client used by the Strata provider. It knows the wire (auth, the
//! `{"data": ...}` envelope, tasks, retries) and nothing about Terraform, so it can be
//! used and tested on its own (against `pve-sim` in this repository's tests).
//!
//! Layers, one file each:
//! - [`config`]: endpoint, credentials ([`Secret`] never prints), TLS trust;
//! - [`client`]: HTTP transport, ticket/token auth, retry with backoff;
//! - [`tasks`]: waiting for UPIDs;
//! - [`vmid`]: collision-free VMID allocation inside one process;
//! - [`guest`]: what VMs and containers share (config reads, lock waits, creates
//!   that are never sent twice blindly);
//! - [`vm`]: the VM operations the provider needs, made safe to retry;
//! - [`ct`]: the same for LXC containers, and the OS templates on a storage.

pub mod client;
pub mod config;
pub mod ct;
pub mod error;
pub mod guest;
pub mod tasks;
pub mod vm;
pub mod vmid;

pub use client::Client;
pub use config::{Auth, ClientConfig, RetryPolicy, Secret};
pub use error::{Error, Result};
pub use guest::GuestKind;
pub use tasks::TaskStatus;
pub use vm::{ClusterVm, NodeInfo, VmConfig};
