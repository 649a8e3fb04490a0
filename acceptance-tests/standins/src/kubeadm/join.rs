//! `kubeadm join --config F`: token discovery (cluster-info, its JWS signature, the CA
//! pinned by hash), then a control plane instance from the shared PKI, or a worker whose
//! kubelet TLS-bootstraps with the token.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::config;
use super::files::{self, LocalApi};
use super::types::{ClusterConfiguration, JoinConfiguration};
use super::{init, preflight};
use crate::apiclient::ApiClient;
use crate::kubeconfig::{Kubeconfig, User};

#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    #[arg(long = "skip-phases", value_delimiter = ',')]
    pub skip_phases: Vec<String>,
}

fn load(path: &str) -> Result<JoinConfiguration> {
    let file = config::load_file(path)?;
    let Some(mut j) = file.join.clone() else {
        bail!("kubeadm join: no JoinConfiguration in {path}");
    };
    super::validate_file(&file, super::kubeadm_version()?)?;
    config::set_join_defaults(&mut j);
    Ok(j)
}

/// Token discovery: the cluster-info kubeconfig, trusted once its JWS verifies with the
/// token and its CA matches a pinned hash.
pub async fn discover(j: &JoinConfiguration) -> Result<Kubeconfig> {
    let bt = j
        .discovery
        .bootstrap_token
        .as_ref()
        .context("this stand-in supports token discovery only (discovery.bootstrapToken)")?;
    let endpoint = format!("https://{}", bt.api_server_endpoint);
    let id = bt.token.split('.').next().unwrap_or_default();
    println!("[discovery] Trying to connect to API Server {:?}", bt.api_server_endpoint);
    let insecure = ApiClient::insecure(&endpoint)?;
    let r = insecure
        .get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
        .await
        .context("couldn't validate the identity of the API Server")?;
    if !r.status.is_success() {
        bail!(
            "couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: {}",
            r.message()
        );
    }
    let kubeconfig_text = r.body["data"]["kubeconfig"]
        .as_str()
        .context("there is no kubeconfig in the cluster-info ConfigMap")?
        .to_string();
    let Some(jws) = r.body["data"][format!("jws-kubeconfig-{id}")].as_str() else {
        bail!("couldn't validate the identity of the API Server: token id {id:?} is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token");
    };
    if !crate::jws::verify_detached(&kubeconfig_text, jws, id, &bt.token) {
        bail!("couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server");
    }
    let info = Kubeconfig::parse(&kubeconfig_text)?;
    let ca = info.ca_pem()?;
    if !bt.unsafe_skip_ca_verification {
        let hash = crate::pki::ca_cert_hash(&ca)?;
        if !bt.ca_cert_hashes.iter().any(|h| h.eq_ignore_ascii_case(&hash)) {
            bail!("couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{hash}\" are pinned");
        }
    }
    println!("[discovery] Cluster info signature and contents are valid and the CA is pinned; will use API Server {endpoint:?}");
    // Fetched again over TLS verified against the pinned CA, as kubeadm does.
    let secure =
        ApiClient::from_kubeconfig_at(&Kubeconfig::new("kubernetes", &endpoint, &ca, "", User::default()), &endpoint)?;
    let again = secure
        .get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
        .await
        .context("the API server's certificate does not verify against the pinned CA")?;
    if again.body["data"]["kubeconfig"].as_str() != Some(kubeconfig_text.as_str()) {
        bail!("the cluster-info ConfigMap changed between the insecure and the secure request");
    }
    Ok(info)
}

