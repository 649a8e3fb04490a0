//! Helpers shared by the integration tests: start the echo provider like
//! Terraform does, read its handshake, and connect to it like go-plugin does.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use strata_proto::tfplugin6::get_provider_schema;
use strata_proto::tfplugin6::provider_client::ProviderClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub const COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// Bound for anything the provider should do "soon" (start, answer, exit).
pub const WAIT: Duration = Duration::from_secs(20);

/// Variables the test process may have inherited that would change behaviour.
const SCRUBBED: &[&str] = &[
    "TF_PLUGIN_MAGIC_COOKIE",
    "PLUGIN_PROTOCOL_VERSIONS",
    "PLUGIN_CLIENT_CERT",
    "PLUGIN_UNIX_SOCKET_DIR",
    "TF_LOG",
    "TF_LOG_PROVIDER",
    "TF_REATTACH_PROVIDERS",
];

/// A running echo provider; killed on drop if still alive.
pub struct Plugin {
    pub child: Child,
    stdout_lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Plugin {
    /// Starts the provider with exactly `env` (plus a scrubbed inherited env) and `args`.
    pub fn start(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata-plugin-echo"));
        for key in SCRUBBED {
            cmd.env_remove(key);
        }
        cmd.envs(env.iter().copied()).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn echo provider");
        let stdout = child.stdout.take().unwrap();
        let (tx, stdout_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        // Drained continuously so a chatty provider can never block on a full pipe.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self { child, stdout_lines, stderr: Some(stderr) }
    }

    /// Starts the provider as Terraform would, with AutoMTLS if `client_cert_pem` is given.
    pub fn start_like_terraform(client_cert_pem: Option<&str>, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![(COOKIE_KEY, COOKIE), ("PLUGIN_PROTOCOL_VERSIONS", "5,6")];
        if let Some(pem) = client_cert_pem {
            env.push(("PLUGIN_CLIENT_CERT", pem));
        }
        env.extend_from_slice(extra);
        Self::start(&env, &[])
    }

    /// Next stdout line, or None if none arrives within [`WAIT`] / stdout closed.
    pub fn next_stdout_line(&self) -> Option<String> {
        self.stdout_lines.recv_timeout(WAIT).ok()
    }

    /// Reads and parses the go-plugin handshake line.
    pub fn handshake(&self) -> Handshake {
        let line = self.next_stdout_line().expect("handshake line on stdout");
        Handshake::parse(&line)
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All of stderr; only call after the process has exited.
    pub fn stderr(&mut self) -> String {
        self.stderr.take().expect("stderr taken once").join().unwrap()
    }

    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so the provider removes its socket directory;
            // SIGKILL only if it does not go.
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            if self.wait_exit(WAIT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The six `|`-separated fields of `1|6|unix|/path|grpc|<cert>`.
#[derive(Debug)]
pub struct Handshake {
    pub fields: Vec<String>,
    pub socket: PathBuf,
    pub server_cert: Option<CertificateDer<'static>>,
}

impl Handshake {
    pub fn parse(line: &str) -> Self {
        let fields: Vec<String> = line.split('|').map(str::to_string).collect();
        assert_eq!(fields.len(), 6, "handshake line: {line}");
        assert_eq!(&fields[..3], ["1", "6", "unix"], "handshake line: {line}");
        assert_eq!(fields[4], "grpc", "handshake line: {line}");
        let server_cert = (!fields[5].is_empty()).then(|| {
            let der = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&fields[5])
                .expect("field 6 is unpadded standard base64");
            CertificateDer::from(der)
        });
        Self { socket: PathBuf::from(&fields[3]), server_cert, fields }
    }
}

/// A client identity made the way go-plugin's AutoMTLS makes Terraform's:
/// self-signed ECDSA P-521, CA:TRUE, SAN localhost.
pub struct ClientIdentity {
    pub pem: String,
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ClientIdentity {
    pub fn terraform_like() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyAgreement,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth, rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).unwrap();
        Self { pem: cert.pem(), cert: cert.der().clone(), key: PrivatePkcs8KeyDer::from(key.serialize_der()) }
    }
}

fn aws_lc() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Connects over the Unix socket with TLS like go-plugin's client: trust only
/// the handshake's server certificate, for the name `localhost`, ALPN h2, and
/// present `identity` (or no certificate at all).
pub async fn tls_channel(
    hs: &Handshake,
    identity: Option<&ClientIdentity>,
) -> Result<Channel, tonic::transport::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(hs.server_cert.clone().expect("server certificate in handshake")).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(aws_lc())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            builder.with_client_auth_cert(vec![id.cert.clone()], PrivateKeyDer::Pkcs8(id.key.clone_key())).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = hs.socket.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let socket = socket.clone();
            async move {
                let stream = UnixStream::connect(socket).await?;
                let server_name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(server_name, stream).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// Plaintext h2 over the Unix socket (no AutoMTLS, or debug mode).
pub async fn plain_channel(socket: PathBuf) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
}

/// Calls GetProviderSchema and checks the echo provider's answer.
pub async fn assert_schema_call_works(channel: Channel) {
    let response = ProviderClient::new(channel)
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("GetProviderSchema")
        .into_inner();
    let resource = response.resource_schemas.get("echo_value").expect("echo_value schema");
    let attr = &resource.block.as_ref().unwrap().attributes[0];
    assert_eq!(attr.name, "value");
    assert_eq!(attr.r#type, br#""string""#);
}
