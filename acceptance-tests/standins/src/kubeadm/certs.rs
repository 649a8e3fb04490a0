//! `kubeadm certs renew` and `kubeadm certs check-expiration` as kubeadm does them with
//! external etcd: the leaf certificates of `/etc/kubernetes/pki` (apiserver,
//! apiserver-kubelet-client, front-proxy-client) and the client certificates embedded in
//! admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf. A renewal
//! keeps what the old certificate says (subject, SANs: kubeadm's certToConfig, which is
//! why a new certSAN needs `init phase certs apiserver`), with a new key and
//! `certificateValidityPeriod`; kubelet.conf is left to the kubelet's own rotation.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::Subcommand;

use super::files::{self, kdir};
use super::types::ClusterConfiguration;
use super::{config, upgrade};
use crate::apiclient::ApiClient;
use crate::kubeconfig::Kubeconfig;
use crate::pki::{self, Usage};

#[derive(Subcommand, Debug)]
pub enum CertsCmd {
    /// Check certificates expiration for a Kubernetes cluster
    CheckExpiration {
        #[arg(long = "cert-dir")]
        cert_dir: Option<String>,
        #[arg(long)]
        config: Option<String>,
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Renew certificates for a Kubernetes cluster
    Renew {
        /// all, or one of apiserver, apiserver-kubelet-client, front-proxy-client,
        /// admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf
        name: String,
        #[arg(long = "cert-dir")]
        cert_dir: Option<String>,
        #[arg(long)]
        config: Option<String>,
    },
}

/// What kubeadm manages with external etcd: (name, CA, what kubeadm calls it).
const CERTS: [(&str, &str, &str); 3] = [
    ("apiserver", "ca", "certificate for serving the Kubernetes API"),
    ("apiserver-kubelet-client", "ca", "certificate for the API server to connect to kubelet"),
    ("front-proxy-client", "front-proxy-ca", "certificate for the front proxy client"),
];
const KUBECONFIGS: [(&str, &str); 4] = [
    ("admin.conf", "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself"),
    ("controller-manager.conf", "certificate embedded in the kubeconfig file for the controller manager to use"),
    ("scheduler.conf", "certificate embedded in the kubeconfig file for the scheduler manager to use"),
    ("super-admin.conf", "certificate embedded in the kubeconfig file for the super-admin"),
];

/// The ClusterConfiguration: from `--config`, else the cluster's kubeadm-config, else
/// kubeadm's defaults (with kubeadm's warning).
async fn load_config(path: Option<&str>, cmd: &str) -> Result<ClusterConfiguration> {
    let kubeadm = super::kubeadm_version()?;
    if let Some(p) = path {
        let file = config::load_file(p)?;
        super::validate_file(&file, kubeadm)?;
        let mut c = file.cluster.unwrap_or_else(|| config::default_cluster(true, kubeadm));
        config::set_cluster_defaults(&mut c, kubeadm);
        return Ok(c);
    }
    println!("[{cmd}] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    let from_cluster = async {
        let api = ApiClient::from_kubeconfig(&upgrade::admin_or_kubelet()?)?;
        upgrade::cluster_config(&api, kubeadm).await
    };
    match from_cluster.await {
        Ok(c) => Ok(c),
        Err(e) => {
            println!("[{cmd}] Error reading configuration from the Cluster. Falling back to default configuration");
            eprintln!("W {e:#}");
            let mut c = config::default_cluster(true, kubeadm);
            config::set_cluster_defaults(&mut c, kubeadm);
            Ok(c)
        }
    }
}

fn b64(s: &str) -> Result<String> {
    Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s.trim())?)?)
}

/// The client certificate embedded in a kubeconfig.
fn kubeconfig_cert(path: &str) -> Result<String> {
    let k = Kubeconfig::load(path)?;
    let u = k.users.first().ok_or_else(|| anyhow!("{path}: no user"))?;
    b64(u.user.client_certificate_data.as_deref().ok_or_else(|| anyhow!("{path}: no embedded client certificate"))?)
}

struct Entry {
    name: String,
    ca: String,
    /// None: the file is missing.
    not_after: Option<::time::OffsetDateTime>,
    external: bool,
}

