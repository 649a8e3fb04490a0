//! The schema of `strata_worker`.

use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator};
use crate::resources::cluster_node;
use crate::resources::control_plane::{join_type, validate};

pub fn schema() -> Schema {
    let block = Block::new(
        "A Kubernetes worker node joined with kubeadm: installs the pkgs.k8s.io `kubeadm`, `kubelet` and \
         `kubectl` (held), writes a `kubeadm.k8s.io/v1beta4` JoinConfiguration (discovery by bootstrap token and \
         CA hash) to `/etc/kubernetes/strata/kubeadm-config.yaml` and runs `kubeadm join`. When the token in \
         `join` has expired (24 h by default), a fresh one is minted through the API at apply time. `labels` and \
         `taint`s are set on the Node object through the API and read back; the worker owns only the label keys \
         and taints (key and effect) it declares, so a change made outside Terraform to those shows in the plan, \
         while the kubelet's labels and the taints of Kubernetes (`node.kubernetes.io/not-ready`, \
         `unreachable`, `kubectl cordon`'s `unschedulable`) or of other tools are neither drift nor removed. A \
         change of the `ssh` block is applied in place and runs nothing on the node beyond a reachability check. \
         Destroy (and so a replacement) first cordons the Node and evicts its pods through the eviction API, \
         respecting PodDisruptionBudgets and bounded by `timeouts.delete`, then runs `kubeadm reset -f` and \
         deletes the Node object. A version upgrade drains the worker the same way (noting the cordon in the \
         Node annotation `strata.dev/cordoned-for-upgrade`), runs `kubeadm upgrade node` and installs the new \
         kubelet and kubectl, and uncordons it after (a node cordoned by hand before stays cordoned). If the \
         upgrade fails, the state keeps the old version and the node stays cordoned: the next plan shows the \
         upgrade again and its apply resumes and uncordons it. \
         Joining (at create, or a machine re-created blank), draining, upgrading and resetting a worker take the \
         Lease `kube-system/strata-worker-roll` on the cluster, so they go one worker at a time across every \
         resource and Terraform run: workers created in one apply install their packages at once and join in \
         turn. Waiting for the Lease is bounded by the operation's `timeouts`; the error then names its holder.\n\n\
         The worker takes the control plane's admin `kubeconfig` as well as `join`: a bootstrap token can join a \
         node but cannot mint another token, label or taint a Node, or delete one, which this resource must do \
         after the token expired and on destroy. Passing the credential explicitly keeps that privilege visible \
         in the configuration instead of hiding it inside `join`.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The Node name."));
    // The worker is one node: its top level has the shared `name`, `address` and `ssh`.
    let block = cluster_node::add_to(
        block,
        &cluster_node::Identity {
            name_rule: cluster_node::DNS_SUBDOMAIN,
            name_description: "The Node name (`nodeRegistration.name`). Changing it replaces the worker.",
            address_required: false,
            address_for: "",
            address_description: "The kubelet's node IP (`--node-ip`); default: the kubelet's choice.".into(),
            replace_on_change: true,
        },
    )
    .attribute(
        Attribute::required("kubernetes_version", Type::String)
            .validate(Validator::Custom(|v| {
                validate::KubeVersion::parse(v.as_str().unwrap_or_default()).map(|_| ())
            }))
            .description("`v1.MINOR.PATCH` of kubeadm and the kubelet, usually the control plane's. A change runs `kubeadm upgrade node` (one minor at a time, never down)."),
    )
    .attribute(
        Attribute::required("join", join_type())
            .sensitive()
            .description("The control plane's `join` output: endpoint, CA hash, bootstrap token and its expiry."),
    )
    .attribute(
        Attribute::required("kubeconfig", Type::String)
            .sensitive()
            .description("The control plane's admin `kubeconfig`: mints a fresh token when the one in `join` has expired, sets labels and taints, deletes the Node on destroy."),
    )
    .attribute(
        Attribute::optional("labels", Type::map(Type::String))
            .description("Node labels this resource owns (keys `[prefix/]name`, values at most 63 characters). Labels set by others are left alone."),
    )
    .attribute(Attribute::optional("install_packages", Type::Bool).default(true).description(
        "Install `kubeadm`, `kubelet` and `kubectl` `=VERSION-1.1` from the node's apt sources and hold them (default true).",
    ))
    .attribute(Attribute::computed("joined", Type::Bool).description("The node has kubeadm's kubelet.conf (it joined and was not reset)."))
    .block(NestedBlock::list(
        "taint",
        Block::new(
            "A taint of the Node this resource owns, identified by `key` and `effect`: its value changed outside \
             Terraform shows in the plan and is set back; a removed block removes only that taint. Taints the \
             worker does not declare are left alone. Taints Kubernetes manages (`node.kubernetes.io/not-ready` \
             and the like) cannot be declared.",
        )
        .attribute(Attribute::required("key", Type::String).description("Taint key, `[prefix/]name`."))
        .attribute(Attribute::optional("value", Type::String).description("Taint value, at most 63 characters; `\"\"` and unset both mean no value."))
        .attribute(
            Attribute::required("effect", Type::String)
                .description("`NoSchedule`, `PreferNoSchedule` or `NoExecute`."),
        ),
    ));
    Schema::new(0, block)
}
