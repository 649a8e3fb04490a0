//! The schema of `strata_control_plane`.

use super::validate;
use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator, Value};
use crate::resources::cluster_node;

pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub const DEFAULT_KUBECONFIG_VALIDITY_DAYS: i64 = 365;
pub const DEFAULT_KUBECONFIG_RENEW_BEFORE_DAYS: i64 = 30;
pub const DEFAULT_JOIN_TOKEN_TTL_HOURS: i64 = 24;
/// kubeadm's own default for leaf certificates (`certificateValidityPeriod`).
pub const DEFAULT_CERTIFICATE_VALIDITY: &str = "8760h";
pub const DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS: i64 = 30;

fn check<T>(f: fn(&str) -> Result<T, String>) -> impl Fn(&Value) -> Result<(), String> {
    move |v| f(v.as_str().unwrap_or_default()).map(|_| ())
}

pub fn join_type() -> Type {
    Type::object([
        ("endpoint", Type::String),
        ("ca_cert_hash", Type::String),
        ("token", Type::String),
        ("token_expires_at", Type::String),
    ])
}

fn node_status() -> Type {
    Type::list(Type::object([
        ("name", Type::String),
        ("reachable", Type::Bool),
        ("joined", Type::Bool),
        ("ca_matches", Type::Bool),
        ("kubernetes_version", Type::String),
    ]))
}

fn pem(name: &str, what: &str) -> Attribute {
    Attribute::required(name, Type::String).description(format!("{what} (PEM)."))
}

fn key(name: &str, what: &str) -> Attribute {
    Attribute::required(name, Type::String).sensitive().description(format!("{what} (PEM)."))
}

