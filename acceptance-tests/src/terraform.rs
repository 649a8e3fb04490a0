//! A Terraform working directory wired to the provider under test: via `dev_overrides`
//! (the provider binaries of a cargo build), or, as users install it, from a provider
//! mirror that `make release` writes (see crate::release).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The Terraform CLI to use: `$STRATA_TERRAFORM`, else the launcher that
/// `scripts/install-terraform.sh` writes, else `terraform` on PATH.
pub fn terraform_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STRATA_TERRAFORM") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("STRATA_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/strata")
    });
    let launcher = cache.join("bin/terraform");
    if launcher.exists() {
        launcher
    } else {
        PathBuf::from("terraform")
    }
}

/// The launcher of one Terraform version of the compatibility matrix, e.g.
/// `terraform-1.6.6`, as `scripts/install-terraform-versions.sh` (`make terraform`)
/// installs it under `$STRATA_CACHE/bin`. Panics, saying how to install it, when absent.
pub fn terraform_version_bin(version: &str) -> PathBuf {
    let cache = std::env::var("STRATA_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/strata")
    });
    let launcher = cache.join(format!("bin/terraform-{version}"));
    assert!(
        launcher.exists(),
        "{} not found: run `make terraform` (scripts/install-terraform-versions.sh)",
        launcher.display()
    );
    launcher
}

pub struct Workdir {
    dir: PathBuf,
    /// The Terraform CLI this directory runs ([`terraform_bin`] unless set).
    terraform: PathBuf,
    /// Removed with the Workdir unless it was made with [`Workdir::keep_at`].
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

/// One finished Terraform command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn ok(self) -> Result<Run> {
        if self.code != 0 {
            bail!("terraform exited {}:\n{}\n{}", self.code, self.stdout, self.stderr);
        }
        Ok(self)
    }
}

impl Workdir {
    /// A temporary directory with `main.tf` and a CLI config pointing Terraform at the
    /// provider binaries in `provider_dir`.
    pub fn new(provider_dir: &Path, main_tf: &str) -> Result<Workdir> {
        let tmp = tempfile::Builder::new().prefix("strata-acc-").tempdir()?;
        let wd = Workdir::at(provider_dir, tmp.path().to_path_buf(), Some(tmp))?;
        std::fs::write(wd.dir.join("main.tf"), main_tf)?;
        Ok(wd)
    }

    /// A temporary directory holding a copy of the configuration in `config_dir` (a
    /// root module such as examples/ha-cluster, with its subdirectories).
    pub fn from_config(provider_dir: &Path, config_dir: &Path) -> Result<Workdir> {
        let tmp = tempfile::Builder::new().prefix("strata-acc-").tempdir()?;
        copy_config(config_dir, tmp.path())?;
        Workdir::at(provider_dir, tmp.path().to_path_buf(), Some(tmp))
    }

    /// Like [`Workdir::from_config`] in `dir`, which stays (the demo's state lives there);
    /// files already in `dir` (state, tfvars) are kept, the configuration is refreshed.
    pub fn keep_at(provider_dir: &Path, config_dir: &Path, dir: &Path) -> Result<Workdir> {
        std::fs::create_dir_all(dir)?;
        copy_config(config_dir, dir)?;
        Workdir::at(provider_dir, dir.to_path_buf(), None)
    }

    /// A temporary directory with `main.tf` and the CLI configuration `cli_config` (e.g.
    /// [`crate::release::filesystem_mirror_config`]): no dev_overrides, so `terraform
    /// init` installs the provider the way a user's does.
    pub fn with_cli_config(cli_config: &str, main_tf: &str) -> Result<Workdir> {
        let tmp = tempfile::Builder::new().prefix("strata-acc-").tempdir()?;
        let wd = Workdir::with_config_text(cli_config, tmp.path().to_path_buf(), Some(tmp))?;
        std::fs::write(wd.dir.join("main.tf"), main_tf)?;
        Ok(wd)
    }

    /// Like [`Workdir::keep_at`], with the CLI configuration `cli_config` instead of
    /// dev_overrides (the demo installs the provider from the release's mirror).
    pub fn keep_at_with_cli_config(cli_config: &str, config_dir: &Path, dir: &Path) -> Result<Workdir> {
        std::fs::create_dir_all(dir)?;
        copy_config(config_dir, dir)?;
        Workdir::with_config_text(cli_config, dir.to_path_buf(), None)
    }

    fn at(provider_dir: &Path, dir: PathBuf, tmp: Option<tempfile::TempDir>) -> Result<Workdir> {
        let cli_config = format!(
            "provider_installation {{\n  dev_overrides {{\n    \"strata-iac/strata\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir.display()
        );
        Workdir::with_config_text(&cli_config, dir, tmp)
    }

