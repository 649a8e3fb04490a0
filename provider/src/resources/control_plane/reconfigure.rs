//! Reconfiguration of a running control plane, as kubeadm's "Reconfiguring a kubeadm
//! cluster" does it: the new ClusterConfiguration uploaded (`kubeadm init phase
//! upload-config kubeadm`), then on one node at a time the API server certificate
//! re-issued when the SANs changed (the old one moved away first: kubeadm keeps an
//! existing certificate, and a renewal keeps its old SANs, kubeone#4114), the API server
//! manifest regenerated (`kubeadm init phase control-plane apiserver`: `--etcd-servers`),
//! and the node serving its certificate and ready before the next.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value as Json;

use super::certs;
use super::cluster::{run_redacted, Member};
use super::kubeadm::{self, PKI_DIR};
use super::model::ControlPlaneModel;
use crate::node::quote;

/// The per-node configuration the phases read.
pub const PHASE_CONFIG_PATH: &str = "/etc/kubernetes/strata/kubeadm-phase.yaml";
const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const WAIT: Duration = Duration::from_secs(120);

/// What a change of the ClusterConfiguration needs on the nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconfigure {
    /// Any change: the kubeadm-config ConfigMap is uploaded again.
    pub upload: bool,
    /// certSANs or controlPlaneEndpoint: apiserver.crt is issued again.
    pub certificate: bool,
    /// What the API server manifest is made from (etcd endpoints and files, extra flags).
    pub manifest: bool,
}

impl Reconfigure {
    pub fn any(&self) -> bool {
        self.upload || self.certificate || self.manifest
    }
}

/// Compares the ClusterConfigurations of `prior` and `m`; the version is the upgrade's.
pub fn needed(prior: &ControlPlaneModel, m: &ControlPlaneModel) -> Reconfigure {
    let (mut a, mut b) = (kubeadm::cluster_configuration(prior), kubeadm::cluster_configuration(m));
    for c in [&mut a, &mut b] {
        c["kubernetesVersion"] = Json::Null;
    }
    Reconfigure {
        upload: a != b,
        certificate: a["apiServer"]["certSANs"] != b["apiServer"]["certSANs"]
            || a["controlPlaneEndpoint"] != b["controlPlaneEndpoint"],
        manifest: a["etcd"] != b["etcd"]
            || a["apiServer"]["extraArgs"] != b["apiServer"]["extraArgs"]
            || a["imageRepository"] != b["imageRepository"],
    }
}

