# A Kubernetes worker cloned from a cloud-init template, with a static address.
data "strata_vms" "template" {
  node      = "pve1"
  name      = "debian-12-cloudinit"
  templates = true
}

resource "strata_vm" "worker" {
  node      = "pve1"
  name      = "k8s-worker-1"
  tags      = ["k8s", "worker"]
  memory_mb = 8192
  on_boot   = true

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
    bridge = "vmbr0"
  }

  cloud_init {
    user            = "ops"
    ssh_public_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly ops@example"]
    ipv4 {
      address = "10.20.0.21/24"
      gateway = "10.20.0.1"
    }
  }
}
