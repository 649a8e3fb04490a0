//! The files kubeadm writes on a node: certificates signed by the cluster CAs,
//! kubeconfigs, static pod manifests and the kubelet's configuration.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::IpNet;
use serde_json::{json, Value};

use super::types::ClusterConfiguration;
use crate::kubeconfig::Kubeconfig;
use crate::pki::{self, Usage};

pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const KUBELET_DIR: &str = "/var/lib/kubelet";

pub fn kdir() -> String {
    std::env::var("STRATA_STANDINS_ROOT").map(|r| format!("{r}{KUBERNETES_DIR}")).unwrap_or(KUBERNETES_DIR.into())
}

/// Where this control plane node's API server listens.
pub struct LocalApi {
    pub node_name: String,
    pub advertise_address: String,
    pub bind_port: i32,
}

/// The cluster's endpoint URL: controlPlaneEndpoint (with the bind port when it has none),
/// else the local API server.
pub fn endpoint_url(c: &ClusterConfiguration, local: &LocalApi) -> String {
    let cpe = &c.control_plane_endpoint;
    if cpe.is_empty() {
        format!("https://{}:{}", local.advertise_address, local.bind_port)
    } else if host_of(cpe) == cpe.as_str() {
        format!("https://{cpe}:{}", local.bind_port)
    } else {
        format!("https://{cpe}")
    }
}

pub fn host_of(hostport: &str) -> &str {
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h.trim_start_matches('[').trim_end_matches(']'),
        _ => hostport,
    }
}

/// The first address of the service subnet (the `kubernetes` Service's ClusterIP).
pub fn first_service_ip(service_subnet: &str) -> Result<IpAddr> {
    let net: IpNet = service_subnet.split(',').next().unwrap_or("").parse().context("serviceSubnet")?;
    net.hosts().next().ok_or_else(|| anyhow!("service subnet {service_subnet} has no hosts"))
}

/// kubeadm's apiserver certificate SANs.
pub fn apiserver_sans(c: &ClusterConfiguration, local: &LocalApi) -> Result<Vec<String>> {
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", c.networking.dns_domain),
        local.node_name.clone(),
        first_service_ip(&c.networking.service_subnet)?.to_string(),
        local.advertise_address.clone(),
    ];
    if !c.control_plane_endpoint.is_empty() {
        sans.push(host_of(&c.control_plane_endpoint).to_string());
    }
    sans.extend(c.api_server.cert_sans.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    sans.retain(|s| seen.insert(s.clone()));
    Ok(sans)
}

/// `certificateValidityPeriod` (v1beta4), kubeadm's default one year.
pub fn validity(c: &ClusterConfiguration) -> Result<std::time::Duration> {
    match c.certificate_validity_period.as_deref() {
        Some(v) => crate::duration::parse_go_duration(v).context("certificateValidityPeriod"),
        None => Ok(pki::DEFAULT_VALIDITY),
    }
}

fn p(c: &ClusterConfiguration, name: &str) -> String {
    format!("{}/{name}", c.certificates_dir)
}

