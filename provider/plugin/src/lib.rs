//! go-plugin transport for Terraform providers (plugin protocol 6).
//!
//! [`serve`] performs the go-plugin handshake (magic cookie, protocol
//! negotiation, the one stdout line), listens on a private Unix socket with
//! AutoMTLS, and serves the provider next to `plugin.GRPCController` and
//! `grpc.health.v1.Health`. [`init_logging`] makes `tracing` output readable
//! by Terraform.

mod controller;
pub mod debug;
pub mod handshake;
mod listener;
mod logging;
mod server;
mod signals;
pub mod tls;

pub use logging::{init_logging, level_from_env, HclogLayer, MODULE as LOG_MODULE};
pub use server::{serve, ServeOptions, MAX_MESSAGE_SIZE};
