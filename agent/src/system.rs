//! Everything that touches *live* system state (kernel parameters, loaded
//! modules, active swap, systemd, apt) goes through [`System`].
//!
//! * [`HostSystem`] (the default) runs the real commands: `sysctl -w`,
//!   `modprobe`, `swapoff -a`, `systemctl`, `apt-get`/`apt-mark`. `--root`
//!   then only places files; live state is the host's.
//! * [`SimulatedSystem`] (only with the explicit `--simulate`) never touches the host.
//!   It keeps live state as plain files inside the root so that tests exercise
//!   the real check/apply logic:
//!   - sysctl values:   `ROOT/proc/sys/<key with dots as slashes>`
//!   - loaded modules:  `ROOT/proc/modules` (first column = module name)
//!   - active swap:     `ROOT/proc/swaps` (header line + one line per device)
//!   - masked units:    symlink `ROOT/etc/systemd/system/<unit>` -> `/dev/null`
//!   - systemd units:   `ROOT/var/lib/strata-agent/simulated-systemd.json`
//!     (`enabled`, `active`, `restarts` per unit, `daemon_reloads`; a unit
//!     listed in `fail_restart` fails to restart, to test handler retries)
//!   - packages:        edits `ROOT/var/lib/dpkg/status` as dpkg would.
//!
//! Reads of `/proc` and `/etc` are the same in both: they are file reads
//! relative to the root (on the host the root is `/`).

use crate::fsutil::{atomic_write, node_path, read_optional};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

pub type SysResult<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub enabled: bool,
    pub active: bool,
}

pub trait System {
    /// Filesystem root all node paths are relative to.
    fn root(&self) -> &Path;

    fn sysctl_get(&self, key: &str) -> SysResult<Option<String>> {
        let p = self.root().join("proc/sys").join(sysctl_rel_path(key)?);
        read_optional(&p)
            .map(|o| o.map(|b| String::from_utf8_lossy(&b).split_whitespace().collect::<Vec<_>>().join(" ")))
            .map_err(|e| format!("reading {}: {e}", p.display()))
    }
    fn sysctl_set(&self, key: &str, value: &str) -> SysResult<()>;