/// The certs phase: the shared CAs and keys must be there (kubeadm uses existing ones);
/// the node's own certificates are issued from them.
pub fn write_certs(c: &ClusterConfiguration, local: &LocalApi, init: bool) -> Result<()> {
    if init {
        // Like kubeadm init: a CA (or the sa key pair) that is entirely absent is generated;
        // one that is present is used (and must be whole and valid).
        pki::ensure_ca(&p(c, "ca.crt"), &p(c, "ca.key"), "kubernetes")?;
        pki::ensure_ca(&p(c, "front-proxy-ca.crt"), &p(c, "front-proxy-ca.key"), "front-proxy-ca")?;
        pki::ensure_key_pair(&p(c, "sa.key"), &p(c, "sa.pub"))?;
    }
    let ca = pki::load_ca(&p(c, "ca.crt"), &p(c, "ca.key")).context("failure loading certificate authority \"ca\"")?;
    let fp = pki::load_ca(&p(c, "front-proxy-ca.crt"), &p(c, "front-proxy-ca.key"))
        .context("failure loading certificate authority \"front-proxy-ca\"")?;
    pki::check_sa_pair(&p(c, "sa.key"), &p(c, "sa.pub"))
        .context("failure loading the service account key pair \"sa\"")?;
    let v = validity(c)?;
    let sans = apiserver_sans(c, local)?;
    if !existing_leaf(c, "apiserver", &ca, &sans)? {
        write_apiserver_cert(c, local, &ca)?;
    }
    if !existing_leaf(c, "apiserver-kubelet-client", &ca, &[])? {
        let kc =
            pki::issue_valid(&ca, "kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"], &[], Usage::Client, v)?;
        pki::write_file(p(c, "apiserver-kubelet-client.crt"), &kc.cert_pem, 0o644)?;
        pki::write_file(p(c, "apiserver-kubelet-client.key"), &kc.key_pem, 0o600)?;
    }
    if !existing_leaf(c, "front-proxy-client", &fp, &[])? {
        let fpc = pki::issue_valid(&fp, "front-proxy-client", &[], &[], Usage::Client, v)?;
        pki::write_file(p(c, "front-proxy-client.crt"), &fpc.cert_pem, 0o644)?;
        pki::write_file(p(c, "front-proxy-client.key"), &fpc.key_pem, 0o600)?;
    }
    Ok(())
}

/// kubeadm's writeCertificateFilesIfNotExist (`cmd/kubeadm/app/phases/certs/certs.go`):
/// when `<base>.crt` or `<base>.key` exists, both are loaded, the certificate must be
/// signed by the CA on disk (`certificate <base> is not signed by corresponding CA`) and
/// valid for every wanted SAN (validateCertificateWithConfig: `certificate <base> is
/// invalid: x509: certificate is valid for …, not …`), and it is used as it is (true);
/// when neither exists, false (the caller issues one).
pub fn existing_leaf(c: &ClusterConfiguration, base: &str, ca: &pki::Ca, sans: &[String]) -> Result<bool> {
    let (crt, key) = (p(c, &format!("{base}.crt")), p(c, &format!("{base}.key")));
    if !std::path::Path::new(&crt).exists() && !std::path::Path::new(&key).exists() {
        println!("[certs] Generating \"{base}\" certificate and key");
        return Ok(false);
    }
    pki::load_key(&pki::read(&key).with_context(|| format!("failure loading {base} key"))?, &key)
        .with_context(|| format!("failure loading {base} key"))?;
    let pem = pki::read(&crt).with_context(|| format!("failure loading {base} certificate"))?;
    let info = pki::cert_info(&pem, &crt).with_context(|| format!("failure loading {base} certificate"))?;
    let now = ::time::OffsetDateTime::now_utc();
    if info.not_after < now || info.not_before > now {
        eprintln!(
            "W [certs] WARNING: could not validate bounds for certificate {base}: the certificate is not valid now (NotBefore: {}, NotAfter: {})",
            info.not_before, info.not_after
        );
    }
    if pki::verify_signed_by(&pem, &ca.cert_pem).is_err() {
        bail!("certificate {base} is not signed by corresponding CA");
    }
    if let Some(missing) = sans.iter().find(|s| !info.sans.contains(s)) {
        bail!("certificate {base} is invalid: x509: certificate is valid for {}, not {missing}", info.sans.join(", "));
    }
    println!("[certs] Using the existing \"{base}\" certificate and key");
    Ok(true)
}

/// The API server's serving certificate with kubeadm's SANs (`init phase certs apiserver`).
pub fn write_apiserver_cert(c: &ClusterConfiguration, local: &LocalApi, ca: &pki::Ca) -> Result<()> {
    let server = pki::issue_valid(ca, "kube-apiserver", &[], &apiserver_sans(c, local)?, Usage::Server, validity(c)?)?;
    pki::write_file(p(c, "apiserver.crt"), &server.cert_pem, 0o644)?;
    pki::write_file(p(c, "apiserver.key"), &server.key_pem, 0o600)
}

