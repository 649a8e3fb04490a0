//! `kubeadm upgrade plan|apply|node`: kubeadm's version policy (one minor at a time, no
//! downgrade, never past kubeadm's own version), then the manifests get the new image
//! tag and the cluster's kubeadm-config the new version.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::config;
use super::files;
use super::types::ClusterConfiguration;
use crate::apiclient::ApiClient;
use crate::kubeconfig::Kubeconfig;
use crate::version::KubeVersion;

#[derive(Subcommand, Debug)]
pub enum UpgradeCmd {
    /// Check which versions are available to upgrade to
    Plan,
    /// Upgrade your Kubernetes cluster to the specified version
    Apply {
        version: String,
        #[arg(short = 'y', long = "yes")]
        yes: bool,
        #[arg(short = 'f', long = "force")]
        force: bool,
        #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
        #[arg(long)]
        config: Option<String>,
        /// Perform the renewal of certificates used by component changed during upgrades.
        #[arg(long = "certificate-renewal", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        certificate_renewal: bool,
    },
    /// Upgrade commands for a node in the cluster
    Node {
        #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
        /// Perform the renewal of certificates used by component changed during upgrades.
        #[arg(long = "certificate-renewal", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        certificate_renewal: bool,
    },
}

/// TEST HOOK (not kubeadm): while this file exists on a node, `kubeadm upgrade node`
/// there fails before it changes anything, with the file's text as its message, so a
/// test can stop an upgrade roll at a chosen node.
pub const FAIL_UPGRADE_NODE: &str = "/etc/strata-standins/fail-upgrade-node";

fn fail_on_demand() -> Result<()> {
    let path = std::env::var("STRATA_STANDINS_ROOT").map(|r| format!("{r}{FAIL_UPGRADE_NODE}"));
    let path = path.unwrap_or_else(|_| FAIL_UPGRADE_NODE.to_string());
    match std::fs::read_to_string(&path) {
        Ok(text) => bail!("[upgrade] FATAL: {} (test hook {FAIL_UPGRADE_NODE})", text.trim()),
        Err(_) => Ok(()),
    }
}

/// What EnforceVersionPolicies found (cmd/kubeadm/app/phases/upgrade/policy.go).
#[derive(Debug, Default, PartialEq)]
pub struct SkewErrors {
    /// Refused whatever the flags.
    pub mandatory: Vec<String>,
    /// Refused unless `--force`.
    pub skippable: Vec<String>,
}

/// kubeadm's EnforceVersionPolicies for released versions: below MinimumControlPlaneVersion
/// (kubeadm's minor - 1), more than one minor up or down, or a newer minor than kubeadm
/// are mandatory; a newer patch than kubeadm, a kubeadm of a newer minor than the target
/// and kubelets more than one minor behind the target are skippable with `--force`.
/// Re-applying the cluster's version and a one-minor downgrade pass.
pub fn version_policy(
    cluster: KubeVersion,
    target: KubeVersion,
    kubeadm: KubeVersion,
    kubelets: &[KubeVersion],
) -> SkewErrors {
    let mut e = SkewErrors::default();
    let min_control_plane = KubeVersion { major: kubeadm.major, minor: kubeadm.minor.saturating_sub(1), patch: 0 };
    if target < min_control_plane {
        // (upstream prints the cluster version as "the minimum supported version")
        e.mandatory.push(format!("Specified version to upgrade to \"{target}\" is equal to or lower than the minimum supported version \"{cluster}\". Please specify a higher version to upgrade to"));
    }
    if target.minor > cluster.minor + 1 {
        e.mandatory.push(format!(
            "Specified version to upgrade to \"{target}\" is too high; kubeadm can upgrade only 1 minor version at a time"
        ));
    }
    if target.minor + 1 < cluster.minor {
        e.mandatory.push(format!(
            "Specified version to downgrade to \"{target}\" is too low; kubeadm can downgrade only 1 minor version at a time"
        ));
    }
    if kubeadm < target {
        if target.minor > kubeadm.minor {
            e.mandatory.push(format!("Specified version to upgrade to \"{target}\" is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported", target.minor, kubeadm.minor));
        } else {
            e.skippable.push(format!("Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"));
        }
    }
    if kubeadm.major > target.major || kubeadm.minor > target.minor {
        e.skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version {}.{}",
            kubeadm.major, kubeadm.minor
        ));
    }
    let mut too_old: Vec<String> =
        kubelets.iter().filter(|k| target.minor > k.minor + 1).map(|k| k.to_string()).collect();
    too_old.sort();
    too_old.dedup();
    if !too_old.is_empty() {
        e.skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            too_old.join(" ")
        ));
    }
    e
}

