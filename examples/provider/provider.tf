# Proxmox credentials come from the environment (STRATA_PVE_ENDPOINT,
# STRATA_PVE_API_TOKEN or STRATA_PVE_USERNAME/STRATA_PVE_PASSWORD, STRATA_PVE_CA_CERT);
# the ssh block holds the defaults every node-facing resource uses.
provider "strata" {
  proxmox {}

  ssh {
    user             = "ops"
    sudo             = true
    private_key_file = "~/.ssh/id_ed25519"
    known_hosts_file = "~/.ssh/known_hosts"
  }
}
