# Three Kubernetes workers cloned from a cloud-init template, with static addresses.
#
# Credentials come from the environment, e.g.:
#   export STRATA_PVE_ENDPOINT=https://pve1.example.com:8006
#   export STRATA_PVE_API_TOKEN='terraform@pve!strata=...'
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

data "strata_vms" "template" {
  node      = var.node
  name      = "ubuntu-2404-cloudinit"
  templates = true
}

resource "strata_vm" "worker" {
  count       = 3
  node        = var.node
  name        = "k8s-worker-${count.index}"
  description = "Kubernetes worker, managed by Terraform"
  tags        = ["k8s", "worker"]
  memory_mb   = 8192
  on_boot     = true

  clone {
    source_vm_id = data.strata_vms.template.vms[0].vm_id
  }

  cpu {
    cores = 4
    type  = "host"
  }

  disks = [
    { interface = "scsi0", storage = "local-lvm", size_gb = 40 },
  ]

  network_devices {
    bridge   = "vmbr0"
    vlan_tag = 20
  }

  cloud_init {
    user            = "ops"
    ssh_public_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly ops@example"]
    dns_servers     = ["10.20.0.53"]
    search_domain   = "k8s.example.com"
    ipv4 {
      address = "10.20.0.${21 + count.index}/24"
      gateway = "10.20.0.1"
    }
  }

  agent_enabled = true

  timeouts {
    create = "15m"
  }
}

output "workers" {
  value = { for w in strata_vm.worker : w.name => w.ipv4_addresses[0] }
}