fn entries(cert_dir: &str) -> Vec<Entry> {
    let ca_key_missing = |ca: &str| !std::path::Path::new(&format!("{cert_dir}/{ca}.key")).exists();
    let mut out = Vec::new();
    for (name, ca, _) in CERTS {
        let path = format!("{cert_dir}/{name}.crt");
        let not_after = pki::read(&path).ok().and_then(|t| pki::cert_info(&t, &path).ok()).map(|i| i.not_after);
        out.push(Entry { name: name.into(), ca: ca.into(), not_after, external: ca_key_missing(ca) });
    }
    for (name, _) in KUBECONFIGS {
        let path = format!("{}/{name}", kdir());
        let not_after = kubeconfig_cert(&path).ok().and_then(|t| pki::cert_info(&t, &path).ok()).map(|i| i.not_after);
        out.push(Entry { name: name.into(), ca: "ca".into(), not_after, external: ca_key_missing("ca") });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Go's `duration.ShortHumanDuration`, as kubeadm prints the residual time.
pub fn short_human(secs: i64) -> String {
    match secs {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 24 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 24 * 3600 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// kubeadm's `Jan 02, 2006 15:04 MST`.
fn expires(t: ::time::OffsetDateTime) -> String {
    let f = ::time::format_description::parse_borrowed::<2>("[month repr:short] [day], [year] [hour]:[minute] UTC")
        .expect("a fixed format description");
    t.to_offset(::time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

fn check_expiration(cert_dir: &str, output: Option<&str>) -> Result<()> {
    let now = ::time::OffsetDateTime::now_utc();
    let list = entries(cert_dir);
    let cas: Vec<(&str, Option<::time::OffsetDateTime>, bool)> = ["ca", "front-proxy-ca"]
        .iter()
        .map(|ca| {
            let path = format!("{cert_dir}/{ca}.crt");
            let t = pki::read(&path).ok().and_then(|t| pki::cert_info(&t, &path).ok()).map(|i| i.not_after);
            (*ca, t, !std::path::Path::new(&format!("{cert_dir}/{ca}.key")).exists())
        })
        .collect();
    let rfc =
        |t: ::time::OffsetDateTime| t.format(&::time::format_description::well_known::Rfc3339).unwrap_or_default();
    match output {
        Some("json") => {
            // output.kubeadm.k8s.io/v1alpha3 CertificateExpirationList.
            let certs: Vec<_> = list
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.name,
                        "expirationDate": e.not_after.map(rfc),
                        "residualTime": e.not_after.map(|t| (t - now).whole_nanoseconds() as i64),
                        "certificateAuthorityName": e.ca,
                        "externallyManaged": e.external,
                        "missing": e.not_after.is_none(),
                    })
                })
                .collect();
            let authorities: Vec<_> = cas
                .iter()
                .map(|(n, t, ext)| {
                    serde_json::json!({
                        "name": n, "expirationDate": t.map(rfc),
                        "residualTime": t.map(|t| (t - now).whole_nanoseconds() as i64),
                        "externallyManaged": ext, "missing": t.is_none(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "kind": "CertificateExpirationList",
                    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                    "certificates": certs,
                    "certificateAuthorities": authorities,
                }))?
            );
            return Ok(());
        }
        None | Some("text") => {}
        Some(o) => bail!("error: invalid output format: {o}"),
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("\nCERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED");
    for e in &list {
        match e.not_after {
            Some(t) => println!(
                "{:<26} {:<24} {:<15} {:<23} {}",
                e.name,
                expires(t),
                short_human((t - now).whole_seconds()),
                e.ca,
                yes_no(e.external)
            ),
            None => println!("!MISSING! {}", e.name),
        }
    }
    println!("\nCERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED");
    for (n, t, ext) in cas {
        match t {
            Some(t) => {
                println!("{n:<23} {:<24} {:<15} {}", expires(t), short_human((t - now).whole_seconds()), yes_no(ext))
            }
            None => println!("!MISSING! {n}"),
        }
    }
    Ok(())
}

/// Renews one leaf certificate in `cert_dir` as the old one says, signed by its CA.
fn renew_cert(name: &str, ca: &str, cert_dir: &str, validity: std::time::Duration) -> Result<()> {
    let path = format!("{cert_dir}/{name}.crt");
    let old = pki::cert_info(&pki::read(&path)?, &path)?;
    let ca = pki::load_ca(&format!("{cert_dir}/{ca}.crt"), &format!("{cert_dir}/{ca}.key"))
        .with_context(|| format!("failed to renew certificate {name}: the CA {ca} cannot sign"))?;
    let orgs: Vec<&str> = old.orgs.iter().map(String::as_str).collect();
    let usage = if old.server { Usage::Server } else { Usage::Client };
    let leaf = pki::issue_valid(&ca, &old.cn, &orgs, &old.sans, usage, validity)?;
    pki::write_file(&path, &leaf.cert_pem, 0o644)?;
    pki::write_file(format!("{cert_dir}/{name}.key"), &leaf.key_pem, 0o600)
}

fn renew_kubeconfig(name: &str, cert_dir: &str, validity: std::time::Duration) -> Result<()> {
    let path = format!("{}/{name}", kdir());
    let mut k = Kubeconfig::load(&path)?;
    let old = pki::cert_info(&kubeconfig_cert(&path)?, &path)?;
    let ca = pki::load_ca(&format!("{cert_dir}/ca.crt"), &format!("{cert_dir}/ca.key"))?;
    let orgs: Vec<&str> = old.orgs.iter().map(String::as_str).collect();
    let leaf = pki::issue_valid(&ca, &old.cn, &orgs, &[], Usage::Client, validity)?;
    let user = k.users.first_mut().ok_or_else(|| anyhow!("{path}: no user"))?;
    user.user = Kubeconfig::cert_user(&leaf.cert_pem, &leaf.key_pem);
    pki::write_file(&path, &k.to_yaml(), 0o600)
}

fn renew(c: &ClusterConfiguration, name: &str, cert_dir: &str) -> Result<()> {
    let validity = files::validity(c)?;
    let known = CERTS.iter().map(|(n, _, _)| *n).chain(KUBECONFIGS.iter().map(|(n, _)| *n)).collect::<Vec<_>>();
    if name != "all" && !known.contains(&name) {
        bail!("unknown command {name:?} for \"kubeadm certs renew\"");
    }
    for (n, ca, what) in CERTS {
        if name != "all" && name != n {
            continue;
        }
        if !std::path::Path::new(&format!("{cert_dir}/{n}.crt")).exists() {
            if name == n {
                bail!("{what} does not exist: {cert_dir}/{n}.crt");
            }
            continue;
        }
        renew_cert(n, ca, cert_dir, validity).with_context(|| format!("failed to renew {what}"))?;
        println!("{what} renewed");
    }
    for (n, what) in KUBECONFIGS {
        if name != "all" && name != n {
            continue;
        }
        if !std::path::Path::new(&format!("{}/{n}", kdir())).exists() {
            if name == n {
                bail!("{what} does not exist: {}/{n}", kdir());
            }
            continue;
        }
        renew_kubeconfig(n, cert_dir, validity).with_context(|| format!("failed to renew {what}"))?;
        println!("{what} renewed");
    }
    if name == "all" {
        println!(
            "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, \
             kube-scheduler and etcd, so that they can use the new certificates."
        );
    }
    Ok(())
}

/// renewCertsByComponent (`cmd/kubeadm/app/phases/upgrade/staticpods.go`), what `kubeadm
/// upgrade apply|node` renews before it upgrades each static pod (unless
/// `--certificate-renewal=false`), with external etcd: for kube-apiserver the apiserver,
/// apiserver-kubelet-client and front-proxy-client certificates, for the controller
/// manager and the scheduler the certificate in their kubeconfig. Each as `certs renew`
/// does it (same subject and SANs, signed by the CA on disk); a file that is not there is
/// skipped.
pub fn renew_for_upgrade(c: &ClusterConfiguration) -> Result<Vec<&'static str>> {
    let validity = files::validity(c)?;
    let dir = &c.certificates_dir;
    let mut renewed = Vec::new();
    for (n, ca, _) in CERTS {
        if std::path::Path::new(&format!("{dir}/{n}.crt")).exists() {
            println!("[upgrade/staticpods] Renewing {n} certificate");
            renew_cert(n, ca, dir, validity).with_context(|| format!("failed to renew certificate {n}"))?;
            renewed.push(n);
        }
    }
    for n in ["controller-manager.conf", "scheduler.conf"] {
        if std::path::Path::new(&format!("{}/{n}", kdir())).exists() {
            println!("[upgrade/staticpods] Renewing {n} certificate");
            renew_kubeconfig(n, dir, validity).with_context(|| format!("failed to renew certificate {n}"))?;
            renewed.push(n);
        }
    }
    Ok(renewed)
}

pub async fn run(cmd: CertsCmd) -> Result<()> {
    match cmd {
        CertsCmd::CheckExpiration { cert_dir, config, output } => {
            let c = load_config(config.as_deref(), "check-expiration").await?;
            let dir = cert_dir.unwrap_or_else(|| c.certificates_dir.clone());
            check_expiration(&dir, output.as_deref())
        }
        CertsCmd::Renew { name, cert_dir, config } => {
            let c = load_config(config.as_deref(), "renew").await?;
            let dir = cert_dir.unwrap_or_else(|| c.certificates_dir.clone());
            renew(&c, &name, &dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_is_go_short_human_duration() {
        assert_eq!(short_human(-5), "<invalid>");
        assert_eq!(short_human(30), "30s");
        assert_eq!(short_human(59 * 60 + 59), "59m");
        assert_eq!(short_human(23 * 3600), "23h");
        assert_eq!(short_human(364 * 86400 + 3600), "364d");
        assert_eq!(short_human(3650 * 86400), "10y");
    }

    fn hours_left(t: ::time::OffsetDateTime) -> i64 {
        (t - ::time::OffsetDateTime::now_utc()).whole_hours()
    }

    #[test]
    fn validity_is_honoured_and_renewal_keeps_subject_and_sans_with_new_keys() {
        let root = tempfile::tempdir().unwrap();
        // The only test that moves kubeadm's /etc/kubernetes (kdir) under a root.
        std::env::set_var("STRATA_STANDINS_ROOT", root.path());
        let mut c = config::default_cluster(true, crate::version::KubeVersion::parse("v1.35.0").unwrap());
        c.certificates_dir = root.path().join("pki").to_string_lossy().into();
        c.control_plane_endpoint = "10.0.0.100:6443".into();
        c.api_server.cert_sans = vec!["api.example.org".into()];
        c.certificate_validity_period = Some("48h".into());
        let local = files::LocalApi { node_name: "cp1".into(), advertise_address: "10.0.0.1".into(), bind_port: 6443 };
        files::write_certs(&c, &local, true).unwrap();
        files::write_kubeconfigs(&c, &local, true).unwrap();
        let dir = c.certificates_dir.clone();
        let list = entries(&dir);
        let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "admin.conf",
                "apiserver",
                "apiserver-kubelet-client",
                "controller-manager.conf",
                "front-proxy-client",
                "scheduler.conf",
                "super-admin.conf"
            ]
        );
        for e in &list {
            let h = hours_left(e.not_after.unwrap());
            assert!((46..=48).contains(&h), "{}: {h}h left, want 48h", e.name);
            assert!(!e.external);
        }
        let read = |n: &str| pki::read(&format!("{dir}/{n}")).unwrap();
        let (old_cert, old_key) = (read("apiserver.crt"), read("apiserver.key"));
        let old_admin = kubeconfig_cert(&format!("{}/admin.conf", kdir())).unwrap();
        // A renewal with a longer period; the SAN list of the old certificate is kept even
        // if the configuration changed (kubeadm's certToConfig).
        c.certificate_validity_period = Some("96h".into());
        c.api_server.cert_sans = vec!["other.example.org".into()];
        renew(&c, "all", &dir).unwrap();
        for e in entries(&dir) {
            let h = hours_left(e.not_after.unwrap());
            assert!((94..=96).contains(&h), "{}: {h}h left after renewal, want 96h", e.name);
        }
        assert_ne!(read("apiserver.crt"), old_cert);
        assert_ne!(read("apiserver.key"), old_key, "a new key");
        pki::check_pair(&format!("{dir}/apiserver.crt"), &format!("{dir}/apiserver.key")).unwrap();
        let (old, new) =
            (pki::cert_info(&old_cert, "old").unwrap(), pki::cert_info(&read("apiserver.crt"), "new").unwrap());
        assert_eq!(new.sans, old.sans);
        assert!(
            new.sans.contains(&"api.example.org".to_string()) && !new.sans.contains(&"other.example.org".to_string())
        );
        assert!(new.server && new.cn == "kube-apiserver");
        let admin = pki::cert_info(&kubeconfig_cert(&format!("{}/admin.conf", kdir())).unwrap(), "admin").unwrap();
        assert_ne!(kubeconfig_cert(&format!("{}/admin.conf", kdir())).unwrap(), old_admin);
        assert_eq!(
            (admin.cn.as_str(), admin.orgs.clone()),
            ("kubernetes-admin", vec!["kubeadm:cluster-admins".to_string()])
        );
        assert!(renew(&c, "etcd-server", &dir).is_err(), "not managed with external etcd");

        // staticpods.go renewCertsByComponent (kubeadm upgrade apply|node): the apiserver's
        // three certificates and the controller manager's and scheduler's kubeconfigs are
        // renewed; admin.conf is not.
        let before: Vec<String> = ["apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt"]
            .iter()
            .map(|n| read(n))
            .collect();
        let conf = |n: &str| kubeconfig_cert(&format!("{}/{n}", kdir())).unwrap();
        let (cm, sched, admin) = (conf("controller-manager.conf"), conf("scheduler.conf"), conf("admin.conf"));
        let renewed = renew_for_upgrade(&c).unwrap();
        assert_eq!(
            renewed,
            vec![
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-client",
                "controller-manager.conf",
                "scheduler.conf"
            ]
        );
        for (n, b) in ["apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt"].iter().zip(&before) {
            assert_ne!(&read(n), b, "{n} renewed");
        }
        assert_eq!(pki::cert_info(&read("apiserver.crt"), "renewed").unwrap().sans, old.sans);
        assert_ne!(conf("controller-manager.conf"), cm);
        assert_ne!(conf("scheduler.conf"), sched);
        assert_eq!(conf("admin.conf"), admin, "admin.conf is not renewed by an upgrade");
    }
}
