//! How node-facing resources reach their node over SSH: the per-resource `ssh`
//! block, the provider-level `ssh` defaults, and merging the two.

use serde::{Deserialize, Serialize};

use crate::framework::{Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Type, Validator, Value};

/// Whether a block is stored in state (a resource's) or never stored (the provider's).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Provider,
    Resource,
}

/// Attributes shared by the provider's `ssh` block, a resource's `ssh` block and `bastion`.
fn credentials(block: Block, level: Level) -> Block {
    let mut key = Attribute::optional("private_key", Type::String).sensitive();
    key = match level {
        // Kept out of state and plan files: the resource works without it at refresh
        // and destroy when private_key_file or the provider's ssh block gives a key.
        Level::Resource => key
            .write_only()
            .write_only_instead(
                "give the key another way: `private_key_file` here, `private_key` or `private_key_file` in the \
                 provider's `ssh` block, or an ssh-agent (`agent = true`)",
            )
            .description(
                "Private key (OpenSSH or PEM): ed25519, ecdsa or rsa. Write-only: never stored in state or plan \
             files, so refresh, import and destroy need another key source (`private_key_file` here, or the \
             provider's `ssh` block). Conflicts with `private_key_file`.",
            ),
        Level::Provider => {
            key.description("Private key (OpenSSH or PEM): ed25519, ecdsa or rsa. Conflicts with `private_key_file`.")
        }
    };
    block
        .attribute(
            Attribute::optional("user", Type::String)
                .description("SSH user (default `root`). A non-root user needs passwordless sudo, see `sudo`."),
        )
        .attribute(key)
        .attribute(
            Attribute::optional("private_key_file", Type::String)
                .description("Path of the private key file, instead of `private_key` (`~/` is the home directory)."),
        )
        .attribute(Attribute::optional("agent", Type::Bool).description(
            "Authenticate with the keys of the ssh-agent whose socket is `SSH_AUTH_SOCK` in Terraform's \
             environment; the keys never leave the agent. When unset, the agent is used if no `private_key` or \
             `private_key_file` is set and `SSH_AUTH_SOCK` is (as OpenSSH and Terraform's `connection` block do); \
             `false` never uses it. Conflicts with `private_key` and `private_key_file`.",
        ))
        .attribute(Attribute::optional("agent_identity", Type::String).description(
            "Which of the agent's keys to offer: its comment, its public key (`ssh-ed25519 AAAA...`) or its \
             fingerprint (`SHA256:...`). Default: each key in turn, in the agent's order.",
        ))
}

fn host_keys(block: Block) -> Block {
    block
        .attribute(Attribute::optional("known_hosts", Type::String).description(
            "known_hosts content the host key must match. Conflicts with `known_hosts_file`, \
             `host_key_fingerprints` and `insecure_ignore_host_key = true`.",
        ))
        .attribute(
            Attribute::optional("known_hosts_file", Type::String)
                .description("Path of a known_hosts file, instead of `known_hosts` (`~/` is the home directory)."),
        )
        .attribute(
            Attribute::optional("host_key_fingerprints", Type::list(Type::String))
                .validate(Validator::Custom(check_fingerprints))
                .description("Pinned host key fingerprints (`SHA256:...`, as `ssh-keygen -lf` prints)."),
        )
        .attribute(Attribute::optional("insecure_ignore_host_key", Type::Bool).description(
            "Skip host key verification. Only for throw-away labs: anyone on the path can impersonate the node. \
             Host keys set on a resource (or its bastion) win over an inherited `insecure_ignore_host_key`.",
        ))
}

/// At least one pin, each in the `SHA256:` form `ssh-keygen -lf` prints (MD5 ones are
/// refused: too weak to pin a key with).
fn check_fingerprints(v: &Value) -> Result<(), String> {
    let Value::List(pins) = v else { return Ok(()) };
    if pins.is_empty() {
        return Err("Must list at least one fingerprint (or leave host_key_fingerprints unset).".into());
    }
    for p in pins.iter().filter_map(Value::as_str) {
        if !p.starts_with("SHA256:") || p.len() <= "SHA256:".len() {
            return Err(format!("{p:?} is not a SHA256:... fingerprint as `ssh-keygen -lf` prints it."));
        }
    }
    Ok(())
}

