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
    let e = one(with(|c| c.etcd.external.as_mut().unwrap().key_file = String::new()), "etcd.external: Invalid value");
    assert!(e.contains("either both or none of .Etcd.External.CertFile and .Etcd.External.KeyFile must be set"), "{e}");
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
    assert_eq!(
        e,
        "bootstrapTokens[0].token: Invalid value: \"ABCDEF.0123456789abcdef\": the bootstrap token is invalid"
    );
    // An invalid ttl fails decoding (metav1.Duration), naming the field: see
    // durations_are_go_durations_decoded_strictly.
    one(
        init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing, authentication, sudo]\n"),
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

/// validation.go ValidateEtcd: a client certificate and key without a CA file is refused
/// ("If the cert and key are specified, require the CA as well").
#[test]
fn external_etcd_cert_and_key_need_the_ca_file() {
    let e = one(with(|c| c.etcd.external.as_mut().unwrap().ca_file = String::new()), "etcd.external: Invalid value");
    assert_eq!(
        e,
        "etcd.external: Invalid value: \"\": setting .Etcd.External.CertFile and .Etcd.External.KeyFile requires .Etcd.External.CAFile"
    );
    // Without client certificate and key, no CA is needed (and plain http is allowed).
    assert!(with(|c| {
        let x = c.etcd.external.as_mut().unwrap();
        x.ca_file.clear();
        x.cert_file.clear();
        x.key_file.clear();
        x.endpoints = vec!["http://10.0.0.1:2379".into()];
    })
    .is_empty());
}

/// validation.go ValidateServiceSubnetSize with constants.MaximumBitsForServiceSubnet = 20:
/// an IPv4 service subnet wider than /12 (an IPv6 one wider than /108) is refused.
#[test]
fn service_subnet_larger_than_slash_12_is_refused() {
    let e = one(with(|c| c.networking.service_subnet = "172.0.0.0/8".into()), "networking.serviceSubnet");
    assert_eq!(
        e,
        "networking.serviceSubnet: Invalid value: \"172.0.0.0/8\": specified service subnet is too large; for 32-bit addresses, the mask must be >= 12"
    );
    // The value is printed as Go's IPNet.String(): the network address.
    let e = one(with(|c| c.networking.service_subnet = "10.1.2.3/11".into()), "networking.serviceSubnet");
    assert!(e.contains("\"10.0.0.0/11\""), "{e}");
    assert!(with(|c| c.networking.service_subnet = "10.96.0.0/12".into()).is_empty());
    let e = one(
        with(|c| {
            c.networking.pod_subnet = "10.244.0.0/16,fd00:10:244::/56".into();
            c.networking.service_subnet = "10.96.0.0/12,fd00:10:96::/100".into();
        }),
        "networking.serviceSubnet",
    );
    assert!(e.contains("for 128-bit addresses, the mask must be >= 108"), "{e}");
}

/// validation.go ValidateTokenGroups: groups (the default one included) need the usage
/// "authentication"; the value is printed as Go's `%#v` of the []string.
#[test]
fn bootstrap_token_groups_need_authentication_usage() {
    let e = one(
        init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing]\n  groups: [system:bootstrappers:extra]\n"),
        "bootstrapTokens[0].groups",
    );
    assert_eq!(
        e,
        "bootstrapTokens[0].groups: Invalid value: []string{\"system:bootstrappers:extra\"}: token groups cannot be specified unless --usages includes \"authentication\""
    );
    // As upstream's SetDefaults_BootstrapToken, the default group is added when none is given.
    one(init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [signing]\n"), "bootstrapTokens[0].groups");
    assert!(init("bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  usages: [authentication]\n").is_empty());
}

/// validation.go ValidateImageRepository (ClusterConfiguration.imageRepository, and
/// dns/etcd.local's when set): `<repo>/name:tag` must match distribution/reference's
/// ReferenceRegexp, so a tag, a digest or an uppercase path is refused.
#[test]
fn image_repository_is_a_valid_reference_prefix() {
    for ok in
        ["registry.k8s.io", "myregistry.local:5000/k8s", "10.0.0.1:5000", "[fd00::1]:5000/mirror", "docker.io/a__b/c-d"]
    {
        assert!(with(|c| c.image_repository = ok.into()).is_empty(), "{ok} should be accepted");
    }
    let e = one(with(|c| c.image_repository = "registry.k8s.io:v1.35".into()), "imageRepository");
    assert_eq!(e, "imageRepository: Invalid value: \"registry.k8s.io:v1.35\": invalid image repository format");
    for bad in [
        "registry.k8s.io/Mirror",
        format!("reg.io/k8s@sha256:{}", "a".repeat(64)).as_str(),
        "reg.io/",
        "http://reg.io",
        "",
    ] {
        one(with(|c| c.image_repository = bad.into()), "imageRepository: Invalid value");
    }
    one(with(|c| c.dns.image_repository = "reg.io/CoreDNS".into()), "dns.imageRepository");
}

