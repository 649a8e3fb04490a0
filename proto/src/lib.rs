//! Generated protocol code for the Terraform plugin transport.
//!
//! `tfplugin6.proto` is protocol 6.10 as shipped with Terraform v1.15; its
//! compiled descriptor was checked field-for-field against the one embedded in
//! Terraform 1.15.5. The go-plugin files match go-plugin v1.7.0.

/// Terraform plugin protocol 6 (`package tfplugin6`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// HashiCorp go-plugin side services (`package plugin`): controller, stdio, broker.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod plugin {
    tonic::include_proto!("plugin");
}