    /// Names of loaded kernel modules (`-` normalized to `_`, as the kernel does).
    fn loaded_modules(&self) -> SysResult<BTreeSet<String>> {
        let p = self.root().join("proc/modules");
        let text = read_optional(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        Ok(text
            .map(|t| {
                String::from_utf8_lossy(&t)
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(module_name)
                    .collect()
            })
            .unwrap_or_default())
    }
    fn load_module(&self, name: &str) -> SysResult<()>;

    /// Devices/files currently used as swap (from `/proc/swaps`).
    fn active_swaps(&self) -> SysResult<Vec<String>> {
        let p = self.root().join("proc/swaps");
        let text = read_optional(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        Ok(text
            .map(|t| {
                String::from_utf8_lossy(&t)
                    .lines()
                    .skip(1) // header: "Filename Type Size Used Priority"
                    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
    fn swapoff_all(&self) -> SysResult<()>;

    fn unit_masked(&self, unit: &str) -> bool {
        let p = self.root().join("etc/systemd/system").join(unit);
        std::fs::read_link(p).is_ok_and(|t| t == Path::new("/dev/null"))
    }
    fn mask_unit(&self, unit: &str) -> SysResult<()>;

    fn service_state(&self, unit: &str) -> SysResult<ServiceState>;
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()>;
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()>;
    fn restart(&self, unit: &str) -> SysResult<()>;
    fn daemon_reload(&self) -> SysResult<()>;

    fn install_package(&self, name: &str, version: Option<&str>) -> SysResult<()>;
    fn set_package_hold(&self, name: &str, hold: bool) -> SysResult<()>;
}

/// A simulated run must not act on the running system's own state: `root`
/// may not resolve to `host_root`, nor hold the same dpkg database (same
/// device and inode, e.g. a bind mount of `/`). `host_root` is `/` except in tests.
pub fn check_simulation_root(root: &Path, host_root: &Path) -> SysResult<()> {
    use std::os::unix::fs::MetadataExt;
    let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("--root {}: {e}", p.display()));
    let (r, h) = (canon(root)?, canon(host_root)?);
    if r == h {
        return Err(format!(
            "--simulate with --root {}: the root is this system's own root; a simulation needs a separate directory tree",
            root.display()
        ));
    }
    let dpkg = |p: &Path| std::fs::metadata(p.join("var/lib/dpkg")).ok().map(|m| (m.dev(), m.ino()));
    if let (Some(a), Some(b)) = (dpkg(&r), dpkg(&h)) {
        if a == b {
            return Err(format!(
                "--simulate with --root {}: its /var/lib/dpkg is this system's own dpkg database",
                root.display()
            ));
        }
    }
    Ok(())
}

/// `net.ipv4.ip_forward` -> `net/ipv4/ip_forward`. A key already using `/`
/// is taken as is (that is how sysctl(8) spells keys containing dots, e.g.
/// VLAN interface names). Rejects anything that could leave `/proc/sys`.
pub fn sysctl_rel_path(key: &str) -> SysResult<PathBuf> {
    let rel = if key.contains('/') { key.to_string() } else { key.replace('.', "/") };
    let ok = !rel.is_empty()
        && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && !rel.contains(char::is_whitespace)
        && !rel.contains('=');
    if ok {
        Ok(PathBuf::from(rel))
    } else {
        Err(format!("invalid sysctl key {key:?}"))
    }
}

/// The kernel reports `br-netfilter` as `br_netfilter`.
pub fn module_name(n: &str) -> String {
    n.replace('-', "_")
}

fn run(cmd: &str, args: &[&str]) -> SysResult<String> {
    let out = Command::new(cmd)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("running {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The live system (whatever `--root` the files go to).
pub struct HostSystem;

impl System for HostSystem {
    fn root(&self) -> &Path {
        Path::new("/")
    }
    fn sysctl_set(&self, key: &str, value: &str) -> SysResult<()> {
        run("sysctl", &["-w", &format!("{key}={value}")]).map(drop)
    }
    fn load_module(&self, name: &str) -> SysResult<()> {
        run("modprobe", &[name]).map(drop)
    }
    fn swapoff_all(&self) -> SysResult<()> {
        run("swapoff", &["-a"]).map(drop)
    }
    fn mask_unit(&self, unit: &str) -> SysResult<()> {
        run("systemctl", &["mask", unit]).map(drop)
    }
    fn service_state(&self, unit: &str) -> SysResult<ServiceState> {
        // is-enabled/is-active exit non-zero for "disabled"/"inactive": read stdout only.
        let q = |verb: &str| {
            Command::new("systemctl")
                .args([verb, unit])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .map_err(|e| format!("running systemctl {verb} {unit}: {e}"))
        };
        Ok(ServiceState { enabled: q("is-enabled")? == "enabled", active: q("is-active")? == "active" })
    }
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()> {
        run("systemctl", &[if enabled { "enable" } else { "disable" }, unit]).map(drop)
    }
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()> {
        run("systemctl", &[if running { "start" } else { "stop" }, unit]).map(drop)
    }
    fn restart(&self, unit: &str) -> SysResult<()> {
        run("systemctl", &["restart", unit]).map(drop)
    }
    fn daemon_reload(&self) -> SysResult<()> {
        run("systemctl", &["daemon-reload"]).map(drop)
    }
    fn install_package(&self, name: &str, version: Option<&str>) -> SysResult<()> {
        let spec = match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        };
        run(
            "apt-get",
            &[
                "install",
                "-y",
                "-q",
                "--allow-downgrades",
                "--allow-change-held-packages",
                "-o",
                "Dpkg::Options::=--force-confold",
                &spec,
            ],
        )
        .map(drop)
    }
    fn set_package_hold(&self, name: &str, hold: bool) -> SysResult<()> {
        run("apt-mark", &[if hold { "hold" } else { "unhold" }, name]).map(drop)
    }
}

/// Acts on state files inside a non-`/` root; see the module docs.
pub struct SimulatedSystem {
    pub root: PathBuf,
}

/// On-disk state of simulated systemd.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SimSystemd {
    #[serde(default)]
    pub units: BTreeMap<String, SimUnit>,
    #[serde(default)]
    pub daemon_reloads: u32,
    /// Units whose restart fails (test hook for handler persistence).
    #[serde(default)]
    pub fail_restart: BTreeSet<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SimUnit {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub restarts: u32,
}

pub const SIM_SYSTEMD: &str = "/var/lib/strata-agent/simulated-systemd.json";

impl SimulatedSystem {
    fn systemd_path(&self) -> PathBuf {
        node_path(&self.root, SIM_SYSTEMD)
    }
    pub fn load_systemd(&self) -> SysResult<SimSystemd> {
        let p = self.systemd_path();
        match read_optional(&p).map_err(|e| e.to_string())? {
            None => Ok(SimSystemd::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display())),
        }
    }
    fn update_systemd(&self, f: impl FnOnce(&mut SimSystemd) -> SysResult<()>) -> SysResult<()> {
        let mut s = self.load_systemd()?;
        f(&mut s)?;
        let json = serde_json::to_vec_pretty(&s).map_err(|e| e.to_string())?;
        atomic_write(&self.systemd_path(), &json, 0o644, None).map_err(|e| e.to_string())
    }
    fn write_root_file(&self, rel: &Path, content: &[u8]) -> SysResult<()> {
        atomic_write(&self.root.join(rel), content, 0o644, None).map_err(|e| e.to_string())
    }
    fn edit_dpkg(&self, name: &str, f: impl FnOnce(&mut deb822_lossless::Paragraph)) -> SysResult<()> {
        let p = node_path(&self.root, crate::modules::package::DPKG_STATUS);
        let text = read_optional(&p).map_err(|e| e.to_string())?.unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let mut doc: deb822_lossless::Deb822 = text.parse().map_err(|e| format!("{}: {e:?}", p.display()))?;
        let mut para = match doc.paragraphs().find(|pa| pa.get("Package").as_deref() == Some(name)) {
            Some(pa) => pa,
            None => {
                let mut pa = doc.add_paragraph();
                pa.set("Package", name);
                pa.set("Status", "install ok installed");
                pa.set("Architecture", "amd64");
                pa
            }
        };
        f(&mut para);
        atomic_write(&p, doc.to_string().as_bytes(), 0o644, None).map_err(|e| e.to_string())
    }
}

impl System for SimulatedSystem {
    fn root(&self) -> &Path {
        &self.root
    }
    fn sysctl_set(&self, key: &str, value: &str) -> SysResult<()> {
        let rel = Path::new("proc/sys").join(sysctl_rel_path(key)?);
        self.write_root_file(&rel, format!("{value}\n").as_bytes())
    }
    fn load_module(&self, name: &str) -> SysResult<()> {
        let mut mods: Vec<String> = self.loaded_modules()?.into_iter().collect();
        mods.push(module_name(name));
        let text: String = mods.iter().map(|m| format!("{m} 16384 0 - Live 0x0000000000000000\n")).collect();
        self.write_root_file(Path::new("proc/modules"), text.as_bytes())
    }
    fn swapoff_all(&self) -> SysResult<()> {
        self.write_root_file(Path::new("proc/swaps"), b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
    }
    fn mask_unit(&self, unit: &str) -> SysResult<()> {
        let p = self.root.join("etc/systemd/system").join(unit);
        std::fs::create_dir_all(p.parent().expect("unit path has a parent")).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink("/dev/null", &p).map_err(|e| format!("masking {unit}: {e}"))
    }
    fn service_state(&self, unit: &str) -> SysResult<ServiceState> {
        let s = self.load_systemd()?;
        Ok(s.units.get(unit).map(|u| ServiceState { enabled: u.enabled, active: u.active }).unwrap_or_default())
    }
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()> {
        self.update_systemd(|s| {
            s.units.entry(unit.to_string()).or_default().enabled = enabled;
            Ok(())
        })
    }
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()> {
        self.update_systemd(|s| {
            s.units.entry(unit.to_string()).or_default().active = running;
            Ok(())
        })
    }
    fn restart(&self, unit: &str) -> SysResult<()> {
        self.update_systemd(|s| {
            if s.fail_restart.contains(unit) {
                return Err(format!("simulated restart failure of {unit}"));
            }
            let u = s.units.entry(unit.to_string()).or_default();
            u.active = true;
            u.restarts += 1;
            Ok(())
        })
    }
    fn daemon_reload(&self) -> SysResult<()> {
        self.update_systemd(|s| {
            s.daemon_reloads += 1;
            Ok(())
        })
    }
    fn install_package(&self, name: &str, version: Option<&str>) -> SysResult<()> {
        self.edit_dpkg(name, |p| {
            p.set("Version", version.unwrap_or("0-simulated"));
            let held = p.get("Status").is_some_and(|s| s.starts_with("hold"));
            p.set("Status", if held { "hold ok installed" } else { "install ok installed" });
        })
    }
    fn set_package_hold(&self, name: &str, hold: bool) -> SysResult<()> {
        self.edit_dpkg(name, |p| {
            let rest = p.get("Status").and_then(|s| s.split_once(' ').map(|(_, r)| r.to_string()));
            let rest = rest.unwrap_or_else(|| "ok installed".into());
            p.set("Status", &format!("{} {rest}", if hold { "hold" } else { "install" }));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        assert_eq!(sysctl_rel_path("net.ipv4.ip_forward").unwrap(), PathBuf::from("net/ipv4/ip_forward"));
        assert_eq!(
            sysctl_rel_path("net/ipv4/conf/eth0.10/rp_filter").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.10/rp_filter")
        );
        for bad in ["", "net..x", "../etc/passwd", "a/../../b", "a b", "a=b"] {
            assert!(sysctl_rel_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn simulated_state_roundtrips_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let s = SimulatedSystem { root: d.path().to_path_buf() };
        assert_eq!(s.sysctl_get("vm.swappiness").unwrap(), None);
        s.sysctl_set("vm.swappiness", "0").unwrap();
        assert_eq!(s.sysctl_get("vm.swappiness").unwrap().as_deref(), Some("0"));
        s.load_module("br-netfilter").unwrap();
        assert!(s.loaded_modules().unwrap().contains("br_netfilter"));
        s.set_enabled("kubelet.service", true).unwrap();
        s.restart("kubelet.service").unwrap();
        let st = s.service_state("kubelet.service").unwrap();
        assert!(st.enabled && st.active);
        assert_eq!(s.load_systemd().unwrap().units["kubelet.service"].restarts, 1);
        s.mask_unit("swap.img.swap").unwrap();
        assert!(s.unit_masked("swap.img.swap"));
    }

    #[test]
    fn simulation_refuses_the_host_root_and_its_dpkg_database() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("var/lib/dpkg")).unwrap();
        let e = check_simulation_root(host.path(), host.path()).unwrap_err();
        assert!(e.contains("own root"), "{e}");
        // A tree whose var/lib/dpkg is the host's (as a bind mount would be).
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("var/lib")).unwrap();
        std::os::unix::fs::symlink(host.path().join("var/lib/dpkg"), tree.path().join("var/lib/dpkg")).unwrap();
        let e = check_simulation_root(tree.path(), host.path()).unwrap_err();
        assert!(e.contains("dpkg database"), "{e}");
        // A separate tree, with or without its own dpkg database, is fine.
        std::fs::remove_file(tree.path().join("var/lib/dpkg")).unwrap();
        check_simulation_root(tree.path(), host.path()).unwrap();
        std::fs::create_dir_all(tree.path().join("var/lib/dpkg")).unwrap();
        check_simulation_root(tree.path(), host.path()).unwrap();
    }

    proptest! {
        // Whatever the key, a valid one maps strictly below /proc/sys.
        #[test]
        fn sysctl_path_stays_below_proc_sys(key in "[a-z0-9./_-]{0,20}") {
            if let Ok(p) = sysctl_rel_path(&key) {
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
