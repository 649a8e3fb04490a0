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
        let verifier = Verifier {
            label: label.clone(),
            host: target.host.clone(),
            port: target.port,
            policy: target.host_key.clone(),
        };
        let timeout = opts.connect_timeout;
        let timed_out = || Error::ConnectTimeout { host: label.clone(), seconds: timeout.as_secs() };

        let (mut handle, via) = match &target.bastion {
            None => {
                let tcp =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect((target.host.as_str(), target.port)))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(|e| Error::Connect { host: label.clone(), reason: e.to_string() })?;
                let _ = tcp.set_nodelay(true);
                let handle = tokio::time::timeout(timeout, client::connect_stream(config, tcp, verifier))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| e.at(&label))?;
                (handle, None)
            }
            Some(bastion) => {
                let jump = self.get(bastion).await?;
                // The bastion's sshd opens the TCP connection to the target;
                // the target's host name is resolved there, not here.
                let channel = jump
                    .handle
                    .channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0)
                    .await
                    .map_err(|e| Error::Connect {
                        host: label.clone(),
                        reason: format!("bastion {} could not open a tunnel: {e}", bastion.label()),
                    })?;
                let handle =
                    tokio::time::timeout(timeout, client::connect_stream(config, channel.into_stream(), verifier))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(|e| e.at(&label))?;
                (handle, Some(jump))
            }
        };
        tokio::time::timeout(timeout, authenticate(&mut handle, target, &label)).await.map_err(|_| timed_out())??;
        tracing::debug!(host = %label, "SSH connection established");
        Ok(Connection {
            handle,
            channels: Arc::new(Semaphore::new(opts.max_channels_per_connection.max(1))),
            _via: via,
        })
    }
}

fn is_disconnect(e: &russh::Error) -> bool {
    matches!(e, russh::Error::SendError | russh::Error::Disconnect | russh::Error::HUP | russh::Error::IO(_))
}
