# A worker joined to the control plane, with labels and a taint kept on its Node.
resource "strata_worker" "db1" {
  name               = "db1"
  address            = "10.0.0.21"
  kubernetes_version = strata_control_plane.k8s.kubernetes_version
  join               = strata_control_plane.k8s.join
  # Mints a fresh join token once the one in `join` expired, sets labels and taints,
  # deletes the Node on destroy.
  kubeconfig = strata_control_plane.k8s.kubeconfig

  labels = {
    "env"                            = "prod"
    "node-role.kubernetes.io/worker" = ""
  }
  taint {
    key    = "dedicated"
    value  = "db"
    effect = "NoSchedule"
  }

  ssh { host = "10.0.0.21" }
}
