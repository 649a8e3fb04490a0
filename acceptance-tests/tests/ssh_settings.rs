//! The `ssh` settings of node-facing resources through real Terraform: conflicting
//! settings refused at `terraform validate`, a resource's known_hosts checked even when
//! the provider skips host keys, and a resource's private key kept out of state and plans.

use std::path::Path;
use std::process::Command;

use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::Workdir;
use strata_lab::{LabGuard, PveMode, UpOptions};

const HEADER: &str = "terraform {\n  required_providers {\n    strata = { source = \"strata-iac/strata\" }\n  }\n}\n";

fn lab(dir: &Path) -> LabGuard {
    let mut opts = UpOptions::new(dir);
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    // The NFS exports these tests create need systemd nodes.
    LabGuard::up(&opts).expect("lab up (needs root; installs Debian packages on first use)")
}

fn node_ok(lab: &LabGuard, script: &str) -> bool {
    lab.exec("node1", &["sh", "-c", script]).expect("node exec").status.success()
}

fn export(ssh: &str) -> String {
    format!(
        "resource \"strata_nfs_export\" \"e\" {{\n  ssh {{\n{ssh}  }}\n  name = \"k8s-prod\"\n  path = \"/srv/nfs/k8s-prod\"\n  \
         create_directory {{}}\n  clients {{\n    client  = \"10.77.0.0/16\"\n    options = [\"rw\", \"sync\"]\n  }}\n}}\n"
    )
}

#[test]
fn conflicting_ssh_settings_are_refused_at_validate_naming_both_attributes() {
    let cases = [
        // (provider ssh block, resource ssh block, both attribute names)
        ("", "    host = \"10.0.0.5\"\n    private_key = \"k\"\n    private_key_file = \"/k\"\n", ["private_key", "private_key_file"]),
        (
            "",
            "    host = \"10.0.0.5\"\n    insecure_ignore_host_key = true\n    known_hosts = \"10.0.0.5 ssh-ed25519 AAAA\"\n",
            ["insecure_ignore_host_key", "known_hosts"],
        ),
        ("", "    host = \"10.0.0.5\"\n    known_hosts = \"x\"\n    known_hosts_file = \"/kh\"\n", ["known_hosts", "known_hosts_file"]),
        (
            "",
            "    host = \"10.0.0.5\"\n    bastion {\n      host = \"jump\"\n      insecure_ignore_host_key = true\n      host_key_fingerprints = [\"SHA256:x\"]\n    }\n",
            ["bastion.insecure_ignore_host_key", "bastion.host_key_fingerprints"],
        ),
        // The provider's own block.
        ("    private_key = \"k\"\n    private_key_file = \"/k\"\n", "    host = \"10.0.0.5\"\n", ["private_key", "private_key_file"]),
    ];
    for (provider, resource, [a, b]) in cases {
        let main_tf = format!("{HEADER}provider \"strata\" {{\n  ssh {{\n{provider}  }}\n}}\n{}", export(resource));
        let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
        let run = wd.run(&["validate"]).unwrap();
        assert_eq!(run.code, 1, "refused: {main_tf}\n{}{}", run.stdout, run.stderr);
        let err = run.stderr.replace('\n', " ");
        assert!(err.contains("Conflicting SSH settings"), "{err}");
        assert!(
            err.contains(&format!("`ssh.{a}")) && err.contains(&format!("`ssh.{b}`")),
            "names both {a} and {b}: {err}"
        );
    }
    // The same settings one at a time validate.
    let main_tf = format!(
        "{HEADER}provider \"strata\" {{}}\n{}",
        export("    host = \"10.0.0.5\"\n    private_key_file = \"/k\"\n    known_hosts = \"x\"\n")
    );
    let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
    let run = wd.run(&["validate"]).unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn a_resource_known_hosts_that_does_not_match_is_refused_despite_the_providers_insecure_ignore() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"));
    let node = &lab.nodes()[0];
    // A key the node does not have: what an impostor would present, seen the other way.
    let keys = tempfile::tempdir().unwrap();
    let other = keys.path().join("other");
    let status = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&other).status().unwrap();
    assert!(status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_pub: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let lf = Command::new("ssh-keygen").arg("-lf").arg(other.with_extension("pub")).output().unwrap();
    let other_fp = String::from_utf8_lossy(&lf.stdout).split_whitespace().nth(1).unwrap().to_string();
    let main_tf = |known_hosts: &str| {
        format!(
            "{HEADER}provider \"strata\" {{\n  ssh {{\n    private_key_file = \"{}\"\n    insecure_ignore_host_key = true\n  }}\n}}\n{}",
            lab.info().ssh.private_key_file.display(),
            export(&format!("    host = \"{}\"\n    known_hosts = {known_hosts:?}\n", node.address)),
        )
    };
    let wd = Workdir::new(&provider_dir(), &main_tf(&format!("{} {}\n", node.address, other_pub.join(" ")))).unwrap();
    let apply = wd.run(&["apply", "-auto-approve"]).unwrap();
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    let err = apply.stderr.replace('\n', " ");
    assert!(err.contains("host key verification failed"), "{err}");
    assert!(err.contains(&node.address), "names the host: {err}");
    assert!(err.contains(node.host_key_fingerprint.as_deref().unwrap()), "names the presented key: {err}");
    assert!(err.contains(&other_fp), "names the expected key: {err}");
    assert!(
        !node_ok(&lab, "test -e /srv/nfs/k8s-prod || test -e /etc/exports.d/strata-k8s-prod.exports"),
        "nothing was created on the node"
    );

    // The node's real key in the same place connects.
    let real = node.host_public_key.as_ref().unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    wd.write("main.tf", &main_tf(&format!("{} {real}\n", node.address))).unwrap();
    wd.apply().unwrap();
    assert!(node_ok(&lab, "test -e /etc/exports.d/strata-k8s-prod.exports"));
}

