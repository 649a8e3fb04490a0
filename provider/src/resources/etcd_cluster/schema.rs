//! The schema of `strata_etcd_cluster`.

use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator, Value};
use crate::resources::cluster_node;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";
pub const DEFAULT_SCHEDULE: &str = "hourly";
pub const DEFAULT_KEEP: i64 = 24;
pub const DEFAULT_RENEW_BEFORE_DAYS: i64 = 30;
pub const DEFAULT_VALIDITY_DAYS: i64 = 365;

/// An absolute, normalised path that is not `/` (the data directory is wiped when a
/// member is removed or replaced).
pub fn check_dir(v: &Value) -> Result<(), String> {
    let p = v.as_str().unwrap_or_default();
    let ok = p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("Must be an absolute, normalised path other than / (letters, digits, '.', '_', '-' and '/'), e.g. /var/lib/etcd.".into())
    }
}

fn member_status() -> Type {
    Type::list(Type::object([
        ("name", Type::String),
        ("id", Type::String),
        ("healthy", Type::Bool),
        ("configured", Type::Bool),
    ]))
}

fn issued() -> Type {
    Type::map(Type::object([("cert", Type::String), ("key", Type::String)]))
}

pub fn schema() -> Schema {
    let member = cluster_node::block(
        "One etcd member. A member is identified by its `address` (its peer URL, `https://ADDRESS:2380`, is its \
         identity in the running cluster), never by `name` or by its position in the list; a running cluster \
         is adopted by matching its members' peer URLs. Changing `ssh` changes only how Terraform reaches the \
         node: nothing runs on it. Renaming a member (a new `name`, same `address`) keeps its data and \
         membership: it gets certificates for the new name and is restarted with `--name` set to it, one member \
         at a time, healthy before the next. Members change one at a time and never below quorum: a new block \
         is added as a learner (`member add --learner`, started with `--initial-cluster-state existing`, promoted \
         once in sync, then healthy before the next), so 1 -> 3 and 3 -> 5 grow without losing the quorum; a \
         removed block is removed (`member remove`, stopped, its data wiped), and a plan that removes half or \
         more of the members at once is refused; a member whose node came back empty or is unhealthy is \
         replaced (the stale member removed, added anew). A changed `address` is a removal and an addition.",
        &cluster_node::Identity {
            name_rule: ("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a DNS label (lower-case letters, digits, '-')"),
            name_description: "Member name (`--name`), unique in the cluster; a SAN of its certificates.",
            address_required: true,
            address_for: "the member's client and peer URLs listen on it",
            address_description:
                "IP address the member listens on: `https://ADDRESS:2379` (clients) and `:2380` (peers).".into(),
            replace_on_change: false,
        },
    );
    let backup = Block::new(
        "Periodic snapshots: a systemd timer and service on every member run `etcdctl snapshot save` on the member \
         that is the leader at that moment (so a shared directory gets one snapshot per run), keeping the newest `keep`.",
    )
    .attribute(
        Attribute::required("dir", Type::String)
            .validate(Validator::Custom(check_dir))
            .description("Directory the snapshots go to, e.g. an NFS mount `/srv/nfs/k8s-backup/etcd`."),
    )
    .attribute(
        Attribute::optional("schedule", Type::String)
            .default(DEFAULT_SCHEDULE)
            .validate(Validator::Matches(r"[A-Za-z0-9 :,*/.~-]+", "a systemd calendar expression, e.g. hourly or *-*-* 02:00:00"))
            .description("When to take a snapshot: a systemd calendar expression (`OnCalendar=`), default `hourly`."),
    )
    .attribute(
        Attribute::optional("keep", Type::Number)
            .default(DEFAULT_KEEP)
            .validate(Validator::IntBetween(1, 100_000))
            .description("How many snapshots to keep (at least 1, default 24); older ones are deleted."),
    );
    let block = Block::new(
        "An external etcd cluster over TLS (Debian's `etcd-server` as `etcd.service`, or a release archive), for a \
         kubeadm control plane. The etcd must be 3.5.24 or newer: kubeadm 1.34 to 1.36 refuse an older external etcd \
         in preflight (`MinExternalEtcdVersion` 3.5.24-0, `[ERROR ExternalEtcdVersion]`), so an older one is refused \
         here first: at plan when `package_version` pins it, otherwise at apply from `etcd --version` on each member \
         once etcd is installed, before etcd is started or restarted. Debian 12 (3.4.23) and Debian 13 (3.5.16) ship \
         older versions; use a release archive or a package source that ships 3.5.24 or newer. Every member serves clients and peers over TLS with client-certificate authentication, \
         from certificates issued from `ca_cert` and kept in state. Membership changes one member at a time, \
         never below quorum. Read observes the cluster (member list, health over TLS from a member, certificates \
         on disk): an unhealthy or missing member is drift the next apply repairs. Changes that restart etcd \
         (certificates, settings, renames, package upgrades, a new CA) restart one member at a time, each \
         healthy before the next. Backups by a systemd timer; a new cluster can be restored from a snapshot. \
         A running healthy cluster with this CA is adopted, never re-initialised; one with another CA is \
         refused. When the state knows the cluster (it has an `id`) and every member is gone or without data \
         (the machines re-created blank, or every data directory lost), the plan warns and the apply restores \
         the cluster from `restore_from_snapshot`, or forms a new, empty one only with \
         `allow_empty_cluster = true`; otherwise it is refused and nothing is formed. Destroying the resource stops etcd on every member \
         and keeps its data directory unless `delete_data_on_destroy = true`. Certificates and keys are replaced \
         as sets, renamed into place under an exclusive `flock` on `/etc/etcd/pki`: a program that reads a pair \
         there while a rotation may run takes a shared lock while it reads (`flock -s /etc/etcd/pki cp ...`), or it \
         can, rarely, read a new certificate beside the old key.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The cluster id (hex), as `cluster_id`."))
    .attribute(
        Attribute::required("ca_cert", Type::String)
            .description("The etcd CA certificate (PEM), e.g. `strata_cluster_secrets.this.etcd_ca_cert`."),
    )
    .attribute(
        Attribute::required("ca_key", Type::String)
            .sensitive()
            .description("The etcd CA private key (PEM), e.g. `strata_cluster_secrets.this.etcd_ca_key`; signs the member and client certificates."),
    )
    .attribute(
        Attribute::optional("data_dir", Type::String)
            .default(DEFAULT_DATA_DIR)
            .validate(Validator::Custom(check_dir))
            .description("etcd's data directory on every member (default `/var/lib/etcd`). Fixed once the cluster exists: a plan that changes it is refused (moving the data is a snapshot and a restore)."),
    )
    .attribute(Attribute::optional("delete_data_on_destroy", Type::Bool).default(false).description(
        "Wipe every member's data directory when the cluster is destroyed. Off by default: destroy stops and \
         disables etcd and removes its certificates, settings and backup timer, but keeps the data (and the \
         snapshots in `backup.dir`).",
    ))
    .attribute(
        Attribute::optional("restore_from_snapshot", Type::String)
            .description(
                "A snapshot file (`etcdctl snapshot save`) on the machine that runs Terraform. When the cluster is \
                 created, or every member of the cluster in state has lost its data, every member's data directory \
                 is restored from it before etcd starts. Checked at plan time only when it will be used; never \
                 applied over a cluster that exists and has data (that one is adopted or kept).",
            ),
    )
    .attribute(Attribute::optional("allow_empty_cluster", Type::Bool).default(false).description(
        "Allow forming a new, empty cluster in place of one whose data every member has lost (state knows the \
         cluster, and every member is gone or without data) when `restore_from_snapshot` is not set. Off by \
         default: such an apply is refused, since API servers that still run would see an empty cluster.",
    ))
    .attribute(
        Attribute::optional("package_version", Type::String)
            .validate(Validator::Matches(r"[A-Za-z0-9.+~:-]+", "a Debian package version, e.g. 3.5.30-2"))
            .description("Pin the Debian packages `etcd-server` and `etcd-client` to this version (default: what the node's apt sources offer). A version older than 3.5.24 (e.g. Debian 12's `3.4.23-4+b4`) is refused at plan: kubeadm refuses it."),
    )
    .attribute(
        Attribute::optional("certificate_validity_days", Type::Number)
            .default(DEFAULT_VALIDITY_DAYS)
            .validate(Validator::IntBetween(1, 3650))
            .description("Validity of the member and client certificates in days (default 365)."),
    )
    .attribute(
        Attribute::optional("renew_before_days", Type::Number)
            .default(DEFAULT_RENEW_BEFORE_DAYS)
            .validate(Validator::IntBetween(0, 3650))
            .description("Re-issue a certificate this many days before it expires (default 30); members restart one at a time."),
    )
    .attribute(Attribute::computed("version", Type::String).description("The etcd version the members run (`etcd --version`)."))
    .attribute(
        Attribute::computed("endpoints", Type::list(Type::String))
            .description("Client URLs, `https://ADDRESS:2379`, for kube-apiserver's `--etcd-servers`."),
    )
    .attribute(Attribute::computed("ca_certificate", Type::String).description("The CA certificate clients trust (`--etcd-cafile`)."))
    .attribute(
        Attribute::computed("client_certificate", Type::String)
            .description("Client certificate for kube-apiserver (`--etcd-certfile`, CN `kube-apiserver-etcd-client`)."),
    )
    .attribute(
        Attribute::computed("client_private_key", Type::String)
            .sensitive()
            .description("Private key of `client_certificate` (`--etcd-keyfile`)."),
    )
    .attribute(Attribute::computed("cluster_id", Type::String).description("The cluster id etcd reports (hex); null when every member has lost the cluster's data (`id` keeps the id state knew)."))
    .attribute(
        Attribute::computed("members", member_status())
            .description("Each member as last observed: `name`, `id` (hex), `healthy` (answers over TLS), `configured` (its certificates and settings on disk are the ones in state)."),
    )
    .attribute(Attribute::computed("backup_unit", Type::String).description("The backup's systemd timer, e.g. `strata-etcd-backup.timer` (null without `backup`)."))
    .attribute(
        Attribute::computed("certificates", issued())
            .sensitive()
            .description("The certificates issued for the members and clients, kept so plans are stable."),
    )
    .block(NestedBlock::list("member", member))
    .block(NestedBlock::single(
        "release_archive",
        Block::new(
            "Install etcd from a release archive on the machine that runs Terraform instead of the Debian \
             packages (air-gapped sites): checked against `sha256` at plan time and again on each node, its \
             `etcd` and `etcdctl` installed in /usr/local/bin and run by an `etcd.service` of strata's own.",
        )
        .attribute(
            Attribute::required("path", Type::String)
                .description("The archive, e.g. `etcd-v3.5.30-linux-amd64.tar.gz` (a directory holding `etcd` and `etcdctl`); its etcd must be 3.5.24 or newer (checked on each node before etcd starts)."),
        )
        .attribute(
            Attribute::required("sha256", Type::String)
                .validate(Validator::Matches("[0-9a-fA-F]{64}", "a sha256 digest in hex (64 characters)"))
                .description("The archive's sha256, as published beside it (`sha256sum`)."),
        ),
    ))
    .block(NestedBlock::single("backup", backup));
    Schema::new(0, block)
}
