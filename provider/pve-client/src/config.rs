//! Client configuration. Credentials are wrapped in [`Secret`] so that no `Debug` or
//! `Display` of a configuration can leak them into logs or diagnostics.

use std::fmt;
use std::time::Duration;

/// A credential. Prints as `***`; the value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug)]
pub enum Auth {
    /// `USER@REALM!TOKENID=SECRET`, sent as `Authorization: PVEAPIToken=...`.
    Token(Secret),
    /// Ticket login (`POST /access/ticket`): cookie plus CSRF header on writes.
    Password { username: String, password: Secret },
}

/// How hard to try before giving up on a transient failure.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(3) }
    }
}

impl RetryPolicy {
    /// The policy as backon's exponential backoff with jitter.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }

    /// Exponential backoff with jitter, so parallel workers do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.max_delay);
        let jitter = 0.5 + fastrand::f64() * 0.5;
        capped.mul_f64(jitter)
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://host:8006` (a trailing `/api2/json` is accepted and ignored).
    pub endpoint: String,
    pub auth: Auth,
    /// PEM certificate(s) to trust instead of the built-in roots (self-signed PVE).
    pub ca_cert_pem: Option<String>,
    /// Skip TLS verification. Explicit opt-out only; never the default.
    pub insecure: bool,
    /// Upper bound for one HTTP request.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, auth: Auth) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            auth,
            ca_cert_pem: None,
            insecure: false,
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// Parses a token and checks its shape without revealing it in the error.
pub fn check_token(token: &str) -> Result<(), String> {
    let Some((id, secret)) = token.rsplit_once('=') else {
        return Err("the API token must look like USER@REALM!TOKENID=SECRET".into());
    };
    let ok = id.split_once('!').is_some_and(|(user, tid)| user.contains('@') && !tid.is_empty()) && !secret.is_empty();
    if ok {
        Ok(())
    } else {
        Err("the API token must look like USER@REALM!TOKENID=SECRET".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let cfg = ClientConfig::new(
            "https://pve:8006",
            Auth::Password { username: "root@pam".into(), password: Secret::new("hunter2") },
        );
        let s = format!("{cfg:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("***"));
        assert_eq!(format!("{}", Secret::new("x")), "***");
    }

    #[test]
    fn token_shape_is_checked_without_echoing_it() {
        assert!(check_token("root@pam!strata=abc").is_ok());
        let e = check_token("root@pam=topsecret").unwrap_err();
        assert!(!e.contains("topsecret"));
        assert!(check_token("root@pam!=x").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert!(p.delay(0) <= Duration::from_millis(100));
        assert!(p.delay(20) <= Duration::from_secs(3));
        assert!(p.delay(20) >= Duration::from_millis(1500));
    }
}
