//! Air-gapped images: strata_image_registry (Debian's real `docker-registry` and `skopeo`)
//! on lab node1, loaded from image bundles built here from Debian's busybox-static (the
//! lab's stand-ins for `registry.k8s.io/pause` and `docker.io/library/busybox`); node2
//! and node3 run Debian's real containerd configured by strata_node_config to pull only
//! through it (hosts.toml with its CA, no upstream fallback). node2 is also a one-node
//! control plane (stand-in kubeadm, real etcd) whose `imageRepository` is the registry
//! and whose containerd sandbox image comes from strata_kubernetes_images. The nodes have
//! no route off the lab network. Pulls go through the CRI API (containerd's CRI plugin,
//! namespace k8s.io, as the kubelet pulls) with the lab's CRI client `strata-cri`
//! (Debian 12 has no crictl).

mod k8s_common;

use k8s_common::*;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::bundles::{build_bundles, BundleSet};
use strata_lab::LabGuard;

const VERSION: &str = "v1.35.0";
const PAUSE: &str = "registry.k8s.io/pause:3.10.1";
const BUSYBOX: &str = "docker.io/library/busybox:1.36";

#[derive(Clone, Copy)]
struct Knobs<'a> {
    pause_sha: &'a str,
    storage: Option<&'a str>,
    /// A mirror for quay.io with fallback = false and no CA.
    untrusted_mirror: bool,
}

fn main_tf(lab: &LabGuard, b: &BundleSet, k: &Knobs) -> String {
    let ssh = &lab.info().ssh;
    let (a1, a2) = (address(lab, "node1"), address(lab, "node2"));
    let a3 = address(lab, "node3");
    let bundle = |name: &str| b.bundles.iter().find(|x| x.name == name).expect("bundle built");
    let (pause, busybox) = (bundle(PAUSE), bundle(BUSYBOX));
    let storage = k.storage.map(|s| format!("  storage_path = \"{s}\"\n")).unwrap_or_default();
    let untrusted = if k.untrusted_mirror {
        "    registry_mirror {\n      registry  = \"quay.io\"\n      endpoints = [\"https://quay-mirror.lab:5000\"]\n      fallback  = false\n    }\n"
    } else {
        ""
    };
    format!(
        r#"{provider}
resource "strata_image_registry" "site" {{
  address = "{a1}"
{storage}  ssh {{ host = "{a1}" }}
  image_bundle {{
    archive = "{pause_tar}"
    sha256  = "{pause_sha}"
  }}
  image_bundle {{
    archive = "{busybox_tar}"
    sha256  = "{busybox_sha}"
  }}
}}

data "strata_kubernetes_images" "k8s" {{
  kubernetes_version = "{VERSION}"
  image_repository   = strata_image_registry.site.repositories["registry.k8s.io"]
}}

resource "strata_node_config" "kube" {{
  for_each = {{ node2 = "{a2}", node3 = "{a3}" }}
  ssh {{ host = each.value }}
  package {{
    name = "containerd"
  }}
  containerd {{
    version       = 2
    sandbox_image = data.strata_kubernetes_images.k8s.pause
    dynamic "registry_mirror" {{
      for_each = strata_image_registry.site.mirrors
      content {{
        registry  = registry_mirror.key
        endpoints = [registry_mirror.value]
        ca_cert   = strata_image_registry.site.ca_cert
        fallback  = false
      }}
    }}
    registry_mirror {{
      registry  = "{a1}:5000"
      endpoints = [strata_image_registry.site.url]
      ca_cert   = strata_image_registry.site.ca_cert
      fallback  = false
    }}
{untrusted}  }}
  sysctl = {{
    "net.ipv4.ip_forward" = "1"
  }}
  service {{
    name    = "containerd"
    enabled = true
    running = true
  }}
}}

resource "strata_cluster_secrets" "this" {{
  cluster_name = "kubernetes"
}}

resource "strata_etcd_cluster" "main" {{
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key
  member {{
    name    = "etcd1"
    address = "{a2}"
    ssh {{ host = "{a2}" }}
  }}
}}

resource "strata_control_plane" "k8s" {{
  endpoint            = "{a2}:6443"
  kubernetes_version  = "{VERSION}"
  image_repository    = data.strata_kubernetes_images.k8s.image_repository
  ca_cert             = strata_cluster_secrets.this.kubernetes_ca_cert
  ca_key              = strata_cluster_secrets.this.kubernetes_ca_key
  front_proxy_ca_cert = strata_cluster_secrets.this.front_proxy_ca_cert
  front_proxy_ca_key  = strata_cluster_secrets.this.front_proxy_ca_key
  service_account_public_key  = strata_cluster_secrets.this.service_account_public_key
  service_account_private_key = strata_cluster_secrets.this.service_account_private_key
  pod_cidr            = "10.44.0.0/16"
  node {{
    name    = "node2"
    address = "{a2}"
    ssh {{ host = "{a2}" }}
  }}
  etcd {{
    endpoints   = strata_etcd_cluster.main.endpoints
    ca_cert     = strata_etcd_cluster.main.ca_certificate
    client_cert = strata_etcd_cluster.main.client_certificate
    client_key  = strata_etcd_cluster.main.client_private_key
    ca_key      = strata_cluster_secrets.this.etcd_ca_key
  }}
  cni {{
    type            = "flannel"
    manifest_file   = "flannel.yaml"
    flannel_backend = "host-gw"
  }}
  depends_on = [strata_node_config.kube]
}}

output "images" {{
  value = strata_image_registry.site.images
}}
output "pause" {{
  value = data.strata_kubernetes_images.k8s.pause
}}
output "ca" {{
  value = strata_image_registry.site.ca_cert
}}
output "other_ca" {{
  value = strata_cluster_secrets.this.kubernetes_ca_cert
}}
"#,
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
        pause_tar = pause.archive.display(),
        pause_sha = k.pause_sha,
        busybox_tar = busybox.archive.display(),
        busybox_sha = busybox.sha256,
    )
}

