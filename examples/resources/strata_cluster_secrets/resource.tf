# The identity of a kubeadm cluster: CAs, service-account keys, bootstrap token.
# Kept in state, so a rebuild from the same state gets the same cluster back.
resource "strata_cluster_secrets" "prod" {
  cluster_name  = "prod"
  validity_days = 3650
}

output "ca_cert_hash" {
  value = strata_cluster_secrets.prod.ca_cert_hash
}
