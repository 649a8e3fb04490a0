# The Kubernetes containers by tag, and the OS templates on pve1's local storage.
data "strata_containers" "k8s" {
  node = "pve1"
  tags = ["k8s"]
}

output "k8s_containers" {
  value = data.strata_containers.k8s.containers[*].name
}

output "os_templates" {
  value = data.strata_containers.k8s.os_templates
}
