//! `kubeadm init --config F`: validation, preflight, the files, then the API phases
//! (wait-control-plane, upload-config, mark-control-plane, bootstrap-token).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::config::{self, ConfigFile};
use super::files::{self, LocalApi};
use super::types::{ClusterConfiguration, InitConfiguration, Taint};
use super::{preflight, token};
use crate::apiclient::ApiClient;
use crate::kubeconfig::Kubeconfig;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    #[arg(long = "skip-phases", value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    #[arg(long = "upload-certs")]
    pub upload_certs: bool,
    #[arg(long = "skip-token-print")]
    pub skip_token_print: bool,
    #[command(subcommand)]
    pub phase: Option<InitSub>,
}

#[derive(clap::Subcommand, Debug)]
pub enum InitSub {
    /// Use this command to invoke single phase of the "init" workflow
    Phase {
        #[command(subcommand)]
        phase: super::phase::Phase,
    },
}

/// The node's first global IPv4 address (kubeadm's advertise address auto-detection).
pub fn detect_address() -> Result<String> {
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .context("unable to select an IP from the default route; set localAPIEndpoint.advertiseAddress")
}

/// Loads, defaults and validates the init configuration.
pub fn load(
    path: &str,
    kubeadm: crate::version::KubeVersion,
) -> Result<(InitConfiguration, ClusterConfiguration, ConfigFile)> {
    let file = config::load_file(path)?;
    if file.join.is_some() {
        bail!("kubeadm init: the configuration file holds a JoinConfiguration; use kubeadm join");
    }
    super::validate_file(&file, kubeadm)?;
    let mut init = file.init.clone().unwrap_or_else(|| InitConfiguration {
        api_version: config::API_VERSION.into(),
        kind: "InitConfiguration".into(),
        ..Default::default()
    });
    config::set_init_defaults(&mut init);
    let mut cluster = file.cluster.clone().unwrap_or_else(|| config::default_cluster(true, kubeadm));
    config::set_cluster_defaults(&mut cluster, kubeadm);
    if init.local_api_endpoint.advertise_address.is_empty() {
        init.local_api_endpoint.advertise_address = detect_address()?;
    }
    Ok((init, cluster, file))
}

fn timeout_of(t: Option<&String>, default: Duration) -> Duration {
    t.and_then(|s| crate::duration::parse_go_duration(s).ok()).unwrap_or(default)
}

pub async fn run(a: InitArgs) -> Result<()> {
    if let Some(InitSub::Phase { phase }) = a.phase {
        return super::phase::run(phase).await;
    }
    let kubeadm = super::kubeadm_version()?;
    let path = a.config.as_deref().context("this stand-in kubeadm takes its settings from --config only")?;
    let (init, cluster, file) = load(path, kubeadm)?;
    println!("[init] Using Kubernetes version: {}", cluster.kubernetes_version);
    println!("[preflight] Running pre-flight checks");
    let mut ignore = a.ignore_preflight_errors.clone();
    ignore.extend(init.node_registration.ignore_preflight_errors.iter().cloned());
    let mut c = preflight::Checks::default();
    preflight::privileged(&mut c);
    preflight::control_plane_resources(&mut c);
    let k8s = crate::version::KubeVersion::parse(&cluster.kubernetes_version).ok();
    preflight::common(&mut c, &init.node_registration.cri_socket, kubeadm, k8s).await;
    preflight::forwarding(
        &mut c,
        preflight::init_forwarding(
            &cluster.networking.service_subnet,
            &cluster.networking.pod_subnet,
            &init.local_api_endpoint.advertise_address,
        ),
    );
    preflight::port(&mut c, init.local_api_endpoint.bind_port as u16);
    let k = files::kdir();
    for m in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"] {
        preflight::file_available(&mut c, &format!("{k}/manifests/{m}.yaml"));
    }
    preflight::dir_available(&mut c, &format!("{k}/manifests"));
    if let Some(x) = &cluster.etcd.external {
        preflight::external_etcd(&mut c, x, kubeadm).await;
    }
    c.finish(&ignore).context("error execution phase preflight")?;
    println!("[preflight] Pulling images required for setting up a Kubernetes cluster");
    println!("[preflight] This might take a minute or two, depending on the speed of your internet connection");
    println!("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
    preflight::pull_images_check(
        &init.node_registration.cri_socket,
        &cluster.image_repository,
        &init.node_registration.image_pull_policy,
        kubeadm,
        &ignore,
    )
    .await
    .context("error execution phase preflight")?;

    let local = LocalApi {
        node_name: init.node_registration.name.clone(),
        advertise_address: init.local_api_endpoint.advertise_address.clone(),
        bind_port: init.local_api_endpoint.bind_port,
    };
    println!("[certs] Using certificateDir folder \"{}\"", cluster.certificates_dir);
    files::write_certs(&cluster, &local, true).context("error execution phase certs")?;
    println!("[kubeconfig] Using kubeconfig folder \"{k}\"");
    files::write_kubeconfigs(&cluster, &local, true).context("error execution phase kubeconfig")?;
    println!("[control-plane] Creating static Pod manifests in \"{k}/manifests\"");
    files::write_manifests(&cluster, &local).context("error execution phase control-plane")?;
    files::write_kubelet_files(&cluster, &init.node_registration, file.kubelet.as_ref(), false)
        .context("error execution phase kubelet-start")?;
    files::restart_kubelet();

    let admin = Kubeconfig::load(&format!("{k}/admin.conf"))?;
    let local_url = format!("https://{}:{}", local.advertise_address, local.bind_port);
    let api = ApiClient::from_kubeconfig_at(&admin, &local_url)?;
    let wait = timeout_of(
        init.timeouts.as_ref().and_then(|t| t.control_plane_component_health_check.as_ref()),
        Duration::from_secs(240),
    );
    wait_ready(&api, wait).await.context("error execution phase wait-control-plane")?;
    kubelet_finalize(&k).await;
    upload_config(&api, &cluster).await.context("error execution phase upload-config")?;
    mark_control_plane(&api, &local.node_name, init.node_registration.taints.clone())
        .await
        .context("error execution phase mark-control-plane")?;
    for t in &init.bootstrap_tokens {
        token::create_secret(&api, t).await.context("error execution phase bootstrap-token")?;
    }
    println!("[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace");
    let endpoint = files::endpoint_url(&cluster, &local);
    cluster_info(&api, &cluster, &endpoint).await.context("error execution phase bootstrap-token")?;
    println!("\nYour Kubernetes control-plane has initialized successfully!\n");
    if !a.skip_token_print {
        if let Some(t) = init.bootstrap_tokens.first() {
            let hash = crate::pki::ca_cert_hash(&admin.ca_pem()?)?;
            println!(
                "Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join {} --token {} \\\n\t--discovery-token-ca-cert-hash {hash}",
                endpoint.trim_start_matches("https://"),
                // The token is what the operator asked kubeadm to print; real kubeadm prints it too.
                t.token
            );
        }
    }
    Ok(())
}

