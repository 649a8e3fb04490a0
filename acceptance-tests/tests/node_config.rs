//! strata_node_config on real Debian nodes booted with systemd (lab systemd nodes,
//! air-gapped, the lab's local apt repository their only source), with no `root` and no
//! simulation: packages from the repository, containerd and kubelet configuration,
//! services per systemd, drift repaired with one restart where it happened, `check`
//! read-only, and what leaves the spec undone.

use std::path::Path;

use strata_acceptance_tests::names::{known_hosts_with_names, HostsEntries};
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, UpOptions};

const NODES: [&str; 3] = ["node1", "node2", "node3"];

fn sh(lab: &LabGuard, node: &str, script: &str) -> String {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main_tf(lab: &LabGuard, with_mirror_and_sysctl: bool) -> String {
    let hosts: Vec<String> = lab.nodes().iter().map(|n| n.address.clone()).collect();
    main_tf_reaching(lab, with_mirror_and_sysctl, &hosts, &lab.info().ssh.known_hosts_file)
}

/// `main_tf` with each node reached at `hosts[i]` (its address or a name of it).
fn main_tf_reaching(lab: &LabGuard, with_mirror_and_sysctl: bool, hosts: &[String], known_hosts: &Path) -> String {
    let ssh = &lab.info().ssh;
    let nodes: Vec<String> =
        lab.nodes().iter().zip(hosts).map(|(n, host)| format!("\"{}\" = \"{host}\"", n.name)).collect();
    let mirror = if with_mirror_and_sysctl {
        "    registry_mirror {\n      registry  = \"docker.io\"\n      endpoints = [\"https://mirror.example:5000\"]\n    }\n"
    } else {
        ""
    };
    let sysctl =
        if with_mirror_and_sysctl { "  sysctl = {\n    \"net.ipv4.ip_nonlocal_bind\" = \"1\"\n  }\n" } else { "" };
    format!(
        r#"{provider}resource "strata_node_config" "node" {{
  for_each = {{ {nodes} }}
  ssh {{
    host = each.value
  }}
  package {{
    name = "containerd"
  }}
  containerd {{
    version        = 2
    systemd_cgroup = true
    sandbox_image  = "registry.k8s.io/pause:3.9"
{mirror}  }}
  kubelet {{
    cgroup_driver  = "systemd"
    cluster_dns    = ["10.96.0.10"]
    cluster_domain = "cluster.local"
  }}
  crictl {{
    runtime_endpoint = "unix:///run/containerd/containerd.sock"
  }}
{sysctl}  service {{
    name    = "containerd"
    enabled = true
    running = true
  }}
}}
"#,
        provider = ssh_provider(&ssh.private_key_file, known_hosts),
        nodes = nodes.join(", "),
    )
}

fn containerd_pid(lab: &LabGuard, node: &str) -> String {
    sh(lab, node, "systemctl show -p MainPID --value containerd").trim().to_string()
}

/// Everything `check` could touch: the node's configuration files (content and
/// metadata), the agent's own state, and systemd's view of the unit.
fn snapshot(lab: &LabGuard, node: &str) -> String {
    sh(
        lab,
        node,
        "find /etc /var/lib/strata /var/lib/strata-agent -xdev -type f -newer /etc/hostname \
           -exec stat -c '%n %s %a %U %Y' {} + 2>/dev/null | sort; \
         find /etc /var/lib/strata -xdev -type f -newer /etc/hostname -exec sha256sum {} + 2>/dev/null | sort; \
         systemctl show -p MainPID,ActiveState,UnitFileState,NRestarts containerd; sysctl net.ipv4.ip_nonlocal_bind",
    )
}

