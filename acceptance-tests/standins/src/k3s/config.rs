//! k3s's flags and `/etc/rancher/k3s/config.yaml` (+ `config.yaml.d/*.yaml`), merged and
//! checked as k3s does: every config key becomes a `--key=value` flag placed before the
//! command line's, so an unknown key fails exactly like an unknown flag
//! (`Incorrect Usage: flag provided but not defined: -KEY`, urfave/cli's message), and
//! flags given on the command line win over the file.
//!
//! The flag tables are those of k3s's `pkg/cli/cmds/server.go` (ServerFlags) and
//! `pkg/cli/cmds/agent.go` (NewAgentCommand's Flags) plus the shared ones of
//! `pkg/cli/cmds/log.go`/`config.go`, with the flags added up to v1.36
//! (`disable-default-registry-endpoint`, `embedded-registry`, `supervisor-metrics`, ...).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Str,
    Slice,
    Duration,
}

use Kind::*;

/// (name, short alias, kind). Shared by both commands.
const COMMON: &[(&str, &str, Kind)] = &[
    ("config", "c", Str),
    ("debug", "", Bool),
    ("v", "", Int),
    ("vmodule", "", Str),
    ("log", "l", Str),
    ("alsologtostderr", "", Bool),
    ("token", "t", Str),
    ("token-file", "", Str),
    ("server", "s", Str),
    ("data-dir", "d", Str),
    ("node-name", "", Str),
    ("with-node-id", "", Bool),
    ("node-label", "", Slice),
    ("node-taint", "", Slice),
    ("image-credential-provider-bin-dir", "", Str),
    ("image-credential-provider-config", "", Str),
    ("selinux", "", Bool),
    ("lb-server-port", "", Int),
    ("protect-kernel-defaults", "", Bool),
    ("container-runtime-endpoint", "", Str),
    ("default-runtime", "", Str),
    ("image-service-endpoint", "", Str),
    ("disable-default-registry-endpoint", "", Bool),
    ("nonroot-devices", "", Bool),
    ("pause-image", "", Str),
    ("snapshotter", "", Str),
    ("private-registry", "", Str),
    ("airgap-extra-registry", "", Slice),
    ("node-ip", "i", Slice),
    ("node-external-ip", "", Slice),
    ("node-internal-dns", "", Slice),
    ("node-external-dns", "", Slice),
    ("resolv-conf", "", Str),
    ("flannel-iface", "", Str),
    ("flannel-conf", "", Str),
    ("flannel-cni-conf", "", Str),
    ("vpn-auth", "", Str),
    ("vpn-auth-file", "", Str),
    ("kubelet-arg", "", Slice),
    ("kube-proxy-arg", "", Slice),
    ("rootless", "", Bool),
    ("prefer-bundled-bin", "", Bool),
    ("docker", "", Bool),
    ("disable-apparmor", "", Bool),
];

