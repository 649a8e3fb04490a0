//! Server host key verification against known_hosts content or pinned
//! fingerprints, including host certificates (`@cert-authority`) and `@revoked`
//! keys as OpenSSH treats them. Runs inside the handshake, so a rejected key
//! means no authentication and no command ever reaches the server.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, KnownHosts, Marker};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use sha1::Sha1;

use crate::config::HostKeyPolicy;
use crate::error::Error;

/// `SHA256:<unpadded base64>`, exactly as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The fingerprint of a public key line (`ssh-ed25519 AAAA... comment`, as in a
/// `.pub` file); `None` when the line is not one.
pub fn public_key_fingerprint(line: &str) -> Option<String> {
    russh::keys::ssh_key::PublicKey::from_openssh(line.trim()).ok().map(|k| fingerprint(k.key_data()))
}

/// Checks a plain `presented` key for `host`:`port` under `policy`.
#[cfg(test)]
pub(crate) fn verify(
    policy: &HostKeyPolicy,
    label: &str,
    host: &str,
    port: u16,
    presented: &KeyData,
) -> Result<(), Error> {
    verify_presented(policy, label, host, port, Presented::Key(presented))
}

/// What the server proved it holds: a plain host key, or a host certificate.
#[derive(Clone, Copy)]
pub(crate) enum Presented<'a> {
    Key(&'a KeyData),
    Certificate(&'a Certificate),
}

impl Presented<'_> {
    /// The host's own key (for a certificate, the certified key).
    fn key(&self) -> &KeyData {
        match self {
            Presented::Key(k) => k,
            Presented::Certificate(c) => c.public_key(),
        }
    }
}

pub(crate) fn verify_presented(
    policy: &HostKeyPolicy,
    label: &str,
    host: &str,
    port: u16,
    presented: Presented,
) -> Result<(), Error> {
    let presented_fp = fingerprint(presented.key());
    match policy {
        HostKeyPolicy::InsecureIgnore => {
            tracing::warn!(host = label, fingerprint = %presented_fp, "host key NOT verified (insecure_ignore_host_key)");
            Ok(())
        }
        // A pin is a pin of the host's key, certified or not.
        HostKeyPolicy::Fingerprints(pins) => {
            if pins.iter().any(|p| same_fingerprint(p, &presented_fp)) {
                Ok(())
            } else {
                Err(Error::HostKeyMismatch { host: label.into(), expected: pins.clone(), presented: presented_fp })
            }
        }
        HostKeyPolicy::KnownHosts(content) => {
            let entries = matching_entries(content, host, port);
            if let Presented::Certificate(cert) = presented {
                if let Some(result) = verify_certificate(&entries, label, host, cert) {
                    return result;
                }
                // No @cert-authority of this host signed it: as OpenSSH does, the
                // certified key may still be trusted as a plain known_hosts key.
                return verify_plain(&entries, label, cert.public_key(), presented_fp).map_err(|e| match e {
                    Error::UnknownHost { .. } => Error::HostCertificateUntrusted {
                        host: label.into(),
                        ca: fingerprint(cert.signature_key()),
                        trusted: entries.cas.iter().map(fingerprint).collect(),
                    },
                    other => other,
                });
            }
            verify_plain(&entries, label, presented.key(), presented_fp)
        }
    }
}

/// Whether to ask the server for its host certificate: only when known_hosts names
/// a `@cert-authority` for this host (as OpenSSH orders its algorithms), since a
/// certificate proves nothing to a client that trusts no CA.
pub(crate) fn wants_certificates(policy: &HostKeyPolicy, host: &str, port: u16) -> bool {
    matches!(policy, HostKeyPolicy::KnownHosts(c) if !matching_entries(c, host, port).cas.is_empty())
}

/// The known_hosts lines that apply to one host, by kind.
#[derive(Default)]
struct HostEntries {
    keys: Vec<KeyData>,
    cas: Vec<KeyData>,
    revoked: Vec<KeyData>,
    unparsed_lines: usize,
}

fn matching_entries(content: &str, host: &str, port: u16) -> HostEntries {
    // OpenSSH looks up non-default ports only in `[host]:port` form.
    let name = if port == 22 { host.to_ascii_lowercase() } else { format!("[{}]:{port}", host.to_ascii_lowercase()) };
    let mut found = HostEntries::default();
    for entry in KnownHosts::new(content) {
        let entry: Entry = match entry {
            Ok(e) => e,
            Err(_) => {
                // Skipped like OpenSSH does, but reported if the host ends up unknown.
                found.unparsed_lines += 1;
                continue;
            }
        };
        if !host_matches(entry.host_patterns(), &name) {
            continue;
        }
        let key = entry.public_key().key_data().clone();
        match entry.marker() {
            Some(Marker::Revoked) => found.revoked.push(key),
            Some(Marker::CertAuthority) => found.cas.push(key),
            None => found.keys.push(key),
        }
    }
    found
}

