# A container is imported by node/vm_id.
terraform import strata_container.k8s_master pve1/110
