//! Parameter verification modelled on PVE's JSONSchema checks.
//!
//! The tables below are a compact re-encoding (names, types, ranges) of the
//! parameters of the endpoints the simulator implements, derived from the PVE
//! 9.1 API schema. Unknown parameters and malformed values produce the same
//! shape as PVE: HTTP 400 "Parameter verification failed." with an `errors`
//! map keyed by parameter name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ApiError;

/// Raw request parameters (query + body), in arrival order.
pub type RawParams = Vec<(String, String)>;
/// Verified parameters; booleans normalised to "1"/"0" like PVE does.
pub type Params = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Bool,
    Int(Option<i64>, Option<i64>),
    Num(Option<f64>, Option<f64>),
    Enum(&'static [&'static str]),
    Str(Fmt),
}

#[derive(Clone, Copy, Debug)]
pub enum Fmt {
    /// No format check (free text, or a PVE format the sim does not model).
    Any,
    Node,
    DnsName,
    AddressList,
    UrlEncoded,
    TagList,
    PoolId,
    StorageId,
    ConfigIdList,
    Memory,
    Net,
    Drive,
    IpConfig,
    Agent,
    Cpu,
    /// Property string: only the key names are checked.
    Keys(&'static [&'static str], Option<&'static str>),
}

use Fmt::*;
use Ty::*;

pub(crate) const VMID: Ty = Int(Some(100), Some(999_999_999));
pub(crate) const UINT: Ty = Int(Some(0), None);
const POS: Ty = Int(Some(1), None);

/// Indexed config keys (`net[n]`) and their highest index.
pub const INDEXED: &[(&str, u32)] = &[
    ("net", 31),
    ("scsi", 30),
    ("virtio", 15),
    ("sata", 5),
    ("ide", 3),
    ("ipconfig", 31),
    ("unused", 255),
    ("serial", 3),
    ("parallel", 2),
    ("usb", 13),
    ("hostpci", 15),
    ("numa", 7),
    ("virtiofs", 9),
];

pub const DISK_BUSES: &[&str] = &["scsi", "virtio", "sata", "ide"];

const LOCKS: &[&str] =
    &["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"];

/// Settable VM configuration keys (shared by create and config update).
const QEMU_CONFIG: &[(&str, Ty)] = &[
    ("acpi", Bool),
    ("affinity", Str(Any)),
    ("agent", Str(Agent)),
    ("allow-ksm", Bool),
    ("amd-sev", Str(Any)),
    ("arch", Enum(&["x86_64", "aarch64"])),
    ("args", Str(Any)),
    ("audio0", Str(Keys(&["device", "driver"], None))),
    ("autostart", Bool),
    ("balloon", UINT),
    ("bios", Enum(&["seabios", "ovmf"])),
    ("boot", Str(Any)),
    ("bootdisk", Str(Any)),
    ("cdrom", Str(Drive)),
    ("cicustom", Str(Any)),
    ("cipassword", Str(Any)),
    ("citype", Enum(&["configdrive2", "nocloud", "opennebula"])),
    ("ciupgrade", Bool),
    ("ciuser", Str(Any)),
    ("cores", POS),
    ("cpu", Str(Cpu)),
    ("cpulimit", Num(Some(0.0), Some(128.0))),
    ("cpuunits", Int(Some(1), Some(262_144))),
    ("description", Str(Any)),
    (
        "efidisk0",
        Str(Keys(
            &["efitype", "file", "format", "import-from", "ms-cert", "pre-enrolled-keys", "size", "volume"],
            Some("file"),
        )),
    ),
    ("freeze", Bool),
    ("hookscript", Str(Any)),
    ("hostpci[n]", Str(Any)),
    ("hotplug", Str(Any)),
    ("hugepages", Enum(&["any", "2", "1024"])),
    ("ide[n]", Str(Drive)),
    ("intel-tdx", Str(Any)),
    ("ipconfig[n]", Str(IpConfig)),
    ("ivshmem", Str(Keys(&["name", "size"], None))),
    ("keephugepages", Bool),
    (
        "keyboard",
        Enum(&[
            "de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja",
            "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr",
        ]),
    ),
    ("kvm", Bool),
    ("localtime", Bool),
    ("lock", Enum(LOCKS)),
    ("machine", Str(Keys(&["aw-bits", "enable-s3", "enable-s4", "type", "viommu"], Some("type")))),
    ("memory", Str(Memory)),
    ("migrate_downtime", Num(Some(0.0), None)),
    ("migrate_speed", UINT),
    ("name", Str(DnsName)),
    ("nameserver", Str(AddressList)),
    ("net[n]", Str(Net)),
    ("numa", Bool),
    ("numa[n]", Str(Keys(&["cpus", "hostnodes", "memory", "policy"], None))),
    ("onboot", Bool),
    (
        "ostype",
        Enum(&[
            "other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris",
        ]),
    ),
    ("parallel[n]", Str(Any)),
    ("protection", Bool),
    ("reboot", Bool),
    ("rng0", Str(Any)),
    ("sata[n]", Str(Drive)),
    ("scsi[n]", Str(Drive)),
    ("scsihw", Enum(&["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"])),
    ("searchdomain", Str(Any)),
    ("serial[n]", Str(Any)),
    ("shares", Int(Some(0), Some(50_000))),
    ("smbios1", Str(Any)),
    ("smp", POS),
    ("sockets", POS),
    ("spice_enhancements", Str(Keys(&["foldersharing", "videostreaming"], None))),
    ("sshkeys", Str(UrlEncoded)),
    ("startdate", Str(Any)),
    ("startup", Str(Any)),
    ("tablet", Bool),
    ("tags", Str(TagList)),
    ("tdf", Bool),
    ("template", Bool),
    ("tpmstate0", Str(Keys(&["file", "format", "import-from", "size", "version", "volume"], Some("file")))),
    ("unused[n]", Str(Keys(&["file", "volume"], Some("file")))),
    ("usb[n]", Str(Keys(&["host", "mapping", "usb3"], Some("host")))),
    ("vcpus", POS),
    ("vga", Str(Keys(&["clipboard", "memory", "type"], Some("type")))),
    ("virtio[n]", Str(Drive)),
    ("virtiofs[n]", Str(Keys(&["cache", "direct-io", "dirid", "expose-acl", "expose-xattr"], Some("dirid")))),
    ("vmgenid", Str(Any)),
    ("vmstatestorage", Str(StorageId)),
    ("watchdog", Str(Any)),
];

