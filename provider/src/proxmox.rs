//! Proxmox VE access shared by `strata_vm` and the Proxmox data sources: the
//! provider's `proxmox { ... }` block, its `STRATA_PVE_*` environment variables, and
//! the client every operation gets from the configured provider. Configuring sends no
//! request, so `terraform validate` and plans that touch no VM never need Proxmox.

use serde::Deserialize;
use strata_pve_client::{Auth, Client, ClientConfig, Error as PveError, Secret};

use crate::framework::model::to_model;
use crate::framework::{
    Attribute, AttributePath, Block, Context, Diagnostic, Diagnostics, NestedBlock, PlanChange, Type, Value,
};
use crate::provider::ProviderData;

/// What the provider knows about Proxmox access after ConfigureProvider.
pub enum ProxmoxAccess {
    /// Neither the `proxmox` block nor the environment mention Proxmox.
    NotConfigured,
    /// Some settings come from resources not applied yet (Terraform configures the
    /// provider again, with known values, before it applies).
    KnownAfterApply,
    Configured(Client),
}

#[derive(Deserialize, Default)]
struct ProxmoxBlock {
    endpoint: Option<String>,
    api_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    ca_cert: Option<String>,
    insecure: Option<bool>,
}

const NOT_CONFIGURED: &str = "Set the provider's proxmox block (proxmox.endpoint, and proxmox.api_token or \
     proxmox.username and proxmox.password) or the STRATA_PVE_ENDPOINT and STRATA_PVE_API_TOKEN environment variables.";

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

/// An `http://` endpoint would carry the token or password in clear text.
fn check_endpoint_scheme(endpoint: &str) -> Result<(), Diagnostic> {
    let scheme = endpoint.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => Ok(()),
        _ => Err(Diagnostic::error(
            "Proxmox endpoint must use https",
            format!(
                "proxmox.endpoint: {endpoint:?} is not an https:// URL; the API token or password would \
                 travel in clear text. Use e.g. https://pve1.example.com:8006 (and ca_cert for a self-signed certificate)."
            ),
        )
        .at(at("endpoint"))),
    }
}

/// Plan-time checks of the known parts of the block (unknown values pass).
pub fn validate(provider_config: &Value, diags: &mut Diagnostics) {
    let Some(block) = provider_config.attr("proxmox") else { return };
    if let Some(Value::String(endpoint)) = block.attr("endpoint") {
        if let Err(d) = check_endpoint_scheme(endpoint) {
            diags.push(d);
        }
    }
}

/// Proxmox access from the block and the environment; sends no request.
pub fn configure(provider_config: &Value) -> Result<ProxmoxAccess, Diagnostics> {
    let raw = provider_config.attr("proxmox").filter(|v| !v.is_null());
    // Unknown values would read as absent below and give a misleading "missing" error.
    if raw.is_some_and(|v| !v.is_fully_known()) {
        return Ok(ProxmoxAccess::KnownAfterApply);
    }
    let block: ProxmoxBlock = match raw {
        Some(v) => to_model(v)?,
        None => ProxmoxBlock::default(),
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
        return Ok(ProxmoxAccess::NotConfigured);
    };
    check_endpoint_scheme(&endpoint)?;
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
        .map(ProxmoxAccess::Configured)
        .map_err(|e| Diagnostic::error("Invalid Proxmox configuration", e.to_string()).at(at("endpoint")).into())
}

fn not_configured() -> Diagnostics {
    Diagnostic::error("Proxmox is not configured", NOT_CONFIGURED).into()
}

/// The configured client, bound to this operation's cancellation.
pub fn client(ctx: &Context) -> Result<Client, Diagnostics> {
    let data = ctx.provider_data::<ProviderData>()?;
    match &data.proxmox {
        ProxmoxAccess::Configured(c) => Ok(c.with_cancel(ctx.cancel.clone())),
        ProxmoxAccess::NotConfigured => Err(not_configured()),
        ProxmoxAccess::KnownAfterApply => Err(Diagnostic::error(
            "Proxmox access is not known yet",
            format!(
                "{} needs Proxmox now, but the provider's proxmox settings come from resources that are not \
                 applied yet. Apply those first (e.g. terraform apply -target=...), or give the settings directly.",
                match ctx.resource_type() {
                    "" => "This operation",
                    t => t,
                }
            ),
        )
        .into()),
    }
}

/// The client when Proxmox settings are known; `Ok(None)` while they are known only
/// after apply (a refresh then keeps the prior state instead of failing the plan).
pub fn client_if_known(ctx: &Context) -> Result<Option<Client>, Diagnostics> {
    let data = ctx.provider_data::<ProviderData>()?;
    match &data.proxmox {
        ProxmoxAccess::KnownAfterApply => Ok(None),
        _ => client(ctx).map(Some),
    }
}

/// Fails the plan of something that needs Proxmox when Proxmox is certainly not
/// configured (not when its settings are merely unknown until apply).
pub fn require_at_plan(plan: &mut PlanChange) {
    let Some(data) = plan.provider_data::<ProviderData>() else { return };
    if matches!(data.proxmox, ProxmoxAccess::NotConfigured) {
        plan.diagnostics.extend(not_configured());
    }
}

