//! `strata-agent facts`: what the provider needs to know about a node before
//! building its spec. Everything is read from files under the root, so
//! `--root` works for all facts except the CPU-count fallback.

use crate::fsutil::{node_path, read_optional};
use crate::modules::package::installed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub os: OsFacts,
    pub kernel: Option<String>,
    pub cpus: Option<usize>,
    pub memory_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    /// "v1", "v2" or null when /sys/fs/cgroup is not there.
    pub cgroup_version: Option<String>,
    /// Installed versions from dpkg (null when not installed).
    pub containerd: Option<String>,
    pub kubelet: Option<String>,
    pub runc: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OsFacts {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub pretty_name: Option<String>,
}

fn read_text(root: &Path, p: &str) -> Option<String> {
    read_optional(&node_path(root, p)).ok().flatten().map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// os-release(5): `KEY=value` lines, values optionally quoted with shell quoting
/// rules restricted to what the spec allows (no expansion).
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = match (v.chars().next(), v.chars().last()) {
                (Some(q @ ('"' | '\'')), Some(e)) if e == q && v.len() >= 2 => {
                    let inner = &v[1..v.len() - 1];
                    if q == '"' {
                        inner.replace("\\\"", "\"").replace("\\\\", "\\").replace("\\$", "$").replace("\\`", "`")
                    } else {
                        inner.to_string()
                    }
                }
                _ => v.to_string(),
            };
            (k.trim().to_string(), v)
        })
        .collect()
}

/// `/proc/meminfo` value (kB) of `key`, in bytes.
fn meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

pub fn gather(root: &Path) -> Facts {
    let osr = read_text(root, "/etc/os-release")
        .or_else(|| read_text(root, "/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let mem = read_text(root, "/proc/meminfo").unwrap_or_default();
    let cpus = read_text(root, "/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count())
        .filter(|n| *n > 0)
        .or_else(|| {
            (root == Path::new("/")).then(|| std::thread::available_parallelism().map(|n| n.get()).ok()).flatten()
        });
    let cg = node_path(root, "/sys/fs/cgroup");
    let cgroup_version = if cg.join("cgroup.controllers").exists() {
        Some("v2".to_string())
    } else if cg.is_dir() {
        Some("v1".to_string())
    } else {
        None
    };
    let pkg = |names: &[&str]| names.iter().find_map(|n| installed(root, n).ok().flatten()).map(|i| i.version);
    Facts {
        os: OsFacts {
            id: osr.get("ID").cloned(),
            version_id: osr.get("VERSION_ID").cloned(),
            version_codename: osr.get("VERSION_CODENAME").cloned(),
            pretty_name: osr.get("PRETTY_NAME").cloned(),
        },
        kernel: read_text(root, "/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
        cpus,
        memory_bytes: meminfo(&mem, "MemTotal"),
        swap_total_bytes: meminfo(&mem, "SwapTotal"),
        cgroup_version,
        containerd: pkg(&["containerd", "containerd.io"]),
        kubelet: pkg(&["kubelet"]),
        runc: pkg(&["runc"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn os_release_quoting() {
        let m = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\n# c\nX=\"a \\\"b\\\"\"\n",
        );
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["X"], "a \"b\"");
    }

    #[test]
    fn gathers_from_root() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let p = node_path(d.path(), p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        };
        w("/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        w("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        w("/proc/cpuinfo", "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n");
        w("/proc/meminfo", "MemTotal:        2048 kB\nSwapTotal:       1024 kB\n");
        w("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
        w("/var/lib/dpkg/status", "Package: containerd.io\nStatus: hold ok installed\nVersion: 1.7.13-1\n");
        let f = gather(d.path());
        assert_eq!(f.os.id.as_deref(), Some("debian"));
        assert_eq!(f.kernel.as_deref(), Some("6.1.0-18-amd64"));
        assert_eq!(f.cpus, Some(2));
        assert_eq!((f.memory_bytes, f.swap_total_bytes), (Some(2048 * 1024), Some(1024 * 1024)));
        assert_eq!(f.cgroup_version.as_deref(), Some("v2"));
        assert_eq!(f.containerd.as_deref(), Some("1.7.13-1"));
        assert_eq!(f.kubelet, None);
    }

    proptest! {
        #[test]
        fn os_release_never_panics(s in "\\PC{0,200}") {
            let _ = parse_os_release(&s);
        }
        #[test]
        fn plain_values_roundtrip(k in "[A-Z_]{1,10}", v in "[a-zA-Z0-9 ._()/-]{0,20}") {
            let m = parse_os_release(&format!("{k}=\"{v}\"\n"));
            prop_assert_eq!(m.get(&k).map(String::as_str), Some(v.as_str()));
        }
    }
}