/// kubeadm's FormatErrMsg: one "\t- error" line each.
fn format_err_msg(errs: &[String]) -> String {
    errs.iter().map(|e| format!("\t- {e}\n")).collect()
}

/// cmd/kubeadm/app/cmd/upgrade/common.go: mandatory errors stop the upgrade; skippable
/// ones too unless `--force`, which prints them and goes on.
pub fn enforce_version_policy(e: &SkewErrors, force: bool) -> Result<()> {
    if !e.mandatory.is_empty() {
        bail!("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{}\nPlease fix the misalignments highlighted above and try upgrading again", format_err_msg(&e.mandatory));
    }
    if !e.skippable.is_empty() {
        if !force {
            bail!("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n{}\nCan be bypassed if you pass the --force flag", format_err_msg(&e.skippable));
        }
        print!("[upgrade/version] Found {} potential version compatibility errors but skipping since the --force flag is set: \n\n{}", e.skippable.len(), format_err_msg(&e.skippable));
    }
    Ok(())
}

/// `constants.ControlPlaneComponents`, whose static pod manifests must be on disk.
const CONTROL_PLANE_COMPONENTS: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// staticPodManifestHealth (`cmd/kubeadm/app/phases/upgrade/health.go`): the manifests of
/// every control-plane component missing from `manifests_dir`, as kubeadm's error.
pub fn static_pod_manifest_error(manifests_dir: &str) -> Option<String> {
    let missing: Vec<String> = CONTROL_PLANE_COMPONENTS
        .iter()
        .map(|c| format!("{manifests_dir}/{c}.yaml"))
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "The control plane seems to be Static Pod-hosted, but some of the manifests don't seem to exist on disk. This probably means you're running 'kubeadm upgrade' on a remote machine, which is not supported for a Static Pod-hosted cluster. Manifest files not found: [{}]",
            missing.join(" ")
        )
    })
}

/// CheckClusterHealth (health.go), run as preflight checks (ignorable by name): the
/// StaticPodManifest check. (CreateJob and ControlPlaneNodesReady are not done: no pods
/// run here, and the stand-in's Nodes are NotReady without a CNI configuration.)
fn health_checks(ignore: &[String]) -> Result<()> {
    println!("[upgrade] Running cluster health checks");
    let mut c = super::preflight::Checks::default();
    if let Some(e) = static_pod_manifest_error(&format!("{}/manifests", files::kdir())) {
        c.error("StaticPodManifest", e);
    }
    c.finish(ignore).context("[upgrade/health] FATAL")
}

/// The kubelet versions the Nodes report (`status.nodeInfo.kubeletVersion`).
async fn kubelet_versions(api: &ApiClient) -> Vec<KubeVersion> {
    let Ok(r) = api.get("/api/v1/nodes").await else { return Vec::new() };
    r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["status"]["nodeInfo"]["kubeletVersion"].as_str())
        .filter_map(|v| KubeVersion::parse(v).ok())
        .collect()
}

pub(crate) fn admin_or_kubelet() -> Result<Kubeconfig> {
    let k = files::kdir();
    Kubeconfig::load(&format!("{k}/admin.conf")).or_else(|_| Kubeconfig::load(&format!("{k}/kubelet.conf")))
}

pub(crate) async fn cluster_config(api: &ApiClient, kubeadm: KubeVersion) -> Result<ClusterConfiguration> {
    println!(
        "[upgrade/config] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"..."
    );
    let r = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config").await?;
    if !r.status.is_success() {
        bail!("unable to fetch the kubeadm-config ConfigMap: {}", r.message());
    }
    let text = r.body["data"]["ClusterConfiguration"].as_str().context("kubeadm-config has no ClusterConfiguration")?;
    let mut c = config::parse(text)?.cluster.context("kubeadm-config holds no ClusterConfiguration")?;
    config::set_cluster_defaults(&mut c, kubeadm);
    Ok(c)
}

