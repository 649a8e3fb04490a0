# An air-gapped k3s: no route off the site network. k3s comes from its release files on the
# Terraform host, images from a local registry (strata_image_registry) loaded from image
# bundles; containerd on every node pulls only through it (no fallback to the upstream).

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

variable "network_prefix" {
  description = "The first three octets of the /24: the registry is .70, the server .71, the agent .72."
  type        = string
  default     = "10.20.0"
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

variable "image_bundle_dir" {
  description = "Image bundles (OCI or docker archives) and their bundles.json: [{archive, sha256}], e.g. what the application needs."
  type        = string
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
  vms = {
    registry = "${var.network_prefix}.70"
    server1  = "${var.network_prefix}.71"
    agent1   = "${var.network_prefix}.72"
  }
  k3s     = { for k, v in local.vms : k => v if k != "registry" }
  bundles = jsondecode(file("${var.image_bundle_dir}/bundles.json"))
  airgap = {
    binary = "${local.release}/k3s"
    images = ["${local.release}/k3s-airgap-images-amd64.tar"]
    sha256 = local.sha256
  }
}

data "strata_vms" "template" {
  node      = var.pve_node
  name      = var.template_name
  templates = true
}

resource "strata_vm" "this" {
  for_each      = local.vms
  node          = var.pve_node
  name          = each.key
  tags          = ["k3s"]
  memory_mb     = 4096
  on_boot       = true
  agent_enabled = true

  clone {
    source_vm_id = data.strata_vms.template.vms[0].vm_id
  }

  disks = [{ interface = "scsi0", storage = "local-lvm", size_gb = 32 }]

  network_devices {
    bridge = "vmbr0"
  }

  cloud_init {
    user            = var.admin_user
    ssh_public_keys = [var.ssh_public_key]
    ipv4 {
      address = "${each.value}/24"
      gateway = var.gateway
    }
  }
}

# The site's registry: every image the cluster runs, pushed from the bundles.
resource "strata_image_registry" "site" {
  address = local.vms.registry

  ssh {
    host                  = strata_vm.this["registry"].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this["registry"].ssh_host_key_fingerprints
  }

  dynamic "image_bundle" {
    for_each = local.bundles
    content {
      archive = "${var.image_bundle_dir}/${image_bundle.value.archive}"
      sha256  = image_bundle.value.sha256
    }
  }
}

resource "strata_node_config" "k3s" {
  for_each = local.k3s

  ssh {
    host                  = strata_vm.this[each.key].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this[each.key].ssh_host_key_fingerprints
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
    name    = "server1"
    address = local.vms.server1
    ssh {
      host                  = strata_vm.this["server1"].ipv4_addresses[0]
      host_key_fingerprints = strata_vm.this["server1"].ssh_host_key_fingerprints
    }
  }

  airgap {
    binary = local.airgap.binary
    images = local.airgap.images
    sha256 = local.airgap.sha256
  }

  # registries.yaml: each upstream only through the site registry
  # (disable-default-registry-endpoint), trusted with its CA.
  registry {
    mirrors = { for upstream, url in strata_image_registry.site.mirrors : upstream => [url] }
    ca_cert = strata_image_registry.site.ca_cert
  }

  depends_on = [strata_node_config.k3s]
}

resource "strata_k3s_agent" "agent1" {
  name       = "agent1"
  address    = local.vms.agent1
  version    = strata_k3s_cluster.this.version
  server_url = strata_k3s_cluster.this.server_url
  token      = strata_k3s_cluster.this.join_token
  kubeconfig = strata_k3s_cluster.this.kubeconfig

  ssh {
    host                  = strata_vm.this["agent1"].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this["agent1"].ssh_host_key_fingerprints
  }

  airgap {
    binary = local.airgap.binary
    images = local.airgap.images
    sha256 = local.airgap.sha256
  }

  registry {
    mirrors = { for upstream, url in strata_image_registry.site.mirrors : upstream => [url] }
    ca_cert = strata_image_registry.site.ca_cert
  }

  depends_on = [strata_node_config.k3s]
}

output "kubeconfig" {
  value     = strata_k3s_cluster.this.kubeconfig
  sensitive = true
}
