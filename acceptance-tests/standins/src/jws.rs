//! Detached JWS (HS256) as Kubernetes' bootstrap signer puts into the cluster-info
//! ConfigMap and kubeadm's token discovery checks (k8s.io/cluster-bootstrap/token/jws).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::hmac;

/// `<header>..<signature>` over `content`, keyed with the whole token `<id>.<secret>`.
pub fn detached_sign(content: &str, token_id: &str, token: &str) -> String {
    let header = B64URL.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{token_id}\"}}"));
    let payload = B64URL.encode(content);
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    let sig = hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", B64URL.encode(sig.as_ref()))
}

/// Checks a detached JWS made by [`detached_sign`] (constant-time comparison).
pub fn verify_detached(content: &str, jws: &str, token_id: &str, token: &str) -> bool {
    let Some((header, sig)) = jws.split_once("..") else { return false };
    let Ok(sig) = B64URL.decode(sig) else { return false };
    let Ok(h) = B64URL.decode(header) else { return false };
    let Ok(h): Result<serde_json::Value, _> = serde_json::from_slice(&h) else { return false };
    if h.get("alg").and_then(|a| a.as_str()) != Some("HS256") || h.get("kid").and_then(|k| k.as_str()) != Some(token_id)
    {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    hmac::verify(&key, format!("{header}.{}", B64URL.encode(content)).as_bytes(), &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let jws = detached_sign("kubeconfig text", "abcdef", "abcdef.0123456789abcdef");
        assert!(verify_detached("kubeconfig text", &jws, "abcdef", "abcdef.0123456789abcdef"));
        assert!(!verify_detached("kubeconfig text!", &jws, "abcdef", "abcdef.0123456789abcdef"));
        assert!(!verify_detached("kubeconfig text", &jws, "abcdef", "abcdef.0123456789abcdeX"));
    }
}
