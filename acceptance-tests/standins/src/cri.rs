//! The container runtime through the CRI API (`runtime.v1.RuntimeService`) over gRPC on its
//! unix socket, as kubeadm (`cmd/kubeadm/app/util/runtime/runtime.go`, through
//! `k8s.io/cri-client`) and the kubelet talk to it: `Version` validates the connection
//! (cri-client's validateServiceConnection), `Status` tells whether the runtime is ready.
//! A containerd whose CRI plugin is disabled (`disabled_plugins = ["cri"]`) still answers
//! `ctr version`, but not this API (`Unimplemented: unknown service runtime.v1.RuntimeService`).
//! The image service (`runtime.v1.ImageService`: PullImage, ListImages, ImageStatus) and
//! `Status` with `verbose` (the runtime's `info` map; containerd's `config` holds
//! `sandboxImage`) serve kubeadm's ImagePullCheck and the `strata-cri` test client.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

/// The messages of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto` used here (field numbers
/// from api.proto; prost skips the fields left out).
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        #[prost(string, tag = "1")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        #[prost(string, tag = "3")]
        pub runtime_version: String,
        #[prost(string, tag = "4")]
        pub runtime_api_version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {
        #[prost(bool, tag = "1")]
        pub verbose: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeCondition {
        #[prost(string, tag = "1")]
        pub r#type: String,
        #[prost(bool, tag = "2")]
        pub status: bool,
        #[prost(string, tag = "3")]
        pub reason: String,
        #[prost(string, tag = "4")]
        pub message: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeStatus {
        #[prost(message, repeated, tag = "1")]
        pub conditions: Vec<RuntimeCondition>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(message, optional, tag = "1")]
        pub status: Option<RuntimeStatus>,
        /// Only with `verbose`: runtime-specific JSON documents by key (containerd:
        /// `config`, `golang`, `cniconfig`, `lastCNILoadStatus`).
        #[prost(map = "string, string", tag = "2")]
        pub info: ::std::collections::HashMap<String, String>,
    }

    // The image service (`runtime.v1.ImageService`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        #[prost(string, tag = "1")]
        pub image: String,
        #[prost(map = "string, string", tag = "2")]
        pub annotations: ::std::collections::HashMap<String, String>,
        #[prost(string, tag = "18")]
        pub user_specified_image: String,
        #[prost(string, tag = "19")]
        pub runtime_handler: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PullImageRequest {
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PullImageResponse {
        #[prost(string, tag = "1")]
        pub image_ref: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageFilter {
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListImagesRequest {
        #[prost(message, optional, tag = "1")]
        pub filter: Option<ImageFilter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Int64Value {
        #[prost(int64, tag = "1")]
        pub value: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(string, repeated, tag = "2")]
        pub repo_tags: Vec<String>,
        #[prost(string, repeated, tag = "3")]
        pub repo_digests: Vec<String>,
        #[prost(uint64, tag = "4")]
        pub size: u64,
        #[prost(message, optional, tag = "5")]
        pub uid: Option<Int64Value>,
        #[prost(string, tag = "6")]
        pub username: String,
        #[prost(message, optional, tag = "7")]
        pub spec: Option<ImageSpec>,
        #[prost(bool, tag = "8")]
        pub pinned: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListImagesResponse {
        #[prost(message, repeated, tag = "1")]
        pub images: Vec<Image>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageStatusRequest {
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageStatusResponse {
        #[prost(message, optional, tag = "1")]
        pub image: Option<Image>,
        #[prost(map = "string, string", tag = "2")]
        pub info: ::std::collections::HashMap<String, String>,
    }
}

/// A gRPC failure as grpc-go prints it: `rpc error: code = Unimplemented desc = …`.
fn rpc_error(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

/// `unix:///run/containerd/containerd.sock` (or a bare path) → the socket path.
pub fn socket_path(endpoint: &str) -> &str {
    endpoint.strip_prefix("unix://").unwrap_or(endpoint)
}

pub struct Runtime {
    channel: Channel,
}

async fn unary<Req, Resp>(ch: &Channel, path: &'static str, req: Req) -> Result<Resp, String>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        format!("rpc error: code = Unavailable desc = connection error: {msg}")
    })?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(tonic::Request::new(req), PathAndQuery::from_static(path), codec)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| rpc_error(&s))
}

impl Runtime {
    /// cri-client's NewRemoteRuntimeService: a (lazy) connection, then `Version` to
    /// validate that the CRI v1 runtime API answers. The error reads as kubeadm's
    /// `failed to create new CRI runtime service: validate service connection: validate
    /// CRI v1 runtime API for endpoint "unix://…": rpc error: …`, without the first part.
    pub async fn connect(endpoint: &str) -> Result<Runtime> {
        Runtime::connect_with_timeout(endpoint, Duration::from_secs(10)).await
    }

    /// [`Runtime::connect`] with another bound on each call (image pulls take longer).
    pub async fn connect_with_timeout(endpoint: &str, timeout: Duration) -> Result<Runtime> {
        let path = socket_path(endpoint).to_string();
        let ch = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(|e| std::io::Error::new(e.kind(), format!("dial unix {path}: connect: {e}")))?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }));
        unary::<_, pb::VersionResponse>(&ch, "/runtime.v1.RuntimeService/Version", pb::VersionRequest::default())
            .await
            .map_err(|e| {
                anyhow!("validate service connection: validate CRI v1 runtime API for endpoint {endpoint:?}: {e}")
            })?;
        Ok(Runtime { channel: ch })
    }

    pub async fn version(&self) -> Result<pb::VersionResponse> {
        unary(&self.channel, "/runtime.v1.RuntimeService/Version", pb::VersionRequest::default())
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    /// kubeadm's CRIRuntime.IsRunning: `Status`, then the `RuntimeReady` condition must be
    /// true (NetworkReady is not looked at, on purpose, as upstream).
    pub async fn is_running(&self) -> Result<()> {
        let r: pb::StatusResponse =
            unary(&self.channel, "/runtime.v1.RuntimeService/Status", pb::StatusRequest { verbose: false })
                .await
                .map_err(|e| anyhow!("container runtime is not running: {e}"))?;
        runtime_ready(&r)
    }

    /// `Status` with `verbose`: the conditions and the runtime's `info` map.
    pub async fn status_verbose(&self) -> Result<pb::StatusResponse> {
        unary(&self.channel, "/runtime.v1.RuntimeService/Status", pb::StatusRequest { verbose: true })
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    /// kubeadm's CRIRuntime.SandboxImage (`util/runtime/runtime.go`): `Status` verbose, the
    /// `config` info document, its `sandboxImage`.
    pub async fn sandbox_image(&self) -> Result<String> {
        let r = self.status_verbose().await?;
        sandbox_image_of(&r.info)
    }

    /// `PullImage`: the image reference (id) the runtime reports.
    pub async fn pull_image(&self, image: &str) -> Result<String, String> {
        let req = pb::PullImageRequest { image: Some(image_spec(image)) };
        let r: pb::PullImageResponse = unary(&self.channel, "/runtime.v1.ImageService/PullImage", req).await?;
        Ok(r.image_ref)
    }

    /// `ListImages`, optionally filtered by one image reference.
    pub async fn list_images(&self, filter: Option<&str>) -> Result<Vec<pb::Image>> {
        let req = pb::ListImagesRequest { filter: filter.map(|f| pb::ImageFilter { image: Some(image_spec(f)) }) };
        let r: pb::ListImagesResponse =
            unary(&self.channel, "/runtime.v1.ImageService/ListImages", req).await.map_err(|e| anyhow!("{e}"))?;
        Ok(r.images)
    }

    /// `ImageStatus`: the image (None when the runtime does not have it) and, with
    /// `verbose`, the runtime's info map.
    pub async fn image_status(&self, image: &str, verbose: bool) -> Result<pb::ImageStatusResponse> {
        let req = pb::ImageStatusRequest { image: Some(image_spec(image)), verbose };
        unary(&self.channel, "/runtime.v1.ImageService/ImageStatus", req).await.map_err(|e| anyhow!("{e}"))
    }
}

fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec { image: image.to_string(), ..Default::default() }
}

/// The sandbox image named by a verbose Status `info` map: the `config` document's
/// `sandboxImage` (containerd's CRI plugin config), as kubeadm reads it.
pub fn sandbox_image_of(info: &HashMap<String, String>) -> Result<String> {
    let config = info.get("config").ok_or_else(|| anyhow!("the runtime's status info has no \"config\""))?;
    let v: serde_json::Value =
        serde_json::from_str(config).map_err(|e| anyhow!("failed to unmarshal the runtime's config info: {e}"))?;
    match v.get("sandboxImage").and_then(|s| s.as_str()) {
        Some(s) => Ok(s.to_string()),
        None => Err(anyhow!("the runtime's config info has no sandboxImage")),
    }
}

/// The `RuntimeReady` condition of a Status answer, as IsRunning judges it.
pub fn runtime_ready(r: &pb::StatusResponse) -> Result<()> {
    for c in r.status.iter().flat_map(|s| &s.conditions) {
        if c.r#type == "RuntimeReady" && !c.status {
            anyhow::bail!(
                "container runtime condition \"{}\" is not true. reason: {}, message: {}",
                c.r#type,
                c.reason,
                c.message
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_image_comes_from_the_config_info() {
        let mut info = HashMap::new();
        assert!(sandbox_image_of(&info).is_err());
        info.insert("config".to_string(), r#"{"sandboxImage":"registry.k8s.io/pause:3.6","x":1}"#.to_string());
        assert_eq!(sandbox_image_of(&info).unwrap(), "registry.k8s.io/pause:3.6");
        info.insert("config".to_string(), "{}".to_string());
        assert!(sandbox_image_of(&info).is_err());
    }

    /// The messages encode with api.proto's field numbers (ImageSpec.image = 1 inside
    /// PullImageRequest.image = 1; StatusResponse.info = 2 a map).
    #[test]
    fn image_messages_use_the_cri_field_numbers() {
        use prost::Message;
        let req = pb::PullImageRequest { image: Some(image_spec("a")) };
        assert_eq!(req.encode_to_vec(), vec![0x0a, 3, 0x0a, 1, b'a']);
        let mut info = HashMap::new();
        info.insert("k".to_string(), "v".to_string());
        let st = pb::StatusResponse { status: None, info };
        assert_eq!(st.encode_to_vec(), vec![0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
    }

    /// cmd/kubeadm/app/util/runtime/runtime.go IsRunning: only RuntimeReady=false fails.
    #[test]
    fn runtime_ready_as_kubeadm_judges_it() {
        let cond = |t: &str, s: bool| pb::RuntimeCondition {
            r#type: t.into(),
            status: s,
            reason: "R".into(),
            message: "M".into(),
        };
        let status = |c: Vec<pb::RuntimeCondition>| pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions: c }),
            info: Default::default(),
        };
        assert!(runtime_ready(&status(vec![cond("RuntimeReady", true), cond("NetworkReady", false)])).is_ok());
        let e = runtime_ready(&status(vec![cond("RuntimeReady", false)])).unwrap_err().to_string();
        assert_eq!(e, "container runtime condition \"RuntimeReady\" is not true. reason: R, message: M");
    }

    /// A CRI endpoint where nothing listens: the connection validation fails with the
    /// endpoint named, as cri-client's validateServiceConnection.
    #[test]
    fn no_runtime_on_the_socket_fails_the_connection_validation() {
        let dir = tempfile::tempdir().unwrap();
        let ep = format!("unix://{}/none.sock", dir.path().display());
        let e = crate::block_on(Runtime::connect(&ep)).err().unwrap().to_string();
        assert!(e.starts_with(&format!("validate service connection: validate CRI v1 runtime API for endpoint {ep:?}: rpc error: code = Unavailable")), "{e}");
    }

    /// A gRPC server that is not a CRI runtime (as containerd with `disabled_plugins =
    /// ["cri"]`): grpc answers Unimplemented for the unknown service, and the validation
    /// fails with that status as kubeadm prints it.
    #[test]
    fn a_socket_without_the_cri_service_is_refused_as_unimplemented() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("c.sock");
        let ep = format!("unix://{}", sock.display());
        let e = crate::block_on(async {
            let listener = tokio::net::UnixListener::bind(&sock).unwrap();
            // A minimal HTTP/2 gRPC server answering every call with grpc-status 12
            // (Unimplemented), as grpc-go does for a service it does not register.
            tokio::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                            let svc =
                                req.uri().path().trim_start_matches('/').split('/').next().unwrap_or("").to_string();
                            let resp = hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "12")
                                .header("grpc-message", format!("unknown service {svc}"))
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        });
                        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                            .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                            .await;
                    });
                }
            });
            Runtime::connect(&ep).await.err().unwrap().to_string()
        });
        assert_eq!(
            e,
            format!("validate service connection: validate CRI v1 runtime API for endpoint {ep:?}: rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService")
        );
    }
}
