variable "pve_node" {
  description = "Proxmox node the VMs run on."
  type        = string
  default     = "pve1"
}

variable "template_name" {
  description = "The cloud-init template the VMs are cloned from (Debian 12 with cloud-init)."
  type        = string
  default     = "debian-12-cloudinit"
}

variable "bridge" {
  type    = string
  default = "vmbr0"
}

variable "network_prefix" {
  description = "The first three octets of the /24 the platform lives in."
  type        = string
  default     = "10.20.0"
}

variable "gateway" {
  type    = string
  default = "10.20.0.1"
}

variable "worker_count" {
  description = "Kubernetes workers: 3 in the lab, 6 in the reference architecture."
  type        = number
  default     = 3
}

variable "admin_user" {
  description = "The user cloud-init creates on every VM (passwordless sudo, key login)."
  type        = string
  default     = "ops"
}

variable "ssh_public_key" {
  description = "Public key cloud-init authorises for admin_user."
  type        = string
}

variable "ssh_private_key_file" {
  type = string
}

variable "kubernetes_version" {
  type    = string
  default = "v1.35.0"
}

variable "calico_manifest" {
  description = "Calico's release manifest, vendored (air-gapped sites have no other way)."
  type        = string
  default     = "manifests/calico.yaml"
}

variable "vrrp_password" {
  description = "keepalived's VRRP password (at most 8 characters)."
  type        = string
  sensitive   = true
}

variable "nfs_backend" {
  description = "NFS server on nfs1: kernel (nfs-kernel-server) or ganesha (user space, e.g. where the kernel server cannot run, as in containers)."
  type        = string
  default     = "kernel"
}

variable "etcd_restore_snapshot" {
  description = "An etcd snapshot on this machine to start a rebuilt cluster from; null for a new cluster."
  type        = string
  default     = null
}

variable "nfs_restore_archives" {
  description = "Per export (k8s-prod, k8s-nonprod): a tar archive on this machine unpacked into the new export; {} for none."
  type        = map(string)
  default     = {}
}

variable "image_bundle_dir" {
  description = <<-EOT
    Air-gapped sites: a directory of image bundles (OCI archives) with their manifest
    bundles.json, a list of {name, archive, sha256, digest}: the pinned image list.
    Set, the NFS VM also runs a local image registry loaded from them, every node pulls
    only through it (no upstream fallback), and kubeadm pulls from it. null: none.
  EOT
  type        = string
  default     = null
}
