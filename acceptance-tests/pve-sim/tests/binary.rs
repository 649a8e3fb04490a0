//! The `pve-sim` binary as the lab tool runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[tokio::test]
async fn binary_announces_readiness_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pve-sim"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--token", "root@pam!strata=SECRET", "--nodes", "pve1,pve2", "--task-ms", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line).await.expect("ready line").unwrap();
    let endpoint = line.trim().strip_prefix("PVE_SIM_READY ").expect(&line).to_string();
    assert!(endpoint.starts_with("https://127.0.0.1:"));

    let disc: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("pve-sim.json")).unwrap()).unwrap();
    assert_eq!(disc["endpoint"], endpoint);
    assert_eq!(disc["api_token"], "root@pam!strata=SECRET");
    assert_eq!(disc["pid"], child.id());
    let ca = std::fs::read_to_string(disc["ca_cert_file"].as_str().unwrap()).unwrap();

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r: Value = client
        .get(format!("{endpoint}/api2/json/nodes"))
        .header("Authorization", "PVEAPIToken=root@pam!strata=SECRET")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    let created = client
        .post(format!("{endpoint}/api2/json/nodes/pve2/qemu"))
        .header("Authorization", "PVEAPIToken=root@pam!strata=SECRET")
        .form(&[("vmid", "100"), ("name", "from-binary")])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(30), exit).await.expect("exits").unwrap();
    assert!(exit.success(), "{exit:?}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["vms"]["100"]["node"], "pve2");
    assert_eq!(state["vms"]["100"]["config"]["name"], "from-binary");
}
