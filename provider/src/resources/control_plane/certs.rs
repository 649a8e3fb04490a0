//! The certificates kubeadm manages on a control-plane node, as `kubeadm certs
//! check-expiration` lists them with external etcd (apiserver, apiserver-kubelet-client,
//! front-proxy-client and the client certificates of admin.conf, super-admin.conf,
//! controller-manager.conf, scheduler.conf), plus the kubelet's client certificate, and
//! their renewal one node at a time.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine;
use time::OffsetDateTime;

use super::cluster::{run_redacted, Member};
use super::kubeadm::{self, PKI_DIR};
use super::model::ControlPlaneModel;
use crate::node::{quote, Node};

pub const LEAF_CERTS: [&str; 3] = ["apiserver", "apiserver-kubelet-client", "front-proxy-client"];
pub const KUBECONFIGS: [&str; 4] = ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"];
/// The kubelet's client certificate (and key), rotated by the kubelet itself
/// (`rotateCertificates: true`), never by `kubeadm certs renew`.
pub const KUBELET_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
/// The kubelet's configuration kubeadm writes (`rotateCertificates` is read from it).
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
const KUBELET_PKI: &str = "/var/lib/kubelet/pki";
/// The ClusterConfiguration `kubeadm certs renew --config` reads (certificateValidityPeriod).
pub const RENEW_CONFIG_PATH: &str = "/etc/kubernetes/strata/kubeadm-cluster.yaml";
const STATIC_PODS: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];
/// The annotation whose change makes the kubelet restart a static pod.
const RESTART_ANNOTATION: &str = "strata.dev/certificates-renewed-at";
const RESTART_WAIT: Duration = Duration::from_secs(120);

pub fn cert_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    // The first CERTIFICATE block: the kubelet's file holds the key too.
    for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.map_err(|e| anyhow!("not PEM: {e}"))?;
        if p.label == "CERTIFICATE" {
            return Ok(p.contents);
        }
    }
    bail!("no certificate in the PEM text")
}

/// When a PEM certificate expires.
pub fn expiry(pem: &str) -> anyhow::Result<OffsetDateTime> {
    let der = cert_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    Ok(cert.validity().not_after.to_datetime())
}

fn kubeconfig_cert(text: &str) -> anyhow::Result<String> {
    let k: serde_json::Value = serde_yaml_ng::from_str(text)?;
    let data = k["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .ok_or_else(|| anyhow!("no client-certificate-data"))?;
    Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim())?)?)
}

/// (name as check-expiration shows it, expiry) of each certificate found on `node`.
pub async fn expiries(node: &Node) -> anyhow::Result<Vec<(String, OffsetDateTime)>> {
    let mut out = Vec::new();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    for name in LEAF_CERTS {
        let path = format!("{PKI_DIR}/{name}.crt");
        if let Some(b) = node.read_file(&path).await? {
            out.push((name.to_string(), expiry(&text(b)).with_context(|| format!("{path} on {}", node.label()))?));
        }
    }
    for name in KUBECONFIGS {
        let path = format!("/etc/kubernetes/{name}");
        if let Some(b) = node.read_file(&path).await? {
            let pem = kubeconfig_cert(&text(b)).with_context(|| format!("{path} on {}", node.label()))?;
            out.push((name.to_string(), expiry(&pem)?));
        }
    }
    if let Some(at) = kubelet_client_expiry(node).await? {
        out.push(("kubelet-client".into(), at));
    }
    Ok(out)
}

/// When the kubelet's client certificate expires: the one in its certificate store, or
/// the one embedded in kubelet.conf when the kubelet has no store (rotation off).
pub async fn kubelet_client_expiry(node: &Node) -> anyhow::Result<Option<OffsetDateTime>> {
    if let Some(b) = node.read_file(KUBELET_CLIENT).await? {
        let at =
            expiry(&String::from_utf8_lossy(&b)).with_context(|| format!("{KUBELET_CLIENT} on {}", node.label()))?;
        return Ok(Some(at));
    }
    let Some(b) = node.read_file(KUBELET_KUBECONFIG).await? else { return Ok(None) };
    match kubeconfig_cert(&String::from_utf8_lossy(&b)) {
        Ok(pem) => Ok(Some(expiry(&pem).with_context(|| format!("{KUBELET_KUBECONFIG} on {}", node.label()))?)),
        // A kubeconfig pointing at files that are not there: nothing to read.
        Err(_) => Ok(None),
    }
}