/// validation.go ValidateJoinConfiguration: caCertPath must be absolute and end in ".crt"
/// ("the ca certificate path must be an absolute path" for both).
#[test]
fn join_ca_cert_path_must_be_an_absolute_crt_path() {
    let disc = format!(
        "  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.100:6443\n    caCertHashes: [\"sha256:{}\"]\ncaCertPath: ",
        "ab".repeat(32)
    );
    assert!(join(&format!("{disc}/etc/kubernetes/pki/ca.crt\n")).is_empty());
    let e = one(join(&format!("{disc}/etc/kubernetes/pki/ca.pem\n")), "caCertPath");
    assert_eq!(
        e,
        "caCertPath: Invalid value: \"/etc/kubernetes/pki/ca.pem\": the ca certificate path must be an absolute path"
    );
    one(join(&format!("{disc}pki/ca.crt\n")), "caCertPath: Invalid value");
}

/// util/config/initconfiguration.go SetClusterDynamicDefaults → LowercaseSANs
/// (util/config/common.go): uppercase certSANs are lowercased, then pass ValidateCertSANs.
#[test]
fn uppercase_cert_sans_are_lowercased_not_refused() {
    let c = cluster("apiServer:\n  certSANs: [\"API.Example.COM\", \"*.Lb.Example.com\", \"10.0.0.100\"]\n");
    assert_eq!(c.api_server.cert_sans, vec!["api.example.com", "*.lb.example.com", "10.0.0.100"]);
    assert_eq!(validate_cluster(&c), Vec::<String>::new());
    // Without the defaulting, the same names fail validation (as upstream's validation alone).
    one(with(|c| c.api_server.cert_sans = vec!["API.Example.COM".into()]), "apiServer.certSANs");
}

/// metav1.Duration fields (v1beta4 types.go: ClusterConfiguration.certificateValidityPeriod,
/// caCertificateValidityPeriod, Init/JoinConfiguration.timeouts.*, bootstrap token ttl)
/// are decoded with Go's time.ParseDuration: an invalid one fails decoding, naming the field.
#[test]
fn durations_are_go_durations_decoded_strictly() {
    let head = "apiVersion: kubeadm.k8s.io/v1beta4\n";
    let cases = [
        ("kind: ClusterConfiguration\ncertificateValidityPeriod: 1 year\n", "certificateValidityPeriod", "1 year"),
        ("kind: ClusterConfiguration\ncaCertificateValidityPeriod: 10y\n", "caCertificateValidityPeriod", "10y"),
        ("kind: InitConfiguration\ntimeouts:\n  kubernetesAPICall: fast\n", "timeouts.kubernetesAPICall", "fast"),
        ("kind: JoinConfiguration\ntimeouts:\n  discovery: \"5\"\n", "timeouts.discovery", "5"),
        (
            "kind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1 hour\n",
            "bootstrapTokens[0].ttl",
            "1 hour",
        ),
    ];
    for (doc, field, value) in cases {
        let e = parse(&format!("{head}{doc}")).unwrap_err().to_string();
        assert!(e.starts_with(&format!("error decoding field \"{field}\": time: ")), "{e}");
        assert!(e.contains(&format!("{value:?}")), "{e}");
    }
    let ok = parse(&format!(
        "{head}kind: InitConfiguration\ntimeouts:\n  controlPlaneComponentHealthCheck: 4m0s\n  tlsBootstrap: 90s\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 1.5h\n"
    ));
    assert!(ok.is_ok(), "{ok:?}");
}

/// validation.go ValidateCertValidity: above constants.CertificateValidityPeriod (8760h) or
/// CACertificateValidityPeriod (87600h) is a warning with kubeadm's text, not an error.
#[test]
fn long_validity_periods_are_warnings() {
    let c = cluster("certificateValidityPeriod: 9000h\ncaCertificateValidityPeriod: 87601h\n");
    assert!(validate_cluster(&c).is_empty());
    assert_eq!(
        cert_validity_warnings(&c),
        vec![
            "certificateValidityPeriod: the value 9000h0m0s is more than the recommended default for certificate expiration: 8760h0m0s",
            "caCertificateValidityPeriod: the value 87601h0m0s is more than the recommended default for CA certificate expiration: 87600h0m0s",
        ]
    );
    assert!(cert_validity_warnings(&cluster("certificateValidityPeriod: 8760h\n")).is_empty());
}
