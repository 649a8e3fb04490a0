//! Certificates and keys made with rcgen, shared by the resources that need them: the
//! cluster identity kubeadm needs (CAs, service-account keys, bootstrap token and
//! certificate key) and leaf certificates issued from one of those CAs (etcd members).

use anyhow::{anyhow, Context as _};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    Rsa2048,
}

impl KeyAlgorithm {
    pub const NAMES: [&'static str; 2] = ["ecdsa-p256", "rsa-2048"];

    pub fn parse(s: &str) -> Option<KeyAlgorithm> {
        match s {
            "ecdsa-p256" => Some(KeyAlgorithm::EcdsaP256),
            "rsa-2048" => Some(KeyAlgorithm::Rsa2048),
            _ => None,
        }
    }

    pub fn generate(self) -> anyhow::Result<KeyPair> {
        match self {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        }
        .context("generating a key pair")
    }
}

/// A CA certificate and its private key, both PEM.
pub struct CertificateAuthority {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a self-signed CA certificate for `key`, valid from now for `validity_days`.
/// Re-issuing with the same key keeps every certificate it signed valid and keeps the
/// public-key hash joins pin, which is what lets a validity change happen in place.
pub fn issue_ca(common_name: &str, key: &KeyPair, validity_days: i64) -> anyhow::Result<String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // Small back-dating absorbs clock skew between the operator's machine and nodes.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days);
    let serial: [u8; 16] = rand::rng().random();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(key).context("self-signing the CA certificate")?;
    Ok(cert.pem())
}

pub fn new_ca(common_name: &str, algorithm: KeyAlgorithm, validity_days: i64) -> anyhow::Result<CertificateAuthority> {
    let key = algorithm.generate()?;
    let cert_pem = issue_ca(common_name, &key, validity_days)?;
    Ok(CertificateAuthority { cert_pem, key_pem: key.serialize_pem() })
}

/// `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo, as
/// `kubeadm join --discovery-token-ca-cert-hash` expects.
pub fn ca_cert_hash(cert_pem: &str) -> anyhow::Result<String> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing CA certificate: {e}"))?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))))
}

/// When a certificate stops being valid, RFC 3339.
pub fn not_after(cert_pem: &str) -> anyhow::Result<String> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    let t = cert.validity().not_after.to_datetime();
    t.format(&time::format_description::well_known::Rfc3339).context("formatting expiry")
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    /// Both: etcd peers are servers to each other and clients of each other.
    Peer,
}

/// A leaf certificate and its new private key, both PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a leaf certificate from the CA (`ca_cert_pem`, `ca_key_pem`) for a new
/// ECDSA P-256 key, with `sans` (IP addresses or DNS names) as subject alternative names.
pub fn issue_leaf(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    common_name: &str,
    sans: &[String],
    usage: Usage,
    validity_days: i64,
) -> anyhow::Result<Leaf> {
    let ca_key = load_key(ca_key_pem).map_err(|_| anyhow!("the CA private key is not a readable PEM key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("reading the CA certificate")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .context("subject alternative names")?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = match usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Peer => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
    };
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days);
    let serial: [u8; 16] = rand::rng().random();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyAlgorithm::EcdsaP256.generate()?;
    let cert = params.signed_by(&key, &issuer).context("signing the certificate")?;
    Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues a client certificate from the CA for a new ECDSA P-256 key, with subject
/// `CN=common_name` and one `O=` per organization: Kubernetes takes the CN as the user
/// and the organizations as its groups (e.g. `kubeadm:cluster-admins`).
pub fn issue_client(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    common_name: &str,
    organizations: &[&str],
    validity_days: i64,
) -> anyhow::Result<Leaf> {
    let ca_key = load_key(ca_key_pem).map_err(|_| anyhow!("the CA private key is not a readable PEM key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).context("reading the CA certificate")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days);
    let serial: [u8; 16] = rand::rng().random();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyAlgorithm::EcdsaP256.generate()?;
    let cert = params.signed_by(&key, &issuer).context("signing the certificate")?;
    Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Whether `cert_pem` was signed by the CA `ca_cert_pem` (its signature verifies with
/// the CA's public key).
pub fn signed_by(cert_pem: &str, ca_cert_pem: &str) -> anyhow::Result<bool> {
    let der = pem_der(cert_pem)?;
    let ca_der = pem_der(ca_cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).map_err(|e| anyhow!("parsing CA certificate: {e}"))?;
    Ok(cert.verify_signature(Some(ca.public_key())).is_ok())
}

/// A private key from PEM: PKCS#8 (`PRIVATE KEY`, what Strata writes), PKCS#1 (`RSA
/// PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), as kubeadm and openssl write them.
pub fn load_key(pem_text: &str) -> anyhow::Result<KeyPair> {
    KeyPair::from_pem(pem_text)
        .or_else(|_| KeyPair::from_pem_and_sign_algo(pem_text, &rcgen::PKCS_ECDSA_P256_SHA256))
        .or_else(|_| KeyPair::from_pem_and_sign_algo(pem_text, &rcgen::PKCS_RSA_SHA256))
        .map_err(|_| anyhow!("not a readable PEM private key (PKCS#8, PKCS#1 or SEC1)"))
}

/// Whether `key` is the key of the certificate `cert_pem` (same public key).
pub fn key_matches_cert(key: &KeyPair, cert_pem: &str) -> anyhow::Result<bool> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    Ok(cert.tbs_certificate.subject_pki.subject_public_key.data.as_ref() == key.public_key_raw())
}

/// Whole days between a certificate's notBefore and notAfter, rounded.
pub fn validity_days(cert_pem: &str) -> anyhow::Result<i64> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    let secs = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    Ok((secs + 43_200) / 86_400)
}

/// Seconds from now until the certificate expires (negative once it has).
pub fn seconds_left(cert_pem: &str) -> anyhow::Result<i64> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp())
}

/// The subject alternative names of a certificate: IP addresses and DNS names, as text.
pub fn subject_alt_names(cert_pem: &str) -> anyhow::Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let der = pem_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    let Some(san) = cert.subject_alternative_name().map_err(|e| anyhow!("reading the SANs: {e}"))? else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

fn pem_der(pem_text: &str) -> anyhow::Result<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|e| anyhow!("reading PEM: {e}"))?;
    Ok(pem.contents)
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`, the kubeadm bootstrap token format.
pub fn bootstrap_token() -> String {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| {
                const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                CHARS[rng.random_range(0..CHARS.len())] as char
            })
            .collect()
    };
    let id = part(6);
    let secret = part(16);
    format!("{id}.{secret}")
}

/// 32 random bytes as 64 hex characters: kubeadm's `--certificate-key`, the AES key that
/// encrypts control-plane certificates in the kubeadm-certs Secret.
pub fn certificate_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// 32 random bytes as 64 hex characters: a shared secret (a k3s cluster's token).
pub fn random_secret() -> String {
    certificate_key()
}
