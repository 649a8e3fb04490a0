//! Plan-time checks of a control plane's settings, each naming its attribute: the
//! endpoint, the Kubernetes version and upgrade steps, the networks, the CNI.

use std::net::IpAddr;

use ipnet::IpNet;

/// A Kubernetes version `v1.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    pub fn parse(s: &str) -> Result<KubeVersion, String> {
        let bad = || format!("{s:?} is not a Kubernetes version of the form v1.MINOR.PATCH, e.g. v1.35.0.");
        let rest = s.strip_prefix("v1.").ok_or_else(bad)?;
        let (minor, patch) = rest.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| -> Result<u32, String> {
            if p.is_empty()
                || p.len() > 4
                || !p.bytes().all(|b| b.is_ascii_digit())
                || (p.len() > 1 && p.starts_with('0'))
            {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        Ok(KubeVersion { minor: num(minor)?, patch: num(patch)? })
    }

    /// The pkgs.k8s.io Debian package version, e.g. `1.35.0-1.1`.
    pub fn package_version(&self) -> String {
        format!("1.{}.{}-1.1", self.minor, self.patch)
    }
}

impl std::fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v1.{}.{}", self.minor, self.patch)
    }
}

/// What a version change does: nothing, an upgrade, or a refusal (why).
#[derive(Debug, PartialEq, Eq)]
pub enum VersionStep {
    Same,
    Upgrade,
}

/// Strata's rule: upgrade to the same or the next minor, never skipping (kubeadm's rule),
/// and never down (kubeadm allows one minor down; Strata does not roll a cluster back).
pub fn version_step(from: KubeVersion, to: KubeVersion) -> Result<VersionStep, String> {
    if from == to {
        return Ok(VersionStep::Same);
    }
    if to < from {
        return Err(format!(
            "{to} is lower than the running {from}: Strata does not downgrade a control plane (kubeadm would \
             take it one minor version back, but the upgrade rolled every node and its packages forward). Keep \
             {from} or restore an etcd snapshot taken before the upgrade into a new cluster."
        ));
    }
    if to.minor > from.minor + 1 {
        return Err(format!(
            "{from} -> {to} skips {} minor version(s): kubeadm upgrades one minor version at a time. Upgrade to \
             v1.{}.x first, apply, then to {to}.",
            to.minor - from.minor - 1,
            from.minor + 1
        ));
    }
    Ok(VersionStep::Upgrade)
}

/// `host:port`, host an IP address or DNS name, port 1-65535. Returns (host, port).
pub fn endpoint(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port (e.g. 10.0.0.100:6443 or api.example.org:6443).");
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (h.to_string(), p)
        }
        None => {
            let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
            if h.contains(':') {
                return Err(bad());
            }
            (h.to_string(), p)
        }
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
        return Err(bad());
    }
    Ok((host, port))
}