fn kubeconfig_for(
    ca: &pki::Ca,
    c: &ClusterConfiguration,
    server: &str,
    user: &str,
    cn: &str,
    orgs: &[&str],
) -> Result<String> {
    let leaf = pki::issue_valid(ca, cn, orgs, &[], Usage::Client, validity(c)?)?;
    Ok(Kubeconfig::new(
        &c.cluster_name,
        server,
        &ca.cert_pem,
        user,
        Kubeconfig::cert_user(&leaf.cert_pem, &leaf.key_pem),
    )
    .to_yaml())
}

/// The kubeconfig phase: admin.conf, controller-manager.conf, scheduler.conf, and on
/// init super-admin.conf and kubelet.conf. A control-plane join writes no kubelet.conf:
/// the kubelet gets it by TLS bootstrap (kubeadm's CreateJoinControlPlaneKubeConfigFiles,
/// cmd/kubeadm/app/phases/kubeconfig/kubeconfig.go).
pub fn write_kubeconfigs(c: &ClusterConfiguration, local: &LocalApi, init: bool) -> Result<()> {
    let ca = pki::load_ca(&p(c, "ca.crt"), &p(c, "ca.key"))?;
    let endpoint = endpoint_url(c, local);
    let local_url = format!("https://{}:{}", local.advertise_address, local.bind_port);
    let k = kdir();
    let node_user = format!("system:node:{}", local.node_name);
    let files: Vec<(&str, String, &str, String, Vec<&str>)> = vec![
        ("admin.conf", endpoint.clone(), "kubernetes-admin", "kubernetes-admin".into(), vec!["kubeadm:cluster-admins"]),
        ("kubelet.conf", endpoint.clone(), "system:node", node_user.clone(), vec!["system:nodes"]),
        (
            "controller-manager.conf",
            local_url.clone(),
            "system:kube-controller-manager",
            "system:kube-controller-manager".into(),
            vec![],
        ),
        ("scheduler.conf", local_url.clone(), "system:kube-scheduler", "system:kube-scheduler".into(), vec![]),
    ];
    for (file, server, user, cn, orgs) in files {
        if file == "kubelet.conf" && !init {
            continue;
        }
        let user = if file == "kubelet.conf" { node_user.as_str() } else { user };
        pki::write_file(format!("{k}/{file}"), &kubeconfig_for(&ca, c, &server, user, &cn, &orgs)?, 0o600)?;
    }
    if init {
        let text =
            kubeconfig_for(&ca, c, &endpoint, "kubernetes-super-admin", "kubernetes-super-admin", &["system:masters"])?;
        pki::write_file(format!("{k}/super-admin.conf"), &text, 0o600)?;
    }
    Ok(())
}

fn args_with_extra(mut base: Vec<(String, String)>, extra: &[super::types::Arg]) -> Vec<String> {
    for a in extra {
        if let Some(slot) = base.iter_mut().find(|(n, _)| n == &a.name) {
            slot.1 = a.value.clone();
        } else {
            base.push((a.name.clone(), a.value.clone()));
        }
    }
    base.into_iter().map(|(n, v)| format!("--{n}={v}")).collect()
}

fn pod(name: &str, image: &str, command: Vec<String>) -> String {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name, "tier": "control-plane"}},
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "command": command}]
        }
    });
    serde_yaml_ng::to_string(&pod).expect("pod serializes")
}

pub fn image(c: &ClusterConfiguration, component: &str) -> String {
    format!("{}/{component}:{}", c.image_repository, c.kubernetes_version)
}

/// The control-plane phase: static pod manifests for the API server, controller
/// manager and scheduler, with kubeadm's flags and the image tag = kubernetesVersion.
pub fn write_manifests(c: &ClusterConfiguration, local: &LocalApi) -> Result<()> {
    write_manifests_of(c, local, &["kube-apiserver", "kube-controller-manager", "kube-scheduler"])
}

