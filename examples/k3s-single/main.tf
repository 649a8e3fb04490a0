# The smallest k3s: one VM is the server (embedded etcd, so snapshots work) and runs the
# workloads. k3s comes from files on the Terraform host (`airgap {}`); nothing is fetched.

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
  default     = "10.20.0.60"
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

variable "k3s_version" {
  type    = string
  default = "v1.36.1+k3s1"
}

variable "k3s_release_dir" {
  description = "<version>/k3s, <version>/k3s-airgap-images-amd64.tar and <version>/sha256sum-amd64.txt from the k3s release page."
  type        = string
}

variable "node_packages" {
  description = "Extra Debian packages (the lab's stand-in k3s needs containerd and etcd-server, which real k3s embeds)."
  type        = list(string)
  default     = []
}

variable "stopped_services" {
  description = "Services var.node_packages start that must not run (the lab: Debian's etcd, on the port of k3s's embedded etcd)."
  type        = list(string)
  default     = []
}

locals {
  release = "${var.k3s_release_dir}/${var.k3s_version}"
  sha256 = {
    for line in compact(split("\n", file("${local.release}/sha256sum-amd64.txt"))) :
    split("  ", line)[1] => split("  ", line)[0]
  }
}

data "strata_vms" "template" {
  node      = var.pve_node
  name      = var.template_name
  templates = true
}

resource "strata_vm" "k3s" {
  node          = var.pve_node
  name          = "k3s"
  tags          = ["k3s"]
  memory_mb     = 8192
  on_boot       = true
  agent_enabled = true

  clone {
    source_vm_id = data.strata_vms.template.vms[0].vm_id
  }

  cpu {
    cores = 4
  }

  disks = [{ interface = "scsi0", storage = "local-lvm", size_gb = 64 }]

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

resource "strata_node_config" "k3s" {
  ssh {
    host                  = strata_vm.k3s.ipv4_addresses[0]
    host_key_fingerprints = strata_vm.k3s.ssh_host_key_fingerprints
  }

  swap_off = true

  dynamic "package" {
    for_each = toset(var.node_packages)
    content {
      name = package.value
    }
  }

  dynamic "service" {
    for_each = toset(var.stopped_services)
    content {
      name    = service.value
      enabled = false
      running = false
    }
  }
}

resource "strata_k3s_cluster" "this" {
  version = var.k3s_version

  server {
    name    = "k3s"
    address = var.address
    ssh {
      host                  = strata_vm.k3s.ipv4_addresses[0]
      host_key_fingerprints = strata_vm.k3s.ssh_host_key_fingerprints
    }
  }

  airgap {
    binary = "${local.release}/k3s"
    images = ["${local.release}/k3s-airgap-images-amd64.tar"]
    sha256 = local.sha256
  }

  etcd_snapshot {
    schedule  = "0 3 * * *"
    retention = 7
  }

  depends_on = [strata_node_config.k3s]
}

output "kubeconfig" {
  value     = strata_k3s_cluster.this.kubeconfig
  sensitive = true
}
