//! The node spec: the one data model shared by the Terraform provider (which
//! builds it from resource attributes and serializes it to JSON) and the agent
//! (which reads it from HCL or JSON).
//!
//! Validation that can be expressed as a type lives in `Deserialize` impls
//! (`Mode`, `AbsPath`, `ContainerdConfigVersion`, ...) so that a bad value is
//! reported by the deserializer with the key path and line of the offending key.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Desired state of one Kubernetes node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<ContainerdSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crictl: Option<CrictlSpec>,
    /// Kernel parameters, persisted in `/etc/sysctl.d/99-strata.conf` and set live.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// Modules persisted in `/etc/modules-load.d/strata.conf` and loaded now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_modules: Vec<String>,
    /// Turn swap off now, comment swap out of `/etc/fstab`, mask swap units.
    #[serde(default, skip_serializing_if = "is_false")]
    pub swap_off: bool,
    /// How apt is run for `package` (list refresh age, dpkg lock timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<AptSpec>,
    /// deb822 apt sources keyed by name (`/etc/apt/sources.list.d/<name>.sources`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apt_repository: BTreeMap<String, AptRepositorySpec>,
    /// Debian packages keyed by package name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub package: BTreeMap<String, PackageSpec>,
    /// systemd services keyed by unit name (".service" may be omitted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service: BTreeMap<String, ServiceSpec>,
    /// Files keyed by absolute path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file: BTreeMap<AbsPath, FileSpec>,
    /// Directories keyed by absolute path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub directory: BTreeMap<AbsPath, DirectorySpec>,
}

