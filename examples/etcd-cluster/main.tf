# An external etcd cluster of three members over TLS, for a kubeadm control plane,
# with hourly snapshots to an NFS-backed directory.

terraform {
  required_providers {
    strata = { source = "strata-iac/strata" }
  }
}

provider "strata" {
  ssh {
    private_key_file = "~/.ssh/id_ed25519"
    known_hosts_file = "~/.ssh/known_hosts"
  }
}

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

# For kube-apiserver: --etcd-servers, --etcd-cafile, --etcd-certfile, --etcd-keyfile.
output "etcd_servers" {
  value = join(",", strata_etcd_cluster.main.endpoints)
}

output "etcd_members" {
  value = strata_etcd_cluster.main.members
}
