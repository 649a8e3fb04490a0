//! Data sources, one module each.

pub mod containers;
pub mod pve_nodes;
pub mod vms;
