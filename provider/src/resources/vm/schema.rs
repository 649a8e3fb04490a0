//! The `strata_vm` schema and its single-attribute validators.

use std::time::Duration;

use crate::framework::timeouts::parse_go_duration;
use crate::framework::{Attribute, Block, NestedBlock, Schema, Timeouts, Type, Validator, Value};

/// Disk buses and their highest index, as Proxmox VE accepts them.
pub const DISK_BUSES: &[(&str, u32)] = &[("scsi", 30), ("virtio", 15), ("sata", 5), ("ide", 3)];

/// NIC models Proxmox VE accepts.
pub const NIC_MODELS: &[&str] = &[
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

pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "3m";

/// Time limits when the `timeouts` block (added by the framework) leaves them unset.
pub fn timeouts() -> Timeouts {
    Timeouts {
        create: Duration::from_secs(20 * 60),
        read: Duration::from_secs(5 * 60),
        update: Duration::from_secs(20 * 60),
        delete: Duration::from_secs(10 * 60),
    }
}

pub fn disk_type() -> Type {
    Type::object([("interface", Type::String), ("storage", Type::String), ("size_gb", Type::Number)])
}

/// PVE's tag charset after normalisation (it lower-cases tags): requiring it here keeps
/// the planned value equal to what Proxmox stores.
fn check_tags(v: &Value) -> Result<(), String> {
    let (Value::Set(items) | Value::List(items)) = v else { return Ok(()) };
    for t in items.iter().filter_map(Value::as_str) {
        let ok = !t.is_empty()
            && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-+.".contains(&b));
        if !ok {
            return Err(format!(
                "Tag {t:?} is not how Proxmox stores tags: use lower-case letters, digits and _ - + . (starting with a letter, digit or _)."
            ));
        }
    }
    Ok(())
}

pub fn parse_ipv4_cidr(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((ip, prefix))
}

fn check_cidr(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(s) if parse_ipv4_cidr(s).is_some() => Ok(()),
        _ => Err("Must be an IPv4 address with prefix length (CIDR), e.g. \"10.0.0.10/24\".".into()),
    }
}

fn check_ipv4(v: &Value) -> Result<(), String> {
    match v.as_str().map(|s| s.parse::<std::net::Ipv4Addr>()) {
        Some(Ok(_)) => Ok(()),
        _ => Err("Must be an IPv4 address, e.g. \"10.0.0.1\".".into()),
    }
}

fn check_ips(v: &Value) -> Result<(), String> {
    let Value::List(items) = v else { return Ok(()) };
    for s in items.iter().filter_map(Value::as_str) {
        if s.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("{s:?} is not an IP address."));
        }
    }
    Ok(())
}

fn check_ssh_keys(v: &Value) -> Result<(), String> {
    let Value::List(items) = v else { return Ok(()) };
    for (i, s) in items.iter().filter_map(Value::as_str).enumerate() {
        let mut parts = s.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let blob = parts.next().unwrap_or("");
        let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        if !known || blob.is_empty() || s.contains('\n') {
            return Err(format!(
                "Element {i} is not a single OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")."
            ));
        }
    }
    Ok(())
}

fn check_duration(v: &Value) -> Result<(), String> {
    match v.as_str().map(parse_go_duration) {
        Some(Ok(d)) if !d.is_zero() => Ok(()),
        Some(Ok(_)) => Err("Must be longer than zero.".into()),
        Some(Err(e)) => Err(format!("Must be a duration like \"30s\", \"10m\", \"1.5h\" or \"1h30m\": {e}.")),
        None => Ok(()),
    }
}

const MAC_RE: &str = "[0-9A-Fa-f][02468aceACE](:[0-9A-Fa-f]{2}){5}";
const DNS_NAME_RE: &str = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*";