/// `k3s server` only (pkg/cli/cmds/server.go).
const SERVER: &[(&str, &str, Kind)] = &[
    ("bind-address", "", Str),
    ("https-listen-port", "", Int),
    ("supervisor-port", "", Int),
    ("apiserver-port", "", Int),
    ("apiserver-bind-address", "", Str),
    ("advertise-address", "", Str),
    ("advertise-port", "", Int),
    ("tls-san", "", Slice),
    ("tls-san-security", "", Bool),
    ("cluster-cidr", "", Slice),
    ("service-cidr", "", Slice),
    ("service-node-port-range", "", Str),
    ("cluster-dns", "", Slice),
    ("cluster-domain", "", Str),
    ("flannel-backend", "", Str),
    ("flannel-ipv6-masq", "", Bool),
    ("flannel-external-ip", "", Bool),
    ("egress-selector-mode", "", Str),
    ("servicelb-namespace", "", Str),
    ("write-kubeconfig", "o", Str),
    ("write-kubeconfig-mode", "", Str),
    ("write-kubeconfig-group", "", Str),
    ("helm-job-image", "", Str),
    ("agent-token", "", Str),
    ("agent-token-file", "", Str),
    ("cluster-init", "", Bool),
    ("cluster-reset", "", Bool),
    ("cluster-reset-restore-path", "", Str),
    ("kube-apiserver-arg", "", Slice),
    ("etcd-arg", "", Slice),
    ("kube-controller-manager-arg", "", Slice),
    ("kube-scheduler-arg", "", Slice),
    ("kube-cloud-controller-manager-arg", "", Slice),
    ("kine-tls", "", Bool),
    ("datastore-endpoint", "", Str),
    ("datastore-cafile", "", Str),
    ("datastore-certfile", "", Str),
    ("datastore-keyfile", "", Str),
    ("etcd-expose-metrics", "", Bool),
    ("etcd-disable-snapshots", "", Bool),
    ("etcd-snapshot-name", "", Str),
    ("etcd-snapshot-schedule-cron", "", Str),
    ("etcd-snapshot-retention", "", Int),
    ("etcd-snapshot-dir", "", Str),
    ("etcd-snapshot-compress", "", Bool),
    ("etcd-s3", "", Bool),
    ("etcd-s3-endpoint", "", Str),
    ("etcd-s3-endpoint-ca", "", Str),
    ("etcd-s3-skip-ssl-verify", "", Bool),
    ("etcd-s3-access-key", "", Str),
    ("etcd-s3-secret-key", "", Str),
    ("etcd-s3-bucket", "", Str),
    ("etcd-s3-region", "", Str),
    ("etcd-s3-folder", "", Str),
    ("etcd-s3-insecure", "", Bool),
    ("etcd-s3-timeout", "", Duration),
    ("default-local-storage-path", "", Str),
    ("disable", "", Slice),
    ("disable-scheduler", "", Bool),
    ("disable-cloud-controller", "", Bool),
    ("disable-kube-proxy", "", Bool),
    ("disable-network-policy", "", Bool),
    ("disable-helm-controller", "", Bool),
    ("disable-apiserver", "", Bool),
    ("disable-controller-manager", "", Bool),
    ("disable-etcd", "", Bool),
    ("embedded-registry", "", Bool),
    ("supervisor-metrics", "", Bool),
    ("system-default-registry", "", Str),
    ("secrets-encryption", "", Bool),
    ("secrets-encryption-provider", "", Str),
    ("enable-pprof", "", Bool),
    ("disable-agent", "", Bool),
    ("kube-controller-arg", "", Slice),
    ("kube-cloud-controller-arg", "", Slice),
];

/// `k3s agent` only (pkg/cli/cmds/agent.go).
const AGENT: &[(&str, &str, Kind)] =
    &[("cluster-secret", "", Str), ("disable-selinux", "", Bool), ("no-flannel", "", Bool)];

/// `k3s etcd-snapshot` (pkg/cli/cmds/etcd_snapshot.go): the snapshot flags plus a few.
const SNAPSHOT: &[(&str, &str, Kind)] = &[
    ("config", "c", Str),
    ("debug", "", Bool),
    ("data-dir", "d", Str),
    ("node-name", "", Str),
    ("name", "", Str),
    ("dir", "", Str),
    ("etcd-snapshot-dir", "", Str),
    ("etcd-snapshot-name", "", Str),
    ("etcd-snapshot-compress", "", Bool),
    ("etcd-snapshot-retention", "", Int),
    ("output", "o", Str),
    ("token", "t", Str),
    ("server", "s", Str),
    ("log", "l", Str),
    ("alsologtostderr", "", Bool),
    ("v", "", Int),
];

/// Flags that also come from an environment variable (urfave/cli `EnvVar` in server.go,
/// agent.go, log.go, config.go): the lowest precedence, below config.yaml and the command
/// line (k3s's unit reads them from `k3s.service.env`).
pub const ENV: &[(&str, &str)] = &[
    ("config", "K3S_CONFIG_FILE"),
    ("debug", "K3S_DEBUG"),
    ("token", "K3S_TOKEN"),
    ("token-file", "K3S_TOKEN_FILE"),
    ("server", "K3S_URL"),
    ("node-name", "K3S_NODE_NAME"),
    ("selinux", "K3S_SELINUX"),
    ("lb-server-port", "K3S_LB_SERVER_PORT"),
    ("resolv-conf", "K3S_RESOLV_CONF"),
    ("vpn-auth", "K3S_VPN_AUTH"),
    ("vpn-auth-file", "K3S_VPN_AUTH_FILE"),
    ("write-kubeconfig", "K3S_KUBECONFIG_OUTPUT"),
    ("write-kubeconfig-mode", "K3S_KUBECONFIG_MODE"),
    ("write-kubeconfig-group", "K3S_KUBECONFIG_GROUP"),
    ("agent-token", "K3S_AGENT_TOKEN"),
    ("agent-token-file", "K3S_AGENT_TOKEN_FILE"),
    ("cluster-init", "K3S_CLUSTER_INIT"),
    ("cluster-reset", "K3S_CLUSTER_RESET"),
    ("datastore-endpoint", "K3S_DATASTORE_ENDPOINT"),
    ("datastore-cafile", "K3S_DATASTORE_CAFILE"),
    ("datastore-certfile", "K3S_DATASTORE_CERTFILE"),
    ("datastore-keyfile", "K3S_DATASTORE_KEYFILE"),
    ("system-default-registry", "K3S_SYSTEM_DEFAULT_REGISTRY"),
    ("cluster-secret", "K3S_CLUSTER_SECRET"),
    ("etcd-s3-access-key", "AWS_ACCESS_KEY_ID"),
    ("etcd-s3-secret-key", "AWS_SECRET_ACCESS_KEY"),
];

