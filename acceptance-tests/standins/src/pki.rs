//! PKI on disk as kubeadm keeps it: loading the CA kubeadm is given, checking key pairs,
//! issuing the certificates kubeadm issues (signed by that CA), and the CA public-key pin.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

/// A PEM block's DER content, checking its label.
pub fn pem_der(text: &str, labels: &[&str], what: &str) -> Result<Vec<u8>> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| anyhow!("{what}: not a PEM file ({e})"))?;
    if !labels.contains(&pem.label.as_str()) {
        bail!("{what}: expected a PEM block {labels:?}, found {:?}", pem.label);
    }
    Ok(pem.contents)
}

pub fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("couldn't load {path}"))
}

/// The SubjectPublicKeyInfo DER of a PEM certificate.
pub fn cert_spki(cert_pem: &str, what: &str) -> Result<Vec<u8>> {
    let der = pem_der(cert_pem, &["CERTIFICATE"], what)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("{what}: invalid certificate: {e}"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// kubeadm's CA pin: `sha256:` + hex SHA-256 of the CA certificate's SubjectPublicKeyInfo.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String> {
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(cert_spki(cert_pem, "CA certificate")?))))
}

pub fn load_key(key_pem: &str, what: &str) -> Result<KeyPair> {
    KeyPair::from_pem(key_pem).map_err(|e| anyhow!("{what}: couldn't load the private key: {e}"))
}

/// The certificate and key at `cert`/`key` belong together (kubeadm's TryLoadCertAndKeyFromDisk
/// + the public key comparison of its certs phase).
pub fn check_pair(cert_path: &str, key_path: &str) -> Result<()> {
    let spki = cert_spki(&read(cert_path)?, cert_path)?;
    let key = load_key(&read(key_path)?, key_path)?;
    if key.subject_public_key_info() != spki {
        bail!("the certificate {cert_path} and the key {key_path} do not match (different public keys)");
    }
    Ok(())
}

/// sa.key and sa.pub are one key pair.
pub fn check_sa_pair(key_path: &str, pub_path: &str) -> Result<()> {
    let key = load_key(&read(key_path)?, key_path)?;
    let public = pem_der(&read(pub_path)?, &["PUBLIC KEY"], pub_path)?;
    if key.subject_public_key_info() != public {
        bail!("the service account key {key_path} does not match the public key {pub_path}");
    }
    Ok(())
}

/// A CA read from disk, ready to sign.
pub struct Ca {
    pub cert_pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub fn load_ca(cert_path: &str, key_path: &str) -> Result<Ca> {
    let cert_pem = read(cert_path)?;
    let der = pem_der(&cert_pem, &["CERTIFICATE"], cert_path)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("{cert_path}: invalid certificate: {e}"))?;
    if !cert.is_ca() {
        bail!("{cert_path} is not a CA certificate");
    }
    if !cert.validity().is_valid() {
        bail!("the CA certificate {cert_path} is expired or not yet valid");
    }
    check_pair(cert_path, key_path)?;
    let key = load_key(&read(key_path)?, key_path)?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| anyhow!("{cert_path}: {e}"))?;
    Ok(Ca { cert_pem, issuer })
}

/// Generates a self-signed CA (10 years) at `cert`/`key` when neither file exists.
pub fn ensure_ca(cert: &str, key: &str, cn: &str) -> Result<()> {
    if Path::new(cert).exists() || Path::new(key).exists() {
        return Ok(());
    }
    let k = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::minutes(5);
    params.not_after = now + ::time::Duration::days(3650);
    write_file(cert, &params.self_signed(&k)?.pem(), 0o644)?;
    write_file(key, &k.serialize_pem(), 0o600)
}

/// Generates the service-account key pair when neither file exists.
pub fn ensure_key_pair(key: &str, public: &str) -> Result<()> {
    if Path::new(key).exists() || Path::new(public).exists() {
        return Ok(());
    }
    let k = KeyPair::generate()?;
    write_file(key, &k.serialize_pem(), 0o600)?;
    write_file(public, &k.public_key_pem(), 0o644)
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    /// Both (etcd's peer and server certificates, as k3s issues them).
    ServerClient,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// kubeadm's default leaf validity (`certificateValidityPeriod`, 8760h).
pub const DEFAULT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// A leaf certificate as kubeadm issues them: one year, the CA's issuer, CN and O given.
pub fn issue(ca: &Ca, cn: &str, orgs: &[&str], sans: &[String], usage: Usage) -> Result<Leaf> {
    issue_valid(ca, cn, orgs, sans, usage, DEFAULT_VALIDITY)
}

/// [`issue`] with a new key valid for `validity` (`certificateValidityPeriod`).
pub fn issue_valid(
    ca: &Ca,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    usage: Usage,
    validity: std::time::Duration,
) -> Result<Leaf> {
    let key = KeyPair::generate()?;
    issue_for_valid(ca, &key, cn, orgs, sans, usage, validity)
        .map(|cert_pem| Leaf { cert_pem, key_pem: key.serialize_pem() })
}

pub fn issue_for(
    ca: &Ca,
    key: &impl rcgen::PublicKeyData,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    usage: Usage,
) -> Result<String> {
    issue_for_valid(ca, key, cn, orgs, sans, usage, DEFAULT_VALIDITY)
}

pub fn issue_for_valid(
    ca: &Ca,
    key: &impl rcgen::PublicKeyData,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    usage: Usage,
    validity: std::time::Duration,
) -> Result<String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::minutes(5);
    params.not_after = now + ::time::Duration::try_from(validity).context("certificate validity")?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = match usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerClient => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    for s in sans {
        params.subject_alt_names.push(match s.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.as_str().try_into().with_context(|| format!("SAN {s:?}"))?),
        });
    }
    Ok(params.signed_by(key, &ca.issuer)?.pem())
}