/// Whether the kubelet rotates its own client certificate (`rotateCertificates` in
/// kubeadm's KubeletConfiguration, on by default); None without that file.
pub async fn kubelet_rotates(node: &Node) -> anyhow::Result<Option<bool>> {
    let Some(b) = node.read_file(KUBELET_CONFIG).await? else { return Ok(None) };
    let v: serde_json::Value =
        serde_yaml_ng::from_slice(&b).with_context(|| format!("{KUBELET_CONFIG} on {}", node.label()))?;
    Ok(Some(v["rotateCertificates"] == serde_json::Value::Bool(true)))
}

/// Re-issues the kubelet's client certificate on a control-plane node, as kubeadm's
/// documented repair does (`kubeadm kubeconfig user --org system:nodes --client-name
/// system:node:NAME`, kubeadm#2054): `kubeadm certs renew` leaves it to the kubelet, which
/// rotates it only past 70-90% of its lifetime, and never with rotation off. Saved the
/// way the kubelet's store does (a timestamped file, `kubelet-client-current.pem` switched
/// to it in one rename), kubelet.conf pointed at the store (kubeadm's kubelet-finalize),
/// and the kubelet restarted to load it. The static pods keep running meanwhile.
async fn reissue_kubelet_client(node: &Node, node_name: &str, m: &ControlPlaneModel) -> anyhow::Result<()> {
    let validity = super::validate::certificate_validity(&m.certificate_validity()).map_err(|e| anyhow!(e))?;
    let days = (validity.as_secs() / 86_400).max(1) as i64;
    let leaf =
        crate::pki::issue_client(&m.ca_cert, &m.ca_key, &format!("system:node:{node_name}"), &["system:nodes"], days)?;
    let stamp = OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year]-[month]-[day]-[hour]-[minute]-[second]"))?;
    let file = format!("{KUBELET_PKI}/kubelet-client-{stamp}.pem");
    node.write_file(&file, format!("{}{}", leaf.cert_pem, leaf.key_pem).as_bytes(), 0o600).await?;
    let link = format!(
        "ln -sfn {f} {tmp} && mv -Tf {tmp} {cur}",
        f = quote(&file),
        tmp = quote(&format!("{KUBELET_CLIENT}.tmp")),
        cur = quote(KUBELET_CLIENT)
    );
    node.run_ok("switching the kubelet's client certificate", &link).await?;
    if let Some(b) = node.read_file(KUBELET_KUBECONFIG).await? {
        let mut k: serde_json::Value =
            serde_yaml_ng::from_slice(&b).with_context(|| format!("{KUBELET_KUBECONFIG} on {}", node.label()))?;
        let embedded = k["users"][0]["user"].get("client-certificate-data").is_some();
        if embedded {
            k["users"][0]["user"] =
                serde_json::json!({"client-certificate": KUBELET_CLIENT, "client-key": KUBELET_CLIENT});
            node.write_file(KUBELET_KUBECONFIG, serde_yaml_ng::to_string(&k)?.as_bytes(), 0o600).await?;
        }
    }
    node.run_ok("restarting the kubelet", "systemctl restart kubelet && systemctl is-active --quiet kubelet").await?;
    Ok(())
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Whether certificates expiring at `at` are due for renewal `renew_before_days` ahead.
pub fn due(at: OffsetDateTime, renew_before_days: i64, now: OffsetDateTime) -> bool {
    at - now < time::Duration::days(renew_before_days)
}

