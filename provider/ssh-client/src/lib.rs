//! strata-ssh: the Strata provider's SSH transport, on `russh`.
//!
//! * [`Target`] describes an endpoint (key auth, mandatory host key policy,
//!   optional bastion, optional sudo).
//! * [`Pool`] shares one SSH connection per target across the process.
//! * [`Client`] runs commands ([`Client::exec`]), uploads files atomically
//!   ([`Client::upload`]) and reads them back ([`Client::read_file`]), and
//!   holds locks on the host itself ([`Client::lock`]).

mod auth;
mod config;
mod error;
mod exec;
mod hostkey;
mod lock;
mod pool;
mod upload;

pub use config::{Auth, HostKeyPolicy, KeySource, Target};
pub use error::{Error, Result};
pub use exec::{shell_quote, Client, ExecOutput};
pub use hostkey::{fingerprint, public_key_fingerprint};
pub use lock::RemoteLock;
pub use pool::{Pool, PoolOptions};
pub use tokio_util::sync::CancellationToken;
