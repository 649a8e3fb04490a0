//! strata-pve-client
