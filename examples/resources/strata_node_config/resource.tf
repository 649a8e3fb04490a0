# What a Kubernetes node needs before kubeadm: kernel settings, containerd, the kubelet
# drop-in (kubeadm keeps /var/lib/kubelet/config.yaml) and pinned packages from a mirror.
resource "strata_node_config" "worker1" {
  ssh {
    host = "10.20.0.21"
  }

  swap_off       = true
  kernel_modules = ["overlay", "br_netfilter"]
  sysctl = {
    "net.ipv4.ip_forward"                 = "1"
    "net.bridge.bridge-nf-call-iptables"  = "1"
    "net.bridge.bridge-nf-call-ip6tables" = "1"
  }

  apt_repository {
    name    = "kubernetes"
    uris    = ["https://mirror.example.internal/kubernetes/v1.35/deb/"]
    suites  = ["/"]
    trusted = true
  }

  package {
    name    = "containerd"
    version = "1.6.20~ds1-1"
    hold    = true
  }

  containerd {
    version        = 2
    systemd_cgroup = true
    sandbox_image  = "registry.k8s.io/pause:3.10"
  }

  kubelet {
    cgroup_driver  = "systemd"
    cluster_dns    = ["10.96.0.10"]
    cluster_domain = "cluster.local"
    extra_args     = { "node-ip" = "10.20.0.21" }
  }

  crictl {
    runtime_endpoint = "unix:///run/containerd/containerd.sock"
  }

  service {
    name    = "containerd"
    enabled = true
    running = true
  }
}