/// A Proxmox failure as a diagnostic ("Failed to {what}: ...").
pub fn pve_error(what: &str, e: &PveError) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let PveError::Params { errors, .. } = e {
        for (param, msg) in errors {
            d.push(Diagnostic::error(format!("Proxmox rejected {param} while trying to {what}"), msg.clone()));
        }
        return d;
    }
    d.push(Diagnostic::error(format!("Failed to {what}"), e.to_string()));
    d
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::framework::plan::ProviderHandle;
    use crate::node::SshAccess;

    fn clear_env() {
        // nextest runs each test in its own process: the environment is ours.
        for k in ["ENDPOINT", "API_TOKEN", "USERNAME", "PASSWORD", "CA_CERT", "INSECURE"] {
            std::env::remove_var(format!("STRATA_PVE_{k}"));
        }
    }

    fn provider_config(block: Option<Vec<(&str, Value)>>) -> Value {
        let mut attrs = BTreeMap::from([("ssh".to_string(), Value::Null)]);
        let block = match block {
            None => Value::Null,
            Some(kv) => {
                let mut m: BTreeMap<String, Value> =
                    ["endpoint", "api_token", "username", "password", "ca_cert", "insecure"]
                        .iter()
                        .map(|k| (k.to_string(), Value::Null))
                        .collect();
                for (k, v) in kv {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }
        };
        attrs.insert("proxmox".into(), block);
        Value::Object(attrs)
    }

    fn kind(a: &ProxmoxAccess) -> &'static str {
        match a {
            ProxmoxAccess::NotConfigured => "not configured",
            ProxmoxAccess::KnownAfterApply => "known after apply",
            ProxmoxAccess::Configured(_) => "configured",
        }
    }

    #[test]
    fn unknown_endpoint_or_token_is_known_after_apply_not_missing() {
        clear_env();
        for cfg in [
            vec![("endpoint", Value::Unknown), ("api_token", Value::string("root@pam!t=s"))],
            vec![("endpoint", Value::string("https://pve:8006")), ("api_token", Value::Unknown)],
        ] {
            let a = configure(&provider_config(Some(cfg))).expect("no error for unknown values");
            assert_eq!(kind(&a), "known after apply");
        }
    }

    #[test]
    fn three_states() {
        clear_env();
        assert_eq!(kind(&configure(&provider_config(None)).unwrap()), "not configured");
        let known = vec![("endpoint", Value::string("https://pve:8006")), ("api_token", Value::string("root@pam!t=s"))];
        assert_eq!(kind(&configure(&provider_config(Some(known))).unwrap()), "configured");
        // A known endpoint without credentials is an error naming the attribute.
        let d = configure(&provider_config(Some(vec![("endpoint", Value::string("https://pve:8006"))]))).err().unwrap();
        assert_eq!(d.iter().next().unwrap().attribute.as_ref().unwrap().to_string(), "proxmox.api_token");
    }

    #[test]
    fn http_endpoint_is_refused_at_validate_naming_the_attribute() {
        clear_env();
        let cfg = provider_config(Some(vec![
            ("endpoint", Value::string("http://pve:8006")),
            ("api_token", Value::string("root@pam!t=secret-value")),
        ]));
        let mut diags = Diagnostics::new();
        validate(&cfg, &mut diags);
        assert!(diags.has_errors());
        let d = diags.iter().next().unwrap();
        assert_eq!(d.attribute.as_ref().unwrap().to_string(), "proxmox.endpoint");
        assert!(d.summary.contains("https") && !d.detail.contains("secret-value"), "{d:?}");
        // Configure refuses it too (the endpoint may come from the environment).
        assert!(configure(&cfg).is_err());
        let mut ok = Diagnostics::new();
        validate(&provider_config(Some(vec![("endpoint", Value::Unknown)])), &mut ok);
        assert!(!ok.has_errors());
    }

    fn plan_with(access: Option<ProxmoxAccess>) -> PlanChange {
        let mut p = crate::framework::plan::plan(
            &crate::resources::vm::schema::schema(),
            &Value::Null,
            &Value::Null,
            &Value::Null,
        );
        p.provider = access
            .map(|proxmox| ProviderHandle(Arc::new(ProviderData { ssh: SshAccess::new(Default::default()), proxmox })));
        p
    }

    #[test]
    fn plans_fail_only_when_proxmox_is_certainly_not_configured() {
        let mut p = plan_with(Some(ProxmoxAccess::NotConfigured));
        require_at_plan(&mut p);
        assert!(p.diagnostics.has_errors());
        assert!(p.diagnostics.iter().any(|d| d.detail.contains("proxmox block")), "{:?}", p.diagnostics);
        for access in [None, Some(ProxmoxAccess::KnownAfterApply)] {
            let mut p = plan_with(access);
            require_at_plan(&mut p);
            assert!(!p.diagnostics.has_errors(), "{:?}", p.diagnostics);
        }
    }
}
