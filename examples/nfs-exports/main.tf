# The platform's NFS server: `k8s-prod` and `k8s-nonprod` exports feeding
# nfs-subdir-external-provisioner (StorageClasses nfs-prod / nfs-nonprod).
# `make demo` applies this against a lab node; point the variables at your NFS VM.

terraform {
  required_providers {
    strata = {
      source = "strata-iac/strata"
    }
  }
}

variable "nfs_server" {
  description = "Address of the NFS server node."
  type        = string
}

variable "ssh_private_key_file" {
  type = string
}

variable "known_hosts_file" {
  type = string
}

variable "cluster_network" {
  description = "Network of the Kubernetes nodes that mount the exports."
  type        = string
  default     = "10.77.0.0/16"
}

variable "backend" {
  description = "kernel (nfs-kernel-server) or ganesha (nfs-ganesha)."
  type        = string
  default     = "ganesha"
}

provider "strata" {
  ssh {
    private_key_file = var.ssh_private_key_file
    known_hosts_file = var.known_hosts_file
  }
}

locals {
  exports = {
    "k8s-prod"    = ["rw", "sync", "no_subtree_check", "no_root_squash"]
    "k8s-nonprod" = ["rw", "sync", "no_subtree_check", "root_squash"]
  }
}

resource "strata_nfs_export" "this" {
  for_each = local.exports

  ssh {
    host = var.nfs_server
  }
  name    = each.key
  path    = "/srv/nfs/${each.key}"
  backend = var.backend

  create_directory {
    mode = "0777"
  }

  clients {
    client  = var.cluster_network
    options = each.value
  }
}

# Values for the nfs-subdir-external-provisioner Helm releases (nfs.server / nfs.path).
output "storage_classes" {
  value = {
    for name, e in strata_nfs_export.this :
    replace(name, "k8s-", "nfs-") => e.storage_class_parameters
  }
}
