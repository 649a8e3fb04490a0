//! etcd through its v3 JSON gateway (`/v3/kv/*`, keys and values base64), over TLS with a
//! client certificate: how the stand-in API server stores objects and how the stand-in
//! kubeadm checks that external etcd answers. etcd itself is real.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    http: reqwest::Client,
}

impl Etcd {
    pub fn new(endpoints: &[String], ca_file: &str, cert_file: &str, key_file: &str) -> Result<Etcd> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10));
        if !ca_file.is_empty() {
            let ca = std::fs::read(ca_file).with_context(|| format!("reading the etcd CA {ca_file}"))?;
            b = b.tls_built_in_root_certs(false).add_root_certificate(
                reqwest::Certificate::from_pem(&ca).with_context(|| format!("the etcd CA {ca_file}"))?,
            );
        }
        if !cert_file.is_empty() {
            let mut pem = std::fs::read(cert_file).with_context(|| format!("reading {cert_file}"))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key_file).with_context(|| format!("reading {key_file}"))?);
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .with_context(|| format!("the etcd client certificate {cert_file}"))?,
            );
        }
        Ok(Etcd {
            endpoints: endpoints.iter().map(|e| e.trim_end_matches('/').to_string()).collect(),
            http: b.build()?,
        })
    }

    async fn call_one(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value> {
        let resp = self.http.post(format!("{endpoint}{path}")).json(body).send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{endpoint}{path}: {status} {v}");
        }
        Ok(v)
    }

    /// Tries each endpoint in turn, as the etcd client balances over members.
    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let mut errs = Vec::new();
        for ep in &self.endpoints {
            match self.call_one(ep, path, &body).await {
                Ok(v) => return Ok(v),
                Err(e) => errs.push(format!("{e:#}")),
            }
        }
        Err(anyhow!("no etcd endpoint answered: {}", errs.join("; ")))
    }

    /// Each endpoint's status (`/v3/maintenance/status`): Ok(version) or the error.
    pub async fn statuses(&self) -> Vec<(String, Result<String>)> {
        let mut out = Vec::new();
        for ep in &self.endpoints {
            let r = self
                .call_one(ep, "/v3/maintenance/status", &json!({}))
                .await
                .map(|v| v.get("version").and_then(|v| v.as_str()).unwrap_or("?").to_string());
            out.push((ep.clone(), r));
        }
        out
    }

    pub async fn healthy(&self) -> bool {
        self.call("/v3/maintenance/status", json!({})).await.is_ok()
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call("/v3/kv/put", json!({"key": B64.encode(key), "value": B64.encode(value)})).await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let v = self.call("/v3/kv/range", json!({"key": B64.encode(key)})).await?;
        Ok(kvs(&v)?.into_iter().next().map(|(_, v)| v))
    }

    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let end = prefix_end(prefix);
        let v = self.call("/v3/kv/range", json!({"key": B64.encode(prefix), "range_end": B64.encode(end)})).await?;
        kvs(&v)
    }

    /// Deletes `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let v = self.call("/v3/kv/deleterange", json!({"key": B64.encode(key)})).await?;
        Ok(v.get("deleted").and_then(|d| d.as_str().map(|s| s != "0").or(d.as_i64().map(|n| n > 0))).unwrap_or(false))
    }
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn kvs(v: &Value) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for kv in v.get("kvs").and_then(|k| k.as_array()).into_iter().flatten() {
        let key = B64.decode(kv.get("key").and_then(|k| k.as_str()).unwrap_or(""))?;
        let val = B64.decode(kv.get("value").and_then(|k| k.as_str()).unwrap_or(""))?;
        out.push((String::from_utf8_lossy(&key).into_owned(), val));
    }
    Ok(out)
}