/// Which endpoint's parameter set to verify against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    NodeOnly,
    VmOnly,
    VmList,
    VmConfigGet,
    Create,
    ConfigPut,
    ConfigPost,
    Clone,
    Resize,
    Delete,
    Start,
    Stop,
    Shutdown,
    Reboot,
    NextId,
    Resources,
    TaskStatus,
    TaskLog,
    Storage,
    Ticket,
    PoolCreate,
    PoolUpdate,
    Migrate,
    AgentFileRead,
    NoParams,
}

struct Spec {
    /// (name, type, required)
    extra: &'static [(&'static str, Ty, bool)],
    with_config: bool,
}

fn spec(ep: Endpoint) -> Spec {
    use Endpoint as E;
    const N: (&str, Ty, bool) = ("node", Str(Node), true);
    const V: (&str, Ty, bool) = ("vmid", VMID, true);
    let (extra, with_config): (&'static [(&'static str, Ty, bool)], bool) = match ep {
        E::NoParams => (&[], false),
        E::NodeOnly => (&[N], false),
        E::VmOnly => (&[N, V], false),
        E::VmList => (&[N, ("full", Bool, false)], false),
        E::VmConfigGet => (&[N, V, ("current", Bool, false), ("snapshot", Str(Any), false)], false),
        E::Create => (
            &[
                N,
                V,
                ("archive", Str(Any), false),
                ("bwlimit", UINT, false),
                ("force", Bool, false),
                ("ha-managed", Bool, false),
                ("import-working-storage", Str(StorageId), false),
                ("live-restore", Bool, false),
                ("pool", Str(PoolId), false),
                ("start", Bool, false),
                ("storage", Str(StorageId), false),
                ("unique", Bool, false),
            ],
            true,
        ),
        E::ConfigPut => (
            &[
                N,
                V,
                ("delete", Str(ConfigIdList), false),
                ("digest", Str(Any), false),
                ("force", Bool, false),
                ("revert", Str(ConfigIdList), false),
                ("skiplock", Bool, false),
            ],
            true,
        ),
        E::ConfigPost => (
            &[
                N,
                V,
                ("background_delay", Int(Some(1), Some(30)), false),
                ("delete", Str(ConfigIdList), false),
                ("digest", Str(Any), false),
                ("force", Bool, false),
                ("revert", Str(ConfigIdList), false),
                ("skiplock", Bool, false),
            ],
            true,
        ),
        E::Clone => (
            &[
                N,
                V,
                ("newid", VMID, true),
                ("bwlimit", UINT, false),
                ("description", Str(Any), false),
                ("format", Enum(&["raw", "qcow2", "vmdk"]), false),
                ("full", Bool, false),
                ("name", Str(DnsName), false),
                ("pool", Str(PoolId), false),
                ("snapname", Str(Any), false),
                ("storage", Str(StorageId), false),
                ("target", Str(Node), false),
            ],
            false,
        ),
        E::Resize => (
            &[
                N,
                V,
                ("disk", Str(Any), true),
                ("size", Str(Any), true),
                ("digest", Str(Any), false),
                ("skiplock", Bool, false),
            ],
            false,
        ),
        E::Delete => (
            &[N, V, ("destroy-unreferenced-disks", Bool, false), ("purge", Bool, false), ("skiplock", Bool, false)],
            false,
        ),
        E::Start => (
            &[
                N,
                V,
                ("force-cpu", Str(Any), false),
                ("machine", Str(Any), false),
                ("migratedfrom", Str(Node), false),
                ("migration_network", Str(Any), false),
                ("migration_type", Enum(&["secure", "insecure"]), false),
                ("nets-host-mtu", Str(Any), false),
                ("skiplock", Bool, false),
                ("stateuri", Str(Any), false),
                ("targetstorage", Str(Any), false),
                ("timeout", UINT, false),
                ("with-conntrack-state", Bool, false),
            ],
            false,
        ),
        E::Stop => (
            &[
                N,
                V,
                ("keepActive", Bool, false),
                ("migratedfrom", Str(Node), false),
                ("overrule-shutdown", Bool, false),
                ("skiplock", Bool, false),
                ("timeout", UINT, false),
            ],
            false,
        ),
        E::Shutdown => (
            &[
                N,
                V,
                ("forceStop", Bool, false),
                ("keepActive", Bool, false),
                ("skiplock", Bool, false),
                ("timeout", UINT, false),
            ],
            false,
        ),
        E::Reboot => (&[N, V, ("timeout", UINT, false)], false),
        E::AgentFileRead => (&[N, V, ("file", Str(Any), true), ("max-bytes", UINT, false)], false),
        E::NextId => (&[("vmid", VMID, false)], false),
        E::Resources => (&[("type", Enum(&["vm", "storage", "node", "sdn"]), false)], false),
        E::TaskStatus => (&[N, ("upid", Str(Any), true)], false),
        E::TaskLog => (
            &[N, ("upid", Str(Any), true), ("download", Bool, false), ("limit", UINT, false), ("start", UINT, false)],
            false,
        ),
        E::Storage => (
            &[
                N,
                ("content", Str(Any), false),
                ("enabled", Bool, false),
                ("format", Bool, false),
                ("storage", Str(StorageId), false),
                ("target", Str(Node), false),
            ],
            false,
        ),
        E::Ticket => (
            &[
                ("username", Str(Any), true),
                ("password", Str(Any), true),
                ("new-format", Bool, false),
                ("otp", Str(Any), false),
                ("path", Str(Any), false),
                ("privs", Str(Any), false),
                ("realm", Str(Any), false),
                ("tfa-challenge", Str(Any), false),
            ],
            false,
        ),
        E::PoolCreate => (&[("poolid", Str(PoolId), true), ("comment", Str(Any), false)], false),
        E::PoolUpdate => (
            &[
                ("poolid", Str(PoolId), true),
                ("allow-move", Bool, false),
                ("comment", Str(Any), false),
                ("delete", Bool, false),
                ("storage", Str(Any), false),
                ("vms", Str(Any), false),
            ],
            false,
        ),
        E::Migrate => (
            &[
                N,
                V,
                ("target", Str(Node), true),
                ("bwlimit", UINT, false),
                ("force", Bool, false),
                ("migration_network", Str(Any), false),
                ("migration_type", Enum(&["secure", "insecure"]), false),
                ("online", Bool, false),
                ("targetstorage", Str(Any), false),
                ("with-conntrack-state", Bool, false),
                ("with-local-disks", Bool, false),
            ],
            false,
        ),
    };
    Spec { extra, with_config }
}