fn is_dns_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A Go duration of at least one hour, e.g. `8760h` (kubeadm's `certificateValidityPeriod`).
pub fn certificate_validity(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::framework::timeouts::parse_go_duration(s)?;
    if d < std::time::Duration::from_secs(3600) {
        return Err(format!("{s:?} is shorter than one hour; give a duration such as \"8760h\"."));
    }
    Ok(d)
}

pub fn cidr(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.parse().map_err(|_| format!("{s:?} is not a CIDR, e.g. 10.244.0.0/16."))?;
    if net.trunc() != net {
        return Err(format!("{s:?} has host bits set; the network is {}.", net.trunc()));
    }
    Ok(net)
}

/// kubeadm's (and kube-apiserver's) `MaximumBitsForServiceSubnet`: at most 2^20 service
/// addresses, so an IPv4 `service_cidr` of /12 or longer, an IPv6 one of /108 or longer.
pub const MAXIMUM_BITS_FOR_SERVICE_SUBNET: u8 = 20;

/// A service network kubeadm accepts: a CIDR (see [`cidr`]) no larger than 2^20 addresses.
pub fn service_cidr(s: &str) -> Result<IpNet, String> {
    let net = cidr(s)?;
    let bits = net.max_prefix_len();
    if bits - net.prefix_len() > MAXIMUM_BITS_FOR_SERVICE_SUBNET {
        return Err(format!(
            "service_cidr {net} is too large: kubeadm and the API server allow at most 2^{MAXIMUM_BITS_FOR_SERVICE_SUBNET} \
             service addresses, a mask of /{} or longer for {bits}-bit addresses (e.g. 10.96.0.0/12).",
            bits - MAXIMUM_BITS_FOR_SERVICE_SUBNET
        ));
    }
    Ok(net)
}

/// Pod and service networks must not overlap: kube-proxy and the CNI would route the
/// same addresses two ways.
pub fn networks_apart(pod: &IpNet, service: &IpNet) -> Result<(), String> {
    if pod.contains(&service.network()) || service.contains(&pod.network()) {
        return Err(format!("pod_cidr {pod} and service_cidr {service} overlap; give them separate ranges."));
    }
    Ok(())
}

pub const CNI_TYPES: [&str; 3] = ["calico", "flannel", "none"];
pub const CALICO_ENCAPSULATIONS: [&str; 3] = ["IPIP", "VXLAN", "None"];
pub const FLANNEL_BACKENDS: [&str; 2] = ["vxlan", "host-gw"];

/// kube-apiserver flags Strata sets from other attributes, and which attribute: an
/// extra argument would silently win over it (kubeadm lets `extraArgs` override).
const MANAGED_API_SERVER_FLAGS: &[(&str, &str)] = &[
    ("etcd-servers", "etcd.endpoints"),
    ("etcd-cafile", "etcd.ca_cert"),
    ("etcd-certfile", "etcd.cert"),
    ("etcd-keyfile", "etcd.key"),
    ("advertise-address", "node.address"),
    ("service-cluster-ip-range", "service_cidr"),
    ("client-ca-file", "ca_cert"),
    ("tls-cert-file", "cert_sans"),
    ("tls-private-key-file", "cert_sans"),
    ("service-account-key-file", "service_account_public_key"),
    ("service-account-signing-key-file", "service_account_private_key"),
    ("secure-port", "endpoint"),
];

/// One entry of `api_server_extra_args`: a flag name as kube-apiserver spells it
/// (lower-case words joined by `-`, no leading `--`, no `=`), a one-line value (`None`
/// while unknown), and not a flag Strata sets itself.
pub fn api_server_extra_arg(name: &str, value: Option<&str>) -> Result<(), String> {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.starts_with('-') {
        return Err(format!("{name:?}: write the flag name without the leading \"--\", e.g. \"audit-log-maxage\"."));
    }
    if !name.split('-').all(word) {
        return Err(format!(
            "{name:?} is not a kube-apiserver flag name: lower-case letters and digits in words joined by '-'."
        ));
    }
    if let Some((_, attr)) = MANAGED_API_SERVER_FLAGS.iter().find(|(f, _)| *f == name) {
        return Err(format!("--{name} is set by Strata from `{attr}`; change that attribute instead."));
    }
    if value.is_some_and(|v| v.contains(['\n', '\r'])) {
        return Err(format!("The value of --{name} spans several lines; a flag value is one line."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_only_v1_minor_patch() {
        assert_eq!(v("v1.35.0"), KubeVersion { minor: 35, patch: 0 });
        for bad in ["1.35.0", "v1.35", "v2.1.0", "v1.35.0-rc.1", "v1.035.0", "v1..0", "v1.35.x", ""] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(v("v1.36.1").package_version(), "1.36.1-1.1");
    }

    #[test]
    fn upgrades_go_one_minor_at_a_time_and_never_down() {
        assert_eq!(version_step(v("v1.35.0"), v("v1.35.0")), Ok(VersionStep::Same));
        assert_eq!(version_step(v("v1.35.0"), v("v1.35.4")), Ok(VersionStep::Upgrade));
        assert_eq!(version_step(v("v1.35.0"), v("v1.36.1")), Ok(VersionStep::Upgrade));
        assert!(version_step(v("v1.34.3"), v("v1.36.1")).unwrap_err().contains("skips 1 minor"));
        assert!(version_step(v("v1.36.1"), v("v1.35.0")).unwrap_err().contains("does not downgrade"));
        assert!(version_step(v("v1.35.2"), v("v1.35.1")).is_err());
    }

    #[test]
    fn endpoints_are_host_port() {
        assert_eq!(endpoint("10.0.0.100:6443"), Ok(("10.0.0.100".into(), 6443)));
        assert_eq!(endpoint("api.example.org:443"), Ok(("api.example.org".into(), 443)));
        assert_eq!(endpoint("[fd00::1]:6443"), Ok(("fd00::1".into(), 6443)));
        for bad in
            ["10.0.0.100", "10.0.0.100:0", "10.0.0.100:70000", "https://x:6443", "fd00::1:6443", ":6443", "a_b:1"]
        {
            assert!(endpoint(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn overlapping_networks_are_refused() {
        let pod = cidr("10.244.0.0/16").unwrap();
        assert!(networks_apart(&pod, &cidr("10.96.0.0/12").unwrap()).is_ok());
        assert!(networks_apart(&pod, &cidr("10.244.128.0/20").unwrap()).is_err());
        assert!(networks_apart(&cidr("10.0.0.0/8").unwrap(), &cidr("10.96.0.0/12").unwrap()).is_err());
        assert!(cidr("10.244.0.1/16").unwrap_err().contains("host bits"));
        assert!(cidr("banana").is_err());
    }

    /// kubeadm's ValidateServiceSubnetSize (MaximumBitsForServiceSubnet = 20): /12 is the
    /// largest IPv4 service network, /108 the largest IPv6 one.
    #[test]
    fn service_networks_larger_than_slash_12_are_refused() {
        assert!(service_cidr("10.96.0.0/12").is_ok());
        assert!(service_cidr("10.96.0.0/16").is_ok());
        let e = service_cidr("10.0.0.0/8").unwrap_err();
        assert!(e.starts_with("service_cidr 10.0.0.0/8 is too large"), "{e}");
        assert!(e.contains("a mask of /12 or longer for 32-bit addresses"), "{e}");
        assert!(service_cidr("10.96.0.0/11").is_err());
        assert!(service_cidr("fd00:10:96::/108").is_ok());
        assert!(service_cidr("fd00:10:96::/100").unwrap_err().contains("/108 or longer for 128-bit"));
        assert!(service_cidr("banana").is_err(), "still a CIDR first");
    }

    #[test]
    fn api_server_extra_args_are_flag_names_strata_does_not_set() {
        assert!(api_server_extra_arg("audit-log-maxage", Some("30")).is_ok());
        assert!(api_server_extra_arg("profiling", None).is_ok(), "unknown values are checked at apply");
        for (name, says) in [
            ("--profiling", "without the leading"),
            ("Audit_Log", "not a kube-apiserver flag name"),
            ("audit--log", "not a kube-apiserver flag name"),
            ("a=b", "not a kube-apiserver flag name"),
            ("etcd-servers", "`etcd.endpoints`"),
            ("service-cluster-ip-range", "`service_cidr`"),
        ] {
            let e = api_server_extra_arg(name, Some("x")).unwrap_err();
            assert!(e.contains(says), "{name}: {e}");
        }
        assert!(api_server_extra_arg("audit-log-path", Some("/a\n--b")).unwrap_err().contains("one line"));
    }
}