/// Rolls `what` through `members` (all joined), first node first.
pub async fn roll(members: &[Member<'_>], m: &ControlPlaneModel, what: &Reconfigure) -> anyhow::Result<()> {
    for (i, x) in members.iter().enumerate() {
        let config = kubeadm::phase_config(m, x.m);
        x.node.write_file(PHASE_CONFIG_PATH, config.as_bytes(), 0o600).await?;
        let f = quote(PHASE_CONFIG_PATH);
        if i == 0 && what.upload {
            let cmd = format!("kubeadm init phase upload-config kubeadm --config {f}");
            run_redacted(&x.node, "uploading the kubeadm configuration", &cmd, &[]).await?;
        }
        if !what.certificate && !what.manifest {
            // Only the stored configuration changed (e.g. certificateValidityPeriod).
            break;
        }
        let before = x.node.read_file(MANIFEST).await?;
        if what.certificate {
            // Moved aside, not deleted: put back if kubeadm fails, so the node keeps serving.
            let (crt, key) = (format!("{PKI_DIR}/apiserver.crt"), format!("{PKI_DIR}/apiserver.key"));
            let cmd = format!(
                "mv {c} {c}.old && mv {k} {k}.old && if kubeadm init phase certs apiserver --config {f}; then rm -f \
                 {c}.old {k}.old; else mv -f {c}.old {c}; mv -f {k}.old {k}; exit 1; fi",
                c = quote(&crt),
                k = quote(&key),
            );
            run_redacted(&x.node, "kubeadm init phase certs apiserver", &cmd, &[]).await?;
        }
        let cmd = format!("kubeadm init phase control-plane apiserver --config {f}");
        run_redacted(&x.node, "kubeadm init phase control-plane apiserver", &cmd, &[]).await?;
        // A new certificate with the same manifest: the kubelet would not restart the pod.
        if x.node.read_file(MANIFEST).await? == before {
            certs::restart_static_pods(&x.node, &["kube-apiserver"]).await?;
        }
        let cert = x.node.read_file(&format!("{PKI_DIR}/apiserver.crt")).await?.context("no apiserver.crt")?;
        let der = certs::cert_der(&String::from_utf8_lossy(&cert))?;
        if let Err(e) = certs::wait_serving(x.m.address(), &m.ca_cert, &der, WAIT).await {
            // E.g. an extra flag this API server does not know: the node serves again
            // with what it ran before, and the roll stops here.
            let restored = match &before {
                Some(b) if x.node.read_file(MANIFEST).await?.as_ref() != Some(b) => {
                    x.node.write_file(MANIFEST, b, 0o600).await?;
                    "; its previous API server manifest was put back"
                }
                _ => "",
            };
            return Err(e.context(format!(
                "control-plane node {} after its reconfiguration{restored}; the nodes after it were not changed",
                x.m.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> ControlPlaneModel {
        ControlPlaneModel {
            endpoint: "10.0.0.100:6443".into(),
            kubernetes_version: "v1.35.0".into(),
            etcd: super::super::model::EtcdModel {
                endpoints: vec!["https://10.0.0.1:2379".into(), "https://10.0.0.2:2379".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn each_change_reaches_what_it_needs() {
        let a = m();
        assert!(!needed(&a, &a).any());
        let mut b = a.clone();
        b.kubernetes_version = "v1.36.1".into();
        assert!(!needed(&a, &b).any(), "the version is the upgrade's");
        let mut b = a.clone();
        b.cert_sans = Some(vec!["api.example.org".into()]);
        assert_eq!(needed(&a, &b), Reconfigure { upload: true, certificate: true, manifest: false });
        let mut b = a.clone();
        b.endpoint = "10.0.0.101:6443".into();
        assert!(needed(&a, &b).certificate);
        let mut b = a.clone();
        b.etcd.endpoints = vec!["https://10.0.0.3:2379".into()];
        assert_eq!(needed(&a, &b), Reconfigure { upload: true, certificate: false, manifest: true });
        let mut b = a.clone();
        b.certificate_validity = Some("720h".into());
        assert_eq!(needed(&a, &b), Reconfigure { upload: true, certificate: false, manifest: false });
        let mut b = a.clone();
        b.api_server_extra_args = Some([("audit-log-maxage".to_string(), "7".to_string())].into());
        assert_eq!(needed(&a, &b), Reconfigure { upload: true, certificate: false, manifest: true });
        let mut c = a.clone();
        c.api_server_extra_args = Some(Default::default());
        assert!(!needed(&a, &c).any(), "no flags is no flags");
    }

    #[test]
    fn extra_flags_are_kubeadm_s_name_value_list() {
        let mut a = m();
        a.api_server_extra_args =
            Some([("profiling".to_string(), "false".to_string()), ("audit-log-maxage".into(), "7".into())].into());
        let c = kubeadm::cluster_configuration(&a);
        assert_eq!(
            c["apiServer"]["extraArgs"],
            serde_json::json!([{"name": "audit-log-maxage", "value": "7"}, {"name": "profiling", "value": "false"}])
        );
    }

    #[test]
    fn the_phase_configuration_is_the_node_s_without_a_token() {
        let mut a = m();
        a.cert_sans = Some(vec!["api.example.org".into()]);
        let n = super::super::model::NodeModel {
            name: "cp2".into(),
            address: Some("10.0.0.2".into()),
            ..Default::default()
        };
        let text = kubeadm::phase_config(&a, &n);
        assert!(text.contains("advertiseAddress: 10.0.0.2") && text.contains("name: cp2"), "{text}");
        assert!(text.contains("- api.example.org") && text.contains("https://10.0.0.2:2379"), "{text}");
        assert!(!text.contains("bootstrapTokens"), "{text}");
    }
}
