//! strata-agent: applies containerd/kubelet/OS configuration on a Kubernetes
//! node idempotently.
//!
//! * [`spec::NodeSpec`] is the desired state, shared with the Terraform provider
//!   (serialize it to JSON and pass it to `strata-agent apply -`).
//! * Every kind of state is a module implementing [`task::Task`] (check, then apply).
//! * [`runner::run`] orders tasks, runs handlers and produces a [`report::Report`].
//! * Live system state goes through [`system::System`]: the host's, or with the
//!   explicit `--simulate` a simulation inside `--root` that never touches the host.

pub mod facts;
pub mod fsutil;
pub mod handlers;
pub mod managed;
pub mod modules;
pub mod parse;
pub mod report;
pub mod runner;
pub mod spec;
pub mod system;
pub mod task;

pub use parse::{parse_spec, Format, SpecError};
pub use report::{Report, RunMode};
pub use spec::NodeSpec;
pub use task::{Change, Context, Task, TaskError};
