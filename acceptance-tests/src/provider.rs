//! Finds (building if needed) the provider binary the tests point Terraform at.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding a freshly built `terraform-provider-strata`.
pub fn provider_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Build through cargo so the binary always matches the sources under test; it is
        // a no-op when `make test` built it already.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "terraform-provider-strata", "--bin", "terraform-provider-strata"])
            .status()
            .expect("running cargo build for the provider");
        assert!(status.success(), "building terraform-provider-strata failed");
        let dir = target_dir().join("debug");
        assert!(dir.join("terraform-provider-strata").exists(), "no provider binary in {}", dir.display());
        // The agent build the provider ships (no dynamic dependencies), beside it, as
        // `make build` installs it: a stale one would test yesterday's agent.
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf();
        let status = Command::new("bash")
            .arg(repo.join("scripts/build-agent-static.sh"))
            .arg(&dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("running scripts/build-agent-static.sh");
        assert!(status.success(), "building the static strata-agent failed");
        dir
    })
    .clone()
}

/// The cargo target directory this test binary was built into.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/<test-binary>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir above the test binary").to_path_buf()
}