/// Looks up a VM config key (`net3` matches `net[n]` if 3 is in range).
pub fn config_key_type(key: &str) -> Option<Ty> {
    if let Some((_, ty)) = QEMU_CONFIG.iter().find(|(n, _)| *n == key) {
        return Some(*ty);
    }
    let (base, idx) = split_indexed(key)?;
    let (_, max) = INDEXED.iter().find(|(b, _)| *b == base)?;
    if idx > *max {
        return None;
    }
    let pattern = format!("{base}[n]");
    QEMU_CONFIG.iter().find(|(n, _)| *n == pattern).map(|(_, t)| *t)
}

/// `scsi12` -> ("scsi", 12). Leading zeros are not valid PVE keys.
pub fn split_indexed(key: &str) -> Option<(&str, u32)> {
    let pos = key.find(|c: char| c.is_ascii_digit())?;
    let (base, num) = key.split_at(pos);
    if base.is_empty() || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    Some((base, num.parse().ok()?))
}

pub fn is_disk_key(key: &str) -> bool {
    matches!(split_indexed(key), Some((b, _)) if DISK_BUSES.contains(&b)) && config_key_type(key).is_some()
}

/// Verifies `raw` against the endpoint's parameter table.
pub fn verify(ep: Endpoint, raw: &RawParams) -> Result<Params, ApiError> {
    let spec = spec(ep);
    verify_table(spec.extra, spec.with_config.then_some(config_key_type), raw)
}