fn verify_plain(entries: &HostEntries, label: &str, presented: &KeyData, presented_fp: String) -> Result<(), Error> {
    if entries.revoked.contains(presented) {
        return Err(Error::HostKeyRevoked { host: label.into(), presented: presented_fp });
    }
    if entries.keys.contains(presented) {
        return Ok(());
    }
    let mut expected: Vec<String> = entries.keys.iter().map(fingerprint).collect();
    expected.dedup();
    if expected.is_empty() {
        Err(Error::UnknownHost { host: label.into(), presented: presented_fp, unparsed_lines: entries.unparsed_lines })
    } else {
        Err(Error::HostKeyMismatch { host: label.into(), expected, presented: presented_fp })
    }
}

/// A host certificate under the host's `@cert-authority` lines: `None` when none of
/// them signed it (the caller then tries the certified key as a plain key), else
/// whether it is valid for this host now (OpenSSH's checks: a host certificate, signed
/// by that CA, within its validity, naming the host if it names any, no critical
/// options, neither it nor its CA `@revoked`).
fn verify_certificate(entries: &HostEntries, label: &str, host: &str, cert: &Certificate) -> Option<Result<(), Error>> {
    let invalid = |reason: String| Some(Err(Error::HostCertificateInvalid { host: label.into(), reason }));
    for revoked in [cert.public_key(), cert.signature_key()] {
        if entries.revoked.contains(revoked) {
            return Some(Err(Error::HostKeyRevoked { host: label.into(), presented: fingerprint(revoked) }));
        }
    }
    let ca = entries.cas.iter().find(|k| *k == cert.signature_key())?;
    if cert.cert_type() != CertType::Host {
        return invalid("it is a user certificate, not a host certificate".into());
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return invalid(format!("it is valid for {} but not for {host}", principals.join(", ")));
    }
    if let Some((name, _)) = cert.critical_options().iter().next() {
        return invalid(format!("it carries the critical option {name:?}, which no host certificate may have"));
    }
    let ca_fp = ca.fingerprint(HashAlg::Sha256);
    if cert.validate([&ca_fp]).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let reason = if cert.valid_after() > now {
            "it is not valid yet".to_string()
        } else if cert.valid_before() <= now {
            "it has expired".to_string()
        } else {
            "its signature does not verify".to_string()
        };
        return invalid(reason);
    }
    tracing::debug!(host = %label, ca = %ca_fp, key_id = cert.key_id(), "host certificate verified");
    Some(Ok(()))
}

/// Accepts pins with or without base64 `=` padding (some tools add it).
fn same_fingerprint(pin: &str, presented: &str) -> bool {
    pin.trim().trim_end_matches('=') == presented
}

fn host_matches(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => {
            // `|1|salt|hash` is HMAC-SHA1(key = salt, data = name).
            let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(salt) else { return false };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostPatterns::Patterns(list) => {
            // OpenSSH semantics: any matching negated pattern vetoes the line.
            let mut positive = false;
            for p in list {
                let p = p.to_ascii_lowercase();
                if let Some(neg) = p.strip_prefix('!') {
                    if glob(neg.as_bytes(), name.as_bytes()) {
                        return false;
                    }
                } else if glob(p.as_bytes(), name.as_bytes()) {
                    positive = true;
                }
            }
            positive
        }
    }
}

