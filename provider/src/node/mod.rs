//! A node reached over SSH, as node-facing resources use it: run a command, read and
//! write files, each step under the operation's cancellation token (Ctrl-C,
//! `timeouts`). Built from a resource's `ssh` block merged with the provider's `ssh`
//! defaults; connections are pooled per provider process.

pub mod services;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail};
use strata_ssh::{Auth, CancellationToken, HostKeyPolicy, Pool, Target};

use crate::framework::{AttributePath, Context, Diagnostic, Diagnostics};
use crate::provider::ProviderData;
use crate::resources::connection::{ConnectionModel, ProviderSshModel};

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

impl Node {
    /// The in-process part of [`Node::exclusive`]: no two changes of this process on
    /// the node hold (or wait for) its node lock at once.
    async fn hold_locally(&self) -> anyhow::Result<tokio::sync::OwnedMutexGuard<()>> {
        tokio::select! {
            g = self.lock.clone().lock_owned() => Ok(g),
            _ = self.ctx.cancel.cancelled() => bail!(
                "{}: waiting for another change on {} to finish stopped: {}",
                self.resource(),
                self.label,
                self.ctx.stop_reason().unwrap_or_default()
            ),
        }
    }
}

/// How long a change waits for another one on the same node (its node lock).
pub const NODE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// A change's hold on its node (see [`Node::exclusive`]). Dropping it lets go too, in
/// the background; [`Exclusive::release`] lets go before returning.
#[derive(Debug)]
pub struct Exclusive {
    _local: tokio::sync::OwnedMutexGuard<()>,
    remote: Option<strata_ssh::RemoteLock>,
}

impl Exclusive {
    pub async fn release(mut self) {
        if let Some(remote) = self.remote.take() {
            remote.release().await;
        }
    }
}

/// How long putting things back after a failed or stopped step may take.
pub const CLEANUP_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A node, for one resource operation: every command, upload and read runs under the
/// operation's cancellation token (Ctrl-C, `timeouts`), and a stopped command is
/// killed on the node with its children.
pub struct Node {
    client: strata_ssh::Client,
    label: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    ctx: Context,
}

/// Quotes a word for `sh`. A NUL byte passes through: the SSH client refuses any
/// command holding one, with an error naming the host.
pub fn quote(s: &str) -> String {
    shlex::Quoter::new().allow_nul(true).quote(s).expect("with allow_nul, quoting cannot fail").into_owned()
}

fn config_error(attr: &str, detail: impl Into<String>) -> Diagnostics {
    Diagnostic::error("Incomplete SSH connection settings", detail)
        .at(AttributePath::parse(&format!("ssh.{attr}")))
        .into()
}

/// `~` and `~/...` are the home directory, as in OpenSSH's own settings.
pub fn expand(path: &str) -> String {
    shellexpand::tilde(path).into_owned()
}

/// One block's credentials: `agent = true` (or an `agent_identity`) asks for the
/// ssh-agent; else a key; else the agent when `SSH_AUTH_SOCK` is set and `agent` is
/// not `false`, as OpenSSH does. `Ok(None)`: the block gives no credentials.
fn auth(
    attr_prefix: &str,
    private_key: &Option<String>,
    private_key_file: &Option<String>,
    agent: Option<bool>,
    agent_identity: &Option<String>,
    socket: Option<&std::ffi::OsStr>,
) -> Result<Option<Auth>, Diagnostics> {
    let explicit = agent == Some(true) || agent_identity.is_some();
    if explicit {
        let Some(socket) = socket else {
            return Err(config_error(
                &format!("{attr_prefix}agent"),
                "The ssh-agent was asked for, but SSH_AUTH_SOCK is not set in Terraform's environment (start an \
                 agent, e.g. `eval $(ssh-agent)`, and ssh-add the key), or give private_key / private_key_file.",
            ));
        };
        return Ok(Some(Auth::agent(socket, agent_identity.clone())));
    }
    Ok(match (private_key, private_key_file, socket) {
        (Some(k), _, _) => Some(Auth::key_content(k.clone())),
        (None, Some(f), _) => Some(Auth::key_file(expand(f))),
        (None, None, Some(socket)) if agent != Some(false) => Some(Auth::agent(socket, None)),
        _ => None,
    })
}

fn port(p: Option<i64>) -> u16 {
    p.and_then(|p| u16::try_from(p).ok()).unwrap_or(22)
}

