//! Authentication: API tokens, ticket login (cookie + CSRF header).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};

use crate::config::SimConfig;
use crate::error::ApiError;

/// PVE tickets are valid for two hours.
const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `user@realm!tokenid`
    Token(String),
    /// `user@realm`
    Ticket(String),
}

impl Identity {
    /// The user part of a UPID (`user@realm!tokenid` for tokens).
    pub fn upid_user(&self) -> &str {
        match self {
            Identity::Token(t) => t,
            Identity::Ticket(u) => u,
        }
    }
}

struct TicketInfo {
    user: String,
    csrf: String,
    issued: Instant,
}

pub struct Auth {
    token_id: String,
    secret: String,
    login: Option<(String, String)>,
    tickets: Mutex<HashMap<String, TicketInfo>>,
}

/// Splits `USER@REALM!TOKENID=SECRET` at the last `=`, like pveproxy.
pub fn split_token(full: &str) -> Option<(&str, &str)> {
    let (id, secret) = full.rsplit_once('=')?;
    let (user, tokenid) = id.split_once('!')?;
    if !user.contains('@') || tokenid.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, secret))
}

impl Auth {
    pub fn new(cfg: &SimConfig) -> anyhow::Result<Auth> {
        let (id, secret) = split_token(&cfg.token)
            .ok_or_else(|| anyhow::anyhow!("--token must look like USER@REALM!TOKENID=SECRET"))?;
        let login = match (&cfg.user, &cfg.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => anyhow::bail!("--user and --password must be given together"),
        };
        Ok(Auth { token_id: id.into(), secret: secret.into(), login, tickets: Mutex::new(HashMap::new()) })
    }

    pub fn authenticate(&self, headers: &HeaderMap, method: &Method) -> Result<Identity, ApiError> {
        if let Some(h) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            let rest = h
                .strip_prefix("PVEAPIToken=")
                .or_else(|| h.strip_prefix("PVEAPIToken "))
                .ok_or_else(|| ApiError::unauthorized("authentication failure"))?;
            return match split_token(rest.trim()) {
                Some((id, secret)) if id == self.token_id && secret == self.secret => {
                    Ok(Identity::Token(id.to_string()))
                }
                _ => Err(ApiError::unauthorized("authentication failure")),
            };
        }
        let ticket = cookie(headers, "PVEAuthCookie").ok_or_else(|| ApiError::unauthorized("No ticket"))?;
        let tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let info = tickets
            .get(&ticket)
            .filter(|i| i.issued.elapsed() < TICKET_LIFETIME)
            .ok_or_else(|| ApiError::unauthorized("invalid ticket"))?;
        // Tickets (unlike tokens) need the CSRF header on every write.
        if *method != Method::GET {
            let csrf = headers.get("csrfpreventiontoken").and_then(|v| v.to_str().ok());
            if csrf != Some(info.csrf.as_str()) {
                return Err(ApiError::unauthorized("Permission denied - invalid csrf token"));
            }
        }
        Ok(Identity::Ticket(info.user.clone()))
    }

    /// `POST /access/ticket`: password login, or renewal with a valid ticket
    /// as password. Returns (username, ticket, csrf token).
    pub fn login(
        &self,
        username: &str,
        password: &str,
        realm: Option<&str>,
    ) -> Result<(String, String, String), ApiError> {
        let user = match realm {
            Some(r) if !username.contains('@') => format!("{username}@{r}"),
            _ => username.to_string(),
        };
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let by_password = matches!(&self.login, Some((u, p)) if *u == user && p == password);
        let by_ticket =
            tickets.get(password).map(|i| i.user == user && i.issued.elapsed() < TICKET_LIFETIME).unwrap_or(false);
        if !by_password && !by_ticket {
            return Err(ApiError::unauthorized("authentication failure"));
        }
        let now = crate::sim::now() as u64;
        let ticket = format!("PVE:{user}:{now:08X}::{}", random_b64(342));
        let csrf = format!("{now:08X}:{}", random_b64(43));
        tickets.insert(ticket.clone(), TicketInfo { user: user.clone(), csrf: csrf.clone(), issued: Instant::now() });
        Ok((user, ticket, csrf))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for h in headers.get_all("cookie") {
        let Ok(s) = h.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k == name {
                    return Some(percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned());
                }
            }
        }
    }
    None
}

fn random_b64(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_splits_at_last_equals() {
        assert_eq!(split_token("root@pam!strata=a=b"), Some(("root@pam!strata=a", "b")));
        assert_eq!(split_token("root@pam!strata=SECRET"), Some(("root@pam!strata", "SECRET")));
        assert_eq!(split_token("root@pam=SECRET"), None);
    }
}
