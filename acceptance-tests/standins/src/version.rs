//! Kubernetes versions (`v1.MINOR.PATCH`) and the version each installed stand-in reports.
//!
//! The Debian package bakes its version into `/usr/lib/strata-standins/<package>.version`
//! (e.g. `v1.35.0` for kubeadm 1.35.0-1.1), so `kubeadm version` reports the package's
//! version as the real binary would. `STRATA_STANDIN_VERSION` overrides it (unit tests, and
//! the kubelet passes the static pod's image tag to the API server it starts).

use std::fmt;

use anyhow::{bail, Context, Result};

pub const VERSION_DIR: &str = "/usr/lib/strata-standins";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KubeVersion {
    /// Parses `v1.35.0` (the leading `v` optional, as kubeadm accepts).
    pub fn parse(s: &str) -> Result<KubeVersion> {
        let t = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            bail!("could not parse {s:?} as version");
        }
        Ok(KubeVersion { major: parts[0].parse()?, minor: parts[1].parse()?, patch: parts[2].parse()? })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version the stand-in of `package` (kubeadm, kubelet, kubectl) reports.
pub fn installed(package: &str) -> Result<KubeVersion> {
    if let Ok(v) = std::env::var("STRATA_STANDIN_VERSION") {
        return KubeVersion::parse(&v).context("STRATA_STANDIN_VERSION");
    }
    let path = format!("{VERSION_DIR}/{package}.version");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("stand-in {package}: reading its baked-in version from {path}"))?;
    KubeVersion::parse(&text).with_context(|| format!("parsing {path}"))
}

/// The JSON `version.Info` the real tools print and `/version` serves.
pub fn info_json(v: KubeVersion) -> serde_json::Value {
    serde_json::json!({
        "major": v.major.to_string(),
        "minor": v.minor.to_string(),
        "emulationMajor": v.major.to_string(),
        "emulationMinor": v.minor.to_string(),
        "gitVersion": v.to_string(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0 (strata stand-in)",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(KubeVersion::parse("v1.35.0").unwrap(), KubeVersion { major: 1, minor: 35, patch: 0 });
        assert_eq!(KubeVersion::parse("1.36.1").unwrap().to_string(), "v1.36.1");
        for bad in ["v1.35", "v1.x.0", "", "v1.35.0.1", "latest"] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