/// Host-key settings of one block; `None` when it sets none.
fn host_key_policy(
    attr_prefix: &str,
    known_hosts: &Option<String>,
    known_hosts_file: &Option<String>,
    fingerprints: &Option<Vec<String>>,
    insecure: Option<bool>,
) -> Result<Option<HostKeyPolicy>, Diagnostics> {
    // Validation refuses pins together with insecure_ignore_host_key = true in one
    // block, and merging drops an inherited one where the resource pins keys.
    Ok(Some(if let Some(fps) = fingerprints {
        HostKeyPolicy::Fingerprints(fps.clone())
    } else if let Some(kh) = known_hosts {
        HostKeyPolicy::KnownHosts(kh.clone())
    } else if let Some(path) = known_hosts_file {
        let path = expand(path);
        let content = std::fs::read_to_string(&path)
            .map_err(|e| config_error(&format!("{attr_prefix}known_hosts_file"), format!("Cannot read {path}: {e}")))?;
        HostKeyPolicy::KnownHosts(content)
    } else if insecure == Some(true) {
        HostKeyPolicy::InsecureIgnore
    } else {
        return Ok(None);
    }))
}

/// Why no key is available, saying how to fix it; at refresh, import and destroy a
/// write-only `private_key` is not there (it is never stored).
fn missing_key(host: &str, operation: &str) -> Diagnostics {
    let fix =
        "set ssh.private_key_file in the resource, or private_key / private_key_file in the provider's ssh block, \
               or load the key into an ssh-agent (SSH_AUTH_SOCK)";
    match operation {
        "read" => Diagnostic::warning(
            "Node not refreshed: no SSH key",
            format!(
                "{host} was not read: ssh.private_key is write-only, so it is not available at refresh. To refresh \
                 this node, {fix}. The last known state is kept."
            ),
        ),
        "delete" | "import" => Diagnostic::error(
            "No SSH key for the node",
            format!(
                "Cannot {operation} on {host}: ssh.private_key is write-only, so it is not available at {operation}; \
                 {fix}."
            ),
        ),
        _ => Diagnostic::error(
            "Incomplete SSH connection settings",
            format!(
                "No SSH key for {host}: set ssh.private_key or ssh.private_key_file in the resource, or the provider's \
                 ssh block, or load the key into an ssh-agent (SSH_AUTH_SOCK)."
            ),
        ),
    }
    .at(AttributePath::parse("ssh.private_key"))
    .into()
}

/// The SSH target a resource's `ssh` block describes, with the provider's defaults
/// filled in. `operation` (`read`, `delete`, ...) shapes the message when no key is
/// available.
pub fn target_for(conn: &ConnectionModel, defaults: &ProviderSshModel, operation: &str) -> Result<Target, Diagnostics> {
    let merged = conn.with_defaults(defaults);
    let (host, c) = (&merged.host, &merged.settings);
    let user = c.user.clone().unwrap_or_else(|| "root".into());
    let agent_socket = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty());
    let socket = agent_socket.as_deref();
    let Some(key) = auth("", &c.private_key, &c.private_key_file, c.agent, &c.agent_identity, socket)? else {
        return Err(missing_key(host, operation));
    };
    let Some(host_key) =
        host_key_policy("", &c.known_hosts, &c.known_hosts_file, &c.host_key_fingerprints, c.insecure_ignore_host_key)?
    else {
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
    if let Some(b) = &c.bastion {
        // A bastion without credentials of its own uses the node's.
        let own =
            b.private_key.is_some() || b.private_key_file.is_some() || b.agent.is_some() || b.agent_identity.is_some();
        let bauth = match own {
            true => auth("bastion.", &b.private_key, &b.private_key_file, b.agent, &b.agent_identity, socket)?
                .unwrap_or(key),
            false => key,
        };
        // A bastion without host-key settings of its own is checked like the node.
        let bkey = host_key_policy(
            "bastion.",
            &b.known_hosts,
            &b.known_hosts_file,
            &b.host_key_fingerprints,
            b.insecure_ignore_host_key,
        )?
        .unwrap_or(host_key);
        t = t.with_bastion(
            Target::new(b.host.clone(), b.user.clone().unwrap_or(user), bauth, bkey).with_port(port(b.port)),
        );
    }
    Ok(t)
}

/// [`target_for`] outside any particular operation.
pub fn target(conn: &ConnectionModel, defaults: &ProviderSshModel) -> Result<Target, Diagnostics> {
    target_for(conn, defaults, "")
}

