//! Errors. None of them carries a credential: requests are described by method and
//! path only, and the token/ticket travel in headers that are never formatted.

use std::collections::BTreeMap;
use std::fmt;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
pub enum Error {
    /// Bad client configuration (endpoint, CA certificate, credentials' shape).
    Config(String),
    /// HTTP 400 "Parameter verification failed.": which parameter and why.
    Params {
        op: String,
        errors: BTreeMap<String, String>,
    },
    /// Any other non-2xx answer; PVE puts its message in the reason phrase.
    Api {
        op: String,
        status: u16,
        message: String,
    },
    /// The request may or may not have reached the server (connection reset, timeout).
    Transport {
        op: String,
        message: String,
    },
    /// A task (UPID) ended with something other than OK / WARNINGS.
    Task {
        upid: String,
        exitstatus: String,
        log_tail: Vec<String>,
    },
    /// The answer was not what the API documents.
    Decode {
        op: String,
        message: String,
    },
    Timeout(String),
    Cancelled,
}

impl Error {
    /// The message as PVE worded it, for pattern checks.
    fn text(&self) -> &str {
        match self {
            Error::Api { message, .. } => message,
            Error::Task { exitstatus, .. } => exitstatus,
            _ => "",
        }
    }

    /// The VM/config lock is held by someone else; trying again later can succeed.
    pub fn is_lock(&self) -> bool {
        let t = self.text();
        (t.contains("can't lock file") && t.contains("got timeout"))
            || t.contains("VM is locked")
            || t.contains("CT is locked")
    }

    pub fn is_not_found(&self) -> bool {
        let t = self.text();
        t.contains("does not exist") && (t.contains("Configuration file") || t.contains("VM "))
            || t.starts_with("no such VM")
    }

    /// Proxmox's answers meaning "there is no guest agent to ask" (as opposed to an
    /// agent that failed): not running, not configured, or the VM is stopped.
    pub fn is_no_agent(&self) -> bool {
        let Error::Api { status: 500, message, .. } = self else { return false };
        message.starts_with("QEMU guest agent is not running")
            || message.starts_with("No QEMU guest agent configured")
            || (message.starts_with("VM ") && message.ends_with(" is not running"))
    }

    /// The guest agent answered with an error of its own (PVE's "Agent error: ..."),
    /// e.g. a file it cannot open.
    pub fn is_agent_error(&self) -> bool {
        matches!(self, Error::Api { status: 500, message, .. } if message.starts_with("Agent error"))
    }

    /// Proxmox's permission refusal (HTTP 403 "Permission check failed (...)"), e.g. a
    /// setting only `root@pam` may change, sent with an API token.
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::Api { status: 403, .. })
    }

    /// The reason inside "Permission check failed (REASON)", else the whole message.
    pub fn permission_reason(&self) -> Option<&str> {
        let Error::Api { status: 403, message, .. } = self else { return None };
        Some(message.strip_prefix("Permission check failed (").and_then(|m| m.strip_suffix(')')).unwrap_or(message))
    }

    pub fn is_already_exists(&self) -> bool {
        self.text().contains("already exists")
    }

    /// Whether the server's answer was an overload/outage or lock timeout: nothing
    /// happened and the same request may be sent again.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, message, .. } => {
                matches!(status, 502..=504)
                    || (*status == 500
                        && (message.is_empty()
                            || message.starts_with("Internal Server Error")
                            || message.starts_with("Service Unavailable")))
                    || self.is_lock()
            }
            _ => false,
        }
    }

    /// The request may have been carried out although no answer arrived.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Transport { .. } | Error::Timeout(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid Proxmox client configuration: {m}"),
            Error::Params { op, errors } => {
                write!(f, "Proxmox rejected parameters of {op}: ")?;
                let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                f.write_str(&parts.join("; "))
            }
            Error::Api { op, status, message } => write!(f, "{op} failed with HTTP {status}: {message}"),
            Error::Transport { op, message } => write!(f, "{op}: no answer from Proxmox ({message})"),
            Error::Task { upid, exitstatus, log_tail } => {
                write!(f, "Proxmox task {upid} failed: {exitstatus}")?;
                if !log_tail.is_empty() {
                    write!(f, "\ntask log (last lines):\n{}", log_tail.join("\n"))?;
                }
                Ok(())
            }
            Error::Decode { op, message } => write!(f, "{op}: unexpected answer: {message}"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, m: &str) -> Error {
        Error::Api { op: "POST /x".into(), status, message: m.into() }
    }

    #[test]
    fn classifies_pve_messages() {
        assert!(api(500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout").is_lock());
        assert!(api(500, "VM is locked (clone)").is_transient());
        assert!(api(500, "CT is locked (create)").is_lock());
        assert!(api(500, "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout").is_lock());
        assert!(api(500, "Configuration file 'nodes/pve1/lxc/101.conf' does not exist").is_not_found());
        let perm =
            api(403, "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)");
        assert_eq!(
            perm.permission_reason(),
            Some("changing feature flags (except nesting) is only allowed for root@pam")
        );
        assert!(api(503, "Service Unavailable").is_transient());
        assert!(!api(500, "VM 218 already exists on node 'pve1'").is_transient());
        assert!(api(500, "VM 218 already exists on node 'pve1'").is_already_exists());
        assert!(api(500, "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist").is_not_found());
        assert!(!api(500, "storage 'x' does not exist").is_not_found());
    }

    #[test]
    fn only_proxmox_no_agent_answers_mean_no_agent() {
        assert!(api(500, "QEMU guest agent is not running").is_no_agent());
        assert!(api(500, "No QEMU guest agent configured").is_no_agent());
        assert!(api(500, "VM 101 is not running").is_no_agent());
        // A failing agent or an overloaded node is an error, not "no agent".
        assert!(!api(500, "Internal Server Error").is_no_agent());
        assert!(!api(500, "guest-network-get-interfaces failed - got timeout").is_no_agent());
        assert!(!api(500, "VM 101 qmp command 'guest-ping' failed - got timeout").is_no_agent());
        assert!(!api(503, "QEMU guest agent is not running").is_no_agent());
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let e = Error::Params {
            op: "POST /nodes/pve1/qemu".into(),
            errors: [("memory".to_string(), "value must have a minimum value of 16".to_string())].into(),
        };
        assert!(e.to_string().contains("memory: value must have a minimum value of 16"));
    }
}
