# The platform's entry point: one virtual IP kept by keepalived on three HAProxy nodes,
# port 6443 to the three control-plane nodes, 80 and 443 to the Traefik ingress on the
# workers (TCP passthrough: TLS ends at Traefik). Point the variables at your nodes.

terraform {
  required_providers {
    strata = {
      source = "strata-iac/strata"
    }
  }
}

variable "vrrp_password" {
  description = "VRRP PASS authentication, at most 8 characters."
  type        = string
  sensitive   = true
}

variable "ssh_private_key_file" {
  type = string
}

variable "known_hosts_file" {
  type = string
}

variable "lb_nodes" {
  description = "The HAProxy nodes, in order of preference for the VIP."
  type        = list(string)
  default     = ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
}

variable "control_plane" {
  type    = map(string)
  default = { cp1 = "10.77.0.21", cp2 = "10.77.0.22", cp3 = "10.77.0.23" }
}

variable "workers" {
  type    = map(string)
  default = { w1 = "10.77.0.31", w2 = "10.77.0.32", w3 = "10.77.0.33" }
}

provider "strata" {
  ssh {
    private_key_file = var.ssh_private_key_file
    known_hosts_file = var.known_hosts_file
  }
}

resource "strata_load_balancer" "k8s" {
  name              = "k8s"
  vip               = "10.77.0.100/24"
  interface         = "eth0"
  virtual_router_id = 51
  auth_pass         = var.vrrp_password
  advert_interval   = 1
  stats_port        = 8404

  dynamic "node" {
    for_each = var.lb_nodes
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
    mode      = "tcp"
    balance   = "roundrobin"
    dynamic "backend" {
      for_each = var.control_plane
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
        for_each = var.workers
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