async fn wait_version(api: &ApiClient, want: KubeVersion) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(r) = api.get("/version").await {
            if r.body["gitVersion"].as_str() == Some(want.to_string().as_str()) {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("[upgrade/apply] the kube-apiserver static Pod did not come back at {want} within 5m0s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn local_api(admin: &Kubeconfig) -> Result<ApiClient> {
    // The local API server, from its manifest's --advertise-address/--secure-port.
    let text = std::fs::read_to_string(format!("{}/manifests/kube-apiserver.yaml", files::kdir()))?;
    let pod: serde_json::Value = serde_yaml_ng::from_str(&text)?;
    let args: Vec<String> = pod["spec"]["containers"][0]["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let get = |f: &str| args.iter().find_map(|a| a.strip_prefix(&format!("--{f}=")).map(str::to_string));
    let url = format!(
        "https://{}:{}",
        get("advertise-address").unwrap_or("127.0.0.1".into()),
        get("secure-port").unwrap_or("6443".into())
    );
    ApiClient::from_kubeconfig_at(admin, &url)
}

pub async fn run(cmd: UpgradeCmd) -> Result<()> {
    let kubeadm = super::kubeadm_version()?;
    match cmd {
        UpgradeCmd::Plan => {
            let api = ApiClient::from_kubeconfig(&admin_or_kubelet()?)?;
            let c = cluster_config(&api, kubeadm).await?;
            let current = KubeVersion::parse(&c.kubernetes_version)?;
            println!("[upgrade/versions] Cluster version: {current}\n[upgrade/versions] kubeadm version: {kubeadm}");
            if version_policy(current, kubeadm, kubeadm, &[]) == SkewErrors::default() && current != kubeadm {
                println!("\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {kubeadm}\n");
            } else {
                println!("\nAwesome, you're up-to-date! Enjoy!");
            }
            Ok(())
        }
        UpgradeCmd::Apply { version, yes, force, ignore_preflight_errors, certificate_renewal, .. } => {
            let target = KubeVersion::parse(&version).map_err(|_| {
                anyhow::anyhow!(
                    "[upgrade/version] FATAL: unable to parse the version {version:?} (expected v1.MINOR.PATCH)"
                )
            })?;
            let admin = Kubeconfig::load(&format!("{}/admin.conf", files::kdir()))
                .context("[upgrade] this node is not a control plane node initialised by kubeadm (no admin.conf)")?;
            let api = local_api(&admin)?;
            let r = api.get("/readyz").await?;
            if !r.status.is_success() {
                bail!("[upgrade/health] FATAL: the control plane is not healthy: /readyz: {}", r.status);
            }
            let mut c = cluster_config(&api, kubeadm).await?;
            health_checks(&ignore_preflight_errors)?;
            let current = KubeVersion::parse(&c.kubernetes_version)?;
            println!("[upgrade/version] You have chosen to change the cluster version to \"{target}\"");
            println!("[upgrade/versions] Cluster version: {current}\n[upgrade/versions] kubeadm version: {kubeadm}");
            let kubelets = kubelet_versions(&api).await;
            enforce_version_policy(&version_policy(current, target, kubeadm, &kubelets), force)?;
            if !(yes || force) {
                print!("[upgrade] Are you sure you want to proceed? [y/N]: ");
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim(), "y" | "Y") {
                    bail!("won't proceed; the user didn't answer (Y|y) in order to continue");
                }
            }
            c.kubernetes_version = target.to_string();
            if certificate_renewal {
                super::certs::renew_for_upgrade(&c).context("[upgrade/apply] FATAL")?;
            }
            println!("[upgrade/staticpods] Preparing for \"kube-apiserver\" upgrade");
            files::retag_manifests(&c)?;
            wait_version(&api, target).await?;
            let cm = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                "data": {"ClusterConfiguration": serde_yaml_ng::to_string(&c)?}
            });
            api.create_or_update("/api/v1/namespaces/kube-system/configmaps", "kubeadm-config", &cm).await?;
            println!("\n[upgrade] SUCCESS! A control plane component was upgraded to \"{target}\".");
            Ok(())
        }
        UpgradeCmd::Node { certificate_renewal, .. } => {
            fail_on_demand()?;
            let k = admin_or_kubelet()?;
            let api = ApiClient::from_kubeconfig(&k)?;
            let c = cluster_config(&api, kubeadm).await?;
            let cluster_version = KubeVersion::parse(&c.kubernetes_version)?;
            if cluster_version > kubeadm {
                bail!("the cluster version {cluster_version} is newer than this kubeadm ({kubeadm}); upgrade kubeadm first");
            }
            let manifests = format!("{}/manifests/kube-apiserver.yaml", files::kdir());
            if std::path::Path::new(&manifests).exists() {
                println!("[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"{cluster_version}\"...");
                if certificate_renewal {
                    super::certs::renew_for_upgrade(&c).context("error execution phase control-plane")?;
                }
                files::retag_manifests(&c)?;
                if let Ok(admin) = Kubeconfig::load(&format!("{}/admin.conf", files::kdir())) {
                    wait_version(&local_api(&admin)?, cluster_version).await?;
                }
            } else {
                println!("[upgrade] Skipping phase. Not a control plane node.");
            }
            println!("[upgrade] The configuration for this node was successfully upgraded!");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    /// policy.go EnforceVersionPolicies: one minor up, one minor down and the same version
    /// pass; skipping a minor (either way) and a target newer than kubeadm's minor are
    /// mandatory errors; a newer patch than kubeadm, a kubeadm newer than the target's
    /// minor and kubelets two minors behind are skippable with --force (common.go).
    #[test]
    fn version_policy_as_upstream() {
        let none = SkewErrors::default();
        assert_eq!(version_policy(v("v1.35.0"), v("v1.36.1"), v("v1.36.1"), &[v("v1.35.0")]), none);
        // Re-applying the same version: accepted.
        assert_eq!(version_policy(v("v1.36.1"), v("v1.36.1"), v("v1.36.1"), &[]), none);
        // One minor down with the target's kubeadm: accepted.
        assert_eq!(version_policy(v("v1.36.1"), v("v1.35.0"), v("v1.35.0"), &[]), none);
        // One minor down with the newer kubeadm: skippable.
        let e = version_policy(v("v1.36.1"), v("v1.35.0"), v("v1.36.1"), &[]);
        assert!(e.mandatory.is_empty(), "{e:?}");
        assert_eq!(e.skippable, vec!["Kubeadm version v1.36.1 can only be used to upgrade to Kubernetes version 1.36"]);
        assert!(enforce_version_policy(&e, false)
            .unwrap_err()
            .to_string()
            .contains("Can be bypassed if you pass the --force flag"));
        assert!(enforce_version_policy(&e, true).is_ok());
        // Skipping a minor up: mandatory, --force does not help.
        let e = version_policy(v("v1.34.3"), v("v1.36.1"), v("v1.36.1"), &[]);
        assert_eq!(e.mandatory, vec!["Specified version to upgrade to \"v1.36.1\" is too high; kubeadm can upgrade only 1 minor version at a time"]);
        let msg = enforce_version_policy(&e, true).unwrap_err().to_string();
        assert!(msg.contains("fatal errors:\n\n\t- Specified version to upgrade to"), "{msg}");
        // Two minors down: mandatory.
        let e = version_policy(v("v1.36.1"), v("v1.34.3"), v("v1.34.3"), &[]);
        assert!(e.mandatory[0].contains("is too low; kubeadm can downgrade only 1 minor version at a time"), "{e:?}");
        // A newer minor than kubeadm: mandatory; a newer patch: skippable.
        let e = version_policy(v("v1.35.0"), v("v1.36.1"), v("v1.35.0"), &[]);
        assert!(
            e.mandatory
                .iter()
                .any(|m| m.contains("at least one minor release higher than the kubeadm minor release (36 > 35)")),
            "{e:?}"
        );
        let e = version_policy(v("v1.36.1"), v("v1.36.2"), v("v1.36.1"), &[]);
        assert!(
            e.mandatory.is_empty() && e.skippable[0].contains("is higher than the kubeadm version \"v1.36.1\""),
            "{e:?}"
        );
        // Kubelets more than one minor behind the target: skippable.
        let e = version_policy(v("v1.35.0"), v("v1.36.1"), v("v1.36.1"), &[v("v1.34.3"), v("v1.35.0")]);
        assert_eq!(
            e.skippable,
            vec!["There are kubelets in this cluster that are too old that have these versions [v1.34.3]"]
        );
    }

    /// health.go staticPodManifestHealth: every ControlPlaneComponents manifest must exist.
    #[test]
    fn static_pod_manifests_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for c in ["kube-apiserver", "kube-controller-manager"] {
            std::fs::write(dir.path().join(format!("{c}.yaml")), "").unwrap();
        }
        let e = static_pod_manifest_error(&d).unwrap();
        assert!(e.starts_with("The control plane seems to be Static Pod-hosted, but some of the manifests don't seem to exist on disk."), "{e}");
        assert!(e.ends_with(&format!("Manifest files not found: [{d}/kube-scheduler.yaml]")), "{e}");
        std::fs::write(dir.path().join("kube-scheduler.yaml"), "").unwrap();
        assert_eq!(static_pod_manifest_error(&d), None);
    }

    /// cmd/kubeadm/app/cmd/upgrade/apply.go and node.go: --certificate-renewal defaults to
    /// true; `--certificate-renewal=false` turns the renewal off.
    #[test]
    fn certificate_renewal_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: UpgradeCmd,
        }
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().cmd;
        match parse(&["x", "apply", "v1.36.1", "-y"]) {
            UpgradeCmd::Apply { certificate_renewal, .. } => assert!(certificate_renewal),
            _ => unreachable!(),
        }
        match parse(&["x", "apply", "v1.36.1", "--certificate-renewal=false"]) {
            UpgradeCmd::Apply { certificate_renewal, .. } => assert!(!certificate_renewal),
            _ => unreachable!(),
        }
        match parse(&["x", "node", "--certificate-renewal=false"]) {
            UpgradeCmd::Node { certificate_renewal, .. } => assert!(!certificate_renewal),
            _ => unreachable!(),
        }
    }
}
