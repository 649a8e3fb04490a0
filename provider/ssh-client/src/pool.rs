//! Connections and their reuse. One SSH connection per target (keyed by
//! user, host, port and the rest of the target's settings) is shared by all
//! callers in the process; each operation opens its own channel on it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::Channel;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::authenticate;
use crate::config::{HostKeyPolicy, KeySource, Target};
use crate::error::Error;
use crate::hostkey::{wants_certificates, Verifier};

/// Tunables for a [`Pool`].
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Bound on TCP connect + handshake + authentication, per hop.
    pub connect_timeout: Duration,
    /// SSH keepalive interval; dead peers are noticed after 3 missed replies.
    pub keepalive_interval: Duration,
    /// Concurrent channels per connection. OpenSSH's default `MaxSessions`
    /// is 10; staying below it keeps concurrent callers from being refused.
    pub max_channels_per_connection: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            max_channels_per_connection: 8,
        }
    }
}

/// One authenticated SSH connection.
pub(crate) struct Connection {
    pub(crate) handle: Handle<Verifier>,
    /// Why the server last refused a channel (see [`Verifier::open_failure`]).
    open_failure: Arc<Mutex<Option<String>>>,
    channels: Arc<Semaphore>,
    // Keeps the bastion connection alive as long as this tunnelled one.
    _via: Option<Arc<Connection>>,
}

/// A session channel plus the permit that counts it against the limit.
pub(crate) struct PooledChannel {
    pub(crate) channel: Channel<client::Msg>,
    pub(crate) _permit: OwnedSemaphorePermit,
}

impl Connection {
    fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The server's description of the channel it just refused. russh reports the
    /// refusal to the opener before it calls the handler that gets the description,
    /// so wait for that briefly.
    async fn open_failure_reason(&self) -> Option<String> {
        for _ in 0..50 {
            if let Some(why) = self.open_failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Some(why);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Identity of a cached connection: (user, host, port) plus a digest of the
/// credentials, host key policy and bastion chain, so a connection verified
/// under one policy is never handed to a caller that asked for another.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    user: String,
    host: String,
    port: u16,
    settings: [u8; 32],
}

impl PoolKey {
    fn of(t: &Target) -> PoolKey {
        let mut h = Sha256::new();
        digest_target(&mut h, t);
        PoolKey { user: t.user.clone(), host: t.host.clone(), port: t.port, settings: h.finalize().into() }
    }
}

fn digest_target(h: &mut Sha256, t: &Target) {
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(t.user.as_bytes());
    field(t.host.as_bytes());
    field(&t.port.to_le_bytes());
    match &t.auth.key {
        KeySource::Content(c) => field(c.as_bytes()),
        KeySource::File(p) => field(p.as_os_str().as_encoded_bytes()),
        KeySource::Agent { socket, identity } => {
            field(b"agent");
            field(socket.as_os_str().as_encoded_bytes());
            field(identity.as_deref().unwrap_or("").as_bytes());
        }
    }
    field(t.auth.passphrase.as_deref().unwrap_or("").as_bytes());
    match &t.host_key {
        HostKeyPolicy::KnownHosts(c) => field(c.as_bytes()),
        HostKeyPolicy::Fingerprints(v) => v.iter().for_each(|f| field(f.as_bytes())),
        HostKeyPolicy::InsecureIgnore => field(b"insecure"),
    }
    if let Some(b) = &t.bastion {
        digest_target(h, b);
    }
}

/// Process-wide connection cache. Cheap to clone; clones share connections.
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    options: PoolOptions,
    slots: Mutex<HashMap<PoolKey, Slot>>,
}

impl Pool {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_options(options: PoolOptions) -> Self {
        Pool { inner: Arc::new(PoolInner { options, slots: Mutex::default() }) }
    }

    /// A handle for running operations on `target` through this pool.
    pub fn client(&self, target: Target) -> crate::Client {
        crate::Client::from_parts(self.clone(), target)
    }

