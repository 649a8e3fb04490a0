# k3s in HA: three k3s servers on embedded etcd behind a keepalived VIP on three
# HAProxy VMs (6443 to the servers), two agents, and an NFS VM whose exports hold the
# copies of the etcd snapshots (k3s-snapshots) and the application's data (k8s-prod).
# k3s is installed from files on the Terraform host (`airgap {}`): no install script is
# fetched or run.
#
# Rebuild after a disaster: set k3s_restore_snapshot to the latest snapshot (a file on
# the Terraform host, e.g. copied from the k3s-snapshots export) and run `terraform apply`
# (docs/guides/k3s.md).

terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}

provider "strata" {
  proxmox {} # STRATA_PVE_ENDPOINT, STRATA_PVE_API_TOKEN, STRATA_PVE_CA_CERT

  ssh {
    user             = var.admin_user
    sudo             = true
    private_key_file = var.ssh_private_key_file
  }
}

locals {
  vip     = "${var.network_prefix}.100"
  lbs     = { for i in range(3) : "lb${i + 1}" => "${var.network_prefix}.${101 + i}" }
  servers = { for i in range(3) : "server${i + 1}" => "${var.network_prefix}.${111 + i}" }
  agents  = { for i in range(var.agent_count) : "agent${i + 1}" => "${var.network_prefix}.${121 + i}" }
  nfs     = { nfs1 = "${var.network_prefix}.131" }

  vms   = merge(local.lbs, local.servers, local.agents, local.nfs)
  k3s   = merge(local.servers, local.agents)
  sizes = { lb = [2, 2048, 16], server = [2, 4096, 32], agent = [4, 8192, 64], nfs = [2, 2048, 200] }
  role  = { for name, _ in local.vms : name => replace(name, "/[0-9]+$/", "") }

  # The release files of var.k3s_version, as k3s publishes them, with their checksums.
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

resource "strata_vm" "this" {
  for_each      = local.vms
  node          = var.pve_node
  name          = each.key
  tags          = ["k3s", local.role[each.key]]
  memory_mb     = local.sizes[local.role[each.key]][1]
  on_boot       = true
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

# Kernel settings every k3s node wants, the NFS client for the application's volumes,
# curl (Strata reads the embedded etcd's member list through it on the servers),
# and var.node_packages (see variables.tf).
resource "strata_node_config" "k3s" {
  for_each = local.k3s

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

  dynamic "package" {
    for_each = toset(concat(["nfs-common", "curl"], var.node_packages))
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

resource "strata_load_balancer" "k3s" {
  name              = "k3s"
  vip               = "${local.vip}/24"
  interface         = "eth0"
  virtual_router_id = 52
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
    name      = "k3s-api"
    bind_port = 6443
    dynamic "backend" {
      for_each = local.servers
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
}

resource "strata_nfs_export" "this" {
  for_each = toset(["k3s-snapshots", "k8s-prod"])

  ssh {
    host                  = strata_vm.this["nfs1"].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this["nfs1"].ssh_host_key_fingerprints
  }
  name    = each.key
  path    = "/srv/nfs/${each.key}"
  backend = var.nfs_backend

  create_directory {
    mode = "0777"
  }

  clients {
    client  = "${var.network_prefix}.0/24"
    options = ["rw", "sync", "no_subtree_check", "no_root_squash"]
  }
}

resource "strata_k3s_cluster" "this" {
  version               = var.k3s_version
  tls_san               = [local.vip]
  disable               = ["traefik", "servicelb"]
  flannel_backend       = "vxlan"
  restore_from_snapshot = var.k3s_restore_snapshot

  dynamic "server" {
    for_each = local.servers
    content {
      name    = server.key
      address = server.value
      labels  = { "topology.kubernetes.io/zone" = "rack-${server.key}" }
      ssh {
        host                  = strata_vm.this[server.key].ipv4_addresses[0]
        host_key_fingerprints = strata_vm.this[server.key].ssh_host_key_fingerprints
      }
    }
  }

  airgap {
    binary = "${local.release}/k3s"
    images = ["${local.release}/k3s-airgap-images-amd64.tar"]
    sha256 = local.sha256
  }

  # Every 6 hours on each server, 8 kept; copy them off the servers (to the
  # k3s-snapshots export and off-site) as docs/guides/k3s.md shows.
  etcd_snapshot {
    schedule  = "0 */6 * * *"
    retention = 8
  }

  depends_on = [strata_node_config.k3s, strata_load_balancer.k3s, strata_nfs_export.this]
}

resource "strata_k3s_agent" "this" {
  for_each   = local.agents
  name       = each.key
  address    = each.value
  version    = strata_k3s_cluster.this.version
  server_url = strata_k3s_cluster.this.server_url
  token      = strata_k3s_cluster.this.join_token
  kubeconfig = strata_k3s_cluster.this.kubeconfig

  labels = {
    "node-role.kubernetes.io/worker" = "true"
    "app-tier"                       = each.key == "agent1" ? "web" : "data"
  }

  ssh {
    host                  = strata_vm.this[each.key].ipv4_addresses[0]
    host_key_fingerprints = strata_vm.this[each.key].ssh_host_key_fingerprints
  }

  airgap {
    binary = "${local.release}/k3s"
    images = ["${local.release}/k3s-airgap-images-amd64.tar"]
    sha256 = local.sha256
  }

  depends_on = [strata_node_config.k3s]
}
