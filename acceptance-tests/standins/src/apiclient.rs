//! A small Kubernetes REST client (what client-go does for the tools): the server and
//! credentials from a kubeconfig, TLS verified against its CA.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::kubeconfig::{Credentials, Kubeconfig};

pub struct ApiClient {
    pub base: String,
    http: reqwest::Client,
    token: Option<String>,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Response {
    /// The Status message the API server sent, for errors.
    pub fn message(&self) -> String {
        self.body.get("message").and_then(|m| m.as_str()).map(str::to_string).unwrap_or_else(|| self.body.to_string())
    }
}

impl ApiClient {
    pub fn from_kubeconfig(k: &Kubeconfig) -> Result<ApiClient> {
        Self::from_kubeconfig_at(k, &k.server()?)
    }

    /// Uses the kubeconfig's CA and credentials against `server` (kubeadm talks to the
    /// local API server during init even when the kubeconfig names the endpoint).
    pub fn from_kubeconfig_at(k: &Kubeconfig, server: &str) -> Result<ApiClient> {
        let ca = reqwest::Certificate::from_pem(k.ca_pem()?.as_bytes()).context("the kubeconfig's CA")?;
        let mut b = base_builder().tls_built_in_root_certs(false).add_root_certificate(ca);
        let mut token = None;
        match k.credentials()? {
            Credentials::Cert { cert_pem, key_pem } => {
                b = b.identity(
                    reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
                        .context("the kubeconfig's client certificate")?,
                );
            }
            Credentials::Token(t) => token = Some(t),
            Credentials::None => {}
        }
        Ok(ApiClient { base: server.trim_end_matches('/').into(), http: b.build()?, token })
    }

    /// Like kubeadm's token discovery: no CA yet, the server certificate is not verified
    /// (the CA learned this way is pinned by hash afterwards).
    pub fn insecure(server: &str) -> Result<ApiClient> {
        let http = base_builder().danger_accept_invalid_certs(true).build()?;
        Ok(ApiClient { base: server.trim_end_matches('/').into(), http, token: None })
    }

    pub fn with_token(mut self, token: &str) -> ApiClient {
        self.token = Some(token.into());
        self
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Response> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(serde_json::to_vec(b)?);
        }
        let resp = req.send().await.with_context(|| format!("{method} {}{path}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Response { status, body })
    }

    pub async fn get(&self, path: &str) -> Result<Response> {
        self.request(Method::GET, path, None, "").await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Response> {
        self.request(Method::POST, path, Some(body), "application/json").await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Response> {
        self.request(Method::PUT, path, Some(body), "application/json").await
    }

    pub async fn merge_patch(&self, path: &str, body: &Value) -> Result<Response> {
        self.request(Method::PATCH, path, Some(body), "application/merge-patch+json").await
    }

    pub async fn delete(&self, path: &str) -> Result<Response> {
        self.request(Method::DELETE, path, None, "").await
    }

    /// Creates the object, or replaces it when it exists (kubeadm's CreateOrUpdate).
    pub async fn create_or_update(&self, collection: &str, name: &str, obj: &Value) -> Result<()> {
        let r = self.post(collection, obj).await?;
        if r.status.is_success() {
            return Ok(());
        }
        if r.status == StatusCode::CONFLICT {
            let r = self.put(&format!("{collection}/{name}"), obj).await?;
            if r.status.is_success() {
                return Ok(());
            }
            return Err(anyhow!("updating {collection}/{name}: {} {}", r.status, r.message()));
        }
        Err(anyhow!("creating {collection}/{name}: {} {}", r.status, r.message()))
    }
}

fn base_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().use_rustls_tls().connect_timeout(Duration::from_secs(5)).timeout(Duration::from_secs(15))
}
