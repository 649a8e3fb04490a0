//! HTTP transport: TLS trust, authentication (token, or ticket with re-login), the
//! `{"data": ...}` envelope, error mapping and retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{check_token, Auth, ClientConfig};
use crate::error::{Error, Result};
use crate::vm::ResourceCache;
use crate::vmid::VmidAllocator;

/// The tracing target of a wait record: the same as the provider's (its `wait` module),
/// so one reading of the log adds up every wait of an apply.
pub const WAIT_TARGET: &str = "strata::wait";

/// Sleeps for `d` and emits one INFO event on [`WAIT_TARGET`] with `what` (the kind of
/// wait, one word) and `us` (how long it lasted), also when the sleep is dropped early
/// (cancelled): then with the part that was waited.
pub async fn recorded_sleep(what: &'static str, d: Duration) {
    struct Record(&'static str, tokio::time::Instant);
    impl Drop for Record {
        fn drop(&mut self) {
            let us = u64::try_from(self.1.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::info!(target: WAIT_TARGET, what = self.0, us, "waited");
        }
    }
    let _record = Record(what, tokio::time::Instant::now());
    tokio::time::sleep(d).await;
}

/// PVE tickets live two hours; renew a little earlier so a long apply never sends an
/// expired one.
const TICKET_RENEW_AFTER: Duration = Duration::from_secs(2 * 3600 - 10 * 60);

struct Ticket {
    cookie: String,
    csrf: String,
    obtained: Instant,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base: String,
    pub(crate) cfg: ClientConfig,
    ticket: Mutex<Option<Ticket>>,
    pub(crate) vmids: VmidAllocator,
    pub(crate) resources: ResourceCache,
}

/// A Proxmox VE API client. Cheap to clone; clones share connections, the login
/// ticket, the VMID allocator and the cluster-resources cache.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) cancel: CancellationToken,
}

/// Whether a write can be sent again after an ambiguous failure without changing the
/// outcome (setting a value again, stopping a stopped VM). Creates are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotent {
    Yes,
    No,
}

