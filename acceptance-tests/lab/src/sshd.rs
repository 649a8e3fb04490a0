//! OpenSSH pieces: the lab's client key, each node's sshd config, known_hosts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::process::run;

pub struct ClientKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

/// `DIR/ssh/id_ed25519`: one client key for the whole lab, kept across `up`s.
pub fn ensure_client_key(ssh_dir: &Path) -> Result<ClientKey> {
    fs::create_dir_all(ssh_dir).with_context(|| format!("creating {}", ssh_dir.display()))?;
    let private = ssh_dir.join("id_ed25519");
    let public = ssh_dir.join("id_ed25519.pub");
    if !private.exists() || !public.exists() {
        let _ = fs::remove_file(&private);
        let _ = fs::remove_file(&public);
        let path = private.to_string_lossy().into_owned();
        run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "strata-lab", "-f", &path])?;
    }
    Ok(ClientKey { private, public })
}

/// "SHA256:..." of a public key file.
pub fn fingerprint(public_key: &Path) -> Result<String> {
    let out = run("ssh-keygen", ["-l", "-E", "sha256", "-f", &public_key.to_string_lossy()])?;
    out.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("unexpected ssh-keygen -l output: {out:?}"))
}

/// known_hosts line for a host key, keyed by address (the comment is dropped).
pub fn known_hosts_line(address: &str, public_key_line: &str) -> String {
    let mut parts = public_key_line.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    format!("{address} {kind} {blob}\n")
}

/// Rewrites `file` with the entry for `address` replaced by the new key (atomically).
pub fn replace_known_host(file: &Path, address: &str, public_key_line: &str) -> Result<()> {
    let old = fs::read_to_string(file).unwrap_or_default();
    let mut new: String =
        old.lines().filter(|l| l.split_whitespace().next() != Some(address)).map(|l| format!("{l}\n")).collect();
    new.push_str(&known_hosts_line(address, public_key_line));
    let dir = file.parent().context("known_hosts has no parent dir")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, new.as_bytes())?;
    tmp.persist(file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_line_uses_address_and_drops_comment() {
        assert_eq!(
            known_hosts_line("10.77.1.11", "ssh-ed25519 AAAAC3Nza root@node1\n"),
            "10.77.1.11 ssh-ed25519 AAAAC3Nza\n"
        );
    }

    #[test]
    fn replace_known_host_swaps_only_that_address() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        fs::write(&f, "10.77.1.11 ssh-ed25519 OLD\n10.77.1.12 ssh-ed25519 OTHER\n").unwrap();
        replace_known_host(&f, "10.77.1.11", "ssh-ed25519 NEW root@node1\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "10.77.1.12 ssh-ed25519 OTHER\n10.77.1.11 ssh-ed25519 NEW\n");
    }

    #[test]
    fn client_key_is_generated_once_and_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        let k = ensure_client_key(dir.path()).unwrap();
        let first = fs::read_to_string(&k.public).unwrap();
        assert!(first.starts_with("ssh-ed25519 "));
        let k2 = ensure_client_key(dir.path()).unwrap();
        assert_eq!(fs::read_to_string(&k2.public).unwrap(), first);
        assert!(fingerprint(&k.public).unwrap().starts_with("SHA256:"));
    }
}