/// Verifies `raw` against endpoint parameters (`extra`: name, type, required) and,
/// when given, a guest kind's config keys (QEMU's or LXC's).
pub fn verify_table(
    extra: &[(&str, Ty, bool)],
    config: Option<fn(&str) -> Option<Ty>>,
    raw: &RawParams,
) -> Result<Params, ApiError> {
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Params::new();
    for (name, value) in raw {
        let ty = extra.iter().find(|(n, _, _)| n == name).map(|(_, t, _)| *t).or_else(|| config.and_then(|c| c(name)));
        let Some(ty) = ty else {
            errors.insert(
                name.clone(),
                "property is not defined in schema and the schema does not allow additional properties".into(),
            );
            continue;
        };
        if out.contains_key(name) {
            errors.insert(name.clone(), "duplicate parameter".into());
            continue;
        }
        match check_value(name, ty, value) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(msg) => {
                errors.insert(name.clone(), msg);
            }
        }
    }
    for (name, _, required) in extra {
        if *required && !out.contains_key(*name) && !errors.contains_key(*name) {
            errors.insert((*name).into(), "property is missing and it is not optional".into());
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Params(errors))
    }
}

/// Checks one value; returns the normalised value PVE would keep.
pub fn check_value(name: &str, ty: Ty, value: &str) -> Result<String, String> {
    match ty {
        Bool => parse_bool(value)
            .map(|b| if b { "1".into() } else { "0".into() })
            .ok_or_else(|| format!("type check ('boolean') failed - got '{value}'")),
        Int(min, max) => {
            let n = parse_int(value).ok_or_else(|| format!("type check ('integer') failed - got '{value}'"))?;
            check_range(n as f64, min.map(|m| m as f64), max.map(|m| m as f64))?;
            Ok(n.to_string())
        }
        Num(min, max) => {
            let n: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| format!("type check ('number') failed - got '{value}'"))?;
            check_range(n, min, max)?;
            Ok(value.trim().to_string())
        }
        Enum(allowed) => {
            if allowed.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(format!("value '{value}' does not have a value in the enumeration '{}'", allowed.join(", ")))
            }
        }
        Str(fmt) => check_format(name, fmt, value).map(|()| value.to_string()),
    }
}

