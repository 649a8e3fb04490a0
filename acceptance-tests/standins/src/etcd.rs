//! etcd through its gRPC API (etcdserverpb KV Range/Put/DeleteRange and Maintenance
//! Status), over TLS with a client certificate, as the real kube-apiserver talks to it:
//! how the stand-in API server stores objects and how the stand-in kubeadm checks that
//! external etcd answers. etcd itself is real.
//!
//! The gRPC gateway (`/v3/kv/*` JSON) is not used: with `--client-cert-auth` etcd 3.4's
//! gateway dials etcd with the *server* certificate as a client certificate, which fails
//! unless that certificate also has clientAuth, a requirement the real kube-apiserver
//! does not impose.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

/// The etcdserverpb messages this client needs (field numbers from etcd's rpc.proto and
/// kv.proto; prost skips the fields left out).
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "1")]
        pub cluster_id: u64,
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
        #[prost(int64, tag = "3")]
        pub revision: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "5")]
        pub value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RangeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, repeated, tag = "2")]
        pub kvs: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub range_end: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteRangeResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(int64, tag = "2")]
        pub deleted: i64,
    }
    /// `Compare` with its target `CREATE` (1) and `create_revision` 0 (the key is absent)
    /// or `VALUE` (3) and `value` (the key holds these bytes); result `EQUAL` (0).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Compare {
        #[prost(int32, tag = "2")]
        pub target: i32,
        #[prost(bytes = "vec", tag = "3")]
        pub key: Vec<u8>,
        #[prost(int64, tag = "5")]
        pub create_revision: i64,
        #[prost(bytes = "vec", tag = "7")]
        pub value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RequestOp {
        #[prost(message, optional, tag = "2")]
        pub request_put: Option<PutRequest>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TxnRequest {
        #[prost(message, repeated, tag = "1")]
        pub compare: Vec<Compare>,
        #[prost(message, repeated, tag = "2")]
        pub success: Vec<RequestOp>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TxnResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(bool, tag = "2")]
        pub succeeded: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Member {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(string, repeated, tag = "3")]
        pub peer_urls: Vec<String>,
        #[prost(string, repeated, tag = "4")]
        pub client_urls: Vec<String>,
        #[prost(bool, tag = "5")]
        pub is_learner: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemberListRequest {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemberListResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, repeated, tag = "2")]
        pub members: Vec<Member>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemberAddRequest {
        #[prost(string, repeated, tag = "1")]
        pub peer_urls: Vec<String>,
        #[prost(bool, tag = "2")]
        pub is_learner: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemberAddResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(message, optional, tag = "2")]
        pub member: Option<Member>,
        #[prost(message, repeated, tag = "3")]
        pub members: Vec<Member>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(string, tag = "2")]
        pub version: String,
    }
}

#[derive(Clone)]
pub struct Etcd {
    members: Vec<(String, Channel)>,
    /// The member that answered last.
    pinned: Arc<std::sync::atomic::AtomicUsize>,
}

