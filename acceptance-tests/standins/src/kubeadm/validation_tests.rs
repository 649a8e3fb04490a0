use super::*;
use crate::kubeadm::config::{parse, set_cluster_defaults, set_init_defaults, set_join_defaults};

const KUBEADM: KubeVersion = KubeVersion { major: 1, minor: 35, patch: 0 };

fn cluster(extra: &str) -> ClusterConfiguration {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.0\n\
         controlPlaneEndpoint: 10.0.0.100:6443\nnetworking:\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n\
         etcd:\n  external:\n    endpoints: [\"https://10.0.0.1:2379\"]\n    caFile: /etc/kubernetes/pki/etcd/ca.crt\n\
         \x20   certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt\n    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key\n{extra}"
    );
    let mut c = parse(&text).unwrap().cluster.unwrap();
    set_cluster_defaults(&mut c, KUBEADM);
    c
}

fn with(f: impl FnOnce(&mut ClusterConfiguration)) -> Vec<String> {
    let mut c = cluster("");
    f(&mut c);
    validate_cluster(&c)
}

fn one(errs: Vec<String>, field_prefix: &str) -> String {
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with(field_prefix), "{errs:?} should name {field_prefix}");
    errs[0].clone()
}

#[test]
fn a_valid_cluster_configuration_passes() {
    assert_eq!(validate_cluster(&cluster("")), Vec::<String>::new());
}

#[test]
fn networking_is_checked() {
    let e = one(with(|c| c.networking.pod_subnet = "10.244.0.0/33".into()), "networking.podSubnet: Invalid value");
    assert!(e.contains("couldn't parse subnet"));
    one(with(|c| c.networking.service_subnet = "banana".into()), "networking.serviceSubnet: Invalid value: \"banana\"");
    let e = one(with(|c| c.networking.pod_subnet = "10.96.0.0/16".into()), "networking.podSubnet");
    assert!(e.contains("overlaps with networking.serviceSubnet"), "{e}");
    one(with(|c| c.networking.service_subnet = "10.96.0.0/30".into()), "networking.serviceSubnet");
    one(with(|c| c.networking.dns_domain = "Cluster_Local".into()), "networking.dnsDomain");
}

#[test]
fn endpoint_is_host_port() {
    let e = one(with(|c| c.control_plane_endpoint = "10.0.0.100:99999".into()), "controlPlaneEndpoint");
    assert!(e.contains("port must be a valid number"), "{e}");
    one(with(|c| c.control_plane_endpoint = "bad_host:6443".into()), "controlPlaneEndpoint");
    assert!(with(|c| c.control_plane_endpoint = "api.example.com:6443".into()).is_empty());
    assert!(with(|c| c.control_plane_endpoint = "10.0.0.100".into()).is_empty(), "the port is optional, as in kubeadm");
}

#[test]
fn external_etcd_is_checked() {
    one(
        with(|c| c.etcd.external.as_mut().unwrap().endpoints[0] = "http://10.0.0.1:2379".into()),
        "etcd.external.endpoints[0]",
    );
    one(with(|c| c.etcd.external.as_mut().unwrap().endpoints.clear()), "etcd.external.endpoints: Required value");
    one(with(|c| c.etcd.external.as_mut().unwrap().key_file = String::new()), "etcd.external.certFile");
    one(with(|c| c.etcd.external.as_mut().unwrap().ca_file = "relative/ca.crt".into()), "etcd.external.caFile");
}

#[test]
fn cert_sans_are_checked() {
    one(with(|c| c.api_server.cert_sans = vec!["10.0.0.100".into(), "not a name".into()]), "apiServer.certSANs");
    assert!(with(|c| c.api_server.cert_sans = vec!["*.example.com".into(), "api".into()]).is_empty());
}

