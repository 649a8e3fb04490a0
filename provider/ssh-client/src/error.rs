//! Error type. Every variant names the host; none carries key material.

/// Errors from this crate. `host` is the target label (`user@host:port`,
/// plus any bastion).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid SSH configuration for {host}: {reason}")]
    Config { host: String, reason: String },

    #[error("cannot load the SSH private key for {host}: {reason}")]
    Key { host: String, reason: String },

    /// The host itself does not answer on the network: connection refused, no route
    /// to it, or its TCP connect timed out (also as reported by a bastion).
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },

    /// The TCP connection to the host was not established in time.
    #[error("timed out after {seconds}s connecting to {host}")]
    ConnectTimeout { host: String, seconds: u64 },

    /// The host name does not resolve on this machine: says nothing about the host.
    #[error("cannot resolve the host name of {host}: {reason}")]
    Resolve { host: String, reason: String },

    /// The host accepted the TCP connection, but the SSH handshake and login did not
    /// finish in time (an overloaded host, slow PAM or DNS on its side).
    #[error(
        "{host} accepted the connection but the SSH login did not finish within {seconds}s (the host answers, so it \
         is not treated as gone)"
    )]
    LoginTimeout { host: String, seconds: u64 },

    /// The bastion failed (down, login refused, forwarding forbidden, the host's name
    /// unknown there): says nothing about the host behind it.
    #[error("cannot reach {host} through the bastion {bastion}: {source}")]
    Bastion {
        host: String,
        bastion: String,
        #[source]
        source: Box<Error>,
    },

    #[error(
        "host key verification failed for {host}: the server presented {presented} but the expected host key is {}; \
         refusing to connect (possible man-in-the-middle, or the host was rebuilt: update known_hosts/fingerprints)",
        expected.join(" or ")
    )]
    HostKeyMismatch { host: String, expected: Vec<String>, presented: String },

    #[error(
        "host key verification failed for {host}: host is unknown (no matching known_hosts entry{}); \
         the server presented {presented}",
        if *unparsed_lines > 0 { format!("; {unparsed_lines} known_hosts line(s) could not be parsed") } else { String::new() }
    )]
    UnknownHost { host: String, presented: String, unparsed_lines: usize },

    #[error("host key verification failed for {host}: the presented host key {presented} is marked @revoked")]
    HostKeyRevoked { host: String, presented: String },

    #[error(
        "host key verification failed for {host}: its host certificate is signed by CA {ca}, which known_hosts does \
         not list as a @cert-authority for this host{}",
        if trusted.is_empty() { String::new() } else { format!(" (trusted for it: {})", trusted.join(", ")) }
    )]
    HostCertificateUntrusted { host: String, ca: String, trusted: Vec<String> },

    #[error("host key verification failed for {host}: its host certificate is not valid: {reason}")]
    HostCertificateInvalid { host: String, reason: String },

    #[error("authentication as {user} failed for {host}: the server did not accept public key {key_fingerprint}")]
    AuthFailed { host: String, user: String, key_fingerprint: String },

    #[error("SSH error with {host}: {reason}")]
    Ssh { host: String, reason: String },

    #[error("connection to {host} was lost before the command finished")]
    Disconnected { host: String },

    #[error("command on {host} timed out after {seconds}s (the remote process was sent SIGKILL)")]
    Timeout { host: String, seconds: u64 },

    #[error("command on {host} was cancelled (the remote process was sent SIGKILL)")]
    Cancelled { host: String },

    #[error("{operation} on {host} failed with exit status {exit_status}: {stderr}")]
    Remote { host: String, operation: String, exit_status: u32, stderr: String },

    /// Raised inside russh's handler before a host label is attached;
    /// converted to `Ssh` at the crate boundary.
    #[error("SSH transport error: {0}")]
    Transport(#[from] russh::Error),
}

impl Error {
    /// Attaches the host label to bare transport errors.
    pub(crate) fn at(self, host: &str) -> Error {
        match self {
            Error::Transport(e) => Error::Ssh { host: host.to_string(), reason: e.to_string() },
            other => other,
        }
    }

    pub(crate) fn ssh(host: &str, e: impl std::fmt::Display) -> Error {
        Error::Ssh { host: host.to_string(), reason: e.to_string() }
    }

    /// True when the host itself does not answer at the network level (refused, no
    /// route, TCP connect timed out), directly or as its bastion reports it: the only
    /// failure that may mean the machine is gone. DNS, bastion, authentication,
    /// host-key and login-timeout failures say nothing about the host's existence.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::ConnectTimeout { .. })
    }

    /// True for the host-key-verification family of failures (also at a bastion).
    pub fn is_host_key_error(&self) -> bool {
        if let Error::Bastion { source, .. } = self {
            return source.is_host_key_error();
        }
        matches!(
            self,
            Error::HostKeyMismatch { .. }
                | Error::UnknownHost { .. }
                | Error::HostKeyRevoked { .. }
                | Error::HostCertificateUntrusted { .. }
                | Error::HostCertificateInvalid { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
