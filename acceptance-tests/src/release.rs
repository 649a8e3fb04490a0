//! The provider as users install it: `scripts/release.sh` (what `make release` runs)
//! signed with a throwaway key, the CLI configurations that name its mirror, and the
//! lock file `terraform init` writes from it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The provider's source address in the registry (and the mirror's directory for it).
pub const MIRROR_PATH: &str = "registry.terraform.io/strata-iac/strata";
const NAME: &str = "terraform-provider-strata";

/// A `dist/` directory written by scripts/release.sh.
pub struct Release {
    pub dist: PathBuf,
    pub version: String,
    /// The GNUPGHOME holding the throwaway signing key, removed with the Release.
    gnupg_home: Option<tempfile::TempDir>,
}

impl Drop for Release {
    /// Stops the gpg-agent that signing started in the throwaway GNUPGHOME.
    fn drop(&mut self) {
        if let Some(home) = &self.gnupg_home {
            let _ = Command::new("gpgconf").env("GNUPGHOME", home.path()).args(["--kill", "gpg-agent"]).status();
        }
    }
}

/// Makes a throwaway signing key in `home` (a new GNUPGHOME) and returns its fingerprint.
/// A test key only: no passphrase, expires in a day, never leaves the temp directory.
pub fn throwaway_gpg_key(home: &Path) -> Result<String> {
    std::fs::create_dir_all(home)?;
    // gpg refuses (warns about) a home other users can read.
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let gpg = |args: &[&str]| -> Result<String> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", home)
            .arg("--batch")
            .args(args)
            .output()
            .context("running gpg (Debian package gnupg; make deps installs it)")?;
        if !out.status.success() {
            bail!("gpg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "Strata test release <release@strata.invalid>",
        "ed25519",
        "sign",
        "1d",
    ])?;
    let listing = gpg(&["--with-colons", "--list-secret-keys"])?;
    listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:").map(|rest| rest.trim_matches(':').to_string()))
        .context("gpg made a key but lists no fingerprint")
}

