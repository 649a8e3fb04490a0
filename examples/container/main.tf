# The smaller reference architecture on LXC: a Kubernetes master and two workers from
# Debian's OS template, and an NFS storage node cloned from a container template.
#
# keyctl (in kubernetes_node) is a setting only root@pam may make, so this example logs
# in as root@pam with a password; with an API token Proxmox refuses it and the apply
# fails naming kubernetes_node (features.keyctl), leaving nothing behind.
#   export STRATA_PVE_ENDPOINT=https://pve1.example.com:8006
#   export STRATA_PVE_USERNAME=root@pam STRATA_PVE_PASSWORD=...
#   export STRATA_PVE_CA_CERT=/etc/pve/pve-root-ca.pem

terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}

provider "strata" {
  proxmox {}
}

variable "node" {
  default = "pve1"
}

data "strata_containers" "golden" {
  node      = var.node
  name      = "debian-golden"
  templates = true
}

resource "strata_container" "master" {
  node            = var.node
  hostname        = "k8s-master"
  ostemplate      = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
  cores           = 4
  memory_mb       = 8192
  tags            = ["k8s", "master"]
  kubernetes_node = true # nesting + keyctl, swap 0
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
  startup {
    order = 1
  }
}

resource "strata_container" "worker" {
  count           = 2
  node            = var.node
  hostname        = "k8s-worker-${count.index}"
  ostemplate      = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
  cores           = 4
  memory_mb       = 8192
  tags            = ["k8s", "worker"]
  kubernetes_node = true
  onboot          = true

  rootfs {
    storage = "local-lvm"
    size_gb = 50
  }
  network {
    name   = "eth0"
    bridge = "vmbr0"
    ip     = "dhcp"
  }
  startup {
    order = 2
  }
}

resource "strata_container" "storage" {
  node      = var.node
  hostname  = "nfs-storage"
  memory_mb = 2048
  tags      = ["storage"]
  onboot    = true

  clone {
    source_id = data.strata_containers.golden.containers[0].vm_id
  }
  rootfs {
    storage = "local-lvm"
    size_gb = 16
  }
  mount_point {
    storage = "local-lvm"
    size_gb = 200
    path    = "/srv/nfs"
    backup  = true
  }
  network {
    name    = "eth0"
    bridge  = "vmbr0"
    ip      = "10.0.0.20/24"
    gateway = "10.0.0.1"
  }
  features {
    nesting = true
  }
}

output "addresses" {
  value = {
    master  = strata_container.master.ipv4_addresses
    workers = strata_container.worker[*].ipv4_addresses
    storage = strata_container.storage.ipv4_addresses
  }
}
