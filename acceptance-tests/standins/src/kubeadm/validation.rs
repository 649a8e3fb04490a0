//! kubeadm's validation (cmd/kubeadm/app/apis/kubeadm/validation/validation.go): each
//! error names the field the way kubeadm's field.ErrorList does
//! (`networking.podSubnet: Invalid value: "x": couldn't parse subnet`).

use std::net::IpAddr;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use ipnet::IpNet;
use regex::Regex;

use super::types::*;
use crate::version::KubeVersion;

pub const TOKEN_PATTERN: &str = r"^([a-z0-9]{6})\.([a-z0-9]{16})$";
const BOOTSTRAP_GROUP_PATTERN: &str = r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$";

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static pattern"))
}

pub fn token_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, TOKEN_PATTERN)
}

fn dns1123_subdomain(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    s.len() <= 253 && re(&R, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").is_match(s)
}

const DNS1123_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub fn invalid(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: \"{value}\": {detail}")
}

/// field.Invalid with a value that is not a string (printed by Go's `%#v`, unquoted).
pub fn invalid_raw(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {value}: {detail}")
}

fn required(field: &str, detail: &str) -> String {
    format!("{field}: Required value: {detail}")
}

/// Formats a field.ErrorList as its aggregate prints: one error bare, several in brackets.
pub fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// ValidateHostPort: `host` or `host:port`, host an IP or a DNS subdomain, port 1-65535.
pub fn validate_host_port(field: &str, s: &str) -> Vec<String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            (h.trim_start_matches('[').trim_end_matches(']'), Some(p))
        }
        _ => (s, None),
    };
    let mut errs = Vec::new();
    if let Some(p) = port {
        if !matches!(p.parse::<u32>(), Ok(1..=65535)) {
            errs.push(invalid(field, s, "port must be a valid number between 1 and 65535, inclusive"));
        }
    }
    if host.parse::<IpAddr>().is_err() && !dns1123_subdomain(host) {
        errs.push(invalid(field, s, "host must be a valid IP address or a valid RFC-1123 DNS subdomain"));
    }
    errs
}

fn parse_cidr(field: &str, s: &str, errs: &mut Vec<String>) -> Option<IpNet> {
    // Dual-stack values are comma separated; each must parse.
    let mut first = None;
    for part in s.split(',') {
        match part.trim().parse::<IpNet>() {
            Ok(n) => {
                first.get_or_insert(n);
            }
            _ => {
                errs.push(invalid(field, s, "couldn't parse subnet"));
                return None;
            }
        }
    }
    first
}

/// kubeadm's constants.MaximumBitsForServiceSubnet.
pub const MAXIMUM_BITS_FOR_SERVICE_SUBNET: u8 = 20;

/// ValidateServiceSubnetSize: at most 2^20 addresses per family (a /12 for IPv4, a /108 for
/// IPv6), "identical to validation performed in the apiserver". Each value as Go's
/// `IPNet.String()` prints it (the network address).
pub fn validate_service_subnet_size(subnets: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for net in subnets.split(',').filter_map(|p| p.trim().parse::<IpNet>().ok()) {
        let bits = net.max_prefix_len();
        if bits - net.prefix_len() > MAXIMUM_BITS_FOR_SERVICE_SUBNET {
            errs.push(invalid(
                "networking.serviceSubnet",
                &net.trunc().to_string(),
                &format!(
                    "specified service subnet is too large; for {bits}-bit addresses, the mask must be >= {}",
                    bits - MAXIMUM_BITS_FOR_SERVICE_SUBNET
                ),
            ));
        }
    }
    errs
}