impl Release {
    /// Runs scripts/release.sh into `dist` with a throwaway key, building into the cargo
    /// target directory `target_dir` (a no-op build when it is up to date) with the cargo
    /// profile `profile` (`release`, or `dev` to pack the debug build).
    pub fn build(dist: &Path, target_dir: &Path, profile: &str) -> Result<Release> {
        let gnupg = tempfile::Builder::new().prefix("strata-gnupg-").tempdir()?;
        let key = throwaway_gpg_key(gnupg.path())?;
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/release.sh"))
            .env("DIST_DIR", dist)
            .env("CARGO_TARGET_DIR", target_dir)
            .env("STRATA_RELEASE_PROFILE", profile)
            .env("GNUPGHOME", gnupg.path())
            .env("STRATA_GPG_KEY_ID", &key)
            .env_remove("STRATA_GPG_KEY_FILE")
            .output()
            .context("running scripts/release.sh")?;
        if !out.status.success() {
            bail!("scripts/release.sh failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let mut release = Release::open(dist)?;
        release.gnupg_home = Some(gnupg);
        Ok(release)
    }

    /// A `dist/` written before (by `make release` or the demo's script); its version is
    /// the one the workspace's Cargo.toml names, as the script's.
    pub fn open(dist: &Path) -> Result<Release> {
        let release = Release { dist: dist.to_path_buf(), version: VERSION.to_string(), gnupg_home: None };
        let sums = release.dist.join(release.sums_name());
        if !sums.is_file() {
            bail!("{} is missing: run `make release` (scripts/release.sh) first", sums.display());
        }
        Ok(release)
    }

    /// The mirror directory to name in a CLI configuration.
    pub fn mirror(&self) -> PathBuf {
        self.dist.join("mirror")
    }

    pub fn zip_name(&self, platform: &str) -> String {
        format!("{NAME}_{}_{platform}.zip", self.version)
    }

    pub fn sums_name(&self) -> String {
        format!("{NAME}_{}_SHA256SUMS", self.version)
    }

    /// The SHA-256 that SHA256SUMS lists for `file`.
    pub fn listed_sha256(&self, file: &str) -> Result<String> {
        let path = self.dist.join(self.sums_name());
        let sums = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        sums.lines()
            .find_map(|l| l.split_once("  ").filter(|(_, name)| *name == file).map(|(hash, _)| hash.to_string()))
            .with_context(|| format!("{} lists no {file}:\n{sums}", path.display()))
    }

    /// Writes a lock file that trusts exactly the zips SHA256SUMS lists (their SHA-256 as
    /// `zh:` hashes), before the first `terraform init`. Terraform copies a package's
    /// `zh:` hashes into the lock file only when the package came signed from a registry
    /// (installer.go: `if authResult.SignedByAnyParty()`); from a mirror it records only
    /// the `h1:` it computes itself. Seeded like this, init checks the zip against the
    /// signed checksum and keeps it, adding its `h1:`. (docs/guides/installing.md)
    pub fn seed_lock_file(&self, workdir: &Path) -> Result<()> {
        let path = self.dist.join(self.sums_name());
        let sums = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let hashes: String = sums
            .lines()
            .filter(|l| l.ends_with(".zip"))
            .filter_map(|l| l.split_once("  "))
            .map(|(hash, _)| format!("    \"zh:{hash}\",\n"))
            .collect();
        if hashes.is_empty() {
            bail!("{} lists no zip", path.display());
        }
        let lock =
            format!("provider \"{MIRROR_PATH}\" {{\n  version = \"{}\"\n  hashes = [\n{hashes}  ]\n}}\n", self.version);
        std::fs::write(workdir.join(".terraform.lock.hcl"), lock).context("writing .terraform.lock.hcl")
    }

    /// The hashes of the lock file `terraform init` wrote, after checking that it selects
    /// this version and carries an `h1:` hash.
    pub fn lock_file_hashes(&self, workdir: &Path) -> Result<Vec<String>> {
        let path = workdir.join(".terraform.lock.hcl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let block = lock_block(&text, MIRROR_PATH)
            .with_context(|| format!("{} has no provider \"{MIRROR_PATH}\":\n{text}", path.display()))?;
        let selected = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("version"))
            .filter_map(|rest| rest.trim_start().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"'))
            .next();
        if selected != Some(self.version.as_str()) {
            bail!("{} does not select version {}:\n{block}", path.display(), self.version);
        }
        let hashes: Vec<String> = block
            .lines()
            .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string())
            .filter(|l| l.starts_with("h1:") || l.starts_with("zh:"))
            .collect();
        if !hashes.iter().any(|h| h.starts_with("h1:")) {
            bail!("{} has no h1: hash for {MIRROR_PATH}:\n{block}", path.display());
        }
        Ok(hashes)
    }

    /// [`Release::lock_file_hashes`], and a `zh:` hash among them equal to the zip's
    /// SHA-256 in SHA256SUMS (what ties the lock file to the signed checksums).
    pub fn check_lock_file(&self, workdir: &Path, platform: &str) -> Result<Vec<String>> {
        let hashes = self.lock_file_hashes(workdir)?;
        let zip = self.zip_name(platform);
        let want = format!("zh:{}", self.listed_sha256(&zip)?);
        if !hashes.contains(&want) {
            bail!(
                "{}/.terraform.lock.hcl has no zh: hash equal to {zip}'s SHA-256 in {} ({want}); it has {hashes:?}",
                workdir.display(),
                self.sums_name()
            );
        }
        Ok(hashes)
    }
}

/// The `provider "ADDRESS" { ... }` block of a lock file.
fn lock_block<'a>(text: &'a str, address: &str) -> Option<&'a str> {
    let start = text.find(&format!("provider \"{address}\""))?;
    let rest = &text[start..];
    let end = rest.find("\n}").map(|i| i + 2).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A CLI configuration that installs `strata-iac/*` only from the filesystem mirror at
/// `mirror` (a release's `dist/mirror`), and nothing of it from the registry.
pub fn filesystem_mirror_config(mirror: &Path) -> String {
    format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"strata-iac/*\"]\n  }}\n  direct {{\n    exclude = [\"strata-iac/*\"]\n  }}\n}}\n",
        mirror.display()
    )
}

/// The same through a network mirror at `url` (ending in `/`, HTTPS).
pub fn network_mirror_config(url: &str) -> String {
    format!(
        "provider_installation {{\n  network_mirror {{\n    url     = \"{url}\"\n    include = [\"strata-iac/*\"]\n  }}\n  direct {{\n    exclude = [\"strata-iac/*\"]\n  }}\n}}\n"
    )
}

/// The platform Terraform installs for on this machine, as the registry names it.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

/// The workspace's version (Cargo.toml `[workspace.package] version`), which every crate
/// inherits: the provider reports it and the release is named after it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