fn check_range(n: f64, min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    if let Some(min) = min {
        if n < min {
            return Err(format!("value must have a minimum value of {min}"));
        }
    }
    if let Some(max) = max {
        if n > max {
            return Err(format!("value must have a maximum value of {max}"));
        }
    }
    Ok(())
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn bad(msg: impl std::fmt::Display) -> String {
    format!("invalid format - {msg}")
}

fn check_format(name: &str, fmt: Fmt, v: &str) -> Result<(), String> {
    match fmt {
        Any => Ok(()),
        Node | StorageId => {
            if is_pve_id(v) {
                Ok(())
            } else {
                Err(bad(format!(
                    "value does not look like a valid {}: {v}",
                    if matches!(fmt, Node) { "node name" } else { "storage ID" }
                )))
            }
        }
        PoolId => {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                Ok(())
            } else {
                Err(bad(format!("invalid pool ID '{v}'")))
            }
        }
        DnsName => {
            if is_dns_name(v) {
                Ok(())
            } else {
                Err(bad("value does not look like a valid DNS name"))
            }
        }
        AddressList => {
            let items = split_list(v);
            if items.is_empty() {
                return Err(bad("value does not look like a valid address list"));
            }
            for a in items {
                if a.parse::<IpAddr>().is_err() {
                    return Err(bad(format!("value does not look like a valid address: {a}")));
                }
            }
            Ok(())
        }
        UrlEncoded => {
            if v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b)) {
                let decoded = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| bad("value is not valid URL-encoded UTF-8"))?;
                if name == "sshkeys" {
                    check_ssh_keys(&decoded)?;
                }
                Ok(())
            } else {
                Err("value does not match the regex pattern".into())
            }
        }
        TagList => {
            let tags = split_list(v);
            for t in tags {
                if !is_tag(t) {
                    return Err(bad(format!("invalid tag '{t}'")));
                }
            }
            Ok(())
        }
        ConfigIdList => {
            for id in split_list(v) {
                if config_key_type(id).is_none() {
                    return Err(bad(format!("invalid configuration ID '{id}'")));
                }
            }
            Ok(())
        }
        Memory => {
            let kv = parse_prop(v, Some("current"), &["current"]).map_err(bad)?;
            let cur = kv.iter().find(|(k, _)| k == "current").map(|(_, v)| v.as_str());
            match cur {
                None => Err(bad("current: property is missing and it is not optional")),
                Some(c) => match parse_int(c) {
                    Some(n) if n >= 16 => Ok(()),
                    Some(_) => Err(bad("current: value must have a minimum value of 16")),
                    None => Err(bad(format!("current: type check ('integer') failed - got '{c}'"))),
                },
            }
        }
        Net => parse_net(v).map(|_| ()).map_err(bad),
        Drive => parse_drive(v).map(|_| ()).map_err(bad),
        IpConfig => check_ipconfig(v).map_err(bad),
        Agent => {
            let kv = parse_prop(
                v,
                Some("enabled"),
                &["enabled", "freeze-fs", "freeze-fs-on-backup", "fstrim_cloned_disks", "guest-fsfreeze", "type"],
            )
            .map_err(bad)?;
            for (k, val) in &kv {
                match k.as_str() {
                    "type" => {
                        if !["virtio", "isa"].contains(&val.as_str()) {
                            return Err(bad(format!(
                                "type: value '{val}' does not have a value in the enumeration 'virtio, isa'"
                            )));
                        }
                    }
                    _ => {
                        if parse_bool(val).is_none() {
                            return Err(bad(format!("{k}: type check ('boolean') failed - got '{val}'")));
                        }
                    }
                }
            }
            Ok(())
        }
        Cpu => {
            let kv = parse_prop(
                v,
                Some("cputype"),
                &["cputype", "flags", "hidden", "hv-vendor-id", "phys-bits", "reported-model"],
            )
            .map_err(bad)?;
            for (k, val) in &kv {
                if k == "cputype"
                    && (val.is_empty() || !val.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
                {
                    return Err(bad(format!("cputype: invalid CPU model '{val}'")));
                }
            }
            Ok(())
        }
        Keys(keys, default_key) => parse_prop(v, default_key, keys).map(|_| ()).map_err(bad),
    }
}

pub(crate) fn is_pve_id(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'.')
}

pub(crate) fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// PVE's tag charset: `[a-z0-9_][a-z0-9_\-+.]*`, case-insensitive.
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_-+.".contains(c))
}