/// ValidateNetworking, plus the pod/service overlap that breaks a cluster.
pub fn validate_networking(n: &Networking) -> Vec<String> {
    let mut errs = Vec::new();
    if !dns1123_subdomain(&n.dns_domain) {
        errs.push(invalid("networking.dnsDomain", &n.dns_domain, DNS1123_MSG));
    }
    let svc = parse_cidr("networking.serviceSubnet", &n.service_subnet, &mut errs);
    if let Some(IpNet::V4(v4)) = svc {
        // MinimumAddressesInServiceSubnet = 10.
        if v4.prefix_len() > 28 {
            errs.push(invalid("networking.serviceSubnet", &n.service_subnet, "subnet is too small"));
        }
    }
    if svc.is_some() {
        errs.extend(validate_service_subnet_size(&n.service_subnet));
    }
    if !n.pod_subnet.is_empty() {
        let pod = parse_cidr("networking.podSubnet", &n.pod_subnet, &mut errs);
        if let Some(IpNet::V4(p)) = pod {
            // The controller manager's default node-cidr-mask-size is 24.
            if p.prefix_len() > 24 {
                errs.push(invalid(
                    "networking.podSubnet",
                    &n.pod_subnet,
                    &format!(
                        "the size of pod subnet with mask {} is smaller than the size of node subnet with mask 24",
                        p.prefix_len()
                    ),
                ));
            }
        }
        if let (Some(p), Some(s)) = (pod, svc) {
            if p.contains(&s.network()) || s.contains(&p.network()) {
                errs.push(invalid(
                    "networking.podSubnet",
                    &n.pod_subnet,
                    &format!("overlaps with networking.serviceSubnet \"{}\"", n.service_subnet),
                ));
            }
        }
    }
    errs
}

fn validate_abs_path(field: &str, p: &str, errs: &mut Vec<String>) {
    if !p.starts_with('/') {
        errs.push(invalid(field, p, "path is not absolute"));
    }
}

/// ValidateEtcd.
pub fn validate_etcd(e: &Etcd) -> Vec<String> {
    let mut errs = Vec::new();
    match (&e.local, &e.external) {
        (Some(_), Some(_)) => {
            errs.push(invalid("etcd", "", "either .Etcd.Local or .Etcd.External is required, not both"))
        }
        (None, None) => errs.push(required("etcd", "either .Etcd.Local or .Etcd.External is required")),
        (Some(l), None) => validate_abs_path("etcd.local.dataDir", &l.data_dir, &mut errs),
        (None, Some(x)) => {
            if x.endpoints.is_empty() {
                errs.push(required("etcd.external.endpoints", "empty endpoints are not allowed"));
            }
            let tls = !x.ca_file.is_empty() || !x.cert_file.is_empty() || !x.key_file.is_empty();
            if x.cert_file.is_empty() != x.key_file.is_empty() {
                errs.push(invalid(
                    "etcd.external",
                    "",
                    "either both or none of .Etcd.External.CertFile and .Etcd.External.KeyFile must be set",
                ));
            }
            // ValidateEtcd: "If the cert and key are specified, require the CA as well".
            if !x.cert_file.is_empty() && !x.key_file.is_empty() && x.ca_file.is_empty() {
                errs.push(invalid(
                    "etcd.external",
                    "",
                    "setting .Etcd.External.CertFile and .Etcd.External.KeyFile requires .Etcd.External.CAFile",
                ));
            }
            for (f, v) in [("caFile", &x.ca_file), ("certFile", &x.cert_file), ("keyFile", &x.key_file)] {
                if !v.is_empty() {
                    validate_abs_path(&format!("etcd.external.{f}"), v, &mut errs);
                }
            }
            for (i, ep) in x.endpoints.iter().enumerate() {
                let field = format!("etcd.external.endpoints[{i}]");
                match ep.split_once("://") {
                    Some((scheme, rest)) if !rest.is_empty() => {
                        if tls && scheme != "https" {
                            errs.push(invalid(
                                &field,
                                ep,
                                "URL scheme must be https if CA or certificates are provided",
                            ));
                        } else if scheme != "https" && scheme != "http" {
                            errs.push(invalid(&field, ep, "URL scheme must be http or https"));
                        }
                    }
                    _ => errs.push(invalid(&field, ep, "URL parse error: missing scheme or host")),
                }
            }
        }
    }
    errs
}

/// ValidateCertSANs: each an IP, a DNS subdomain, or a wildcard DNS name.
pub fn validate_cert_sans(field: &str, sans: &[String]) -> Vec<String> {
    sans.iter()
        .filter(|s| {
            s.parse::<IpAddr>().is_err()
                && !dns1123_subdomain(s)
                && !s.strip_prefix("*.").is_some_and(dns1123_subdomain)
        })
        .map(|s| {
            invalid(field, s, "altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards")
        })
        .collect()
}

