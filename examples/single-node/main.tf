# The smaller architecture: one VM runs etcd, the Kubernetes control plane and the NFS
# exports. No VIP: the API endpoint is the VM's own address.

terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}

provider "strata" {
  proxmox {}

  ssh {
    user             = var.admin_user
    sudo             = true
    private_key_file = var.ssh_private_key_file
    known_hosts_file = var.known_hosts_file
  }
}

variable "pve_node" {
  type    = string
  default = "pve1"
}

variable "template_name" {
  type    = string
  default = "debian-12-cloudinit"
}

variable "address" {
  description = "The VM's static address (a /24)."
  type        = string
  default     = "10.20.0.50"
}

variable "gateway" {
  type    = string
  default = "10.20.0.1"
}

variable "admin_user" {
  type    = string
  default = "ops"
}

variable "ssh_public_key" {
  type = string
}

variable "ssh_private_key_file" {
  type = string
}

variable "known_hosts_file" {
  type = string
}

variable "kubernetes_version" {
  type    = string
  default = "v1.35.0"
}

data "strata_vms" "template" {
  node      = var.pve_node
  name      = var.template_name
  templates = true
}

resource "strata_vm" "k8s" {
  node      = var.pve_node
  name      = "k8s"
  tags      = ["k8s"]
  memory_mb = 16384
  on_boot   = true

  clone {
    source_vm_id = data.strata_vms.template.vms[0].vm_id
  }

  cpu {
    cores = 4
  }

  disks = [
    { interface = "scsi0", storage = "local-lvm", size_gb = 200 },
  ]

  network_devices {
    bridge = "vmbr0"
  }

  cloud_init {
    user            = var.admin_user
    ssh_public_keys = [var.ssh_public_key]
    ipv4 {
      address = "${var.address}/24"
      gateway = var.gateway
    }
  }
}

locals {
  host = strata_vm.k8s.ipv4_addresses[0]
}

resource "strata_node_config" "k8s" {
  ssh {
    host = local.host
  }

  swap_off       = true
  kernel_modules = ["overlay", "br_netfilter"]
  sysctl = {
    "net.ipv4.ip_forward"                = "1"
    "net.bridge.bridge-nf-call-iptables" = "1"
  }

  package {
    name = "containerd"
  }

  containerd {
    version        = 2
    systemd_cgroup = true
  }

  kubelet {
    cgroup_driver = "systemd"
    extra_args    = { "node-ip" = var.address }
  }

  service {
    name    = "containerd"
    enabled = true
    running = true
  }
}

resource "strata_cluster_secrets" "this" {
  cluster_name = "single"
}

resource "strata_etcd_cluster" "main" {
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key

  member {
    name    = "etcd1"
    address = var.address
    ssh {
      host = local.host
    }
  }

  backup {
    dir      = "/srv/nfs/backups/etcd"
    schedule = "hourly"
    keep     = 24
  }

  depends_on = [strata_node_config.k8s]
}

resource "strata_control_plane" "k8s" {
  cluster_name       = "single"
  endpoint           = "${var.address}:6443"
  kubernetes_version = var.kubernetes_version

  ca_cert                     = strata_cluster_secrets.this.kubernetes_ca_cert
  ca_key                      = strata_cluster_secrets.this.kubernetes_ca_key
  front_proxy_ca_cert         = strata_cluster_secrets.this.front_proxy_ca_cert
  front_proxy_ca_key          = strata_cluster_secrets.this.front_proxy_ca_key
  service_account_public_key  = strata_cluster_secrets.this.service_account_public_key
  service_account_private_key = strata_cluster_secrets.this.service_account_private_key

  node {
    name    = "k8s"
    address = var.address
    ssh {
      host = local.host
    }
  }

  etcd {
    endpoints   = strata_etcd_cluster.main.endpoints
    ca_cert     = strata_etcd_cluster.main.ca_certificate
    client_cert = strata_etcd_cluster.main.client_certificate
    client_key  = strata_etcd_cluster.main.client_private_key
    ca_key      = strata_cluster_secrets.this.etcd_ca_key
  }

  cni {
    type            = "flannel"
    manifest_file   = "${path.module}/manifests/kube-flannel.yml"
    flannel_backend = "vxlan"
  }

  depends_on = [strata_node_config.k8s]
}

resource "strata_nfs_export" "this" {
  for_each = toset(["k8s-prod", "k8s-nonprod"])

  ssh {
    host = local.host
  }
  name    = each.key
  path    = "/srv/nfs/${each.key}"
  backend = "kernel"

  create_directory {
    mode = "0777"
  }

  clients {
    client  = "${var.address}/32"
    options = ["rw", "sync", "no_subtree_check", "no_root_squash"]
  }
}

output "kubeconfig" {
  value     = strata_control_plane.k8s.kubeconfig
  sensitive = true
}

output "storage_classes" {
  value = { for name, e in strata_nfs_export.this : replace(name, "k8s-", "nfs-") => e.storage_class_parameters }
}
