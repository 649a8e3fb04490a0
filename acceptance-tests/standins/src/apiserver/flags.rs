//! kube-apiserver's command line: `--name=value` flags. A flag the real kube-apiserver
//! does not know is refused (`unknown flag`), as pflag does; known flags this stand-in
//! has no use for are accepted and ignored.

use anyhow::{bail, Result};

/// Flags of the real kube-apiserver that the stand-in accepts without acting on them.
const KNOWN_IGNORED: &[&str] = &[
    "allow-privileged",
    "authorization-mode",
    "enable-admission-plugins",
    "disable-admission-plugins",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-preferred-address-types",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-username-headers",
    "service-account-issuer",
    "service-account-signing-key-file",
    "audit-log-path",
    "audit-log-maxage",
    "audit-log-maxbackup",
    "audit-log-maxsize",
    "audit-policy-file",
    "profiling",
    "anonymous-auth",
    "encryption-provider-config",
    "feature-gates",
    "v",
    "event-ttl",
    "runtime-config",
    "service-node-port-range",
    "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds",
    "endpoint-reconciler-type",
    "apiserver-count",
    "max-requests-inflight",
    "max-mutating-requests-inflight",
    "request-timeout",
    "tls-cipher-suites",
    "tls-min-version",
    "oidc-issuer-url",
    "oidc-client-id",
    "oidc-username-claim",
    "oidc-groups-claim",
    "storage-backend",
    "storage-media-type",
    "etcd-prefix",
    "watch-cache",
    "kubelet-certificate-authority",
    "service-account-lookup",
    "authentication-config",
    "authorization-config",
    "admission-control-config-file",
    "goaway-chance",
    "shutdown-delay-duration",
    "logging-format",
    "cloud-provider",
];

#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub advertise_address: String,
    pub bind_address: String,
    pub secure_port: u16,
    pub tls_cert_file: String,
    pub tls_private_key_file: String,
    pub client_ca_file: String,
    pub etcd_servers: Vec<String>,
    pub etcd_cafile: String,
    pub etcd_certfile: String,
    pub etcd_keyfile: String,
    pub service_cluster_ip_range: String,
    pub service_account_key_file: Vec<String>,
    pub enable_bootstrap_token_auth: bool,
}

impl Flags {
    pub fn parse(args: &[String]) -> Result<Flags> {
        let mut f = Flags { secure_port: 6443, bind_address: "0.0.0.0".into(), ..Default::default() };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(body) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?} (kube-apiserver takes flags only)")
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None if body.starts_with("enable-bootstrap-token-auth")
                    || body == "allow-privileged"
                    || body == "profiling" =>
                {
                    (body.to_string(), "true".to_string())
                }
                None => (body.to_string(), it.next().cloned().unwrap_or_default()),
            };
            match name.as_str() {
                "advertise-address" => f.advertise_address = value,
                "bind-address" => f.bind_address = value,
                "secure-port" => {
                    f.secure_port = value
                        .parse()
                        .map_err(|_| anyhow::anyhow!("invalid argument {value:?} for \"--secure-port\" flag"))?
                }
                "tls-cert-file" => f.tls_cert_file = value,
                "tls-private-key-file" => f.tls_private_key_file = value,
                "client-ca-file" => f.client_ca_file = value,
                "etcd-servers" => f.etcd_servers = value.split(',').map(str::to_string).collect(),
                "etcd-cafile" => f.etcd_cafile = value,
                "etcd-certfile" => f.etcd_certfile = value,
                "etcd-keyfile" => f.etcd_keyfile = value,
                "service-cluster-ip-range" => f.service_cluster_ip_range = value,
                "service-account-key-file" => f.service_account_key_file.push(value),
                "enable-bootstrap-token-auth" => f.enable_bootstrap_token_auth = value == "true",
                n if KNOWN_IGNORED.contains(&n) => {}
                n => bail!("unknown flag: --{n}"),
            }
        }
        for (name, v) in [
            ("--tls-cert-file", &f.tls_cert_file),
            ("--tls-private-key-file", &f.tls_private_key_file),
            ("--client-ca-file", &f.client_ca_file),
        ] {
            if v.is_empty() {
                bail!("{name} is required by the stand-in (kubeadm always sets it)");
            }
        }
        if f.etcd_servers.is_empty() {
            bail!("--etcd-servers must be specified");
        }
        if f.service_account_key_file.is_empty() {
            bail!("service-account-issuer and service-account-key-file must be specified (--service-account-key-file)");
        }
        if !f.service_cluster_ip_range.is_empty()
            && f.service_cluster_ip_range.split(',').any(|c| c.parse::<ipnet::IpNet>().is_err())
        {
            bail!("invalid argument {:?} for \"--service-cluster-ip-range\" flag", f.service_cluster_ip_range);
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--tls-cert-file=/a",
            "--tls-private-key-file=/b",
            "--client-ca-file=/c",
            "--etcd-servers=https://10.0.0.1:2379",
            "--service-account-key-file=/sa.pub",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--authorization-mode=Node,RBAC",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    #[test]
    fn known_flags_parse_unknown_are_refused() {
        let f = Flags::parse(&args(&["--secure-port=6443", "--enable-bootstrap-token-auth=true"])).unwrap();
        assert!(f.enable_bootstrap_token_auth);
        assert_eq!(f.etcd_servers, vec!["https://10.0.0.1:2379"]);
        let e = Flags::parse(&args(&["--no-such-flag=1"])).unwrap_err().to_string();
        assert_eq!(e, "unknown flag: --no-such-flag");
        let e = Flags::parse(&args(&["--service-cluster-ip-range=banana"])).unwrap_err().to_string();
        assert!(e.contains("--service-cluster-ip-range"), "{e}");
    }
}
