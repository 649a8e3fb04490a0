# An external etcd cluster of three members over TLS, for a kubeadm control plane,
# with hourly snapshots to an NFS-backed directory.
resource "strata_cluster_secrets" "this" {
  cluster_name = "prod"
}

resource "strata_etcd_cluster" "main" {
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key

  member {
    name    = "etcd1"
    address = "10.77.0.21"
    ssh { host = "10.77.0.21" }
  }
  member {
    name    = "etcd2"
    address = "10.77.0.22"
    ssh { host = "10.77.0.22" }
  }
  member {
    name    = "etcd3"
    address = "10.77.0.23"
    ssh { host = "10.77.0.23" }
  }

  data_dir = "/var/lib/etcd"
  backup {
    dir      = "/srv/nfs/k8s-backup/etcd"
    schedule = "hourly"
    keep     = 24
  }
  # Set when the cluster is created to start it from a snapshot on this machine:
  # restore_from_snapshot = "backups/etcd-snapshot-20260101T000000.db"
}