/// `*` and `?` wildcards as in ssh_config/known_hosts patterns.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// russh handler: verifies the host key and records nothing else.
pub(crate) struct Verifier {
    pub(crate) label: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) policy: HostKeyPolicy,
    /// The description of the last channel the server refused to open: russh passes
    /// it only here, and for a bastion's tunnel it says why (e.g. "Connection refused").
    pub(crate) open_failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl russh::client::Handler for Verifier {
    type Error = Error;

    async fn channel_open_failure(
        &mut self,
        _channel: russh::ChannelId,
        _reason: russh::ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut russh::client::Session,
    ) -> Result<(), Error> {
        *self.open_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(description.to_string());
        Ok(())
    }

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Presented::Key(key.key_data()),
            PublicKeyOrCertificate::Certificate(cert) => Presented::Certificate(cert),
        };
        verify_presented(&self.policy, &self.label, &self.host, self.port, presented)?;
        tracing::debug!(host = %self.label, fingerprint = %fingerprint(presented.key()), "host key verified");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PublicKey;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJFwi0UWmUpx8jnzsP1dunzlAElXc73GCrhfPZ1fJY0L";
    const K1_FP: &str = "SHA256:6bAGRb8CzwtXcBK+TrKS5p1aRL/toj0act98SoeC3Z4";
    const K2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA16tZ5/vvxke6duA0RJvhsdpBbhiEGS/y0V5Lydj4Uh";
    const K2_FP: &str = "SHA256:qfbC/5qdLZuc50bXbIGW9BP+LXdoCVJUxR/vQ5Xz9Y4";
    // `ssh-keygen -H` of "[node.example]:2222 <K1>".
    const HASHED_K1: &str =
        "|1|MEjti6UqSsiDZbotxrPA/pvfA3E=|zb1IbuQMi8+Y2z4Y9PVWkiN9PGQ= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJFwi0UWmUpx8jnzsP1dunzlAElXc73GCrhfPZ1fJY0L";

    fn key(s: &str) -> KeyData {
        PublicKey::from_openssh(s).unwrap().key_data().clone()
    }

    fn kh(content: &str, host: &str, port: u16, k: &str) -> Result<(), Error> {
        verify(&HostKeyPolicy::KnownHosts(content.into()), "root@test", host, port, &key(k))
    }

    #[test]
    fn public_key_lines_have_ssh_keygen_fingerprints() {
        let line = format!("{K1} root@node1");
        assert_eq!(public_key_fingerprint(&line).as_deref(), Some(K1_FP));
        assert_eq!(public_key_fingerprint("ssh-ed25519 not-base64"), None);
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(&key(K1)), K1_FP);
    }

    #[test]
    fn plain_entry_and_host_lists() {
        let c = format!("# comment\nother.example {K2}\nnode1,10.0.0.5 {K1}\n");
        kh(&c, "node1", 22, K1).unwrap();
        kh(&c, "10.0.0.5", 22, K1).unwrap();
        kh(&c, "NODE1", 22, K1).unwrap();
    }

    #[test]
    fn non_default_port_needs_bracket_form() {
        let c = format!("node1 {K1}\n[node2]:2222 {K1}\n");
        assert!(matches!(kh(&c, "node1", 2222, K1), Err(Error::UnknownHost { .. })));
        kh(&c, "node2", 2222, K1).unwrap();
        assert!(matches!(kh(&c, "node2", 22, K1), Err(Error::UnknownHost { .. })));
    }

    #[test]
    fn hashed_entry() {
        kh(HASHED_K1, "node.example", 2222, K1).unwrap();
        assert!(matches!(kh(HASHED_K1, "node.example", 22, K1), Err(Error::UnknownHost { .. })));
        assert!(matches!(kh(HASHED_K1, "node.example", 2222, K2), Err(Error::HostKeyMismatch { .. })));
    }

    #[test]
    fn wildcards_and_negation() {
        let c = format!("*.lab,!bad.lab {K1}\n");
        kh(&c, "n1.lab", 22, K1).unwrap();
        assert!(matches!(kh(&c, "bad.lab", 22, K1), Err(Error::UnknownHost { .. })));
    }

    #[test]
    fn mismatch_names_host_and_both_fingerprints() {
        let c = format!("node1 {K1}\n");
        let err = kh(&c, "node1", 22, K2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("root@test") && msg.contains(K1_FP) && msg.contains(K2_FP), "{msg}");
    }

    #[test]
    fn revoked_and_cert_authority_markers() {
        let c = format!("@revoked node1 {K1}\nnode1 {K1}\n");
        assert!(matches!(kh(&c, "node1", 22, K1), Err(Error::HostKeyRevoked { .. })));
        let c = format!("@cert-authority node1 {K1}\n");
        assert!(matches!(kh(&c, "node1", 22, K1), Err(Error::UnknownHost { .. })));
    }

    #[test]
    fn unparsable_lines_are_reported() {
        let msg = kh("garbage line here\n", "node1", 22, K1).unwrap_err().to_string();
        assert!(msg.contains("1 known_hosts line(s) could not be parsed"), "{msg}");
    }

    #[test]
    fn pinned_fingerprints() {
        let p = |v: Vec<&str>| HostKeyPolicy::Fingerprints(v.into_iter().map(String::from).collect());
        verify(&p(vec![K2_FP, K1_FP]), "h", "h", 22, &key(K1)).unwrap();
        verify(&p(vec![&format!("{K1_FP}=")]), "h", "h", 22, &key(K1)).unwrap();
        let msg = verify(&p(vec![K2_FP]), "h", "h", 22, &key(K1)).unwrap_err().to_string();
        assert!(msg.contains(K1_FP) && msg.contains(K2_FP), "{msg}");
    }
}
