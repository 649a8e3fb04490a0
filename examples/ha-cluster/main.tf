# The reference architecture: a keepalived VIP on three HAProxy VMs (6443 to the API
# servers, 80/443 to the ingress on the workers), three control-plane VMs bootstrapped
# with kubeadm on an external etcd cluster (on the same VMs), workers with labels and
# taints, and an NFS VM with k8s-prod and k8s-nonprod exports for
# nfs-subdir-external-provisioner. The add-ons are in addons/ (Helm, applied after this).
#
# Rebuild after a disaster: set etcd_restore_snapshot and nfs_restore_archives to the
# latest off-site backups and run `terraform apply` (docs/guides/disaster-recovery.md).

terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}

provider "strata" {
  proxmox {} # STRATA_PVE_ENDPOINT, STRATA_PVE_API_TOKEN, STRATA_PVE_CA_CERT

  # Host keys are not in a known_hosts file: each resource pins its VM's keys, which
  # strata_vm reads through the guest agent, so new and rebuilt VMs are verified too.
  ssh {
    user             = var.admin_user
    sudo             = true
    private_key_file = var.ssh_private_key_file
  }
}

locals {
  vip = "${var.network_prefix}.100"
  lbs = { for i in range(3) : "lb${i + 1}" => "${var.network_prefix}.${101 + i}" }
  cps = { for i in range(3) : "cp${i + 1}" => "${var.network_prefix}.${111 + i}" }
  workers = {
    for i in range(var.worker_count) : "worker${i + 1}" => "${var.network_prefix}.${121 + i}"
  }
  nfs = { nfs1 = "${var.network_prefix}.131" }

  vms   = merge(local.lbs, local.cps, local.workers, local.nfs)
  kube  = merge(local.cps, local.workers)
  sizes = { lb = [2, 2048, 16], cp = [2, 4096, 32], worker = [4, 8192, 64], nfs = [2, 2048, 200] }
  role  = { for name, _ in local.vms : name => replace(name, "/[0-9]+$/", "") }

  exports = {
    "k8s-prod"    = ["rw", "sync", "no_subtree_check", "no_root_squash"]
    "k8s-nonprod" = ["rw", "sync", "no_subtree_check", "root_squash"]
  }

  # The image bundles' manifest (air-gapped sites), [] without one.
  air_gapped = var.image_bundle_dir != null
  bundles    = local.air_gapped ? jsondecode(file("${var.image_bundle_dir}/bundles.json")) : []
}

data "strata_vms" "template" {
  node      = var.pve_node
  name      = var.template_name
  templates = true
}