/// The control-plane version kubeadm deploys: at most one minor older (real kubeadm's
/// MinimumControlPlaneVersion) and, in this stand-in, at most one minor newer (real
/// kubeadm only warns there; deploying further ahead is unsupported).
pub fn validate_kubernetes_version(field: &str, v: &str, kubeadm: KubeVersion) -> Result<KubeVersion> {
    let Ok(k8s) = KubeVersion::parse(v) else {
        bail!(
            "{}",
            invalid(field, v, "the kubernetesVersion is not a valid semantic version (expected v1.MINOR.PATCH)")
        );
    };
    let min = KubeVersion { major: kubeadm.major, minor: kubeadm.minor.saturating_sub(1), patch: 0 };
    if k8s < min {
        bail!("this version of kubeadm only supports deploying clusters with the control plane version >= {min}. Current version: {v}");
    }
    if k8s.major != kubeadm.major || k8s.minor > kubeadm.minor + 1 {
        bail!(
            "the Kubernetes version {v} is more than one minor version newer than kubeadm {kubeadm}: this version of kubeadm only supports deploying clusters with the control plane version <= v{}.{}.x",
            kubeadm.major,
            kubeadm.minor + 1
        );
    }
    Ok(k8s)
}

/// distribution/reference's ReferenceRegexp (reference/regexp.go): name (optional
/// domain[:port], then lowercase path components), optional `:tag`, optional `@digest`.
fn reference_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
        let host = format!(r"(?:{domain_name}|\[(?:[a-fA-F0-9:]+)\])");
        let domain_and_port = format!(r"{host}(?::[0-9]+)?");
        let path_component = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
        let name = format!(r"(?:{domain_and_port}/)?{path_component}(?:/{path_component})*");
        let tag = r"[\w][\w.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
        Regex::new(&format!(r"^({name})(?::({tag}))?(?:@({digest}))?$")).expect("static pattern")
    })
}

/// ValidateImageRepository: `<repository>/name:tag` must be a valid image reference, so the
/// repository carries no tag or digest and its path is lowercase.
pub fn validate_image_repository(field: &str, repo: &str) -> Vec<String> {
    if reference_re().is_match(&format!("{repo}/name:tag")) {
        Vec::new()
    } else {
        vec![invalid(field, repo, "invalid image repository format")]
    }
}

/// ValidateClusterConfiguration.
pub fn validate_cluster(c: &ClusterConfiguration) -> Vec<String> {
    let mut errs = validate_networking(&c.networking);
    errs.extend(validate_cert_sans("apiServer.certSANs", &c.api_server.cert_sans));
    validate_abs_path("certificatesDir", &c.certificates_dir, &mut errs);
    if !c.control_plane_endpoint.is_empty() {
        errs.extend(validate_host_port("controlPlaneEndpoint", &c.control_plane_endpoint));
    }
    errs.extend(validate_image_repository("imageRepository", &c.image_repository));
    if !c.dns.image_repository.is_empty() {
        errs.extend(validate_image_repository("dns.imageRepository", &c.dns.image_repository));
    }
    if let Some(l) = c.etcd.local.as_ref().filter(|l| !l.image_repository.is_empty()) {
        errs.extend(validate_image_repository("etcd.local.imageRepository", &l.image_repository));
    }
    errs.extend(validate_etcd(&c.etcd));
    if !["RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384"].contains(&c.encryption_algorithm.as_str()) {
        errs.push(format!(
            "encryptionAlgorithm: Unsupported value: \"{}\": supported values: \"ECDSA-P256\", \"ECDSA-P384\", \"RSA-2048\", \"RSA-3072\", \"RSA-4096\"",
            c.encryption_algorithm
        ));
    }
    for (i, a) in c.api_server.extra_args.iter().enumerate() {
        if a.name.is_empty() {
            errs.push(required(&format!("apiServer.extraArgs[{i}].name"), "argument has no name"));
        }
    }
    errs
}

/// ValidateCertValidity: validity periods above kubeadm's defaults (constants.go
/// CertificateValidityPeriod 8760h, CACertificateValidityPeriod 87600h) are warnings
/// (`klog.Warningf("WARNING: %s", ...)` in ValidateClusterConfiguration), not errors.
pub fn cert_validity_warnings(c: &ClusterConfiguration) -> Vec<String> {
    use crate::duration::{format_go_duration, parse_go_duration};
    let cert_default = std::time::Duration::from_secs(8760 * 3600);
    let ca_default = std::time::Duration::from_secs(87600 * 3600);
    let mut out = Vec::new();
    if let Some(d) = c.certificate_validity_period.as_deref().and_then(|v| parse_go_duration(v).ok()) {
        if d > cert_default {
            out.push(format!(
                "certificateValidityPeriod: the value {} is more than the recommended default for certificate expiration: {}",
                format_go_duration(d),
                format_go_duration(cert_default)
            ));
        }
    }
    if let Some(d) = c.ca_certificate_validity_period.as_deref().and_then(|v| parse_go_duration(v).ok()) {
        if d > ca_default {
            out.push(format!(
                "caCertificateValidityPeriod: the value {} is more than the recommended default for CA certificate expiration: {}",
                format_go_duration(d),
                format_go_duration(ca_default)
            ));
        }
    }
    out
}

