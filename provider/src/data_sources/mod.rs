//! Data sources, one module each.

pub mod containers;
pub mod kubernetes_images;
pub mod pve_nodes;
pub mod vms;