#[test]
fn a_resources_private_key_is_in_neither_state_nor_plan_files() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"));
    let node = &lab.nodes()[0];
    let ssh = &lab.info().ssh;
    let key = std::fs::read_to_string(&ssh.private_key_file).unwrap();
    // The key's body lines: any of them in a file means the key leaked.
    let secret_lines: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----") && l.len() > 20).collect();
    assert!(!secret_lines.is_empty());
    // The key only in the resource (from a file() call, as a secret store would give it).
    let main_tf = format!(
        "{HEADER}provider \"strata\" {{}}\n{}",
        export(&format!(
            "    host = \"{}\"\n    private_key = file({:?})\n    known_hosts_file = {:?}\n",
            node.address,
            ssh.private_key_file.display().to_string(),
            ssh.known_hosts_file.display().to_string()
        )),
    );
    let wd = Workdir::new(&provider_dir(), &main_tf).unwrap();
    let leaks = |what: &str, text: &str| {
        for l in &secret_lines {
            assert!(!text.contains(l), "the private key is in {what}");
        }
    };
    // Plan file of the create.
    wd.run(&["plan", "-out=create.tfplan"]).unwrap().ok().unwrap();
    let shown = wd.run(&["show", "-json", "create.tfplan"]).unwrap().ok().unwrap();
    leaks("the create plan (show -json)", &shown.stdout);
    leaks("the create plan file", &String::from_utf8_lossy(&std::fs::read(wd.path().join("create.tfplan")).unwrap()));
    wd.run(&["apply", "-auto-approve", "create.tfplan"]).unwrap().ok().unwrap();
    assert!(node_ok(&lab, "test -e /etc/exports.d/strata-k8s-prod.exports"), "applied with the write-only key");

    let show = wd.run(&["show", "-json"]).unwrap().ok().unwrap();
    leaks("terraform show -json", &show.stdout);
    let state: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let values = &state["values"]["root_module"]["resources"][0]["values"];
    assert_eq!(values["ssh"][0]["private_key"], serde_json::Value::Null, "{values}");
    leaks("terraform.tfstate", &std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap());

    // An update's plan file: the refresh has no key (it is not stored), says so, and
    // keeps the last known state.
    wd.write("main.tf", &main_tf.replace("[\"rw\", \"sync\"]", "[\"ro\", \"sync\"]")).unwrap();
    let plan = wd.run(&["plan", "-out=update.tfplan"]).unwrap().ok().unwrap();
    let out = format!("{}{}", plan.stdout, plan.stderr).replace('\n', " ");
    assert!(out.contains("Node not refreshed") && out.contains("private_key_file"), "{out}");
    assert!(out.contains("1 to change"), "{out}");
    let shown = wd.run(&["show", "-json", "update.tfplan"]).unwrap().ok().unwrap();
    leaks("the update plan (show -json)", &shown.stdout);
    leaks("the update plan file", &String::from_utf8_lossy(&std::fs::read(wd.path().join("update.tfplan")).unwrap()));
    wd.run(&["apply", "-auto-approve", "update.tfplan"]).unwrap().ok().unwrap();
    assert!(node_ok(&lab, "grep -q '(ro,sync)' /etc/exports.d/strata-k8s-prod.exports"));
    leaks("terraform.tfstate", &std::fs::read_to_string(wd.path().join("terraform.tfstate")).unwrap());

    // Destroy has no key either: it fails naming what to set, and removes nothing.
    let destroy = wd.run(&["destroy", "-auto-approve"]).unwrap();
    assert_eq!(destroy.code, 1, "{}", destroy.stdout);
    let err = destroy.stderr.replace('\n', " ");
    assert!(err.contains("write-only") && err.contains("private_key_file"), "{err}");
    assert!(node_ok(&lab, "test -e /etc/exports.d/strata-k8s-prod.exports"));
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real ssh-agent on the host, killed on drop.
struct Agent(std::process::Child, std::path::PathBuf);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The way sites with an SSH CA and agents work: no key and no host key anywhere in the
/// configuration. The key is in an ssh-agent; the node's sshd presents a host certificate
/// and known_hosts holds only the CA. A certificate of another CA is refused, naming the node.
#[test]
fn an_agent_only_and_host_certificate_only_configuration_works_and_another_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = lab(&tmp.path().join("lab"));
    let node = &lab.nodes()[0];
    let ssh = &lab.info().ssh;

    let socket = tmp.path().join("agent.sock");
    let child = Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket).spawn().expect("ssh-agent");
    let agent = Agent(child, socket.clone());
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run_ok(Command::new("ssh-add").arg("-q").arg(&ssh.private_key_file).env("SSH_AUTH_SOCK", &agent.1));

    // Two CAs; the node's host key is signed by the first, for its address.
    for ca in ["ca", "other-ca"] {
        run_ok(
            Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", ca, "-f"]).arg(tmp.path().join(ca)),
        );
    }
    let host_pub = tmp.path().join("host.pub");
    std::fs::write(&host_pub, format!("{}\n", node.host_public_key.as_deref().unwrap())).unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(tmp.path().join("ca"))
            .args(["-I", "node1", "-h", "-n", &node.address, "-V", "-5m:+1d"])
            .arg(&host_pub),
    );
    let cert = std::fs::read_to_string(tmp.path().join("host-cert.pub")).unwrap();
    let install = format!(
        "printf '%s' '{}' > /etc/ssh/ssh_host_ed25519_key-cert.pub && \
         echo 'HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub' > /etc/ssh/sshd_config.d/50-host-cert.conf && \
         systemctl reload ssh",
        cert.trim()
    );
    assert!(node_ok(&lab, &install), "installing the host certificate");
    let known_hosts = |ca: &str| {
        let public = std::fs::read_to_string(tmp.path().join(format!("{ca}.pub"))).unwrap();
        let path = tmp.path().join(format!("known_hosts-{ca}"));
        std::fs::write(&path, format!("@cert-authority {} {}", node.address, public)).unwrap();
        path.display().to_string()
    };

    let main_tf = |kh: &str| {
        format!(
            "{HEADER}provider \"strata\" {{\n  ssh {{\n    known_hosts_file = {kh:?}\n  }}\n}}\n\
             resource \"strata_node_config\" \"n\" {{\n  ssh {{\n    host = \"{}\"\n  }}\n  file {{\n    \
             path    = \"/etc/strata-agent-ca\"\n    content = \"reached\\n\"\n  }}\n}}\n",
            node.address
        )
    };
    let mut wd = Workdir::new(&provider_dir(), &main_tf(&known_hosts("ca"))).unwrap();
    // Without an agent there is no key at all: the error says how to give one.
    let plan = wd.run(&["apply", "-auto-approve"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stderr.replace('\n', " ").contains("SSH_AUTH_SOCK"), "{}", plan.stderr);

    wd.set_env("SSH_AUTH_SOCK", &agent.1.display().to_string());
    wd.apply().unwrap();
    assert!(node_ok(&lab, "grep -qx reached /etc/strata-agent-ca"));
    assert_eq!(wd.plan_exit_code().unwrap().code, 0, "a second plan (refresh over the same settings) is empty");

    // The same node under a CA the configuration does not trust: refused, naming the node.
    wd.write("main.tf", &main_tf(&known_hosts("other-ca"))).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    let err = plan.stderr.replace('\n', " ");
    assert!(err.contains("@cert-authority") && err.contains(&node.address), "{err}");
}
