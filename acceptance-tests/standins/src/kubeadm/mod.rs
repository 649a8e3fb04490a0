//! STAND-IN `kubeadm`: the subcommands the provider uses, with kubeadm's config
//! validation, preflight and file layout. Every call is recorded (see crate::record).

pub mod certs;
pub mod config;
pub mod features;
pub mod files;
pub mod init;
pub mod join;
pub mod phase;
pub mod preflight;
pub mod reset;
pub mod token;
pub mod types;
pub mod upgrade;
pub mod validation;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::version::{self, KubeVersion};

#[derive(Parser, Debug)]
#[command(name = "kubeadm", about = "kubeadm (Strata lab STAND-IN): easily bootstrap a secure Kubernetes cluster")]
struct Cli {
    #[arg(long = "v", global = true, hide = true)]
    verbosity: Option<u32>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the version of kubeadm
    Version {
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Manage configuration for a kubeadm cluster
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Run this command in order to set up the Kubernetes control plane
    Init(init::InitArgs),
    /// Run this on any machine you wish to join an existing cluster
    Join(join::JoinArgs),
    /// Manage bootstrap tokens
    Token {
        #[arg(long, default_value = "/etc/kubernetes/admin.conf", global = true)]
        kubeconfig: String,
        #[command(subcommand)]
        cmd: token::TokenCmd,
    },
    /// Upgrade your cluster smoothly to a newer version with this command
    Upgrade {
        #[command(subcommand)]
        cmd: upgrade::UpgradeCmd,
    },
    /// Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'
    Reset(reset::ResetArgs),
    /// Commands related to handling kubernetes certificates
    Certs {
        #[command(subcommand)]
        cmd: certs::CertsCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Read a file containing the kubeadm configuration API and report any validation problems
    Validate {
        #[arg(long)]
        config: String,
        #[arg(long = "allow-experimental-api")]
        allow_experimental_api: bool,
    },
    /// Interact with container images used by kubeadm
    Images {
        #[command(subcommand)]
        cmd: ImagesCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ImagesCmd {
    /// Print a list of images kubeadm will use. The configuration file is used in case any images or image repositories are customized
    List {
        /// Choose a specific Kubernetes version for the control plane (default: kubeadm's own).
        #[arg(long = "kubernetes-version")]
        kubernetes_version: Option<String>,
        /// Choose a container registry to pull control plane images from
        #[arg(long = "image-repository", default_value = "registry.k8s.io")]
        image_repository: String,
    },
}

pub fn main(argv: Vec<String>) -> i32 {
    let start = time::OffsetDateTime::now_utc();
    let code = match Cli::try_parse_from(&argv) {
        Ok(cli) => match run(cli) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e:#}");
                eprintln!("To see the stack trace of this error execute with --v=5 or higher");
                1
            }
        },
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            code
        }
    };
    crate::record::record_span("kubeadm", &argv, &["--config"], code, start);
    code
}

pub fn kubeadm_version() -> Result<KubeVersion> {
    version::installed("kubeadm")
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Version { output } => {
            let v = kubeadm_version()?;
            match output.as_deref() {
                None => {
                    let mut info = version::info_json(v);
                    info.as_object_mut().map(|o| o.remove("emulationMajor").and(o.remove("emulationMinor")));
                    println!(
                        "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", GitVersion:\"{v}\", GitCommit:\"{}\", GitTreeState:\"clean\", BuildDate:\"{}\", GoVersion:\"{}\", Compiler:\"gc\", Platform:\"linux/amd64\"}}",
                        v.major, v.minor, info["gitCommit"].as_str().unwrap_or(""), info["buildDate"].as_str().unwrap_or(""), info["goVersion"].as_str().unwrap_or("")
                    );
                }
                Some("short") => println!("{v}"),
                Some("json") => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"clientVersion": version::info_json(v)}))?
                ),
                Some("yaml") => print!(
                    "{}",
                    serde_yaml_ng::to_string(&serde_json::json!({"clientVersion": version::info_json(v)}))?
                ),
                Some(o) => bail!("error: invalid output format: {o}"),
            }
            Ok(())
        }
        Cmd::Config { cmd: ConfigCmd::Validate { config, .. } } => {
            let file = config::load_file(&config)?;
            validate_file(&file, kubeadm_version()?)?;
            println!("ok");
            Ok(())
        }
        Cmd::Config { cmd: ConfigCmd::Images { cmd: ImagesCmd::List { kubernetes_version, image_repository } } } => {
            let kubeadm = kubeadm_version()?;
            let k8s = match kubernetes_version {
                Some(v) => KubeVersion::parse(&v)?,
                None => kubeadm,
            };
            for image in images_list(&image_repository, k8s, kubeadm) {
                println!("{image}");
            }
            Ok(())
        }
        Cmd::Init(a) => crate::block_on(init::run(a)),
        Cmd::Join(a) => crate::block_on(join::run(a)),
        Cmd::Token { kubeconfig, cmd } => crate::block_on(token::run(&kubeconfig, cmd)),
        Cmd::Upgrade { cmd } => crate::block_on(upgrade::run(cmd)),
        Cmd::Reset(a) => reset::run(a),
        Cmd::Certs { cmd } => crate::block_on(certs::run(cmd)),
    }
}

/// `kubeadm config images list` (images.GetControlPlaneImages, in its order) as far as the
/// stand-in knows it: the control-plane images of `k8s`, kube-proxy and the pause image
/// of kubeadm's PauseVersion. Upstream also lists `coredns/coredns` and `etcd` with
/// versions pinned per kubeadm release; the stand-in leaves them out rather than guess.
pub fn images_list(repo: &str, k8s: KubeVersion, kubeadm: KubeVersion) -> Vec<String> {
    let mut v: Vec<String> = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"]
        .iter()
        .map(|c| format!("{repo}/{c}:{k8s}"))
        .collect();
    v.push(preflight::pause_image(repo, kubeadm));
    v
}

/// Defaults and validates everything in a config file (`kubeadm config validate`).
pub fn validate_file(file: &config::ConfigFile, kubeadm: KubeVersion) -> Result<()> {
    let mut errs = Vec::new();
    if file.init.is_none() && file.cluster.is_none() && file.join.is_none() {
        bail!("no InitConfiguration, ClusterConfiguration or JoinConfiguration found in the configuration file");
    }
    if file.join.is_some() && (file.init.is_some() || file.cluster.is_some()) {
        bail!("a JoinConfiguration cannot be mixed with InitConfiguration or ClusterConfiguration");
    }
    if let Some(i) = &file.init {
        let mut i = i.clone();
        config::set_init_defaults(&mut i);
        errs.extend(validation::validate_init(&i));
    }
    if file.init.is_some() || file.cluster.is_some() {
        let mut c = file.cluster.clone().unwrap_or_else(|| config::default_cluster(true, kubeadm));
        config::set_cluster_defaults(&mut c, kubeadm);
        errs.extend(validation::validate_cluster(&c));
        errs.extend(features::validate_feature_gates(&c.feature_gates, kubeadm));
        for w in validation::cert_validity_warnings(&c) {
            eprintln!("WARNING: {w}");
        }
        if errs.is_empty() {
            validation::validate_kubernetes_version("kubernetesVersion", &c.kubernetes_version, kubeadm)?;
        }
    }
    if let Some(j) = &file.join {
        let mut j = j.clone();
        config::set_join_defaults(&mut j);
        errs.extend(validation::validate_join(&j));
    }
    if !errs.is_empty() {
        bail!("{}", validation::aggregate(&errs));
    }
    Ok(())
}
