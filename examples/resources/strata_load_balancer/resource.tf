# The VIP kept by keepalived on three HAProxy nodes: 6443 to the API servers,
# 80/443 to the ingress on the workers.
variable "vrrp_password" {
  type      = string
  sensitive = true
}

locals {
  control_plane = { cp1 = "10.20.0.11", cp2 = "10.20.0.12", cp3 = "10.20.0.13" }
  workers       = { w1 = "10.20.0.21", w2 = "10.20.0.22", w3 = "10.20.0.23" }
}

resource "strata_load_balancer" "k8s" {
  name              = "k8s"
  vip               = "10.20.0.100/24"
  interface         = "eth0"
  virtual_router_id = 51
  auth_pass         = var.vrrp_password

  dynamic "node" {
    for_each = ["10.20.0.5", "10.20.0.6", "10.20.0.7"]
    content {
      name    = "lb${node.key + 1}"
      address = node.value
      ssh {
        host = node.value
      }
    }
  }

  frontend {
    name      = "kube-apiserver"
    bind_port = 6443
    dynamic "backend" {
      for_each = local.control_plane
      content {
        name    = backend.key
        address = backend.value
        port    = 6443
      }
    }
    health_check {
      type          = "https"
      path          = "/readyz"
      expect_status = 200
    }
  }

  dynamic "frontend" {
    for_each = { ingress-http = 80, ingress-https = 443 }
    content {
      name      = frontend.key
      bind_port = frontend.value
      dynamic "backend" {
        for_each = local.workers
        content {
          name    = backend.key
          address = backend.value
          port    = frontend.value
        }
      }
    }
  }
}

output "vip_holder" {
  value = strata_load_balancer.k8s.master_node
}
