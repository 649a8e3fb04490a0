//! k3s tokens (pkg/clientaccess/token.go): the full form `K10<sha256 hex of the cluster
//! CA bundle>::<username>:<password>`, or a bare secret (then no CA pinning).

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The CA hash (hex) of a full token.
    pub ca_hash: Option<String>,
    pub username: String,
    pub password: String,
}

pub const PREFIX: &str = "K10";

pub fn ca_hash(ca_bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(ca_bytes))
}

impl Token {
    /// Parses a token given to `k3s server` / `k3s agent`; `default_user` is `server`
    /// for servers, `node` for agents (what a bare secret authenticates as).
    pub fn parse(s: &str, default_user: &str) -> Result<Token> {
        let s = s.trim();
        if s.is_empty() {
            bail!("token is empty");
        }
        if let Some(rest) = s.strip_prefix(PREFIX) {
            if let Some((hash, creds)) = rest.split_once("::") {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("invalid token format: CA hash {hash:?} is not 64 hex digits");
                }
                let (user, pass) = match creds.split_once(':') {
                    Some((u, p)) => (u.to_string(), p.to_string()),
                    None => (default_user.to_string(), creds.to_string()),
                };
                if pass.is_empty() {
                    bail!("invalid token format: no password");
                }
                return Ok(Token { ca_hash: Some(hash.to_lowercase()), username: user, password: pass });
            }
        }
        Ok(Token { ca_hash: None, username: default_user.to_string(), password: s.to_string() })
    }

    /// The full form, with `hash` as CA hash.
    pub fn format(hash: &str, username: &str, password: &str) -> String {
        format!("{PREFIX}{hash}::{username}:{password}")
    }

    /// The token's CA hash matches `ca_bytes` (when it has one).
    pub fn check_ca(&self, ca_bytes: &[u8]) -> Result<()> {
        if let Some(want) = &self.ca_hash {
            let got = ca_hash(ca_bytes);
            if &got != want {
                bail!("token CA hash does not match the Cluster CA certificate hash: {want} != {got}");
            }
        }
        Ok(())
    }
}

/// A new random secret (k3s: 16 random bytes, hex).
pub fn random_secret() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("random");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_bare_tokens() {
        let h = ca_hash(b"ca");
        let t = Token::parse(&Token::format(&h, "server", "s3cret"), "node").unwrap();
        assert_eq!(t, Token { ca_hash: Some(h.clone()), username: "server".into(), password: "s3cret".into() });
        assert!(t.check_ca(b"ca").is_ok());
        let e = t.check_ca(b"other").unwrap_err().to_string();
        assert!(e.contains("does not match the Cluster CA certificate hash"), "{e}");
        let bare = Token::parse("abc", "node").unwrap();
        assert_eq!((bare.ca_hash, bare.username.as_str(), bare.password.as_str()), (None, "node", "abc"));
        assert!(Token::parse("K10zz::server:x", "node").is_err());
        assert!(Token::parse("", "node").is_err());
        assert_eq!(random_secret().len(), 32);
    }
}
