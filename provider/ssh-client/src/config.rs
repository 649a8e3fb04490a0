//! Connection targets and their credentials.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;

/// Where the private key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// Key material itself (OpenSSH `-----BEGIN OPENSSH PRIVATE KEY-----` or PEM).
    Content(String),
    /// A path to a key file, read when connecting.
    File(PathBuf),
    /// The keys an ssh-agent holds (its socket, usually `$SSH_AUTH_SOCK`): each is
    /// offered in turn, as OpenSSH does; `identity` narrows them to the one whose
    /// comment, public key or SHA256 fingerprint it is. The keys never leave the agent.
    Agent { socket: PathBuf, identity: Option<String> },
}

/// Public key authentication settings. `Debug` never shows key material or
/// the passphrase.
#[derive(Clone)]
pub struct Auth {
    pub key: KeySource,
    pub passphrase: Option<String>,
}

impl Auth {
    pub fn key_content(content: impl Into<String>) -> Self {
        Auth { key: KeySource::Content(content.into()), passphrase: None }
    }

    pub fn key_file(path: impl Into<PathBuf>) -> Self {
        Auth { key: KeySource::File(path.into()), passphrase: None }
    }

    pub fn agent(socket: impl Into<PathBuf>, identity: Option<String>) -> Self {
        Auth { key: KeySource::Agent { socket: socket.into(), identity }, passphrase: None }
    }

    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(passphrase.into());
        self
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.key {
            KeySource::Content(_) => "<inline key, redacted>".to_string(),
            KeySource::File(p) => format!("file {}", p.display()),
            KeySource::Agent { socket, identity } => match identity {
                Some(i) => format!("ssh-agent at {} (identity {i})", socket.display()),
                None => format!("ssh-agent at {}", socket.display()),
            },
        };
        f.debug_struct("Auth")
            .field("key", &key)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How the server's host key is checked. There is no "accept anything"
/// default: `InsecureIgnore` must be chosen explicitly.
#[derive(Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// known_hosts file content (plain or hashed `|1|` entries).
    KnownHosts(String),
    /// Accepted fingerprints in `ssh-keygen -lf` form, e.g. `SHA256:abc...`.
    Fingerprints(Vec<String>),
    /// Skip verification. Only for `insecure_ignore_host_key = true`.
    InsecureIgnore,
}

impl fmt::Debug for HostKeyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Content is public but long; a summary keeps logs readable.
            HostKeyPolicy::KnownHosts(c) => write!(f, "KnownHosts({} lines)", c.lines().count()),
            HostKeyPolicy::Fingerprints(v) => f.debug_tuple("Fingerprints").field(v).finish(),
            HostKeyPolicy::InsecureIgnore => f.write_str("InsecureIgnore"),
        }
    }
}

/// One SSH endpoint, optionally reached through a bastion.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    pub host_key: HostKeyPolicy,
    pub bastion: Option<Box<Target>>,
    /// Wrap commands in `sudo -n` (ignored when `user` is root).
    pub sudo: bool,
}

impl Target {
    /// A target on port 22, no bastion, no sudo.
    pub fn new(host: impl Into<String>, user: impl Into<String>, auth: Auth, host_key: HostKeyPolicy) -> Self {
        Target { host: host.into(), port: 22, user: user.into(), auth, host_key, bastion: None, sudo: false }
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn with_bastion(mut self, bastion: Target) -> Self {
        self.bastion = Some(Box::new(bastion));
        self
    }

    pub fn with_sudo(mut self, sudo: bool) -> Self {
        self.sudo = sudo;
        self
    }

    /// `user@host:port`, plus the bastion chain; used in every error message.
    pub fn label(&self) -> String {
        let mut s = format!("{}@{}:{}", self.user, self.host, self.port);
        if let Some(b) = &self.bastion {
            s.push_str(&format!(" (via {})", b.label()));
        }
        s
    }

    /// Whether commands get wrapped in `sudo -n`.
    pub(crate) fn uses_sudo(&self) -> bool {
        self.sudo && self.user != "root"
    }

    /// Catches configuration mistakes before any network traffic.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Config { host: self.label(), reason });
        if self.host.is_empty() {
            return bad("host is empty".into());
        }
        if self.user.is_empty() {
            return bad("user is empty".into());
        }
        if self.port == 0 {
            return bad("port 0 is not valid".into());
        }
        if let HostKeyPolicy::Fingerprints(fps) = &self.host_key {
            if fps.is_empty() {
                return bad("host_key fingerprints list is empty".into());
            }
            for fp in fps {
                if !fp.starts_with("SHA256:") {
                    return bad(format!(
                        "host key fingerprint {fp:?} is not in SHA256:... form (as printed by `ssh-keygen -lf`)"
                    ));
                }
            }
        }
        if let Some(b) = &self.bastion {
            b.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let t = Target::new(
            "h",
            "u",
            Auth::key_content("-----BEGIN OPENSSH PRIVATE KEY-----SECRETMATERIAL").with_passphrase("hunter2"),
            HostKeyPolicy::InsecureIgnore,
        );
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("SECRETMATERIAL"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("redacted"), "{dbg}");
    }

    #[test]
    fn validate_rejects_md5_fingerprints() {
        let t =
            Target::new("node1", "root", Auth::key_file("/k"), HostKeyPolicy::Fingerprints(vec!["MD5:aa:bb".into()]));
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("root@node1:22") && err.contains("SHA256:"), "{err}");
    }

    #[test]
    fn label_names_bastion_chain() {
        let b = Target::new("jump", "ops", Auth::key_file("/k"), HostKeyPolicy::InsecureIgnore).with_port(2222);
        let t = Target::new("10.0.0.5", "root", Auth::key_file("/k"), HostKeyPolicy::InsecureIgnore).with_bastion(b);
        assert_eq!(t.label(), "root@10.0.0.5:22 (via ops@jump:2222)");
    }
}