/// ValidateNodeRegistrationOptions (+ the taints the API server would refuse).
pub fn validate_node_registration(field: &str, n: &NodeRegistrationOptions) -> Vec<String> {
    let mut errs = Vec::new();
    if n.name.is_empty() {
        errs.push(required(&format!("{field}.name"), "--node-name or .nodeRegistration.name in the config file is a required value. It seems like this value couldn't be automatically detected in your environment, please specify the desired value using the CLI or config file."));
    } else if !dns1123_subdomain(&n.name) {
        errs.push(invalid(&format!("{field}.name"), &n.name, DNS1123_MSG));
    }
    let sock = &n.cri_socket;
    if let Some((scheme, path)) = sock.split_once("://") {
        if scheme != "unix" {
            errs.push(invalid(&format!("{field}.criSocket"), sock, &format!("URL scheme {scheme:?} is not supported")));
        } else if !path.starts_with('/') {
            errs.push(invalid(&format!("{field}.criSocket"), sock, "path is not absolute"));
        }
    } else if !sock.starts_with('/') {
        errs.push(invalid(&format!("{field}.criSocket"), sock, "path is not absolute"));
    }
    for (i, t) in n.taints.iter().flatten().enumerate() {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
            errs.push(format!(
                "{field}.taints[{i}].effect: Unsupported value: \"{}\": supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"",
                t.effect
            ));
        }
        if t.key.is_empty() {
            errs.push(required(&format!("{field}.taints[{i}].key"), "taint key is required"));
        }
    }
    if !["Always", "IfNotPresent", "Never"].contains(&n.image_pull_policy.as_str()) {
        errs.push(format!(
            "{field}.imagePullPolicy: Unsupported value: \"{}\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            n.image_pull_policy
        ));
    }
    for (i, a) in n.kubelet_extra_args.iter().enumerate() {
        if a.name.is_empty() {
            errs.push(required(&format!("{field}.kubeletExtraArgs[{i}].name"), "argument has no name"));
        }
    }
    errs
}

fn validate_api_endpoint(field: &str, e: &ApiEndpoint) -> Vec<String> {
    let mut errs = Vec::new();
    if !e.advertise_address.is_empty() && e.advertise_address.parse::<IpAddr>().is_err() {
        errs.push(invalid(&format!("{field}.advertiseAddress"), &e.advertise_address, "must be a valid IP address"));
    }
    if !(1..=65535).contains(&e.bind_port) {
        errs.push(invalid(&format!("{field}.bindPort"), &e.bind_port.to_string(), "port number is not valid"));
    }
    errs
}

/// ValidateToken (validation.go): bootstraputil.IsValidBootstrapToken, else "the bootstrap
/// token is invalid" (`kubeadm token create X` has its own "was not of the form" message).
fn validate_token(field: &str, t: &str) -> Option<String> {
    (!token_re().is_match(t)).then(|| invalid(field, t, "the bootstrap token is invalid"))
}

/// A `[]string` as field.Invalid prints it (`%#v`): `[]string{"a", "b"}`.
pub fn go_string_slice(v: &[String]) -> String {
    format!("[]string{{{}}}", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
}

/// ValidateBootstrapTokens.
pub fn validate_bootstrap_tokens(tokens: &[BootstrapToken]) -> Vec<String> {
    let mut errs = Vec::new();
    static GROUP: OnceLock<Regex> = OnceLock::new();
    for (i, t) in tokens.iter().enumerate() {
        let f = format!("bootstrapTokens[{i}]");
        errs.extend(validate_token(&format!("{f}.token"), &t.token));
        if let Some(ttl) = &t.ttl {
            if let Err(e) = crate::duration::parse_go_duration(ttl) {
                errs.push(invalid(&format!("{f}.ttl"), ttl, &e.to_string()));
            }
        }
        if let Some(exp) = &t.expires {
            if time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).is_err() {
                errs.push(invalid(&format!("{f}.expires"), exp, "must be an RFC 3339 time"));
            }
        }
        for u in &t.usages {
            if u != "signing" && u != "authentication" {
                errs.push(invalid(&format!("{f}.usages"), u, &format!("unknown usage: {u}")));
            }
        }
        // ValidateTokenGroups: "adding groups only makes sense for authentication".
        if !t.groups.is_empty() && !t.usages.iter().any(|u| u == "authentication") {
            errs.push(invalid_raw(
                &format!("{f}.groups"),
                &go_string_slice(&t.groups),
                "token groups cannot be specified unless --usages includes \"authentication\"",
            ));
        }
        for g in &t.groups {
            if !re(&GROUP, BOOTSTRAP_GROUP_PATTERN).is_match(g) {
                errs.push(invalid(
                    &format!("{f}.groups"),
                    g,
                    &format!("bootstrap group {g:?} is invalid (must match {BOOTSTRAP_GROUP_PATTERN})"),
                ));
            }
        }
    }
    errs
}