/// Writes a file with kubeadm's modes (0600 for keys and kubeconfigs, 0644 otherwise),
/// creating its directory.
pub fn write_file(path: impl AsRef<Path>, content: &str, mode: u32) -> Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Whether `cert_pem` was signed by the CA certificate `ca_pem` (its signature verified with
/// the CA's public key, as Go's x509 chain verification does for kubeadm's VerifyCertChain).
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> Result<()> {
    let der = pem_der(cert_pem, &["CERTIFICATE"], "certificate")?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("invalid certificate: {e}"))?;
    let ca_der = pem_der(ca_pem, &["CERTIFICATE"], "CA certificate")?;
    let (_, ca) = X509Certificate::from_der(&ca_der).map_err(|e| anyhow!("invalid CA certificate: {e}"))?;
    if cert.issuer() != ca.subject() {
        bail!("x509: certificate signed by unknown authority (issuer {} is not {})", cert.issuer(), ca.subject());
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| anyhow!("x509: certificate signed by unknown authority ({e})"))
}

/// What a certificate on disk says: subject CN and O, SANs, usage, expiry.
pub struct CertInfo {
    pub cn: String,
    pub orgs: Vec<String>,
    pub sans: Vec<String>,
    pub server: bool,
    pub not_before: ::time::OffsetDateTime,
    pub not_after: ::time::OffsetDateTime,
}

pub fn cert_info(cert_pem: &str, what: &str) -> Result<CertInfo> {
    let der = pem_der(cert_pem, &["CERTIFICATE"], what)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| anyhow!("{what}: invalid certificate: {e}"))?;
    let (cn, orgs) = subject_of(&der).ok_or_else(|| anyhow!("{what}: no subject CN"))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    sans.push(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string())
                }
                GeneralName::IPAddress(b) if b.len() == 16 => {
                    sans.push(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string())
                }
                _ => {}
            }
        }
    }
    let server = cert.extended_key_usage().ok().flatten().is_some_and(|e| e.value.server_auth);
    let validity = cert.validity();
    Ok(CertInfo {
        cn,
        orgs,
        sans,
        server,
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
    })
}

/// Subject CN and O of a DER certificate (for the API server's authentication).
pub fn subject_of(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = cert.subject().iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_files(dir: &Path) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "kubernetes");
        let cert = p.self_signed(&key).unwrap();
        let (c, k) = (dir.join("ca.crt"), dir.join("ca.key"));
        write_file(&c, &cert.pem(), 0o644).unwrap();
        write_file(&k, &key.serialize_pem(), 0o600).unwrap();
        (c.to_string_lossy().into(), k.to_string_lossy().into())
    }

    #[test]
    fn missing_cas_are_generated_present_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        let (c, k) = (c.to_string_lossy().to_string(), k.to_string_lossy().to_string());
        ensure_ca(&c, &k, "kubernetes").unwrap();
        let first = std::fs::read_to_string(&c).unwrap();
        load_ca(&c, &k).unwrap();
        ensure_ca(&c, &k, "kubernetes").unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), first, "an existing CA is kept");
        let (sk, sp) = (
            dir.path().join("sa.key").to_string_lossy().to_string(),
            dir.path().join("sa.pub").to_string_lossy().to_string(),
        );
        ensure_key_pair(&sk, &sp).unwrap();
        check_sa_pair(&sk, &sp).unwrap();
    }

    #[test]
    fn issues_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ca_files(dir.path());
        let ca = load_ca(&c, &k).unwrap();
        let leaf =
            issue(&ca, "kube-apiserver", &[], &["kubernetes".into(), "10.96.0.1".into()], Usage::Server).unwrap();
        let (cn, _) = subject_of(&pem_der(&leaf.cert_pem, &["CERTIFICATE"], "leaf").unwrap()).unwrap();
        assert_eq!(cn, "kube-apiserver");
        assert!(ca_cert_hash(&ca.cert_pem).unwrap().starts_with("sha256:"));
        // A key that is not the CA's is refused.
        let other = dir.path().join("other.key");
        write_file(&other, &KeyPair::generate().unwrap().serialize_pem(), 0o600).unwrap();
        let e = check_pair(&c, &other.to_string_lossy()).unwrap_err().to_string();
        assert!(e.contains("do not match"), "{e}");
        assert!(load_ca(&c, &other.to_string_lossy()).is_err());
    }
}
