variable "pve_node" {
  type    = string
  default = "pve1"
}

variable "template_name" {
  type    = string
  default = "debian-12-cloudinit"
}

variable "bridge" {
  type    = string
  default = "vmbr0"
}

variable "network_prefix" {
  description = "The first three octets of the /24 the VMs live on (the VIP is .100)."
  type        = string
  default     = "10.20.0"
}

variable "gateway" {
  type    = string
  default = "10.20.0.1"
}

variable "agent_count" {
  type    = number
  default = 2
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
  description = "The pinned k3s release; its files are in k3s_release_dir/<version>/."
  type        = string
  default     = "v1.36.1+k3s1"
}

variable "k3s_release_dir" {
  description = "Where the k3s release files are on the Terraform host: <version>/k3s, <version>/k3s-airgap-images-amd64.tar and <version>/sha256sum-amd64.txt, as downloaded from the k3s release page."
  type        = string
}

variable "k3s_restore_snapshot" {
  description = "An etcd snapshot of this cluster on the Terraform host: set it to rebuild after the servers are lost."
  type        = string
  default     = null
}

variable "node_packages" {
  description = "Extra Debian packages on every k3s node. Real k3s needs none; the Strata lab's stand-in k3s runs Debian's containerd and etcd, which real k3s embeds."
  type        = list(string)
  default     = []
}

variable "stopped_services" {
  description = "Services var.node_packages start that must not run (the lab: Debian's etcd, on the port of k3s's embedded etcd)."
  type        = list(string)
  default     = []
}

variable "vrrp_password" {
  type      = string
  sensitive = true
}

variable "nfs_backend" {
  description = "kernel (nfs-kernel-server) or ganesha."
  type        = string
  default     = "kernel"
}
