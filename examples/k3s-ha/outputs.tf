output "kubeconfig" {
  description = "Admin kubeconfig through the VIP (the CA is the cluster's)."
  value       = strata_k3s_cluster.this.kubeconfig
  sensitive   = true
}

output "server_url" {
  value = strata_k3s_cluster.this.server_url
}

output "ca_cert" {
  value = strata_k3s_cluster.this.ca_cert
}

output "token" {
  description = "The cluster's join token (K10<CA hash>::server:<secret>): agents and new servers use it."
  value       = strata_k3s_cluster.this.join_token
  sensitive   = true
}
