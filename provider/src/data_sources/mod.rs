//! Data sources, one module each.

pub mod pve_nodes;
pub mod vms;
