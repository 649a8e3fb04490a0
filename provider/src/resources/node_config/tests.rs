use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::AnyResource;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&NodeConfig).value_type(), Extra::Reject).unwrap()
}

fn k8s_node() -> serde_json::Value {
    serde_json::json!({
        "ssh": {"host": "10.0.0.5"},
        "containerd": {
            "version": 2, "systemd_cgroup": true, "sandbox_image": "registry.k8s.io/pause:3.9",
            "config_path": "/etc/containerd/certs.d",
            "registry_mirror": [{"registry": "docker.io", "endpoints": ["https://mirror.example:5000"]}]
        },
        "kubelet": {
            "cgroup_driver": "systemd", "cluster_dns": ["10.96.0.10"], "cluster_domain": "cluster.local",
            "rotate_certificates": true,
            "eviction_hard": {"memory.available": "200Mi", "nodefs.available": "10%"},
            "extra_args": {"node-ip": "10.0.0.5"}
        },
        "crictl": {"runtime_endpoint": "unix:///run/containerd/containerd.sock"},
        "sysctl": {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1"},
        "kernel_modules": ["overlay", "br_netfilter"],
        "swap_off": true,
        "package": [{"name": "containerd", "version": "1.6.20~ds1-1", "hold": true}],
        "service": [{"name": "containerd", "enabled": true, "running": true}, {"name": "kubelet", "enabled": true}],
        "file": [{"path": "/etc/motd", "content": "Managed by Strata.\n", "mode": "0644", "owner": "root", "group": "root"}],
        "directory": [{"path": "/etc/kubernetes/manifests", "mode": "0755"}]
    })
}

#[test]
fn terraform_blocks_become_the_agents_spec() {
    let m: NodeConfigModel = to_model(&config(k8s_node())).unwrap();
    let ours = strata_agent::parse_spec(&m.spec_json().to_string(), strata_agent::Format::Json).unwrap();
    // The agent's own example of the same node.
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/examples/k8s-node.json")).unwrap();
    let theirs = strata_agent::parse_spec(&example, strata_agent::Format::Json).unwrap();
    assert_eq!(serde_json::to_value(&ours).unwrap(), serde_json::to_value(&theirs).unwrap());
}

#[test]
fn the_agents_parser_validates_at_plan_time() {
    let mut j = k8s_node();
    j["file"][0]["path"] = "relative/motd".into();
    let d = AnyResource::validate(&NodeConfig, &config(j), true);
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "file");
    let mut j = k8s_node();
    j["kubelet"]["cgroup_driver"] = "sometimes".into();
    let d = AnyResource::validate(&NodeConfig, &config(j), true);
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "kubelet.cgroup_driver");
    assert!(AnyResource::validate(&NodeConfig, &config(k8s_node()), true).is_empty());
}

#[test]
fn refreshed_drift_plans_an_update_and_a_converged_node_plans_nothing() {
    // Any file serves as "the agent build" for planning: only its checksum is used.
    std::env::set_var("STRATA_AGENT_BINARY", std::env::current_exe().unwrap());
    let c = config(k8s_node());
    let created = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &Value::Null, &c, &c);
    assert_eq!(created.planned.attr("id"), Some(&Value::string("10.0.0.5")));
    assert_eq!(created.planned.attr("changed_tasks"), Some(&Value::Unknown));
    assert_eq!(created.planned.attr("drift"), Some(&Value::List(vec![])));
    let sha = created.planned.attr("agent_sha256").cloned().unwrap();
    assert!(matches!(&sha, Value::String(s) if s.len() == 64));

    // After apply: drift empty, tasks known.
    let mut state = created.planned.clone();
    *state.attr_mut("changed_tasks").unwrap() = Value::List(vec!["containerd config".into()]);
    let p = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &state, &state, &c);
    assert!(p.planned.semantically_equal(&state), "nothing to do");

    // A refresh that found drift plans it away.
    let mut drifted = state.clone();
    *drifted.attr_mut("drift").unwrap() =
        Value::List(vec!["containerd config: update /etc/containerd/config.toml".into()]);
    let p = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &drifted, &drifted, &c);
    assert_eq!(p.planned.attr("drift"), Some(&Value::List(vec![])));
    assert_eq!(p.planned.attr("changed_tasks"), Some(&Value::Unknown));
    assert!(p.requires_replace.is_empty());
}

#[test]
fn spec_errors_are_found_while_other_values_are_unknown() {
    // ssh.host from a VM not created yet, and other values unknown too.
    let mut v = {
        let mut j = k8s_node();
        j["file"][0]["path"] = "relative/motd".into();
        config(j)
    };
    *v.attr_mut("ssh").unwrap().attr_mut("host").unwrap() = Value::Unknown;
    *v.attr_mut("kubelet").unwrap().attr_mut("cluster_domain").unwrap() = Value::Unknown;
    *v.attr_mut("sysctl").unwrap() = Value::Unknown;
    let d = AnyResource::validate(&NodeConfig, &v, true);
    let paths: Vec<String> = d.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
    assert_eq!(paths, vec!["file"], "{d}");
    assert!(d.0[0].detail.contains("must be absolute"), "{d}");

    // The rest of the spec is still checked when a whole block is unknown.
    let mut v = {
        let mut j = k8s_node();
        j["file"][0]["path"] = "relative/motd".into();
        config(j)
    };
    *v.attr_mut("ssh").unwrap() = Value::Unknown;
    *v.attr_mut("kubelet").unwrap() = Value::Unknown;
    let d = AnyResource::validate(&NodeConfig, &v, true);
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "file");

    // An element whose key is unknown is left out, and the known rest is valid.
    let mut v = config(k8s_node());
    *v.attr_mut("ssh").unwrap().attr_mut("host").unwrap() = Value::Unknown;
    if let Some(Value::List(files)) = v.attr_mut("file") {
        *files[0].attr_mut("path").unwrap() = Value::Unknown;
    }
    assert!(AnyResource::validate(&NodeConfig, &v, true).is_empty());
}

