//! DNS names for lab nodes, as a user's resolver would have them: entries in the
//! Terraform host's /etc/hosts that are removed again when the test ends (also when it
//! fails), and known_hosts lines under those names.

use std::fs::OpenOptions;
use std::path::Path;

/// Host names a test gives the Terraform host's resolver (/etc/hosts), removed when
/// dropped, also when the test fails (unwinding drops it).
pub struct HostsEntries {
    marker: String,
}

impl HostsEntries {
    const FILE: &'static str = "/etc/hosts";
    /// Tests of several engineers' labs edit /etc/hosts concurrently: each
    /// read-modify-write holds this lock.
    const LOCK: &'static str = "/run/lock/strata-test-etc-hosts.lock";

    /// Adds `(ip, name)` lines, tagged with `tag` and this process's id.
    pub fn add(tag: &str, entries: &[(String, String)]) -> HostsEntries {
        let marker = format!("# strata-{tag}-{}", std::process::id());
        Self::edit(|hosts| {
            let mut hosts = hosts.to_string();
            if !hosts.is_empty() && !hosts.ends_with('\n') {
                hosts.push('\n');
            }
            for (ip, name) in entries {
                hosts.push_str(&format!("{ip} {name} {marker}\n"));
            }
            hosts
        })
        .expect("adding test names to /etc/hosts");
        HostsEntries { marker }
    }

    /// Rewrites /etc/hosts in place (same inode: it may be bind-mounted) under the lock.
    fn edit(change: impl FnOnce(&str) -> String) -> std::io::Result<()> {
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(Self::LOCK)?;
        lock.lock()?;
        let hosts = std::fs::read_to_string(Self::FILE)?;
        std::fs::write(Self::FILE, change(&hosts))
    }
}

impl Drop for HostsEntries {
    fn drop(&mut self) {
        let _ = Self::edit(|hosts| {
            hosts.lines().filter(|l| !l.ends_with(&self.marker)).map(|l| format!("{l}\n")).collect()
        });
    }
}

/// `known_hosts` with each line for an address of `names` repeated under its name, as a
/// user's known_hosts would hold the node under both.
pub fn known_hosts_with_names(known_hosts: &Path, names: &[(String, String)]) -> String {
    let known = std::fs::read_to_string(known_hosts).expect("reading known_hosts");
    let mut extended = known.clone();
    if !extended.is_empty() && !extended.ends_with('\n') {
        extended.push('\n');
    }
    for line in known.lines() {
        if let Some((first, rest)) = line.split_once(' ') {
            for (_, name) in names.iter().filter(|(ip, _)| ip == first) {
                extended.push_str(&format!("{name} {rest}\n"));
            }
        }
    }
    extended
}