    /// Drops every cached connection (open channels keep theirs alive).
    pub fn clear(&self) {
        self.inner.slots.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn slot(&self, key: PoolKey) -> Slot {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key).or_default().clone()
    }

    /// The live connection for `target`, connecting (once, even with many
    /// concurrent callers) if there is none or the cached one died.
    pub(crate) fn get<'a>(
        &'a self,
        target: &'a Target,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Connection>, Error>> + Send + 'a>> {
        // Boxed because reaching a bastion recurses into the pool.
        Box::pin(async move {
            let slot = self.slot(PoolKey::of(target));
            let mut cached = slot.lock().await;
            if let Some(conn) = cached.as_ref() {
                if !conn.is_closed() {
                    return Ok(conn.clone());
                }
                tracing::debug!(host = %target.label(), "cached SSH connection is closed; reconnecting");
            }
            *cached = None;
            let conn = Arc::new(self.connect(target).await?);
            *cached = Some(conn.clone());
            Ok(conn)
        })
    }

    /// Opens a session channel, reconnecting once if the cached connection
    /// turns out to be dead. Safe to retry: nothing has run remotely yet.
    pub(crate) async fn open_session(&self, target: &Target) -> Result<PooledChannel, Error> {
        let label = target.label();
        let mut conn = self.get(target).await?;
        for attempt in 0..2 {
            let permit = conn.channels.clone().acquire_owned().await.map_err(|e| Error::ssh(&label, e))?;
            match conn.handle.channel_open_session().await {
                Ok(channel) => return Ok(PooledChannel { channel, _permit: permit }),
                Err(e) if attempt == 0 && (conn.is_closed() || is_disconnect(&e)) => {
                    tracing::debug!(host = %label, error = %e, "SSH connection died; reconnecting");
                    drop(permit);
                    self.forget(target, &conn).await;
                    conn = self.get(target).await?;
                }
                Err(e) => return Err(Error::ssh(&label, e)),
            }
        }
        unreachable!("second attempt always returns")
    }

    async fn forget(&self, target: &Target, conn: &Arc<Connection>) {
        let slot = self.slot(PoolKey::of(target));
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *cached = None;
        }
    }

    async fn connect(&self, target: &Target) -> Result<Connection, Error> {
        target.validate()?;
        let label = target.label();
        let opts = &self.inner.options;
        let mut preferred = russh::Preferred::default();
        if wants_certificates(&target.host_key, &target.host, target.port) {
            preferred.host_key_certificates = preferred.key.clone();
        }
        let config = Arc::new(client::Config {
            keepalive_interval: Some(opts.keepalive_interval),
            keepalive_max: 3,
            inactivity_timeout: None,
            preferred,
            ..Default::default()
        });
        let open_failure = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            label: label.clone(),
            host: target.host.clone(),
            port: target.port,
            policy: target.host_key.clone(),
            open_failure: open_failure.clone(),
        };
        let timeout = opts.connect_timeout;
        // Past the TCP connect the host answers: a slow handshake or login is not "gone".
        let login_timed_out = || Error::LoginTimeout { host: label.clone(), seconds: timeout.as_secs() };