    fn with_config_text(cli_config: &str, dir: PathBuf, tmp: Option<tempfile::TempDir>) -> Result<Workdir> {
        let cli = dir.join("cli.tfrc");
        std::fs::write(&cli, cli_config)?;
        let env = vec![
            ("TF_CLI_CONFIG_FILE".into(), cli.display().to_string()),
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
            ("TF_INPUT".into(), "0".into()),
        ];
        Ok(Workdir { dir, terraform: terraform_bin(), _tmp: tmp, env })
    }

    /// Runs another Terraform CLI from now on (e.g. [`terraform_version_bin`]).
    pub fn set_terraform(&mut self, bin: impl Into<PathBuf>) {
        self.terraform = bin.into();
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn write(&self, name: &str, content: &str) -> Result<()> {
        std::fs::write(self.dir.join(name), content).with_context(|| format!("writing {name}"))
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
    }

    pub fn remove_env(&mut self, k: &str) {
        self.env.retain(|(key, _)| key != k);
    }

    /// Runs `terraform ARGS` in the directory; `-no-color` is added for readable output.
    pub fn run(&self, args: &[&str]) -> Result<Run> {
        let mut cmd = self.command(args);
        let out = cmd.output().with_context(|| format!("running {}", self.terraform.display()))?;
        Ok(Run::from(out))
    }

    /// The `terraform ARGS` command [`Workdir::run`] runs, to start it in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.terraform);
        cmd.current_dir(&self.dir).args(args);
        if !args.contains(&"-json") && !matches!(args.first(), Some(&"version") | Some(&"output")) {
            cmd.arg("-no-color");
        }
        // The provider falls back to an ssh-agent when no key is configured: only a test
        // that asks for one (set_env) gets it, whatever the caller's shell has.
        cmd.env_remove("TF_LOG").env_remove("TF_LOG_PATH").env_remove("SSH_AUTH_SOCK");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn apply(&self) -> Result<Run> {
        self.run(&["apply", "-auto-approve", "-input=false"])?.ok()
    }

    pub fn destroy(&self) -> Result<Run> {
        self.run(&["destroy", "-auto-approve", "-input=false"])?.ok()
    }

    /// `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan_exit_code(&self) -> Result<Run> {
        self.run(&["plan", "-detailed-exitcode", "-input=false"])
    }

    /// `terraform show -json` of the current state.
    pub fn show(&self) -> Result<Value> {
        let run = self.run(&["show", "-json"])?.ok()?;
        serde_json::from_str(&run.stdout).context("parsing terraform show -json")
    }

    /// The attribute values of one resource instance in the state.
    pub fn resource_values(&self, address: &str) -> Result<Value> {
        let state = self.show()?;
        let resources = state["values"]["root_module"]["resources"].as_array().cloned().unwrap_or_default();
        resources
            .into_iter()
            .find(|r| r["address"] == address)
            .map(|r| r["values"].clone())
            .with_context(|| format!("{address} not in state"))
    }
}

/// Copies a root module's `.tf` files and subdirectories (not `.terraform`, state or
/// other files) from `from` into `to`.
fn copy_config(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            std::fs::create_dir_all(&dst)?;
            copy_config(&src, &dst)?;
        } else if name.to_string_lossy().ends_with(".tf") || from != to && !is_state(&name) {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

fn is_state(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.contains(".tfstate") || n.ends_with(".tfvars") || n == ".terraform.lock.hcl"
}

/// The diagnostics of a `-json` run (`apply -json`, `plan -json`), readable: one
/// "severity: summary" line and its detail each.
pub fn json_diagnostics(json_lines: &str) -> String {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "diagnostic")
        .map(|v| {
            format!("{}: {}\n{}\n", v["diagnostic"]["severity"], v["diagnostic"]["summary"], v["diagnostic"]["detail"])
        })
        .collect()
}

/// The `terraform { required_providers }` block every test configuration starts with.
pub const REQUIRED_PROVIDERS: &str =
    "terraform {\n  required_providers {\n    strata = { source = \"strata-iac/strata\" }\n  }\n}\n";

/// `REQUIRED_PROVIDERS` plus a provider block whose `ssh` defaults are a lab's key and
/// known_hosts file.
pub fn ssh_provider(private_key_file: &Path, known_hosts_file: &Path) -> String {
    format!(
        "{REQUIRED_PROVIDERS}provider \"strata\" {{\n  ssh {{\n    private_key_file = \"{}\"\n    known_hosts_file = \"{}\"\n  }}\n}}\n",
        private_key_file.display(),
        known_hosts_file.display()
    )
}
