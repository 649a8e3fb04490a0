//! Installing the provider like a real one: `make release` output (scripts/release.sh,
//! signed with a throwaway key) checked with gpg and sha256sum, then `terraform init` in
//! an empty directory from its filesystem mirror and, served over HTTPS by a web server
//! on a lab node, from its network mirror; no dev_overrides. Terraform's h1 hash in the
//! lock file is the one the release computed; a lock file seeded with the signed zh:
//! hashes keeps them. A tampered zip in the network mirror, a zip another zh: was locked
//! for and a mirror certificate from an unknown CA are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use strata_acceptance_tests::provider::target_dir;
use strata_acceptance_tests::release::{
    filesystem_mirror_config, host_platform, network_mirror_config, Release, MIRROR_PATH, VERSION,
};
use strata_acceptance_tests::terraform::Workdir;
use strata_lab::{LabGuard, PveMode, UpOptions};
use strata_provider::agent_binary::AgentBinary;

/// Pins the version, as a team's configuration would, so a mirror offering another
/// version cannot satisfy it by accident.
fn main_tf() -> String {
    format!(
        "terraform {{\n  required_providers {{\n    strata = {{\n      source  = \"strata-iac/strata\"\n      version = \"{VERSION}\"\n    }}\n  }}\n}}\n\n\
         resource \"strata_cluster_secrets\" \"this\" {{\n  cluster_name = \"mirror\"\n}}\n"
    )
}

fn run(cmd: &mut Command) -> (bool, String) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("running {shown}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Terraform wraps its error messages at 78 columns: compare their words.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn release(tmp: &Path) -> Release {
    let t = Instant::now();
    // The debug build `make test` made already: a release build would cost minutes here;
    // everything else is what `make release` does.
    let release = Release::build(&tmp.join("dist"), &target_dir(), "dev").unwrap();
    eprintln!("release.sh: {:.1} s", t.elapsed().as_secs_f64());
    release
}

