output "vip" {
  value = local.vip
}

output "kubeconfig" {
  value     = strata_control_plane.k8s.kubeconfig
  sensitive = true
}

# nfs.server / nfs.path for nfs-subdir-external-provisioner (StorageClasses nfs-prod, nfs-nonprod).
output "storage_classes" {
  value = {
    for name, e in strata_nfs_export.this : replace(name, "k8s-", "nfs-") => e.storage_class_parameters
  }
}

output "vm_addresses" {
  value = { for name, vm in strata_vm.this : name => vm.ipv4_addresses }
}

# Air-gapped sites: each bundle image with the digest the local registry serves.
output "images" {
  value = local.air_gapped ? strata_image_registry.site[0].images : {}
}