/// wait-control-plane: the local API server answers /readyz (bounded).
pub async fn wait_ready(api: &ApiClient, timeout: Duration) -> Result<()> {
    println!("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\"");
    println!("[control-plane-check] Checking kube-apiserver at {}/livez", api.base);
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match api.get("/readyz").await {
            Ok(r) if r.status.is_success() => {
                println!("[control-plane-check] kube-apiserver is healthy after {:?}", start.elapsed());
                return Ok(());
            }
            Ok(r) => last = format!("{} {}", r.status, r.body),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "kube-apiserver check failed at {}/readyz: context deadline exceeded after {timeout:?} (last: {last})",
        api.base
    )
}

pub async fn upload_config(api: &ApiClient, cluster: &ClusterConfiguration) -> Result<()> {
    println!("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": serde_yaml_ng::to_string(cluster)?}
    });
    api.create_or_update("/api/v1/namespaces/kube-system/configmaps", "kubeadm-config", &cm).await
}

/// mark-control-plane: label and taint this node once the kubelet registered it.
pub async fn mark_control_plane(api: &ApiClient, node: &str, taints: Option<Vec<Taint>>) -> Result<()> {
    println!("[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]");
    let taints = taints.unwrap_or_else(|| {
        vec![Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]
    });
    let path = format!("/api/v1/nodes/{node}");
    let start = Instant::now();
    loop {
        let r = api.get(&path).await?;
        if r.status.is_success() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("timed out waiting for the kubelet to register node {node:?}: {}", r.message());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let patch = json!({
        "metadata": {"labels": {"node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}},
        "spec": {"taints": taints},
    });
    let r = api.merge_patch(&path, &patch).await?;
    if !r.status.is_success() {
        bail!("patching node {node}: {} {}", r.status, r.message());
    }
    Ok(())
}

async fn cluster_info(api: &ApiClient, cluster: &ClusterConfiguration, endpoint: &str) -> Result<()> {
    let ca = std::fs::read_to_string(format!("{}/ca.crt", cluster.certificates_dir))?;
    let mut k = Kubeconfig::new("", endpoint, &ca, "", Default::default());
    k.contexts.clear();
    k.users.clear();
    k.current_context.clear();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": k.to_yaml()}
    });
    api.create_or_update("/api/v1/namespaces/kube-public/configmaps", "cluster-info", &cm).await
}

/// Phase kubelet-finalize (enable-client-cert-rotation): kubelet.conf, written with an
/// embedded client certificate, is pointed at the kubelet's certificate store once the
/// kubelet seeded it, so that rotated certificates are used.
async fn kubelet_finalize(k: &str) {
    let pem = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    let start = std::time::Instant::now();
    while !std::path::Path::new(pem).exists() {
        if start.elapsed() > Duration::from_secs(20) {
            println!("[kubelet-finalize] {pem} not found: kubelet.conf keeps its embedded client certificate");
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let path = format!("{k}/kubelet.conf");
    let Ok(mut conf) = Kubeconfig::load(&path) else { return };
    for u in &mut conf.users {
        u.user = crate::kubeconfig::User {
            client_certificate: Some(pem.into()),
            client_key: Some(pem.into()),
            ..Default::default()
        };
    }
    println!("[kubelet-finalize] Updating \"{path}\" to point to a rotatable kubelet client certificate and key");
    if let Err(e) = crate::pki::write_file(&path, &conf.to_yaml(), 0o600) {
        println!("[kubelet-finalize] writing {path}: {e:#}");
    }
}
