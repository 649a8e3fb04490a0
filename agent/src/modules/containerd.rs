//! `containerd { ... }`: `/etc/containerd/config.toml` for containerd 1.x
//! (config `version = 2`) or 2.x (`version = 3`, where the CRI plugin was split
//! into `io.containerd.cri.v1.runtime` and `io.containerd.cri.v1.images`), plus
//! one `certs.d/<registry>/hosts.toml` per registry mirror.
//! The agent owns these files entirely; changing any of them restarts containerd.

use crate::fsutil::FileState;
use crate::spec::{ContainerdConfigVersion, ContainerdSpec};
use crate::task::{Change, Context, Task, TaskError};
use toml_edit::{value, Array, DocumentMut, Item, Table};

pub const CONFIG: &str = "/etc/containerd/config.toml";

/// Plugin table paths that differ between the two schemas.
struct Layout {
    runc: &'static [&'static str],
    sandbox: (&'static [&'static str], &'static str),
    registry: &'static [&'static str],
}

const V2: Layout = Layout {
    runc: &["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc"],
    sandbox: (&["plugins", "io.containerd.grpc.v1.cri"], "sandbox_image"),
    registry: &["plugins", "io.containerd.grpc.v1.cri", "registry"],
};

const V3: Layout = Layout {
    runc: &["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc"],
    sandbox: (&["plugins", "io.containerd.cri.v1.images", "pinned_images"], "sandbox"),
    registry: &["plugins", "io.containerd.cri.v1.images", "registry"],
};

/// The table at `path`, creating intermediate tables as implicit so that only
/// tables holding values get a `[header]`.
fn table_at<'a>(root: &'a mut Table, path: &[&str]) -> &'a mut Table {
    let mut t = root;
    for key in path {
        let item = t.entry(key).or_insert_with(|| {
            let mut n = Table::new();
            n.set_implicit(true);
            Item::Table(n)
        });
        t = item.as_table_mut().expect("generated tables only");
    }
    t
}

pub fn render_config(spec: &ContainerdSpec) -> String {
    let layout = match spec.version {
        ContainerdConfigVersion::V2 => &V2,
        ContainerdConfigVersion::V3 => &V3,
    };
    let mut doc = DocumentMut::new();
    doc["version"] = value(i64::from(u8::from(spec.version)));
    let root = doc.as_table_mut();
    if let Some(img) = &spec.sandbox_image {
        table_at(root, layout.sandbox.0)[layout.sandbox.1] = value(img.as_str());
    }
    table_at(root, layout.runc)["runtime_type"] = value("io.containerd.runc.v2");
    let mut runc_path = layout.runc.to_vec();
    runc_path.push("options");
    table_at(root, &runc_path)["SystemdCgroup"] = value(spec.systemd_cgroup);
    table_at(root, layout.registry)["config_path"] = value(spec.config_path.as_str());
    format!("# Managed by strata-agent. Local changes will be overwritten.\n{doc}")
}

/// The CA file written beside a registry's hosts.toml when its mirror has `ca_cert`.
pub const MIRROR_CA: &str = "mirror-ca.crt";

/// One host's settings in hosts.toml: what it may do, the CA it is checked against,
/// and `override_path` when the URL carries its API root (`https://mirror/v2/docker.io`,
/// a mirror keeping each upstream under its own prefix).
fn host_settings(t: &mut Table, url: &str, mirror: &crate::spec::RegistryMirror, ca: Option<&str>) {
    t["capabilities"] = value(mirror.capabilities.iter().map(String::as_str).collect::<Array>());
    if let Some(ca) = ca {
        t["ca"] = value(ca);
    }
    let path = url.split_once("://").map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    if !path.trim_matches('/').is_empty() {
        t["override_path"] = value(true);
    }
}

