# A kubeadm HA control plane on three nodes behind the load balancer's VIP, on the
# external etcd cluster, with the cluster identity from strata_cluster_secrets.
resource "strata_cluster_secrets" "this" {
  cluster_name = "prod"
}

# The external etcd cluster, on the control-plane nodes.
resource "strata_etcd_cluster" "main" {
  ca_cert = strata_cluster_secrets.this.etcd_ca_cert
  ca_key  = strata_cluster_secrets.this.etcd_ca_key

  dynamic "member" {
    for_each = { etcd1 = "10.0.0.11", etcd2 = "10.0.0.12", etcd3 = "10.0.0.13" }
    content {
      name    = member.key
      address = member.value
      ssh { host = member.value }
    }
  }
}

resource "strata_control_plane" "k8s" {
  cluster_name       = "prod"
  endpoint           = "10.0.0.100:6443" # strata_load_balancer's VIP and frontend port
  kubernetes_version = "v1.35.0"
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
  cert_sans          = ["api.prod.example.org"]

  ca_cert                     = strata_cluster_secrets.this.kubernetes_ca_cert
  ca_key                      = strata_cluster_secrets.this.kubernetes_ca_key
  front_proxy_ca_cert         = strata_cluster_secrets.this.front_proxy_ca_cert
  front_proxy_ca_key          = strata_cluster_secrets.this.front_proxy_ca_key
  service_account_public_key  = strata_cluster_secrets.this.service_account_public_key
  service_account_private_key = strata_cluster_secrets.this.service_account_private_key

  node {
    name    = "master1"
    address = "10.0.0.11"
    ssh { host = "10.0.0.11" }
  }
  node {
    name    = "master2"
    address = "10.0.0.12"
    ssh { host = "10.0.0.12" }
  }
  node {
    name    = "master3"
    address = "10.0.0.13"
    ssh { host = "10.0.0.13" }
  }

  etcd {
    endpoints   = strata_etcd_cluster.main.endpoints
    ca_cert     = strata_etcd_cluster.main.ca_certificate
    client_cert = strata_etcd_cluster.main.client_certificate
    client_key  = strata_etcd_cluster.main.client_private_key
    # Placed on the nodes so `import` of the secrets from a node brings the etcd CA back too.
    ca_key = strata_cluster_secrets.this.etcd_ca_key
  }

  cni {
    type                 = "calico"
    manifest_file        = "${path.module}/manifests/calico.yaml"
    calico_encapsulation = "VXLAN"
  }
}

output "kubeconfig" {
  value     = strata_control_plane.k8s.kubeconfig
  sensitive = true
}

# After a lost state file, bring the identity back from a control-plane node instead of
# generating a new one (strata_control_plane refuses a running cluster of another CA):
#
# import {
#   to = strata_cluster_secrets.this
#   id = "ssh://root@10.0.0.11#prod"
# }
