//! How the provider ships strata-agent: a build with no dynamic dependencies that runs on
//! a bare node, and a node of another architecture refused before anything is uploaded.

use std::process::Command;

use sha2::Digest;

use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, UpOptions};

/// The build the provider ships, beside it (scripts/build-agent-static.sh).
fn static_agent() -> std::path::PathBuf {
    provider_dir().join("strata-agent-static")
}

#[test]
fn the_shipped_agent_runs_in_an_empty_chroot() {
    let agent = static_agent();
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&agent, root.path().join("strata-agent")).unwrap();
    // No libc, no loader, no /proc: nothing but the binary.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    let out = Command::new("chroot").arg(root.path()).args(["/strata-agent", "--version"]).output().unwrap();
    assert!(
        out.status.success(),
        "the agent did not start in an empty chroot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("strata-agent "), "{out:?}");
}

#[test]
fn a_node_of_another_architecture_is_refused_before_anything_is_uploaded() {
    static_agent();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up (needs root)");
    let node = lab.nodes()[0].address.clone();
    // The node answers `uname -m` like an arm64 machine: root's shell, started by sshd,
    // reads its ~/.bashrc, and every command then finds this `uname` first.
    let fake =
        "mkdir -p /srv/arm64 && printf '#!/bin/sh\\necho aarch64\\n' > /srv/arm64/uname && chmod +x /srv/arm64/uname \
                && echo 'export PATH=/srv/arm64:$PATH' > /root/.bashrc";
    assert!(lab.exec("node1", &["sh", "-c", fake]).unwrap().status.success());

    let ssh = &lab.info().ssh;
    let main_tf = |extra: &str| {
        format!(
            "{}resource \"strata_node_config\" \"n\" {{\n  ssh {{\n    host = \"{node}\"\n  }}\n\
             file {{\n    path = \"/etc/strata-shipped\"\n    content = \"shipped\\n\"\n  }}\n{extra}}}\n",
            ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file)
        )
    };
    let wd = Workdir::new(&provider_dir(), &main_tf("")).unwrap();
    let run = wd.run(&["apply", "-auto-approve"]).unwrap();
    let stderr = run.stderr.replace('\n', " ");
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(stderr.contains("is a aarch64 machine") && stderr.contains(&node), "{stderr}");
    assert!(stderr.contains("x86_64") && stderr.contains("agent_binary"), "{stderr}");
    let uploaded = lab.exec("node1", &["test", "-e", "/var/lib/strata/strata-agent"]).unwrap();
    assert!(!uploaded.status.success(), "the agent was uploaded to a node it cannot run on");

    // An agent_binary that is not there is refused at plan, naming the attribute.
    wd.write("main.tf", &main_tf("  agent_binary = \"/nonexistent/strata-agent\"\n")).unwrap();
    let plan = wd.run(&["plan"]).unwrap();
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(
        plan.stderr.contains("Invalid agent_binary") && plan.stderr.contains("/nonexistent/strata-agent"),
        "{}",
        plan.stderr
    );

    // Back to an x86_64 node, agent_binary names the build to upload.
    assert!(lab.exec("node1", &["sh", "-c", "rm -f /root/.bashrc"]).unwrap().status.success());
    let chosen = tmp.path().join("my-agent");
    std::fs::copy(static_agent(), &chosen).unwrap();
    wd.write("main.tf", &main_tf(&format!("  agent_binary = \"{}\"\n", chosen.display()))).unwrap();
    wd.apply().unwrap();
    let on_node = lab.exec("node1", &["sha256sum", "/var/lib/strata/strata-agent"]).unwrap();
    let want = hex::encode(sha2::Sha256::digest(std::fs::read(&chosen).unwrap()));
    assert!(String::from_utf8_lossy(&on_node.stdout).starts_with(&want), "{on_node:?}");
    assert_eq!(wd.resource_values("strata_node_config.n").unwrap()["agent_sha256"], want.as_str());
}