/// ValidateInitConfiguration (its ClusterConfiguration is validated separately).
pub fn validate_init(i: &InitConfiguration) -> Vec<String> {
    let mut errs = validate_node_registration("nodeRegistration", &i.node_registration);
    errs.extend(validate_bootstrap_tokens(&i.bootstrap_tokens));
    errs.extend(validate_api_endpoint("localAPIEndpoint", &i.local_api_endpoint));
    let key_ok = i.certificate_key.len() == 64 && hex::decode(&i.certificate_key).is_ok();
    if !i.certificate_key.is_empty() && !key_ok {
        errs.push(invalid("certificateKey", "", "certificate key must be a hex encoded AES key of 32 bytes"));
    }
    errs
}

/// A `sha256:<64 hex>` public key pin (kubeadm's pubkeypin).
pub fn validate_ca_cert_hash(h: &str) -> Result<(), String> {
    let Some((kind, value)) = h.split_once(':') else {
        return Err(format!("invalid hash {h:?}, expected \"format:hex-value\". Known format(s) are: sha256"));
    };
    if kind != "sha256" {
        return Err(format!("unknown hash format {kind:?}. Known format(s) are: sha256"));
    }
    if value.len() != 64 || hex::decode(value).is_err() {
        return Err(format!("hex-encoded hash was not the expected length (64 characters) or not hex: {value:?}"));
    }
    Ok(())
}

/// ValidateJoinConfiguration.
pub fn validate_join(j: &JoinConfiguration) -> Vec<String> {
    let mut errs = validate_node_registration("nodeRegistration", &j.node_registration);
    let d = &j.discovery;
    match (&d.bootstrap_token, &d.file) {
        (None, None) => errs.push(invalid("discovery", "", "bootstrapToken or file must be set")),
        (Some(_), Some(_)) => errs.push(invalid("discovery", "", "bootstrapToken and file cannot both be set")),
        (Some(bt), None) => {
            errs.extend(validate_token("discovery.bootstrapToken.token", &bt.token));
            if bt.api_server_endpoint.is_empty() {
                errs.push(required(
                    "discovery.bootstrapToken.apiServerEndpoint",
                    "the apiServerEndpoint is required for token discovery",
                ));
            } else {
                errs.extend(validate_host_port("discovery.bootstrapToken.apiServerEndpoint", &bt.api_server_endpoint));
            }
            if bt.ca_cert_hashes.is_empty() && !bt.unsafe_skip_ca_verification {
                errs.push(invalid("discovery.bootstrapToken.caCertHashes", "[]", "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"));
            }
            for (i, h) in bt.ca_cert_hashes.iter().enumerate() {
                if let Err(e) = validate_ca_cert_hash(h) {
                    errs.push(invalid(&format!("discovery.bootstrapToken.caCertHashes[{i}]"), h, &e));
                }
            }
        }
        (None, Some(f)) => validate_abs_path("discovery.file.kubeConfigPath", &f.kube_config_path, &mut errs),
    }
    if !d.tls_bootstrap_token.is_empty() {
        errs.extend(validate_token("discovery.tlsBootstrapToken", &d.tls_bootstrap_token));
    }
    // ValidateJoinConfiguration: absolute and ending in ".crt", one message for both.
    if !j.ca_cert_path.starts_with('/') || !j.ca_cert_path.ends_with(".crt") {
        errs.push(invalid("caCertPath", &j.ca_cert_path, "the ca certificate path must be an absolute path"));
    }
    if let Some(cp) = &j.control_plane {
        errs.extend(validate_api_endpoint("controlPlane.localAPIEndpoint", &cp.local_api_endpoint));
    }
    errs
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