#[test]
fn version_skew_like_kubeadm() {
    assert!(validate_kubernetes_version("kubernetesVersion", "v1.35.0", KUBEADM).is_ok());
    assert!(validate_kubernetes_version("kubernetesVersion", "v1.34.3", KUBEADM).is_ok());
    assert!(validate_kubernetes_version("kubernetesVersion", "v1.36.1", KUBEADM).is_ok());
    let e = validate_kubernetes_version("kubernetesVersion", "v1.33.0", KUBEADM).unwrap_err().to_string();
    assert!(e.contains("control plane version >= v1.34.0"), "{e}");
    let e = validate_kubernetes_version("kubernetesVersion", "v1.37.0", KUBEADM).unwrap_err().to_string();
    assert!(e.contains("more than one minor version newer"), "{e}");
    let e = validate_kubernetes_version("kubernetesVersion", "1.35", KUBEADM).unwrap_err().to_string();
    assert!(e.starts_with("kubernetesVersion: Invalid value"), "{e}");
}

fn init(extra: &str) -> Vec<String> {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: node1\n  criSocket: unix:///run/containerd/containerd.sock\n{extra}"
    );
    let mut i = parse(&text).unwrap().init.unwrap();
    set_init_defaults(&mut i);
    validate_init(&i)
}

#[test]
fn bootstrap_tokens_are_checked() {
    assert!(init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1h0m0s\n").is_empty());
    let e =
        one(init("bootstrapTokens:\n- token: ABCDEF.0123456789abcdef\n"), "bootstrapTokens[0].token: Invalid value");
    assert!(e.contains("was not of the form"), "{e}");
    one(init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1 hour\n"), "bootstrapTokens[0].ttl");
    one(
        init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing, sudo]\n"),
        "bootstrapTokens[0].usages",
    );
    one(
        init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  groups: [system:masters]\n"),
        "bootstrapTokens[0].groups",
    );
}

#[test]
fn node_registration_and_endpoint_are_checked() {
    one(init("localAPIEndpoint:\n  advertiseAddress: node-1\n"), "localAPIEndpoint.advertiseAddress");
    one(init("localAPIEndpoint:\n  bindPort: 70000\n"), "localAPIEndpoint.bindPort");
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: Node_1\n  criSocket: tcp://x\n  taints:\n  - key: a\n    effect: Sometimes\n";
    let mut i = parse(text).unwrap().init.unwrap();
    set_init_defaults(&mut i);
    let errs = validate_init(&i);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("nodeRegistration.name"));
    assert!(errs[1].starts_with("nodeRegistration.criSocket"));
    assert!(errs[2].starts_with("nodeRegistration.taints[0].effect"));
}

fn join(discovery: &str) -> Vec<String> {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: node2\ndiscovery:\n{discovery}"
    );
    let mut j = parse(&text).unwrap().join.unwrap();
    set_join_defaults(&mut j);
    validate_join(&j)
}

#[test]
fn join_discovery_is_checked() {
    let hash = format!("sha256:{}", "ab".repeat(32));
    let ok = format!("  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.100:6443\n    caCertHashes: [\"{hash}\"]\n");
    assert_eq!(join(&ok), Vec::<String>::new());
    one(join(&ok.replace(&hash, "sha256:1234")), "discovery.bootstrapToken.caCertHashes[0]");
    one(join(&ok.replace(&hash, &format!("md5:{}", "ab".repeat(32)))), "discovery.bootstrapToken.caCertHashes[0]");
    let no_hashes = "  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.100:6443\n";
    one(join(no_hashes), "discovery.bootstrapToken.caCertHashes");
    let errs = join(&ok.replace("abcdef.0123456789abcdef", "abc.def"));
    assert!(errs.iter().any(|e| e.starts_with("discovery.bootstrapToken.token")), "{errs:?}");
    one(join(&ok.replace("10.0.0.100:6443", "10.0.0.100:0")), "discovery.bootstrapToken.apiServerEndpoint");
    one(join("  tlsBootstrapToken: abcdef.0123456789abcdef\n"), "discovery: Invalid value");
}
