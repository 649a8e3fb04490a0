//! The `strata_container` schema and its single-attribute validators.

use std::time::Duration;

use crate::framework::timeouts::parse_go_duration;
use crate::framework::{Attribute, Block, NestedBlock, Nesting, Schema, Timeouts, Type, Validator, Value};

pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "3m";

/// What only `root@pam` may set, as Proxmox's permission check words it, for the
/// descriptions and for naming the setting when Proxmox refuses it.
pub const ROOT_ONLY: &str = "Only `root@pam` may set this (log in with `username = \"root@pam\"` and a password): \
     Proxmox refuses it for every other user and for every API token, even one of root@pam.";

pub fn timeouts() -> Timeouts {
    Timeouts {
        create: Duration::from_secs(20 * 60),
        read: Duration::from_secs(5 * 60),
        update: Duration::from_secs(20 * 60),
        delete: Duration::from_secs(10 * 60),
    }
}

/// A hostname is one DNS label (Proxmox would also take a dotted name, but the
/// container's hostname is its first label and Kubernetes node names follow it).
fn check_hostname(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    let b = s.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS label: 1-63 letters, digits and hyphens, starting and ending with a letter or digit."
        ))
    }
}

/// `dhcp`, `manual` or an IPv4 address with prefix length.
pub fn check_ip(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    if s == "dhcp" || s == "manual" || s.parse::<ipnet::Ipv4Net>().is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is neither \"dhcp\", \"manual\" nor an IPv4 address in CIDR notation like \"10.0.0.10/24\"."
        ))
    }
}

fn check_ipv4(v: &Value) -> Result<(), String> {
    match v.as_str().map(|s| s.parse::<std::net::Ipv4Addr>()) {
        Some(Err(_)) => Err("Must be an IPv4 address, e.g. \"10.0.0.1\".".into()),
        _ => Ok(()),
    }
}

fn check_ostemplate(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    match s.split_once(':') {
        Some((storage, path)) if !storage.is_empty() && path.starts_with("vztmpl/") && path.len() > 7 => Ok(()),
        _ => Err(format!(
            "{s:?} is not an OS template volume like \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"."
        )),
    }
}

fn check_tags(v: &Value) -> Result<(), String> {
    let (Value::Set(items) | Value::List(items)) = v else { return Ok(()) };
    for t in items.iter().filter_map(Value::as_str) {
        let ok = t.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-+.".contains(&b));
        if !ok {
            return Err(format!(
                "Tag {t:?} is not how Proxmox stores tags: use lower-case letters, digits and _ - + . (starting with a letter, digit or _)."
            ));
        }
    }
    Ok(())
}

fn check_ssh_keys(v: &Value) -> Result<(), String> {
    let Value::List(items) = v else { return Ok(()) };
    for (i, s) in items.iter().filter_map(Value::as_str).enumerate() {
        let mut parts = s.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        if !known || parts.next().is_none() || s.contains('\n') {
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
        Some(Err(e)) => Err(format!("Must be a duration like \"30s\", \"10m\" or \"1h30m\": {e}.")),
        None => Ok(()),
    }
}

fn check_path(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(p) if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p == "/" => {
            Err(format!("{p:?} must be an absolute path inside the container other than / (without ..)."))
        }
        _ => Ok(()),
    }
}

const STORAGE_RE: &str = "[A-Za-z][A-Za-z0-9_.-]*";
pub const KUBERNETES_PRESET: &str =
    "`kubernetes_node = true` prepares the container for a kubelet and container runtime \
     inside it: features `nesting` (containerd's own namespaces and /proc, /sys mounts) and `keyctl` (runc and \
     containerd use the kernel keyring) are turned on, and swap is 0 (the kubelet refuses to run with swap by \
     default). The flags are applied on top of the `features` block, which may not turn them off. `keyctl` \
     makes this preset need `root@pam` credentials. Not settable through Proxmox's API, hence not done here: \
     `/dev/kmsg` inside the container (the kubelet reads it; add `lxc.mount.entry: /dev/kmsg dev/kmsg none \
     defaults,bind,create=file` to /etc/pve/lxc/VMID.conf as root on the node) and the AppArmor/cgroup \
     relaxations some CNI plugins need.";

