//! Container (LXC) config rules as PVE applies them: the parameter tables of the
//! `/nodes/{node}/lxc` endpoints, property strings parsed and printed back the way PVE
//! writes them (`net[n]`, `rootfs`/`mp[n]`, `features`), and the settings only
//! `root@pam` may change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::ApiError;
use crate::params::{self, parse_bool, parse_cidr, parse_prop, verify_table, Fmt, Params, RawParams, Ty};

use Fmt::*;
use Ty::*;

/// Settable container config keys (create and update share them).
const LXC_CONFIG: &[(&str, Ty)] = &[
    ("arch", Enum(&["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"])),
    ("cmode", Enum(&["shell", "console", "tty"])),
    ("console", Bool),
    ("cores", Int(Some(1), Some(8192))),
    ("cpulimit", Num(Some(0.0), Some(8192.0))),
    ("cpuunits", Int(Some(0), Some(500_000))),
    ("debug", Bool),
    ("description", Str(Any)),
    ("dev[n]", Str(Keys(&["deny-write", "gid", "mode", "path", "uid"], Some("path")))),
    ("entrypoint", Str(Any)),
    ("env", Str(Any)),
    ("features", Str(Any)),
    ("hookscript", Str(Any)),
    ("hostname", Str(DnsName)),
    ("memory", Int(Some(16), None)),
    ("mp[n]", Str(Any)),
    ("nameserver", Str(AddressList)),
    ("net[n]", Str(Any)),
    ("onboot", Bool),
    (
        "ostype",
        Enum(&[
            "debian",
            "devuan",
            "ubuntu",
            "centos",
            "fedora",
            "opensuse",
            "archlinux",
            "alpine",
            "gentoo",
            "nixos",
            "unmanaged",
        ]),
    ),
    ("protection", Bool),
    ("rootfs", Str(Any)),
    ("searchdomain", Str(Any)),
    ("startup", Str(Any)),
    ("swap", Int(Some(0), None)),
    ("tags", Str(TagList)),
    ("template", Bool),
    ("timezone", Str(Any)),
    ("tty", Int(Some(0), Some(6))),
    ("unprivileged", Bool),
    ("unused[n]", Str(Any)),
];

const INDEXED: &[(&str, u32)] = &[("net", 31), ("mp", 255), ("unused", 255), ("dev", 255)];

/// A container config key's type (`mp3` matches `mp[n]`).
pub fn config_key_type(key: &str) -> Option<Ty> {
    if let Some((_, ty)) = LXC_CONFIG.iter().find(|(n, _)| *n == key) {
        return Some(*ty);
    }
    let (base, idx) = params::split_indexed(key)?;
    let (_, max) = INDEXED.iter().find(|(b, _)| *b == base)?;
    if idx > *max {
        return None;
    }
    let pattern = format!("{base}[n]");
    LXC_CONFIG.iter().find(|(n, _)| *n == pattern).map(|(_, t)| *t)
}