/// The control-plane phase for `only` these components (`init phase control-plane NAME`).
pub fn write_manifests_of(c: &ClusterConfiguration, local: &LocalApi, only: &[&str]) -> Result<()> {
    let d = &c.certificates_dir;
    let mut api: Vec<(String, String)> = vec![
        ("advertise-address", local.advertise_address.clone()),
        ("allow-privileged", "true".into()),
        ("authorization-mode", "Node,RBAC".into()),
        ("client-ca-file", format!("{d}/ca.crt")),
        ("enable-admission-plugins", "NodeRestriction".into()),
        ("enable-bootstrap-token-auth", "true".into()),
        ("kubelet-client-certificate", format!("{d}/apiserver-kubelet-client.crt")),
        ("kubelet-client-key", format!("{d}/apiserver-kubelet-client.key")),
        ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname".into()),
        ("proxy-client-cert-file", format!("{d}/front-proxy-client.crt")),
        ("proxy-client-key-file", format!("{d}/front-proxy-client.key")),
        ("requestheader-allowed-names", "front-proxy-client".into()),
        ("requestheader-client-ca-file", format!("{d}/front-proxy-ca.crt")),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-".into()),
        ("requestheader-group-headers", "X-Remote-Group".into()),
        ("requestheader-username-headers", "X-Remote-User".into()),
        ("secure-port", local.bind_port.to_string()),
        ("service-account-issuer", format!("https://kubernetes.default.svc.{}", c.networking.dns_domain)),
        ("service-account-key-file", format!("{d}/sa.pub")),
        ("service-account-signing-key-file", format!("{d}/sa.key")),
        ("service-cluster-ip-range", c.networking.service_subnet.clone()),
        ("tls-cert-file", format!("{d}/apiserver.crt")),
        ("tls-private-key-file", format!("{d}/apiserver.key")),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    if let Some(x) = &c.etcd.external {
        api.push(("etcd-servers".into(), x.endpoints.join(",")));
        if !x.ca_file.is_empty() {
            api.push(("etcd-cafile".into(), x.ca_file.clone()));
        }
        if !x.cert_file.is_empty() {
            api.push(("etcd-certfile".into(), x.cert_file.clone()));
            api.push(("etcd-keyfile".into(), x.key_file.clone()));
        }
    } else {
        api.push(("etcd-servers".into(), "https://127.0.0.1:2379".into()));
        api.push(("etcd-cafile".into(), format!("{d}/etcd/ca.crt")));
        api.push(("etcd-certfile".into(), format!("{d}/apiserver-etcd-client.crt")));
        api.push(("etcd-keyfile".into(), format!("{d}/apiserver-etcd-client.key")));
    }
    let mut cmd = vec!["kube-apiserver".to_string()];
    cmd.extend(args_with_extra(api, &c.api_server.extra_args));
    let k = kdir();
    let m = format!("{k}/manifests");
    if only.contains(&"kube-apiserver") {
        pki::write_file(
            format!("{m}/kube-apiserver.yaml"),
            &pod("kube-apiserver", &image(c, "kube-apiserver"), cmd),
            0o600,
        )?;
    }
    let mut cm_args: Vec<(String, String)> = vec![
        ("authentication-kubeconfig".into(), format!("{k}/controller-manager.conf")),
        ("authorization-kubeconfig".into(), format!("{k}/controller-manager.conf")),
        ("bind-address".into(), "127.0.0.1".into()),
        ("client-ca-file".into(), format!("{d}/ca.crt")),
        ("cluster-name".into(), c.cluster_name.clone()),
        ("cluster-signing-cert-file".into(), format!("{d}/ca.crt")),
        ("cluster-signing-key-file".into(), format!("{d}/ca.key")),
        ("controllers".into(), "*,bootstrapsigner,tokencleaner".into()),
        ("kubeconfig".into(), format!("{k}/controller-manager.conf")),
        ("leader-elect".into(), "true".into()),
        ("root-ca-file".into(), format!("{d}/ca.crt")),
        ("service-account-private-key-file".into(), format!("{d}/sa.key")),
        ("use-service-account-credentials".into(), "true".into()),
    ];
    if !c.networking.pod_subnet.is_empty() {
        cm_args.push(("allocate-node-cidrs".into(), "true".into()));
        cm_args.push(("cluster-cidr".into(), c.networking.pod_subnet.clone()));
    }
    let mut cmd = vec!["kube-controller-manager".to_string()];
    cmd.extend(args_with_extra(cm_args, &c.controller_manager.extra_args));
    if only.contains(&"kube-controller-manager") {
        pki::write_file(
            format!("{m}/kube-controller-manager.yaml"),
            &pod("kube-controller-manager", &image(c, "kube-controller-manager"), cmd),
            0o600,
        )?;
    }
    let sched = vec![
        ("authentication-kubeconfig".to_string(), format!("{k}/scheduler.conf")),
        ("authorization-kubeconfig".into(), format!("{k}/scheduler.conf")),
        ("bind-address".into(), "127.0.0.1".into()),
        ("kubeconfig".into(), format!("{k}/scheduler.conf")),
        ("leader-elect".into(), "true".into()),
    ];
    let mut cmd = vec!["kube-scheduler".to_string()];
    cmd.extend(args_with_extra(sched, &c.scheduler.extra_args));
    if only.contains(&"kube-scheduler") {
        pki::write_file(
            format!("{m}/kube-scheduler.yaml"),
            &pod("kube-scheduler", &image(c, "kube-scheduler"), cmd),
            0o600,
        )?;
    }
    Ok(())
}

/// Rewrites the image tags of the control plane manifests (upgrade).
pub fn retag_manifests(c: &ClusterConfiguration) -> Result<()> {
    let m = format!("{}/manifests", kdir());
    for comp in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let path = format!("{m}/{comp}.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let mut pod: Value = serde_yaml_ng::from_str(&text)?;
        pod["spec"]["containers"][0]["image"] = json!(image(c, comp));
        pki::write_file(&path, &serde_yaml_ng::to_string(&pod)?, 0o600)?;
    }
    Ok(())
}

/// The kubelet-start phase's files: /var/lib/kubelet/config.yaml (kubeadm's defaults,
/// then the user's KubeletConfiguration on top) and kubeadm-flags.env.
pub fn write_kubelet_files(
    c: &ClusterConfiguration,
    nr: &super::types::NodeRegistrationOptions,
    user_kubelet: Option<&Value>,
    register_taints: bool,
) -> Result<()> {
    let dns = first_service_ip(&c.networking.service_subnet).ok().map(|ip| {
        // kube-dns is the 10th address of the service subnet.
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) + 9)).to_string(),
            v6 => v6.to_string(),
        }
    });
    let mut cfg = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": false}, "webhook": {"enabled": true}, "x509": {"clientCAFile": format!("{}/ca.crt", c.certificates_dir)}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": dns.into_iter().collect::<Vec<_>>(),
        "clusterDomain": c.networking.dns_domain,
        "containerRuntimeEndpoint": "",
        "rotateCertificates": true,
        "staticPodPath": format!("{}/manifests", kdir()),
    });
    if let Some(Value::Object(u)) = user_kubelet {
        for (k, v) in u {
            cfg[k] = v.clone();
        }
    }
    let kubelet_dir =
        std::env::var("STRATA_STANDINS_ROOT").map(|r| format!("{r}{KUBELET_DIR}")).unwrap_or(KUBELET_DIR.into());
    pki::write_file(format!("{kubelet_dir}/config.yaml"), &serde_yaml_ng::to_string(&cfg)?, 0o644)?;
    let mut flags: Vec<(String, String)> = vec![
        ("container-runtime-endpoint".into(), nr.cri_socket.clone()),
        ("pod-infra-container-image".into(), format!("{}/pause:3.10", c.image_repository)),
    ];
    if nr.name != super::config::default_node_name() {
        flags.push(("hostname-override".into(), nr.name.clone()));
    }
    if register_taints {
        if let Some(t) = nr.taints.as_ref().filter(|t| !t.is_empty()) {
            let s: Vec<String> = t
                .iter()
                .map(|t| {
                    if t.value.is_empty() {
                        format!("{}:{}", t.key, t.effect)
                    } else {
                        format!("{}={}:{}", t.key, t.value, t.effect)
                    }
                })
                .collect();
            flags.push(("register-with-taints".into(), s.join(",")));
        }
    }
    let args = args_with_extra(flags, &nr.kubelet_extra_args);
    pki::write_file(
        format!("{kubelet_dir}/kubeadm-flags.env"),
        &format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" ")),
        0o644,
    )?;
    Ok(())
}