fn tls_config(ca_file: &str, cert_file: &str, key_file: &str) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file).with_context(|| format!("reading the etcd CA {ca_file}"))? {
        roots.add(c?).with_context(|| format!("the etcd CA {ca_file}"))?;
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut cfg = if cert_file.is_empty() {
        b.with_no_client_auth()
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .with_context(|| format!("reading {cert_file}"))?
            .collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("reading {key_file}"))?;
        b.with_client_auth_cert(certs, key).with_context(|| format!("the etcd client certificate {cert_file}"))?
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

impl Etcd {
    pub fn new(endpoints: &[String], ca_file: &str, cert_file: &str, key_file: &str) -> Result<Etcd> {
        let tls = if ca_file.is_empty() { None } else { Some(tls_config(ca_file, cert_file, key_file)?) };
        let mut members = Vec::new();
        for ep in endpoints {
            let ep = ep.trim_end_matches('/').to_string();
            let (scheme, hostport) =
                ep.split_once("://").with_context(|| format!("etcd endpoint {ep:?} has no scheme"))?;
            if scheme == "https" && tls.is_none() {
                anyhow::bail!("etcd endpoint {ep} needs TLS but no CA file was given");
            }
            let tls = if scheme == "https" { tls.clone() } else { None };
            let endpoint = Endpoint::from_shared(format!("http://{hostport}"))?
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10));
            let connector = tower::service_fn(move |uri: Uri| {
                let tls = tls.clone();
                async move {
                    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
                    let port = uri.port_u16().unwrap_or(2379);
                    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                    let io: Box<dyn IoStream> = match tls {
                        Some(cfg) => {
                            let name = ServerName::try_from(host).map_err(|e| std::io::Error::other(e.to_string()))?;
                            Box::new(tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await?)
                        }
                        None => Box::new(tcp),
                    };
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(io))
                }
            });
            members.push((ep.clone(), endpoint.connect_with_connector_lazy(connector)));
        }
        Ok(Etcd { members, pinned: Arc::new(std::sync::atomic::AtomicUsize::new(0)) })
    }

    async fn unary<Req, Resp>(ch: &Channel, path: &'static str, req: Req) -> Result<Resp>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(ch.clone());
        grpc.ready().await.map_err(|e| anyhow!("{e}"))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let resp = grpc
            .unary(tonic::Request::new(req), PathAndQuery::from_static(path), codec)
            .await
            .map_err(|s| anyhow!("{}: {}", s.code(), s.message()))?;
        Ok(resp.into_inner())
    }

    /// Tries the member that answered last first, then the others in turn, as the etcd
    /// client keeps a pinned endpoint and fails over: a dead member costs one connect
    /// timeout, not one per request.
    async fn call<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        use std::sync::atomic::Ordering;
        let mut errs = Vec::new();
        let first = self.pinned.load(Ordering::Relaxed);
        let n = self.members.len();
        for i in (0..n).map(|k| (first + k) % n) {
            let (ep, ch) = &self.members[i];
            match Self::unary(ch, path, req.clone()).await {
                Ok(r) => {
                    self.pinned.store(i, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(e) => errs.push(format!("{ep}: {e:#}")),
            }
        }
        Err(anyhow!("no etcd endpoint answered: {}", errs.join("; ")))
    }

    /// Each member's `Maintenance/Status`: Ok(server version) or the error.
    pub async fn statuses(&self) -> Vec<(String, Result<String>)> {
        let mut out = Vec::new();
        for (ep, ch) in &self.members {
            let r = Self::unary::<_, pb::StatusResponse>(ch, "/etcdserverpb.Maintenance/Status", pb::StatusRequest {})
                .await
                .map(|s| s.version);
            out.push((ep.clone(), r));
        }
        out
    }

    /// Cluster/MemberList: (id, name, peer URLs, client URLs).
    pub async fn members(&self) -> Result<Vec<pb::Member>> {
        let r: pb::MemberListResponse = self.call("/etcdserverpb.Cluster/MemberList", pb::MemberListRequest {}).await?;
        Ok(r.members)
    }

    /// Cluster/MemberAdd of a voting member with `peer_url`: every member after the add.
    pub async fn member_add(&self, peer_url: &str) -> Result<Vec<pb::Member>> {
        let req = pb::MemberAddRequest { peer_urls: vec![peer_url.to_string()], is_learner: false };
        let r: pb::MemberAddResponse = self.call("/etcdserverpb.Cluster/MemberAdd", req).await?;
        Ok(r.members)
    }

    pub async fn healthy(&self) -> bool {
        self.call::<_, pb::StatusResponse>("/etcdserverpb.Maintenance/Status", pb::StatusRequest {}).await.is_ok()
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let req = pb::PutRequest { key: key.as_bytes().to_vec(), value: value.to_vec() };
        self.call::<_, pb::PutResponse>("/etcdserverpb.KV/Put", req).await.map(|_| ())
    }

    /// Puts `value` only if `key` still holds `expected` (`None`: only if absent), in one
    /// etcd transaction, as kube-apiserver's optimistic concurrency does: of two writers
    /// racing on one object (on one API server or two), one gets `false` (a conflict).
    pub async fn put_if(&self, key: &str, value: &[u8], expected: Option<&[u8]>) -> Result<bool> {
        let key = key.as_bytes().to_vec();
        let compare = match expected {
            None => pb::Compare { target: 1, key: key.clone(), create_revision: 0, value: vec![] },
            Some(old) => pb::Compare { target: 3, key: key.clone(), create_revision: 0, value: old.to_vec() },
        };
        let put = pb::PutRequest { key, value: value.to_vec() };
        let req = pb::TxnRequest { compare: vec![compare], success: vec![pb::RequestOp { request_put: Some(put) }] };
        let r: pb::TxnResponse = self.call("/etcdserverpb.KV/Txn", req).await?;
        Ok(r.succeeded)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let req = pb::RangeRequest { key: key.as_bytes().to_vec(), range_end: vec![] };
        let r: pb::RangeResponse = self.call("/etcdserverpb.KV/Range", req).await?;
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let req = pb::RangeRequest { key: prefix.as_bytes().to_vec(), range_end: prefix_end(prefix) };
        let r: pb::RangeResponse = self.call("/etcdserverpb.KV/Range", req).await?;
        Ok(r.kvs.into_iter().map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value)).collect())
    }

    /// Deletes `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let req = pb::DeleteRangeRequest { key: key.as_bytes().to_vec(), range_end: vec![] };
        let r: pb::DeleteRangeResponse = self.call("/etcdserverpb.KV/DeleteRange", req).await?;
        Ok(r.deleted > 0)
    }
}

