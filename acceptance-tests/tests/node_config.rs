//! strata_node_config through real Terraform on three lab nodes: the agent is uploaded
//! over real SSH, runs on each node, detects drift on one node and restores it there only.
//!
//! Lab nodes share the host's kernel and run no systemd, so the resource is applied with
//! `root` and `simulate = true`: files go to the node's own /srv/strata-root, and kernel
//! and systemd state are the agent's documented simulated system inside that root (see
//! agent/README.md).

use serde_json::Value;
use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, UpOptions};

const ROOT: &str = "/srv/strata-root";

fn sh(lab: &LabGuard, node: &str, script: &str) -> String {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn containerd_restarts(lab: &LabGuard, node: &str) -> u64 {
    let state: Value =
        serde_json::from_str(&sh(lab, node, &format!("cat {ROOT}/var/lib/strata-agent/simulated-systemd.json")))
            .unwrap();
    state["units"]["containerd.service"]["restarts"].as_u64().unwrap_or(0)
}

fn main_tf(lab: &LabGuard) -> String {
    let ssh = &lab.info().ssh;
    let nodes: Vec<String> = lab.nodes().iter().map(|n| format!("\"{}\" = \"{}\"", n.name, n.address)).collect();
    format!(
        r#"{provider}resource "strata_node_config" "node" {{
  for_each = {{ {nodes} }}
  ssh {{
    host = each.value
  }}
  root     = "{ROOT}"
  simulate = true
  containerd {{
    version        = 2
    systemd_cgroup = true
    sandbox_image  = "registry.k8s.io/pause:3.9"
    registry_mirror {{
      registry  = "docker.io"
      endpoints = ["https://mirror.example:5000"]
    }}
  }}
  kubelet {{
    cgroup_driver  = "systemd"
    cluster_dns    = ["10.96.0.10"]
    cluster_domain = "cluster.local"
    extra_args     = {{ "node-ip" = each.value }}
  }}
  crictl {{
    runtime_endpoint = "unix:///run/containerd/containerd.sock"
  }}
  sysctl = {{
    "net.ipv4.ip_forward"                 = "1"
    "net.bridge.bridge-nf-call-iptables"  = "1"
  }}
  kernel_modules = ["overlay", "br_netfilter"]
  swap_off       = true
  service {{
    name    = "containerd"
    enabled = true
    running = true
  }}
}}
"#,
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
        nodes = nodes.join(", "),
    )
}

#[test]
fn node_config_converges_three_nodes_and_restores_drift_on_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 3;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up");
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab)).unwrap();

    wd.apply().unwrap();
    for n in ["node1", "node2", "node3"] {
        let v = wd.resource_values(&format!("strata_node_config.node[\"{n}\"]")).unwrap();
        let changed: Vec<&str> = v["changed_tasks"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(changed.iter().any(|t| t.contains("containerd")), "{n}: {changed:?}");
        assert_eq!(v["drift"], serde_json::json!([]));
        let config = sh(&lab, n, &format!("cat {ROOT}/etc/containerd/config.toml"));
        assert!(config.contains("SystemdCgroup = true"), "{config}");
        assert!(
            sh(&lab, n, &format!("cat {ROOT}/etc/containerd/certs.d/docker.io/hosts.toml")).contains("mirror.example")
        );
        // The agent really is on the node, installed over SSH.
        assert!(sh(&lab, n, "test -x /var/lib/strata/strata-agent && echo yes").contains("yes"));
    }
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "converged nodes plan nothing:\n{}", plan.stdout);
    let before: Vec<u64> = ["node1", "node2", "node3"].iter().map(|n| containerd_restarts(&lab, n)).collect();

    // Someone edits containerd's config on node2 by hand.
    sh(
        &lab,
        "node2",
        &format!("sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' {ROOT}/etc/containerd/config.toml"),
    );
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    assert!(plan.stdout.contains("strata_node_config.node[\"node2\"] will be updated in-place"), "{}", plan.stdout);
    assert!(plan.stdout.contains("/etc/containerd/config.toml"), "the drift names the file: {}", plan.stdout);
    assert!(plan.stdout.contains("1 to change"), "only node2: {}", plan.stdout);

    wd.apply().unwrap();
    assert!(sh(&lab, "node2", &format!("cat {ROOT}/etc/containerd/config.toml")).contains("SystemdCgroup = true"));
    let after: Vec<u64> = ["node1", "node2", "node3"].iter().map(|n| containerd_restarts(&lab, n)).collect();
    assert_eq!(after[1], before[1] + 1, "containerd restarted on node2");
    assert_eq!((after[0], after[2]), (before[0], before[2]), "and nowhere else");
    let v = wd.resource_values("strata_node_config.node[\"node2\"]").unwrap();
    let changed: Vec<&str> = v["changed_tasks"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(changed.iter().any(|t| t.contains("restart containerd")), "{changed:?}");
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);

    // A rebuilt node (agent gone, files gone) shows as drift and is configured again.
    sh(&lab, "node3", &format!("rm -rf {ROOT} /var/lib/strata"));
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 2);
    assert!(plan.stdout.contains("strata-agent is not installed"), "{}", plan.stdout);
    wd.apply().unwrap();
    assert_eq!(wd.plan_exit_code().unwrap().code, 0);
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
