//! The cloud-init NoCloud data Proxmox VE writes onto a VM's cloud-init drive
//! (`PVE::QemuServer::Cloudinit`: `cloudinit_userdata`, `nocloud_network`,
//! `nocloud_gen_metadata`), built from the same config keys: `name`, `ciuser`,
//! `cipassword`, `sshkeys`, `ipconfigN`/`netN`, `nameserver`, `searchdomain`,
//! `ciupgrade`. Only `citype: nocloud` (PVE's default for non-Windows guests) is built.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::params;

/// The files of the `cidata` volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCloudSeed {
    pub user_data: String,
    pub network_config: String,
    pub meta_data: String,
    pub vendor_data: String,
}

/// Whether the VM has a cloud-init drive (`ide2: local-lvm:vm-100-cloudinit,media=cdrom`):
/// PVE generates the data only then.
pub fn has_cloudinit_drive(conf: &BTreeMap<String, String>) -> bool {
    conf.iter()
        .filter(|(k, _)| params::is_disk_key(k))
        .any(|(_, v)| params::parse_drive(v).map(|d| d.file.contains("cloudinit")).unwrap_or(false))
}

/// Host DNS settings (`/etc/resolv.conf`), PVE's fallback when the VM sets none.
#[derive(Debug, Clone, Default)]
pub struct HostDns {
    pub search: Vec<String>,
    pub nameservers: Vec<String>,
}

