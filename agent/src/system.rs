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

/// What systemd says about a unit: `systemctl is-enabled` and the
/// properties of `systemctl show -p` [`SHOW_PROPERTIES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// The word `systemctl is-enabled` prints: enabled, enabled-runtime,
    /// disabled, static, alias, indirect, generated, linked, linked-runtime,
    /// masked, masked-runtime, transient; `not-found` when there is no unit file.
    pub unit_file_state: String,
    /// ActiveState: active, inactive, failed, activating, deactivating, reloading.
    pub active_state: String,
    /// Type (simple, exec, forking, oneshot, notify, ...), empty when unknown.
    pub service_type: String,
    /// Result of the last run: success, exit-code, ...
    pub result: String,
    pub remain_after_exit: bool,
    /// The main process was started since boot (ExecMainStartTimestampMonotonic
    /// is not 0): tells "a oneshot ran and succeeded" from "never ran".
    pub started_since_boot: bool,
}

pub const SHOW_PROPERTIES: &str = "Type,ActiveState,SubState,Result,RemainAfterExit,ExecMainStartTimestampMonotonic";

impl ServiceState {
    /// From `systemctl is-enabled UNIT` stdout and `systemctl show -p ... UNIT` stdout.
    pub fn parse(is_enabled: &str, show: &str) -> ServiceState {
        let mut st = ServiceState {
            unit_file_state: is_enabled.lines().next().unwrap_or("").trim().to_string(),
            ..Default::default()
        };
        if st.unit_file_state.is_empty() {
            st.unit_file_state = "not-found".into();
        }
        for line in show.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            match k {
                "Type" => st.service_type = v.to_string(),
                "ActiveState" => st.active_state = v.to_string(),
                "Result" => st.result = v.to_string(),
                "RemainAfterExit" => st.remain_after_exit = v == "yes",
                "ExecMainStartTimestampMonotonic" => st.started_since_boot = !matches!(v, "" | "0"),
                _ => {}
            }
        }
        st
    }
    pub fn masked(&self) -> bool {
        self.unit_file_state.starts_with("masked")
    }
    /// Running, starting, or a oneshot (without RemainAfterExit) that already
    /// ran successfully since boot: starting it again would re-run it.
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "activating" | "reloading")
            || (self.service_type == "oneshot"
                && !self.remain_after_exit
                && self.active_state == "inactive"
                && self.result == "success"
                && self.started_since_boot)
    }
    pub fn is_stopped(&self) -> bool {
        matches!(self.active_state.as_str(), "inactive" | "failed" | "deactivating" | "")
    }
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

    /// Modules built into the running kernel (`/lib/modules/<release>/modules.builtin`,
    /// release from `/proc/sys/kernel/osrelease`): they never show in
    /// `/proc/modules` but are always there.
    fn builtin_modules(&self) -> SysResult<BTreeSet<String>> {
        let rel = self.root().join("proc/sys/kernel/osrelease");
        let Some(release) = read_optional(&rel).map_err(|e| format!("reading {}: {e}", rel.display()))? else {
            return Ok(BTreeSet::new());
        };
        let release = String::from_utf8_lossy(&release).trim().to_string();
        if release.is_empty() || release.contains('/') {
            return Ok(BTreeSet::new());
        }
        let p = self.root().join("lib/modules").join(&release).join("modules.builtin");
        let text = read_optional(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        Ok(text
            .map(|t| {
                String::from_utf8_lossy(&t)
                    .lines()
                    .filter_map(|l| l.trim().rsplit('/').next())
                    .filter_map(|f| f.strip_suffix(".ko"))
                    .map(module_name)
                    .collect()
            })
            .unwrap_or_default())
    }

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
    fn unmask_unit(&self, unit: &str) -> SysResult<()>;

    fn service_state(&self, unit: &str) -> SysResult<ServiceState>;
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()>;
    /// Removes an enablement made for this boot only (`enabled-runtime`),
    /// which a plain `disable` leaves in place.
    fn disable_runtime(&self, unit: &str) -> SysResult<()>;
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()>;
    /// Restart the unit if it is running; a unit stopped on purpose stays stopped.
    fn try_restart(&self, unit: &str) -> SysResult<()>;
    fn daemon_reload(&self) -> SysResult<()>;

    /// Age of apt's package lists (newest file in /var/lib/apt/lists), `None`
    /// when there are none.
    fn apt_lists_age(&self) -> SysResult<Option<std::time::Duration>> {
        let dir = self.root().join("var/lib/apt/lists");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", dir.display())),
        };
        let newest = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                // Index files only: not `lock`, `partial/`, `auxfiles/`.
                n.ends_with("_Packages") || n.ends_with("Release") || n.contains("_Packages.")
            })
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max();
        Ok(newest.map(|t| std::time::SystemTime::now().duration_since(t).unwrap_or_default()))
    }
    fn apt_update(&self, opts: &AptOptions) -> SysResult<()>;
    fn install_package(&self, name: &str, version: Option<&str>, opts: &AptOptions) -> SysResult<()>;
    fn set_package_hold(&self, name: &str, hold: bool) -> SysResult<()>;
}

