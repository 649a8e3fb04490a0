# The pause image kubeadm expects from a local registry, for containerd's sandbox_image,
# and the same repository for the control plane: typed once.
data "strata_kubernetes_images" "this" {
  kubernetes_version = "1.36.2"
  image_repository   = "10.0.0.20:5000/registry.k8s.io"
}

output "sandbox_image" {
  value = data.strata_kubernetes_images.this.pause # 10.0.0.20:5000/registry.k8s.io/pause:3.10.2
}
