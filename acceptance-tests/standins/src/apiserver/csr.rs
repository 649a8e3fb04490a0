//! The kube-controller-manager's CSR approver and signer for kubelet client certificates
//! (`kubernetes.io/kube-apiserver-client-kubelet`), done inline when the CSR is created:
//! the request must be `O=system:nodes, CN=system:node:<name>` as the real approver
//! requires, and is signed with the cluster CA.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

use super::auth::User;
use super::State;

pub fn approve_and_sign(state: &State, user: &User, csr: &mut Value) -> Result<(), String> {
    let signer = csr["spec"]["signerName"].as_str().unwrap_or_default().to_string();
    if signer != "kubernetes.io/kube-apiserver-client-kubelet" {
        return Ok(()); // stays pending: no controller signs other signers here
    }
    let req = csr["spec"]["request"].as_str().ok_or("spec.request: Required value")?;
    let pem =
        String::from_utf8(B64.decode(req).map_err(|e| format!("spec.request: {e}"))?).map_err(|e| e.to_string())?;
    let der = crate::pki::pem_der(&pem, &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"], "spec.request")
        .map_err(|e| e.to_string())?;
    let (_, parsed) = X509CertificationRequest::from_der(&der).map_err(|e| format!("spec.request: {e}"))?;
    parsed.verify_signature().map_err(|e| format!("spec.request: bad signature: {e}"))?;
    let subject = &parsed.certification_request_info.subject;
    let cn = subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string();
    let orgs: Vec<&str> = subject.iter_organization().filter_map(|o| o.as_str().ok()).collect();
    if orgs != ["system:nodes"] || !cn.starts_with("system:node:") {
        return Err(format!("CSR subject must be O=system:nodes, CN=system:node:<name>; got CN={cn:?} O={orgs:?}"));
    }
    if !(user.is_bootstrap() || user.name == cn) {
        return Err(format!("user {:?} may not request a client certificate for {cn:?}", user.name));
    }
    let ca = state.ca.as_ref().ok_or("no cluster CA key beside --client-ca-file to sign with")?;
    let rc = rcgen::CertificateSigningRequestParams::from_der(&der.clone().into())
        .map_err(|e| format!("spec.request: {e}"))?;
    let cert = crate::pki::issue_for(ca, &rc.public_key, &cn, &["system:nodes"], &[], crate::pki::Usage::Client)
        .map_err(|e| e.to_string())?;
    csr["spec"]["username"] = json!(user.name);
    csr["spec"]["groups"] = json!(user.groups);
    csr["status"] = json!({
        "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
            "message": "Auto approving kubelet client certificate after SubjectAccessReview."}],
        "certificate": B64.encode(cert),
    });
    Ok(())
}
