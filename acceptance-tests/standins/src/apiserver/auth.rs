//! Authentication (client certificates, bootstrap tokens, anonymous) and the coarse
//! authorization this stand-in applies.

use serde_json::Value;

use super::State;
use crate::kubeadm::validation::token_re;

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn anonymous() -> User {
        User { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
    pub fn is_bootstrap(&self) -> bool {
        self.groups.iter().any(|g| g == "system:bootstrappers")
    }
}

fn b64_field(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    let data = secret.get("data")?.get(key)?.as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).ok()?).ok()
}

/// A bootstrap token Secret that is currently valid for `usage` (`authentication` or
/// `signing`): the token-secret, whether expired.
pub fn token_usable(secret: &Value, usage: &str) -> Option<String> {
    if secret.get("type").and_then(|t| t.as_str()) != Some("bootstrap.kubernetes.io/token") {
        return None;
    }
    if b64_field(secret, &format!("usage-bootstrap-{usage}")).as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = b64_field(secret, "expiration") {
        let t = time::OffsetDateTime::parse(&exp, &time::format_description::well_known::Rfc3339).ok()?;
        if t <= time::OffsetDateTime::now_utc() {
            return None;
        }
    }
    b64_field(secret, "token-secret")
}

/// The bootstrap token authenticator: `<id>.<secret>` against Secret
/// kube-system/bootstrap-token-<id> (usage, expiry and secret checked).
pub async fn bootstrap_user(state: &State, token: &str) -> Option<User> {
    if !state.flags.enable_bootstrap_token_auth {
        return None;
    }
    let caps = token_re().captures(token)?;
    let (id, secret) = (caps.get(1)?.as_str(), caps.get(2)?.as_str());
    let raw = state.etcd.get(&format!("/registry/secrets/kube-system/bootstrap-token-{id}")).await.ok()??;
    let obj: Value = serde_json::from_slice(&raw).ok()?;
    if token_usable(&obj, "authentication")? != secret {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    if let Some(extra) = b64_field(&obj, "auth-extra-groups") {
        groups.extend(extra.split(',').map(|g| g.trim().to_string()).filter(|g| !g.is_empty()));
    }
    Some(User { name: format!("system:bootstrap:{id}"), groups })
}

/// Who may do what. Anonymous: health, version and the kube-public cluster-info
/// ConfigMap (system:public-info-viewer and kubeadm's cluster-info RBAC). Bootstrap
/// tokens: that, plus creating and reading CSRs (the node-bootstrapper role). Any
/// certificate-authenticated user: everything (the stand-in has no RBAC).
pub fn allowed(user: &User, method: &str, path: &str) -> bool {
    let public = matches!(path, "/readyz" | "/livez" | "/healthz" | "/version")
        || (method == "GET" && path == "/api/v1/namespaces/kube-public/configmaps/cluster-info");
    if public {
        return true;
    }
    if user.is_anonymous() {
        return false;
    }
    if user.is_bootstrap() {
        // node-bootstrapper, plus kubeadm's read access to its ConfigMaps and (its
        // kubeadm:get-nodes role) to a Node, for joining nodes.
        return (path.starts_with("/apis/certificates.k8s.io/v1/certificatesigningrequests")
            && (method == "POST" || method == "GET"))
            || (method == "GET"
                && path.strip_prefix("/api/v1/nodes/").is_some_and(|n| !n.is_empty() && !n.contains('/')))
            || (method == "GET"
                && matches!(
                    path,
                    "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
                        | "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
                ));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn secret(expiration: &str) -> Value {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({"type": "bootstrap.kubernetes.io/token", "data": {
            "token-id": b("abcdef"), "token-secret": b("0123456789abcdef"), "expiration": b(expiration),
            "usage-bootstrap-authentication": b("true")}})
    }

    #[test]
    fn bootstrap_tokens_expire() {
        assert_eq!(
            token_usable(&secret("2999-01-01T00:00:00Z"), "authentication").as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(token_usable(&secret("2000-01-01T00:00:00Z"), "authentication"), None);
        assert_eq!(token_usable(&secret("2999-01-01T00:00:00Z"), "signing"), None, "usage not granted");
    }

    #[test]
    fn anonymous_and_bootstrap_access_is_narrow() {
        let anon = User::anonymous();
        assert!(allowed(&anon, "GET", "/readyz"));
        assert!(allowed(&anon, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info"));
        assert!(!allowed(&anon, "GET", "/api/v1/nodes"));
        let boot = User { name: "system:bootstrap:abcdef".into(), groups: vec!["system:bootstrappers".into()] };
        assert!(allowed(&boot, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests"));
        assert!(!allowed(&boot, "GET", "/api/v1/namespaces/kube-system/secrets"));
        assert!(allowed(&boot, "GET", "/api/v1/nodes/node4"), "kubeadm:get-nodes");
        assert!(!allowed(&boot, "GET", "/api/v1/nodes"));
        assert!(!allowed(&boot, "DELETE", "/api/v1/nodes/node4"));
        let admin = User { name: "kubernetes-admin".into(), groups: vec!["kubeadm:cluster-admins".into()] };
        assert!(allowed(&admin, "DELETE", "/api/v1/nodes/node3"));
    }
}