/// PVE's `split_list`: separators are `;`, `,`, and whitespace.
pub fn split_list(v: &str) -> Vec<&str> {
    v.split(|c: char| c == ';' || c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

/// Normalises tags the way PVE's default tag-style does: lower-case,
/// sorted, de-duplicated, joined with `;`.
pub fn normalize_tags(v: &str) -> String {
    let mut tags: Vec<String> = split_list(v).into_iter().map(|t| t.to_ascii_lowercase()).collect();
    tags.sort();
    tags.dedup();
    tags.join(";")
}

fn check_ssh_keys(keys: &str) -> Result<(), String> {
    for line in keys.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let blob = parts.next().unwrap_or("");
        let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        let b64 = !blob.is_empty() && blob.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !known || !b64 {
            return Err(format!("unable to parse ssh key '{line}'"));
        }
    }
    Ok(())
}

/// Parses a PVE property string (`a=1,b=2`, the first bare value belongs to
/// the default key) and checks that every key is known.
pub fn parse_prop(v: &str, default_key: Option<&str>, keys: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in v.split(',') {
        if part.is_empty() {
            continue;
        }
        let (k, val) = match part.split_once('=') {
            Some((k, val)) if keys.contains(&k) => (k.to_string(), val.to_string()),
            _ => match default_key {
                Some(d) if !out.iter().any(|(k, _)| k == d) => (d.to_string(), part.to_string()),
                _ => {
                    let key = part.split_once('=').map(|(k, _)| k).unwrap_or(part);
                    return Err(format!("format error - unknown key '{key}'"));
                }
            },
        };
        if out.iter().any(|(ok, _)| *ok == k) {
            return Err(format!("duplicate key in comma-separated list property: {k}"));
        }
        out.push((k, val));
    }
    Ok(out)
}

pub const NET_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];
const NET_KEYS: &[&str] =
    &["bridge", "firewall", "link_down", "macaddr", "model", "mtu", "queues", "rate", "tag", "trunks"];

/// A parsed `net[n]` value.
#[derive(Debug, Clone)]
pub struct NetDev {
    pub model: String,
    pub macaddr: Option<String>,
    /// Remaining options, sorted by key as PVE prints them.
    pub opts: BTreeMap<String, String>,
}

impl NetDev {
    /// Prints like PVE: `model=MAC` first, then the other options sorted.
    pub fn print(&self) -> String {
        let mut s = self.model.clone();
        if let Some(mac) = &self.macaddr {
            s.push('=');
            s.push_str(mac);
        }
        for (k, v) in &self.opts {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }
}

pub fn is_mac(v: &str) -> bool {
    let parts: Vec<&str> = v.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        // PVE rejects multicast addresses (low bit of the first octet set).
        && u8::from_str_radix(parts[0], 16).map(|b| b & 1 == 0).unwrap_or(false)
}

pub fn parse_net(v: &str) -> Result<NetDev, String> {
    let mut model = None;
    let mut mac = None;
    let mut opts = BTreeMap::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (k, val) = part.split_once('=').unwrap_or((part, ""));
        if NET_MODELS.contains(&k) {
            if model.is_some() {
                return Err("format error - duplicate model".into());
            }
            model = Some(k.to_string());
            if !val.is_empty() {
                mac = Some(val.to_string());
            }
            continue;
        }
        if !NET_KEYS.contains(&k) || !part.contains('=') {
            return Err(format!("format error - unknown key '{k}'"));
        }
        match k {
            "model" => {
                if !NET_MODELS.contains(&val) {
                    return Err(format!(
                        "model: value '{val}' does not have a value in the enumeration '{}'",
                        NET_MODELS.join(", ")
                    ));
                }
                model = Some(val.to_string());
            }
            "macaddr" => mac = Some(val.to_string()),
            "bridge" => {
                if val.is_empty() || !val.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                    return Err(format!("bridge: value does not match the regex pattern: '{val}'"));
                }
                opts.insert(k.to_string(), val.to_string());
            }
            "tag" | "mtu" | "queues" => {
                let (min, max) = match k {
                    "tag" => (1, 4094),
                    "mtu" => (1, 65520),
                    _ => (0, 64),
                };
                int_in(k, val, min, max)?;
                opts.insert(k.to_string(), val.to_string());
            }
            "firewall" | "link_down" => {
                let b = parse_bool(val).ok_or_else(|| format!("{k}: type check ('boolean') failed - got '{val}'"))?;
                opts.insert(k.to_string(), if b { "1" } else { "0" }.to_string());
            }
            "rate" => {
                val.parse::<f64>()
                    .ok()
                    .filter(|r| *r >= 0.0)
                    .ok_or_else(|| format!("rate: type check ('number') failed - got '{val}'"))?;
                opts.insert(k.to_string(), val.to_string());
            }
            "trunks" => {
                let ok =
                    val.split(';').all(|r| r.split('-').count() <= 2 && r.split('-').all(|n| parse_int(n).is_some()));
                if !ok || val.is_empty() {
                    return Err(format!("trunks: value does not match the regex pattern: '{val}'"));
                }
                opts.insert(k.to_string(), val.to_string());
            }
            _ => unreachable!("NET_KEYS covers every key"),
        }
    }
    let model = model.ok_or("model: property is missing and it is not optional")?;
    if let Some(m) = &mac {
        if !is_mac(m) {
            return Err(format!("macaddr: value does not look like a valid unicast MAC address: '{m}'"));
        }
    }
    Ok(NetDev { model, macaddr: mac, opts })
}

