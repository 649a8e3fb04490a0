//! Test harness: real OpenSSH servers on loopback, one per test, killed
//! (with every per-connection child) when the guard drops.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use strata_ssh::{Auth, HostKeyPolicy, Target};
use tempfile::TempDir;

pub const TEST_USER: &str = "strata-ssh-test";
const SSHD: &str = "/usr/sbin/sshd";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Fails loudly (never skips) when the OpenSSH tools are missing.
pub fn require_openssh() {
    for tool in [SSHD, "/usr/bin/ssh-keygen"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} not found: these tests need real OpenSSH; run `apt-get install -y openssh-server openssh-client`"
        );
    }
    // sshd refuses to start without its privilege separation directory.
    fs::create_dir_all("/run/sshd").expect("cannot create /run/sshd");
}

/// A key pair made by ssh-keygen.
pub struct KeyPair {
    pub private_path: PathBuf,
    pub private: String,
    /// `type base64` (no comment).
    pub public: String,
    /// `SHA256:...` as printed by `ssh-keygen -lf`.
    pub fingerprint: String,
}

pub fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> KeyPair {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"]).arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    run(&mut cmd);
    let public_full = fs::read_to_string(path.with_extension("pub")).unwrap();
    let public = public_full.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let lf = run(Command::new("ssh-keygen").arg("-lf").arg(path.with_extension("pub")));
    let fingerprint = lf.split_whitespace().nth(1).unwrap().to_string();
    KeyPair { private: fs::read_to_string(&path).unwrap(), private_path: path, public, fingerprint }
}

/// Creates the non-root sudo user once per test binary (idempotent across runs).
pub fn ensure_test_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            Path::new("/usr/bin/sudo").exists(),
            "/usr/bin/sudo not found: the sudo tests need it; run `apt-get install -y sudo`"
        );
        let exists = Command::new("id")
            .arg("-u")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !exists {
            run(Command::new("useradd").args(["-m", "-U", "-s", "/bin/sh", TEST_USER]));
        }
        // useradd leaves the account locked ("!"), which sshd without PAM refuses.
        run(Command::new("usermod").args(["-p", "*", TEST_USER]));
        let drop_in = format!("/etc/sudoers.d/{TEST_USER}");
        let rule = format!("{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n");
        if fs::read_to_string(&drop_in).ok().as_deref() != Some(&rule) {
            fs::write(&drop_in, rule).unwrap();
            fs::set_permissions(&drop_in, fs::Permissions::from_mode(0o440)).unwrap();
        }
    });
}

pub fn uid_gid_of(user: &str) -> (u32, u32) {
    let uid = run(Command::new("id").args(["-u", user])).trim().parse().unwrap();
    let gid = run(Command::new("id").args(["-g", user])).trim().parse().unwrap();
    (uid, gid)
}

pub struct SshdOptions {
    pub listen: &'static str,
    pub host_key_type: &'static str,
    pub log_level: &'static str,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions { listen: "127.0.0.1", host_key_type: "ed25519", log_level: "VERBOSE" }
    }
}

/// A running sshd. Dropping it kills the daemon and its session children.
pub struct Sshd {
    pub dir: TempDir,
    pub listen: &'static str,
    pub port: u16,
    pub host_key: KeyPair,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Sshd {
    pub fn start(opts: SshdOptions, authorized: &[&KeyPair]) -> Sshd {
        require_openssh();
        let dir = tempfile::Builder::new().prefix("strata-ssh-sshd-").tempdir().unwrap();
        // Non-root users' authorized_keys are read with their privileges.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let host_key = keygen(dir.path(), "host_key", opts.host_key_type, "");
        let auth_file = dir.path().join("authorized_keys");
        let keys: String = authorized.iter().map(|k| format!("{}\n", k.public)).collect();
        fs::write(&auth_file, keys).unwrap();
        fs::set_permissions(&auth_file, fs::Permissions::from_mode(0o644)).unwrap();
        let config = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");
        let mut sshd = Sshd { listen: opts.listen, port: 0, host_key, config, log, child: None, dir };
        let cfg = format!(
            "ListenAddress {listen}\n\
             HostKey {host_key}\n\
             AuthorizedKeysFile {auth}\n\
             PidFile {pid}\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\n\
             LogLevel {level}\n",
            listen = opts.listen,
            host_key = sshd.host_key.private_path.display(),
            auth = auth_file.display(),
            pid = sshd.dir.path().join("sshd.pid").display(),
            level = opts.log_level,
        );
        fs::write(&sshd.config, cfg).unwrap();
        // A free port can be taken between probing and sshd's bind; retry.
        for _ in 0..5 {
            let probe = std::net::TcpListener::bind((opts.listen, 0)).unwrap();
            sshd.port = probe.local_addr().unwrap().port();
            drop(probe);
            if sshd.spawn() {
                return sshd;
            }
        }
        panic!("sshd failed to start 5 times; last log:\n{}", sshd.log_text());
    }

    /// Starts the daemon on `self.port`; false if it exited (e.g. port taken).
    fn spawn(&mut self) -> bool {
        let log = fs::File::create(&self.log).unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&self.config)
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cannot spawn /usr/sbin/sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.log_text().contains("Server listening on") {
                return true;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("sshd exited with {status}: {}", self.log_text());
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not report listening within 15s; log:\n{}", self.log_text());
    }

    /// Kills the daemon and all live sessions, then starts it again on the
    /// same port with the same host key.
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sshd could not be restarted on port {}", self.port);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("sshd not running").id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Successful logins since the last (re)start: one per SSH connection.
    pub fn accepted_logins(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains("Accepted publickey")).count()
    }