#[test]
fn node_config_on_systemd_nodes_converges_repairs_drift_and_undoes_removals() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 3;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)");
    let original_sysctl = sh(&lab, "node1", "sysctl -n net.ipv4.ip_nonlocal_bind").trim().to_string();
    assert_eq!(original_sysctl, "0");

    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, true)).unwrap();
    wd.apply().unwrap();
    for n in NODES {
        assert_eq!(sh(&lab, n, "dpkg-query -W -f='${Status}' containerd"), "install ok installed", "{n}");
        assert_eq!(sh(&lab, n, "systemctl is-active containerd").trim(), "active", "{n}");
        assert_eq!(sh(&lab, n, "systemctl is-enabled containerd").trim(), "enabled", "{n}");
        assert!(sh(&lab, n, "cat /etc/containerd/config.toml").contains("SystemdCgroup = true"), "{n}");
        assert!(sh(&lab, n, "cat /etc/containerd/certs.d/docker.io/hosts.toml").contains("mirror.example"), "{n}");
        assert!(sh(&lab, n, "ls /etc/kubernetes/kubelet.conf.d/").contains("strata"), "{n}: kubelet drop-in");
        assert_eq!(sh(&lab, n, "sysctl -n net.ipv4.ip_nonlocal_bind").trim(), "1", "{n}");
    }
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "converged nodes plan nothing:\n{}{}", plan.stdout, plan.stderr);

    // `check` (every refresh runs it) changes nothing on the node.
    let before: Vec<String> = NODES.iter().map(|n| snapshot(&lab, n)).collect();
    assert_eq!(wd.run(&["plan", "-detailed-exitcode"]).unwrap().code, 0);
    let after: Vec<String> = NODES.iter().map(|n| snapshot(&lab, n)).collect();
    assert_eq!(before, after, "a refresh changed a node");

    // A hand edit on node2 drifts there only, and is repaired with one restart there.
    let pids: Vec<String> = NODES.iter().map(|n| containerd_pid(&lab, n)).collect();
    sh(&lab, "node2", "sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' /etc/containerd/config.toml");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("strata_node_config.node[\"node2\"] will be updated in-place"), "{}", plan.stdout);
    assert!(plan.stdout.contains("/etc/containerd/config.toml"), "the drift names the file: {}", plan.stdout);
    assert!(plan.stdout.contains("1 to change"), "only node2: {}", plan.stdout);
    wd.apply().unwrap();
    assert!(sh(&lab, "node2", "cat /etc/containerd/config.toml").contains("SystemdCgroup = true"));
    let now: Vec<String> = NODES.iter().map(|n| containerd_pid(&lab, n)).collect();
    assert_ne!(now[1], pids[1], "containerd restarted on node2");
    assert_eq!((&now[0], &now[2]), (&pids[0], &pids[2]), "and nowhere else");
    assert_eq!(sh(&lab, "node2", "systemctl is-active containerd").trim(), "active");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // The registry mirror and the sysctl leave the spec: planned as removals, then undone.
    wd.write("main.tf", &main_tf(&lab, false)).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("- registry_mirror {"), "the mirror is planned away: {}", plan.stdout);
    assert!(
        plan.stdout.contains("- \"net.ipv4.ip_nonlocal_bind\" = \"1\""),
        "the sysctl is planned away: {}",
        plan.stdout
    );
    assert!(plan.stdout.contains("3 to change"), "{}", plan.stdout);
    wd.apply().unwrap();
    for n in NODES {
        let gone = lab.exec(n, &["test", "-e", "/etc/containerd/certs.d/docker.io/hosts.toml"]).unwrap();
        assert!(!gone.status.success(), "{n}: the removed mirror's hosts.toml is still there");
        assert_eq!(
            sh(&lab, n, "sysctl -n net.ipv4.ip_nonlocal_bind").trim(),
            original_sysctl,
            "{n}: sysctl not restored"
        );
    }
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // Every node reached by a DNS name of the same machine (given to the Terraform
    // host's resolver, with known_hosts lines): in place, and nothing runs or changes
    // on the nodes (no agent run: its state files, the configuration and containerd
    // stay as they are).
    let names: Vec<(String, String)> = lab
        .nodes()
        .iter()
        .map(|n| (n.address.clone(), format!("{}-{}.nc.strata.test", n.name, std::process::id())))
        .collect();
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, known_hosts_with_names(&lab.info().ssh.known_hosts_file, &names)).unwrap();
    let _hosts = HostsEntries::add("node-config-dns", &names);
    let ids: Vec<serde_json::Value> = NODES
        .iter()
        .map(|n| wd.resource_values(&format!("strata_node_config.node[\"{n}\"]")).unwrap()["id"].clone())
        .collect();
    let before: Vec<String> = NODES.iter().map(|n| snapshot(&lab, n)).collect();
    let hosts: Vec<String> = names.iter().map(|(_, name)| name.clone()).collect();
    wd.write("main.tf", &main_tf_reaching(&lab, false, &hosts, &known_hosts)).unwrap();
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("0 to add, 3 to change, 0 to destroy"), "in place: {}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    let started = std::time::Instant::now();
    wd.apply().unwrap();
    eprintln!("node_config: ssh.host of 3 nodes to DNS names: apply {:?}", started.elapsed());
    let after: Vec<String> = NODES.iter().map(|n| snapshot(&lab, n)).collect();
    assert_eq!(before, after, "an ssh change changed a node");
    for (n, id) in NODES.iter().zip(&ids) {
        let now = wd.resource_values(&format!("strata_node_config.node[\"{n}\"]")).unwrap();
        assert_eq!(&now["id"], id, "{n}: the id stays");
        let host = now["ssh"].get("host").or_else(|| now["ssh"].pointer("/0/host")).and_then(|h| h.as_str());
        assert!(host.is_some_and(|h| h.starts_with(&format!("{n}-"))), "{n}: reached by its name: {host:?}");
    }
    let again = wd.plan_exit_code().unwrap();
    assert_eq!(again.code, 0, "nothing left to do:\n{}{}", again.stdout, again.stderr);
}

/// The usual case with strata_vm: the node's address is known only after apply. The
/// spec is still checked at plan.
#[test]
fn a_spec_error_is_reported_at_plan_while_the_host_is_unknown() {
    let main_tf = |path: &str| {
        format!(
            r#"terraform {{
  required_providers {{
    strata = {{ source = "strata-iac/strata" }}
  }}
}}
provider "strata" {{}}
resource "terraform_data" "vm" {{
  input = "10.0.0.5"
}}
resource "strata_node_config" "node" {{
  ssh {{
    host = terraform_data.vm.output
  }}
  swap_off = true
  file {{
    path    = "{path}"
    content = "Managed by Strata.\n"
  }}
}}
"#
        )
    };
    let wd = Workdir::new(&provider_dir(), &main_tf("relative/motd")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    let err = plan.stderr.replace('\n', " ");
    assert!(err.contains("Invalid node configuration") && err.contains("must be absolute"), "{err}");
    assert!(err.contains("relative/motd"), "names the file: {err}");

    // The same configuration with a valid path plans, the host still unknown.
    wd.write("main.tf", &main_tf("/etc/motd")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    let words = plan.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("+ host = (known after apply)"), "{}", plan.stdout);
    // file.content is sensitive.
    assert!(!plan.stdout.contains("Managed by Strata."), "{}", plan.stdout);
}
