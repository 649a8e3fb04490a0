# A kubeadm worker/control-plane node on Debian with containerd 1.x.
# Apply with: strata-agent apply k8s-node.hcl   (add --root DIR to try it on a scratch tree)

containerd {
  version        = 2 # config schema: 2 for containerd 1.x, 3 for 2.x
  systemd_cgroup = true
  sandbox_image  = "registry.k8s.io/pause:3.9"
  config_path    = "/etc/containerd/certs.d"

  registry_mirror "docker.io" {
    endpoints = ["https://mirror.example:5000"]
  }
}

kubelet {
  cgroup_driver       = "systemd"
  cluster_dns         = ["10.96.0.10"]
  cluster_domain      = "cluster.local"
  rotate_certificates = true
  eviction_hard = {
    "memory.available"  = "200Mi"
    "nodefs.available"  = "10%"
  }
  extra_args = {
    "node-ip" = "10.0.0.5"
  }
}

crictl {
  runtime_endpoint = "unix:///run/containerd/containerd.sock"
}

sysctl = {
  "net.ipv4.ip_forward"                 = "1"
  "net.bridge.bridge-nf-call-iptables"  = "1"
  "net.bridge.bridge-nf-call-ip6tables" = "1"
}

kernel_modules = ["overlay", "br_netfilter"]

swap_off = true

package "containerd" {
  version = "1.6.20~ds1-1"
  hold    = true
}

service "containerd" {
  enabled = true
  running = true
}

service "kubelet" {
  enabled = true
}

file "/etc/motd" {
  content = "Managed by Strata.\n"
  mode    = "0644"
  owner   = "root"
  group   = "root"
}

directory "/etc/kubernetes/manifests" {
  mode = "0755"
}
