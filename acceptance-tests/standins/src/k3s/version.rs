//! The k3s version of this binary: a trailer appended to the executable file
//! (`\nSTRATA-K3S-VERSION=v1.36.1+k3s1\n` as its last line; ELF ignores trailing bytes),
//! written by the lab when it makes the air-gap artifacts of each pinned version.

use anyhow::{bail, Context, Result};

pub const TRAILER_KEY: &str = "STRATA-K3S-VERSION=";

/// The trailer for `version`.
pub fn trailer(version: &str) -> String {
    format!("\n{TRAILER_KEY}{version}\n")
}

/// The version in the trailer of `bytes` (the end of the executable).
pub fn from_bytes(bytes: &[u8]) -> Result<String> {
    let tail = &bytes[bytes.len().saturating_sub(256)..];
    let text = String::from_utf8_lossy(tail);
    let Some(body) = text.strip_suffix('\n') else { bail!("no version trailer") };
    let line = body.rsplit('\n').next().unwrap_or_default();
    let Some(v) = line.strip_prefix(TRAILER_KEY) else { bail!("no version trailer") };
    check(v)?;
    Ok(v.to_string())
}

/// `vMAJOR.MINOR.PATCH+k3sN`.
pub fn check(v: &str) -> Result<()> {
    let ok = v.strip_prefix('v').and_then(|r| r.split_once("+k3s")).is_some_and(|(k, n)| {
        crate::version::KubeVersion::parse(k).is_ok() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    });
    if !ok {
        bail!("malformed k3s version {v:?} (expected like v1.36.1+k3s1)");
    }
    Ok(())
}

/// The version of the running executable.
pub fn current() -> Result<String> {
    if let Ok(v) = std::env::var("STRATA_K3S_VERSION") {
        check(&v)?;
        return Ok(v);
    }
    let bytes = std::fs::read("/proc/self/exe").context("reading /proc/self/exe")?;
    from_bytes(&bytes).context(
        "this stand-in k3s binary carries no version: the lab appends `STRATA-K3S-VERSION=<version>` to the binary \
         (strata_lab::k3s::airgap_artifacts); use a binary from there",
    )
}

/// The Kubernetes version of a k3s version (`v1.36.1+k3s1` -> `v1.36.1`).
pub fn kube_version(v: &str) -> crate::version::KubeVersion {
    crate::version::KubeVersion::parse(v.split('+').next().unwrap_or(v)).expect("checked version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trips_and_is_required() {
        let mut bin = b"\x7fELF....binary".to_vec();
        assert!(from_bytes(&bin).is_err());
        bin.extend(trailer("v1.36.1+k3s1").as_bytes());
        assert_eq!(from_bytes(&bin).unwrap(), "v1.36.1+k3s1");
        let mut bad = b"\x7fELF".to_vec();
        bad.extend(trailer("v1.36+k3s1").as_bytes());
        assert!(from_bytes(&bad).is_err());
        assert_eq!(kube_version("v1.35.0+k3s1").to_string(), "v1.35.0");
    }
}
