//! Host-side networking: lab naming, subnet choice, bridge, namespaces and veths.
//!
//! Every name is derived from the lab's short name so that several labs (other
//! engineers' tests) coexist on one machine. Interface names must fit in 15 bytes.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::process::run;

/// Longest short name: "slb-" + 8 = 12 bytes for the bridge, "<short>-n" + 3 digits for veths.
pub const MAX_SHORT: usize = 8;
pub const MAX_NODES: usize = 200;
/// Global lock dir shared by every lab on the machine.
const LOCK_DIR: &str = "/run/strata-lab";

pub fn bridge_name(short: &str) -> String {
    format!("slb-{short}")
}
pub fn namespace_name(short: &str, node: &str) -> String {
    format!("{short}-{node}")
}
pub fn veth_name(short: &str, index: usize) -> String {
    format!("{short}-n{index}")
}
pub fn node_address(slot: u8, index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, slot, 10 + index as u8)
}

/// Validates an explicit `--name`, or derives one from the lab directory: up to four
/// letters of its basename plus a hash of its full path (unique per directory).
pub fn short_name(dir: &Path, explicit: Option<&str>) -> Result<String> {
    if let Some(name) = explicit {
        let ok = !name.is_empty()
            && name.len() <= MAX_SHORT
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            bail!("lab name {name:?} must be 1-{MAX_SHORT} characters of a-z0-9 (it prefixes interface names, which the kernel limits to 15 bytes)");
        }
        return Ok(name.to_string());
    }
    let base: String = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(4)
        .collect();
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    let mut h: u32 = 0x811c9dc5;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    Ok(format!("{base}{:04x}", h & 0xffff))
}

/// Holds an exclusive lock on a machine-wide file while alive (flock is dropped with it).
pub struct GlobalLock(Flock<File>);

impl GlobalLock {
    /// The locked file's descriptor (a child that inherits it holds the lock too).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

pub fn global_lock(name: &str) -> Result<GlobalLock> {
    fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
    let path = Path::new(LOCK_DIR).join(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(GlobalLock(lock))
}

/// IPv4 networks in use on the host: every interface address and every route.
fn used_networks() -> Result<Vec<(u32, u8)>> {
    let mut used = Vec::new();
    let addrs = run("ip", ["-o", "-4", "addr", "show"])?;
    for line in addrs.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(net) = words.next().and_then(parse_cidr) {
                    used.push(net);
                }
            }
        }
    }
    for line in run("ip", ["-o", "-4", "route", "show", "table", "all"])?.lines() {
        let mut words = line.split_whitespace();
        let mut first = words.next();
        // Route types ("local", "broadcast", ...) come before the destination.
        if matches!(
            first,
            Some(
                "local"
                    | "broadcast"
                    | "unicast"
                    | "multicast"
                    | "anycast"
                    | "blackhole"
                    | "unreachable"
                    | "prohibit"
                    | "throw"
            )
        ) {
            first = words.next();
        }
        if let Some(net) = first.and_then(parse_cidr) {
            used.push(net);
        }
    }
    Ok(used)
}

/// "10.1.2.3/24" or "10.1.2.3" (a /32) to (address, prefix); None for "default" etc.
pub fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.parse().ok()?),
        None => (s, 32),
    };
    let ip: Ipv4Addr = addr.parse().ok()?;
    (prefix <= 32).then_some((u32::from(ip), prefix))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let p = a.1.min(b.1);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    (a.0 & mask) == (b.0 & mask)
}

