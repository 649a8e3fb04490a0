# The platform's add-ons, as Helm releases for the official helm provider, applied as a
# separate root module once the cluster answers (the lab does not apply them: it runs no
# pods). Usage, from examples/ha-cluster:
#   terraform output -raw kubeconfig > addons/kubeconfig
#   terraform output -json storage_classes > addons/storage_classes.json
#   cd addons && terraform init && terraform apply
# Air-gapped sites point `repository` at their chart mirror and the images at their registry.

terraform {
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
  }
}

provider "helm" {
  kubernetes {
    config_path = "${path.module}/kubeconfig"
  }
}

locals {
  storage_classes = jsondecode(file("${path.module}/storage_classes.json"))
}

# Ingress: Traefik on every worker's ports 80/443, where the load balancer's
# ingress-http / ingress-https frontends send the VIP's traffic.
resource "helm_release" "traefik" {
  name             = "traefik"
  repository       = "https://traefik.github.io/charts"
  chart            = "traefik"
  version          = "33.2.1"
  namespace        = "traefik"
  create_namespace = true

  values = [yamlencode({
    deployment = { kind = "DaemonSet" }
    ports = {
      web       = { hostPort = 80 }
      websecure = { hostPort = 443 }
    }
    service      = { enabled = false }
    nodeSelector = { "node-role.kubernetes.io/worker" = "" }
  })]
}

# One provisioner and StorageClass per export: nfs-prod (retained) and nfs-nonprod.
resource "helm_release" "nfs_provisioner" {
  for_each         = local.storage_classes
  name             = each.key
  repository       = "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner"
  chart            = "nfs-subdir-external-provisioner"
  version          = "4.0.18"
  namespace        = "nfs-provisioner"
  create_namespace = true

  values = [yamlencode({
    nfs = {
      server = each.value.server
      path   = each.value.path
    }
    storageClass = {
      name          = each.key
      reclaimPolicy = each.key == "nfs-prod" ? "Retain" : "Delete"
      # A rebuilt cluster finds its volumes under the same paths on the restored export.
      pathPattern     = "$${.PVC.namespace}/$${.PVC.name}"
      onDelete        = each.key == "nfs-prod" ? "retain" : "delete"
      defaultClass    = each.key == "nfs-prod"
      archiveOnDelete = false
    }
  })]
}

# Monitoring: Prometheus, Alertmanager and Grafana, with their data on nfs-prod.
resource "helm_release" "monitoring" {
  name             = "monitoring"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = "67.9.0"
  namespace        = "monitoring"
  create_namespace = true

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        retention = "15d"
        storageSpec = {
          volumeClaimTemplate = {
            spec = {
              storageClassName = "nfs-prod"
              accessModes      = ["ReadWriteOnce"]
              resources        = { requests = { storage = "50Gi" } }
            }
          }
        }
      }
    }
    # etcd runs outside the cluster (strata_etcd_cluster): scraped by address.
    kubeEtcd = { enabled = false }
  })]

  depends_on = [helm_release.nfs_provisioner]
}