/// Rewrites the static pod manifests with a new annotation: the kubelet restarts a
/// static pod whose manifest changed, so the components load the renewed files.
pub async fn restart_static_pods(node: &Node, pods: &[&str]) -> anyhow::Result<()> {
    let stamp = rfc3339(OffsetDateTime::now_utc());
    for pod in pods {
        let path = format!("/etc/kubernetes/manifests/{pod}.yaml");
        let Some(b) = node.read_file(&path).await? else { continue };
        let mut v: serde_json::Value = serde_yaml_ng::from_slice(&b).with_context(|| path.clone())?;
        let meta =
            v.get_mut("metadata").and_then(|m| m.as_object_mut()).ok_or_else(|| anyhow!("{path}: no metadata"))?;
        let ann = meta.entry("annotations").or_insert_with(|| serde_json::json!({}));
        ann[RESTART_ANNOTATION] = serde_json::Value::String(stamp.clone());
        node.write_file(&path, serde_yaml_ng::to_string(&v)?.as_bytes(), 0o600).await?;
    }
    Ok(())
}

/// Waits until the API server on `address` serves `want_der` and answers `/readyz`.
pub async fn wait_serving(address: &str, ca_pem: &str, want_der: &[u8], limit: Duration) -> anyhow::Result<()> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .build()?;
    let host = if address.contains(':') { format!("[{address}]") } else { address.to_string() };
    let url = format!("https://{host}:6443/readyz");
    let deadline = tokio::time::Instant::now() + limit;
    let mut last: String;
    loop {
        match http.get(&url).send().await {
            Ok(r) => {
                let served = r
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .and_then(|t| t.peer_certificate().map(<[u8]>::to_vec));
                if served.as_deref() != Some(want_der) {
                    last = "still serving the old certificate".into();
                } else if r.status().is_success() {
                    return Ok(());
                } else {
                    last = format!("/readyz answered {}", r.status());
                }
            }
            Err(e) => last = e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{url}: {last} after {}s", limit.as_secs());
        }
        crate::wait::sleep("apiserver_new_certificate", Duration::from_millis(250)).await;
    }
}

/// `kubeadm certs renew all` on each node in turn, its static pods restarted and its API
/// server serving the new certificate and ready before the next node.
pub async fn renew(members: &[Member<'_>], m: &ControlPlaneModel) -> anyhow::Result<()> {
    let config = kubeadm::cluster_config_file(m);
    for x in members {
        x.node.write_file(RENEW_CONFIG_PATH, config.as_bytes(), 0o600).await?;
        let cmd = format!("kubeadm certs renew all --config {}", quote(RENEW_CONFIG_PATH));
        run_redacted(&x.node, "kubeadm certs renew", &cmd, &[]).await?;
        let cert = x
            .node
            .read_file(&format!("{PKI_DIR}/apiserver.crt"))
            .await?
            .ok_or_else(|| anyhow!("{}: no apiserver.crt after the renewal", x.m.name))?;
        let der = cert_der(&String::from_utf8_lossy(&cert))?;
        restart_static_pods(&x.node, &STATIC_PODS).await?;
        wait_serving(x.m.address(), &m.ca_cert, &der, RESTART_WAIT)
            .await
            .with_context(|| format!("control-plane node {} after renewing its certificates", x.m.name))?;
        let now = OffsetDateTime::now_utc();
        if kubelet_client_expiry(&x.node).await?.is_some_and(|at| due(at, m.certificates_renew_before_days(), now)) {
            reissue_kubelet_client(&x.node, &x.m.name, m)
                .await
                .with_context(|| format!("re-issuing the kubelet's client certificate on {}", x.m.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_within_the_window() {
        let now = OffsetDateTime::now_utc();
        assert!(due(now + time::Duration::days(29), 30, now));
        assert!(!due(now + time::Duration::days(31), 30, now));
        assert!(due(now - time::Duration::days(1), 0, now), "expired");
    }

    #[test]
    fn expiry_reads_the_certificate_of_a_combined_pem() {
        let ca = crate::pki::new_ca("kubernetes", crate::pki::KeyAlgorithm::EcdsaP256, 3).unwrap();
        let both = format!("{}{}", ca.cert_pem, ca.key_pem);
        let days = (expiry(&both).unwrap() - OffsetDateTime::now_utc()).whole_days();
        assert!((2..=3).contains(&days), "{days}");
        assert_eq!(parse_rfc3339(&rfc3339(expiry(&ca.cert_pem).unwrap())), Some(expiry(&ca.cert_pem).unwrap()));
    }
}