/// containerd's hosts.toml for one registry (docs/hosts.md). With `fallback = false`
/// the last mirror is the `server` itself, so there is no upstream left to fall back to.
/// Every mirror is also a `[host]` table: containerd 1.6 refuses a hosts.toml without one
/// ("invalid `host` tree") and then silently pulls from the upstream.
pub fn render_hosts(registry: &str, mirror: &crate::spec::RegistryMirror, dir: &str) -> String {
    let ca_path = mirror.ca_cert.as_ref().map(|_| format!("{dir}/{MIRROR_CA}"));
    let ca = ca_path.as_deref();
    let mut doc = DocumentMut::new();
    let hosts_part: &[String] = if mirror.fallback {
        let server = mirror.server.clone().unwrap_or_else(|| match registry {
            "docker.io" => "https://registry-1.docker.io".into(),
            r => format!("https://{r}"),
        });
        if registry != "_default" {
            doc["server"] = value(server);
        }
        &mirror.endpoints
    } else {
        let Some(last) = mirror.endpoints.last() else { return String::new() };
        doc["server"] = value(last.as_str());
        host_settings(doc.as_table_mut(), last, mirror, ca);
        &mirror.endpoints
    };
    if !hosts_part.is_empty() {
        let hosts = table_at(doc.as_table_mut(), &["host"]);
        for ep in hosts_part {
            let mut t = Table::new();
            host_settings(&mut t, ep, mirror, ca);
            hosts.insert(ep, Item::Table(t));
        }
    }
    format!("# Managed by strata-agent.\n{doc}")
}

pub struct ContainerdTask {
    pub spec: ContainerdSpec,
}

impl ContainerdTask {
    pub fn files(&self) -> Result<Vec<FileState>, TaskError> {
        let mut files = vec![FileState::new(CONFIG, render_config(&self.spec)).with_mode(0o644)];
        for (reg, m) in &self.spec.registry_mirror {
            let ok = !reg.is_empty()
                && reg != "."
                && reg != ".."
                && !reg.contains('/')
                && !reg.contains(char::is_whitespace);
            if !ok {
                return Err(TaskError::new(format!("containerd.registry_mirror {reg:?}: invalid registry host")));
            }
            let dir = format!("{}/{reg}", self.spec.config_path);
            files.push(FileState::new(format!("{dir}/hosts.toml"), render_hosts(reg, m, &dir)).with_mode(0o644));
            if let Some(ca) = &m.ca_cert {
                files.push(FileState::new(format!("{dir}/{MIRROR_CA}"), ca.clone()).with_mode(0o644));
            }
        }
        Ok(files)
    }
}

