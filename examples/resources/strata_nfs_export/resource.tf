# The k8s-prod export of the platform's NFS server, for nfs-subdir-external-provisioner.
resource "strata_nfs_export" "k8s_prod" {
  ssh {
    host = "10.20.0.40"
  }
  name    = "k8s-prod"
  path    = "/srv/nfs/k8s-prod"
  backend = "kernel"

  create_directory {
    mode = "0777"
  }

  clients {
    client  = "10.20.0.0/24"
    options = ["rw", "sync", "no_subtree_check", "no_root_squash"]
  }
}

# nfs.server and nfs.path for the provisioner's Helm release.
output "k8s_prod_storage_class" {
  value = strata_nfs_export.k8s_prod.storage_class_parameters
}
