//! Server host key verification against known_hosts content or pinned
//! fingerprints. Runs inside the handshake, so a rejected key means no
//! authentication and no command ever reaches the server.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, KnownHosts, Marker};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use sha1::Sha1;

use crate::config::HostKeyPolicy;
use crate::error::Error;

/// `SHA256:<unpadded base64>`, exactly as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `presented` for `host`:`port` under `policy`. `label` is only
/// used in error messages.
pub(crate) fn verify(
    policy: &HostKeyPolicy,
    label: &str,
    host: &str,
    port: u16,
    presented: &KeyData,
) -> Result<(), Error> {
    let presented_fp = fingerprint(presented);
    match policy {
        HostKeyPolicy::InsecureIgnore => {
            tracing::warn!(host = label, fingerprint = %presented_fp, "host key NOT verified (insecure_ignore_host_key)");
            Ok(())
        }
        HostKeyPolicy::Fingerprints(pins) => {
            if pins.iter().any(|p| same_fingerprint(p, &presented_fp)) {
                Ok(())
            } else {
                Err(Error::HostKeyMismatch { host: label.into(), expected: pins.clone(), presented: presented_fp })
            }
        }
        HostKeyPolicy::KnownHosts(content) => verify_known_hosts(content, label, host, port, presented, presented_fp),
    }
}

/// Accepts pins with or without base64 `=` padding (some tools add it).
fn same_fingerprint(pin: &str, presented: &str) -> bool {
    pin.trim().trim_end_matches('=') == presented
}

fn verify_known_hosts(
    content: &str,
    label: &str,
    host: &str,
    port: u16,
    presented: &KeyData,
    presented_fp: String,
) -> Result<(), Error> {
    // OpenSSH looks up non-default ports only in `[host]:port` form.
    let name = if port == 22 { host.to_ascii_lowercase() } else { format!("[{}]:{port}", host.to_ascii_lowercase()) };
    let mut expected = Vec::new();
    let mut matched = false;
    let mut unparsed_lines = 0;
    for entry in KnownHosts::new(content) {
        let entry: Entry = match entry {
            Ok(e) => e,
            Err(_) => {
                // Skipped like OpenSSH does, but reported if the host ends up unknown.
                unparsed_lines += 1;
                continue;
            }
        };
        if !host_matches(entry.host_patterns(), &name) {
            continue;
        }
        let key_matches = entry.public_key().key_data() == presented;
        match entry.marker() {
            Some(Marker::Revoked) if key_matches => {
                return Err(Error::HostKeyRevoked { host: label.into(), presented: presented_fp });
            }
            Some(Marker::Revoked) => {}
            // Host certificates are not used by Strata; CA lines neither
            // vouch for nor against a plain key.
            Some(Marker::CertAuthority) => {}
            None => {
                matched |= key_matches;
                let fp = fingerprint(entry.public_key().key_data());
                if !expected.contains(&fp) {
                    expected.push(fp);
                }
            }
        }
    }
    if matched {
        Ok(())
    } else if expected.is_empty() {
        Err(Error::UnknownHost { host: label.into(), presented: presented_fp, unparsed_lines })
    } else {
        Err(Error::HostKeyMismatch { host: label.into(), expected, presented: presented_fp })
    }
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
}

impl russh::client::Handler for Verifier {
    type Error = Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Error> {
        // For a certificate we still pin the certified key itself.
        let data = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key(),
        };
        verify(&self.policy, &self.label, &self.host, self.port, data)?;
        tracing::debug!(host = %self.label, fingerprint = %fingerprint(data), "host key verified");
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
