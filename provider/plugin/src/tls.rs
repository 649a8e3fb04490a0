//! go-plugin AutoMTLS on the server side.
//!
//! Terraform passes its client certificate (self-signed ECDSA P-521, CA:TRUE)
//! in `PLUGIN_CLIENT_CERT`, and trusts only the server certificate we print in
//! the handshake line. rustls' WebPKI client verifier rejects Terraform's cert
//! (`CaUsedAsEndEntity`), so we pin the exact certificate instead and let
//! aws-lc-rs (which, unlike ring, has P-521) check the signatures. Everything that
//! needs randomness (our key, the key exchange, TLS randoms) is ring's: aws-lc
//! spends ~25 ms seeding its generator from CPU jitter at first use, which every
//! start of the provider (several per `terraform plan`) would pay.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// Errors while preparing the TLS side of the handshake.
#[derive(Debug)]
pub enum TlsSetupError {
    /// `PLUGIN_CLIENT_CERT` held no parsable PEM certificate.
    BadClientCert(String),
    /// Generating our own certificate failed.
    CertGeneration(rcgen::Error),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadClientCert(why) => {
                write!(f, "PLUGIN_CLIENT_CERT is not a PEM certificate: {why}")
            }
            Self::CertGeneration(e) => write!(f, "generating the server certificate failed: {e}"),
            Self::Rustls(e) => write!(f, "building the TLS configuration failed: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The crypto provider used for both sides: ring's, with aws-lc-rs's signature
/// verification (P-521). Verifying needs no randomness, so aws-lc's generator is
/// never seeded.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.signature_verification_algorithms =
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    Arc::new(provider)
}

/// Parses the first certificate of the PEM text Terraform passes.
pub fn parse_client_cert_pem(pem: &str) -> Result<CertificateDer<'static>, TlsSetupError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsSetupError::BadClientCert(e.to_string()))
}

/// A fresh self-signed server certificate and its key.
pub struct ServerIdentity {
    /// DER of the leaf certificate (field 6 of the handshake line).
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ServerIdentity {
    /// Generates a P-256 certificate for `localhost`, the name go-plugin's
    /// client verifies against a pool holding only this certificate. The key is
    /// ring's and so is the signature: rcgen would use aws-lc whenever any crate in
    /// the build enables its aws-lc backend (features unify), and seed aws-lc's
    /// generator.
    pub fn generate() -> Result<Self, TlsSetupError> {
        let key = RingP256::generate()?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(TlsSetupError::CertGeneration)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).map_err(TlsSetupError::CertGeneration)?;
        Ok(Self { cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.pkcs8) })
    }
}

/// An ECDSA P-256 key of ring's, as rcgen's signer.
struct RingP256 {
    pair: ring::signature::EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: ring::rand::SystemRandom,
}

impl RingP256 {
    fn generate() -> Result<Self, TlsSetupError> {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let failed = |_| TlsSetupError::CertGeneration(rcgen::Error::RingUnspecified);
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(failed)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| TlsSetupError::CertGeneration(rcgen::Error::RingUnspecified))?;
        Ok(RingP256 { pair, pkcs8: pkcs8.as_ref().to_vec(), rng })
    }
}

impl rcgen::PublicKeyData for RingP256 {
    fn der_bytes(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RingP256 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair.sign(&self.rng, msg).map(|s| s.as_ref().to_vec()).map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// Accepts exactly one client certificate, byte for byte, and nothing else.
#[derive(Debug)]
pub struct PinnedClientCertVerifier {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedClientCertVerifier {
    /// `algorithms` should be the crypto provider's
    /// `signature_verification_algorithms`.
    pub fn new(expected: CertificateDer<'static>, algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { expected, algorithms }
    }
}

impl ClientCertVerifier for PinnedClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No CA hints: Go then offers its only certificate regardless of issuer.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the mutual-TLS server configuration: our identity, the pinned client
/// certificate, TLS 1.2/1.3, and ALPN `h2` (grpc-go refuses connections without it).
pub fn server_config(
    identity: &ServerIdentity,
    client_cert: CertificateDer<'static>,
) -> Result<ServerConfig, TlsSetupError> {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedClientCertVerifier::new(client_cert, provider.signature_verification_algorithms));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(TlsSetupError::Rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.cert.clone()], PrivateKeyDer::Pkcs8(identity.key.clone_key()))
        .map_err(TlsSetupError::Rustls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terraform_like_cert() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier_for(cert: &CertificateDer<'static>) -> PinnedClientCertVerifier {
        PinnedClientCertVerifier::new(cert.clone(), crypto_provider().signature_verification_algorithms)
    }

    #[test]
    fn accepts_the_pinned_certificate() {
        let cert = terraform_like_cert();
        let v = verifier_for(&cert);
        assert!(v.verify_client_cert(&cert, &[], UnixTime::now()).is_ok());
        assert!(v.client_auth_mandatory());
        assert!(v.offer_client_auth());
    }

    #[test]
    fn rejects_any_other_certificate() {
        let pinned = terraform_like_cert();
        let other = terraform_like_cert();
        let v = verifier_for(&pinned);
        let err = v.verify_client_cert(&other, &[], UnixTime::now()).unwrap_err();
        assert_eq!(err, rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        // A certificate that merely contains the pinned one is not equal either.
        let mut padded = pinned.as_ref().to_vec();
        padded.push(0);
        assert!(v.verify_client_cert(&CertificateDer::from(padded), &[], UnixTime::now()).is_err());
    }

    #[test]
    fn offers_p521_signature_scheme() {
        // Without it Go's client sends no certificate at all.
        let v = verifier_for(&terraform_like_cert());
        assert!(v.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }

    #[test]
    fn parses_pem_and_rejects_garbage() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let parsed = parse_client_cert_pem(&cert.pem()).unwrap();
        assert_eq!(parsed.as_ref(), cert.der().as_ref());
        assert!(parse_client_cert_pem("not a certificate").is_err());
    }

    #[test]
    fn server_config_negotiates_h2_only() {
        let identity = ServerIdentity::generate().unwrap();
        let config = server_config(&identity, terraform_like_cert()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