    /// Appends a line to sshd_config and restarts the daemon (same port and key).
    pub fn add_config(&mut self, line: &str) {
        let mut cfg = fs::read_to_string(&self.config).unwrap();
        cfg.push_str(line);
        cfg.push('\n');
        fs::write(&self.config, cfg).unwrap();
        self.restart();
    }

    /// Signs the host key with `ca` (`ssh-keygen -s ... -h`) for `principals` and
    /// `validity` (`-V`), and makes sshd present the certificate.
    pub fn use_host_certificate(&mut self, ca: &KeyPair, principals: &str, validity: &str) {
        let public = self.host_key.private_path.with_extension("pub");
        let cert = self.dir.path().join("host_key-cert.pub");
        let _ = fs::remove_file(&cert);
        run(Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca.private_path)
            .args(["-I", "strata-test-host", "-h", "-n", principals, "-V", validity])
            .arg(&public));
        assert!(cert.is_file(), "ssh-keygen wrote no {}", cert.display());
        self.add_config(&format!("HostCertificate {}", cert.display()));
    }

    /// A known_hosts line trusting `ca` for this server's address and port.
    pub fn cert_authority_line(&self, ca: &KeyPair) -> String {
        format!("@cert-authority [{}]:{} {}\n", self.listen, self.port, ca.public)
    }

    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}\n", self.listen, self.port, self.host_key.public)
    }

    pub fn target(&self, user: &str, key: &KeyPair) -> Target {
        Target::new(
            self.listen,
            user,
            Auth::key_content(key.private.clone()),
            HostKeyPolicy::KnownHosts(self.known_hosts_line()),
        )
        .with_port(self.port)
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // Session children call setsid(), so a process-group kill misses
        // them; collect descendants first (they get reparented once the
        // daemon dies) and kill each by pid.
        let mut victims = descendants(child.id());
        victims.push(child.id());
        for pid in victims {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub fn descendants(root: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut frontier = vec![root];
    let procs: Vec<(u32, u32)> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_pid(pid)?)))
        .collect();
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &procs {
            if ppid == p && !all.contains(&pid) {
                all.push(pid);
                frontier.push(pid);
            }
        }
    }
    all
}

/// True if `pid` is `ancestor` or descends from it.
pub fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        match parent_pid(pid) {
            Some(p) if p != 0 && p != pid => pid = p,
            _ => return false,
        }
    }
    false
}

/// A real ssh-agent on its own socket, killed when dropped.
pub struct SshAgent {
    pub socket: PathBuf,
    _dir: TempDir,
    child: Child,
}

impl SshAgent {
    pub fn start() -> SshAgent {
        let dir = tempfile::Builder::new().prefix("strata-ssh-agent-").tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot spawn ssh-agent (apt-get install -y openssh-client)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        SshAgent { socket, _dir: dir, child }
    }

    /// `ssh-add` of a key file into this agent.
    pub fn add(&self, key: &KeyPair) {
        run(Command::new("ssh-add").arg("-q").arg(&key.private_path).env("SSH_AUTH_SOCK", &self.socket));
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