fn int_in(k: &str, v: &str, min: i64, max: i64) -> Result<(), String> {
    let n = parse_int(v).ok_or_else(|| format!("{k}: type check ('integer') failed - got '{v}'"))?;
    if n < min || n > max {
        return Err(format!("{k}: value must be between {min} and {max}"));
    }
    Ok(())
}

const DRIVE_KEYS: &[&str] = &[
    "aio",
    "backup",
    "bps",
    "bps_max_length",
    "bps_rd",
    "bps_rd_length",
    "bps_rd_max_length",
    "bps_wr",
    "bps_wr_length",
    "bps_wr_max_length",
    "cache",
    "detect_zeroes",
    "discard",
    "file",
    "format",
    "import-from",
    "iops",
    "iops_max",
    "iops_max_length",
    "iops_rd",
    "iops_rd_length",
    "iops_rd_max",
    "iops_rd_max_length",
    "iops_wr",
    "iops_wr_length",
    "iops_wr_max",
    "iops_wr_max_length",
    "iothread",
    "mbps",
    "mbps_max",
    "mbps_rd",
    "mbps_rd_max",
    "mbps_wr",
    "mbps_wr_max",
    "media",
    "model",
    "product",
    "queues",
    "replicate",
    "rerror",
    "ro",
    "scsiblock",
    "serial",
    "shared",
    "size",
    "snapshot",
    "ssd",
    "vendor",
    "volume",
    "werror",
    "wwn",
];
const DRIVE_BOOLS: &[&str] =
    &["backup", "detect_zeroes", "iothread", "replicate", "ro", "scsiblock", "shared", "snapshot", "ssd"];

/// A parsed disk (`scsi0` etc.) value: the volume plus options.
#[derive(Debug, Clone)]
pub struct DriveSpec {
    pub file: String,
    pub opts: BTreeMap<String, String>,
}

impl DriveSpec {
    /// Prints like PVE's print_drive: volume first, then options sorted.
    pub fn print(&self) -> String {
        let mut s = self.file.clone();
        for (k, v) in &self.opts {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }
    pub fn is_cdrom(&self) -> bool {
        self.opts.get("media").map(|m| m == "cdrom").unwrap_or(false)
    }
}

pub fn parse_drive(v: &str) -> Result<DriveSpec, String> {
    let kv = parse_prop(v, Some("file"), DRIVE_KEYS)?;
    let mut file = None;
    let mut opts = BTreeMap::new();
    for (k, val) in kv {
        match k.as_str() {
            "file" | "volume" => file = Some(val),
            "size" => {
                parse_size(&val).ok_or_else(|| format!("size: unable to parse size '{val}'"))?;
                opts.insert(k, val);
            }
            "media" if !["cdrom", "disk"].contains(&val.as_str()) => {
                return Err(format!("media: value '{val}' does not have a value in the enumeration 'cdrom, disk'"));
            }
            "discard" if !["on", "ignore"].contains(&val.as_str()) => {
                return Err(format!("discard: value '{val}' does not have a value in the enumeration 'ignore, on'"));
            }
            "format" if !["raw", "cow", "qcow", "qed", "qcow2", "vmdk", "cloop"].contains(&val.as_str()) => {
                return Err(format!("format: value '{val}' does not have a value in the enumeration 'raw, cow, qcow, qed, qcow2, vmdk, cloop'"));
            }
            "cache" if !["none", "writethrough", "writeback", "unsafe", "directsync"].contains(&val.as_str()) => {
                return Err(format!("cache: value '{val}' does not have a value in the enumeration 'none, writethrough, writeback, unsafe, directsync'"));
            }
            _ if DRIVE_BOOLS.contains(&k.as_str()) => {
                let b = parse_bool(&val).ok_or_else(|| format!("{k}: type check ('boolean') failed - got '{val}'"))?;
                opts.insert(k, if b { "1" } else { "0" }.to_string());
            }
            _ => {
                opts.insert(k, val);
            }
        }
    }
    let file = file.ok_or("file: property is missing and it is not optional")?;
    if file.is_empty() {
        return Err("file: property is missing and it is not optional".into());
    }
    Ok(DriveSpec { file, opts })
}

/// Parses `32G`, `512M`, `1.5T` or a byte count into bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let (num, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, 'B'),
    };
    let mult: f64 = match unit {
        'B' => 1.0,
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => 1024.0 * 1024.0 * 1024.0,
        'T' => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    Some((n * mult).round() as u64)
}