/// Bytes node1 has received on its network interfaces (what any upload to it costs).
fn received(lab: &LabGuard, node: &str) -> u64 {
    sh_ok(lab, node, "for i in /sys/class/net/*; do [ \"${i##*/}\" = lo ] || cat $i/statistics/rx_bytes; done")
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

fn pull(lab: &LabGuard, node: &str, image: &str) -> (i32, String) {
    let (code, out, err) = sh(lab, node, &format!("strata-cri pull {image}"));
    (code, format!("{out}{err}"))
}

/// The digest containerd (CRI, namespace k8s.io) recorded for `image` from its pull.
fn pulled_digest(lab: &LabGuard, node: &str, image: &str) -> String {
    let out = sh_ok(lab, node, &format!("strata-cri inspecti {image}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let repo = image.rsplit_once(':').unwrap().0;
    let digests: Vec<String> = v["status"]["repoDigests"]
        .as_array()
        .or_else(|| v["repoDigests"].as_array())
        .unwrap_or_else(|| panic!("no repoDigests: {out}"))
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let d = digests.iter().find_map(|d| d.strip_prefix(&format!("{repo}@"))).unwrap_or_else(|| panic!("{digests:?}"));
    d.to_string()
}

#[test]
fn nodes_pull_only_through_the_local_registry_loaded_from_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let bundles = build_bundles(&strata_lab::image::cache_root().unwrap()).unwrap();
    let lab = lab(&tmp.path().join("lab"), 3);
    // Air-gapped: no node has a route off the lab network.
    for n in ["node1", "node2", "node3"] {
        assert_eq!(
            sh_ok(&lab, n, "ip route show default; ip -6 route show default").trim(),
            "",
            "{n} has a default route"
        );
    }
    let pause = bundles.bundles.iter().find(|b| b.name == PAUSE).unwrap();
    let busybox = bundles.bundles.iter().find(|b| b.name == BUSYBOX).unwrap();
    let size = |b: &strata_lab::bundles::Bundle| std::fs::metadata(&b.archive).unwrap().len();
    let bundle_bytes = size(pause) + size(busybox);
    let knobs = Knobs { pause_sha: &pause.sha256, storage: None, untrusted_mirror: false };
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &bundles, &knobs)).unwrap();
    wd.write("flannel.yaml", FLANNEL).unwrap();

    // First apply: the registry, loaded; the nodes pointed at it; the control plane
    // initialised by kubeadm (stand-in) from the registry, with a matching sandbox image.
    let before = received(&lab, "node1");
    wd.apply().unwrap();
    let first = received(&lab, "node1") - before;
    assert!(
        // The layers are gzip'd already: even a compressing SSH sends about their size.
        first >= bundle_bytes * 9 / 10,
        "the first apply uploaded the bundles ({bundle_bytes} bytes): {first} bytes received"
    );
    let images: serde_json::Value =
        serde_json::from_str(&wd.run(&["output", "-json", "images"]).unwrap().stdout).unwrap();
    assert_eq!(images[PAUSE], pause.digest.as_str(), "{images}");
    assert_eq!(images[BUSYBOX], busybox.digest.as_str(), "{images}");
    let a1 = address(&lab, "node1");
    let repo = format!("{a1}:5000/registry.k8s.io");
    assert_eq!(output(&wd, "pause"), format!("{repo}/pause:3.10.1"));
    let cfg = sh_ok(&lab, "node2", "cat /etc/containerd/config.toml");
    assert!(cfg.contains(&format!("sandbox_image = \"{repo}/pause:3.10.1\"")), "{cfg}");
    let kubeadm_cm = sh_ok(
        &lab,
        "node2",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}'",
    );
    assert!(kubeadm_cm.contains(&format!("imageRepository: {repo}")), "{kubeadm_cm}");
    // kubeadm's preflight pulled the pause image it expects through the CRI, from the registry.
    assert_eq!(pulled_digest(&lab, "node2", &format!("{repo}/pause:3.10.1")), pause.digest);

    // Pulls on node3 by the upstream names go through the mirror into containerd's CRI
    // (namespace k8s.io), with the bundles' digests. The CRI client comes with the
    // stand-in kubelet package; node3 runs no kubelet.
    sh_ok(
        &lab,
        "node3",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubelet >/dev/null && systemctl disable --now kubelet",
    );
    for (image, b) in [(PAUSE, pause), (BUSYBOX, busybox)] {
        let (code, out) = pull(&lab, "node3", image);
        assert_eq!(
            code,
            0,
            "pull {image}: {out}\n{}",
            sh(&lab, "node3", "for f in $(find /etc/containerd -type f); do echo \"== $f\"; cat $f; done; systemctl status containerd | head -5").1
        );
        assert_eq!(pulled_digest(&lab, "node3", image), b.digest, "{image}");
    }
    let listed = sh_ok(&lab, "node3", "ctr -n k8s.io images ls -q");
    assert!(listed.contains(BUSYBOX), "in containerd's k8s.io namespace: {listed}");

    // The same configuration again uploads nothing.
    let before = received(&lab, "node1");
    wd.apply().unwrap();
    let second = received(&lab, "node1") - before;
    let smallest = size(pause).min(size(busybox));
    assert!(
        second < smallest / 2,
        "the second apply uploaded a bundle: {second} bytes received (smallest bundle {smallest})"
    );
    assert_empty_plan(&wd, "the second apply");
    if let Ok(report) = std::env::var("STRATA_BUNDLE_REPORT") {
        let line =
            serde_json::json!({"bundle_bytes": bundle_bytes, "first_apply_bytes": first, "second_apply_bytes": second});
        std::fs::write(report, format!("{line}\n")).unwrap();
    }
    eprintln!(
        "bundles {bundle_bytes} B; received by the registry node: first apply {first} B, second apply {second} B"
    );

    // No fallback: with the registry stopped, the pull fails naming the mirror.
    sh_ok(&lab, "node3", &format!("ctr -n k8s.io images rm {BUSYBOX} >/dev/null"));
    sh_ok(&lab, "node1", "systemctl stop docker-registry");
    let (code, out) = pull(&lab, "node3", BUSYBOX);
    assert_ne!(code, 0, "pulled with the registry stopped: {out}");
    assert!(out.contains(&format!("{a1}:5000")) && out.contains("connection refused"), "the mirror is named: {out}");
    assert!(!out.contains("registry-1.docker.io") && !out.contains("https://docker.io"), "no upstream tried: {out}");
    // The plan sees the registry down and an apply starts it again.
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("running"), "{}", plan.stdout);
    wd.apply().unwrap();
    assert_eq!(pull(&lab, "node3", BUSYBOX).0, 0);

    // A wrong CA on the node: the pull fails naming TLS; the next apply repairs it.
    let other_ca = output(&wd, "other_ca");
    sh_ok(
        &lab,
        "node3",
        &format!("ctr -n k8s.io images rm {BUSYBOX} >/dev/null; printf '%s\\n' '{other_ca}' > /etc/containerd/certs.d/docker.io/mirror-ca.crt"),
    );
    let (code, out) = pull(&lab, "node3", BUSYBOX);
    assert_ne!(code, 0, "pulled with a wrong CA: {out}");
    assert!(out.contains("x509") || out.contains("tls:"), "TLS is named: {out}");
    assert!(out.contains(&format!("{a1}:5000")), "{out}");
    assert_eq!(wd.plan_exit_code().unwrap().code, 2, "the changed CA file is drift");
    wd.apply().unwrap();
    assert_eq!(pull(&lab, "node3", BUSYBOX).0, 0, "pulls again after the repair");

    // An image gone from the registry is drift of that image; the apply pushes it again.
    sh_ok(&lab, "node1", "rm -rf /var/lib/docker-registry/docker/registry/v2/repositories/docker.io/library/busybox/_manifests/tags/1.36");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains(BUSYBOX), "the image is named: {}", plan.stdout);
    assert!(!plan.stdout.contains(&format!("- \"{PAUSE}\"")), "only the lost image: {}", plan.stdout);
    wd.apply().unwrap();
    assert_empty_plan(&wd, "pushing the lost image again");

    // Bad input is refused at plan, naming the attribute, and nothing changes.
    let refused = |k: &Knobs, want: &[&str]| {
        wd.write("main.tf", &main_tf(&lab, &bundles, k)).unwrap();
        let plan = wd.plan_exit_code().unwrap();
        assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
        for w in want {
            assert!(plan.stderr.contains(w), "{w:?} in: {}", plan.stderr);
        }
    };
    let wrong = "0".repeat(64);
    refused(&Knobs { pause_sha: &wrong, ..knobs }, &["Image bundle checksum mismatch", &pause.sha256, "sha256"]);
    refused(&Knobs { untrusted_mirror: true, ..knobs }, &["ca_cert", "fallback = false"]);
    refused(&Knobs { storage: Some("/srv/registry"), ..knobs }, &["storage_path of a running registry cannot change"]);
    wd.write("main.tf", &main_tf(&lab, &bundles, &knobs)).unwrap();
    assert_empty_plan(&wd, "the refused plans");
}
