//! Private key loading and public key authentication.

use std::sync::Arc;

use russh::client::Handle;
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

pub(crate) async fn authenticate(handle: &mut Handle<Verifier>, target: &Target, label: &str) -> Result<(), Error> {
    let key = load_key(&target.auth, label).await?;
    let hash = if key.algorithm().is_rsa() {
        // Never fall back to SHA-1 `ssh-rsa` signatures; servers that do not
        // advertise server-sig-algs (pre-7.2) still accept rsa-sha2-256.
        match handle.best_supported_rsa_hash().await.map_err(|e| Error::ssh(label, e))? {
            Some(Some(alg)) => Some(alg),
            _ => Some(HashAlg::Sha256),
        }
    } else {
        None
    };
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