pub fn schema() -> Schema {
    let clone =
        Block::new("Create the VM as a clone of an existing VM or template. Changing the source replaces the VM.")
            .attribute(
                Attribute::required("source_vm_id", Type::Number)
                    .validate(Validator::IntBetween(100, 999_999_999))
                    .description("VMID of the template (or VM) to clone, on the same node."),
            )
            .attribute(
                Attribute::optional("full", Type::Bool)
                    .default(true)
                    .description("Full clone (independent disks, default) or linked clone (templates only)."),
            );
    let cpu = Block::new("CPU topology and model. Unset attributes keep what Proxmox (or the template) has.")
        .attribute(
            Attribute::optional_computed("cores", Type::Number)
                .validate(Validator::IntBetween(1, 512))
                .description("Cores per socket."),
        )
        .attribute(
            Attribute::optional_computed("sockets", Type::Number)
                .validate(Validator::IntBetween(1, 16))
                .description("Sockets."),
        )
        .attribute(
            Attribute::optional_computed("type", Type::String)
                .validate(Validator::Matches(
                    "[A-Za-z0-9][A-Za-z0-9_.-]*",
                    "a QEMU CPU model such as \"host\" or \"x86-64-v2-AES\"",
                ))
                .description("QEMU CPU model (`host`, `x86-64-v2-AES`, ...)."),
        );
    let nic = Block::new(
        "A network device; the n-th block is Proxmox's `net<n>`. With no `network_devices` block at all, the VM's \
         NICs (e.g. a template's) are kept and not managed, as unset `disks` are.",
    )
    .attribute(
        Attribute::required("bridge", Type::String)
            .validate(Validator::Matches("[A-Za-z0-9][A-Za-z0-9_.-]*", "a bridge name such as \"vmbr0\""))
            .description("Bridge to attach to, e.g. `vmbr0`."),
    )
    .attribute(
        Attribute::optional("model", Type::String)
            .default("virtio")
            .validate(Validator::OneOf(NIC_MODELS.to_vec()))
            .description("NIC model (default `virtio`)."),
    )
    .attribute(
        Attribute::optional("vlan_tag", Type::Number).validate(Validator::IntBetween(1, 4094)).description("VLAN tag."),
    )
    .attribute(Attribute::optional("firewall", Type::Bool).description("Enable the Proxmox firewall on this NIC."))
    .attribute(
        Attribute::optional_computed("mac_address", Type::String)
            .validate(Validator::Matches(MAC_RE, "a unicast MAC address like \"BC:24:11:00:00:01\""))
            .description("MAC address; Proxmox assigns one unless set."),
    );
    let ipv4 = Block::new("IPv4 configuration of the first network device: `address` (static) or `dhcp = true`.")
        .attribute(
            Attribute::optional("address", Type::String)
                .validate(Validator::Custom(check_cidr))
                .description("Static address in CIDR notation."),
        )
        .attribute(Attribute::optional("dhcp", Type::Bool).description("Use DHCP instead of a static address."))
        .attribute(
            Attribute::optional("gateway", Type::String)
                .validate(Validator::Custom(check_ipv4))
                .description("Default gateway (static addresses only)."),
        );
    let cloud_init = Block::new("Cloud-init settings Proxmox passes to the guest (needs a cloud-init image).")
        .attribute(Attribute::optional("user", Type::String).description("Default user name."))
        .attribute(
            Attribute::optional("ssh_public_keys", Type::list(Type::String))
                .validate(Validator::Custom(check_ssh_keys))
                .description("Authorised OpenSSH public keys, one per element."),
        )
        .attribute(
            Attribute::optional("dns_servers", Type::list(Type::String))
                .validate(Validator::Custom(check_ips))
                .description("DNS servers."),
        )
        .attribute(
            Attribute::optional("search_domain", Type::String)
                .validate(Validator::Matches(DNS_NAME_RE, "a DNS domain"))
                .description("DNS search domain."),
        )
        .block(NestedBlock::single("ipv4", ipv4));

    let block = Block::new(
        "A QEMU virtual machine on Proxmox VE, new or cloned from a template. Changes are applied in place where \
         Proxmox allows (then the VM is rebooted if the change needs it). Changing `node` migrates the VM \
         (live when it runs, disks included; same VMID); a VM moved outside Terraform (HA, a person) is followed \
         by refresh. Changing the clone source replaces the VM. Import with `node/vm_id`.",
    )
    .attribute(Attribute::computed("id", Type::String).description("`node/vm_id`."))
    .attribute(
        Attribute::required("node", Type::String)
            .validate(Validator::Matches("[A-Za-z][A-Za-z0-9_.-]*", "a Proxmox node name"))
            .description(
                "Cluster node the VM runs on. Changing it migrates the VM there (online when it runs, with its local \
                 disks); refresh reports where the VM really is.",
            ),
    )
    .attribute(
        Attribute::optional_computed("vm_id", Type::Number)
            .requires_replace()
            .validate(Validator::IntBetween(100, 999_999_999))
            .description("VMID. Allocated without collisions when unset."),
    )
    .attribute(
        Attribute::required("name", Type::String)
            .validate(Validator::Matches(DNS_NAME_RE, "a DNS name"))
            .description("VM name (a DNS name)."),
    )
    .attribute(Attribute::optional("description", Type::String).description("Notes shown in the Proxmox UI."))
    .attribute(
        Attribute::optional("tags", Type::set(Type::String))
            .validate(Validator::Custom(check_tags))
            .description("Tags, lower-case as Proxmox stores them."),
    )
    .attribute(
        Attribute::optional("pool", Type::String)
            .validate(Validator::Matches("[A-Za-z0-9_-]+", "a pool ID"))
            .description("Resource pool the VM belongs to (the pool must exist). Changed in place."),
    )
    .attribute(
        Attribute::optional_computed("memory_mb", Type::Number)
            .validate(Validator::IntBetween(16, 4 * 1024 * 1024))
            .description("Memory in MiB. Unset: whatever Proxmox or the template has."),
    )
    .attribute(
        Attribute::optional_computed("disks", Type::list(disk_type())).description(
            "Disks: `{ interface = \"scsi0\", storage = \"local-lvm\", size_gb = 32 }`. Grown in place; shrinking is refused. \
             Unset: the disks the VM has (e.g. from its template).",
        ),
    )
    .attribute(Attribute::optional_computed("on_boot", Type::Bool).description("Start the VM when the node boots."))
    .attribute(Attribute::optional("started", Type::Bool).default(true).description(
        "Desired power state (default running). `false` shuts the guest down cleanly (ACPI or guest agent) and \
         stops it hard only when it is still running after `shutdown_timeout`.",
    ))
    .attribute(
        Attribute::optional("shutdown_timeout", Type::String)
            .default(DEFAULT_SHUTDOWN_TIMEOUT)
            .validate(Validator::Custom(check_duration))
            .description("How long a clean shutdown may take before the VM is stopped hard (default 3m)."),
    )
    .attribute(Attribute::optional_computed("agent_enabled", Type::Bool).description("Enable the QEMU guest agent device."))
    .attribute(
        Attribute::optional("reboot_after_update", Type::Bool)
            .default(true)
            .description("Reboot a running VM after a change that only takes effect on boot (default true)."),
    )
    .attribute(
        Attribute::computed("ipv4_addresses", Type::list(Type::String))
            .description("The static cloud-init address, else what the guest agent reports."),
    )
    .attribute(Attribute::computed("ssh_host_public_keys", Type::list(Type::String)).description(
        "The guest's SSH host public keys (`/etc/ssh/ssh_host_*_key.pub`), read through the QEMU guest agent \
         when the VM is created, after cloud-init finished (it generates them on first boot). Empty without an \
         agent (`agent_enabled`). Read from the hypervisor, not over the network, so they can be trusted for \
         the first SSH connection.",
    ))
    .attribute(Attribute::computed("ssh_host_key_fingerprints", Type::list(Type::String)).description(
        "SHA256 fingerprints of `ssh_host_public_keys`, for an `ssh` block's `host_key_fingerprints`: resources \
         that configure this VM over SSH then verify its host key from the first connection, and a re-created \
         VM's new keys reach them in the same apply.",
    ))
    .block(NestedBlock::single("clone", clone))
    .block(NestedBlock::single("cpu", cpu))
    .block(NestedBlock::list("network_devices", nic))
    .block(NestedBlock::single("cloud_init", cloud_init));
    Schema::new(0, block)
}

/// `scsi0` -> Some(("scsi", 0)) when Proxmox has such a disk slot.
pub fn parse_interface(s: &str) -> Option<(&'static str, u32)> {
    let pos = s.find(|c: char| c.is_ascii_digit())?;
    let (bus, num) = s.split_at(pos);
    if num.len() > 1 && num.starts_with('0') {
        return None;
    }
    let n: u32 = num.parse().ok()?;
    DISK_BUSES.iter().find(|(b, max)| *b == bus && n <= *max).map(|(b, _)| (*b, n))
}