resource "strata_vm" "this" {
  for_each  = local.vms
  node      = var.pve_node
  name      = each.key
  tags      = ["k8s", local.role[each.key]]
  memory_mb = local.sizes[local.role[each.key]][1]
  on_boot   = true
  # qemu-guest-agent in the template: addresses and SSH host keys come through it.
  agent_enabled = true

  clone {
    source_vm_id = data.strata_vms.template.vms[0].vm_id
  }

  cpu {
    cores = local.sizes[local.role[each.key]][0]
  }

  disks = [
    { interface = "scsi0", storage = "local-lvm", size_gb = local.sizes[local.role[each.key]][2] },
  ]

  network_devices {
    bridge = var.bridge
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

# Air-gapped sites: a local image registry on the NFS VM, loaded from the bundles.
resource "strata_image_registry" "site" {
  count   = local.air_gapped ? 1 : 0
  address = local.nfs.nfs1

  ssh {
    host                  = strata_vm.this["nfs1"].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this["nfs1"].ssh_host_key_fingerprints
  }

  dynamic "image_bundle" {
    for_each = local.bundles
    content {
      archive = "${var.image_bundle_dir}/${image_bundle.value.archive}"
      sha256  = image_bundle.value.sha256
    }
  }
}

# The pause image kubeadm expects, from the registry when there is one: containerd's
# sandbox image and the control plane's image repository come from here.
data "strata_kubernetes_images" "k8s" {
  kubernetes_version = var.kubernetes_version
  image_repository   = local.air_gapped ? strata_image_registry.site[0].repositories["registry.k8s.io"] : null
}

# Every Kubernetes node: kernel settings, containerd, the kubelet's drop-in.
resource "strata_node_config" "kube" {
  for_each = local.kube

  ssh {
    host                  = strata_vm.this[each.key].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this[each.key].ssh_host_key_fingerprints
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
    sandbox_image  = data.strata_kubernetes_images.k8s.pause

    # With a local registry: each upstream only through it, and the registry itself.
    dynamic "registry_mirror" {
      for_each = local.air_gapped ? merge(strata_image_registry.site[0].mirrors, {
        "${local.nfs.nfs1}:5000" = strata_image_registry.site[0].url
      }) : {}
      content {
        registry  = registry_mirror.key
        endpoints = [registry_mirror.value]
        ca_cert   = strata_image_registry.site[0].ca_cert
        fallback  = false
      }
    }
  }

  kubelet {
    cgroup_driver  = "systemd"
    cluster_domain = "cluster.local"
    extra_args     = { "node-ip" = each.value }
  }

  service {
    name    = "containerd"
    enabled = true
    running = true
  }
}

resource "strata_load_balancer" "k8s" {
  name              = "k8s"
  vip               = "${local.vip}/24"
  interface         = "eth0"
  virtual_router_id = 51
  auth_pass         = var.vrrp_password

  dynamic "node" {
    for_each = local.lbs
    content {
      name    = node.key
      address = node.value
      ssh {
        host                  = strata_vm.this[node.key].ipv4_addresses[0]
        host_key_fingerprints = strata_vm.this[node.key].ssh_host_key_fingerprints
      }
    }
  }

  frontend {
    name      = "kube-apiserver"
    bind_port = 6443
    dynamic "backend" {
      for_each = local.cps
      content {
        name    = backend.key
        address = backend.value
        port    = 6443
      }
    }
    health_check {
      type          = "https"
      path          = "/readyz"
      expect_status = 200
    }
  }

  dynamic "frontend" {
    for_each = { ingress-http = 80, ingress-https = 443 }
    content {
      name      = frontend.key
      bind_port = frontend.value
      dynamic "backend" {
        for_each = local.workers
        content {
          name    = backend.key
          address = backend.value
          port    = frontend.value
        }
      }
    }
  }
}

resource "strata_cluster_secrets" "this" {
  cluster_name = "prod"
}

resource "strata_etcd_cluster" "main" {
  ca_cert               = strata_cluster_secrets.this.etcd_ca_cert
  ca_key                = strata_cluster_secrets.this.etcd_ca_key
  restore_from_snapshot = var.etcd_restore_snapshot

  dynamic "member" {
    for_each = local.cps
    content {
      name    = "etcd-${member.key}"
      address = member.value
      ssh {
        host                  = strata_vm.this[member.key].ipv4_addresses[0]
        host_key_fingerprints = strata_vm.this[member.key].ssh_host_key_fingerprints
      }
    }
  }

  # Snapshots on each member; copy them to the NFS server and off-site (see the guide).
  backup {
    dir      = "/var/backups/etcd"
    schedule = "hourly"
    keep     = 24
  }

  depends_on = [strata_node_config.kube]
}

resource "strata_control_plane" "k8s" {
  cluster_name       = "prod"
  endpoint           = "${local.vip}:6443"
  kubernetes_version = var.kubernetes_version
  image_repository   = data.strata_kubernetes_images.k8s.image_repository

  ca_cert                     = strata_cluster_secrets.this.kubernetes_ca_cert
  ca_key                      = strata_cluster_secrets.this.kubernetes_ca_key
  front_proxy_ca_cert         = strata_cluster_secrets.this.front_proxy_ca_cert
  front_proxy_ca_key          = strata_cluster_secrets.this.front_proxy_ca_key
  service_account_public_key  = strata_cluster_secrets.this.service_account_public_key
  service_account_private_key = strata_cluster_secrets.this.service_account_private_key

  dynamic "node" {
    for_each = local.cps
    content {
      name    = node.key
      address = node.value
      ssh {
        host                  = strata_vm.this[node.key].ipv4_addresses[0]
        host_key_fingerprints = strata_vm.this[node.key].ssh_host_key_fingerprints
      }
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
    type                 = "calico"
    manifest_file        = "${path.module}/${var.calico_manifest}"
    calico_encapsulation = "VXLAN"
  }

  depends_on = [strata_node_config.kube, strata_load_balancer.k8s]
}

resource "strata_worker" "this" {
  for_each           = local.workers
  name               = each.key
  address            = each.value
  kubernetes_version = strata_control_plane.k8s.kubernetes_version
  join               = strata_control_plane.k8s.join
  kubeconfig         = strata_control_plane.k8s.kubeconfig

  labels = {
    "node-role.kubernetes.io/worker" = ""
    "env"                            = "prod"
  }

  ssh {
    host                  = strata_vm.this[each.key].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this[each.key].ssh_host_key_fingerprints
  }

  depends_on = [strata_node_config.kube]
}

resource "strata_nfs_export" "this" {
  for_each = local.exports

  ssh {
    host                  = strata_vm.this["nfs1"].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this["nfs1"].ssh_host_key_fingerprints
  }
  name         = each.key
  path         = "/srv/nfs/${each.key}"
  backend      = var.nfs_backend
  restore_from = lookup(var.nfs_restore_archives, each.key, null)

  create_directory {
    mode = "0777"
  }

  clients {
    client  = "${var.network_prefix}.0/24"
    options = each.value
  }
}
