# Three k3s servers with embedded etcd, installed air-gapped from files on the Terraform
# host, behind a registration address (a load balancer), pulling through a local registry.
resource "strata_k3s_cluster" "k3s" {
  version = "v1.36.1+k3s1"
  tls_san = ["10.0.0.100"] # server_url = https://10.0.0.100:6443
  disable = ["traefik"]

  dynamic "server" {
    for_each = { s1 = "10.0.0.11", s2 = "10.0.0.12", s3 = "10.0.0.13" }
    content {
      name    = server.key
      address = server.value
      taints  = ["node-role.kubernetes.io/control-plane=true:NoSchedule"]
      ssh { host = server.value }
    }
  }

  config = {
    "cluster-cidr" = "10.42.0.0/16"
  }

  etcd_snapshot {
    schedule  = "0 */6 * * *"
    retention = 8
  }

  airgap {
    binary = "${path.module}/k3s/k3s"
    images = ["${path.module}/k3s/k3s-airgap-images-amd64.tar"]
    sha256 = {
      "k3s"                         = "<sha256 from sha256sum-amd64.txt>"
      "k3s-airgap-images-amd64.tar" = "<sha256 from sha256sum-amd64.txt>"
    }
  }

  registry {
    mirrors = { for upstream, url in strata_image_registry.site.mirrors : upstream => [url] }
    ca_cert = strata_image_registry.site.ca_cert
  }
}