pub async fn run(a: JoinArgs) -> Result<()> {
    let path = a.config.as_deref().context("this stand-in kubeadm takes its settings from --config only")?;
    let j = load(path)?;
    let kubeadm = super::kubeadm_version()?;
    let k = files::kdir();
    println!("[preflight] Running pre-flight checks");
    let mut ignore = a.ignore_preflight_errors.clone();
    ignore.extend(j.node_registration.ignore_preflight_errors.iter().cloned());
    let mut c = preflight::Checks::default();
    preflight::privileged(&mut c);
    preflight::common(&mut c, &j.node_registration.cri_socket, kubeadm, None).await;
    preflight::file_available(&mut c, &format!("{k}/kubelet.conf"));
    preflight::file_available(&mut c, &format!("{k}/bootstrap-kubelet.conf"));
    if let Some(cp) = &j.control_plane {
        // InitNodeChecks for the new control-plane instance (join's runPreflight).
        preflight::control_plane_resources(&mut c);
        preflight::port(&mut c, cp.local_api_endpoint.bind_port as u16);
        preflight::dir_available(&mut c, &format!("{k}/manifests"));
    } else {
        preflight::file_available(&mut c, &j.ca_cert_path);
    }
    if let Some(bt) = &j.discovery.bootstrap_token {
        preflight::forwarding(&mut c, preflight::join_forwarding(&bt.api_server_endpoint));
    }
    c.finish(&ignore).context("error execution phase preflight")?;
    if j.control_plane.is_some() {
        preflight::cri_connect_for_images(&j.node_registration.cri_socket)
            .await
            .context("error execution phase preflight")?;
    }

    let info = discover(&j).await.context("error execution phase preflight")?;
    let endpoint = info.server()?;
    let ca = info.ca_pem()?;
    let token = j.discovery.tls_bootstrap_token.clone();
    let bootstrap = Kubeconfig::new(
        "kubernetes",
        &endpoint,
        &ca,
        "tls-bootstrap-token-user",
        User { token: Some(token.clone()), ..Default::default() },
    );
    let api = ApiClient::from_kubeconfig(&bootstrap)?;
    // kubeadm reads the cluster's configuration with the bootstrap token (kubeadm grants
    // bootstrappers read access to the kubeadm-config ConfigMap).
    let r = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config").await?;
    if !r.status.is_success() {
        bail!("error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: {}", r.message());
    }
    let text = r.body["data"]["ClusterConfiguration"].as_str().context("kubeadm-config has no ClusterConfiguration")?;
    let mut cluster = config::parse(text)?.cluster.context("kubeadm-config holds no ClusterConfiguration")?;
    config::set_cluster_defaults(&mut cluster, kubeadm);

    match &j.control_plane {
        Some(cp) => join_control_plane(&j, &cluster, cp, &ignore, &ca, &bootstrap).await,
        None => join_worker(&j, &cluster, &bootstrap, &ca).await,
    }
}

async fn join_control_plane(
    j: &JoinConfiguration,
    cluster: &ClusterConfiguration,
    cp: &super::types::JoinControlPlane,
    ignore: &[String],
    cluster_ca: &str,
    bootstrap: &Kubeconfig,
) -> Result<()> {
    if cluster.control_plane_endpoint.is_empty() {
        bail!("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n");
    }
    let d = &cluster.certificates_dir;
    let missing: Vec<String> = ["ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key"]
        .iter()
        .map(|f| format!("{d}/{f}"))
        .filter(|p| !std::path::Path::new(p).is_file())
        .collect();
    if !missing.is_empty() && cp.certificate_key.is_empty() {
        bail!("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n[failure loading certificates: {} not found]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n", missing.join(", "));
    }
    if !cp.certificate_key.is_empty() {
        bail!("error execution phase control-plane-prepare/download-certs: this stand-in does not implement certificate upload (copy the shared PKI instead)");
    }
    // The shared CA on disk must be the cluster's (the one discovery pinned).
    let local_ca = crate::pki::read(&format!("{d}/ca.crt"))?;
    if crate::pki::cert_spki(&local_ca, "ca.crt")? != crate::pki::cert_spki(cluster_ca, "the cluster CA")? {
        bail!("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n[the certificate authority {d}/ca.crt is not the cluster's CA (it differs from the CA in the cluster-info ConfigMap)]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n");
    }
    let mut c = preflight::Checks::default();
    if let Some(x) = &cluster.etcd.external {
        preflight::external_etcd(&mut c, x, super::kubeadm_version()?).await;
    }
    c.finish(ignore).context("error execution phase preflight")?;
    let advertise = if cp.local_api_endpoint.advertise_address.is_empty() {
        init::detect_address()?
    } else {
        cp.local_api_endpoint.advertise_address.clone()
    };
    let local = LocalApi {
        node_name: j.node_registration.name.clone(),
        advertise_address: advertise,
        bind_port: cp.local_api_endpoint.bind_port,
    };
    // The CA must be the cluster's: the one discovery pinned.
    files::write_certs(cluster, &local, false).context("error execution phase control-plane-prepare/certs")?;
    files::write_kubeconfigs(cluster, &local, false)
        .context("error execution phase control-plane-prepare/kubeconfig")?;
    files::write_manifests(cluster, &local).context("error execution phase control-plane-prepare/control-plane")?;
    refuse_ready_node(bootstrap, &j.node_registration.name).await?;
    crate::pki::write_file(format!("{}/bootstrap-kubelet.conf", files::kdir()), &bootstrap.to_yaml(), 0o600)?;
    files::write_kubelet_files(cluster, &j.node_registration, None, false)
        .context("error execution phase kubelet-start")?;
    files::restart_kubelet();
    wait_tls_bootstrap(j).await?;
    let admin = Kubeconfig::load(&format!("{}/admin.conf", files::kdir()))?;
    let api =
        ApiClient::from_kubeconfig_at(&admin, &format!("https://{}:{}", local.advertise_address, local.bind_port))?;
    init::wait_ready(&api, Duration::from_secs(240)).await.context("error execution phase wait-control-plane")?;
    init::mark_control_plane(&api, &local.node_name, j.node_registration.taints.clone())
        .await
        .context("error execution phase control-plane-join/mark-control-plane")?;
    println!("\nThis node has joined the cluster and a new control plane instance was created");
    Ok(())
}

