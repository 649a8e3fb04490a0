//! strata-ssh
