# Agents joined to the cluster; with the kubeconfig they roll one at a time (drained
# under the cluster-wide Lease) and delete their Node on destroy.
resource "strata_k3s_agent" "worker" {
  for_each = { w1 = "10.0.0.21", w2 = "10.0.0.22" }

  name       = each.key
  address    = each.value
  server_url = strata_k3s_cluster.k3s.server_url
  token      = strata_k3s_cluster.k3s.join_token
  version    = strata_k3s_cluster.k3s.version
  kubeconfig = strata_k3s_cluster.k3s.kubeconfig

  labels = { "node-role.kubernetes.io/worker" = "true" }
  config = { "kubelet-arg" = "max-pods=200" }

  ssh { host = each.value }
}