fn sudo(block: Block) -> Block {
    block.attribute(
        Attribute::optional("sudo", Type::Bool).description("Run commands through `sudo -n` (for a non-root `user`)."),
    )
}

fn bastion(level: Level) -> NestedBlock {
    NestedBlock::single(
        "bastion",
        host_keys(credentials(
            Block::new(
                "Jump host the connection goes through. Its host key is checked with its own `known_hosts`, \
                 `known_hosts_file`, `host_key_fingerprints` or `insecure_ignore_host_key`; when it sets none, \
                 with the node's. Without a key of its own it uses the node's.",
            )
            .attribute(Attribute::required("host", Type::String).description("Bastion address."))
            .attribute(
                Attribute::optional("port", Type::Number)
                    .validate(Validator::IntBetween(1, 65535))
                    .description("Bastion SSH port (default 22)."),
            ),
            level,
        )),
    )
}

/// The provider-level `ssh { ... }` block: defaults for every node-facing resource.
pub fn provider_block() -> NestedBlock {
    NestedBlock::single(
        "ssh",
        sudo(host_keys(credentials(
            Block::new("Defaults for how node-facing resources connect to their nodes over SSH."),
            Level::Provider,
        )))
        .block(bastion(Level::Provider)),
    )
}

/// A resource's `ssh { ... }` block: the node and how to reach it. Only `host` is
/// required: the rest falls back to the provider's `ssh` block. (Not `connection`:
/// Terraform reserves that name in resource bodies for provisioners and never passes it
/// to the provider.)
pub fn resource_block() -> NestedBlock {
    NestedBlock::single(
        "ssh",
        sudo(host_keys(credentials(
            Block::new("The node to manage, and how to reach it over SSH.")
                .attribute(Attribute::required("host", Type::String).requires_replace().description(
                    "Node address or name. A different host is a different object: changing it replaces the resource.",
                ))
                .attribute(
                    Attribute::optional("port", Type::Number)
                        .validate(Validator::IntBetween(1, 65535))
                        .description("SSH port (default 22)."),
                ),
            Level::Resource,
        )))
        .block(bastion(Level::Resource)),
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
    pub agent: Option<bool>,
    pub agent_identity: Option<String>,
    pub known_hosts: Option<String>,
    pub known_hosts_file: Option<String>,
    pub host_key_fingerprints: Option<Vec<String>>,
    pub insecure_ignore_host_key: Option<bool>,
}

impl BastionModel {
    /// Whether the bastion has host-key settings of its own (else it uses the node's).
    pub fn sets_host_keys(&self) -> bool {
        self.known_hosts.is_some()
            || self.known_hosts_file.is_some()
            || self.host_key_fingerprints.is_some()
            || self.insecure_ignore_host_key.is_some()
    }
}

/// What the provider's `ssh` block sets as defaults and a resource's `ssh` block may
/// override. Field names equal schema names. No `Debug`: holds a private key.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct SshSettings {
    pub user: Option<String>,
    pub private_key: Option<String>,
    pub private_key_file: Option<String>,
    pub agent: Option<bool>,
    pub agent_identity: Option<String>,
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
        if s.private_key.is_none() && s.private_key_file.is_none() && s.agent.is_none() && s.agent_identity.is_none() {
            s.private_key = d.private_key.clone();
            s.private_key_file = d.private_key_file.clone();
            s.agent = d.agent;
            s.agent_identity = d.agent_identity.clone();
        }
        if s.known_hosts.is_none() && s.known_hosts_file.is_none() && s.host_key_fingerprints.is_none() {
            s.known_hosts = d.known_hosts.clone();
            s.known_hosts_file = d.known_hosts_file.clone();
            s.host_key_fingerprints = d.host_key_fingerprints.clone();
            s.insecure_ignore_host_key = s.insecure_ignore_host_key.or(d.insecure_ignore_host_key);
        }
        // else: keys pinned on the resource are checked, whatever the provider's
        // insecure_ignore_host_key says (the resource's own `true` with pins is refused
        // at validation).
        s.sudo = s.sudo.or(d.sudo);
        s.bastion = s.bastion.take().or_else(|| d.bastion.clone());
        c
    }
}