impl Task for ContainerdTask {
    fn name(&self) -> String {
        "containerd config".into()
    }
    fn module(&self) -> &'static str {
        "containerd"
    }
    fn notify(&self) -> Vec<String> {
        vec!["containerd.service".into()]
    }
    fn check(&self, ctx: &Context) -> Result<Vec<Change>, TaskError> {
        crate::fsutil::check_files(&self.files()?, &ctx.root)
    }
    fn apply(&self, ctx: &Context) -> Result<(), TaskError> {
        crate::fsutil::apply_files(&self.files()?, &ctx.root)
    }
    /// The registry mirrors' hosts.toml files: a mirror that leaves the spec is
    /// deleted. config.toml is not: without it containerd would lose its CRI settings.
    fn managed(&self) -> Vec<crate::managed::Managed> {
        self.spec
            .registry_mirror
            .iter()
            .flat_map(|(reg, m)| {
                let dir = format!("{}/{reg}", self.spec.config_path);
                let ca = m.ca_cert.as_ref().map(|_| format!("{dir}/{MIRROR_CA}"));
                std::iter::once(format!("{dir}/hosts.toml")).chain(ca)
            })
            .map(crate::managed::Managed::File)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil;
    use crate::spec::{AbsPath, RegistryMirror};
    use proptest::prelude::*;
    use toml::Value;

    fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
        path.iter().try_fold(v, |v, k| v.get(k))
    }

    fn spec(version: ContainerdConfigVersion) -> ContainerdSpec {
        ContainerdSpec {
            version,
            sandbox_image: Some("registry.k8s.io/pause:3.9".into()),
            registry_mirror: [(
                "docker.io".to_string(),
                RegistryMirror {
                    endpoints: vec!["https://mirror.example:5000".into()],
                    server: None,
                    capabilities: vec!["pull".into(), "resolve".into()],
                    ca_cert: None,
                    fallback: true,
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn v2_uses_grpc_v1_cri_tables() {
        let v: Value = toml::from_str(&render_config(&spec(ContainerdConfigVersion::V2))).unwrap();
        let cri = ["plugins", "io.containerd.grpc.v1.cri"];
        assert_eq!(v["version"].as_integer(), Some(2));
        assert_eq!(
            get(&v, &[&cri[..], &["containerd", "runtimes", "runc", "options", "SystemdCgroup"]].concat())
                .and_then(Value::as_bool),
            Some(true)
        );
        assert_eq!(
            get(&v, &[&cri[..], &["sandbox_image"]].concat()).and_then(Value::as_str),
            Some("registry.k8s.io/pause:3.9")
        );
        assert_eq!(
            get(&v, &[&cri[..], &["registry", "config_path"]].concat()).and_then(Value::as_str),
            Some("/etc/containerd/certs.d")
        );
        assert!(get(&v, &["plugins", "io.containerd.cri.v1.images"]).is_none());
    }

    #[test]
    fn v3_uses_split_cri_plugins() {
        let text = render_config(&spec(ContainerdConfigVersion::V3));
        let v: Value = toml::from_str(&text).unwrap();
        assert_eq!(v["version"].as_integer(), Some(3));
        assert_eq!(
            get(
                &v,
                &[
                    "plugins",
                    "io.containerd.cri.v1.runtime",
                    "containerd",
                    "runtimes",
                    "runc",
                    "options",
                    "SystemdCgroup"
                ]
            )
            .and_then(Value::as_bool),
            Some(true)
        );
        assert_eq!(
            get(&v, &["plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"]).and_then(Value::as_str),
            Some("registry.k8s.io/pause:3.9")
        );
        assert_eq!(
            get(&v, &["plugins", "io.containerd.cri.v1.images", "registry", "config_path"]).and_then(Value::as_str),
            Some("/etc/containerd/certs.d")
        );
        assert!(get(&v, &["plugins", "io.containerd.grpc.v1.cri"]).is_none());
        // Headers only for tables that hold values.
        assert!(text.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]"), "{text}");
        assert!(!text.contains("[plugins]\n"), "{text}");
    }

    #[test]
    fn hosts_toml_for_docker_hub() {
        let s = spec(ContainerdConfigVersion::V2);
        let v: Value = toml::from_str(&render_hosts(
            "docker.io",
            &s.registry_mirror["docker.io"],
            "/etc/containerd/certs.d/docker.io",
        ))
        .unwrap();
        assert_eq!(v["server"].as_str(), Some("https://registry-1.docker.io"));
        let caps = get(&v, &["host", "https://mirror.example:5000", "capabilities"]).unwrap().as_array().unwrap();
        assert_eq!(caps.len(), 2);
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn air_gapped() -> RegistryMirror {
        RegistryMirror {
            endpoints: vec!["https://10.0.0.5:5000/v2/registry.k8s.io".into()],
            server: None,
            capabilities: vec!["pull".into(), "resolve".into()],
            ca_cert: Some(CA.into()),
            fallback: false,
        }
    }

    /// No fallback: the mirror is the server, so no upstream is left to try; its CA is
    /// the one written beside hosts.toml; a URL with a path is the API root.
    #[test]
    fn hosts_toml_without_fallback_has_only_the_mirror() {
        let dir = "/etc/containerd/certs.d/registry.k8s.io";
        let text = render_hosts("registry.k8s.io", &air_gapped(), dir);
        let v: Value = toml::from_str(&text).unwrap();
        assert_eq!(v["server"].as_str(), Some("https://10.0.0.5:5000/v2/registry.k8s.io"), "{text}");
        assert_eq!(v["ca"].as_str(), Some("/etc/containerd/certs.d/registry.k8s.io/mirror-ca.crt"));
        assert_eq!(v["override_path"].as_bool(), Some(true));
        let h = get(&v, &["host", "https://10.0.0.5:5000/v2/registry.k8s.io"]).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(h["override_path"].as_bool(), Some(true));
        assert!(!text.contains("https://registry.k8s.io"), "no upstream: {text}");
        // Two mirrors: the first is a host tried before the last (the server).
        let mut m = air_gapped();
        m.endpoints.insert(0, "https://10.0.0.6:5000".into());
        let v: Value = toml::from_str(&render_hosts("registry.k8s.io", &m, dir)).unwrap();
        assert_eq!(v["server"].as_str(), Some("https://10.0.0.5:5000/v2/registry.k8s.io"));
        let h = get(&v, &["host", "https://10.0.0.6:5000"]).unwrap();
        assert_eq!(h["ca"].as_str(), Some("/etc/containerd/certs.d/registry.k8s.io/mirror-ca.crt"));
        assert!(h.get("override_path").is_none());
    }

    #[test]
    fn the_mirror_ca_is_written_and_owned() {
        let (d, ctx) = testutil::root();
        let mut s = spec(ContainerdConfigVersion::V2);
        s.registry_mirror.insert("registry.k8s.io".into(), air_gapped());
        let t = ContainerdTask { spec: s };
        t.apply(&ctx).unwrap();
        let ca = d.path().join("etc/containerd/certs.d/registry.k8s.io/mirror-ca.crt");
        assert_eq!(std::fs::read_to_string(ca).unwrap(), CA);
        let managed: Vec<String> = t.managed().iter().map(|m| format!("{m:?}")).collect();
        assert!(managed.iter().any(|m| m.contains("registry.k8s.io/mirror-ca.crt")), "{managed:?}");
    }

    /// A mirror that is the only source must be trusted over TLS; a bad one is named.
    #[test]
    fn a_mirror_without_fallback_needs_tls_trust() {
        let at = |m: RegistryMirror| m.check().unwrap_err();
        assert_eq!(at(RegistryMirror { ca_cert: None, ..air_gapped() }).0, "ca_cert");
        let e = at(RegistryMirror { endpoints: vec!["http://10.0.0.5:5000".into()], ..air_gapped() });
        assert_eq!(e.0, "endpoints");
        assert!(e.1.contains("plain HTTP"), "{}", e.1);
        assert_eq!(at(RegistryMirror { server: Some("https://registry.k8s.io".into()), ..air_gapped() }).0, "server");
        assert_eq!(at(RegistryMirror { ca_cert: Some("not pem".into()), ..air_gapped() }).0, "ca_cert");
        assert_eq!(at(RegistryMirror { endpoints: vec![], ..air_gapped() }).0, "endpoints");
        air_gapped().check().unwrap();
        // With fallback, the system's trust store may do.
        RegistryMirror { ca_cert: None, fallback: true, ..air_gapped() }.check().unwrap();
    }

    #[test]
    fn writes_files_and_notifies_containerd() {
        let (d, ctx) = testutil::root();
        let t = ContainerdTask { spec: spec(ContainerdConfigVersion::V3) };
        assert_eq!(t.notify(), vec!["containerd.service"]);
        assert_eq!(t.check(&ctx).unwrap().len(), 2);
        t.apply(&ctx).unwrap();
        assert!(t.check(&ctx).unwrap().is_empty());
        assert!(d.path().join("etc/containerd/certs.d/docker.io/hosts.toml").is_file());
    }

    #[test]
    fn registry_with_slash_rejected() {
        let mut s = spec(ContainerdConfigVersion::V2);
        let m = s.registry_mirror.remove("docker.io").unwrap();
        s.registry_mirror.insert("../etc".into(), m);
        let (_d, ctx) = testutil::root();
        assert!(ContainerdTask { spec: s }.check(&ctx).unwrap_err().to_string().contains("\"../etc\""));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        // Any spec renders to TOML that parses and carries the values back.
        #[test]
        fn rendered_config_roundtrips(v3: bool, cg: bool, img in proptest::option::of("[ -~]{0,30}"), dir in "/[a-z]{1,8}(/[a-z][a-z.]{0,7}){0,2}") {
            let s = ContainerdSpec {
                version: if v3 { ContainerdConfigVersion::V3 } else { ContainerdConfigVersion::V2 },
                systemd_cgroup: cg,
                sandbox_image: img.clone(),
                config_path: AbsPath::try_from(dir.clone()).unwrap(),
                registry_mirror: Default::default(),
            };
            let v: Value = toml::from_str(&render_config(&s)).unwrap();
            let (runtime, images, sandbox): (&[&str], &[&str], &[&str]) = if v3 {
                (&["plugins", "io.containerd.cri.v1.runtime"], &["plugins", "io.containerd.cri.v1.images", "registry"], &["plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"])
            } else {
                (&["plugins", "io.containerd.grpc.v1.cri"], &["plugins", "io.containerd.grpc.v1.cri", "registry"], &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"])
            };
            let opt = [runtime, &["containerd", "runtimes", "runc", "options", "SystemdCgroup"]].concat();
            prop_assert_eq!(get(&v, &opt).and_then(Value::as_bool), Some(cg));
            prop_assert_eq!(get(&v, &[images, &["config_path"]].concat()).and_then(Value::as_str), Some(dir.as_str()));
            prop_assert_eq!(get(&v, sandbox).and_then(Value::as_str), img.as_deref());
        }
    }
}
