# The cloud-init template new VMs are cloned from.
data "strata_vms" "template" {
  node      = "pve1"
  name      = "debian-12-cloudinit"
  templates = true
}

output "template_vm_id" {
  value = data.strata_vms.template.vms[0].vm_id
}
