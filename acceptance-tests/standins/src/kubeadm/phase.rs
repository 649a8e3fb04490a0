//! `kubeadm init phase …` for reconfiguring a running control-plane node, as kubeadm's
//! "Reconfiguring a kubeadm cluster" does it: `upload-config kubeadm` (the cluster's
//! kubeadm-config), `certs apiserver` (an existing certificate is kept only when it is
//! signed by the CA and names every SAN the configuration asks for; move it away to get a
//! new one), `control-plane apiserver|controller-manager|scheduler|all` (the manifests).

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;

use super::files::{self, LocalApi};
use super::init;
use crate::apiclient::ApiClient;
use crate::kubeconfig::Kubeconfig;
use crate::pki;

#[derive(Subcommand, Debug)]
pub enum Phase {
    /// Certificate generation
    Certs {
        /// apiserver (the only one this stand-in implements)
        name: String,
        #[arg(long)]
        config: String,
    },
    /// Generate all static Pod manifest files necessary to establish the control plane
    ControlPlane {
        /// all, apiserver, controller-manager or scheduler
        name: String,
        #[arg(long)]
        config: String,
    },
    /// Upload the kubeadm and kubelet configuration to a ConfigMap
    UploadConfig {
        /// kubeadm (the only one this stand-in implements)
        name: String,
        #[arg(long)]
        config: String,
    },
}

fn local(i: &super::types::InitConfiguration) -> Result<LocalApi> {
    let advertise = if i.local_api_endpoint.advertise_address.is_empty() {
        init::detect_address()?
    } else {
        i.local_api_endpoint.advertise_address.clone()
    };
    Ok(LocalApi {
        node_name: i.node_registration.name.clone(),
        advertise_address: advertise,
        bind_port: i.local_api_endpoint.bind_port,
    })
}

pub async fn run(phase: Phase) -> Result<()> {
    let kubeadm = super::kubeadm_version()?;
    match phase {
        Phase::Certs { name, config } => {
            if name != "apiserver" {
                bail!("this stand-in implements only \"kubeadm init phase certs apiserver\", not {name:?}");
            }
            let (i, c, _) = init::load(&config, kubeadm)?;
            let local = local(&i)?;
            let d = &c.certificates_dir;
            let ca = pki::load_ca(&format!("{d}/ca.crt"), &format!("{d}/ca.key"))
                .context("error execution phase certs/apiserver: failure loading certificate authority \"ca\"")?;
            let path = format!("{d}/apiserver.crt");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let old = pki::cert_info(&text, &path)?;
                let want = files::apiserver_sans(&c, &local)?;
                if let Some(missing) = want.iter().find(|s| !old.sans.contains(s)) {
                    bail!(
                        "error execution phase certs/apiserver: certificate apiserver is invalid: x509: certificate is \
                         valid for {}, not {missing}",
                        old.sans.join(", ")
                    );
                }
                pki::check_pair(&path, &format!("{d}/apiserver.key"))?;
                println!("[certs] Using the existing \"apiserver\" certificate and key");
                return Ok(());
            }
            files::write_apiserver_cert(&c, &local, &ca)?;
            println!(
                "[certs] Generating \"apiserver\" certificate and key\n[certs] apiserver serving cert is signed for DNS \
                 names and IPs [{}]",
                files::apiserver_sans(&c, &local)?.join(" ")
            );
            Ok(())
        }
        Phase::ControlPlane { name, config } => {
            let (i, c, _) = init::load(&config, kubeadm)?;
            let only: Vec<&str> = match name.as_str() {
                "all" => vec!["kube-apiserver", "kube-controller-manager", "kube-scheduler"],
                "apiserver" => vec!["kube-apiserver"],
                "controller-manager" => vec!["kube-controller-manager"],
                "scheduler" => vec!["kube-scheduler"],
                other => bail!("unknown command {other:?} for \"kubeadm init phase control-plane\""),
            };
            println!("[control-plane] Creating static Pod manifests in \"{}/manifests\"", files::kdir());
            files::write_manifests_of(&c, &local(&i)?, &only)
        }
        Phase::UploadConfig { name, config } => {
            if name != "kubeadm" {
                bail!("this stand-in implements only \"kubeadm init phase upload-config kubeadm\", not {name:?}");
            }
            let (_, c, _) = init::load(&config, kubeadm)?;
            let admin = Kubeconfig::load(&format!("{}/admin.conf", files::kdir()))
                .map_err(|e| anyhow!("error execution phase upload-config/kubeadm: {e:#}"))?;
            let api = ApiClient::from_kubeconfig(&admin)?;
            init::upload_config(&api, &c).await.context("error execution phase upload-config/kubeadm")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, sans: &[&str]) -> String {
        let path = dir.join("kubeadm.yaml");
        let text = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: \
             10.0.0.1\n  bindPort: 6443\nnodeRegistration:\n  name: cp1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: \
             ClusterConfiguration\nkubernetesVersion: v1.35.0\ncontrolPlaneEndpoint: 10.0.0.100:6443\ncertificatesDir: \
             {}\napiServer:\n  certSANs: [{}]\n",
            dir.join("pki").display(),
            sans.join(", ")
        );
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into()
    }

    #[tokio::test]
    async fn a_new_san_needs_the_old_apiserver_certificate_moved_away() {
        std::env::set_var("STRATA_STANDIN_VERSION", "1.35.0");
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        pki::ensure_ca(
            &format!("{}/ca.crt", pki_dir.display()),
            &format!("{}/ca.key", pki_dir.display()),
            "kubernetes",
        )
        .unwrap();
        let certs = |sans: &[&str]| Phase::Certs { name: "apiserver".into(), config: config(dir.path(), sans) };
        run(certs(&["api.example.org"])).await.unwrap();
        let crt = format!("{}/apiserver.crt", pki_dir.display());
        let first = pki::cert_info(&pki::read(&crt).unwrap(), "first").unwrap();
        assert!(first.sans.contains(&"api.example.org".to_string()) && first.sans.contains(&"10.0.0.100".to_string()));
        // The same SANs: the certificate on disk is kept.
        run(certs(&["api.example.org"])).await.unwrap();
        assert_eq!(pki::cert_info(&pki::read(&crt).unwrap(), "kept").unwrap().not_after, first.not_after);
        // A new SAN: refused while the old certificate is there (kubeadm's validation) ...
        let e = run(certs(&["new.example.org"])).await.unwrap_err().to_string();
        assert!(e.contains("certificate apiserver is invalid") && e.contains("new.example.org"), "{e}");
        // ... and issued with exactly the configured SANs once it is moved away.
        std::fs::remove_file(&crt).unwrap();
        run(certs(&["new.example.org"])).await.unwrap();
        let new = pki::cert_info(&pki::read(&crt).unwrap(), "new").unwrap();
        assert!(new.sans.contains(&"new.example.org".to_string()));
        assert!(!new.sans.contains(&"api.example.org".to_string()), "the old SAN is not kept: {:?}", new.sans);
    }
}
