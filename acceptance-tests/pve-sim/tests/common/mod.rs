//! Shared helpers for the integration tests: start a simulator in a temp
//! dir and talk to it over HTTPS, trusting only its generated certificate.
#![allow(dead_code)]

use std::time::Duration;

use pve_sim::{SimConfig, SimHandle};
use serde_json::Value;

pub const TOKEN: &str = "root@pam!strata=s3cr3t-token";
pub const TOKEN_ID: &str = "root@pam!strata";

pub struct Env {
    pub sim: SimHandle,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub body: Value,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn upid(&self) -> String {
        assert_eq!(self.status, 200, "expected a task, got {} {} {}", self.status, self.reason, self.body);
        self.body["data"].as_str().expect("UPID string").to_string()
    }
}

pub fn config(dir: &std::path::Path) -> SimConfig {
    let mut cfg = SimConfig::new(dir, TOKEN);
    cfg.task_ms = 50;
    cfg
}

pub async fn start_with(dir: tempfile::TempDir, f: impl FnOnce(&mut SimConfig)) -> Env {
    let mut cfg = config(dir.path());
    f(&mut cfg);
    let sim = pve_sim::start(cfg).await.expect("sim starts");
    let client = client_for(sim.ca_cert_pem());
    Env { sim, client, dir }
}

pub async fn start() -> Env {
    start_with(tempfile::tempdir().unwrap(), |_| {}).await
}

pub fn client_for(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The reason phrase PVE uses to carry error messages.
pub fn reason_of(r: &reqwest::Response) -> String {
    r.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .unwrap_or_else(|| r.status().canonical_reason().unwrap_or("").to_string())
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api2/json{}", self.sim.endpoint(), path)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> reqwest::Result<Resp> {
        let mut req =
            self.client.request(method.clone(), self.url(path)).header("Authorization", format!("PVEAPIToken={TOKEN}"));
        req = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            req.query(form)
        } else {
            req.form(form)
        };
        let r = req.send().await?;
        let status = r.status().as_u16();
        let reason = reason_of(&r);
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        Ok(Resp { status, reason, body })
    }

    pub async fn get(&self, path: &str, q: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::GET, path, q).await.expect("GET")
    }
    pub async fn post(&self, path: &str, f: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::POST, path, f).await.expect("POST")
    }
    pub async fn put(&self, path: &str, f: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::PUT, path, f).await.expect("PUT")
    }
    pub async fn delete(&self, path: &str, q: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::DELETE, path, q).await.expect("DELETE")
    }

    /// Polls a task until it stops (bounded); returns its final status.
    pub async fn wait_task(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).unwrap();
        let path = format!("/nodes/{node}/tasks/{}/status", urlencode(upid));
        for _ in 0..500 {
            let r = self.get(&path, &[]).await;
            assert_eq!(r.status, 200, "task status: {} {}", r.reason, r.body);
            if r.data()["status"] == "stopped" {
                return r.data().clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not finish");
    }

    pub async fn task_ok(&self, upid: &str) {
        let st = self.wait_task(upid).await;
        assert_eq!(st["exitstatus"], "OK", "task failed: {st}");
    }

    /// Creates a VM and waits for the create task.
    pub async fn create_vm(&self, vmid: u32, extra: &[(&str, &str)]) {
        let id = vmid.to_string();
        let mut form = vec![("vmid", id.as_str())];
        form.extend_from_slice(extra);
        let r = self.post("/nodes/pve1/qemu", &form).await;
        self.task_ok(&r.upid()).await;
    }

    pub async fn config_of(&self, vmid: u32) -> Value {
        let r = self.get(&format!("/nodes/pve1/qemu/{vmid}/config"), &[]).await;
        assert_eq!(r.status, 200, "{} {}", r.reason, r.body);
        r.data().clone()
    }
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