async fn join_worker(
    j: &JoinConfiguration,
    cluster: &ClusterConfiguration,
    bootstrap: &Kubeconfig,
    ca: &str,
) -> Result<()> {
    let k = files::kdir();
    refuse_ready_node(bootstrap, &j.node_registration.name).await?;
    crate::pki::write_file(&j.ca_cert_path, ca, 0o644)?;
    crate::pki::write_file(format!("{k}/bootstrap-kubelet.conf"), &bootstrap.to_yaml(), 0o600)?;
    files::write_kubelet_files(cluster, &j.node_registration, None, true)
        .context("error execution phase kubelet-start")?;
    files::restart_kubelet();
    wait_tls_bootstrap(j).await?;
    println!("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.");
    Ok(())
}

/// kubelet-start's first step (`cmd/kubeadm/app/cmd/phases/join/kubelet.go`,
/// runKubeletStartJoinPhase): with the bootstrap token's client (kubeadm's
/// `kubeadm:get-nodes` role), a Node of this name whose Ready condition is True refuses
/// the join, before the kubelet is configured.
async fn refuse_ready_node(bootstrap: &Kubeconfig, name: &str) -> Result<()> {
    let api = ApiClient::from_kubeconfig(bootstrap)?;
    let r = api.get(&format!("/api/v1/nodes/{name}")).await?;
    if r.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(());
    }
    if !r.status.is_success() {
        bail!("error execution phase kubelet-start: cannot get Node {name:?}: {}", r.message());
    }
    if let Some(msg) = ready_node_refusal(&r.body, name) {
        bail!("error execution phase kubelet-start: {msg}");
    }
    Ok(())
}

/// kubeadm's refusal of a join over an existing Node whose Ready condition is True.
pub fn ready_node_refusal(node: &serde_json::Value, name: &str) -> Option<String> {
    let ready = node["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then(|| {
        format!(
            "a Node with name {name:?} and status \"Ready\" already exists in the cluster. \
             You must delete the existing Node or change the name of this new joining Node"
        )
    })
}

/// kubelet-start: waits until the kubelet's TLS bootstrap wrote kubelet.conf, then
/// removes the bootstrap kubeconfig.
async fn wait_tls_bootstrap(j: &JoinConfiguration) -> Result<()> {
    let k = files::kdir();
    println!("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    let timeout = j
        .timeouts
        .as_ref()
        .and_then(|t| t.tls_bootstrap.as_ref())
        .and_then(|s| crate::duration::parse_go_duration(s).ok())
        .unwrap_or(Duration::from_secs(300));
    let start = Instant::now();
    let kubelet_conf = format!("{k}/kubelet.conf");
    while !std::path::Path::new(&kubelet_conf).exists() {
        if start.elapsed() > timeout {
            bail!("error execution phase kubelet-start: timed out waiting for the condition: the kubelet did not write {kubelet_conf} (TLS bootstrap)");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_file(format!("{k}/bootstrap-kubelet.conf"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `cmd/kubeadm/app/cmd/phases/join/kubelet.go`: only Ready=True refuses; a NotReady or
    /// Unknown Node of the name (a dead machine the controller noticed) lets the join on.
    #[test]
    fn a_ready_node_of_the_name_refuses_the_join() {
        let node = |status: &str| json!({"status": {"conditions": [{"type": "Ready", "status": status}]}});
        assert_eq!(
            ready_node_refusal(&node("True"), "node4").unwrap(),
            "a Node with name \"node4\" and status \"Ready\" already exists in the cluster. \
             You must delete the existing Node or change the name of this new joining Node"
        );
        assert_eq!(ready_node_refusal(&node("Unknown"), "node4"), None);
        assert_eq!(ready_node_refusal(&node("False"), "node4"), None);
        assert_eq!(ready_node_refusal(&json!({}), "node4"), None);
    }
}
