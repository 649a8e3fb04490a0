# A Kubernetes node on LXC from Debian's OS template (kubernetes_node: nesting and
# keyctl on, swap 0). keyctl needs root@pam credentials on the provider.
resource "strata_container" "k8s_master" {
  node            = "pve1"
  hostname        = "k8s-master"
  ostemplate      = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
  cores           = 4
  memory_mb       = 8192
  tags            = ["k8s", "master"]
  kubernetes_node = true
  onboot          = true
  ssh_public_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleOnly ops@example"]

  rootfs {
    storage = "local-lvm"
    size_gb = 50
  }

  network {
    name    = "eth0"
    bridge  = "vmbr0"
    ip      = "10.0.0.10/24"
    gateway = "10.0.0.1"
  }
}
