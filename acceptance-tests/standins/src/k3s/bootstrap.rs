//! Bootstrap data (the cluster's CA certificates and keys) stored in etcd encrypted with
//! the token secret, as k3s's pkg/cluster (encrypt.go, storage.go) does: a key derived
//! from the secret with PBKDF2 (here HMAC-SHA256, 4096 rounds, random salt), AES-256-GCM,
//! stored under `/bootstrap/<first 12 hex of sha256(secret)>`. A second server with
//! another token finds bootstrap data it cannot decrypt and stops with k3s's message.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

pub const WRONG_TOKEN: &str = "bootstrap data already found and encrypted with different token";

/// The files (relative to server/tls) that make up the bootstrap data.
pub const FILES: &[&str] = &[
    "server-ca.crt",
    "server-ca.key",
    "client-ca.crt",
    "client-ca.key",
    "request-header-ca.crt",
    "request-header-ca.key",
    "service.key",
    "etcd/server-ca.crt",
    "etcd/server-ca.key",
    "etcd/peer-ca.crt",
    "etcd/peer-ca.key",
];

pub fn storage_key(secret: &str) -> String {
    format!("/bootstrap/{}", &hex::encode(Sha256::digest(secret.as_bytes()))[..12])
}

fn derive(secret: &str, salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(4096).unwrap(),
        salt,
        secret.as_bytes(),
        &mut key,
    );
    key
}

/// `base64(salt):base64(nonce || ciphertext || tag)`.
pub fn encrypt(secret: &str, plain: &[u8]) -> Result<String> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 8];
    let mut nonce = [0u8; 12];
    rng.fill(&mut salt).map_err(|_| anyhow!("random"))?;
    rng.fill(&mut nonce).map_err(|_| anyhow!("random"))?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derive(secret, &salt)).map_err(|_| anyhow!("aes key"))?);
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .map_err(|_| anyhow!("encrypting"))?;
    let mut out = nonce.to_vec();
    out.extend(buf);
    Ok(format!("{}:{}", B64.encode(salt), B64.encode(out)))
}

pub fn decrypt(secret: &str, data: &str) -> Result<Vec<u8>> {
    let (salt, rest) = data.trim().split_once(':').context("invalid bootstrap data")?;
    let salt = B64.decode(salt).context("invalid bootstrap data")?;
    let mut rest = B64.decode(rest).context("invalid bootstrap data")?;
    if rest.len() < 12 + 16 {
        bail!("invalid bootstrap data");
    }
    let nonce: [u8; 12] = rest[..12].try_into().unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &derive(secret, &salt)).map_err(|_| anyhow!("aes key"))?);
    let mut ct = rest.split_off(12);
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut ct)
        .map_err(|_| anyhow!(WRONG_TOKEN))?;
    Ok(plain.to_vec())
}

/// Reads the bootstrap files under `tls_dir` (those present) as JSON.
pub fn collect(tls_dir: &Path) -> Result<Vec<u8>> {
    let mut m = BTreeMap::new();
    for f in FILES {
        if let Ok(text) = std::fs::read_to_string(tls_dir.join(f)) {
            m.insert(f.to_string(), text);
        }
    }
    Ok(serde_json::to_vec(&m)?)
}

/// Writes bootstrap JSON's files under `tls_dir` (keys 0600).
pub fn write_out(tls_dir: &Path, json: &[u8]) -> Result<()> {
    let m: BTreeMap<String, String> = serde_json::from_slice(json).context("bootstrap data is not valid JSON")?;
    for (f, text) in m {
        if !FILES.contains(&f.as_str()) {
            bail!("bootstrap data names an unexpected file {f:?}");
        }
        let mode = if f.ends_with(".key") { 0o600 } else { 0o644 };
        crate::pki::write_file(tls_dir.join(&f), &text, mode)?;
    }
    Ok(())
}

/// Given the stored bootstrap entries (key, value), what this token finds: Ok(Some(plain))
/// when its own entry decrypts, Ok(None) when there is none at all, Err(WRONG_TOKEN) when
/// only data under another token exists (or its own does not decrypt).
pub fn find(entries: &[(String, Vec<u8>)], secret: &str) -> Result<Option<Vec<u8>>> {
    let key = storage_key(secret);
    if let Some((_, v)) = entries.iter().find(|(k, _)| *k == key) {
        return decrypt(secret, &String::from_utf8_lossy(v)).map(Some);
    }
    match entries.first() {
        None => Ok(None),
        Some((_, v)) => decrypt(secret, &String::from_utf8_lossy(v)).map(Some).map_err(|_| anyhow!(WRONG_TOKEN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_token() {
        let enc = encrypt("secret1", b"{\"server-ca.crt\":\"x\"}").unwrap();
        assert_eq!(decrypt("secret1", &enc).unwrap(), b"{\"server-ca.crt\":\"x\"}");
        assert_eq!(decrypt("secret2", &enc).unwrap_err().to_string(), WRONG_TOKEN);
        let entries = vec![(storage_key("secret1"), enc.into_bytes())];
        assert!(find(&entries, "secret1").unwrap().is_some());
        assert_eq!(find(&entries, "secret2").unwrap_err().to_string(), WRONG_TOKEN);
        assert_eq!(find(&[], "secret2").unwrap(), None);
    }

    #[test]
    fn files_round_trip_and_unknown_names_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("server-ca.crt"), "CERT").unwrap();
        let j = collect(d.path()).unwrap();
        let d2 = tempfile::tempdir().unwrap();
        write_out(d2.path(), &j).unwrap();
        assert_eq!(std::fs::read_to_string(d2.path().join("server-ca.crt")).unwrap(), "CERT");
        assert!(write_out(d2.path(), br#"{"../../etc/passwd":"x"}"#).is_err());
    }
}
