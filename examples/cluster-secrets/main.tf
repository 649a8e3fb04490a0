# The identity of a kubeadm HA cluster with external etcd, kept in Terraform state.
# A disaster-recovery rebuild that applies this again with the same state gets the same
# CAs, service-account key and join hash back.

terraform {
  required_providers {
    strata = {
      source = "strata-iac/strata"
    }
  }
}

provider "strata" {}

variable "cluster_name" {
  type    = string
  default = "prod"
}

variable "validity_days" {
  type    = number
  default = 3650
}

variable "control_plane_endpoint" {
  description = "The keepalived virtual IP in front of the API servers."
  type        = string
  default     = "k8s-api.example.internal:6443"
}

resource "strata_cluster_secrets" "this" {
  cluster_name  = var.cluster_name
  validity_days = var.validity_days
}

output "ca_cert_hash" {
  value = strata_cluster_secrets.this.ca_cert_hash
}

output "ca_expires_at" {
  value = strata_cluster_secrets.this.ca_expires_at
}

output "kubernetes_ca_cert" {
  value = strata_cluster_secrets.this.kubernetes_ca_cert
}

# What a worker runs to join; sensitive because it carries the bootstrap token.
output "worker_join_command" {
  sensitive = true
  value = join(" ", [
    "kubeadm join ${var.control_plane_endpoint}",
    "--token ${strata_cluster_secrets.this.bootstrap_token}",
    "--discovery-token-ca-cert-hash ${strata_cluster_secrets.this.ca_cert_hash}",
  ])
}
