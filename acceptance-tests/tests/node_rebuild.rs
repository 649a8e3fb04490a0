//! A node that is gone (its machine deleted) does not fail the refresh: its node-facing
//! resources are reported gone with a warning, the plan creates them again, and once the
//! node is back as a blank machine at the same address one plain `terraform apply`
//! configures it and restores the export's data. The disaster-recovery path in small.

use std::path::Path;
use std::time::Duration;

use strata_acceptance_tests::provider::provider_dir;
use strata_acceptance_tests::terraform::{ssh_provider, Workdir};
use strata_lab::{LabGuard, PveMode, UpOptions};

fn sh(lab: &LabGuard, node: &str, script: &str) -> (i32, String) {
    let out = lab.exec(node, &["sh", "-c", script]).expect("node exec");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn main_tf(lab: &LabGuard, archive: &Path) -> String {
    let ssh = &lab.info().ssh;
    let host = &lab.nodes()[0].address;
    format!(
        "{provider}\
resource \"strata_node_config\" \"nfs\" {{
  ssh {{
    host = \"{host}\"
  }}
  sysctl = {{ \"net.ipv4.ip_forward\" = \"1\" }}
  file {{
    path    = \"/etc/strata-role\"
    content = \"nfs\\n\"
  }}
}}

resource \"strata_nfs_export\" \"prod\" {{
  ssh {{
    host = \"{host}\"
  }}
  name         = \"k8s-prod\"
  path         = \"/srv/nfs/k8s-prod\"
  backend      = \"kernel\"
  restore_from = \"{archive}\"
  create_directory {{
    mode = \"0777\"
  }}
  clients {{
    client  = \"10.77.0.0/16\"
    options = [\"rw\", \"sync\", \"no_subtree_check\"]
  }}
  depends_on = [strata_node_config.nfs]
}}
",
        provider = ssh_provider(&ssh.private_key_file, &ssh.known_hosts_file),
        archive = archive.display(),
    )
}

#[test]
fn a_lost_node_is_planned_again_and_one_apply_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    let mut lab = LabGuard::up(&opts).expect("lab up");
    let archive = tmp.path().join("k8s-prod.tar.gz");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("pv.txt"), "kept\n").unwrap();
    let ok = std::process::Command::new("tar")
        .args(["-C", src.to_str().unwrap(), "-czf", archive.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(ok.success());
    let wd = Workdir::new(&provider_dir(), &main_tf(&lab, &archive)).unwrap();
    wd.apply().unwrap();
    assert_eq!(sh(&lab, "node1", "cat /etc/strata-role /srv/nfs/k8s-prod/pv.txt"), (0, "nfs\nkept\n".into()));

    // The machine is gone: the refresh does not fail, it warns and plans both again.
    lab.kill_node("node1").unwrap();
    let plan = wd.run(&["plan", "-detailed-exitcode", "-input=false"]).unwrap();
    assert_eq!(plan.code, 2, "changes planned, no error:\n{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("Node does not answer"), "the warning says why:\n{}", plan.stdout);
    for address in ["strata_node_config.nfs", "strata_nfs_export.prod"] {
        assert!(
            plan.stdout.contains(&format!("{address} will be created")),
            "{address} is created again:\n{}",
            plan.stdout
        );
    }

    // A blank machine at the same address (new disk, new host key in known_hosts):
    // one plain apply configures it and brings the data back.
    lab.recreate_node("node1", Duration::from_secs(120)).unwrap();
    assert_ne!(sh(&lab, "node1", "cat /etc/strata-role").0, 0, "the new machine is blank");
    wd.apply().unwrap();
    assert_eq!(sh(&lab, "node1", "cat /etc/strata-role /srv/nfs/k8s-prod/pv.txt"), (0, "nfs\nkept\n".into()));
    let (code, exported) = sh(&lab, "node1", "exportfs -v");
    assert!(code == 0 && exported.contains("/srv/nfs/k8s-prod"), "{exported}");
    let plan = wd.plan_exit_code().unwrap();
    assert_eq!(plan.code, 0, "plan after the rebuild must be empty:\n{}{}", plan.stdout, plan.stderr);
}