/// Each endpoint's `etcdserver` from its `/version` (JSON `{"etcdserver":"3.5.30",
/// "etcdcluster":"3.5.0"}`), read over HTTPS with the client certificate and the server
/// verified against the etcd CA, as kubeadm's ExternalEtcdVersionCheck does.
pub async fn server_versions(
    endpoints: &[String],
    ca_file: &str,
    cert_file: &str,
    key_file: &str,
) -> Result<Vec<(String, Result<String>)>> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10));
    if !ca_file.is_empty() {
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("couldn't load external etcd's server certificate {ca_file}"))?;
        b = b.tls_built_in_root_certs(false);
        for c in reqwest::Certificate::from_pem_bundle(&pem).with_context(|| format!("the etcd CA {ca_file}"))? {
            b = b.add_root_certificate(c);
        }
    }
    if !cert_file.is_empty() && !key_file.is_empty() {
        let mut pem = std::fs::read(cert_file).with_context(|| format!("reading {cert_file}"))?;
        pem.push(b'\n');
        pem.extend(std::fs::read(key_file).with_context(|| format!("reading {key_file}"))?);
        let id = reqwest::Identity::from_pem(&pem).with_context(|| {
            format!("couldn't load external etcd's certificate and key pair {cert_file}, {key_file}")
        })?;
        b = b.identity(id);
    }
    let http = b.build()?;
    let mut out = Vec::new();
    for ep in endpoints {
        let url = format!("{}/version", ep.trim_end_matches('/'));
        let r = async {
            let resp = http.get(&url).send().await.map_err(|e| anyhow!("Get {url:?}: {e:#}"))?;
            if resp.status().is_server_error() {
                anyhow::bail!("server responded with non-successful status: {}", resp.status());
            }
            let v: serde_json::Value = resp.json().await.with_context(|| format!("decoding {url}"))?;
            Ok(v.get("etcdserver").and_then(|s| s.as_str()).unwrap_or_default().to_string())
        }
        .await;
        out.push((ep.clone(), r));
    }
    Ok(out)
}

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}
