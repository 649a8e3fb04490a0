//! Client authentication: a private key (inline or from a file), or the keys of an
//! ssh-agent.

use std::path::Path;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use crate::config::{Auth, KeySource, Target};
use crate::error::Error;
use crate::hostkey::{fingerprint, Verifier};

/// Decodes the key (OpenSSH or PEM, optionally encrypted). Errors describe
/// the problem without echoing any key material.
pub(crate) async fn load_key(auth: &Auth, label: &str) -> Result<Arc<PrivateKey>, Error> {
    let err = |reason: String| Error::Key { host: label.to_string(), reason };
    let content = match &auth.key {
        KeySource::Content(c) => c.clone(),
        KeySource::File(p) => {
            tokio::fs::read_to_string(p).await.map_err(|e| err(format!("cannot read key file {}: {e}", p.display())))?
        }
        KeySource::Agent { .. } => return Err(err("the key is held by an ssh-agent".into())),
    };
    let key = russh::keys::decode_secret_key(&content, auth.passphrase.as_deref()).map_err(|e| {
        let hint = match (&e, auth.passphrase.is_some()) {
            (russh::keys::Error::KeyIsEncrypted, false) => " (the key is encrypted: set a passphrase)",
            (_, true) => " (wrong passphrase?)",
            _ => "",
        };
        err(format!("{e}{hint}"))
    })?;
    Ok(Arc::new(key))
}

/// RSA signatures: never SHA-1 `ssh-rsa`; servers that do not advertise
/// server-sig-algs (pre-7.2) still accept rsa-sha2-256.
async fn rsa_hash(handle: &Handle<Verifier>, is_rsa: bool, label: &str) -> Result<Option<HashAlg>, Error> {
    if !is_rsa {
        return Ok(None);
    }
    match handle.best_supported_rsa_hash().await.map_err(|e| Error::ssh(label, e))? {
        Some(Some(alg)) => Ok(Some(alg)),
        _ => Ok(Some(HashAlg::Sha256)),
    }
}

pub(crate) async fn authenticate(handle: &mut Handle<Verifier>, target: &Target, label: &str) -> Result<(), Error> {
    if let KeySource::Agent { socket, identity } = &target.auth.key {
        return authenticate_with_agent(handle, &target.user, socket, identity.as_deref(), label).await;
    }
    let key = load_key(&target.auth, label).await?;
    let hash = rsa_hash(handle, key.algorithm().is_rsa(), label).await?;
    let key_fingerprint = fingerprint(key.public_key().key_data());
    let result = handle
        .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
        .await
        .map_err(|e| Error::ssh(label, e))?;
    if result.success() {
        Ok(())
    } else {
        Err(Error::AuthFailed { host: label.to_string(), user: target.user.clone(), key_fingerprint })
    }
}

/// The agent's identities in its own order, narrowed to `wanted` when given.
fn select<'a>(ids: &'a [AgentIdentity], wanted: Option<&str>) -> Vec<&'a AgentIdentity> {
    ids.iter()
        .filter(|id| {
            let Some(w) = wanted.map(str::trim) else { return true };
            let (key, comment) = match id {
                AgentIdentity::PublicKey { key, comment } => (key.key_data(), comment),
                AgentIdentity::Certificate { certificate, comment } => (certificate.public_key(), comment),
            };
            let openssh = russh::keys::PublicKey::new(key.clone(), "").to_openssh().unwrap_or_default();
            w == comment
                || w == fingerprint(key)
                || (!openssh.is_empty() && openssh.trim() == w)
                || w.split_whitespace().take(2).eq(openssh.split_whitespace().take(2))
        })
        .collect()
}

/// Offers the agent's keys one at a time (certificates as certificates), as OpenSSH
/// does; the agent signs, the keys never leave it.
async fn authenticate_with_agent(
    handle: &mut Handle<Verifier>,
    user: &str,
    socket: &Path,
    identity: Option<&str>,
    label: &str,
) -> Result<(), Error> {
    let err = |reason: String| Error::Key { host: label.to_string(), reason };
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| err(format!("cannot reach the ssh-agent at {}: {e}", socket.display())))?;
    let ids = agent
        .request_identities()
        .await
        .map_err(|e| err(format!("the ssh-agent at {} did not list its keys: {e}", socket.display())))?;
    let chosen = select(&ids, identity);
    if chosen.is_empty() {
        return Err(err(match identity {
            Some(w) => format!("the ssh-agent at {} holds no key matching agent_identity {w:?}", socket.display()),
            None => format!("the ssh-agent at {} holds no keys (ssh-add one)", socket.display()),
        }));
    }
    let mut offered = Vec::new();
    for id in chosen {
        let result = match id {
            AgentIdentity::PublicKey { key, .. } => {
                offered.push(fingerprint(key.key_data()));
                let hash = rsa_hash(handle, key.algorithm().is_rsa(), label).await?;
                handle.authenticate_publickey_with(user, key.clone(), hash, &mut agent).await
            }
            AgentIdentity::Certificate { certificate, .. } => {
                offered.push(format!("certificate of {}", fingerprint(certificate.public_key())));
                let hash = rsa_hash(handle, certificate.algorithm().is_rsa(), label).await?;
                handle.authenticate_certificate_with(user, certificate.clone(), hash, &mut agent).await
            }
        };
        if result.map_err(|e| Error::ssh(label, e))?.success() {
            return Ok(());
        }
    }
    Err(Error::AuthFailed { host: label.to_string(), user: user.to_string(), key_fingerprint: offered.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PublicKey;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJFwi0UWmUpx8jnzsP1dunzlAElXc73GCrhfPZ1fJY0L";
    const K2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA16tZ5/vvxke6duA0RJvhsdpBbhiEGS/y0V5Lydj4Uh";

    fn id(k: &str, comment: &str) -> AgentIdentity {
        AgentIdentity::PublicKey { key: PublicKey::from_openssh(k).unwrap(), comment: comment.into() }
    }

    #[test]
    fn agent_identity_selects_by_comment_fingerprint_or_public_key() {
        let ids = [id(K1, "ops@laptop"), id(K2, "deploy")];
        assert_eq!(select(&ids, None).len(), 2);
        let one = |w: &str| select(&ids, Some(w)).iter().map(|i| i.comment().to_string()).collect::<Vec<_>>();
        assert_eq!(one("deploy"), ["deploy"]);
        assert_eq!(one("SHA256:6bAGRb8CzwtXcBK+TrKS5p1aRL/toj0act98SoeC3Z4"), ["ops@laptop"]);
        assert_eq!(one(&format!("{K2} some comment")), ["deploy"]);
        assert!(one("nobody").is_empty());
    }
}
