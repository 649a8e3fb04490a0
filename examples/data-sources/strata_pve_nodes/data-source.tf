# The cluster's online Proxmox nodes, e.g. to spread VMs over them.
data "strata_pve_nodes" "online" {
  online_only = true
}

output "pve_nodes" {
  value = data.strata_pve_nodes.online.nodes[*].name
}
