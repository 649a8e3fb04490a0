//! Every resource, one module each: schema, model and logic side by side.

pub mod cluster_secrets;