impl Client {
    /// Builds the client. Makes no network request: a provider can be configured
    /// (and `terraform validate` run) without reaching Proxmox.
    pub fn new(cfg: ClientConfig) -> Result<Client> {
        let endpoint = cfg.endpoint.trim_end_matches('/');
        let endpoint = endpoint.strip_suffix("/api2/json").unwrap_or(endpoint);
        let url = reqwest::Url::parse(endpoint).map_err(|e| Error::Config(format!("endpoint is not a URL: {e}")))?;
        if url.scheme() != "https" {
            return Err(Error::Config("endpoint must be an https:// URL".into()));
        }
        match &cfg.auth {
            Auth::Token(t) => check_token(t.expose()).map_err(Error::Config)?,
            Auth::Password { username, .. } => {
                if !username.contains('@') {
                    return Err(Error::Config("username must include the realm, e.g. root@pam".into()));
                }
            }
        }
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(pem) = &cfg.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| Error::Config(format!("ca_cert is not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("ca_cert holds no PEM certificate".into()));
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if cfg.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let http = b.build().map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: format!("{endpoint}/api2/json"),
                cfg,
                ticket: Mutex::new(None),
                vmids: VmidAllocator::default(),
                resources: ResourceCache::default(),
            }),
            cancel: CancellationToken::new(),
        })
    }

    /// The same client, with every wait and retry ending when `cancel` fires.
    pub fn with_cancel(&self, cancel: CancellationToken) -> Client {
        Client { inner: self.inner.clone(), cancel }
    }

    pub fn endpoint(&self) -> &str {
        self.inner.base.trim_end_matches("/api2/json")
    }

    /// Sleeps unless the cancellation fires first. The pause is a wait between polls or
    /// retries: it is recorded as `what` (see [`recorded_sleep`]).
    pub async fn sleep(&self, what: &'static str, d: Duration) -> Result<()> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Cancelled),
            _ = recorded_sleep(what, d) => Ok(()),
        }
    }

    /// GET with retries (GETs are always safe to repeat). Returns `data`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(Method::GET, path, query, Idempotent::Yes).await
    }

    /// A write. Transient server errors are retried; connection failures only when the
    /// operation is idempotent (otherwise the caller must find out what happened).
    pub async fn write(&self, method: Method, path: &str, form: &[(&str, String)], idem: Idempotent) -> Result<Value> {
        self.call(method, path, form, idem).await
    }

    async fn call(&self, method: Method, path: &str, params: &[(&str, String)], idem: Idempotent) -> Result<Value> {
        let repeatable = idem == Idempotent::Yes || method == Method::GET;
        let attempts = (|| self.once(method.clone(), path, params))
            .retry(self.inner.cfg.retry.backoff())
            .sleep(|d| recorded_sleep("proxmox_retry", d))
            .when(|e: &Error| e.is_transient() || (e.is_ambiguous() && repeatable))
            .notify(|e: &Error, after: Duration| {
                tracing::debug!(%method, path, error = %e, retry_in_ms = after.as_millis() as u64, "retrying Proxmox request");
            });
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Cancelled),
            r = attempts => r,
        }
    }

    /// One request, with one re-login if a ticket turned out to be expired.
    async fn once(&self, method: Method, path: &str, params: &[(&str, String)]) -> Result<Value> {
        let op = format!("{method} {path}");
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        for relogin in [false, true] {
            let mut req = self.inner.http.request(method.clone(), format!("{}{path}", self.inner.base));
            req = if method == Method::GET || method == Method::DELETE { req.query(params) } else { req.form(params) };
            req = self.authorize(req, &method, relogin).await?;
            let started = Instant::now();
            let resp = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Error::Cancelled),
                r = req.send() => r,
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            // Method, path, status and time only: headers carry the token or ticket and
            // bodies may carry passwords, so neither is ever logged.
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let error = transport_message(&e);
                    tracing::debug!(%method, path, duration_ms, error, "Proxmox request got no answer");
                    if e.is_timeout() {
                        return Err(Error::Timeout(format!("{op} got no answer in time")));
                    }
                    return Err(Error::Transport { op, message: error });
                }
            };
            let status = resp.status();
            tracing::debug!(%method, path, status = status.as_u16(), duration_ms, "Proxmox request");
            if status == StatusCode::UNAUTHORIZED && !relogin && matches!(self.inner.cfg.auth, Auth::Password { .. }) {
                continue;
            }
            return decode(op, resp).await;
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn authorize(
        &self,
        req: reqwest::RequestBuilder,
        method: &Method,
        force_login: bool,
    ) -> Result<reqwest::RequestBuilder> {
        match &self.inner.cfg.auth {
            Auth::Token(t) => Ok(req.header("Authorization", format!("PVEAPIToken={}", t.expose()))),
            Auth::Password { username, password } => {
                let mut guard = self.inner.ticket.lock().await;
                let stale = guard.as_ref().is_none_or(|t| t.obtained.elapsed() > TICKET_RENEW_AFTER);
                if force_login || stale {
                    *guard = Some(self.login(username, password.expose()).await?);
                }
                let t = guard.as_ref().expect("set above");
                let mut req = req.header("Cookie", format!("PVEAuthCookie={}", t.cookie));
                if *method != Method::GET {
                    req = req.header("CSRFPreventionToken", t.csrf.clone());
                }
                Ok(req)
            }
        }
    }

    async fn login(&self, username: &str, password: &str) -> Result<Ticket> {
        let op = "POST /access/ticket".to_string();
        let policy = &self.inner.cfg.retry;
        let mut attempt = 0;
        loop {
            let req = self
                .inner
                .http
                .post(format!("{}/access/ticket", self.inner.base))
                .form(&[("username", username), ("password", password)]);
            let started = Instant::now();
            let sent = req.send().await;
            let duration_ms = started.elapsed().as_millis() as u64;
            // Never the form: it holds the password.
            let status = sent.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            tracing::debug!(method = "POST", path = "/access/ticket", status, duration_ms, "Proxmox request");
            let result = match sent {
                Ok(resp) => decode(op.clone(), resp).await,
                Err(e) => Err(Error::Transport { op: op.clone(), message: transport_message(&e) }),
            };
            match result {
                Ok(data) => {
                    let get = |k: &str| {
                        data.get(k)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| Error::Decode { op: op.clone(), message: format!("login answer lacks {k}") })
                    };
                    return Ok(Ticket {
                        cookie: get("ticket")?,
                        csrf: get("CSRFPreventionToken")?,
                        obtained: Instant::now(),
                    });
                }
                // Login has no side effect worth protecting: retry transport failures too.
                Err(e) if (e.is_transient() || e.is_ambiguous()) && attempt + 1 < policy.max_attempts => {
                    attempt += 1;
                    self.sleep("proxmox_retry", policy.delay(attempt - 1)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// reqwest's message without the URL's query (which never holds secrets, but keeps
/// messages short) and with the cause chain, e.g. "connection reset by peer".
fn transport_message(e: &reqwest::Error) -> String {
    let mut parts = vec![];
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.contains(&s) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

async fn decode(op: String, resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    let body = resp.bytes().await.map_err(|e| Error::Transport { op: op.clone(), message: transport_message(&e) })?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        let json = json.ok_or_else(|| Error::Decode { op: op.clone(), message: "body is not JSON".into() })?;
        return Ok(json.get("data").cloned().unwrap_or(Value::Null));
    }
    if status == StatusCode::BAD_REQUEST {
        if let Some(errors) = json.as_ref().and_then(|j| j.get("errors")).and_then(Value::as_object) {
            let errors: BTreeMap<String, String> = errors
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect();
            return Err(Error::Params { op, errors });
        }
    }
    Err(Error::Api { op, status: status.as_u16(), message: reason })
}