/// `systemctl restart kubelet`, as kubeadm's kubelet-start phase does.
pub fn restart_kubelet() {
    println!("[kubelet-start] Starting the kubelet");
    match std::process::Command::new("systemctl").args(["restart", "kubelet.service"]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("[kubelet-start] WARNING: systemctl restart kubelet exited {s}"),
        Err(e) => eprintln!("[kubelet-start] WARNING: cannot run systemctl: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &std::path::Path) -> ClusterConfiguration {
        let mut c = super::super::config::default_cluster(true, crate::version::KubeVersion::parse("v1.35.0").unwrap());
        c.certificates_dir = dir.display().to_string();
        c.control_plane_endpoint = "10.0.0.100:6443".into();
        c
    }

    fn local() -> LocalApi {
        LocalApi { node_name: "cp1".into(), advertise_address: "10.0.0.1".into(), bind_port: 6443 }
    }

    /// phases/certs/certs.go writeCertificateFilesIfNotExist: certificates already on disk
    /// are used as they are (not issued again); one not signed by the CA on disk is
    /// refused ("certificate %s is not signed by corresponding CA"); one missing a SAN is
    /// invalid (validateCertificateWithConfig).
    #[test]
    fn existing_certificates_are_reused_and_mismatched_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path());
        write_certs(&c, &local(), true).unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
        let before: Vec<String> = ["apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt"]
            .iter()
            .map(|n| read(n))
            .collect();
        write_certs(&c, &local(), true).unwrap();
        for (n, b) in ["apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt"].iter().zip(&before) {
            assert_eq!(&read(n), b, "{n} was issued again");
        }
        // A certificate of another CA (same names): refused.
        let other = tempfile::tempdir().unwrap();
        let oc = cluster(other.path());
        write_certs(&oc, &local(), true).unwrap();
        for f in ["apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"] {
            std::fs::copy(other.path().join(f), dir.path().join(f)).unwrap();
        }
        let e = write_certs(&c, &local(), true).unwrap_err().to_string();
        assert_eq!(e, "certificate apiserver-kubelet-client is not signed by corresponding CA");
        // Only the certificate left (no key): a load error, not a silent re-issue.
        std::fs::remove_file(dir.path().join("apiserver-kubelet-client.key")).unwrap();
        let e = format!("{:#}", write_certs(&c, &local(), true).unwrap_err());
        assert!(e.starts_with("failure loading apiserver-kubelet-client key"), "{e}");
        std::fs::remove_file(dir.path().join("apiserver-kubelet-client.crt")).unwrap();
        write_certs(&c, &local(), true).unwrap();
        // A serving certificate lacking a SAN the configuration now wants: invalid.
        let mut c2 = cluster(dir.path());
        c2.api_server.cert_sans = vec!["api.example.org".into()];
        let e = write_certs(&c2, &local(), true).unwrap_err().to_string();
        assert!(e.starts_with("certificate apiserver is invalid: x509: certificate is valid for "), "{e}");
        assert!(e.ends_with(", not api.example.org"), "{e}");
    }
}