/// The h1 and zh hashes VERSION.json lists for a platform.
fn network_mirror_hashes(release: &Release, platform: &str) -> Vec<String> {
    let path = release.mirror().join(MIRROR_PATH).join(format!("{VERSION}.json"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let archive = &json["archives"][platform];
    assert_eq!(archive["url"], release.zip_name(platform), "{json}");
    archive["hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
}

fn init_and_apply(wd: &Workdir) {
    let init = wd.run(&["init", "-input=false"]).unwrap().ok().unwrap();
    assert!(init.stdout.contains(&format!("Installed strata-iac/strata v{VERSION}")), "{}", init.stdout);
    let apply = wd.apply().unwrap();
    assert!(apply.stdout.contains("1 added"), "{}", apply.stdout);
    let ca = wd.resource_values("strata_cluster_secrets.this").unwrap()["kubernetes_ca_cert"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(ca.contains("BEGIN CERTIFICATE"), "no CA in state: {ca}");
}

#[test]
fn release_is_signed_and_installs_from_a_filesystem_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let release = release(tmp.path());
    let dist = &release.dist;
    let platform = host_platform();
    let zip = release.zip_name(&platform);
    let sums = release.sums_name();

    // The signature verifies with the published key alone, in a keyring that holds
    // nothing else (not the signer's)...
    let verifier = tmp.path().join("verifier-gnupg");
    std::fs::create_dir_all(&verifier).unwrap();
    std::fs::set_permissions(&verifier, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        run(Command::new("gpg").env("GNUPGHOME", &verifier).arg("--batch").args(args).current_dir(dist))
    };
    let (ok, out) = gpg(&["--import", "signing-key.asc"]);
    assert!(ok, "importing signing-key.asc: {out}");
    let (ok, out) = gpg(&["--verify", &format!("{sums}.sig"), &sums]);
    assert!(ok && out.contains("Good signature"), "gpg --verify {sums}.sig: {out}");
    // ...and a changed SHA256SUMS does not.
    let forged = tmp.path().join("forged_SHA256SUMS");
    let text = std::fs::read_to_string(dist.join(&sums)).unwrap();
    std::fs::write(&forged, text.replacen(&text[..8], "00000000", 1)).unwrap();
    let (ok, out) = gpg(&["--verify", &format!("{sums}.sig"), forged.to_str().unwrap()]);
    assert!(!ok && out.contains("BAD signature"), "a forged SHA256SUMS verified: {out}");

    // SHA256SUMS covers the zip and the manifest, and they match it.
    let (ok, out) = run(Command::new("sha256sum").arg("-c").arg(&sums).current_dir(dist));
    assert!(ok, "sha256sum -c {sums}: {out}");
    let manifest = format!("terraform-provider-strata_{VERSION}_manifest.json");
    for f in [&zip, &manifest] {
        assert!(out.contains(&format!("{f}: OK")), "{sums} does not cover {f}: {out}");
    }
    // The manifest says the protocol the provider speaks (the binary's --version, below).
    assert_eq!(
        std::fs::read_to_string(dist.join(&manifest)).unwrap().trim(),
        r#"{"version":1,"metadata":{"protocol_versions":["6.0"]}}"#
    );

    // The zip: the provider named for its version, which it reports, and the static agent.
    let (ok, list) = run(Command::new("unzip").arg("-Z1").arg(dist.join(&zip)));
    assert!(ok, "unzip -Z1: {list}");
    let provider_file = format!("terraform-provider-strata_v{VERSION}");
    let mut names: Vec<&str> = list.lines().collect();
    names.sort();
    assert_eq!(names, vec!["strata-agent-static", provider_file.as_str()], "{zip} holds {list}");
    let unpacked = tmp.path().join("unpacked");
    let (ok, out) = run(Command::new("unzip").arg("-q").arg(dist.join(&zip)).arg("-d").arg(&unpacked));
    assert!(ok, "{out}");
    let (ok, reported) = run(Command::new(unpacked.join(&provider_file)).arg("--version"));
    assert!(ok, "{provider_file} --version: {reported}");
    assert_eq!(
        reported.lines().collect::<Vec<_>>(),
        vec![format!("terraform-provider-strata {VERSION}"), "plugin protocol 6".to_string()],
        "{zip} is named for {VERSION}, its provider reports:\n{reported}"
    );
    let agent = AgentBinary::load(&unpacked.join("strata-agent-static")).unwrap();
    assert!(!agent.dynamic && agent.arch == "x86_64", "the shipped agent is a static x86_64 build");

    // An empty directory whose CLI configuration names only the filesystem mirror.
    let wd = Workdir::with_cli_config(&filesystem_mirror_config(&release.mirror()), &main_tf()).unwrap();
    let cli = std::fs::read_to_string(wd.path().join("cli.tfrc")).unwrap();
    assert!(!cli.contains("dev_overrides"), "{cli}");
    init_and_apply(&wd);
    let installed = wd.path().join(".terraform/providers").join(MIRROR_PATH).join(VERSION).join(&platform);
    for f in [provider_file.as_str(), "strata-agent-static"] {
        assert!(installed.join(f).is_file(), "terraform init did not unpack {f} into {}", installed.display());
    }

    // The lock file's h1 (Terraform's own dirhash of the package) is the one the release
    // script computed (scripts/provider_hash.py) and lists in VERSION.json beside the zh.
    let hashes = release.lock_file_hashes(wd.path()).unwrap();
    let h1: Vec<&String> = hashes.iter().filter(|h| h.starts_with("h1:")).collect();
    let listed = network_mirror_hashes(&release, &platform);
    assert!(listed.contains(&format!("zh:{}", release.listed_sha256(&zip).unwrap())), "VERSION.json: {listed:?}");
    assert!(h1.iter().all(|h| listed.contains(h)), "Terraform's h1 {h1:?}, VERSION.json's {listed:?}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/provider_hash.py");
    let (ok, ours) = run(Command::new("python3").arg(script).arg(dist.join(&zip)));
    assert!(ok && h1.iter().any(|h| **h == ours.trim()), "provider_hash.py says {ours}, Terraform wrote {h1:?}");

    // From a mirror, Terraform records only the h1 it computed (a zh: only comes with a
    // registry's signature). A lock file seeded with the signed SHA256SUMS' zh: hashes
    // makes init check the zip against them and keep them: the lock file then carries
    // both, the zh: equal to the zip's line in SHA256SUMS.
    let seeded = Workdir::with_cli_config(&filesystem_mirror_config(&release.mirror()), &main_tf()).unwrap();
    release.seed_lock_file(seeded.path()).unwrap();
    init_and_apply(&seeded);
    let both = release.check_lock_file(seeded.path(), &platform).unwrap();
    assert!(h1.iter().all(|h| both.contains(h)), "seeded init wrote {both:?}, plain init {hashes:?}");
    // A lock file whose zh: is not this zip's: init refuses to install it.
    let mismatched = Workdir::with_cli_config(&filesystem_mirror_config(&release.mirror()), &main_tf()).unwrap();
    let wrong = format!("zh:{}", "0".repeat(64));
    let lock =
        format!("provider \"{MIRROR_PATH}\" {{\n  version = \"{VERSION}\"\n  hashes = [\n    \"{wrong}\",\n  ]\n}}\n");
    mismatched.write(".terraform.lock.hcl", &lock).unwrap();
    let init = mismatched.run(&["init", "-input=false"]).unwrap();
    assert!(
        init.code != 0 && flat(&init.stderr).contains("doesn't match any of the checksums"),
        "init accepted a zip another zh: was locked for:\n{}{}",
        init.stdout,
        init.stderr
    );

    // `terraform providers lock` from the mirror (what a team runs for every platform)
    // records the same hashes.
    let locker = Workdir::with_cli_config(&filesystem_mirror_config(&release.mirror()), &main_tf()).unwrap();
    let mirror_arg = format!("-fs-mirror={}", release.mirror().display());
    let platform_arg = format!("-platform={platform}");
    locker.run(&["providers", "lock", &mirror_arg, &platform_arg]).unwrap().ok().unwrap();
    let locked = release.lock_file_hashes(locker.path()).unwrap();
    assert!(h1.iter().all(|h| locked.contains(h)), "providers lock wrote {locked:?}, init {hashes:?}");
}

/// A CA and a server certificate for `ip` (what the web server presents): (ca, cert, key).
fn test_ca_and_server_cert(ip: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Strata test mirror CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, ip);
    leaf.subject_alt_names = vec![SanType::IpAddress(ip.parse().unwrap())];
    (ca_pem, leaf.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

/// Python's own HTTP server (the node's python3, from Debian) behind TLS: Python 3.11's
/// `http.server` has no TLS flag, so the socket is wrapped here.
const SERVE_PY: &str = r#"import functools, http.server, ssl, sys
root, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), handler)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// Copies the directory `from` to `/srv/www` on the node (tar over the lab's SSH).
fn upload(lab: &LabGuard, from: &Path) {
    let mut tar =
        Command::new("tar").arg("-C").arg(from).args(["-cf", "-", "."]).stdout(Stdio::piped()).spawn().unwrap();
    let out = lab
        .ssh_command("node1", "root")
        .unwrap()
        .arg("rm -rf /srv/www && mkdir -p /srv/www && tar -C /srv/www -xf -")
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar of {} failed", from.display());
    assert!(out.status.success(), "upload to node1: {}", String::from_utf8_lossy(&out.stderr));
}

fn sh(lab: &LabGuard, script: &str) -> String {
    let out = lab.exec("node1", &["sh", "-c", script]).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node1: {script}: {text}");
    text
}

/// Waits (bounded) until the mirror answers index.json over HTTPS with the test CA.
fn wait_for_mirror(url: &str, ca_pem: &str) {
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let index = format!("{url}{MIRROR_PATH}/index.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(&index).send().and_then(|r| r.error_for_status()).and_then(|r| r.text()) {
            Ok(body) => {
                assert!(body.contains(&format!("\"{VERSION}\"")), "{index}: {body}");
                return;
            }
            Err(e) if Instant::now() > deadline => panic!("the mirror on node1 never answered {index}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn installs_from_a_network_mirror_over_https_and_refuses_a_tampered_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let release = release(tmp.path());
    let platform = host_platform();
    let mut opts = UpOptions::new(tmp.path().join("lab"));
    opts.nodes = 1;
    opts.pve = PveMode::Disabled;
    let lab = LabGuard::up(&opts).expect("lab up (needs root; builds the node image on first use)");
    let address = lab.nodes()[0].address.clone();

    // The site: the release's mirror as it is, the certificate and the server.
    let (ca, cert, key) = test_ca_and_server_cert(&address);
    let site = tmp.path().join("site");
    copy_dir(&release.mirror(), &site.join("mirror"));
    std::fs::write(site.join("cert.pem"), &cert).unwrap();
    std::fs::write(site.join("key.pem"), &key).unwrap();
    std::fs::write(site.join("serve.py"), SERVE_PY).unwrap();
    upload(&lab, &site);
    sh(
        &lab,
        "systemd-run --unit=strata-mirror python3 /srv/www/serve.py /srv/www/mirror /srv/www/cert.pem /srv/www/key.pem",
    );
    let url = format!("https://{address}/");
    wait_for_mirror(&url, &ca);
    let ca_file = tmp.path().join("test-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    // Terraform (Go) trusts the test CA through SSL_CERT_FILE.
    let mut wd = Workdir::with_cli_config(&network_mirror_config(&url), &main_tf()).unwrap();
    wd.set_env("SSL_CERT_FILE", ca_file.to_str().unwrap());
    init_and_apply(&wd);
    let hashes = release.lock_file_hashes(wd.path()).unwrap();
    let listed = network_mirror_hashes(&release, &platform);
    assert!(hashes.iter().filter(|h| h.starts_with("h1:")).all(|h| listed.contains(h)), "{hashes:?} vs {listed:?}");

    // Without the CA, the mirror's certificate is refused (the TLS above is real).
    let mut untrusting = Workdir::with_cli_config(&network_mirror_config(&url), &main_tf()).unwrap();
    untrusting.set_env("SSL_CERT_FILE", "/dev/null");
    let init = untrusting.run(&["init", "-input=false"]).unwrap();
    assert!(
        init.code != 0 && flat(&init.stderr).contains("certificate"),
        "init trusted an unknown CA: {}{}",
        init.stdout,
        init.stderr
    );

    // A tampered zip (another provider binary under the same names) in the mirror.
    let tampered = tmp.path().join("tampered");
    let provider_file = format!("terraform-provider-strata_v{VERSION}");
    let (ok, out) = run(Command::new("unzip")
        .arg("-q")
        .arg(release.dist.join(release.zip_name(&platform)))
        .arg("-d")
        .arg(&tampered));
    assert!(ok, "{out}");
    std::fs::write(tampered.join(&provider_file), "#!/bin/sh\necho not the provider\n").unwrap();
    let bad_zip = tmp.path().join("bad.zip");
    let (ok, out) = run(Command::new("zip")
        .arg("-q")
        .arg("-X")
        .arg("-j")
        .arg(&bad_zip)
        .arg(tampered.join(&provider_file))
        .arg(tampered.join("strata-agent-static")));
    assert!(ok, "{out}");
    let on_node = format!("/srv/www/mirror/{MIRROR_PATH}/{}", release.zip_name(&platform));
    let out = lab
        .ssh_command("node1", "root")
        .unwrap()
        .arg(format!("cat > {on_node}"))
        .stdin(std::fs::File::open(&bad_zip).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut victim = Workdir::with_cli_config(&network_mirror_config(&url), &main_tf()).unwrap();
    victim.set_env("SSL_CERT_FILE", ca_file.to_str().unwrap());
    let init = victim.run(&["init", "-input=false"]).unwrap();
    assert!(init.code != 0, "terraform init installed a tampered zip:\n{}{}", init.stdout, init.stderr);
    assert!(
        flat(&init.stderr).contains("expected checksums"),
        "the failure does not name the checksums:\n{}",
        init.stderr
    );
    assert!(!victim
        .path()
        .join(".terraform/providers")
        .join(MIRROR_PATH)
        .join(VERSION)
        .join(&platform)
        .join(&provider_file)
        .exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst: PathBuf = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}
