//! Self-signed certificate (SAN localhost + 127.0.0.1), reused across
//! restarts so a client's pinned `ca_cert_file` stays valid.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn load_or_create(dir: &Path) -> anyhow::Result<CertPair> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(CertPair {
            cert_pem: std::fs::read_to_string(&cert_path)?,
            key_pem: std::fs::read_to_string(&key_path)?,
        });
    }
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .context("generating self-signed certificate")?;
    let pair = CertPair { cert_pem: ck.cert.pem(), key_pem: ck.key_pair.serialize_pem() };
    write_atomic(&key_path, pair.key_pem.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    }
    write_atomic(&cert_path, pair.cert_pem.as_bytes())?;
    Ok(pair)
}

pub fn server_config(pair: &CertPair) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // pveproxy speaks HTTP/1.1 only.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `AA:BB:...` SHA-256 fingerprint, the form PVE shows as ssl_fingerprint.
pub fn fingerprint(pair: &CertPair) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_slice(pair.cert_pem.as_bytes())?;
    let d = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(d.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// Write to a temp file then rename, so readers never see a partial file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
