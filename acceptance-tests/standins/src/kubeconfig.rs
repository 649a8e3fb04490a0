//! kubeconfig files (clientcmd's v1 Config) as kubeadm writes them and the tools read them.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default)]
    pub preferences: serde_json::Value,
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cluster {
    pub server: String,
    #[serde(rename = "certificate-authority-data", default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(rename = "certificate-authority", default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context_,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Context_ {
    pub cluster: String,
    pub user: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct User {
    #[serde(rename = "client-certificate-data", default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(rename = "client-key-data", default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(rename = "client-certificate", default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(rename = "client-key", default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// How a user authenticates, resolved from the kubeconfig.
pub enum Credentials {
    Cert { cert_pem: String, key_pem: String },
    Token(String),
    None,
}

impl Kubeconfig {
    /// A kubeconfig like kubeadm's (`kubernetes` cluster, `<user>@kubernetes` context).
    pub fn new(cluster_name: &str, server: &str, ca_pem: &str, user_name: &str, user: User) -> Kubeconfig {
        let ctx = format!("{user_name}@{cluster_name}");
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster_name.into(),
                cluster: Cluster {
                    server: server.into(),
                    certificate_authority_data: Some(B64.encode(ca_pem)),
                    certificate_authority: None,
                },
            }],
            contexts: vec![NamedContext {
                name: ctx.clone(),
                context: Context_ { cluster: cluster_name.into(), user: user_name.into() },
            }],
            current_context: ctx,
            preferences: serde_json::json!({}),
            users: vec![NamedUser { name: user_name.into(), user }],
        }
    }

    pub fn cert_user(cert_pem: &str, key_pem: &str) -> User {
        User {
            client_certificate_data: Some(B64.encode(cert_pem)),
            client_key_data: Some(B64.encode(key_pem)),
            ..Default::default()
        }
    }

    pub fn load(path: &str) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("couldn't read kubeconfig {path}"))?;
        Self::parse(&text).with_context(|| format!("invalid kubeconfig {path}"))
    }

    pub fn parse(text: &str) -> Result<Kubeconfig> {
        let k: Kubeconfig = serde_yaml_ng::from_str(text)?;
        if k.clusters.is_empty() {
            bail!("no clusters in the kubeconfig");
        }
        Ok(k)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("kubeconfig serializes")
    }

    fn context(&self) -> Option<&Context_> {
        self.contexts.iter().find(|c| c.name == self.current_context).map(|c| &c.context)
    }

    pub fn cluster(&self) -> Result<&Cluster> {
        let name = self.context().map(|c| c.cluster.clone());
        match name {
            Some(n) => self.clusters.iter().find(|c| c.name == n).map(|c| &c.cluster),
            None => self.clusters.first().map(|c| &c.cluster),
        }
        .ok_or_else(|| anyhow!("the kubeconfig's current context names no known cluster"))
    }

    pub fn server(&self) -> Result<String> {
        Ok(self.cluster()?.server.clone())
    }

    pub fn ca_pem(&self) -> Result<String> {
        let c = self.cluster()?;
        if let Some(d) = &c.certificate_authority_data {
            return Ok(String::from_utf8(B64.decode(d.trim())?)?);
        }
        if let Some(p) = &c.certificate_authority {
            return Ok(std::fs::read_to_string(p)?);
        }
        bail!("the kubeconfig has no certificate authority")
    }

    pub fn credentials(&self) -> Result<Credentials> {
        let name = self.context().map(|c| c.user.clone());
        let Some(u) = (match name {
            Some(n) => self.users.iter().find(|u| u.name == n),
            None => self.users.first(),
        }) else {
            return Ok(Credentials::None);
        };
        let u = &u.user;
        if let Some(t) = &u.token {
            return Ok(Credentials::Token(t.clone()));
        }
        let cert = match (&u.client_certificate_data, &u.client_certificate) {
            (Some(d), _) => Some(String::from_utf8(B64.decode(d.trim())?)?),
            (None, Some(p)) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {p}"))?),
            _ => None,
        };
        // The kubelet's rotated certificate file holds certificate and key together.
        let same_file = u.client_key.is_some() && u.client_key == u.client_certificate && u.client_key_data.is_none();
        let key = match (&u.client_key_data, &u.client_key) {
            _ if same_file => Some(String::new()),
            (Some(d), _) => Some(String::from_utf8(B64.decode(d.trim())?)?),
            (None, Some(p)) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {p}"))?),
            _ => None,
        };
        Ok(match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Credentials::Cert { cert_pem, key_pem },
            _ => Credentials::None,
        })
    }
}