/// Formats bytes the way PVE writes `size=` (largest exact unit).
pub fn format_size(bytes: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (mult, suffix) in UNITS {
        #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; MSRV is 1.85
        if bytes >= *mult && bytes % mult == 0 {
            return format!("{}{}", bytes / mult, suffix);
        }
    }
    bytes.to_string()
}

fn check_ipconfig(v: &str) -> Result<(), String> {
    let kv = parse_prop(v, None, &["ip", "gw", "ip6", "gw6"])?;
    for (k, val) in &kv {
        let ok = match k.as_str() {
            "ip" => val == "dhcp" || parse_cidr(val).map(|(a, _)| a.is_ipv4()).unwrap_or(false),
            "ip6" => val == "dhcp" || val == "auto" || parse_cidr(val).map(|(a, _)| a.is_ipv6()).unwrap_or(false),
            "gw" => val.parse::<Ipv4Addr>().is_ok(),
            "gw6" => val.parse::<Ipv6Addr>().is_ok(),
            _ => false,
        };
        if !ok {
            return Err(format!("{k}: value does not look like a valid address: {val}"));
        }
    }
    Ok(())
}

pub fn parse_cidr(v: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = v.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawParams {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn unknown_and_malformed_params_are_named() {
        let err =
            verify(Endpoint::ConfigPut, &raw(&[("node", "pve1"), ("vmid", "100"), ("bogus", "1"), ("cores", "x")]))
                .unwrap_err();
        let ApiError::Params(errs) = err else { panic!("expected param error") };
        assert!(errs.contains_key("bogus"));
        assert!(errs["cores"].contains("integer"));
        assert_eq!(errs.len(), 2);
    }

    #[test]
    fn indexed_keys_respect_ranges() {
        assert!(config_key_type("net31").is_some());
        assert!(config_key_type("net32").is_none());
        assert!(config_key_type("scsi30").is_some());
        assert!(config_key_type("ide4").is_none());
        assert!(config_key_type("net01").is_none());
    }

    #[test]
    fn booleans_are_normalised() {
        assert_eq!(check_value("onboot", Bool, "true").unwrap(), "1");
        assert_eq!(check_value("onboot", Bool, "off").unwrap(), "0");
        assert!(check_value("onboot", Bool, "2").is_err());
    }

    #[test]
    fn net_parses_and_prints_sorted() {
        let n = parse_net("virtio=BC:24:11:00:00:01,tag=10,bridge=vmbr0,firewall=1").unwrap();
        assert_eq!(n.print(), "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1,tag=10");
        assert!(parse_net("bridge=vmbr0").is_err());
        assert!(parse_net("virtio,bridge=vmbr0,tag=5000").is_err());
        assert!(parse_net("virtio=01:00:00:00:00:01,bridge=vmbr0").is_err());
    }

    #[test]
    fn tags_normalise_like_pve() {
        assert_eq!(normalize_tags("Prod;k8s,alpha alpha"), "alpha;k8s;prod");
    }

    #[test]
    fn sizes_round_trip() {
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(format_size(32 << 30), "32G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(parse_size("abc"), None);
    }

    #[test]
    fn sshkeys_must_be_urlencoded_keys() {
        let ok = "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAA%20me%40host%0A";
        assert!(check_format("sshkeys", UrlEncoded, ok).is_ok());
        assert!(check_format("sshkeys", UrlEncoded, "ssh-ed25519 AAAA").is_err());
        assert!(check_format("sshkeys", UrlEncoded, "not-a-key").is_err());
    }
}
