//! The oldest etcd a kubeadm control plane accepts, and how a version is compared with it.
//!
//! kubeadm's preflight (`ExternalEtcdVersionCheck` in `cmd/kubeadm/app/preflight/checks.go`)
//! asks every external etcd endpoint for `/version` and refuses one older than
//! `MinExternalEtcdVersion` (`cmd/kubeadm/app/constants/constants.go`) with
//! `[ERROR ExternalEtcdVersion]: this version of kubeadm only supports external etcd
//! version >= 3.5.24-0`. That constant is `3.5.24-0` in every kubeadm this provider's
//! control plane installs: 1.34 (from 1.34.2, kubernetes#134861), 1.35 and 1.36
//! (kubernetes#134779). It is compared as a semantic version, so `3.5.24` passes and
//! `3.5.23` does not. One floor for every supported Kubernetes version, so the cluster
//! needs no Kubernetes version of its own.

/// kubeadm's `MinExternalEtcdVersion`, as kubeadm spells it.
pub const KUBEADM_MIN_EXTERNAL_ETCD: &str = "3.5.24-0";
/// The same floor as an etcd release: the oldest etcd this resource installs or runs.
pub const MIN_VERSION: &str = "3.5.24";
/// The Kubernetes minors whose kubeadm has that floor (the ones the provider installs).
pub const KUBERNETES: &str = "1.34 to 1.36";

/// `MAJOR.MINOR.PATCH[-PRE][+BUILD]` as (major, minor, patch, pre-release or empty).
fn parse(v: &str) -> Option<(u64, u64, u64, &str)> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split('+').next()?;
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    let mut it = core.split('.');
    let n = |s: Option<&str>| s.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))?.parse().ok();
    let (a, b, c) = (n(it.next())?, n(it.next())?, n(it.next())?);
    it.next().is_none().then_some((a, b, c, pre))
}

/// Whether `version` (an etcd release, e.g. `3.4.23`) is older than `min`, in semantic
/// version order (a pre-release sorts before its release). `None` when unreadable.
pub fn older_than(version: &str, min: &str) -> Option<bool> {
    let (a, m) = (parse(version)?, parse(min)?);
    let core = |x: (u64, u64, u64, &str)| (x.0, x.1, x.2);
    Some(match core(a).cmp(&core(m)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        // Same core: a release is newer than any of its pre-releases.
        std::cmp::Ordering::Equal => match (a.3.is_empty(), m.3.is_empty()) {
            (true, _) => false,
            (false, true) => true,
            (false, false) => a.3 < m.3,
        },
    })
}

/// The upstream version of a Debian package version: `3.4.23-4+b4` -> `3.4.23`,
/// `1:3.5.30-2` -> `3.5.30`, `3.5.25~rc1-1` -> `3.5.25-rc1` (a pre-release).
pub fn upstream_of_debian(v: &str) -> String {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    v.rsplit_once('-').map_or(v, |(up, _)| up).replace('~', "-")
}

/// How to get a newer etcd, for the user.
pub const HOW_TO_UPGRADE: &str = "Install etcd 3.5.24 or newer: set release_archive to an etcd release archive \
     (etcd-v3.5.x-linux-amd64.tar.gz, 3.5.24 or later), or give the members a package source that ships one and \
     pin it with package_version (Debian 12 ships 3.4.23 and Debian 13 3.5.16, both too old; Debian unstable's \
     etcd-server 3.5.30-2 installs on Debian 13, or on Debian 12 once its sysusers line `u!` reads `u`).";

/// `Err` (for the user) when `version` is older than kubeadm accepts; `what` says whose it is.
pub fn require_supported(version: &str, what: &str) -> Result<(), String> {
    match older_than(version, MIN_VERSION) {
        Some(false) => Ok(()),
        Some(true) => Err(format!(
            "{what} is etcd {version}, older than {MIN_VERSION}: kubeadm {KUBERNETES} refuses an external etcd \
             older than its MinExternalEtcdVersion {KUBEADM_MIN_EXTERNAL_ETCD} ([ERROR ExternalEtcdVersion] in \
             `kubeadm init` and `kubeadm join` preflight). {HOW_TO_UPGRADE}"
        )),
        None => Err(format!("{what}: cannot read {version:?} as an etcd version (MAJOR.MINOR.PATCH).")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubeadm compares with `MinExternalEtcdVersion` = 3.5.24-0 as a semantic version
    /// (cmd/kubeadm/app/preflight/checks.go, ExternalEtcdVersionCheck).
    #[test]
    fn the_floor_is_kubeadms_min_external_etcd_version() {
        for old in ["3.4.23", "3.5.16", "3.5.23", "3.5.24-0", "3.4.99", "2.3.8"] {
            assert_eq!(older_than(old, MIN_VERSION), Some(true), "{old}");
        }
        for old in ["3.4.23", "3.5.16", "3.5.23", "3.5.23-rc.1", "3.4.99", "2.3.8"] {
            assert_eq!(older_than(old, KUBEADM_MIN_EXTERNAL_ETCD), Some(true), "{old}");
        }
        // A pre-release sorts before its release.
        assert_eq!(older_than("3.5.24-rc.0", MIN_VERSION), Some(true));
        for ok in ["3.5.24", "3.5.30", "3.6.6", "v3.5.26", "4.0.0", "3.5.24+build1"] {
            assert_eq!(older_than(ok, KUBEADM_MIN_EXTERNAL_ETCD), Some(false), "{ok}");
            assert_eq!(older_than(ok, MIN_VERSION), Some(false), "{ok}");
        }
        for bad in ["", "3.5", "x.y.z", "3.5.30.1"] {
            assert_eq!(older_than(bad, MIN_VERSION), None, "{bad}");
        }
    }

    #[test]
    fn a_debian_version_is_compared_by_its_upstream_part() {
        assert_eq!(upstream_of_debian("3.4.23-4+b4"), "3.4.23");
        assert_eq!(upstream_of_debian("3.5.30-2"), "3.5.30");
        assert_eq!(upstream_of_debian("1:3.5.30-2"), "3.5.30");
        assert_eq!(upstream_of_debian("3.5.16"), "3.5.16");
        assert_eq!(upstream_of_debian("3.5.25~rc1-1"), "3.5.25-rc1");
        assert_eq!(older_than(&upstream_of_debian("3.5.25~rc1-1"), "3.5.25"), Some(true));
    }

    #[test]
    fn a_refusal_names_both_versions_and_the_way_out() {
        let e = require_supported("3.4.23", "member etcd1").unwrap_err();
        for want in ["etcd 3.4.23", "3.5.24", "3.5.24-0", "ExternalEtcdVersion", "release_archive", "package_version"] {
            assert!(e.contains(want), "{want} in {e}");
        }
        assert!(require_supported("3.5.30", "member etcd1").is_ok());
        assert!(require_supported("garbage", "member etcd1").is_err());
    }
}