pub fn schema() -> Schema {
    let node = cluster_node::block(
        "A control-plane node. `name` is its identity and its Kubernetes Node name, fixed when it joins: renaming a \
         joined node is refused at plan (remove it in one apply, add it in the next). Changing `ssh` (host text, \
         user, port, keys, bastion) is an in-place update that only reaches the node again and changes nothing \
         on it. The first node runs `kubeadm init`; the others `kubeadm join --control-plane`, one at a time, with \
         the same PKI copied over SSH (no uploaded certificate key that expires). A node removed from the list \
         leaves the cluster (`kubeadm reset`, its Node deleted; one that no longer answers is only deleted). \
         Reconfiguration, certificate renewal and upgrades roll one node at a time, ready before the next.",
        &cluster_node::Identity {
            name_rule: cluster_node::DNS_SUBDOMAIN,
            name_description: "The Node name (`nodeRegistration.name`).",
            address_required: true,
            address_for: "the API server's advertise address",
            address_description: "The node's IP address: the API server advertises and serves on `ADDRESS:6443`."
                .into(),
            replace_on_change: false,
        },
    );
    let etcd = Block::new("The external etcd cluster, typically from `strata_etcd_cluster`.")
        .attribute(
            Attribute::required("endpoints", Type::list(Type::String))
                .description("Client URLs, e.g. `strata_etcd_cluster.this.endpoints`."),
        )
        .attribute(pem("ca_cert", "The etcd CA certificate (`etcd.external.caFile`)"))
        .attribute(pem(
            "client_cert",
            "The API server's etcd client certificate (`strata_etcd_cluster.this.client_certificate`)",
        ))
        .attribute(key("client_key", "Its private key (`strata_etcd_cluster.this.client_private_key`)"))
        .attribute(Attribute::optional("ca_key", Type::String).sensitive().description(
            "The etcd CA private key (PEM). When set it is placed at `/etc/kubernetes/pki/etcd/ca.key` (as kubeadm \
             does with stacked etcd), so importing `strata_cluster_secrets` from a control-plane node brings back \
             the etcd CA too after a lost state. The API servers do not need it.",
        ));
    let cni = Block::new(
        "The pod network, applied with `kubectl apply` on the first node after init. The manifest comes from a \
         local file (air-gapped sites), with the pod CIDR given to kubeadm written into it.",
    )
    .attribute(
        Attribute::required("type", Type::String)
            .validate(Validator::OneOf(validate::CNI_TYPES.to_vec()))
            .description("`calico`, `flannel` or `none` (the CNI is installed by other means)."),
    )
    .attribute(Attribute::optional("manifest_file", Type::String).description(
        "The CNI manifest on the machine that runs Terraform (e.g. calico.yaml or kube-flannel.yml). Required \
         unless `type = \"none\"`. Calico: `CALICO_IPV4POOL_CIDR`, `CALICO_IPV4POOL_IPIP` and \
         `CALICO_IPV4POOL_VXLAN` of the calico-node container are set; Flannel: `Network` and `Backend.Type` of \
         `net-conf.json` in the `kube-flannel-cfg` ConfigMap.",
    ))
    .attribute(
        Attribute::optional("calico_encapsulation", Type::String)
            .validate(Validator::OneOf(validate::CALICO_ENCAPSULATIONS.to_vec()))
            .description("Calico's pod traffic encapsulation: `IPIP` (default), `VXLAN` or `None`."),
    )
    .attribute(
        Attribute::optional("flannel_backend", Type::String)
            .validate(Validator::OneOf(validate::FLANNEL_BACKENDS.to_vec()))
            .description("Flannel's backend: `vxlan` (default) or `host-gw`."),
    );
    let block = Block::new(
        "A kubeadm high-availability Kubernetes control plane behind a load-balanced endpoint, on external etcd, \
         with the identity from `strata_cluster_secrets`: the CAs and service-account keys are placed in \
         `/etc/kubernetes/pki` before kubeadm runs, so a rebuilt cluster keeps its identity. Installs the \
         pkgs.k8s.io packages `kubeadm`, `kubelet`, `kubectl` at `kubernetes_version` (held), writes a \
         `kubeadm.k8s.io/v1beta4` configuration to `/etc/kubernetes/strata/kubeadm-config.yaml`, validates it, \
         and runs `kubeadm init` on the first node and `kubeadm join --control-plane` on the others, one at a \
         time, with bootstrap tokens minted at apply time. Read probes the nodes (kubeadm's files, the CA on \
         disk) and `/readyz` through the endpoint verified against the cluster CA; a node that does not answer is \
         a warning and drift. A healthy running control plane with the same CA is adopted, never initialised \
         again; one with another CA is refused. Changing `kubernetes_version` upgrades in place: first an etcd \
         snapshot on the first node (`/var/lib/strata/etcd-snapshots/pre-upgrade-FROM-to-TO-TIMESTAMP.db`, \
         checked, reported as `last_upgrade_snapshot`; if it fails, no node is touched), then `kubeadm upgrade \
         apply` on the first node and `kubeadm upgrade node` on the others, one at a time; skipping a minor \
         version or downgrading is refused at plan time. The kubelet's own configuration is kubeadm's \
         (`/var/lib/kubelet/config.yaml`); `strata_node_config` owns its drop-in directory. On a running cluster \
         (see the Day-2 operations guide): `cluster_name`, `pod_cidr`, `service_cidr` and `cluster_domain` are \
         refused at plan time; certificates within `certificates_renew_before_days` of expiry are renewed one \
         node at a time (`kubeadm certs renew all`, static pods restarted, the node serving its new certificate \
         and ready before the next); a change of the etcd endpoints, `cert_sans`, `endpoint` or `api_server_extra_args` uploads the \
         kubeadm configuration and rolls through the nodes one at a time (`kubeadm init phase certs apiserver` \
         with the old certificate moved aside when the SANs changed, `kubeadm init phase control-plane \
         apiserver`); a failed upgrade stops at the failed node (the nodes after it untouched) and keeps the old \
         version in state, with each node's version in `nodes`, so the next plan shows the upgrade again and its \
         apply resumes at that node (no second `kubeadm upgrade apply` once it succeeded); a removed \
         node is reset and its Node deleted, and a removed node that no longer answers does not block the apply.",
    )
    .attribute(Attribute::computed("id", Type::String).description("The cluster name."))
    .attribute(
        Attribute::optional("cluster_name", Type::String)
            .default(DEFAULT_CLUSTER_NAME)
            .requires_replace()
            .validate(Validator::Matches("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a DNS label"))
            .description("kubeadm's `clusterName` and the kubeconfig's cluster name (default `kubernetes`) Fixed at init: a change is refused at plan time while any node has joined (replacing would run `kubeadm reset -f` on every node); with no node joined it replaces the resource."),
    )
    .attribute(
        Attribute::required("endpoint", Type::String)
            .validate(Validator::Custom(|v| check(validate::endpoint)(v)))
            .description("The API endpoint `host:port`, typically the load balancer's VIP and 6443: `controlPlaneEndpoint`, the kubeconfig's server, a SAN of every API server certificate."),
    )
    .attribute(
        Attribute::required("kubernetes_version", Type::String)
            .validate(Validator::Custom(|v| check(validate::KubeVersion::parse)(v)))
            .description("`v1.MINOR.PATCH`, e.g. `v1.35.0`. A change upgrades in place, one minor version at a time; a skipped minor or a downgrade is refused at plan time."),
    )
    .attribute(
        Attribute::optional("pod_cidr", Type::String)
            .default(DEFAULT_POD_CIDR)
            .requires_replace()
            .validate(Validator::Custom(|v| check(validate::cidr)(v)))
            .description("Pod network (`networking.podSubnet`, and the CNI's pool), default `10.244.0.0/16` Fixed at init: a change is refused at plan time while any node has joined (replacing would run `kubeadm reset -f` on every node); with no node joined it replaces the resource."),
    )
    .attribute(
        Attribute::optional("service_cidr", Type::String)
            .default(DEFAULT_SERVICE_CIDR)
            .requires_replace()
            .validate(Validator::Custom(|v| check(validate::service_cidr)(v)))
            .description("Service network (`networking.serviceSubnet`), default `10.96.0.0/12`, at most a /12 (IPv6: /108) as kubeadm and the API server require; must not overlap `pod_cidr` Fixed at init: a change is refused at plan time while any node has joined (replacing would run `kubeadm reset -f` on every node); with no node joined it replaces the resource."),
    )
    .attribute(
        Attribute::optional("cluster_domain", Type::String)
            .default(DEFAULT_CLUSTER_DOMAIN)
            .requires_replace()
            .description("Cluster DNS domain (`networking.dnsDomain`), default `cluster.local` Fixed at init: a change is refused at plan time while any node has joined (replacing would run `kubeadm reset -f` on every node); with no node joined it replaces the resource."),
    )
    .attribute(
        Attribute::optional("cert_sans", Type::list(Type::String))
            .description("Extra subject alternative names of the API server certificates (the endpoint host is always one)."),
    )
    .attribute(
        Attribute::optional("api_server_extra_args", Type::map(Type::String)).description(
            "Extra kube-apiserver flags (`apiServer.extraArgs`), name without `--` to value, e.g. \
             `{ \"audit-log-maxage\" = \"30\" }`. A change rolls through the nodes one at a time (the manifest \
             regenerated, the node ready before the next); a node whose API server does not come back gets its \
             previous manifest back and the roll stops there. Flags Strata sets from other attributes (etcd, \
             certificates, service network, advertise address) are refused at plan time.",
        ),
    )
    .attribute(
        Attribute::optional("image_repository", Type::String)
            .validate(Validator::Custom(crate::data_sources::kubernetes_images::check_repository))
            .description(
                "Where kubeadm pulls the control plane's images from (`imageRepository`; kubeadm's default is \
                 `registry.k8s.io`), e.g. an air-gapped site's registry `strata_image_registry.this.mirrors[\"registry.k8s.io\"]` \
                 without `https://` and `/v2`, i.e. `10.0.0.5:5000/registry.k8s.io`. containerd's sandbox image must be \
                 the pause image kubeadm expects from it: take both from `data.strata_kubernetes_images`, so it is not \
                 typed twice.",
            ),
    )
    .attribute(pem("ca_cert", "The Kubernetes cluster CA certificate, `strata_cluster_secrets.this.kubernetes_ca_cert`"))
    .attribute(key("ca_key", "Its private key, `strata_cluster_secrets.this.kubernetes_ca_key`; also signs the admin kubeconfig"))
    .attribute(pem("front_proxy_ca_cert", "The front-proxy CA certificate"))
    .attribute(key("front_proxy_ca_key", "The front-proxy CA private key"))
    .attribute(pem("service_account_public_key", "Service-account token verification key (`sa.pub`)"))
    .attribute(key("service_account_private_key", "Service-account token signing key (`sa.key`)"))
    .attribute(Attribute::optional("install_packages", Type::Bool).default(true).description(
        "Install `kubeadm`, `kubelet` and `kubectl` `=VERSION-1.1` from the node's apt sources (pkgs.k8s.io or a \
         local mirror) and hold them (default true). `false`: they are installed by other means.",
    ))
    .attribute(
        Attribute::optional("kubeconfig_validity_days", Type::Number)
            .default(DEFAULT_KUBECONFIG_VALIDITY_DAYS)
            .validate(Validator::IntBetween(1, 3650))
            .description("Validity of the admin kubeconfig's client certificate, in days (default 365)."),
    )
    .attribute(
        Attribute::optional("kubeconfig_renew_before_days", Type::Number)
            .default(DEFAULT_KUBECONFIG_RENEW_BEFORE_DAYS)
            .validate(Validator::IntBetween(0, 3650))
            .description("A plan within this many days of the kubeconfig's expiry re-issues it (default 30); otherwise it stays as it is."),
    )
    .attribute(
        Attribute::optional("join_token_ttl_hours", Type::Number)
            .default(DEFAULT_JOIN_TOKEN_TTL_HOURS)
            .validate(Validator::IntBetween(1, 24 * 30))
            .description("Lifetime of the bootstrap token in `join` (default 24). A worker created after it expired mints a fresh one."),
    )
    .attribute(
        Attribute::optional("certificate_validity", Type::String)
            .default(DEFAULT_CERTIFICATE_VALIDITY)
            .validate(Validator::Custom(|v| check(validate::certificate_validity)(v)))
            .description("Validity of the leaf certificates kubeadm issues and renews (API server, front-proxy client, the components' kubeconfigs): kubeadm v1beta4 `certificateValidityPeriod`, a duration such as `8760h` (the default, one year). A change applies from the next issue or renewal."),
    )
    .attribute(
        Attribute::optional("certificates_renew_before_days", Type::Number)
            .default(DEFAULT_CERTIFICATES_RENEW_BEFORE_DAYS)
            .validate(Validator::IntBetween(0, 3650))
            .description("When `certificates_expire_at` is within this many days, the plan shows a renewal and the apply runs `kubeadm certs renew all` on one control-plane node at a time, restarting its static pods and waiting until its API server serves the new certificate and `/readyz` is ok before the next; a node whose kubelet client certificate is due too (kubeadm leaves it to the kubelet's rotation) gets a new one from the cluster CA in the kubelet's store and its kubelet restarted (default 30). Must be shorter than `certificate_validity`."),
    )
    .attribute(
        Attribute::computed("certificates_expire_at", Type::String)
            .description("The earliest expiry (RFC 3339) of the certificates kubeadm manages on the control-plane nodes, as `kubeadm certs check-expiration` lists them (apiserver, apiserver-kubelet-client, front-proxy-client, admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf), and of the kubelet's client certificate."),
    )
    .attribute(
        Attribute::computed("kubeconfig", Type::String)
            .sensitive()
            .description("Admin kubeconfig: client certificate `kubernetes-admin` / `kubeadm:cluster-admins` signed by the cluster CA, server `https://ENDPOINT`, the cluster CA. Stable across plans; re-issued when within `kubeconfig_renew_before_days` of expiry, or when the endpoint or CA changes."),
    )
    .attribute(Attribute::computed("kubeconfig_expires_at", Type::String).description("When the kubeconfig's client certificate expires (RFC 3339)."))
    .attribute(
        Attribute::computed("join", join_type())
            .sensitive()
            .description("For `strata_worker`: `endpoint`, `ca_cert_hash` (`sha256:...`), a bootstrap `token` minted at apply time and its `token_expires_at`."),
    )
    .attribute(Attribute::computed("ca_cert_hash", Type::String).description("`sha256:<hex>` of the cluster CA's public key."))
    .attribute(
        Attribute::computed("nodes", node_status())
            .description("Each node as last observed: `reachable` over SSH, `joined` (kubeadm's kubelet.conf and API server manifest present), `ca_matches` (its /etc/kubernetes/pki/ca.crt is `ca_cert`), `kubernetes_version` (the version its control plane runs: the kube-apiserver image tag in its static pod manifest; after an upgrade that stopped part-way, the nodes not reached yet still show the old one)."),
    )
    .attribute(
        Attribute::computed("last_upgrade_snapshot", Type::String)
            .description("The etcd snapshot the last `kubernetes_version` change took before it touched any node, as `NODE:PATH`: on the first control-plane node, under `/var/lib/strata/etcd-snapshots/`, named `pre-upgrade-FROM-to-TO-TIMESTAMP.db` (`etcdctl snapshot save` through the `etcd` endpoints with the API servers' etcd client certificate, checked with `etcdctl snapshot status`). To restore it, copy it to the machine that runs Terraform and set `strata_etcd_cluster`'s `restore_from_snapshot` to it. Null until an upgrade ran."),
    )
    .block(NestedBlock::list("node", node).items(1, 7))
    .block(NestedBlock::single("etcd", etcd).items(1, 1))
    .block(NestedBlock::single("cni", cni));
    Schema::new(0, block)
}
