//! The schema of `strata_node_config`: the agent's node spec as typed Terraform blocks.
//! Defaults are the agent's (left unset here), so there is one definition of them.

use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator};
use crate::resources::cluster_node;

fn list_of(name: &str, description: &str, block: Block) -> NestedBlock {
    NestedBlock::list(name, Block { description: description.to_string(), ..block })
}

pub fn schema() -> Schema {
    let containerd =
        Block::new("containerd's config.toml (`version = 2` for containerd 1.x, `3` for 2.x) and registry mirrors.")
            .attribute(
                Attribute::optional("version", Type::Number)
                    .validate(Validator::IntBetween(2, 3))
                    .description("Config schema: 2 for containerd 1.x, 3 for containerd 2.x."),
            )
            .attribute(
                Attribute::optional("systemd_cgroup", Type::Bool)
                    .description("`SystemdCgroup` for runc (the kubelet's cgroup driver must match)."),
            )
            .attribute(
                Attribute::optional("sandbox_image", Type::String)
                    .description("Pause image, e.g. `registry.k8s.io/pause:3.9`."),
            )
            .attribute(
                Attribute::optional("config_path", Type::String).description("Registry hosts directory (`certs.d`)."),
            )
            .block(list_of(
                "registry_mirror",
                "A registry's mirrors, written as `certs.d/<registry>/hosts.toml`.",
                Block::new("")
                    .attribute(
                        Attribute::required("registry", Type::String).description("Registry host, e.g. `docker.io`."),
                    )
                    .attribute(
                        Attribute::required("endpoints", Type::list(Type::String))
                            .description("Mirror URLs, tried in order."),
                    )
                    .attribute(Attribute::optional("server", Type::String).description("Upstream server URL."))
                    .attribute(
                        Attribute::optional("capabilities", Type::list(Type::String))
                            .description("e.g. `[\"pull\", \"resolve\"]`."),
                    )
                    .attribute(Attribute::optional("ca_cert", Type::String).description(
                        "The CA certificate (PEM) that signed the mirrors' certificates, written beside \
                         hosts.toml as `mirror-ca.crt` (e.g. `strata_image_registry.this.ca_cert`); without it \
                         the node's trust store.",
                    ))
                    .attribute(Attribute::optional("fallback", Type::Bool).description(
                        "Whether containerd may fall back to the upstream `server` when no mirror answers \
                         (containerd's default, true). An air-gapped site sets false: the last mirror becomes \
                         the `server`, so a broken mirror fails the pull naming the mirror instead of looking \
                         like an ignored one. Then every endpoint must be HTTPS and `ca_cert` is required.",
                    )),
            ));
    let kubelet = Block::new("KubeletConfiguration drop-in `/etc/kubernetes/kubelet.conf.d/50-strata.conf` (the kubelet's `--config-dir`, passed in `/etc/default/kubelet`); kubeadm's `/var/lib/kubelet/config.yaml` is left to kubeadm.")
        .attribute(
            Attribute::optional("cgroup_driver", Type::String)
                .validate(Validator::OneOf(vec!["systemd", "cgroupfs"]))
                .description("`systemd` or `cgroupfs`."),
        )
        .attribute(
            Attribute::optional("cluster_dns", Type::list(Type::String)).description("Cluster DNS service addresses."),
        )
        .attribute(
            Attribute::optional("cluster_domain", Type::String).description("Cluster domain, e.g. `cluster.local`."),
        )
        .attribute(
            Attribute::optional("rotate_certificates", Type::Bool)
                .description("Rotate the kubelet client certificate."),
        )
        .attribute(
            Attribute::optional("eviction_hard", Type::map(Type::String))
                .description("Hard eviction thresholds, e.g. `{\"memory.available\" = \"200Mi\"}`."),
        )
        .attribute(
            Attribute::optional("extra_args", Type::map(Type::String))
                .description("KUBELET_EXTRA_ARGS flags without `--`, e.g. `{\"node-ip\" = \"10.0.0.5\"}`."),
        )
        .attribute(
            Attribute::optional("client_ca_file", Type::String)
                .description("CA for client certificate authentication."),
        )
        .attribute(Attribute::optional("static_pod_path", Type::String).description("Static pod manifests directory."));
    let crictl = Block::new("`/etc/crictl.yaml`.")
        .attribute(
            Attribute::required("runtime_endpoint", Type::String)
                .description("e.g. `unix:///run/containerd/containerd.sock`."),
        )
        .attribute(
            Attribute::optional("image_endpoint", Type::String)
                .description("Image service endpoint (default: the runtime's)."),
        )
        .attribute(
            Attribute::optional("timeout", Type::Number)
                .validate(Validator::IntBetween(1, 3600))
                .description("Seconds."),
        );

    let block = Block::new(
        "The system configuration of a Kubernetes node (containerd, kubelet, crictl, sysctl, kernel modules, swap, \
         apt sources, packages, services, files), applied by `strata-agent` over SSH the way Ansible would, idempotently and in \
         milliseconds. The provider uploads the agent when it is missing or of another build. Every refresh runs \
         the agent's `check`: what would change shows in `drift`, and the next apply restores it (restarting only \
         the services whose configuration changed). The agent records on the node what it manages: a file, registry \
         mirror, apt source or sysctl that leaves the configuration is removed (a sysctl gets back its value from \
         before) on the next apply, and shows in `drift` until then.",
    )
    .attribute(Attribute::computed("id", Type::String).description(
        "The node's `ssh.host` at create. It stays when `ssh` changes: `ssh` only says how Terraform reaches the \
         node, and changing it (host text, user, port, key, bastion, host keys) is an in-place update that only \
         checks that the node answers.",
    ))
    .attribute(
        Attribute::optional("root", Type::String)
            .requires_replace()
            .validate(Validator::Matches("/[A-Za-z0-9._/-]*", "an absolute path"))
            .description("Write files under this directory instead of `/` (image building, test beds). Kernel, systemd and apt state stay the node's own unless `simulate` is set."),
    )
    .attribute(
        Attribute::optional("simulate", Type::Bool)
            .requires_replace()
            .description("For test beds without systemd only: kernel, systemd and apt state are simulated as files inside `root` (required) instead of running `sysctl`, `modprobe`, `systemctl` and `apt-get` on the node. The agent refuses a `root` that is the node's own system."),
    )
    .attribute(Attribute::optional("agent_binary", Type::String).description(
        "Path (on the machine running Terraform) of a strata-agent build to upload instead of the one shipped \
         with the provider, e.g. one built for aarch64 nodes. Its architecture is checked against the node's \
         (`uname -m`) before anything is uploaded.",
    ))
    .attribute(Attribute::optional("sysctl", Type::map(Type::String)).description("Kernel parameters: drop-in file plus live value."))
    .attribute(Attribute::optional("kernel_modules", Type::list(Type::String)).description("Modules to load now and at boot."))
    .attribute(Attribute::optional("swap_off", Type::Bool).description("Turn swap off now, in /etc/fstab and swap units."))
    .attribute(Attribute::computed("agent_sha256", Type::String).description("Checksum of the agent build on the node."))
    .attribute(
        Attribute::computed("drift", Type::list(Type::String))
            .description("What the agent's `check` found different on the node at the last refresh; empty when in sync."),
    )
    .attribute(Attribute::computed("changed_tasks", Type::list(Type::String)).description("Tasks the last apply changed (handlers included)."))
    .block(cluster_node::ssh_block())
    .block(NestedBlock::single("containerd", containerd))
    .block(NestedBlock::single("kubelet", kubelet))
    .block(NestedBlock::single("crictl", crictl))
    .block(list_of(
        "package",
        "A Debian package present at a version, optionally held.",
        Block::new("")
            .attribute(Attribute::required("name", Type::String).description("Package name."))
            .attribute(Attribute::optional("version", Type::String).description("Exact version (default: any)."))
            .attribute(Attribute::optional("hold", Type::Bool).description("`apt-mark hold` it."))
            .attribute(Attribute::optional("allow_downgrade", Type::Bool).description("Let apt install a `version` older than the installed one (`--allow-downgrades`)."))
            .attribute(Attribute::optional("allow_change_held", Type::Bool).description("Let apt change the version of a held package (`--allow-change-held-packages`); without it that is an error.")),
    ))
    .block(NestedBlock::single(
        "apt",
        Block::new("How apt runs for `package` (always non-interactive).")
            .attribute(Attribute::optional("lists_max_age", Type::Number).validate(Validator::IntBetween(0, 31_536_000)).description("Seconds: `apt-get update` before an install when the package lists are older (default 3600), missing, or an `apt_repository` changed."))
            .attribute(Attribute::optional("lock_timeout", Type::Number).validate(Validator::IntBetween(0, 86_400)).description("Seconds to wait for another apt/dpkg to release its lock (default 120).")),
    ))
    .block(list_of(
        "apt_repository",
        "A deb822 apt source, `/etc/apt/sources.list.d/<name>.sources`, e.g. pkgs.k8s.io or a local mirror. A change refreshes the package lists before the next install.",
        Block::new("")
            .attribute(Attribute::required("name", Type::String).description("File name without `.sources`."))
            .attribute(Attribute::required("uris", Type::list(Type::String)).description("e.g. `[\"https://pkgs.k8s.io/core:/stable:/v1.35/deb/\"]`."))
            .attribute(Attribute::required("suites", Type::list(Type::String)).description("e.g. `[\"/\"]` for a flat repository, `[\"bookworm\"]`."))
            .attribute(Attribute::optional("components", Type::list(Type::String)).description("e.g. `[\"main\"]`; none for a flat repository."))
            .attribute(Attribute::optional("architectures", Type::list(Type::String)).description("Default: apt's."))
            .attribute(Attribute::optional("key", Type::String).description("Signing key, ASCII-armored or a binary keyring in base64; written to `/etc/apt/keyrings/<name>.asc` (`.gpg`) and named in `Signed-By`."))
            .attribute(Attribute::optional("trusted", Type::Bool).description("An unsigned local mirror (`Trusted: yes`) instead of `key`.")),
    ))
    .block(list_of(
        "service",
        "A systemd service's desired state.",
        Block::new("")
            .attribute(Attribute::required("name", Type::String).description("Unit name."))
            .attribute(Attribute::optional("enabled", Type::Bool).description("Enabled at boot. Units that cannot be enabled (static, generated, indirect, alias) count as enabled."))
            .attribute(Attribute::optional("running", Type::Bool).description("Running now. A oneshot unit that already ran successfully since boot counts as running."))
            .attribute(Attribute::optional("masked", Type::Bool).description("`true` masks the unit, `false` unmasks it; unset, a masked unit is an error when `enabled` or `running` is `true`.")),
    ))
    .block(list_of(
        "file",
        "A file with this content, mode and owner (written atomically).",
        Block::new("")
            .attribute(Attribute::required("path", Type::String).description("Absolute path."))
            .attribute(Attribute::required("content", Type::String).sensitive().description("Content (sensitive: it may hold credentials, so plans do not show it)."))
            .attribute(Attribute::optional("mode", Type::String).validate(Validator::Matches("0?[0-7]{3,4}", "an octal mode like 0644")).description("Mode, e.g. `0644`."))
            .attribute(Attribute::optional("owner", Type::String).description("Owner."))
            .attribute(Attribute::optional("group", Type::String).description("Group."))
            .attribute(Attribute::optional("notify", Type::list(Type::String)).description("Services to restart when the file changes.")),
    ))
    .block(list_of(
        "directory",
        "A directory with this mode and owner.",
        Block::new("")
            .attribute(Attribute::required("path", Type::String).description("Absolute path."))
            .attribute(Attribute::optional("mode", Type::String).validate(Validator::Matches("0?[0-7]{3,4}", "an octal mode like 0755")).description("Mode."))
            .attribute(Attribute::optional("owner", Type::String).description("Owner."))
            .attribute(Attribute::optional("group", Type::String).description("Group.")),
    ));
    Schema::new(0, block)
}
