//! A node reached over SSH, as node-facing resources use it: run a command, read and
//! write files. Built from a resource's `ssh` block merged with the provider's
//! `ssh` defaults; connections are pooled per provider process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail};
use strata_ssh::{Auth, HostKeyPolicy, Pool, Target};

use crate::framework::{AttributePath, Context, Diagnostic, Diagnostics};
use crate::provider::ProviderData;
use crate::resources::connection::{BastionModel, ConnectionModel, ProviderSshModel};

/// SSH defaults plus the connection pool, shared by every node-facing resource.
pub struct SshAccess {
    pub defaults: ProviderSshModel,
    pub pool: Arc<Pool>,
    /// One lock per node, for changes that must not interleave on a node (several
    /// exports of one server are applied in parallel by one `terraform apply`).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SshAccess {
    pub fn new(defaults: ProviderSshModel) -> SshAccess {
        SshAccess { defaults, pool: Arc::new(Pool::new()), locks: Mutex::new(HashMap::new()) }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("node locks").entry(key.to_string()).or_default().clone()
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Exec {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A node, for one resource operation: every command, upload and read runs under the
/// operation's cancellation token (Ctrl-C, `timeouts`), and a stopped command is
/// killed on the node with its children.
pub struct Node {
    client: strata_ssh::Client,
    label: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    ctx: Context,
}

/// Single-quotes a word for `sh`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn config_error(attr: &str, detail: impl Into<String>) -> Diagnostics {
    Diagnostic::error("Incomplete SSH connection settings", detail)
        .at(AttributePath::parse(&format!("ssh.{attr}")))
        .into()
}

fn auth(private_key: &Option<String>, private_key_file: &Option<String>) -> Option<Auth> {
    match (private_key, private_key_file) {
        (Some(k), _) => Some(Auth::key_content(k.clone())),
        (None, Some(f)) => Some(Auth::key_file(f.clone())),
        (None, None) => None,
    }
}

fn port(p: Option<i64>) -> u16 {
    p.and_then(|p| u16::try_from(p).ok()).unwrap_or(22)
}

/// The SSH target a resource's `ssh` block describes, with the provider's defaults filled in.
pub fn target(conn: &ConnectionModel, defaults: &ProviderSshModel) -> Result<Target, Diagnostics> {
    let merged = conn.with_defaults(defaults);
    let (host, c) = (&merged.host, &merged.settings);
    let user = c.user.clone().unwrap_or_else(|| "root".into());
    let Some(key) = auth(&c.private_key, &c.private_key_file) else {
        return Err(config_error(
            "private_key",
            format!("No SSH key for {host}: set ssh.private_key or ssh.private_key_file in the resource, or the provider's ssh block."),
        ));
    };
    let host_key = if c.insecure_ignore_host_key == Some(true) {
        HostKeyPolicy::InsecureIgnore
    } else if let Some(fps) = &c.host_key_fingerprints {
        HostKeyPolicy::Fingerprints(fps.clone())
    } else if let Some(kh) = &c.known_hosts {
        HostKeyPolicy::KnownHosts(kh.clone())
    } else if let Some(path) = &c.known_hosts_file {
        let content = std::fs::read_to_string(path)
            .map_err(|e| config_error("known_hosts_file", format!("Cannot read {path}: {e}")))?;
        HostKeyPolicy::KnownHosts(content)
    } else {
        return Err(config_error(
            "known_hosts",
            format!(
                "The host key of {} cannot be verified: set known_hosts, known_hosts_file or host_key_fingerprints \
                 (or, for a throw-away lab only, insecure_ignore_host_key = true).",
                host
            ),
        ));
    };
    let mut t = Target::new(host.clone(), user.clone(), key.clone(), host_key.clone())
        .with_port(port(merged.port))
        .with_sudo(c.sudo.unwrap_or(false));
    if let Some(BastionModel { host, port: bport, user: buser, private_key, private_key_file }) = &c.bastion {
        let bauth = auth(private_key, private_key_file).unwrap_or(key);
        t = t.with_bastion(
            Target::new(host.clone(), buser.clone().unwrap_or(user), bauth, host_key).with_port(port(*bport)),
        );
    }
    Ok(t)
}

impl Node {
    pub async fn connect(ctx: &Context, conn: &ConnectionModel) -> Result<Node, Diagnostics> {
        let data = ctx.provider_data::<ProviderData>()?;
        let t = target(conn, &data.ssh.defaults)?;
        Ok(Node::from_target(ctx, &data.ssh, t))
    }

    /// A node for an already-resolved target (tests, tools).
    pub fn from_target(ctx: &Context, access: &SshAccess, t: Target) -> Node {
        let label = t.label();
        let lock = access.lock_for(&format!("{}:{}", t.host, t.port));
        Node { client: access.pool.client(t), label, lock, ctx: ctx.clone() }
    }

    /// `user@host:port` (plus bastion).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn resource(&self) -> &str {
        match self.ctx.resource_type() {
            "" => "node",
            t => t,
        }
    }

    /// Logged before each step: never the command (it may hold secrets) nor file contents.
    fn trace(&self, step: &str) {
        tracing::debug!(resource = self.resource(), operation = self.ctx.operation(), host = %self.label, step, "node step");
    }

    /// The error for a failed step: resource, step and host, and why when the
    /// operation was stopped (timeout or cancellation).
    fn fail(&self, step: &str, e: strata_ssh::Error) -> anyhow::Error {
        if let (strata_ssh::Error::Cancelled { .. }, Some(reason)) = (&e, self.ctx.stop_reason()) {
            return anyhow!(
                "{}: {step} on {} stopped: {reason}; the command was killed on the node",
                self.resource(),
                self.label
            );
        }
        anyhow!(e).context(format!("{}: {step} on {} failed", self.resource(), self.label))
    }

    /// Serialises changes to this node within the provider process; waiting for it
    /// ends when the operation is stopped.
    pub async fn exclusive(&self) -> anyhow::Result<tokio::sync::OwnedMutexGuard<()>> {
        tokio::select! {
            g = self.lock.clone().lock_owned() => Ok(g),
            _ = self.ctx.cancel.cancelled() => Err(self.fail(
                "waiting for another change on this node",
                strata_ssh::Error::Cancelled { host: self.label.clone() },
            )),
        }
    }

    /// Runs `cmd`; `step` says what it is for (e.g. "reloading nfs-ganesha"), in logs
    /// and errors.
    pub async fn run(&self, step: &str, cmd: &str) -> anyhow::Result<Exec> {
        self.run_input(step, cmd, None).await
    }

    /// Runs a command with `input` on its stdin.
    pub async fn run_input(&self, step: &str, cmd: &str, input: Option<&[u8]>) -> anyhow::Result<Exec> {
        self.trace(step);
        let out = self.client.exec_cancellable(cmd, input, &self.ctx.cancel).await.map_err(|e| self.fail(step, e))?;
        Ok(Exec {
            status: out.exit_status as i32,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; the error carries its stderr.
    pub async fn run_ok(&self, step: &str, cmd: &str) -> anyhow::Result<String> {
        let out = self.run(step, cmd).await?;
        if out.status != 0 {
            bail!("{}: {step} failed on {} (exit {}): {}", self.resource(), self.label, out.status, out.stderr.trim());
        }
        Ok(out.stdout)
    }

    pub async fn read_file(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let step = format!("reading {path}");
        self.trace(&step);
        self.client.read_file_cancellable(path, &self.ctx.cancel).await.map_err(|e| self.fail(&step, e))
    }

    /// Atomic replace (temp file, fsync, rename), root-owned; creates missing parents.
    pub async fn write_file(&self, path: &str, content: &[u8], mode: u32) -> anyhow::Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            self.run_ok(&format!("creating {parent}"), &format!("mkdir -p -- {}", quote(parent))).await?;
        }
        let step = format!("writing {path}");
        self.trace(&step);
        self.client
            .upload_cancellable(path, content, mode, Some("root"), Some("root"), &self.ctx.cancel)
            .await
            .map_err(|e| self.fail(&step, e))
    }

    pub async fn remove_file(&self, path: &str) -> anyhow::Result<()> {
        self.run_ok(&format!("removing {path}"), &format!("rm -f -- {}", quote(path))).await.map(|_| ())
    }
}