/// Fills flags of `cmd` not set otherwise from their environment variables (`env`
/// looks one up), checking the values' types.
pub fn apply_env(cmd: Command, c: &mut Config, env: impl Fn(&str) -> Option<String>) -> Result<()> {
    for (flag, var) in ENV {
        let Some((name, kind)) = lookup(cmd, flag) else { continue };
        if c.values.contains_key(name) {
            continue;
        }
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            check_value(flag, kind, &v)?;
            c.values.insert(name.to_string(), vec![v]);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Server,
    Agent,
    EtcdSnapshot,
}

fn lookup(cmd: Command, name: &str) -> Option<(&'static str, Kind)> {
    let tables: &[&[(&str, &str, Kind)]] = match cmd {
        Command::Server => &[COMMON, SERVER],
        Command::Agent => &[COMMON, AGENT],
        Command::EtcdSnapshot => &[SNAPSHOT],
    };
    tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|(n, s, _)| *n == name || (!s.is_empty() && *s == name))
        .map(|(n, _, k)| (*n, *k))
}

/// The merged, checked configuration: flag name -> values (one for scalars).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub values: BTreeMap<String, Vec<String>>,
    /// Positional arguments left (e.g. `save` of `etcd-snapshot`).
    pub args: Vec<String>,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("Incorrect Usage: {msg}")
}

/// Go's strconv.ParseBool.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn check_value(name: &str, kind: Kind, v: &str) -> Result<()> {
    match kind {
        Bool if parse_bool(v).is_none() => Err(usage(format!("invalid boolean value {v:?} for -{name}: parse error"))),
        Int if v.parse::<i64>().is_err() => Err(usage(format!("invalid value {v:?} for flag -{name}: parse error"))),
        Duration if crate::duration::parse_go_duration(v).is_err() => {
            Err(usage(format!("invalid value {v:?} for flag -{name}: parse error")))
        }
        _ => Ok(()),
    }
}

/// Parses `args` (urfave/cli style: `--name=value`, `--name value`, `-name`, bare bools).
/// Returns (flag, value) pairs in order, plus positionals.
/// (flag, value) pairs in order, and the positional arguments.
type Parsed = (Vec<(String, String)>, Vec<String>);

fn parse_args(cmd: Command, args: &[String]) -> Result<Parsed> {
    let mut out = Vec::new();
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            pos.extend(it.by_ref().cloned());
            break;
        }
        let Some(body) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')).filter(|b| !b.is_empty()) else {
            pos.push(a.clone());
            continue;
        };
        let (raw, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some((name, kind)) = lookup(cmd, raw) else {
            return Err(usage(format!("flag provided but not defined: -{raw}")));
        };
        let value = match (inline, kind) {
            (Some(v), _) => v,
            (None, Bool) => "true".to_string(),
            (None, _) => it.next().cloned().ok_or_else(|| usage(format!("flag needs an argument: -{raw}")))?,
        };
        check_value(raw, kind, &value)?;
        out.push((name.to_string(), value));
    }
    Ok((out, pos))
}

