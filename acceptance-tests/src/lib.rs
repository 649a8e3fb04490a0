//! Acceptance test harness: runs the real Terraform CLI against the provider binary.

pub mod k3s_platform;
pub mod names;
pub mod platform;
pub mod prober;
pub mod provider;
pub mod release;
pub mod standins;
pub mod terraform;
pub mod waits;