/// The warning a Read gives when its node does not answer: the object is reported
/// gone, so Terraform plans to create it again, and a rebuild after the machine was
/// lost is one plain `terraform apply`. Creating on a node that was only down is
/// harmless: every node-facing create adopts what is already there.
pub fn gone_warning(node: &Node, then: &str) -> crate::framework::Diagnostic {
    crate::framework::Diagnostic::warning(
        "Node does not answer",
        format!("{} does not answer SSH, so it is treated as gone (e.g. its VM was deleted): {then}.", node.label()),
    )
}

/// Whether every node of a multi-node resource is gone: each one definitely does not
/// answer SSH (`Ok(false)` from [`Node::answers`]). An error (e.g. a host key that does
/// not match) is not "gone": it is reported where the node is read. No nodes at all is
/// not "gone" either.
pub fn all_gone(answers: &[anyhow::Result<bool>]) -> bool {
    !answers.is_empty() && answers.iter().all(|a| matches!(a, Ok(false)))
}

impl Node {
    pub async fn connect(ctx: &Context, conn: &ConnectionModel) -> Result<Node, Diagnostics> {
        let data = ctx.provider_data::<ProviderData>()?;
        let t = target_for(conn, &data.ssh.defaults, ctx.operation())?;
        Ok(Node::from_target(ctx, &data.ssh, t))
    }

    /// A node for an already-resolved target (tests, tools).
    pub fn from_target(ctx: &Context, access: &SshAccess, t: Target) -> Node {
        let label = t.label();
        let lock = access.lock_for(&format!("{}:{}", t.host, t.port));
        Node { client: access.pool.client(t), label, lock, ctx: ctx.clone() }
    }

    /// This node for putting things back after a failed step: its own token, so a
    /// rollback still runs when the operation was stopped (timeout, Ctrl-C). Run the
    /// rollback through [`Node::cleanup`], which bounds its time.
    pub fn for_cleanup(&self) -> Node {
        let ctx = Context::new(CancellationToken::new(), None)
            .for_operation(self.ctx.resource_type().to_string(), self.ctx.operation());
        Node { client: self.client.clone(), label: self.label.clone(), lock: self.lock.clone(), ctx }
    }

    /// Runs `f` (steps on this node), stopping it, with its remote command killed,
    /// once [`CLEANUP_TIME_LIMIT`] is over.
    pub async fn cleanup<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(f);
        tokio::select! {
            r = &mut f => r,
            _ = tokio::time::sleep(CLEANUP_TIME_LIMIT) => {
                self.ctx.stop(format!("the clean-up timed out after {}s", CLEANUP_TIME_LIMIT.as_secs()));
                f.await
            }
        }
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

    /// Serialises changes of one kind on this node: first within this provider
    /// process, then on the node itself (`flock` on `lock_file`, e.g.
    /// `/run/lock/strata-nfs-exports.lock`), so that other provider processes, other
    /// workspaces and an operator's own `flock` on that file wait too. Waiting ends when
    /// the operation is stopped, or after [`NODE_LOCK_WAIT`].
    pub async fn exclusive(&self, lock_file: &str) -> anyhow::Result<Exclusive> {
        let local = self.hold_locally().await?;
        let step = format!("taking the lock {lock_file}");
        self.trace(&step);
        let remote =
            self.client.lock(lock_file, NODE_LOCK_WAIT, &self.ctx.cancel).await.map_err(|e| self.fail(&step, e))?;
        Ok(Exclusive { _local: local, remote: Some(remote) })
    }

