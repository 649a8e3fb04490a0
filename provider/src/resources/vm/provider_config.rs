//! The provider's `proxmox { ... }` block and `STRATA_PVE_*` environment variables.
//! Configuring builds the client without any network request, so `terraform validate`
//! and plans that touch no VM never need Proxmox.

use serde::Deserialize;
use strata_pve_client::{Auth, Client, ClientConfig, Secret};

use crate::framework::model::to_model;
use crate::framework::{Attribute, AttributePath, Block, Diagnostic, Diagnostics, NestedBlock, Type, Value};

#[derive(Deserialize, Default)]
struct ProxmoxBlock {
    endpoint: Option<String>,
    api_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_cert: Option<String>,
    insecure: Option<bool>,
}

pub fn proxmox_block() -> NestedBlock {
    NestedBlock::single(
        "proxmox",
        Block::new("Proxmox VE API access. Every attribute can also come from its STRATA_PVE_* environment variable.")
            .attribute(
                Attribute::optional("endpoint", Type::String)
                    .description("API URL, e.g. `https://pve1.example.com:8006` (env `STRATA_PVE_ENDPOINT`)."),
            )
            .attribute(
                Attribute::optional("api_token", Type::String)
                    .sensitive()
                    .description("API token `USER@REALM!TOKENID=SECRET` (env `STRATA_PVE_API_TOKEN`)."),
            )
            .attribute(
                Attribute::optional("username", Type::String).description(
                    "User for ticket login, e.g. `root@pam`, instead of a token (env `STRATA_PVE_USERNAME`).",
                ),
            )
            .attribute(
                Attribute::optional("password", Type::String)
                    .sensitive()
                    .description("Password for `username` (env `STRATA_PVE_PASSWORD`)."),
            )
            .attribute(Attribute::optional("ca_cert", Type::String).description(
                "PEM certificate (or a path to one) to trust for the API's TLS certificate (env `STRATA_PVE_CA_CERT`).",
            ))
            .attribute(Attribute::optional("insecure", Type::Bool).description(
                "Skip TLS certificate verification. Off by default; for labs only (env `STRATA_PVE_INSECURE`).",
            )),
    )
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn at(attr: &str) -> AttributePath {
    AttributePath::root("proxmox").attr(attr)
}

/// The client, or `None` when neither the block nor the environment mention Proxmox.
pub fn configure(provider_config: &Value) -> Result<Option<Client>, Diagnostics> {
    let block: ProxmoxBlock = match provider_config.attr("proxmox") {
        Some(v) if !v.is_null() => to_model(v)?,
        _ => ProxmoxBlock::default(),
    };
    let endpoint = block.endpoint.or_else(|| env("STRATA_PVE_ENDPOINT"));
    let token = block.api_token.or_else(|| env("STRATA_PVE_API_TOKEN"));
    let username = block.username.or_else(|| env("STRATA_PVE_USERNAME"));
    let password = block.password.or_else(|| env("STRATA_PVE_PASSWORD"));
    let ca_cert = block.ca_cert.or_else(|| env("STRATA_PVE_CA_CERT"));
    let insecure = match block.insecure {
        Some(b) => b,
        None => match env("STRATA_PVE_INSECURE").as_deref() {
            None => false,
            Some("1" | "true" | "TRUE" | "True" | "yes") => true,
            Some("0" | "false" | "FALSE" | "False" | "no") => false,
            Some(_) => {
                return Err(Diagnostic::error("Invalid STRATA_PVE_INSECURE", "Must be true or false.")
                    .at(at("insecure"))
                    .into())
            }
        },
    };
    let Some(endpoint) = endpoint else {
        if token.is_some() || username.is_some() {
            return Err(Diagnostic::error("Missing Proxmox endpoint", "Set proxmox.endpoint or STRATA_PVE_ENDPOINT.")
                .at(at("endpoint"))
                .into());
        }
        return Ok(None);
    };
    let auth = match (token, username, password) {
        (Some(t), None, None) => Auth::Token(Secret::new(t)),
        (None, Some(u), Some(p)) => Auth::Password { username: u, password: Secret::new(p) },
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Diagnostic::error(
                "Conflicting Proxmox credentials",
                "Use either api_token or username/password, not both.",
            )
            .at(at("api_token"))
            .into())
        }
        (None, Some(_), None) => {
            return Err(Diagnostic::error(
                "Missing Proxmox password",
                "username needs a password (or STRATA_PVE_PASSWORD).",
            )
            .at(at("password"))
            .into())
        }
        (None, None, _) => {
            return Err(Diagnostic::error(
                "Missing Proxmox credentials",
                "Set proxmox.api_token (STRATA_PVE_API_TOKEN) or username and password.",
            )
            .at(at("api_token"))
            .into())
        }
    };
    let ca_pem = match ca_cert {
        Some(c) if c.contains("-----BEGIN") => Some(c),
        Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
            Diagnostics::from(
                Diagnostic::error("Cannot read the Proxmox CA certificate", format!("{path}: {e}")).at(at("ca_cert")),
            )
        })?),
        None => None,
    };
    let mut cfg = ClientConfig::new(endpoint, auth);
    cfg.ca_cert_pem = ca_pem;
    cfg.insecure = insecure;
    // The client's errors never contain the credentials (they are `Secret`s).
    Client::new(cfg)
        .map(Some)
        .map_err(|e| Diagnostic::error("Invalid Proxmox configuration", e.to_string()).at(at("endpoint")).into())
}