/// How apt is run; from the spec's `apt` block and the package's own options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptOptions {
    /// Seconds to wait for the dpkg lock (`-o DPkg::Lock::Timeout=N`).
    pub lock_timeout: u32,
    pub allow_downgrades: bool,
    pub allow_change_held_packages: bool,
}

impl AptOptions {
    fn lock(&self) -> String {
        format!("DPkg::Lock::Timeout={}", self.lock_timeout)
    }
    /// `apt-get update` arguments.
    pub fn update_args(&self) -> Vec<String> {
        vec!["-q".into(), "-o".into(), self.lock(), "update".into()]
    }
    /// `apt-get install` arguments for `name[=version]`.
    pub fn install_args(&self, name: &str, version: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = vec!["-q".into(), "-y".into(), "-o".into(), self.lock()];
        // Keep the admin's edited conffiles; take the package's for untouched ones.
        a.extend(["-o".into(), "Dpkg::Options::=--force-confdef".into()]);
        a.extend(["-o".into(), "Dpkg::Options::=--force-confold".into()]);
        if self.allow_downgrades {
            a.push("--allow-downgrades".into());
        }
        if self.allow_change_held_packages {
            a.push("--allow-change-held-packages".into());
        }
        a.push("install".into());
        a.push(match version {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        });
        a
    }
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

/// The live system (whatever `--root` the files go to).
#[derive(Debug, Clone, Default)]
pub struct HostSystem {
    /// `PATH` for the commands run; `None` = inherited. Tests point it at
    /// fake `systemctl`/`apt-get` that record their command lines.
    pub path: Option<std::ffi::OsString>,
}

impl HostSystem {
    fn command(&self, cmd: &str, args: &[&str]) -> Command {
        let mut c = Command::new(cmd);
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(p) = &self.path {
            c.env("PATH", p);
        }
        c
    }
    fn run(&self, cmd: &str, args: &[&str]) -> SysResult<String> {
        let out = self.command(cmd, args).output().map_err(|e| format!("running {cmd}: {e}"))?;
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
    /// stdout only, whatever the exit status (`is-enabled` exits 1 for "disabled").
    fn query(&self, cmd: &str, args: &[&str]) -> SysResult<String> {
        let out = self.command(cmd, args).output().map_err(|e| format!("running {cmd} {}: {e}", args.join(" ")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
    fn run_owned(&self, cmd: &str, args: &[String]) -> SysResult<String> {
        self.run(cmd, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl System for HostSystem {
    fn root(&self) -> &Path {
        Path::new("/")
    }
    fn sysctl_set(&self, key: &str, value: &str) -> SysResult<()> {
        self.run("sysctl", &["-w", &format!("{key}={value}")]).map(drop)
    }
    fn load_module(&self, name: &str) -> SysResult<()> {
        self.run("modprobe", &[name]).map(drop)
    }
    fn swapoff_all(&self) -> SysResult<()> {
        self.run("swapoff", &["-a"]).map(drop)
    }
    fn mask_unit(&self, unit: &str) -> SysResult<()> {
        self.run("systemctl", &["mask", unit]).map(drop)
    }
    fn unmask_unit(&self, unit: &str) -> SysResult<()> {
        self.run("systemctl", &["unmask", unit]).map(drop)
    }
    fn service_state(&self, unit: &str) -> SysResult<ServiceState> {
        let enabled = self.query("systemctl", &["is-enabled", unit])?;
        let show = self.run("systemctl", &["show", "-p", SHOW_PROPERTIES, unit])?;
        Ok(ServiceState::parse(&enabled, &show))
    }
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()> {
        self.run("systemctl", &[if enabled { "enable" } else { "disable" }, unit]).map(drop)
    }
    fn disable_runtime(&self, unit: &str) -> SysResult<()> {
        self.run("systemctl", &["disable", "--runtime", unit]).map(drop)
    }
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()> {
        self.run("systemctl", &[if running { "start" } else { "stop" }, unit]).map(drop)
    }
    fn try_restart(&self, unit: &str) -> SysResult<()> {
        // A unit that is not installed (kubelet before its package) has nothing to
        // restart; it reads the new configuration when it first starts. systemctl
        // itself fails there (exit 5).
        if self.query("systemctl", &["show", "-p", "LoadState", "--value", unit])?.trim() == "not-found" {
            return Ok(());
        }
        self.run("systemctl", &["try-restart", unit]).map(drop)
    }
    fn daemon_reload(&self) -> SysResult<()> {
        self.run("systemctl", &["daemon-reload"]).map(drop)
    }
    fn apt_update(&self, opts: &AptOptions) -> SysResult<()> {
        self.run_owned("apt-get", &opts.update_args()).map(drop)
    }
    fn install_package(&self, name: &str, version: Option<&str>, opts: &AptOptions) -> SysResult<()> {
        self.run_owned("apt-get", &opts.install_args(name, version)).map(drop)
    }
    fn set_package_hold(&self, name: &str, hold: bool) -> SysResult<()> {
        self.run("apt-mark", &[if hold { "hold" } else { "unhold" }, name]).map(drop)
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
    /// Times started (a oneshot's runs).
    #[serde(default)]
    pub starts: u32,
    /// Test hook: an `is-enabled` word other than enabled/disabled (static, alias, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_file_state: Option<String>,
    /// Test hook: the unit's Type (e.g. "oneshot").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default)]
    pub remain_after_exit: bool,
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
    fn unmask_unit(&self, unit: &str) -> SysResult<()> {
        if self.unit_masked(unit) {
            std::fs::remove_file(self.root.join("etc/systemd/system").join(unit))
                .map_err(|e| format!("unmasking {unit}: {e}"))?;
        }
        Ok(())
    }
    fn service_state(&self, unit: &str) -> SysResult<ServiceState> {
        let s = self.load_systemd()?;
        let u = s.units.get(unit).cloned().unwrap_or_default();
        let unit_file_state = if self.unit_masked(unit) {
            "masked".to_string()
        } else if let Some(w) = u.unit_file_state.clone() {
            w
        } else {
            if u.enabled { "enabled" } else { "disabled" }.to_string()
        };
        Ok(ServiceState {
            unit_file_state,
            active_state: if u.active { "active" } else { "inactive" }.into(),
            service_type: u.service_type.clone().unwrap_or_else(|| "simple".into()),
            result: "success".into(),
            remain_after_exit: u.remain_after_exit,
            started_since_boot: u.starts > 0,
        })
    }
    fn set_enabled(&self, unit: &str, enabled: bool) -> SysResult<()> {
        if self.unit_masked(unit) {
            return Err(format!("Unit {unit} is masked."));
        }
        self.update_systemd(|s| {
            let u = s.units.entry(unit.to_string()).or_default();
            u.enabled = enabled;
            // A persistent enable shows as "enabled"; disable leaves a runtime one.
            if enabled && u.unit_file_state.as_deref() == Some("enabled-runtime") {
                u.unit_file_state = None;
            }
            Ok(())
        })
    }
    fn disable_runtime(&self, unit: &str) -> SysResult<()> {
        self.update_systemd(|s| {
            let u = s.units.entry(unit.to_string()).or_default();
            if u.unit_file_state.as_deref() == Some("enabled-runtime") {
                u.unit_file_state = None;
            }
            Ok(())
        })
    }
    fn set_running(&self, unit: &str, running: bool) -> SysResult<()> {
        if running && self.unit_masked(unit) {
            return Err(format!("Unit {unit} is masked."));
        }
        self.update_systemd(|s| {
            let u = s.units.entry(unit.to_string()).or_default();
            if running {
                u.starts += 1;
                // A oneshot without RemainAfterExit runs and is inactive again.
                u.active = u.service_type.as_deref() != Some("oneshot") || u.remain_after_exit;
            } else {
                u.active = false;
            }
            Ok(())
        })
    }
    fn try_restart(&self, unit: &str) -> SysResult<()> {
        self.update_systemd(|s| {
            if s.fail_restart.contains(unit) {
                return Err(format!("simulated restart failure of {unit}"));
            }
            match s.units.get_mut(unit) {
                Some(u) if u.active => {
                    u.restarts += 1;
                    u.starts += 1;
                }
                _ => {}
            }
            Ok(())
        })
    }
    fn daemon_reload(&self) -> SysResult<()> {
        self.update_systemd(|s| {
            s.daemon_reloads += 1;
            Ok(())
        })
    }
    fn apt_update(&self, _opts: &AptOptions) -> SysResult<()> {
        // Fresh lists, as apt-get update leaves them; the count is for tests.
        let p = Path::new("var/lib/apt/lists/simulated_Packages");
        let n = read_optional(&self.root.join(p))
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<u32>().ok())
            .unwrap_or(0);
        self.write_root_file(p, format!("{}\n", n + 1).as_bytes())
    }
    fn install_package(&self, name: &str, version: Option<&str>, _opts: &AptOptions) -> SysResult<()> {
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
        s.try_restart("kubelet.service").unwrap();
        assert_eq!(s.load_systemd().unwrap().units["kubelet.service"].restarts, 0, "not running: not started");
        s.set_running("kubelet.service", true).unwrap();
        s.try_restart("kubelet.service").unwrap();
        let st = s.service_state("kubelet.service").unwrap();
        assert!(st.unit_file_state == "enabled" && st.is_running());
        assert_eq!(s.load_systemd().unwrap().units["kubelet.service"].restarts, 1);
        s.mask_unit("swap.img.swap").unwrap();
        assert!(s.unit_masked("swap.img.swap"));
    }

    /// Command lines only: fake `systemctl`/`apt-get`/`apt-mark` on PATH record
    /// their arguments. This checks what the agent would run on a real host,
    /// not that systemd or apt behave; that is proven on the lab's systemd nodes.
    #[test]
    fn host_command_lines() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("log");
        for cmd in ["systemctl", "apt-get", "apt-mark"] {
            let script = format!(
                "#!/bin/sh\necho \"$DEBIAN_FRONTEND {cmd} $*\" >> {log}\n\
                 case \"$1\" in is-enabled) echo static; exit 0;; show) printf 'Type=oneshot\\nActiveState=inactive\\nResult=success\\nRemainAfterExit=no\\nExecMainStartTimestampMonotonic=42\\n';; esac\n",
                log = log.display()
            );
            let p = bin.path().join(cmd);
            std::fs::write(&p, script).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let h = HostSystem { path: Some(bin.path().as_os_str().to_owned()) };
        let st = h.service_state("setup.service").unwrap();
        assert_eq!(st.unit_file_state, "static");
        assert!(st.is_running(), "{st:?}");
        h.try_restart("containerd.service").unwrap();
        h.unmask_unit("kubelet.service").unwrap();
        h.disable_runtime("kubelet.service").unwrap();
        let plain = AptOptions { lock_timeout: 120, ..Default::default() };
        h.apt_update(&plain).unwrap();
        h.install_package("kubelet", Some("1.35.0-1.1"), &plain).unwrap();
        let both = AptOptions { lock_timeout: 5, allow_downgrades: true, allow_change_held_packages: true };
        h.install_package("containerd", None, &both).unwrap();
        h.set_package_hold("kubelet", true).unwrap();
        let got = std::fs::read_to_string(&log).unwrap();
        let want = "noninteractive systemctl is-enabled setup.service
noninteractive systemctl show -p Type,ActiveState,SubState,Result,RemainAfterExit,ExecMainStartTimestampMonotonic setup.service
noninteractive systemctl show -p LoadState --value containerd.service
noninteractive systemctl try-restart containerd.service
noninteractive systemctl unmask kubelet.service
noninteractive systemctl disable --runtime kubelet.service
noninteractive apt-get -q -o DPkg::Lock::Timeout=120 update
noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install kubelet=1.35.0-1.1
noninteractive apt-get -q -y -o DPkg::Lock::Timeout=5 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --allow-downgrades --allow-change-held-packages install containerd
noninteractive apt-mark hold kubelet
";
        assert_eq!(got, want);
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
