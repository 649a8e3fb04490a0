# An export is imported by host:name.
terraform import strata_nfs_export.k8s_prod 10.20.0.40:k8s-prod
