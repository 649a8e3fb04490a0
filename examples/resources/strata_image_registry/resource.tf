# An air-gapped site's image registry on the NFS server, loaded from bundles brought in
# on a disk (each archive pinned by its SHA-256), and the nodes pulling only from it.
resource "strata_image_registry" "site" {
  address = "10.0.0.20"
  ssh {
    host = "10.0.0.20"
    user = "root"
  }

  image_bundle {
    archive = "${path.module}/bundles/pause.tar"
    sha256  = "9e1f2d0c6a8b4f3e7d5c1b2a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
  }
  image_bundle {
    archive = "${path.module}/bundles/busybox.tar"
    sha256  = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
  }
}

data "strata_kubernetes_images" "this" {
  kubernetes_version = "1.36.2"
  image_repository   = strata_image_registry.site.repositories["registry.k8s.io"]
}

resource "strata_node_config" "worker" {
  ssh {
    host = "10.0.0.31"
  }
  containerd {
    version       = 2
    sandbox_image = data.strata_kubernetes_images.this.pause
    dynamic "registry_mirror" {
      for_each = strata_image_registry.site.mirrors
      content {
        registry  = registry_mirror.key
        endpoints = [registry_mirror.value]
        ca_cert   = strata_image_registry.site.ca_cert
        fallback  = false
      }
    }
    # kubeadm's image repository is the registry itself: trust it too.
    registry_mirror {
      registry  = "10.0.0.20:5000"
      endpoints = [strata_image_registry.site.url]
      ca_cert   = strata_image_registry.site.ca_cert
      fallback  = false
    }
  }
}