pub fn schema() -> Schema {
    let clone = Block::new("Create the container as a clone of an existing container or container template instead of from `ostemplate`. Changing the source replaces the container.")
        .attribute(
            Attribute::required("source_id", Type::Number)
                .validate(Validator::IntBetween(100, 999_999_999))
                .description("VMID of the container template (or container) to clone, on the same node."),
        )
        .attribute(
            Attribute::optional("full", Type::Bool)
                .default(true)
                .description("Full clone (independent volumes, default) or linked clone (templates only)."),
        );
    let rootfs = Block::new("The root filesystem volume. Grown in place; shrinking is refused at plan time.")
        .attribute(
            Attribute::required("storage", Type::String)
                .validate(Validator::Matches(STORAGE_RE, "a Proxmox storage ID"))
                .description("Storage for the volume (content type `rootdir`), e.g. `local-lvm`."),
        )
        .attribute(
            Attribute::required("size_gb", Type::Number)
                .validate(Validator::IntBetween(1, 65536))
                .description("Size in GiB."),
        );
    let mount_point = Block::new(
        "A volume mounted in the container (Proxmox's `mp<n>`). A mount point is identified by its `path`, \
         never by the order of the blocks or its `mp<n>` number: reordering blocks plans nothing, a new block \
         takes the lowest `mp<n>` number not in use, and an imported container keeps every `mp<n>` whatever \
         its numbering (gaps included). The volume grows in place when `size_gb` grows; shrinking it and moving \
         it to another storage are refused at plan time. Changing `path` is removing one mount point and adding \
         another.\n\nRemoving a block detaches its volume and keeps it: Proxmox lists it as `unused<n>` in the \
         container's config (as `pct set --delete mp<n>` does), where it can be reattached or deleted by hand. \
         The volume is destroyed only when the removed block had `delete_on_remove = true` recorded by an \
         earlier apply (set it, apply, then remove the block). Volumes Strata did not detach itself, such as \
         other `unused<n>` entries, are never destroyed. Host-path bind mounts are not offered (only root@pam \
         may create them).",
    )
    .attribute(
        Attribute::required("storage", Type::String)
            .validate(Validator::Matches(STORAGE_RE, "a Proxmox storage ID"))
            .description("Storage for the volume."),
    )
    .attribute(
        Attribute::required("size_gb", Type::Number)
            .validate(Validator::IntBetween(1, 65536))
            .description("Size in GiB."),
    )
    .attribute(
        Attribute::required("path", Type::String)
            .validate(Validator::Custom(check_path))
            .description("Where it is mounted inside the container, e.g. `/var/lib/etcd`."),
    )
    .attribute(Attribute::optional("backup", Type::Bool).description("Include the volume in backups."))
    .attribute(Attribute::optional("read_only", Type::Bool).description("Mount read-only."))
    .attribute(Attribute::optional("delete_on_remove", Type::Bool).description(
        "Destroy the volume, and the data on it, when this block is later removed. Unset or false (the \
             default): a removed mount point's volume is detached and kept as `unused<n>`. Takes effect only \
             once applied: set it in one apply and remove the block in a later one. Changing it changes \
             nothing in Proxmox.",
    ));
    let network = Block::new("A network interface; the n-th block is Proxmox's `net<n>`.")
        .attribute(
            Attribute::required("name", Type::String)
                .validate(Validator::Matches("[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", "an interface name such as \"eth0\""))
                .description("Interface name inside the container, e.g. `eth0`."),
        )
        .attribute(
            Attribute::required("bridge", Type::String)
                .validate(Validator::Matches("[A-Za-z0-9][A-Za-z0-9_.-]*", "a bridge name such as \"vmbr0\""))
                .description("Bridge on the node, e.g. `vmbr0`."),
        )
        .attribute(
            Attribute::optional("ip", Type::String)
                .validate(Validator::Custom(check_ip))
                .description("`dhcp`, `manual`, or a static IPv4 address in CIDR notation (`10.0.0.10/24`)."),
        )
        .attribute(
            Attribute::optional("gateway", Type::String)
                .validate(Validator::Custom(check_ipv4))
                .description("Default gateway, with a static `ip` only."),
        )
        .attribute(
            Attribute::optional("tag", Type::Number).validate(Validator::IntBetween(1, 4094)).description("VLAN tag."),
        )
        .attribute(
            Attribute::optional("firewall", Type::Bool).description("Enable the Proxmox firewall on this interface."),
        )
        .attribute(
            Attribute::optional_computed("mac_address", Type::String)
                .validate(Validator::Matches(
                    "[0-9A-Fa-f][02468aceACE](:[0-9A-Fa-f]{2}){5}",
                    "a unicast MAC address like \"BC:24:11:00:00:01\"",
                ))
                .description("MAC address (`hwaddr`); Proxmox assigns one unless set."),
        );
    let features = Block::new("Container features (Proxmox's `features`). Compared flag by flag as Proxmox stores them, so its rewriting of the value causes no diff.")
        .attribute(Attribute::optional("nesting", Type::Bool).description("Allow nested namespaces and /proc, /sys mounts (container runtimes, systemd services). Any user with VM.Allocate may change it on an unprivileged container."))
        .attribute(Attribute::optional("keyctl", Type::Bool).description(format!("Allow the keyctl() system call (runc, containerd). Unprivileged containers only. {ROOT_ONLY}")))
        .attribute(Attribute::optional("fuse", Type::Bool).description(format!("Allow FUSE mounts. {ROOT_ONLY}")))
        .attribute(Attribute::optional("mknod", Type::Bool).description(format!("Allow mknod() of a few device nodes (experimental in Proxmox). {ROOT_ONLY}")));
    let startup = Block::new("Start and shutdown order when the node boots (Proxmox's `startup`).")
        .attribute(
            Attribute::optional("order", Type::Number)
                .validate(Validator::IntBetween(0, 99_999))
                .description("Start order (lower first; shutdown in reverse)."),
        )
        .attribute(
            Attribute::optional("up", Type::Number)
                .validate(Validator::IntBetween(0, 86_400))
                .description("Seconds to wait after starting it before the next one."),
        )
        .attribute(
            Attribute::optional("down", Type::Number)
                .validate(Validator::IntBetween(0, 86_400))
                .description("Seconds to wait for its shutdown."),
        );

    let block = Block::new(format!(
        "An LXC container on Proxmox VE, from an OS template (`ostemplate`) or cloned from a container template \
         (`clone`). Changes are applied in place where Proxmox allows; `ostemplate`, `clone`, `unprivileged`, \
         `vm_id` and `ssh_public_keys` replace the container. Values Proxmox rewrites (feature flags, network \
         options, tags) are compared the way it stores them, so they cause no perpetual diff. Import with \
         `node/vm_id`.\n\nSettings only `root@pam` may set (Proxmox refuses them for API tokens with HTTP 403, \
         and the error then names the setting): `features.keyctl`, `features.fuse`, `features.mknod`, any \
         feature of a privileged container (`unprivileged = false`), hence also `kubernetes_node = true`. \
         A create Proxmox refuses leaves nothing behind; a create that fails later is recorded and tainted, and \
         replaced by the next apply.\n\n{KUBERNETES_PRESET}"
    ))
    .attribute(Attribute::computed("id", Type::String).description("`node/vm_id`."))
    .attribute(
        Attribute::required("node", Type::String)
            .requires_replace()
            .validate(Validator::Matches("[A-Za-z][A-Za-z0-9_.-]*", "a Proxmox node name"))
            .description("Cluster node the container runs on. Changing it replaces the container."),
    )
    .attribute(
        Attribute::optional_computed("vm_id", Type::Number)
            .requires_replace()
            .validate(Validator::IntBetween(100, 999_999_999))
            .description("VMID. Allocated without collisions (also between parallel creates) when unset."),
    )
    .attribute(
        Attribute::required("hostname", Type::String)
            .validate(Validator::Custom(check_hostname))
            .description("Hostname (a DNS label). Changed in place."),
    )
    .attribute(
        Attribute::optional("ostemplate", Type::String)
            .validate(Validator::Custom(check_ostemplate))
            .description("OS template volume, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst` (see `strata_containers` / the storage's `vztmpl` content). Exactly one of `ostemplate` and `clone` for a new container; an imported one may have neither (Proxmox keeps no record of its source). Changing it replaces the container; adding it to an imported one only records it."),
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
            .description("Resource pool (must exist). Changed in place."),
    )
    .attribute(
        Attribute::optional_computed("cores", Type::Number)
            .validate(Validator::IntBetween(1, 8192))
            .description("CPU cores the container may use (Proxmox: 1-8192). Unset: all of the node's."),
    )
    .attribute(
        Attribute::optional_computed("memory_mb", Type::Number)
            .validate(Validator::IntBetween(16, 4 * 1024 * 1024))
            .description("Memory in MiB (Proxmox: at least 16). Unset: Proxmox's default (512) or the template's."),
    )
    .attribute(
        Attribute::optional_computed("swap_mb", Type::Number)
            .validate(Validator::IntBetween(0, 4 * 1024 * 1024))
            .description("Swap in MiB. Unset: Proxmox's default (512) or the template's; 0 with `kubernetes_node`."),
    )
    .attribute(
        Attribute::optional("unprivileged", Type::Bool)
            .default(true)
            .requires_replace()
            .description(format!("Run as an unprivileged container (default true, user namespaces). Proxmox cannot change it later: changing it replaces the container. With `false`, any `features` flag needs root@pam. {ROOT_ONLY}")),
    )
    .attribute(
        Attribute::optional("kubernetes_node", Type::Bool)
            .default(false)
            .description(KUBERNETES_PRESET),
    )
    .attribute(
        Attribute::optional("ssh_public_keys", Type::list(Type::String))
            .validate(Validator::Custom(check_ssh_keys))
            .description("OpenSSH public keys for root, written into the container when it is created (Proxmox cannot change them later: changing them replaces the container)."),
    )
    .attribute(
        Attribute::optional("password", Type::String)
            .write_only()
            .write_only_instead("log in with a key from `ssh_public_keys` instead")
            .description("Root password inside the container, set when it is created. Write-only: never stored in state or plans; changing it later has no effect."),
    )
    .attribute(Attribute::optional_computed("onboot", Type::Bool).description("Start the container when the node boots."))
    .attribute(Attribute::optional("started", Type::Bool).default(true).description(
        "Desired power state (default running). `false` shuts it down cleanly and stops it when it still runs after `shutdown_timeout`.",
    ))
    .attribute(
        Attribute::optional("shutdown_timeout", Type::String)
            .default(DEFAULT_SHUTDOWN_TIMEOUT)
            .validate(Validator::Custom(check_duration))
            .description("How long a clean shutdown may take before the container is stopped (default 3m)."),
    )
    .attribute(
        Attribute::computed("ipv4_addresses", Type::list(Type::String))
            .description("The IPv4 addresses the container reports (static ones from its config; DHCP leases while it runs)."),
    )
    .block(NestedBlock::single("clone", clone))
    .block(NestedBlock::single("rootfs", rootfs))
    .block(NestedBlock::new("mount_point", Nesting::Set, mount_point))
    .block(NestedBlock::list("network", network))
    .block(NestedBlock::single("features", features))
    .block(NestedBlock::single("startup", startup));
    Schema::new(0, block)
}