/// A YAML value of config.yaml as flag values (lists for slices, scalars otherwise).
fn yaml_values(key: &str, v: &serde_yaml_ng::Value) -> Result<Vec<String>> {
    use serde_yaml_ng::Value as Y;
    let scalar = |v: &Y| -> Result<String> {
        Ok(match v {
            Y::String(s) => s.clone(),
            Y::Bool(b) => b.to_string(),
            Y::Number(n) => n.to_string(),
            Y::Null => String::new(),
            _ => bail!("{key}: expected a scalar or a list of scalars"),
        })
    };
    match v {
        Y::Sequence(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

/// Reads config.yaml then each `config.yaml.d/*.yaml` in lexical order (k3s's
/// pkg/configfilearg): a later file's key replaces an earlier one's, `key+` appends.
pub fn read_config_files(path: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let mut files = Vec::new();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    let dropins = path.with_file_name(format!("{}.d", path.file_name().unwrap_or_default().to_string_lossy()));
    if let Ok(rd) = std::fs::read_dir(&dropins) {
        let mut more: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        more.sort();
        files.extend(more);
    }
    let mut merged: Vec<(String, Vec<String>)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).with_context(|| format!("failed to parse {}", f.display()))?;
        let Some(map) = doc.as_mapping() else {
            if doc.is_null() {
                continue;
            }
            bail!("{}: expected a YAML map of flag names", f.display());
        };
        for (k, v) in map {
            let k = k.as_str().with_context(|| format!("{}: a key that is not a string", f.display()))?;
            let vals = yaml_values(k, v)?;
            if let Some(base) = k.strip_suffix('+') {
                match merged.iter_mut().find(|(n, _)| n == base) {
                    Some((_, old)) => old.extend(vals),
                    None => merged.push((base.to_string(), vals)),
                }
            } else {
                merged.retain(|(n, _)| n != k);
                merged.push((k.to_string(), vals));
            }
        }
    }
    Ok(merged)
}

/// The configuration of `cmd`: config files (at `--config`/`-c` if given, else
/// `default_config`) under the command-line flags.
pub fn load(cmd: Command, args: &[String], default_config: &Path) -> Result<Config> {
    let (cli, pos) = parse_args(cmd, args)?;
    let cfg_path = cli
        .iter()
        .rev()
        .find(|(n, _)| n == "config")
        .map(|(_, v)| Path::new(v).to_path_buf())
        .unwrap_or(default_config.to_path_buf());
    let mut file = read_config_files(&cfg_path)?;
    if cmd == Command::EtcdSnapshot {
        // k3s parses config.yaml for `etcd-snapshot` with ValidFlags (pkg/configfilearg):
        // the server's keys there are skipped with a warning, not refused.
        file.retain(|(k, _)| {
            let known = lookup(cmd, k.trim_end_matches('+')).is_some();
            if !known && lookup(Command::Server, k.trim_end_matches('+')).is_none() {
                eprintln!("W Unknown flag --{k} found in config.yaml, skipping");
            }
            known
        });
    }
    let mut c = merge(cmd, file, cli, pos)?;
    apply_env(cmd, &mut c, |v| std::env::var(v).ok())?;
    Ok(c)
}

/// Merges config-file values under command-line ones, checking every key and value.
pub fn merge(
    cmd: Command,
    file: Vec<(String, Vec<String>)>,
    cli: Vec<(String, String)>,
    args: Vec<String>,
) -> Result<Config> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, vals) in file {
        let Some((name, kind)) = lookup(cmd, &k) else {
            return Err(usage(format!("flag provided but not defined: -{k}")));
        };
        if kind != Slice && vals.len() != 1 {
            return Err(usage(format!("invalid value {vals:?} for flag -{k}: a list for a flag that takes one value")));
        }
        for v in &vals {
            check_value(&k, kind, v)?;
        }
        values.insert(name.to_string(), vals);
    }
    let mut from_cli: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in cli {
        let kind = lookup(cmd, &k).map(|(_, k)| k).unwrap_or(Str);
        let e = from_cli.entry(k).or_default();
        if kind == Slice {
            // urfave/cli StringSlice flags also split on commas.
            e.extend(v.split(',').map(str::to_string));
        } else {
            *e = vec![v];
        }
    }
    values.extend(from_cli);
    Ok(Config { values, args })
}