        let (mut handle, via) = match &target.bastion {
            None => {
                let tcp = tcp_connect(&target.host, target.port, timeout, &label).await?;
                let _ = tcp.set_nodelay(true);
                let handle = tokio::time::timeout(timeout, client::connect_stream(config, tcp, verifier))
                    .await
                    .map_err(|_| login_timed_out())?
                    .map_err(|e| e.at(&label))?;
                (handle, None)
            }
            Some(bastion) => {
                let via_bastion = |source: Error| Error::Bastion {
                    host: label.clone(),
                    bastion: bastion.label(),
                    source: Box::new(source),
                };
                let jump = self.get(bastion).await.map_err(via_bastion)?;
                // The bastion's sshd opens the TCP connection to the target;
                // the target's host name is resolved there, not here.
                let open =
                    jump.handle.channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0);
                let channel = match tokio::time::timeout(timeout, open).await {
                    Err(_) => return Err(Error::ConnectTimeout { host: label.clone(), seconds: timeout.as_secs() }),
                    Ok(Ok(channel)) => channel,
                    Ok(Err(e)) => {
                        let why = jump.open_failure_reason().await;
                        return Err(tunnel_refused(&label, &bastion.label(), &e, why.as_deref()));
                    }
                };
                let handle =
                    tokio::time::timeout(timeout, client::connect_stream(config, channel.into_stream(), verifier))
                        .await
                        .map_err(|_| login_timed_out())?
                        .map_err(|e| e.at(&label))?;
                (handle, Some(jump))
            }
        };
        tokio::time::timeout(timeout, authenticate(&mut handle, target, &label))
            .await
            .map_err(|_| login_timed_out())??;
        tracing::debug!(host = %label, "SSH connection established");
        Ok(Connection {
            handle,
            open_failure,
            channels: Arc::new(Semaphore::new(opts.max_channels_per_connection.max(1))),
            _via: via,
        })
    }
}

/// Resolves `host` here, then opens the TCP connection; each failure is classified:
/// only refused, no route and timed out mean the host itself does not answer.
async fn tcp_connect(host: &str, port: u16, timeout: Duration, label: &str) -> Result<tokio::net::TcpStream, Error> {
    let resolve = tokio::net::lookup_host((host, port));
    let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(timeout, resolve)
        .await
        .map_err(|_| Error::Resolve { host: label.into(), reason: format!("no answer within {}s", timeout.as_secs()) })?
        .map_err(|e| Error::Resolve { host: label.into(), reason: e.to_string() })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Resolve { host: label.into(), reason: "the name has no address".into() });
    }
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addrs[..])).await {
        Err(_) => Err(Error::ConnectTimeout { host: label.into(), seconds: timeout.as_secs() }),
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) if is_unreachable_io(&e) => Err(Error::Connect { host: label.into(), reason: e.to_string() }),
        Ok(Err(e)) => Err(Error::ssh(label, format_args!("cannot open a TCP connection: {e}"))),
    }
}

/// The connect errors that mean the host does not answer: refused, no route (host or
/// network unreachable), timed out.
pub(crate) fn is_unreachable_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | HostUnreachable | NetworkUnreachable | TimedOut)
}

/// What OpenSSH's sshd says (strerror) when its own connect to the target failed.
const UNREACHABLE_AT_BASTION: [&str; 4] =
    ["Connection refused", "No route to host", "Network is unreachable", "Connection timed out"];

/// The error for a tunnel the bastion refused: the host does not answer only when
/// the bastion's connect to it failed that way; anything else (forwarding forbidden,
/// the name unknown at the bastion) is the bastion's failure.
pub(crate) fn tunnel_refused(label: &str, bastion: &str, e: &russh::Error, why: Option<&str>) -> Error {
    let why = why.filter(|w| !w.is_empty());
    let connect_failed = matches!(e, russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed));
    if let (true, Some(w)) = (connect_failed, why) {
        if UNREACHABLE_AT_BASTION.iter().any(|u| w.eq_ignore_ascii_case(u)) {
            return Error::Connect { host: label.into(), reason: format!("the bastion {bastion} reports: {w}") };
        }
    }
    let reason = match why {
        Some(w) => format!("it could not open a tunnel: {e} ({w})"),
        None => format!("it could not open a tunnel: {e}"),
    };
    Error::Bastion {
        host: label.into(),
        bastion: bastion.into(),
        source: Box::new(Error::Ssh { host: bastion.into(), reason }),
    }
}

fn is_disconnect(e: &russh::Error) -> bool {
    matches!(e, russh::Error::SendError | russh::Error::Disconnect | russh::Error::HUP | russh::Error::IO(_))
}