/// Settings of one `ssh` or `bastion` block that cannot be used together, as
/// (attribute, attribute, why).
const CONFLICTS: &[(&str, &str, &str)] = &[
    ("private_key", "private_key_file", "give the key one way"),
    ("agent", "private_key", "give the key one way"),
    ("agent", "private_key_file", "give the key one way"),
    ("agent_identity", "private_key", "agent_identity picks a key of the ssh-agent"),
    ("agent_identity", "private_key_file", "agent_identity picks a key of the ssh-agent"),
    ("known_hosts", "known_hosts_file", "give the host keys one way"),
    ("known_hosts", "host_key_fingerprints", "give the host keys one way"),
    ("known_hosts_file", "host_key_fingerprints", "give the host keys one way"),
    ("insecure_ignore_host_key", "known_hosts", "host keys to check contradict skipping the check"),
    ("insecure_ignore_host_key", "known_hosts_file", "host keys to check contradict skipping the check"),
    ("insecure_ignore_host_key", "host_key_fingerprints", "host keys to check contradict skipping the check"),
];

/// Refuses contradictory settings in an `ssh` block `block` (at `at`, e.g. `ssh`)
/// and in its `bastion`, naming both attributes. Only known values count: an
/// unknown value is checked again when Terraform knows it.
pub fn validate(block: Option<&Value>, at: &AttributePath, diags: &mut Diagnostics) {
    let Some(block @ Value::Object(_)) = block else { return };
    let set = |name: &str| match block.attr(name) {
        None | Some(Value::Null) | Some(Value::Unknown) => false,
        // insecure_ignore_host_key = false asks for nothing.
        Some(Value::Bool(b)) => *b,
        Some(v) => !v.is_unknown(),
    };
    for (a, b, why) in CONFLICTS {
        if set(a) && set(b) {
            let (pa, pb) = (at.attr(a), at.attr(b));
            let shown_a = if *a == "insecure_ignore_host_key" { format!("{pa} = true") } else { pa.to_string() };
            diags.push(
                Diagnostic::error(
                    "Conflicting SSH settings",
                    format!("`{shown_a}` and `{pb}` cannot be used together ({why}): remove one of them."),
                )
                .at(pb),
            );
        }
    }
    validate(block.attr("bastion"), &at.attr("bastion"), diags);
}

/// Warns, for every `ssh` block in a resource's configuration (at any depth: a node
/// list's too) whose only key is its write-only `private_key`: that key is never
/// stored, so refresh, import and destroy will have no key. `defaults` is the
/// provider's `ssh` block. Decided as [`ConnectionModel::with_defaults`] merges at
/// refresh (the stored `private_key` is null there); an unknown value counts as set.
pub fn write_only_key_warnings(config: &Value, defaults: Option<&SshSettings>, diags: &mut Diagnostics) {
    walk_ssh_blocks(config, &AttributePath::default(), &mut |ssh, at| {
        let set = |name: &str| ssh.attr(name).is_some_and(|v| !v.is_null());
        let agent_true = |v: Option<&Value>| matches!(v, Some(Value::Bool(true) | Value::Unknown));
        if !set("private_key") {
            return;
        }
        let own = set("private_key_file") || agent_true(ssh.attr("agent")) || set("agent_identity");
        // Any `agent` (even false) or other credential on the resource stops the
        // provider's credentials from being inherited.
        let inherits = !set("private_key_file") && !set("agent") && !set("agent_identity");
        let provider = defaults.is_some_and(|d| {
            d.private_key.is_some()
                || d.private_key_file.is_some()
                || d.agent == Some(true)
                || d.agent_identity.is_some()
        });
        if own || (inherits && provider) {
            return;
        }
        let key = at.attr("private_key");
        diags.push(
            Diagnostic::warning(
                "Refresh and destroy will need another SSH key",
                format!(
                    "`{key}` is write-only, so it is never stored: refresh, import and destroy of this resource \
                     will not have it, and no other key is configured (refresh then keeps the last known state; \
                     destroy fails). Give a key the provider can always read: `{}` instead of `{key}`, \
                     `private_key` or `private_key_file` in the provider's `ssh` block, or an ssh-agent \
                     (`agent = true` with SSH_AUTH_SOCK set).",
                    at.attr("private_key_file")
                ),
            )
            .at(key),
        );
    });
}