impl Config {
    pub fn str(&self, k: &str) -> Option<&str> {
        self.values.get(k).and_then(|v| v.last()).map(String::as_str).filter(|s| !s.is_empty())
    }
    pub fn string_or(&self, k: &str, default: &str) -> String {
        self.str(k).unwrap_or(default).to_string()
    }
    pub fn bool(&self, k: &str) -> bool {
        self.str(k).and_then(parse_bool).unwrap_or(false)
    }
    pub fn int_or(&self, k: &str, default: i64) -> i64 {
        self.str(k).and_then(|s| s.parse().ok()).unwrap_or(default)
    }
    /// A slice flag's values (comma-separated items split, as StringSlice does).
    pub fn list(&self, k: &str) -> Vec<String> {
        self.values
            .get(k)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn unknown_config_key_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, "cluster-init: true\nnode-labell: [a=b]\n").unwrap();
        let e = load(Command::Server, &[], &p).unwrap_err().to_string();
        assert_eq!(e, "Incorrect Usage: flag provided but not defined: -node-labell");
        // An agent does not know server flags.
        std::fs::write(&p, "cluster-init: true\n").unwrap();
        let e = load(Command::Agent, &[], &p).unwrap_err().to_string();
        assert_eq!(e, "Incorrect Usage: flag provided but not defined: -cluster-init");
        // `etcd-snapshot` skips the server's keys.
        let c = load(Command::EtcdSnapshot, &s(&["save", "--name", "pre"]), &p).unwrap();
        assert_eq!((c.args.clone(), c.str("name")), (s(&["save"]), Some("pre")));
        let e = load(Command::Server, &s(&["--no-such"]), &p).unwrap_err().to_string();
        assert_eq!(e, "Incorrect Usage: flag provided but not defined: -no-such");
    }

    #[test]
    fn files_merge_and_the_command_line_wins() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, "token: one\ntls-san: a.example\nnode-label: [x=1]\nwrite-kubeconfig-mode: \"0644\"\n")
            .unwrap();
        std::fs::create_dir(d.path().join("config.yaml.d")).unwrap();
        std::fs::write(d.path().join("config.yaml.d/10-a.yaml"), "node-label+: [y=2]\ntls-san: [b, c]\n").unwrap();
        std::fs::write(d.path().join("config.yaml.d/20-b.yaml"), "etcd-snapshot-retention: 7\n").unwrap();
        let c = load(Command::Server, &s(&["--token=two", "--cluster-init"]), &p).unwrap();
        assert_eq!(c.str("token"), Some("two"));
        assert!(c.bool("cluster-init"));
        assert_eq!(c.list("node-label"), s(&["x=1", "y=2"]));
        assert_eq!(c.list("tls-san"), s(&["b", "c"]));
        assert_eq!(c.int_or("etcd-snapshot-retention", 5), 7);
        assert_eq!(c.str("write-kubeconfig-mode"), Some("0644"));
        // Scalar for a list flag is accepted.
        assert_eq!(c.list("disable"), Vec::<String>::new());
    }

    #[test]
    fn environment_is_below_file_and_flags() {
        let env = |v: &str| match v {
            "K3S_TOKEN" => Some("from-env".to_string()),
            "K3S_URL" => Some("https://10.0.0.1:6443".to_string()),
            "K3S_CLUSTER_INIT" => Some("yes".to_string()),
            _ => None,
        };
        let mut c = merge(Command::Agent, vec![("token".into(), vec!["from-file".into()])], vec![], vec![]).unwrap();
        apply_env(Command::Agent, &mut c, env).unwrap();
        assert_eq!(c.str("token"), Some("from-file"));
        assert_eq!(c.str("server"), Some("https://10.0.0.1:6443"));
        assert!(!c.values.contains_key("cluster-init"), "not an agent flag");
        let mut c = merge(Command::Server, vec![], vec![], vec![]).unwrap();
        let e = apply_env(Command::Server, &mut c, env).unwrap_err().to_string();
        assert!(e.contains("invalid boolean value \"yes\" for -cluster-init"), "{e}");
    }

    #[test]
    fn values_are_type_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, "etcd-snapshot-retention: many\n").unwrap();
        let e = load(Command::Server, &[], &p).unwrap_err().to_string();
        assert!(e.contains("invalid value \"many\" for flag -etcd-snapshot-retention"), "{e}");
        std::fs::write(&p, "cluster-init: maybe\n").unwrap();
        let e = load(Command::Server, &[], &p).unwrap_err().to_string();
        assert!(e.contains("invalid boolean value \"maybe\" for -cluster-init"), "{e}");
        std::fs::write(&p, "etcd-s3-timeout: 5 minutes\n").unwrap();
        assert!(load(Command::Server, &[], &p).is_err());
        std::fs::write(&p, "etcd-s3-timeout: 5m\ntoken: [a, b]\n").unwrap();
        assert!(load(Command::Server, &[], &p).is_err(), "a list for a scalar flag");
    }
}