impl NodeSpec {
    /// Rules across fields that the types cannot express, checked right after
    /// parsing (so the provider reports them at plan time too).
    /// `Err((key path segments, message))`.
    pub fn check(&self) -> Result<(), (Vec<String>, String)> {
        for (name, r) in &self.apt_repository {
            let at = |k: &str, m: String| (vec!["apt_repository".to_string(), name.clone(), k.to_string()], m);
            let ok_name = name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok_name {
                return Err((
                    vec!["apt_repository".into(), name.clone()],
                    format!("invalid name {name:?}: letters, digits, '.', '_', '-'"),
                ));
            }
            r.check().map_err(|(k, m)| at(k, m))?;
        }
        if let Some(c) = &self.containerd {
            for (reg, m) in &c.registry_mirror {
                m.check().map_err(|(k, msg)| {
                    (vec!["containerd".into(), "registry_mirror".into(), reg.clone(), k.to_string()], msg)
                })?;
            }
        }
        for (name, sv) in &self.service {
            if sv.masked == Some(true) && (sv.enabled == Some(true) || sv.running == Some(true)) {
                return Err((
                    vec!["service".into(), name.clone(), "masked".into()],
                    "masked = true conflicts with enabled = true / running = true".into(),
                ));
            }
        }
        Ok(())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerdSpec {
    /// Config schema: 2 for containerd 1.x, 3 for containerd 2.x.
    #[serde(default)]
    pub version: ContainerdConfigVersion,
    #[serde(default = "yes")]
    pub systemd_cgroup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_image: Option<String>,
    /// Directory holding `<registry>/hosts.toml` files.
    #[serde(default = "default_certs_d")]
    pub config_path: AbsPath,
    /// Registry mirrors keyed by registry host (e.g. "docker.io").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registry_mirror: BTreeMap<String, RegistryMirror>,
}

fn default_certs_d() -> AbsPath {
    AbsPath("/etc/containerd/certs.d".into())
}

impl Default for ContainerdSpec {
    fn default() -> Self {
        ContainerdSpec {
            version: ContainerdConfigVersion::default(),
            systemd_cgroup: true,
            sandbox_image: None,
            config_path: default_certs_d(),
            registry_mirror: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryMirror {
    pub endpoints: Vec<String>,
    /// Upstream server; defaults to `https://<registry>` (docker.io: registry-1.docker.io).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    /// The CA (PEM) the mirrors' certificates are checked against, written beside
    /// hosts.toml; without it the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Whether containerd may fall back to the upstream `server` when no mirror
    /// answers. An air-gapped site sets false: then a broken mirror fails the pull,
    /// naming the mirror, instead of looking like an ignored one.
    #[serde(default = "yes")]
    pub fallback: bool,
}

impl RegistryMirror {
    /// Without fallback the mirrors are the only way to images: each must be HTTPS,
    /// with the CA that signed it (an air-gapped mirror's CA is never a public one),
    /// and an upstream `server` would be unused.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.endpoints.is_empty() {
            return Err(("endpoints", "must list at least one mirror URL".into()));
        }
        for e in &self.endpoints {
            let ok = e.strip_prefix("https://").or_else(|| e.strip_prefix("http://")).is_some_and(|h| !h.is_empty());
            if !ok || e.contains(char::is_whitespace) {
                return Err(("endpoints", format!("{e:?} is not an http(s) URL")));
            }
        }
        if let Some(ca) = &self.ca_cert {
            if !ca.contains("-----BEGIN CERTIFICATE-----") {
                return Err(("ca_cert", "must be a PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
            }
        }
        if !self.fallback {
            if let Some(e) = self.endpoints.iter().find(|e| e.starts_with("http://")) {
                return Err((
                    "endpoints",
                    format!("{e:?} is plain HTTP: a mirror with fallback = false must be HTTPS with its CA in ca_cert (no TLS trust otherwise)"),
                ));
            }
            if self.ca_cert.is_none() {
                return Err((
                    "ca_cert",
                    "required with fallback = false: the CA that signed the mirror's certificate (the mirror is the only source of images, so containerd must be able to trust it)".into(),
                ));
            }
            if self.server.is_some() {
                return Err(("server", "conflicts with fallback = false (no upstream server is tried)".into()));
            }
        }
        Ok(())
    }
}

fn default_capabilities() -> Vec<String> {
    vec!["pull".into(), "resolve".into()]
}

/// containerd config schema version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum ContainerdConfigVersion {
    /// `version = 2`, containerd 1.x (CRI plugin `io.containerd.grpc.v1.cri`).
    #[default]
    V2,
    /// `version = 3`, containerd 2.x (`io.containerd.cri.v1.runtime` / `.images`).
    V3,
}

impl TryFrom<u8> for ContainerdConfigVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            _ => Err(format!(
                "unsupported containerd config version {v}: expected 2 (containerd 1.x) or 3 (containerd 2.x)"
            )),
        }
    }
}
impl From<ContainerdConfigVersion> for u8 {
    fn from(v: ContainerdConfigVersion) -> u8 {
        match v {
            ContainerdConfigVersion::V2 => 2,
            ContainerdConfigVersion::V3 => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeletSpec {
    #[serde(default)]
    pub cgroup_driver: CgroupDriver,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_dns: Vec<String>,
    #[serde(default = "default_cluster_domain")]
    pub cluster_domain: String,
    #[serde(default = "yes")]
    pub rotate_certificates: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eviction_hard: BTreeMap<String, String>,
    /// Flags written to `KUBELET_EXTRA_ARGS` in `/etc/default/kubelet` as `--key=value`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_args: BTreeMap<String, String>,
    #[serde(default = "default_client_ca")]
    pub client_ca_file: AbsPath,
    #[serde(default = "default_static_pods")]
    pub static_pod_path: AbsPath,
}

fn default_cluster_domain() -> String {
    "cluster.local".into()
}
fn default_client_ca() -> AbsPath {
    AbsPath("/etc/kubernetes/pki/ca.crt".into())
}
fn default_static_pods() -> AbsPath {
    AbsPath("/etc/kubernetes/manifests".into())
}

impl Default for KubeletSpec {
    fn default() -> Self {
        KubeletSpec {
            cgroup_driver: CgroupDriver::default(),
            cluster_dns: vec![],
            cluster_domain: default_cluster_domain(),
            rotate_certificates: true,
            eviction_hard: BTreeMap::new(),
            extra_args: BTreeMap::new(),
            client_ca_file: default_client_ca(),
            static_pod_path: default_static_pods(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    #[default]
    Systemd,
    Cgroupfs,
}

impl CgroupDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrictlSpec {
    #[serde(default = "default_cri_endpoint")]
    pub runtime_endpoint: String,
    /// Defaults to `runtime_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

fn default_cri_endpoint() -> String {
    "unix:///run/containerd/containerd.sock".into()
}

impl Default for CrictlSpec {
    fn default() -> Self {
        CrictlSpec { runtime_endpoint: default_cri_endpoint(), image_endpoint: None, timeout: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Exact Debian version (e.g. "1.6.20~ds1-1"); `None` = any installed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `Some(true)` = held (apt-mark hold), `Some(false)` = not held, `None` = leave alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<bool>,
    /// Let apt install an older `version` than the installed one (`--allow-downgrades`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_downgrade: bool,
    /// Let apt change the version of a held package (`--allow-change-held-packages`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_change_held: bool,
}

/// apt settings for all package tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptSpec {
    /// `apt-get update` before installing when the package lists are older
    /// than this many seconds (or missing, or a repository changed).
    #[serde(default = "default_lists_max_age")]
    pub lists_max_age: u64,
    /// Seconds to wait for another apt/dpkg to release the lock.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: u32,
}

fn default_lists_max_age() -> u64 {
    3600
}
fn default_lock_timeout() -> u32 {
    120
}

impl Default for AptSpec {
    fn default() -> Self {
        AptSpec { lists_max_age: default_lists_max_age(), lock_timeout: default_lock_timeout() }
    }
}

/// A deb822 source, e.g. pkgs.k8s.io or a local mirror.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptRepositorySpec {
    /// `URIs`, e.g. ["https://pkgs.k8s.io/core:/stable:/v1.35/deb/"].
    pub uris: Vec<String>,
    /// `Suites`, e.g. ["/"] for a flat repository or ["bookworm"].
    pub suites: Vec<String>,
    /// `Components`; empty for a flat repository (suite ending in `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// `Architectures`; empty = apt's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Signing key: ASCII-armored (`-----BEGIN PGP PUBLIC KEY BLOCK-----`),
    /// written to `/etc/apt/keyrings/<name>.asc`, or a binary keyring (as
    /// `gpg --export` writes it) in base64, written to `<name>.gpg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Unsigned repository (a local mirror): `Trusted: yes`, no key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trusted: bool,
}

/// A signing key as given in the spec, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyring {
    Armored(Vec<u8>),
    Binary(Vec<u8>),
}

impl AptRepositorySpec {
    /// `Err((field, message))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, values, required) in [
            ("uris", &self.uris, true),
            ("suites", &self.suites, true),
            ("components", &self.components, false),
            ("architectures", &self.architectures, false),
        ] {
            if required && values.is_empty() {
                return Err((key, "must not be empty".into()));
            }
            if let Some(v) = values.iter().find(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                return Err((key, format!("{v:?} must be one word without whitespace")));
            }
        }
        // deb822: a flat repository (suite ending in '/') has no components, any other needs some.
        let flat = self.suites.iter().all(|x| x.ends_with('/'));
        if flat != self.components.is_empty() {
            let m = if flat {
                "must be empty for a flat repository (suite ending in '/')"
            } else {
                "required unless the suite ends in '/'"
            };
            return Err(("components", m.into()));
        }
        match (&self.key, self.trusted) {
            (Some(_), true) => Err(("trusted", "a repository has either a key or trusted = true".into())),
            (None, false) => Err(("key", "required (or trusted = true for an unsigned local mirror)".into())),
            _ => self.keyring().map(drop).map_err(|e| ("key", e)),
        }
    }

    pub fn keyring(&self) -> Result<Option<Keyring>, String> {
        use base64::Engine;
        let Some(key) = &self.key else { return Ok(None) };
        if key.trim_start().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            return Ok(Some(Keyring::Armored(key.clone().into_bytes())));
        }
        let compact: String = key.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(|b| Some(Keyring::Binary(b)))
            .map_err(|e| format!("neither an armored key nor a base64 binary keyring: {e}"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Started at boot. `true` is also satisfied by units that cannot be
    /// enabled (static, generated, indirect, alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Running now. `true` is also satisfied by a oneshot unit that already
    /// ran successfully since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    /// `true` = masked (never started), `false` = unmasked; unset = a masked
    /// unit is an error when `enabled` or `running` is `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Services restarted (once, after all tasks) when this file changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Unix permission bits, written as an octal string ("0644") in specs so that
/// JSON and HCL agree and nobody writes decimal 644 by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mode(pub u32);

impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match ok.then(|| u32::from_str_radix(&s, 8)) {
            Some(Ok(m)) => Ok(Mode(m)),
            _ => Err(format!("invalid mode {s:?}: expected an octal string like \"0644\"")),
        }
    }
}
impl From<Mode> for String {
    fn from(m: Mode) -> String {
        format!("{:04o}", m.0)
    }
}
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// An absolute, normalized path on the node (no `..`, no empty components),
/// so joining it under `--root` can never escape the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsPath(String);

impl AbsPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for AbsPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s.strip_prefix('/').ok_or_else(|| format!("path {s:?} must be absolute"))?;
        if s != "/" && rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(format!("path {s:?} must be normalized (no '.', '..', '//' or trailing '/')"));
        }
        if s.contains('\0') {
            return Err(format!("path {s:?} contains a NUL byte"));
        }
        Ok(AbsPath(s))
    }
}
impl TryFrom<&str> for AbsPath {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        AbsPath::try_from(s.to_string())
    }
}
impl From<AbsPath> for String {
    fn from(p: AbsPath) -> String {
        p.0
    }
}
impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sysctl value. Accepts strings, integers and booleans in the spec because
/// HCL authors naturally write `"net.ipv4.ip_forward" = 1`; stored as the
/// string the kernel would print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SysctlValue(pub String);

impl From<&str> for SysctlValue {
    fn from(s: &str) -> Self {
        SysctlValue(s.to_string())
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sysctl value (string or integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                if v.contains('\n') {
                    return Err(E::custom("sysctl value must be a single line"));
                }
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<SysctlValue, E> {
                Ok(SysctlValue(if v { "1" } else { "0" }.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mode_parses_octal_and_rejects_garbage() {
        assert_eq!(Mode::try_from("0644".to_string()).unwrap(), Mode(0o644));
        assert_eq!(Mode::try_from("755".to_string()).unwrap(), Mode(0o755));
        for bad in ["", "8", "0648", "rwx", "12345", "-644"] {
            assert!(Mode::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn abs_path_rejects_escapes() {
        for bad in ["etc/x", "/etc/../x", "/etc//x", "/etc/", "/./x", ""] {
            assert!(AbsPath::try_from(bad).is_err(), "{bad}");
        }
        assert!(AbsPath::try_from("/etc/motd").is_ok());
    }

    #[test]
    fn containerd_version_only_2_or_3() {
        assert!(ContainerdConfigVersion::try_from(1).is_err());
        assert_eq!(ContainerdConfigVersion::try_from(3).unwrap(), ContainerdConfigVersion::V3);
    }

    proptest! {
        #[test]
        fn mode_string_roundtrip(m in 0u32..0o7777) {
            let s: String = Mode(m).into();
            prop_assert_eq!(Mode::try_from(s).unwrap(), Mode(m));
        }

        #[test]
        fn abs_path_never_contains_dotdot(s in "[/a-z.]{0,12}") {
            if let Ok(p) = AbsPath::try_from(s.clone()) {
                prop_assert!(p.as_str().starts_with('/'));
                prop_assert!(!p.as_str().split('/').any(|c| c == ".."));
            }
        }
    }
}