/// Calls `f` for every object under an attribute named `ssh`, with its path.
fn walk_ssh_blocks(v: &Value, at: &AttributePath, f: &mut dyn FnMut(&Value, &AttributePath)) {
    match v {
        Value::Object(attrs) => {
            for (name, inner) in attrs {
                let path = at.attr(name);
                if name == "ssh" && matches!(inner, Value::Object(_)) {
                    f(inner, &path);
                } else {
                    walk_ssh_blocks(inner, &path, f);
                }
            }
        }
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_ssh_blocks(item, &at.index(i), f);
            }
        }
        Value::Map(items) => {
            for (k, item) in items {
                walk_ssh_blocks(item, &at.key(k), f);
            }
        }
        _ => {}
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

    #[test]
    fn pins_on_the_resource_win_over_an_inherited_insecure_ignore() {
        let d = SshSettings { insecure_ignore_host_key: Some(true), ..Default::default() };
        let own = |settings: SshSettings| ConnectionModel { host: "n1".into(), port: None, settings };
        let c = own(SshSettings { known_hosts: Some("kh".into()), ..Default::default() }).with_defaults(&d).settings;
        assert_eq!(c.insecure_ignore_host_key, None);
        assert_eq!(c.known_hosts.as_deref(), Some("kh"));
        // Without pins of its own the resource inherits the provider's choice.
        let c = own(SshSettings::default()).with_defaults(&d).settings;
        assert_eq!(c.insecure_ignore_host_key, Some(true));
    }

    fn block(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn errors(v: &Value) -> Vec<(String, String)> {
        let mut d = Diagnostics::new();
        validate(Some(v), &AttributePath::root("ssh"), &mut d);
        d.iter().map(|d| (d.attribute.as_ref().unwrap().to_string(), d.detail.clone())).collect()
    }

    #[test]
    fn conflicting_settings_name_both_attributes() {
        let fps = Value::List(vec!["SHA256:x".into()]);
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                block(&[("private_key", "k".into()), ("private_key_file", "/k".into())]),
                "ssh.private_key",
                "ssh.private_key_file",
            ),
            (
                block(&[("known_hosts", "kh".into()), ("known_hosts_file", "/kh".into())]),
                "ssh.known_hosts",
                "ssh.known_hosts_file",
            ),
            (
                block(&[("insecure_ignore_host_key", true.into()), ("known_hosts", "kh".into())]),
                "ssh.insecure_ignore_host_key = true",
                "ssh.known_hosts",
            ),
            (
                block(&[("insecure_ignore_host_key", true.into()), ("host_key_fingerprints", fps.clone())]),
                "ssh.insecure_ignore_host_key",
                "ssh.host_key_fingerprints",
            ),
            (
                block(&[("known_hosts", "kh".into()), ("host_key_fingerprints", fps.clone())]),
                "ssh.known_hosts",
                "ssh.host_key_fingerprints",
            ),
            (
                block(&[
                    ("host", "n".into()),
                    ("bastion", block(&[("private_key", "k".into()), ("private_key_file", "/k".into())])),
                ]),
                "ssh.bastion.private_key",
                "ssh.bastion.private_key_file",
            ),
        ];
        for (v, a, b) in cases {
            let e = errors(&v);
            assert_eq!(e.len(), 1, "{a} / {b}: {e:?}");
            assert!(e[0].1.contains(a) && e[0].1.contains(b), "{e:?}");
            assert_eq!(e[0].0, b.split(' ').next().unwrap());
        }
    }

    #[test]
    fn fingerprints_must_be_sha256() {
        assert!(check_fingerprints(&Value::List(vec!["SHA256:abc".into(), Value::Unknown])).is_ok());
        assert!(check_fingerprints(&Value::List(vec!["MD5:aa:bb".into()])).unwrap_err().contains("MD5:aa:bb"));
        assert!(check_fingerprints(&Value::List(vec![])).is_err());
    }

    #[test]
    fn unknown_false_and_single_settings_pass() {
        for v in [
            block(&[("private_key", Value::Unknown), ("private_key_file", "/k".into())]),
            block(&[("insecure_ignore_host_key", false.into()), ("known_hosts", "kh".into())]),
            block(&[("insecure_ignore_host_key", Value::Unknown), ("known_hosts", "kh".into())]),
            block(&[("private_key", "k".into()), ("known_hosts_file", "/kh".into()), ("bastion", Value::Null)]),
        ] {
            assert_eq!(errors(&v), vec![]);
        }
    }

    fn warnings(config: &Value, defaults: Option<&SshSettings>) -> Vec<String> {
        let mut diags = Diagnostics::new();
        write_only_key_warnings(config, defaults, &mut diags);
        assert!(!diags.has_errors());
        diags.iter().map(|d| d.attribute.clone().unwrap().to_string()).collect()
    }

    fn resource(ssh: Value) -> Value {
        Value::Object([("name".to_string(), Value::string("n")), ("ssh".to_string(), ssh)].into_iter().collect())
    }

    #[test]
    fn a_write_only_key_with_no_other_source_warns_naming_it_and_what_to_use_instead() {
        let only_key = resource(block(&[("host", "10.0.0.5".into()), ("private_key", "SECRET".into())]));
        assert_eq!(warnings(&only_key, None), vec!["ssh.private_key"]);
        assert_eq!(warnings(&only_key, Some(&SshSettings::default())), vec!["ssh.private_key"]);
        let mut diags = Diagnostics::new();
        write_only_key_warnings(&only_key, None, &mut diags);
        let d = &diags.0[0];
        assert!(d.detail.contains("`ssh.private_key_file`") && d.detail.contains("provider's `ssh` block"), "{d:?}");
        assert!(d.detail.contains("ssh-agent") && !d.detail.contains("SECRET"), "{d:?}");
        // An unknown key (from another resource) is a key too.
        let unknown = resource(block(&[("host", "h".into()), ("private_key", Value::Unknown)]));
        assert_eq!(warnings(&unknown, None), vec!["ssh.private_key"]);
        // `agent = false` keeps the provider's key from being inherited at refresh.
        let no_agent = resource(block(&[("host", "h".into()), ("private_key", "k".into()), ("agent", false.into())]));
        let provider_file = SshSettings { private_key_file: Some("/k".into()), ..Default::default() };
        assert_eq!(warnings(&no_agent, Some(&provider_file)), vec!["ssh.private_key"]);
        // Node lists: each node's block, by index.
        let nodes = Value::Object(
            [(
                "node".to_string(),
                Value::List(vec![
                    resource(block(&[("host", "a".into()), ("private_key_file", "/k".into())])),
                    resource(block(&[("host", "b".into()), ("private_key", "k".into())])),
                ]),
            )]
            .into_iter()
            .collect(),
        );
        assert_eq!(warnings(&nodes, None), vec!["node[1].ssh.private_key"]);
    }

    #[test]
    fn another_key_source_means_no_warning() {
        let only_key = resource(block(&[("host", "h".into()), ("private_key", "k".into())]));
        for defaults in [
            SshSettings { private_key_file: Some("/k".into()), ..Default::default() },
            SshSettings { private_key: Some("k".into()), ..Default::default() },
            SshSettings { agent: Some(true), ..Default::default() },
            SshSettings { agent_identity: Some("me".into()), ..Default::default() },
        ] {
            assert!(warnings(&only_key, Some(&defaults)).is_empty());
        }
        assert!(warnings(&resource(block(&[("host", "h".into()), ("private_key_file", "/k".into())])), None).is_empty());
        assert!(warnings(&resource(block(&[("host", "h".into())])), None).is_empty());
        assert!(warnings(&resource(Value::Null), None).is_empty());
    }
}
