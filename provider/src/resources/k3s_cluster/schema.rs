//! The schema of `strata_k3s_cluster`.

use super::model::{DEFAULT_FLANNEL_BACKEND, DEFAULT_RETENTION, DEFAULT_SCHEDULE};
use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator};
use crate::resources::etcd_cluster::check_dir;
use crate::resources::{cluster_node, k3s};

/// What `disable` takes (k3s's packaged components).
pub const DISABLE: [&str; 6] =
    ["traefik", "servicelb", "local-storage", "metrics-server", "coredns", "helm-controller"];
/// k3s's `--flannel-backend` values.
pub const FLANNEL_BACKENDS: [&str; 4] = ["vxlan", "host-gw", "wireguard-native", "none"];

fn server_status() -> Type {
    Type::list(Type::object([
        ("name", Type::String),
        ("active", Type::Bool),
        ("version", Type::String),
        ("configured", Type::Bool),
    ]))
}

/// `labels` and `taints` of a k3s node (a server block, or the agent).
pub fn node_labels_and_taints(block: Block) -> Block {
    block
        .attribute(Attribute::optional("labels", Type::map(Type::String)).description(
            "Node labels (`node-label`), set by k3s when the Node registers; on an update they are also set \
             through the API (k3s does not change a registered Node's labels), and labels removed from here are \
             removed. Labels set by others are left alone. (For an agent, the API part needs `kubeconfig`.)",
        ))
        .attribute(Attribute::optional("taints", Type::list(Type::String)).description(
            "Node taints (`node-taint`) as `key[=value]:Effect`, Effect one of NoSchedule, PreferNoSchedule, \
             NoExecute; set by k3s when the Node registers, and on an update through the API like `labels` (a \
             taint is identified by key and effect).",
        ))
}

