# A VM is imported by node/vm_id (the node it runs on now).
terraform import strata_vm.worker pve1/121
