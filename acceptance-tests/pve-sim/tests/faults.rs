//! Fault injection and the request log.

mod common;

use common::*;
use serde_json::{json, Value};

async fn put_faults(env: &Env, body: Value) -> reqwest::Response {
    env.client
        .put(format!("{}/_sim/faults", env.sim.endpoint()))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn five_xx_share_controls_failures() {
    let env = start().await;
    assert_eq!(put_faults(&env, json!({ "fail_5xx_pct": 100 })).await.status().as_u16(), 200);
    for _ in 0..10 {
        let r = env.get("/version", &[]).await;
        assert!(r.status == 500 || r.status == 503, "{}", r.status);
    }
    // A 5xx is answered before anything happens: the create did not run.
    let r = env.post("/nodes/pve1/qemu", &[("vmid", "300")]).await;
    assert!(r.status >= 500);
    put_faults(&env, json!({ "fail_5xx_pct": 0 })).await;
    assert_eq!(env.get("/nodes/pve1/qemu/300/config", &[]).await.status, 500, "VM must not exist");
    for _ in 0..10 {
        assert_eq!(env.get("/version", &[]).await.status, 200);
    }
    let log = env.sim.request_log();
    assert_eq!(log.iter().filter(|e| e.fault.as_deref() == Some("5xx")).count(), 11);
}

#[tokio::test]
async fn faults_endpoint_reads_validates_and_needs_auth() {
    let env = start_with(tempfile::tempdir().unwrap(), |c| c.faults.latency_ms = 5).await;
    let r: Value = env
        .client
        .get(format!("{}/_sim/faults", env.sim.endpoint()))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["latency_ms"], 5);
    assert_eq!(put_faults(&env, json!({ "reset_pct": 101 })).await.status().as_u16(), 400);
    assert_eq!(put_faults(&env, json!({ "nonsense": 1 })).await.status().as_u16(), 400);
    let r = env.client.put(format!("{}/_sim/faults", env.sim.endpoint())).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(env.sim.faults().latency_ms, 5, "rejected updates change nothing");
}

#[tokio::test]
async fn resets_before_and_after_the_operation() {
    let env = start().await;
    // Reset before: the connection dies and nothing happened.
    put_faults(&env, json!({ "reset_pct": 100, "reset_after_pct": 0 })).await;
    let err = env.send(reqwest::Method::POST, "/nodes/pve1/qemu", &[("vmid", "310")]).await;
    assert!(err.is_err(), "expected a transport error");
    // Reset after: the connection dies but the VM was created, so a client
    // must look before re-sending the create.
    put_faults(&env, json!({ "reset_after_pct": 100 })).await;
    let err = env.send(reqwest::Method::POST, "/nodes/pve1/qemu", &[("vmid", "311")]).await;
    assert!(err.is_err(), "expected a transport error");
    put_faults(&env, json!({ "reset_pct": 0 })).await;
    assert_eq!(env.get("/nodes/pve1/qemu/310/config", &[]).await.status, 500);
    assert_eq!(env.get("/nodes/pve1/qemu/311/config", &[]).await.status, 200);
    let faults: Vec<Option<String>> = env.sim.request_log().into_iter().map(|e| e.fault).collect();
    assert!(faults.contains(&Some("reset-before".into())) && faults.contains(&Some("reset-after".into())));
}

#[tokio::test]
async fn lock_contention_fails_sync_calls_and_tasks() {
    let env = start().await;
    env.create_vm(320, &[]).await;
    env.sim.set_faults(pve_sim::Faults { lock_contention_pct: 100, ..Default::default() }).unwrap();
    let r = env.put("/nodes/pve1/qemu/320/config", &[("cores", "2")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "can't lock file '/var/lock/qemu-server/lock-320.conf' - got timeout")
    );
    let st = env.wait_task(&env.post("/nodes/pve1/qemu/320/status/start", &[]).await.upid()).await;
    assert_eq!(st["exitstatus"], "can't lock file '/var/lock/qemu-server/lock-320.conf' - got timeout");
    env.sim.set_faults(pve_sim::Faults::default()).unwrap();
    assert_eq!(env.put("/nodes/pve1/qemu/320/config", &[("cores", "2")]).await.status, 200);
}

#[tokio::test]
async fn request_log_counts_and_file() {
    let env = start().await;
    env.get("/version", &[]).await;
    let admin = env
        .client
        .post(format!("{}/_sim/requests/reset", env.sim.endpoint()))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 200);
    assert!(env.sim.request_log().is_empty());
    env.get("/version", &[]).await;
    env.get("/nodes", &[]).await;
    env.get("/nodes/pve1/qemu/999/config", &[]).await;
    let _ = env.client.get(env.url("/version")).send().await.unwrap(); // 401
    let r = env.post("/nodes/pve1/qemu", &[("vmid", "330")]).await;
    env.wait_task(&r.upid()).await;

    let r: Value = env
        .client
        .get(format!("{}/_sim/requests", env.sim.endpoint()))
        .header("Authorization", format!("PVEAPIToken={TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = r["data"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .filter(|e| !e["path"].as_str().unwrap().contains("/tasks/"))
        .map(|e| {
            (e["method"].as_str().unwrap().into(), e["path"].as_str().unwrap().into(), e["status"].as_u64().unwrap())
        })
        .collect();
    let expect = |m: &str, p: &str, s: u64| (m.to_string(), p.to_string(), s);
    assert_eq!(
        summary,
        vec![
            expect("GET", "/api2/json/version", 200),
            expect("GET", "/api2/json/nodes", 200),
            expect("GET", "/api2/json/nodes/pve1/qemu/999/config", 500),
            expect("GET", "/api2/json/version", 401),
            expect("POST", "/api2/json/nodes/pve1/qemu", 200),
        ]
    );
    assert!(entries.iter().all(|e| e["ts"].as_f64().unwrap() > 0.0 && e["duration_ms"].is_u64()));
    let file = std::fs::read_to_string(env.dir.path().join("requests.log")).unwrap();
    let lines: Vec<Value> = file.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), entries.len(), "file mirrors the log since the reset");
    assert_eq!(lines[0]["path"], "/api2/json/version");
}