pub fn schema() -> Schema {
    let server = node_labels_and_taints(cluster_node::block(
        "A k3s server (control plane and, without `datastore`, an embedded etcd member). Identified by `name` \
         (its Node name). The first block initialises the cluster (`cluster-init: true`); the others join \
         `server_url`. Servers are added, rolled and removed one at a time.",
        &cluster_node::Identity {
            name_rule: cluster_node::DNS_SUBDOMAIN,
            name_description: "The Node name (`node-name`), the server's identity.",
            address_required: false,
            address_for: "",
            address_description: "The node IP (`node-ip`); default: `ssh.host` for server_url, k3s's choice for \
                                  the node IP."
                .into(),
            replace_on_change: false,
        },
    ));
    let datastore = Block::new(
        "An external datastore instead of embedded etcd (`datastore-endpoint`); the TLS files are written to \
         `/etc/rancher/k3s/datastore/`. With it any number of servers is allowed, and `etcd_snapshot` and \
         `restore_from_snapshot` are refused.",
    )
    .attribute(
        Attribute::required("endpoint", Type::String)
            .description("e.g. `https://10.0.0.1:2379,https://10.0.0.2:2379` (etcd) or a SQL DSN."),
    )
    .attribute(Attribute::optional("ca_cert", Type::String).description("CA certificate (PEM) of the datastore."))
    .attribute(Attribute::optional("cert", Type::String).description("Client certificate (PEM)."))
    .attribute(Attribute::optional("key", Type::String).sensitive().description("Client private key (PEM)."));
    let etcd_snapshot = Block::new("Scheduled snapshots of the embedded etcd, taken by k3s on every server.")
        .attribute(
            Attribute::optional("schedule", Type::String)
                .default(DEFAULT_SCHEDULE)
                .validate(Validator::Matches(r"\S+( \S+){4}", "a 5-field cron expression"))
                .description("Cron schedule (`etcd-snapshot-schedule-cron`), default `0 */12 * * *`."),
        )
        .attribute(
            Attribute::optional("retention", Type::Number)
                .default(DEFAULT_RETENTION)
                .validate(Validator::IntBetween(1, 10_000))
                .description("Snapshots kept per server (`etcd-snapshot-retention`), default 5."),
        )
        .attribute(Attribute::optional("dir", Type::String).validate(Validator::Custom(check_dir)).description(
            "Absolute directory (`etcd-snapshot-dir`); default k3s's `/var/lib/rancher/k3s/server/db/snapshots`.",
        ));
    let block = Block::new(
        "A k3s cluster of servers, installed without k3s's install script: the binary and image archives from \
         `airgap` (checked by SHA-256 at plan and on the node) or already on the nodes at `version`, a systemd \
         unit `k3s.service`, `/etc/rancher/k3s/config.yaml` and `registries.yaml`. Create starts the first server \
         (`cluster-init`), waits for `/readyz` and its Node Ready, then starts each other server in turn, its Node \
         Ready before the next. A change of `version`, a server's config or the shared settings rolls the servers \
         one at a time: cordon and drain (under the cluster-wide Lease `kube-system/strata-worker-roll` that \
         workers and `strata_k3s_agent`s take, so they never go down together), write the binary and config, \
         restart, wait for the Node Ready at the new version, uncordon. An added server joins; a server whose machine came back blank has its old Node and etcd \
         member removed and joins again (not the first block: it would initialise a new cluster, and is refused); a \
         removed one is drained, stopped and disabled, and its Node deleted (k3s removes its etcd member when its Node is \
         deleted). Read checks each server's service, version and config.yaml. When the state knows the cluster \
         and every server is gone (machines re-created blank), the plan warns and the apply restores it from \
         `restore_from_snapshot`, or forms a new, empty one only with `allow_empty_cluster = true`; otherwise it \
         is refused and nothing is formed. Destroy stops and disables k3s on every server and keeps \
         `/var/lib/rancher/k3s` unless `delete_data_on_destroy = true`.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The server URL at creation."))
    .attribute(
        Attribute::required("version", Type::String)
            .validate(Validator::Matches(k3s::VERSION_RULE.0, k3s::VERSION_RULE.1))
            .description("The pinned k3s release, e.g. `v1.36.1+k3s1`. A change rolls the servers one at a time."),
    )
    .attribute(Attribute::optional_computed("token", Type::String).sensitive().description(
        "The cluster secret (`token`). Generated at create when unset, and kept. It cannot change on an existing \
         cluster: k3s's bootstrap data is encrypted with it (`bootstrap data already found and encrypted with \
         different token`).",
    ))
    .attribute(Attribute::optional("tls_san", Type::list(Type::String)).description(
        "Extra names and addresses of the API server certificate (`tls-san`). The first is the registration \
         address: `server_url` is `https://<tls_san[0]>:6443` (e.g. a load balancer), else the first server's.",
    ))
    .attribute(
        Attribute::optional("disable", Type::set(Type::String))
            .validate(Validator::Custom(|v| {
                let crate::framework::Value::Set(items) = v else { return Ok(()) };
                for i in items {
                    if let Some(s) = i.as_str() {
                        if !DISABLE.contains(&s) {
                            return Err(format!("{s:?} is not one of {}", DISABLE.join(", ")));
                        }
                    }
                }
                Ok(())
            }))
            .description("Packaged components not to deploy (`disable`): traefik, servicelb, local-storage, metrics-server, coredns, helm-controller."),
    )
    .attribute(
        Attribute::optional("flannel_backend", Type::String)
            .default(DEFAULT_FLANNEL_BACKEND)
            .validate(Validator::OneOf(FLANNEL_BACKENDS.to_vec()))
            .description("`flannel-backend`: vxlan (default), host-gw, wireguard-native or none."),
    )
    .attribute(Attribute::optional("config", Type::map(Type::String)).description(
        "Extra `config.yaml` keys (flag names without `--`), checked at plan against the server flags of \
         `version`; keys the resource writes itself are refused, naming the attribute to use.",
    ))
    .attribute(Attribute::optional("restore_from_snapshot", Type::String).description(
        "An etcd snapshot file (`k3s etcd-snapshot save`, copied off the servers) on the machine that runs \
         Terraform, used only when the cluster is formed (created, or every server found gone; checked at plan \
         then): it is uploaded to the first server and `k3s server --cluster-reset \
         --cluster-reset-restore-path=PATH` runs once there with its config.yaml and the cluster's token (the \
         snapshot's bootstrap data is encrypted with it), then the servers start and join. Ignored afterwards: \
         never restored over a cluster that runs.",
    ))
    .attribute(Attribute::optional("allow_empty_cluster", Type::Bool).description(
        "When the state knows the cluster and every server is gone, form a new, empty cluster instead of \
         refusing (without `restore_from_snapshot`).",
    ))
    .attribute(
        Attribute::optional("delete_data_on_destroy", Type::Bool)
            .default(false)
            .description("Delete `/var/lib/rancher/k3s` and `/etc/rancher/k3s` on destroy (default false: kept)."),
    )
    .attribute(Attribute::computed("server_url", Type::String).description("`https://<tls_san[0] or the first server's address>:6443`."))
    .attribute(Attribute::computed("kubeconfig", Type::String).sensitive().description(
        "The admin kubeconfig (`/etc/rancher/k3s/k3s.yaml` of the first server) pointing at `server_url`; the \
         certificate served there was checked against its CA.",
    ))
    .attribute(Attribute::computed("ca_cert", Type::String).description("The cluster CA (`server-ca.crt`)."))
    .attribute(Attribute::computed("join_token", Type::String).sensitive().description(
        "The full token (`K10<CA hash>::server:<secret>`, `/var/lib/rancher/k3s/server/token`): give it to \
         `strata_k3s_agent`s, which then check the CA they are served.",
    ))
    .attribute(Attribute::computed("servers", server_status()).description(
        "Each server as last read: k3s.service active, the installed version, config.yaml as written.",
    ))
    .block(NestedBlock::list("server", server).items(1, 0))
    .block(NestedBlock::single("datastore", datastore))
    .block(NestedBlock::single("etcd_snapshot", etcd_snapshot))
    .block(k3s::airgap::block())
    .block(k3s::registry::block());
    Schema::new(0, block)
}