#[test]
fn simulate_needs_a_root_and_becomes_the_agents_flag() {
    let mut j = k8s_node();
    j["simulate"] = true.into();
    let d = AnyResource::validate(&NodeConfig, &config(j.clone()), true);
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "simulate");
    j["root"] = "/srv/strata-root".into();
    assert!(AnyResource::validate(&NodeConfig, &config(j.clone()), true).is_empty());
    // The flag is a CLI option of the agent, not part of the spec it parses.
    let m: NodeConfigModel = to_model(&config(j)).unwrap();
    assert!(m.spec_json().get("simulate").is_none());
    assert_eq!(m.simulate, Some(true));
}

#[test]
fn apt_sources_options_and_masked_services_reach_the_agent() {
    let mut j = k8s_node();
    j["apt"] = serde_json::json!({"lists_max_age": 600, "lock_timeout": 30});
    j["apt_repository"] = serde_json::json!([{
        "name": "kubernetes", "uris": ["https://pkgs.k8s.io/core:/stable:/v1.35/deb/"], "suites": ["/"],
        "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n-----END PGP PUBLIC KEY BLOCK-----\n"
    }]);
    j["package"][0]["allow_change_held"] = true.into();
    j["service"][1]["masked"] = false.into();
    let m: NodeConfigModel = to_model(&config(j)).unwrap();
    let spec = strata_agent::parse_spec(&m.spec_json().to_string(), strata_agent::Format::Json).unwrap();
    assert_eq!(spec.apt.as_ref().map(|a| (a.lists_max_age, a.lock_timeout)), Some((600, 30)));
    assert_eq!(spec.apt_repository["kubernetes"].suites, vec!["/"]);
    assert!(spec.package["containerd"].allow_change_held && !spec.package["containerd"].allow_downgrade);
    assert_eq!(spec.service["kubelet"].masked, Some(false));
}

#[test]
fn apt_repository_rules_are_checked_at_plan_time() {
    let mut j = k8s_node();
    j["apt_repository"] = serde_json::json!([{
        "name": "mirror", "uris": ["http://10.0.0.1/debian"], "suites": ["bookworm"], "components": ["main"]
    }]);
    let d = AnyResource::validate(&NodeConfig, &config(j.clone()), true);
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "apt_repository");
    assert!(d.0[0].detail.contains("apt_repository.mirror.key"), "{d}");
    j["apt_repository"][0]["trusted"] = true.into();
    assert!(AnyResource::validate(&NodeConfig, &config(j), true).is_empty());
}

#[test]
fn a_new_ssh_block_is_an_in_place_update_that_keeps_the_id_and_runs_no_agent() {
    std::env::set_var("STRATA_AGENT_BINARY", std::env::current_exe().unwrap());
    let c = config(k8s_node());
    let created = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &Value::Null, &c, &c);
    let mut state = created.planned.clone();
    *state.attr_mut("changed_tasks").unwrap() = Value::List(vec!["containerd config".into()]);

    // The same machine by a DNS name, another user, port and a bastion.
    let mut j = k8s_node();
    j["ssh"] = serde_json::json!({"host": "node5.example", "user": "admin", "port": 2222, "sudo": true,
                                  "bastion": {"host": "10.0.0.1"}});
    let c2 = config(j);
    // Terraform's proposal: the configuration, with computed values from the state.
    let mut proposed = state.clone();
    *proposed.attr_mut("ssh").unwrap() = c2.attr("ssh").unwrap().clone();
    let p = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &state, &proposed, &c2);
    assert!(p.requires_replace.is_empty(), "{:?}", p.requires_replace);
    assert_eq!(p.planned.attr("id"), Some(&Value::string("10.0.0.5")));
    assert_eq!(p.planned.attr("changed_tasks"), state.attr("changed_tasks"), "no agent run is planned");
    assert!(!p.planned.semantically_equal(&state), "still an update (of ssh)");
    assert!(same_apart_from_ssh(&state, &p.planned));
    // With another change too, the agent runs.
    let mut other = proposed.clone();
    *other.attr_mut("swap_off").unwrap() = Value::Bool(false);
    let p = AnyResource::plan(&NodeConfig, &crate::framework::Context::detached(), &state, &other, &c2);
    assert_eq!(p.planned.attr("changed_tasks"), Some(&Value::Unknown));
}

/// A mirror with no fallback needs its CA: refused at plan when it is missing, but not
/// while it is unknown (from a registry created in the same apply).
#[test]
fn a_mirror_without_fallback_needs_its_ca_unless_it_is_still_unknown() {
    let mut j = k8s_node();
    j["containerd"]["registry_mirror"][0]["fallback"] = false.into();
    let d = AnyResource::validate(&NodeConfig, &config(j.clone()), true);
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(d.0[0].attribute.as_ref().unwrap().to_string(), "containerd");
    assert!(d.0[0].detail.contains("registry_mirror") && d.0[0].detail.contains("ca_cert"), "{d}");
    let mut v = config(j);
    if let Some(Value::List(m)) = v.attr_mut("containerd").unwrap().attr_mut("registry_mirror") {
        *m[0].attr_mut("ca_cert").unwrap() = Value::Unknown;
    }
    assert!(AnyResource::validate(&NodeConfig, &v, true).is_empty());
}