impl HostDns {
    /// Parsed as PVE::INotify reads resolv.conf: `search`/`domain` and up to 3 nameservers.
    pub fn parse(resolv_conf: &str) -> HostDns {
        let mut dns = HostDns::default();
        for line in resolv_conf.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("search") | Some("domain") => dns.search = words.map(str::to_string).collect(),
                Some("nameserver") if dns.nameservers.len() < 3 => {
                    dns.nameservers.extend(words.next().map(str::to_string))
                }
                _ => {}
            }
        }
        dns
    }

    pub fn of_host() -> HostDns {
        HostDns::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

/// Builds the seed; errors as PVE's would (`citype` other than nocloud, `cicustom`
/// snippets, which live on storage the simulator does not have, a NIC without a MAC).
pub fn nocloud(conf: &BTreeMap<String, String>, vmid: u32, host: &HostDns) -> Result<NoCloudSeed, String> {
    match conf.get("citype").map(String::as_str) {
        None | Some("nocloud") => {}
        Some(other) => return Err(format!("pve-sim: cloud-init type '{other}' is not supported (only nocloud)")),
    }
    if conf.contains_key("cicustom") {
        return Err("pve-sim: cicustom snippets are not supported".into());
    }
    let user_data = user_data(conf, vmid);
    let network_config = network_v1(conf, host)?;
    let meta_data = format!("instance-id: {}\n", sha1_hex(&format!("{user_data}{network_config}")));
    Ok(NoCloudSeed { user_data, network_config, meta_data, vendor_data: String::new() })
}

fn sha1_hex(text: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `get_hostname_fqdn`: the VM's name (or `VM<vmid>`), FQDN from a dotted name or searchdomain.
fn hostname_fqdn(conf: &BTreeMap<String, String>, vmid: u32) -> (String, Option<String>) {
    let name = conf.get("name").cloned().unwrap_or_else(|| format!("VM{vmid}"));
    if let Some((host, _)) = name.split_once('.') {
        return (host.to_string(), Some(name.clone()));
    }
    let fqdn = conf.get("searchdomain").filter(|s| !s.is_empty()).map(|s| format!("{name}.{s}"));
    (name, fqdn)
}

/// `cloudinit_userdata`.
fn user_data(conf: &BTreeMap<String, String>, vmid: u32) -> String {
    let (hostname, fqdn) = hostname_fqdn(conf, vmid);
    let mut s = String::from("#cloud-config\n");
    s.push_str(&format!("hostname: {hostname}\n"));
    s.push_str("manage_etc_hosts: true\n");
    if let Some(f) = fqdn {
        s.push_str(&format!("fqdn: {f}\n"));
    }
    let user = conf.get("ciuser");
    if let Some(u) = user {
        s.push_str(&format!("user: {u}\n"));
        if u == "root" {
            s.push_str("disable_root: False\n");
        }
    }
    if let Some(p) = conf.get("cipassword") {
        s.push_str(&format!("password: {p}\n"));
    }
    if let Some(keys) = conf.get("sshkeys") {
        let decoded = percent_encoding::percent_decode_str(keys).decode_utf8_lossy().into_owned();
        s.push_str("ssh_authorized_keys:\n");
        for k in decoded.split('\n').map(|k| k.trim_end_matches('\r')).filter(|k| !k.trim().is_empty()) {
            s.push_str(&format!("  - {k}\n"));
        }
    }
    s.push_str("chpasswd:\n  expire: False\n");
    if user.map(|u| u != "root").unwrap_or(true) {
        s.push_str("users:\n  - default\n");
    }
    // PVE 8: `ciupgrade` (default 1) decides whether the first boot upgrades packages.
    let upgrade = conf.get("ciupgrade").map(|v| v != "0").unwrap_or(true);
    s.push_str(&format!("package_upgrade: {upgrade}\n"));
    s
}

/// `nocloud_network`: network config version 1, interfaces matched by MAC.
fn network_v1(conf: &BTreeMap<String, String>, host: &HostDns) -> Result<String, String> {
    let mut s = String::from("version: 1\nconfig:\n");
    let mut nets: Vec<(u32, &String)> = conf
        .iter()
        .filter_map(|(k, v)| match params::split_indexed(k) {
            Some(("net", n)) => Some((n, v)),
            _ => None,
        })
        .collect();
    // PVE sorts the keys as strings (net10 before net2).
    nets.sort_by_key(|(n, _)| format!("net{n}"));
    for (id, value) in nets {
        let Some(ipconfig) = conf.get(&format!("ipconfig{id}")).filter(|v| !v.is_empty()) else { continue };
        let net = params::parse_net(value)?;
        let mac = net.macaddr.ok_or_else(|| format!("network interface 'net{id}' has no mac address"))?;
        let kv = params::parse_prop(ipconfig, None, &["ip", "gw", "ip6", "gw6"])?;
        let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        s.push_str(&format!(
            "    - type: physical\n      name: eth{id}\n      mac_address: '{}'\n      subnets:\n",
            mac.to_ascii_lowercase()
        ));
        match get("ip") {
            Some("dhcp") => s.push_str("      - type: dhcp4\n"),
            Some(ip) => {
                let (addr, mask) = split_ip4(ip)?;
                s.push_str(&format!("      - type: static\n        address: '{addr}'\n        netmask: '{mask}'\n"));
                if let Some(gw) = get("gw") {
                    s.push_str(&format!("        gateway: '{gw}'\n"));
                }
            }
            None => {}
        }
        match get("ip6") {
            Some("dhcp") => s.push_str("      - type: dhcp6\n"),
            Some("auto") => s.push_str("      - type: ipv6_slaac\n"),
            Some(ip) => {
                s.push_str(&format!("      - type: static6\n        address: '{ip}'\n"));
                if let Some(gw) = get("gw6") {
                    s.push_str(&format!("        gateway: '{gw}'\n"));
                }
            }
            None => {}
        }
    }
    // PVE always emits the nameserver entry (its lists are never undefined).
    let search: Vec<String> = match conf.get("searchdomain") {
        Some(v) => v.split_whitespace().map(str::to_string).collect(),
        None => host.search.clone(),
    };
    let servers: Vec<String> = match conf.get("nameserver") {
        Some(v) => v.split_whitespace().map(str::to_string).collect(),
        None => host.nameservers.clone(),
    };
    s.push_str("    - type: nameserver\n");
    if !servers.is_empty() {
        s.push_str("      address:\n");
        for n in &servers {
            s.push_str(&format!("      - '{n}'\n"));
        }
    }
    if !search.is_empty() {
        s.push_str("      search:\n");
        for d in &search {
            s.push_str(&format!("      - '{d}'\n"));
        }
    }
    Ok(s)
}

/// `split_ip4`: address and dotted netmask of a CIDR.
fn split_ip4(ip: &str) -> Result<(String, Ipv4Addr), String> {
    let (addr, prefix) = ip.split_once('/').ok_or_else(|| format!("not a CIDR: {ip}"))?;
    let prefix: u32 = prefix.parse().map_err(|_| format!("not a CIDR: {ip}"))?;
    if prefix > 32 {
        return Err(format!("not a CIDR: {ip}"));
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Ok((addr.to_string(), Ipv4Addr::from(mask)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn user_data_is_what_proxmox_writes() {
        let c = conf(&[
            ("name", "web1"),
            ("ciuser", "debian"),
            ("sshkeys", "ssh-ed25519%20AAAAC3Nza%20a%40b%0Assh-rsa%20AAAAB3%20c%40d%0A"),
            ("ciupgrade", "0"),
        ]);
        let seed = nocloud(&c, 101, &HostDns::default()).unwrap();
        assert_eq!(
            seed.user_data,
            "#cloud-config\nhostname: web1\nmanage_etc_hosts: true\nuser: debian\n\
             ssh_authorized_keys:\n  - ssh-ed25519 AAAAC3Nza a@b\n  - ssh-rsa AAAAB3 c@d\n\
             chpasswd:\n  expire: False\nusers:\n  - default\npackage_upgrade: false\n"
        );
        let root = nocloud(&conf(&[("ciuser", "root"), ("searchdomain", "lab")]), 7, &HostDns::default()).unwrap();
        assert!(root.user_data.contains("hostname: VM7\nmanage_etc_hosts: true\nfqdn: VM7.lab\n"));
        assert!(root.user_data.contains("disable_root: False\n"));
        assert!(!root.user_data.contains("users:"));
        assert!(root.user_data.ends_with("package_upgrade: true\n"), "ciupgrade defaults to 1");
    }

    #[test]
    fn network_config_v1_static_address_and_dns() {
        let c = conf(&[
            ("net0", "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0"),
            ("ipconfig0", "ip=10.77.3.50/24,gw=10.77.3.1"),
            ("net1", "virtio=BC:24:11:00:00:01,bridge=vmbr1"),
            ("nameserver", "10.77.3.1 1.1.1.1"),
        ]);
        let host = HostDns::parse("search example.org\nnameserver 9.9.9.9\n");
        let seed = nocloud(&c, 101, &host).unwrap();
        assert_eq!(
            seed.network_config,
            "version: 1\nconfig:\n    - type: physical\n      name: eth0\n      mac_address: 'bc:24:11:aa:bb:cc'\n      subnets:\n\
             \x20     - type: static\n        address: '10.77.3.50'\n        netmask: '255.255.255.0'\n        gateway: '10.77.3.1'\n\
             \x20   - type: nameserver\n      address:\n      - '10.77.3.1'\n      - '1.1.1.1'\n      search:\n      - 'example.org'\n"
        );
        // instance-id = sha1(user-data . network-config), so a config change re-runs cloud-init.
        assert_eq!(
            seed.meta_data,
            format!("instance-id: {}\n", sha1_hex(&(seed.user_data.clone() + &seed.network_config)))
        );
        let mut c2 = c.clone();
        c2.insert("ipconfig0".into(), "ip=10.77.3.51/24".into());
        assert_ne!(nocloud(&c2, 101, &host).unwrap().meta_data, seed.meta_data);
    }

    #[test]
    fn unsupported_types_and_drive_detection() {
        assert!(nocloud(&conf(&[("citype", "configdrive2")]), 1, &HostDns::default()).is_err());
        assert!(nocloud(&conf(&[("net0", "virtio,bridge=vmbr0"), ("ipconfig0", "ip=dhcp")]), 1, &HostDns::default())
            .unwrap_err()
            .contains("no mac address"));
        assert!(has_cloudinit_drive(&conf(&[("ide2", "local-lvm:vm-100-cloudinit,media=cdrom")])));
        assert!(!has_cloudinit_drive(&conf(&[("scsi0", "local-lvm:vm-100-disk-0,size=4G")])));
        assert_eq!(split_ip4("10.0.0.1/20").unwrap().1, Ipv4Addr::new(255, 255, 240, 0));
    }
}
