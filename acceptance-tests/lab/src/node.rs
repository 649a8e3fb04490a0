//! What every node offers the lab: running a command inside it, and the non-root user
//! with sudo that tests and the provider log in as. A node is a booted Debian machine
//! (see `machine`).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

use crate::process::describe;
use crate::state::NodeInfo;

pub const SUDO_USER: &str = "strata";

/// The lab dir holds each node's overlay root: overlayfs takes its layers in a
/// comma- and colon-separated option string.
pub fn check_lab_dir(dir: &Path) -> Result<()> {
    let s = dir.to_string_lossy();
    if s.contains([',', ':', '\\']) || s.chars().any(char::is_whitespace) {
        bail!("lab dir {s:?} must not contain ',', ':', '\\' or whitespace (they break overlayfs mount options)");
    }
    Ok(())
}

/// The command line that runs `argv` inside the node (every namespace of its PID 1), so
/// it sees the node's files, address and hostname.
pub fn exec_command(node: &NodeInfo, argv: &[&str]) -> Result<Command> {
    if argv.is_empty() {
        bail!("no command given to run in node {}", node.name);
    }
    let init = node
        .init
        .filter(|p| p.is_alive())
        .with_context(|| format!("node {} is not running (its systemd is gone)", node.name))?;
    Ok(crate::machine::exec_command(&init, argv))
}

pub fn exec(node: &NodeInfo, argv: &[&str]) -> Result<Output> {
    let mut cmd = exec_command(node, argv)?;
    let shown = describe(&cmd);
    cmd.stdin(Stdio::null()).output().with_context(|| format!("running `{shown}`"))
}

/// Creates the non-root user with the lab key and passwordless sudo, inside the node.
pub fn setup_sudo_user(node: &NodeInfo, public_key: &str) -> Result<()> {
    let script = format!(
        "set -eu\n\
         u={SUDO_USER}\n\
         id -u $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u\n\
         usermod -p '*' $u  # no password, but not locked: sshd refuses locked accounts\n\
         install -d -m 700 -o $u -g $u /home/$u/.ssh\n\
         printf '%s\\n' \"$STRATA_KEY\" > /home/$u/.ssh/authorized_keys\n\
         chown $u:$u /home/$u/.ssh/authorized_keys\n\
         chmod 600 /home/$u/.ssh/authorized_keys\n\
         printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' $u > /etc/sudoers.d/$u\n\
         chmod 440 /etc/sudoers.d/$u\n\
         visudo -cqf /etc/sudoers.d/$u\n"
    );
    let mut cmd = exec_command(node, &["sh", "-c", &script])?;
    cmd.env("STRATA_KEY", public_key.trim());
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!(
            "creating user {SUDO_USER} on {} failed ({}): {}",
            node.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