    /// Waits, up to `bound` or until the operation is stopped, for a node that does not
    /// answer yet: a machine that was just created or started boots before its sshd
    /// listens (as Terraform's `connection` waits for a new machine). Errors that are
    /// not "does not answer" (bastion, DNS, keys) fail at once.
    pub async fn wait_until_answers(&self, bound: std::time::Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            if self.answers().await? {
                return Ok(());
            }
            if start.elapsed() >= bound {
                anyhow::bail!("{} does not answer SSH after {} s", self.label, bound.as_secs());
            }
            tokio::select! {
                _ = self.ctx.cancel.cancelled() => anyhow::bail!("waiting for {} to answer SSH stopped", self.label),
                _ = crate::wait::sleep("ssh_answer", std::time::Duration::from_millis(500)) => {}
            }
        }
    }

    /// Whether the node answers SSH at all: false only when the node itself does not
    /// answer on its own address (connection refused, no route, TCP connect timed out,
    /// also as its bastion reports it), which after a disaster means the machine is
    /// gone. Everything else is an error naming the node and the cause: a bastion that
    /// is down or forbids forwarding, a name that does not resolve here, a login slower
    /// than the timeout, a refused key or host key. None of these says the node is
    /// gone, and reading them as "gone" would plan to create what exists.
    pub async fn answers(&self) -> anyhow::Result<bool> {
        let step = "connecting";
        self.trace(step);
        match self.client.connect().await {
            Ok(()) => Ok(true),
            Err(e) if e.is_unreachable() => Ok(false),
            Err(e) => Err(self.fail(step, e)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::connection::{BastionModel, SshSettings};
    use strata_ssh::{Auth, KeySource};

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_node_behind_a_bastion_that_is_down_is_an_error_naming_the_bastion_not_gone() {
        let access = SshAccess::new(SshSettings::default());
        let node_port = closed_port();
        let direct = Target::new("127.0.0.1", "root", Auth::key_content("k"), HostKeyPolicy::InsecureIgnore)
            .with_port(node_port);
        let ctx = Context::detached().for_operation("strata_load_balancer", "read");
        // The node itself refuses: it does not answer, which may mean it is gone.
        let node = Node::from_target(&ctx, &access, direct.clone());
        assert!(!node.answers().await.unwrap(), "refused on its own address: does not answer");
        // Its bastion refuses: nothing is known about the node.
        let bastion = Target::new("127.0.0.1", "jump", Auth::key_content("k"), HostKeyPolicy::InsecureIgnore)
            .with_port(closed_port());
        let node = Node::from_target(&ctx, &access, direct.with_bastion(bastion));
        let err = format!("{:#}", node.answers().await.expect_err("a bastion that is down is an error, not gone"));
        for part in ["strata_load_balancer", &format!("127.0.0.1:{node_port}"), "bastion jump@127.0.0.1"] {
            assert!(err.contains(part), "names {part:?}: {err}");
        }
    }

    #[test]
    fn only_nodes_that_all_do_not_answer_are_gone() {
        let no = || Ok(false);
        assert!(all_gone(&[no(), no(), no()]));
        assert!(!all_gone(&[no(), Ok(true), no()]), "one answers: not gone");
        assert!(!all_gone(&[no(), Err(anyhow::anyhow!("host key mismatch"))]), "an error is not gone");
        assert!(!all_gone(&[]), "no nodes: nothing to call gone");
    }

    fn conn(settings: SshSettings) -> ConnectionModel {
        ConnectionModel { host: "10.0.0.5".into(), port: None, settings }
    }

    fn chosen(key: Option<&str>, agent: Option<bool>, identity: Option<&str>, sock: Option<&str>) -> String {
        let sock = sock.map(std::ffi::OsStr::new);
        match auth("", &key.map(str::to_string), &None, agent, &identity.map(str::to_string), sock) {
            Ok(Some(a)) => match a.key {
                KeySource::Content(_) => "key".into(),
                KeySource::File(_) => "file".into(),
                KeySource::Agent { socket, identity } => format!("agent {} {identity:?}", socket.display()),
            },
            Ok(None) => "none".into(),
            Err(d) => format!("error {:?}", d.iter().next().map(|x| x.detail.clone())),
        }
    }

    #[test]
    fn credentials_key_first_then_agent_as_openssh_and_agent_on_request() {
        let sock = Some("/run/agent.sock");
        assert_eq!(chosen(Some("K"), None, None, sock), "key");
        assert_eq!(chosen(None, None, None, sock), "agent /run/agent.sock None");
        assert_eq!(chosen(None, Some(false), None, sock), "none");
        assert_eq!(chosen(None, None, None, None), "none");
        assert_eq!(chosen(None, Some(true), Some("deploy"), sock), "agent /run/agent.sock Some(\"deploy\")");
        let err = chosen(None, Some(true), None, None);
        assert!(err.starts_with("error") && err.contains("SSH_AUTH_SOCK"), "{err}");
    }

    #[tokio::test]
    async fn waiting_for_the_node_lock_ends_when_the_operation_stops() {
        let access = SshAccess::new(SshSettings::default());
        let t = Target::new("10.0.0.5", "root", Auth::key_file("/k"), HostKeyPolicy::InsecureIgnore);
        let other = Node::from_target(&Context::detached(), &access, t.clone());
        let _held = other.hold_locally().await.unwrap();
        let ctx = Context::detached().for_operation("strata_nfs_export", "delete");
        let node = Node::from_target(&ctx, &access, t);
        let stopper = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            stopper.stop("timed out after 1s (timeouts.delete)");
        });
        let err = node.hold_locally().await.unwrap_err().to_string();
        for part in ["strata_nfs_export", "waiting for another change", "root@10.0.0.5:22", "timed out after 1s"] {
            assert!(err.contains(part), "names {part:?}: {err}");
        }
    }

    #[test]
    fn quoted_words_round_trip_through_sh() {
        for w in ["plain", "with space", "it's", "'", "a'b\"c$d`e\\f", "", "line\nbreak", "*", "-rf", "~/x"] {
            let out =
                std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", quote(w))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), w);
        }
    }

    #[test]
    fn resource_pins_win_over_the_providers_insecure_ignore() {
        let d = SshSettings {
            private_key_file: Some("/k".into()),
            insecure_ignore_host_key: Some(true),
            ..Default::default()
        };
        let t = target(
            &conn(SshSettings { known_hosts: Some("10.0.0.5 ssh-ed25519 AAAA".into()), ..Default::default() }),
            &d,
        )
        .unwrap();
        assert!(matches!(t.host_key, HostKeyPolicy::KnownHosts(_)), "{:?}", t.host_key);
        let t = target(
            &conn(SshSettings { host_key_fingerprints: Some(vec!["SHA256:x".into()]), ..Default::default() }),
            &d,
        )
        .unwrap();
        assert_eq!(t.host_key, HostKeyPolicy::Fingerprints(vec!["SHA256:x".into()]));
        // Nothing pinned on the resource: the provider's choice applies.
        assert_eq!(target(&conn(SshSettings::default()), &d).unwrap().host_key, HostKeyPolicy::InsecureIgnore);
    }

    #[test]
    fn tilde_paths_are_in_the_home_directory() {
        let home = std::env::var("HOME").expect("HOME is set");
        let dir = tempfile::tempdir_in(&home).unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap();
        std::fs::write(
            dir.path().join("kh"),
            "10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        )
        .unwrap();
        let c = conn(SshSettings {
            private_key_file: Some("~/.ssh/id_ed25519".into()),
            known_hosts_file: Some(format!("~/{name}/kh")),
            ..Default::default()
        });
        let t = target(&c, &SshSettings::default()).unwrap();
        match &t.auth.key {
            KeySource::File(p) => assert_eq!(p, &std::path::Path::new(&home).join(".ssh/id_ed25519")),
            _ => panic!("a key file"),
        }
        assert!(matches!(&t.host_key, HostKeyPolicy::KnownHosts(c) if c.contains("AAAAC3")));
    }

    #[test]
    fn the_bastion_has_its_own_host_keys_or_the_nodes() {
        let node_pins = Some(vec!["SHA256:node".to_string()]);
        let bastion = |b: BastionModel| {
            let c = conn(SshSettings {
                private_key: Some("k".into()),
                host_key_fingerprints: node_pins.clone(),
                bastion: Some(BastionModel { host: "jump".into(), ..b }),
                ..Default::default()
            });
            target(&c, &SshSettings::default()).unwrap().bastion.unwrap().host_key
        };
        assert_eq!(bastion(BastionModel::default()), HostKeyPolicy::Fingerprints(vec!["SHA256:node".into()]));
        assert_eq!(
            bastion(BastionModel { host_key_fingerprints: Some(vec!["SHA256:jump".into()]), ..Default::default() }),
            HostKeyPolicy::Fingerprints(vec!["SHA256:jump".into()])
        );
        assert_eq!(
            bastion(BastionModel { known_hosts: Some("jump ssh-ed25519 AAAA".into()), ..Default::default() }),
            HostKeyPolicy::KnownHosts("jump ssh-ed25519 AAAA".into())
        );
        assert_eq!(
            bastion(BastionModel { insecure_ignore_host_key: Some(true), ..Default::default() }),
            HostKeyPolicy::InsecureIgnore
        );
    }

    #[test]
    fn without_the_write_only_key_refresh_warns_and_destroy_fails_saying_what_to_set() {
        let c = conn(SshSettings { known_hosts: Some("kh".into()), ..Default::default() });
        let d = SshSettings::default();
        let read = target_for(&c, &d, "read").unwrap_err();
        assert!(!read.has_errors(), "{read}");
        assert!(read.0[0].detail.contains("ssh.private_key_file") && read.0[0].detail.contains("10.0.0.5"), "{read}");
        let delete = target_for(&c, &d, "delete").unwrap_err();
        assert!(delete.has_errors());
        assert!(
            delete.0[0].detail.contains("write-only") && delete.0[0].detail.contains("private_key_file"),
            "{delete}"
        );
    }
}