/// First X in 1..=254 with 10.77.X.0/24 overlapping nothing in use. Slot 0 is left to
/// the single-bridge recipe in LAB.md; default routes (prefix 0) do not count.
pub fn pick_slot(used: &[(u32, u8)]) -> Option<u8> {
    (1..=254u8).find(|&x| {
        let net = (u32::from(Ipv4Addr::new(10, 77, x, 0)), 24);
        used.iter().all(|&u| u.1 == 0 || !overlaps(net, u))
    })
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Claims a free /24 and creates the lab bridge with .1 on it. The bridge address is the
/// claim itself, so the free-slot scan and the creation happen under one machine-wide lock.
pub fn create_bridge(bridge: &str, record: impl FnOnce(u8) -> Result<()>) -> Result<u8> {
    let _lock = global_lock("subnets.lock")?;
    let slot = pick_slot(&used_networks()?).context("no free 10.77.X.0/24 subnet left for the lab bridge")?;
    // Recorded before creation so that `down` removes the bridge even if we die right after.
    record(slot)?;
    run("ip", ["link", "add", bridge, "type", "bridge"])?;
    run("ip", ["addr", "add", &format!("10.77.{slot}.1/24"), "dev", bridge])?;
    run("ip", ["link", "set", bridge, "up"])?;
    Ok(slot)
}

/// Namespace with `lo` up and a veth whose node end is `eth0` with `address/24`.
pub fn create_node_network(ns: &str, veth: &str, bridge: &str, address: Ipv4Addr) -> Result<()> {
    run("ip", ["netns", "add", ns])?;
    run("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
    run("ip", ["link", "set", veth, "master", bridge])?;
    run("ip", ["link", "set", veth, "up"])?;
    run("ip", ["-n", ns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
    run("ip", ["-n", ns, "link", "set", "eth0", "up"])?;
    run("ip", ["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes a link if present. The kernel may remove it concurrently (a veth dies with
/// its namespace), so a failure only counts if the link is still there afterwards.
pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        if let Err(e) = run("ip", ["link", "del", name]) {
            if link_exists(name) {
                return Err(e);
            }
        }
    }
    Ok(())
}

pub fn delete_netns(ns: &str) -> Result<()> {
    if netns_exists(ns) {
        if let Err(e) = run("ip", ["netns", "del", ns]) {
            if netns_exists(ns) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Pids of every process in the namespace (none if it does not exist).
pub fn netns_pids(ns: &str) -> Result<Vec<i32>> {
    if !netns_exists(ns) {
        return Ok(Vec::new());
    }
    let out = run("ip", ["netns", "pids", ns])?;
    Ok(out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limit() {
        let short = short_name(Path::new("/tmp/.tmpAbCdEf/some-very-long-lab-dir"), None).unwrap();
        assert!(short.len() <= MAX_SHORT, "{short}");
        assert!(bridge_name(&short).len() <= 15);
        assert!(veth_name(&short, MAX_NODES).len() <= 15);
        assert!(short.starts_with("some"));
    }

    #[test]
    fn default_names_differ_per_dir_and_are_stable() {
        let a = short_name(Path::new("/tmp/lab-a/lab"), None).unwrap();
        let b = short_name(Path::new("/tmp/lab-b/lab"), None).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, short_name(Path::new("/tmp/lab-a/lab"), None).unwrap());
    }

    #[test]
    fn explicit_names_are_validated() {
        assert_eq!(short_name(Path::new("/x"), Some("abc1")).unwrap(), "abc1");
        assert!(short_name(Path::new("/x"), Some("UPPER")).is_err());
        assert!(short_name(Path::new("/x"), Some("waytoolongname")).is_err());
        assert!(short_name(Path::new("/x"), Some("")).is_err());
    }

    #[test]
    fn slot_scan_skips_used_and_overlapping_networks() {
        let used = vec![
            parse_cidr("10.77.1.1/24").unwrap(),
            parse_cidr("10.77.2.0/23").unwrap(), // covers .2 and .3
            parse_cidr("10.77.4.7").unwrap(),    // a /32 inside .4
            parse_cidr("0.0.0.0/0").unwrap(),    // default route: ignored
        ];
        assert_eq!(pick_slot(&used), Some(5));
        assert_eq!(pick_slot(&[parse_cidr("10.0.0.0/8").unwrap()]), None);
        assert_eq!(pick_slot(&[]), Some(1));
        assert_eq!(parse_cidr("default"), None);
    }
}