pub fn is_mount_key(key: &str) -> bool {
    key == "rootfs" || matches!(params::split_indexed(key), Some(("mp", n)) if n <= 255)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ep {
    List,
    Guest,
    ConfigGet,
    Create,
    Update,
    Clone,
    Resize,
    Delete,
    Start,
    Stop,
    Shutdown,
    Reboot,
    Content,
}

const N: (&str, Ty, bool) = ("node", Str(Node), true);
const V: (&str, Ty, bool) = ("vmid", params::VMID, true);

/// Verifies parameters like PVE's schema check, then the property strings PVE
/// checks by format (`net[n]`, mount points, `features`, `startup`, `delete`).
pub fn verify(ep: Ep, raw: &RawParams) -> Result<Params, ApiError> {
    let (extra, with_config): (&[(&str, Ty, bool)], bool) = match ep {
        Ep::List => (&[N], false),
        Ep::Guest => (&[N, V], false),
        Ep::ConfigGet => (&[N, V, ("current", Bool, false), ("snapshot", Str(Any), false)], false),
        Ep::Create => (
            &[
                N,
                V,
                ("ostemplate", Str(Any), true),
                ("bwlimit", Num(Some(0.0), None), false),
                ("force", Bool, false),
                ("ha-managed", Bool, false),
                ("ignore-unpack-errors", Bool, false),
                ("lock", Str(Any), false),
                ("password", Str(Any), false),
                ("pool", Str(PoolId), false),
                ("restore", Bool, false),
                ("ssh-public-keys", Str(Any), false),
                ("start", Bool, false),
                ("storage", Str(StorageId), false),
                ("unique", Bool, false),
            ],
            true,
        ),
        Ep::Update => {
            (&[N, V, ("delete", Str(Any), false), ("digest", Str(Any), false), ("revert", Str(Any), false)], true)
        }
        Ep::Clone => (
            &[
                N,
                V,
                ("newid", params::VMID, true),
                ("bwlimit", Num(Some(0.0), None), false),
                ("description", Str(Any), false),
                ("full", Bool, false),
                ("hostname", Str(DnsName), false),
                ("pool", Str(PoolId), false),
                ("snapname", Str(Any), false),
                ("storage", Str(StorageId), false),
                ("target", Str(Node), false),
            ],
            false,
        ),
        Ep::Resize => (&[N, V, ("disk", Str(Any), true), ("size", Str(Any), true), ("digest", Str(Any), false)], false),
        Ep::Delete => (
            &[N, V, ("destroy-unreferenced-disks", Bool, false), ("force", Bool, false), ("purge", Bool, false)],
            false,
        ),
        Ep::Start => (&[N, V, ("debug", Bool, false), ("skiplock", Bool, false)], false),
        Ep::Stop => (&[N, V, ("overrule-shutdown", Bool, false), ("skiplock", Bool, false)], false),
        Ep::Shutdown => (&[N, V, ("forceStop", Bool, false), ("timeout", params::UINT, false)], false),
        Ep::Reboot => (&[N, V, ("timeout", params::UINT, false)], false),
        Ep::Content => (
            &[N, ("storage", Str(StorageId), true), ("content", Str(Any), false), ("vmid", params::VMID, false)],
            false,
        ),
    };
    let p = verify_table(extra, with_config.then_some(config_key_type as fn(&str) -> Option<Ty>), raw)?;
    let mut errors = BTreeMap::new();
    for (k, v) in &p {
        let r = if k.starts_with("net") && params::split_indexed(k).is_some() {
            parse_net(v).map(|_| ())
        } else if is_mount_key(k) {
            parse_mount(k, v).map(|_| ())
        } else if k == "features" {
            parse_features(v).map(|_| ())
        } else if k == "startup" {
            check_startup(v)
        } else if k == "delete" {
            params::split_list(v)
                .into_iter()
                .find(|d| config_key_type(d).is_none())
                .map_or(Ok(()), |d| Err(format!("invalid configuration ID '{d}'")))
        } else {
            Ok(())
        };
        if let Err(e) = r {
            errors.insert(k.clone(), format!("invalid format - {e}"));
        }
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(ApiError::Params(errors))
    }
}

/// A property string as PVE prints it: the default key's bare value first, then
/// the keys the format requires, then the rest in sorted order.
fn print(default: Option<&str>, required: &[&str], kv: &BTreeMap<String, String>) -> String {
    let mut parts = vec![];
    if let Some(v) = default.and_then(|d| kv.get(d)) {
        parts.push(v.clone());
    }
    for r in required {
        if let Some(v) = kv.get(*r) {
            parts.push(format!("{r}={v}"));
        }
    }
    for (k, v) in kv {
        if Some(k.as_str()) != default && !required.contains(&k.as_str()) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(",")
}

fn to_map(kv: Vec<(String, String)>) -> BTreeMap<String, String> {
    kv.into_iter().collect()
}

fn norm_bool(kv: &mut BTreeMap<String, String>, keys: &[&str]) -> Result<(), String> {
    for k in keys {
        if let Some(v) = kv.get_mut(*k) {
            let b = parse_bool(v).ok_or_else(|| format!("{k}: type check ('boolean') failed - got '{v}'"))?;
            *v = if b { "1" } else { "0" }.into();
        }
    }
    Ok(())
}

const NET_KEYS: &[&str] = &[
    "bridge",
    "firewall",
    "gw",
    "gw6",
    "host-managed",
    "hwaddr",
    "ip",
    "ip6",
    "link_down",
    "mtu",
    "name",
    "rate",
    "tag",
    "trunks",
    "type",
];

/// `net[n]`: `name` is required; `ip` is `dhcp`, `manual` or IPv4/CIDR; booleans
/// become 1/0. Returns the options (without filling in `hwaddr`/`type`).
pub fn parse_net(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut kv = to_map(parse_prop(v, None, NET_KEYS)?);
    if !kv.contains_key("name") {
        return Err("name: property is missing and it is not optional".into());
    }
    norm_bool(&mut kv, &["firewall", "host-managed", "link_down"])?;
    if let Some(ip) = kv.get("ip") {
        let ok = ip == "dhcp" || ip == "manual" || matches!(parse_cidr(ip), Some((std::net::IpAddr::V4(_), _)));
        if !ok {
            return Err(format!(
                "ip: invalid format - value does not look like a valid IPv4 network configuration: {ip}"
            ));
        }
    }
    if let Some(ip6) = kv.get("ip6") {
        let ok = ["dhcp", "auto", "manual"].contains(&ip6.as_str())
            || matches!(parse_cidr(ip6), Some((std::net::IpAddr::V6(_), _)));
        if !ok {
            return Err(format!(
                "ip6: invalid format - value does not look like a valid IPv6 network configuration: {ip6}"
            ));
        }
    }
    if let Some(gw) = kv.get("gw") {
        gw.parse::<Ipv4Addr>()
            .map_err(|_| format!("gw: invalid format - value does not look like a valid IPv4 address: {gw}"))?;
    }
    if let Some(t) = kv.get("tag") {
        match params::parse_int(t) {
            Some(n) if (1..=4094).contains(&n) => {}
            _ => return Err(format!("tag: value must have a minimum value of 1 and a maximum of 4094 - got '{t}'")),
        }
    }
    if let Some(m) = kv.get("hwaddr") {
        if !params::is_mac(m) {
            return Err(format!("hwaddr: invalid format - value does not look like a valid unicast MAC address: {m}"));
        }
    }
    if let Some(t) = kv.get("type") {
        if t != "veth" {
            return Err(format!("type: value '{t}' does not have a value in the enumeration 'veth'"));
        }
    }
    Ok(kv)
}

/// `net[n]` as PVE writes it back: a generated `hwaddr` when none was given,
/// `type=veth`, `name` first and the rest sorted.
pub fn print_net(mut kv: BTreeMap<String, String>, new_mac: impl FnOnce() -> String) -> String {
    kv.entry("hwaddr".into()).or_insert_with(new_mac);
    kv.entry("type".into()).or_insert_with(|| "veth".into());
    print(None, &["name"], &kv)
}

const MOUNT_KEYS: &[&str] =
    &["acl", "backup", "keepattrs", "mountoptions", "mp", "quota", "replicate", "ro", "shared", "size", "volume"];

/// `rootfs` / `mp[n]`: a volume (or `STORAGE:SIZE_GB` to allocate one; for `mp[n]`
/// also a host path, a bind mount) and options; `mp[n]` needs `mp=/absolute/path`.
pub fn parse_mount(key: &str, v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut kv = to_map(parse_prop(v, Some("volume"), MOUNT_KEYS)?);
    if kv.get("volume").is_none_or(|v| v.is_empty()) {
        return Err("volume: property is missing and it is not optional".into());
    }
    if key == "rootfs" {
        if kv.remove("mp").is_some() {
            return Err("format error - unknown key 'mp'".into());
        }
    } else {
        match kv.get("mp") {
            Some(p) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => {}
            Some(p) => return Err(format!("mp: invalid format - value does not look like a valid path: {p}")),
            None => return Err("mp: property is missing and it is not optional".into()),
        }
    }
    norm_bool(&mut kv, &["acl", "backup", "keepattrs", "quota", "replicate", "ro", "shared"])?;
    if let Some(s) = kv.get("size") {
        params::parse_size(s).ok_or_else(|| format!("size: unable to parse size '{s}'"))?;
    }
    Ok(kv)
}

pub fn print_mount(kv: &BTreeMap<String, String>) -> String {
    print(Some("volume"), &["mp"], kv)
}

/// `STORAGE:SIZE_GB` (allocation syntax) -> (storage, GiB).
pub fn alloc_request(volume: &str) -> Option<(&str, f64)> {
    let (storage, size) = volume.split_once(':')?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some((storage, size.parse().ok()?))
}

pub const FEATURE_BOOLS: &[&str] = &["force_rw_sys", "fuse", "keyctl", "mknod", "nesting"];

/// `features`: boolean flags plus `mount=fs1;fs2`, printed back sorted with 1/0.
pub fn parse_features(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut keys = FEATURE_BOOLS.to_vec();
    keys.push("mount");
    let mut kv = to_map(parse_prop(v, None, &keys)?);
    norm_bool(&mut kv, FEATURE_BOOLS)?;
    Ok(kv)
}

pub fn print_features(kv: &BTreeMap<String, String>) -> String {
    print(None, &[], kv)
}

fn check_startup(v: &str) -> Result<(), String> {
    for (k, val) in parse_prop(v, Some("order"), &["order", "up", "down"])? {
        if params::parse_int(&val).is_none_or(|n| n < 0) {
            return Err(format!("{k}: type check ('integer') failed - got '{val}'"));
        }
    }
    Ok(())
}

/// The flags that differ between two `features` values (absent counts as off).
fn changed_features(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let parse = |v: Option<&str>| v.and_then(|v| parse_features(v).ok()).unwrap_or_default();
    let (a, b) = (parse(old), parse(new));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let off = |m: &BTreeMap<String, String>, k: &str| m.get(k).map(String::as_str).unwrap_or("0").to_string();
    keys.into_iter().filter(|k| off(&a, k) != off(&b, k)).cloned().collect()
}

/// PVE's `check_ct_modify_config_perm` for a user other than `root@pam` (API tokens
/// included, even root's): what it refuses, with its words. `old` is the current
/// config (`None` on create); `unprivileged` the container's mode.
pub fn root_only_refusal(
    old: Option<&BTreeMap<String, String>>,
    new: &Params,
    deletes: &[&str],
    unprivileged: bool,
) -> Option<String> {
    for (k, v) in new {
        if is_mount_key(k) {
            let path_volume =
                parse_mount(k, v).ok().and_then(|m| m.get("volume").cloned()).is_some_and(|v| v.starts_with('/'));
            if path_volume {
                return Some("Only root can pass arbitrary filesystem paths.".into());
            }
        }
    }
    let features_touched = new.contains_key("features") || deletes.contains(&"features");
    if features_touched {
        let before = old.and_then(|c| c.get("features")).map(String::as_str);
        let after = if deletes.contains(&"features") { None } else { new.get("features").map(String::as_str) };
        let changed = changed_features(before, after);
        if !changed.is_empty() && !unprivileged {
            return Some("changing feature flags for privileged container is only allowed for root@pam".into());
        }
        if changed.iter().any(|f| f != "nesting") {
            return Some("changing feature flags (except nesting) is only allowed for root@pam".into());
        }
    }
    None
}

/// OS templates in `local` (content `vztmpl`), as on a node that downloaded some.
pub const OS_TEMPLATES: &[(&str, u64)] = &[
    ("local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz", 3_152_612),
    ("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", 126_030_080),
    ("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst", 141_589_554),
];

/// `ostype` PVE derives from a template's file name.
pub fn ostype_of(template: &str) -> &'static str {
    let name = template.rsplit('/').next().unwrap_or(template);
    for t in ["debian", "ubuntu", "alpine", "centos", "fedora", "archlinux", "devuan", "gentoo", "opensuse", "nixos"] {
        if name.starts_with(t) {
            return t;
        }
    }
    "unmanaged"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawParams {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn net_prints_name_first_and_fills_what_pve_adds() {
        let kv = parse_net("bridge=vmbr0,ip=dhcp,name=eth0,firewall=true").unwrap();
        let printed = print_net(kv, || "BC:24:11:00:00:01".into());
        assert_eq!(printed, "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth");
        assert!(parse_net("bridge=vmbr0").unwrap_err().contains("name"));
        assert!(parse_net("name=eth0,ip=10.0.0.5").unwrap_err().contains("ip"));
    }

    #[test]
    fn features_and_mounts_normalise() {
        assert_eq!(print_features(&parse_features("nesting=true,keyctl=1").unwrap()), "keyctl=1,nesting=1");
        let m = parse_mount("mp0", "local-lvm:vm-100-disk-1,size=8G,mp=/data,backup=yes").unwrap();
        assert_eq!(print_mount(&m), "local-lvm:vm-100-disk-1,mp=/data,backup=1,size=8G");
        assert!(parse_mount("mp0", "local-lvm:8").is_err());
        assert_eq!(alloc_request("local-lvm:8"), Some(("local-lvm", 8.0)));
    }

    #[test]
    fn only_nesting_is_open_to_tokens() {
        let p = |f: &str| Params::from([("features".to_string(), f.to_string())]);
        assert_eq!(root_only_refusal(None, &p("nesting=1"), &[], true), None);
        let keyctl = root_only_refusal(None, &p("nesting=1,keyctl=1"), &[], true).unwrap();
        assert_eq!(keyctl, "changing feature flags (except nesting) is only allowed for root@pam");
        let privileged = root_only_refusal(None, &p("nesting=1"), &[], false).unwrap();
        assert!(privileged.contains("privileged container"));
        let old = BTreeMap::from([("features".to_string(), "keyctl=1,nesting=1".to_string())]);
        assert_eq!(root_only_refusal(Some(&old), &p("keyctl=1,nesting=0"), &[], true), None);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = verify(Ep::Create, &raw(&[("node", "pve1"), ("vmid", "100"), ("ostemplate", "x"), ("memory", "8")]))
            .unwrap_err();
        assert!(e.message().contains("Parameter verification failed"), "{e:?}");
        let ApiError::Params(m) = e else { panic!() };
        assert!(m["memory"].contains("minimum value of 16"));
        let e = verify(Ep::Update, &raw(&[("node", "pve1"), ("vmid", "100"), ("net0", "name=eth0,ip=x")])).unwrap_err();
        let ApiError::Params(m) = e else { panic!() };
        assert!(m["net0"].contains("ip"));
    }
}
