//! How node-facing resources reach their node over SSH: the per-resource `ssh`
//! block, the provider-level `ssh` defaults, and merging the two.

use serde::{Deserialize, Serialize};

use crate::framework::{Attribute, Block, NestedBlock, Type, Validator};

/// Attributes shared by the provider's `ssh` block, `connection` and `bastion`.
fn credentials(block: Block) -> Block {
    block
        .attribute(
            Attribute::optional("user", Type::String)
                .description("SSH user (default `root`). A non-root user needs passwordless sudo, see `sudo`."),
        )
        .attribute(
            Attribute::optional("private_key", Type::String)
                .sensitive()
                .description("Private key (OpenSSH or PEM): ed25519, ecdsa or rsa."),
        )
        .attribute(
            Attribute::optional("private_key_file", Type::String)
                .description("Path of the private key file, instead of `private_key`."),
        )
}

fn host_keys(block: Block) -> Block {
    block
        .attribute(
            Attribute::optional("known_hosts", Type::String)
                .description("known_hosts content the node's host key must match."),
        )
        .attribute(
            Attribute::optional("known_hosts_file", Type::String)
                .description("Path of a known_hosts file, instead of `known_hosts`."),
        )
        .attribute(
            Attribute::optional("host_key_fingerprints", Type::list(Type::String))
                .description("Pinned host key fingerprints (`SHA256:...`, as `ssh-keygen -lf` prints)."),
        )
        .attribute(Attribute::optional("insecure_ignore_host_key", Type::Bool).description(
            "Skip host key verification. Only for throw-away labs: anyone on the path can impersonate the node.",
        ))
        .attribute(
            Attribute::optional("sudo", Type::Bool)
                .description("Run commands through `sudo -n` (for a non-root `user`)."),
        )
}

fn bastion() -> NestedBlock {
    NestedBlock::single(
        "bastion",
        credentials(
            Block::new("Jump host the connection goes through; its host key is verified with the same settings.")
                .attribute(Attribute::required("host", Type::String).description("Bastion address."))
                .attribute(
                    Attribute::optional("port", Type::Number)
                        .validate(Validator::IntBetween(1, 65535))
                        .description("Bastion SSH port (default 22)."),
                ),
        ),
    )
}

/// The provider-level `ssh { ... }` block: defaults for every node-facing resource.
pub fn provider_block() -> NestedBlock {
    NestedBlock::single(
        "ssh",
        host_keys(credentials(Block::new("Defaults for how node-facing resources connect to their nodes over SSH.")))
            .block(bastion()),
    )
}

/// A resource's `ssh { ... }` block: the node and how to reach it. Only `host` is
/// required: the rest falls back to the provider's `ssh` block. (Not `connection`:
/// Terraform reserves that name in resource bodies for provisioners and never passes it
/// to the provider.)
pub fn resource_block() -> NestedBlock {
    NestedBlock::single(
        "ssh",
        host_keys(credentials(
            Block::new("The node to manage, and how to reach it over SSH.")
                .attribute(Attribute::required("host", Type::String).requires_replace().description(
                    "Node address or name. A different host is a different object: changing it replaces the resource.",
                ))
                .attribute(
                    Attribute::optional("port", Type::Number)
                        .validate(Validator::IntBetween(1, 65535))
                        .description("SSH port (default 22)."),
                ),
        ))
        .block(bastion()),
    )
    .items(1, 1)
}

#[derive(Serialize, Deserialize, Clone, Default)]
pub struct BastionModel {
    pub host: String,
    pub port: Option<i64>,
    pub user: Option<String>,
    pub private_key: Option<String>,
    pub private_key_file: Option<String>,
}

/// What the provider's `ssh` block sets as defaults and a resource's `ssh` block may
/// override. Field names equal schema names. No `Debug`: holds a private key.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct SshSettings {
    pub user: Option<String>,
    pub private_key: Option<String>,
    pub private_key_file: Option<String>,
    pub known_hosts: Option<String>,
    pub known_hosts_file: Option<String>,
    pub host_key_fingerprints: Option<Vec<String>>,
    pub insecure_ignore_host_key: Option<bool>,
    pub sudo: Option<bool>,
    pub bastion: Option<BastionModel>,
}

/// The provider-level `ssh` block.
pub type ProviderSshModel = SshSettings;

/// A resource's `ssh` block: the node, plus overrides of the provider's settings.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct ConnectionModel {
    pub host: String,
    pub port: Option<i64>,
    #[serde(flatten)]
    pub settings: SshSettings,
}

impl ConnectionModel {
    /// This connection with every unset setting taken from the provider's defaults.
    /// Credentials and host-key sources are taken as a whole, never mixed.
    pub fn with_defaults(&self, d: &SshSettings) -> ConnectionModel {
        let mut c = self.clone();
        let s = &mut c.settings;
        s.user = s.user.take().or_else(|| d.user.clone());
        if s.private_key.is_none() && s.private_key_file.is_none() {
            s.private_key = d.private_key.clone();
            s.private_key_file = d.private_key_file.clone();
        }
        if s.known_hosts.is_none() && s.known_hosts_file.is_none() && s.host_key_fingerprints.is_none() {
            s.known_hosts = d.known_hosts.clone();
            s.known_hosts_file = d.known_hosts_file.clone();
            s.host_key_fingerprints = d.host_key_fingerprints.clone();
        }
        s.insecure_ignore_host_key = s.insecure_ignore_host_key.or(d.insecure_ignore_host_key);
        s.sudo = s.sudo.or(d.sudo);
        s.bastion = s.bastion.take().or_else(|| d.bastion.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_settings_win_and_gaps_are_filled() {
        let d = SshSettings {
            user: Some("ops".into()),
            private_key_file: Some("/k".into()),
            known_hosts: Some("kh".into()),
            sudo: Some(true),
            ..Default::default()
        };
        let own = |settings: SshSettings| ConnectionModel { host: "n1".into(), port: None, settings };
        let c = own(SshSettings { user: Some("root".into()), ..Default::default() }).with_defaults(&d).settings;
        assert_eq!(c.user.as_deref(), Some("root"));
        assert_eq!(c.private_key_file.as_deref(), Some("/k"));
        assert_eq!(c.known_hosts.as_deref(), Some("kh"));
        assert_eq!(c.sudo, Some(true));
        // A resource that pins fingerprints does not inherit known_hosts.
        let c = own(SshSettings { host_key_fingerprints: Some(vec!["SHA256:x".into()]), ..Default::default() })
            .with_defaults(&d)
            .settings;
        assert!(c.known_hosts.is_none());
    }
}
