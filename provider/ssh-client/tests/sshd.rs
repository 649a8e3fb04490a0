//! Integration tests against real OpenSSH servers on loopback.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use common::*;
use strata_ssh::{Auth, CancellationToken, Client, Error, HostKeyPolicy, Pool, Target};

fn tmp() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("strata-ssh-test-").tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_status_stdout_stderr_and_takes_stdin() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let client = Client::new(sshd.target("root", &key));

    let out = client.exec("printf out; printf err >&2; exit 3", None).await.unwrap();
    assert_eq!(out.exit_status, 3);
    assert_eq!(out.stdout, b"out");
    assert_eq!(out.stderr, b"err");
    assert!(!out.success());

    let out = client.exec("tr a-z A-Z", Some(b"hello stdin")).await.unwrap();
    assert_eq!((out.exit_status, out.stdout_lossy().as_str()), (0, "HELLO STDIN"));

    // A command that ignores stdin must not hang or fail because of it.
    let out = client.exec("true", Some(&vec![b'x'; 4 << 20])).await.unwrap();
    assert_eq!(out.exit_status, 0);

    // The timeout variant's start marker never leaks into the output.
    let out = client.exec_timeout("cat; echo; exit 4", Some(b"in"), Duration::from_secs(60)).await.unwrap();
    assert_eq!((out.exit_status, out.stdout.as_slice()), (4, &b"in\n"[..]));

    let err = client.exec_checked("echo boom >&2; exit 7", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("root@127.0.0.1:{}", sshd.port)) && msg.contains("exit status 7") && msg.contains("boom"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_client_keys_authenticate() {
    let keys = tmp();
    let ed = keygen(keys.path(), "ed", "ed25519", "");
    let ec = keygen(keys.path(), "ec", "ecdsa", "");
    let rsa = keygen(keys.path(), "rsa", "rsa", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&ed, &ec, &rsa]);
    for key in [&ed, &ec, &rsa] {
        let out = Client::new(sshd.target("root", key)).exec("id -un", None).await.unwrap();
        assert_eq!(out.stdout_lossy().trim(), "root");
    }
    // The server must have checked each key. OpenSSH 8.8+ rejects SHA-1
    // `ssh-rsa` signatures by default, so the RSA login proves rsa-sha2-*.
    let log = sshd.log_text();
    for (fp, alg) in [(&ed.fingerprint, "ED25519"), (&ec.fingerprint, "ECDSA"), (&rsa.fingerprint, "RSA")] {
        assert!(
            log.lines().any(|l| l.contains("Accepted publickey") && l.contains(fp.as_str()) && l.contains(alg)),
            "{alg} login missing:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_from_file_with_passphrase() {
    let keys = tmp();
    let key = keygen(keys.path(), "enc", "ed25519", "s3cret-pass");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let mut target = sshd.target("root", &key);

    target.auth = Auth::key_file(&key.private_path).with_passphrase("s3cret-pass");
    let out = Client::new(target.clone()).exec("echo ok", None).await.unwrap();
    assert_eq!(out.stdout_lossy(), "ok\n");

    target.auth = Auth::key_file(&key.private_path).with_passphrase("wrong-pass");
    let err = Client::new(target.clone()).exec("echo ok", None).await.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, Error::Key { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{}", sshd.port)) && !msg.contains("wrong-pass"), "{msg}");

    target.auth = Auth::key_file(&key.private_path);
    let err = Client::new(target).exec("echo ok", None).await.unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_key_is_refused_naming_host_and_user() {
    let keys = tmp();
    let good = keygen(keys.path(), "good", "ed25519", "");
    let other = keygen(keys.path(), "other", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&good]);
    let err = Client::new(sshd.target("root", &other)).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("root@127.0.0.1:{}", sshd.port)) && msg.contains(&other.fingerprint), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_accepted_via_hashed_known_hosts_and_pinned_fingerprint() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    // An ECDSA host key also exercises a non-default host key algorithm.
    let sshd = Sshd::start(SshdOptions { host_key_type: "ecdsa", ..Default::default() }, &[&key]);

    let kh = keys.path().join("known_hosts");
    fs::write(&kh, format!("other.example {}\n{}", key.public, sshd.known_hosts_line())).unwrap();
    let hashed = Command::new("ssh-keygen").arg("-H").arg("-f").arg(&kh).output().unwrap();
    assert!(hashed.status.success());
    let content = fs::read_to_string(&kh).unwrap();
    assert!(content.lines().all(|l| l.starts_with("|1|")), "{content}");

    let mut target = sshd.target("root", &key);
    target.host_key = HostKeyPolicy::KnownHosts(content);
    assert_eq!(Client::new(target.clone()).exec("echo hashed", None).await.unwrap().stdout, b"hashed\n");

    target.host_key = HostKeyPolicy::Fingerprints(vec![key.fingerprint.clone(), sshd.host_key.fingerprint.clone()]);
    assert_eq!(Client::new(target).exec("echo pinned", None).await.unwrap().stdout, b"pinned\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_refused_before_any_command_runs() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let impostor = keygen(keys.path(), "impostor", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let marker = keys.path().join("marker");
    let cmd = format!("touch {}", marker.display());
    let label = format!("root@127.0.0.1:{}", sshd.port);

    let policies = [
        HostKeyPolicy::KnownHosts(format!("[127.0.0.1]:{} {}\n", sshd.port, impostor.public)),
        HostKeyPolicy::Fingerprints(vec![impostor.fingerprint.clone()]),
    ];
    for policy in policies {
        let mut target = sshd.target("root", &key);
        target.host_key = policy;
        let err = Client::new(target).exec(&cmd, None).await.unwrap_err();
        assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&label), "host missing: {msg}");
        assert!(msg.contains(&impostor.fingerprint), "expected fingerprint missing: {msg}");
        assert!(msg.contains(&sshd.host_key.fingerprint), "presented fingerprint missing: {msg}");
    }
    assert!(!marker.exists(), "command ran despite host key mismatch");
    assert_eq!(sshd.accepted_logins(), 0, "authentication happened:\n{}", sshd.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_refused_and_insecure_opt_in_connects() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let mut target = sshd.target("root", &key);

    // Same key but filed under port 22: OpenSSH would not match it either.
    target.host_key = HostKeyPolicy::KnownHosts(format!("127.0.0.1 {}\n", sshd.host_key.public));
    let err = Client::new(target.clone()).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::UnknownHost { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("root@127.0.0.1:{}", sshd.port)) && msg.contains(&sshd.host_key.fingerprint),
        "{msg}"
    );

    target.host_key = HostKeyPolicy::KnownHosts(String::new());
    assert!(matches!(Client::new(target.clone()).exec("true", None).await, Err(Error::UnknownHost { .. })));
    assert_eq!(sshd.accepted_logins(), 0);

    target.host_key = HostKeyPolicy::InsecureIgnore;
    assert_eq!(Client::new(target).exec("echo in", None).await.unwrap().stdout, b"in\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_user_uploads_root_owned_file_with_mode_and_owner() {
    ensure_test_user();
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let root_dir = tmp(); // root-owned 0755: the test user cannot write here
    let path = root_dir.path().join("etc conf's.d").join("app.conf");
    fs::create_dir(path.parent().unwrap()).unwrap();
    let path_s = path.to_str().unwrap();
    let (_, test_gid) = uid_gid_of(TEST_USER);

    let plain = Client::new(sshd.target(TEST_USER, &key));
    assert_eq!(plain.exec("id -un", None).await.unwrap().stdout_lossy().trim(), TEST_USER);
    let err = plain.upload(path_s, b"nope", 0o644, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
    assert!(err.to_string().contains(TEST_USER), "{err}");
    assert!(!path.exists());

    let sudo = Client::new(sshd.target(TEST_USER, &key).with_sudo(true));
    let out = sudo.exec(r#"id -un; printf '%s|' "a b" 'c'"'"'d' "$HOME""#, None).await.unwrap();
    assert_eq!(out.stdout_lossy(), "root\na b|c'd|/root|", "stderr: {}", out.stderr_lossy());

    sudo.upload(path_s, b"key = \"value\"\n", 0o640, Some("root"), Some(TEST_USER)).await.unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"key = \"value\"\n");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (0, test_gid));
    assert_eq!(sudo.read_file(path_s).await.unwrap().as_deref(), Some(&b"key = \"value\"\n"[..]));
    let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec!["app.conf"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_replaces_atomically_and_cleans_up_on_failure() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let client = Client::new(sshd.target("root", &key));
    let dir = tmp();
    let path = dir.path().join("data.bin");
    let path_s = path.to_str().unwrap();
    fs::write(&path, b"old content").unwrap();
    let old_inode = fs::metadata(&path).unwrap().ino();
    let mut reader = fs::File::open(&path).unwrap();

    let new: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    client.upload(path_s, &new, 0o600, None, None).await.unwrap();

    // Rename semantics: the already-open reader still sees the complete old file.
    let mut seen = Vec::new();
    reader.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"old content");
    assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode, "file was rewritten in place");
    assert_eq!(fs::read(&path).unwrap(), new);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(client.read_file(path_s).await.unwrap(), Some(new.clone()));

    // A failing chown must leave the old file intact and no temp file behind.
    let err = client.upload(path_s, b"partial", 0o644, Some("no-such-user-xyz"), None).await.unwrap_err();
    assert!(err.to_string().contains(&format!("upload of {path_s}")), "{err}");
    assert_eq!(fs::read(&path).unwrap(), new);
    let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec!["data.bin"], "temp file left behind");

    assert!(matches!(client.upload("relative/path", b"", 0o644, None, None).await, Err(Error::Config { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_file_of_missing_file_is_none() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let client = Client::new(sshd.target("root", &key));
    let dir = tmp();
    let missing = dir.path().join("missing file");
    assert_eq!(client.read_file(missing.to_str().unwrap()).await.unwrap(), None);
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    assert_eq!(client.read_file(empty.to_str().unwrap()).await.unwrap(), Some(vec![]));
    // An unreadable path is an error, not "absent".
    let err = client.read_file(dir.path().to_str().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellable_upload_and_read_work_and_stop_when_cancelled() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let client = Client::new(sshd.target("root", &key));
    let dir = tmp();
    let file = dir.path().join("f");
    let path = file.to_str().unwrap();
    let live = CancellationToken::new();
    client.upload_cancellable(path, b"content", 0o600, None, None, &live).await.unwrap();
    assert_eq!(client.read_file_cancellable(path, &live).await.unwrap().as_deref(), Some(&b"content"[..]));
    // The marker the cancellable exec prints first never shows in what is read.
    assert_eq!(fs::read(&file).unwrap(), b"content");

    let fired = CancellationToken::new();
    fired.cancel();
    let err = client.upload_cancellable(path, b"other", 0o600, None, None, &fired).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"content", "a cancelled upload leaves the file unchanged");
    let err = client.read_file_cancellable(path, &fired).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_a_connection_attempt_that_hangs() {
    // A listener that accepts but never speaks SSH: the handshake would wait for
    // the connect timeout (30 s).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let target = strata_ssh::Target::new(
        "127.0.0.1",
        "root",
        Auth::key_content(key.private.clone()),
        HostKeyPolicy::InsecureIgnore,
    )
    .with_port(port);
    let client = Client::new(target);
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.cancel();
    });
    let started = std::time::Instant::now();
    let err = client.exec_cancellable("true", None, &token).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_one_connection_for_sequential_and_concurrent_execs() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let pool = Pool::new();
    let a = pool.client(sshd.target("root", &key));
    for i in 0..3 {
        assert_eq!(a.exec(&format!("echo {i}"), None).await.unwrap().stdout_lossy(), format!("{i}\n"));
    }
    // More concurrent callers than channels per connection: they queue.
    let b = pool.client(sshd.target("root", &key));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { c.exec(&format!("sleep 0.2; echo {i}"), None).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap().stdout_lossy(), format!("{i}\n"));
    }
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log_text());

    // A separate pool really opens a separate connection (the count works).
    Pool::new().client(sshd.target("root", &key)).exec("true", None).await.unwrap();
    assert_eq!(sshd.accepted_logins(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reconnects_after_server_restart() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let mut sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let client = Pool::new().client(sshd.target("root", &key));
    assert_eq!(client.exec("echo before", None).await.unwrap().stdout, b"before\n");
    assert_eq!(sshd.accepted_logins(), 1);

    sshd.restart(); // kills the live session too
    assert_eq!(sshd.accepted_logins(), 0);
    assert_eq!(client.exec("echo after", None).await.unwrap().stdout, b"after\n");
    assert_eq!(sshd.accepted_logins(), 1);
    client.exec("true", None).await.unwrap();
    assert_eq!(sshd.accepted_logins(), 1);
}

/// Remote processes whose command line is exactly `args` (bounded wait for them to go).
async fn wait_gone(client: &Client, args: &[String]) -> String {
    let pattern = args.iter().map(|a| format!("-e '^{a}$'")).collect::<Vec<_>>().join(" ");
    let mut left = String::new();
    for _ in 0..100 {
        left = client.exec(&format!("ps -eo args | grep -x {pattern} || true"), None).await.unwrap().stdout_lossy();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancellation_kill_the_remote_command() {
    ensure_test_user();
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    // Unique per run, so leftovers of other runs cannot confuse the check.
    let sleeps: Vec<String> = (1..=4).map(|i| format!("sleep {}{i}", sshd.port)).collect();

    for (user, sudo) in [("root", false), (TEST_USER, false), (TEST_USER, true)] {
        let client = Client::new(sshd.target(user, &key).with_sudo(sudo));
        let label = format!("{user}@127.0.0.1:{}", sshd.port);

        let err =
            client.exec_timeout(&format!("exec {}", sleeps[0]), None, Duration::from_millis(500)).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }) && err.to_string().contains(&label), "{err}");
        // A child process of a shell that keeps running.
        let err = client
            .exec_timeout(&format!("{} & {}; echo x", sleeps[1], sleeps[2]), None, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");

        let token = CancellationToken::new();
        let canceller = {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                token.cancel();
            })
        };
        let err = client.exec_cancellable(&format!("{}; echo not reached", sleeps[3]), None, &token).await.unwrap_err();
        canceller.await.unwrap();
        assert!(matches!(err, Error::Cancelled { .. }) && err.to_string().contains(&label), "{err}");

        let left = wait_gone(&client, &sleeps).await;
        assert_eq!(left, "", "remote commands survived for {user} (sudo: {sudo})");
    }
    // Everything ran over one connection per user, which is still usable.
    assert_eq!(sshd.accepted_logins(), 3);
}

/// A caller that stops waiting on the same token (the plugin server does) drops the
/// exec future before it could kill the command itself: the command still dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cancellable_exec_still_kills_the_remote_command() {
    ensure_test_user();
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let sleeps: Vec<String> = (1..=2).map(|i| format!("sleep 5{}{i}", sshd.port)).collect();
    for (i, (user, sudo)) in [("root", false), (TEST_USER, true)].into_iter().enumerate() {
        let client = Client::new(sshd.target(user, &key).with_sudo(sudo));
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t.cancel();
        });
        let cmd = format!("{} & wait", sleeps[i]);
        let outcome = tokio::select! {
            biased;
            _ = token.cancelled() => None,
            r = client.exec_cancellable(&cmd, None, &token) => Some(r),
        };
        assert!(outcome.is_none(), "the exec future was dropped");
        let left = wait_gone(&client, &sleeps[i..=i]).await;
        assert_eq!(left, "", "the dropped command survived for {user} (sudo: {sudo})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bastion_tunnels_to_target_and_verifies_both_host_keys() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let bastion = Sshd::start(SshdOptions { log_level: "DEBUG1", ..Default::default() }, &[&key]);
    let target_sshd = Sshd::start(SshdOptions { listen: "127.0.0.2", ..Default::default() }, &[&key]);
    let target = target_sshd.target("root", &key).with_bastion(bastion.target("root", &key));

    let pool = Pool::new();
    let client = pool.client(target.clone());
    let out = client.exec("echo $SSH_CONNECTION", None).await.unwrap();
    let conn = out.stdout_lossy();
    let fields: Vec<&str> = conn.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{conn}");
    assert_eq!((fields[2], fields[3]), ("127.0.0.2", target_sshd.port.to_string().as_str()));

    // The target's peer socket belongs to the bastion's sshd, not to us.
    let ss = Command::new("ss").args(["-Htnp", "state", "established"]).output().expect("ss (iproute2) is needed");
    let ss = String::from_utf8_lossy(&ss.stdout);
    let peer = format!("{}:{}", fields[0], fields[1]);
    let target_addr = format!("127.0.0.2:{}", target_sshd.port);
    let line = ss
        .lines()
        .find(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 4 && cols[2] == peer && cols[3] == target_addr
        })
        .unwrap_or_else(|| panic!("no socket {peer} -> {target_addr} in:\n{ss}"));
    let owner: u32 = line.split("pid=").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.parse().ok()).unwrap();
    assert!(descends_from(owner, bastion.pid()), "tunnel socket owned by pid {owner}, not the bastion sshd");
    assert_ne!(owner, std::process::id());
    assert!(
        bastion.log_text().contains(&format!("target 127.0.0.2 port {}", target_sshd.port)),
        "{}",
        bastion.log_text()
    );
    assert_eq!((bastion.accepted_logins(), target_sshd.accepted_logins()), (1, 1));

    // Reuse covers both hops.
    client.exec("true", None).await.unwrap();
    assert_eq!((bastion.accepted_logins(), target_sshd.accepted_logins()), (1, 1));

    // Wrong bastion host key: refused at the first hop, naming the bastion.
    let impostor = keygen(keys.path(), "impostor", "ed25519", "");
    let mut bad = target.clone();
    bad.bastion.as_mut().unwrap().host_key = HostKeyPolicy::Fingerprints(vec![impostor.fingerprint.clone()]);
    let err = Pool::new().client(bad).exec("true", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Bastion { source, .. } if matches!(**source, Error::HostKeyMismatch { .. })),
        "{err:?}"
    );
    assert!(err.is_host_key_error() && !err.is_unreachable(), "{err:?}");
    assert!(
        msg.contains(&format!("failed for root@127.0.0.1:{}:", bastion.port))
            && msg.contains(&bastion.host_key.fingerprint),
        "{msg}"
    );
    assert_eq!((bastion.accepted_logins(), target_sshd.accepted_logins()), (1, 1));

    // Wrong target host key: bastion login succeeds, target refused, naming the target.
    let mut bad = target.clone();
    bad.host_key = HostKeyPolicy::KnownHosts(format!("[127.0.0.2]:{} {}\n", target_sshd.port, impostor.public));
    let err = Pool::new().client(bad).exec("true", None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("root@127.0.0.2:{}", target_sshd.port))
            && msg.contains(&target_sshd.host_key.fingerprint)
            && msg.contains(&impostor.fingerprint),
        "{msg}"
    );
    assert_eq!((bastion.accepted_logins(), target_sshd.accepted_logins()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_names_the_host() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = strata_ssh::Target::new(
        "127.0.0.1",
        "root",
        Auth::key_content(key.private.clone()),
        HostKeyPolicy::InsecureIgnore,
    )
    .with_port(port);
    let err = Client::new(target).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_unreachable(), "refused by the host itself: it does not answer");
    assert!(err.to_string().contains(&format!("root@127.0.0.1:{port}")), "{err}");
}

/// A port nothing listens on (bound, then released).
fn closed_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_host_itself_not_answering_is_unreachable_never_its_bastion() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let mut bastion = Sshd::start(SshdOptions::default(), &[&key]);
    let target_sshd = Sshd::start(SshdOptions { listen: "127.0.0.2", ..Default::default() }, &[&key]);
    let via = |bastion: Target| target_sshd.target("root", &key).with_bastion(bastion);
    let bastion_label = format!("root@127.0.0.1:{}", bastion.port);

    // The bastion reaches the host, which refuses: the host does not answer.
    let mut refused = via(bastion.target("root", &key));
    refused.port = closed_port("127.0.0.2");
    let err = Pool::new().client(refused).exec("true", None).await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains("Connection refused") && err.to_string().contains(&bastion_label), "{err}");

    // The bastion is down: an error naming the bastion, not "the host is gone".
    let mut down = bastion.target("root", &key);
    down.port = closed_port("127.0.0.1");
    let err = Pool::new().client(via(down.clone())).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::Bastion { .. }) && !err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains(&format!("bastion root@127.0.0.1:{}", down.port)), "{err}");

    // The bastion forbids forwarding.
    // sshd keeps the first value of a keyword; a Match block overrides it.
    bastion.add_config("Match all\nAllowTcpForwarding no");
    let err = Pool::new().client(via(bastion.target("root", &key))).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::Bastion { .. }) && !err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains(&bastion_label), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_slower_than_the_timeout_is_an_error_not_an_unreachable_host() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    // Accepts TCP and never speaks SSH: the host answers, its login does not finish.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let target = strata_ssh::Target::new(
        "127.0.0.1",
        "root",
        Auth::key_content(key.private.clone()),
        HostKeyPolicy::InsecureIgnore,
    )
    .with_port(port);
    let pool = Pool::with_options(strata_ssh::PoolOptions {
        connect_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    });
    let err = pool.client(target).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::LoginTimeout { .. }) && !err.is_unreachable(), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_agent_keys_authenticate_and_agent_identity_selects_one() {
    let keys = tmp();
    let authorized = keygen(keys.path(), "authorized", "ed25519", "");
    let other = keygen(keys.path(), "other", "ecdsa", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&authorized]);
    let agent = SshAgent::start();
    let target = |identity: Option<&str>| {
        let mut t = sshd.target("root", &authorized);
        t.auth = Auth::agent(&agent.socket, identity.map(str::to_string));
        t
    };

    // An empty agent: a clear error, nothing offered.
    let err = Client::new(target(None)).exec("true", None).await.unwrap_err().to_string();
    assert!(err.contains("holds no keys") && err.contains(&agent.socket.display().to_string()), "{err}");

    // The unauthorized key first: the agent's keys are offered in turn until one works.
    agent.add(&other);
    agent.add(&authorized);
    let out = Client::new(target(None)).exec("id -un", None).await.unwrap();
    assert_eq!(out.stdout_lossy().trim(), "root");

    // agent_identity by comment picks that key only; a key the server refuses then fails
    // naming the host, the user and the key offered.
    let out = Client::new(target(Some("authorized"))).exec("true", None).await.unwrap();
    assert!(out.success());
    let err = Client::new(target(Some(&other.fingerprint))).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&other.fingerprint) && !msg.contains(&authorized.fingerprint), "{msg}");
    let err = Client::new(target(Some("nobody"))).exec("true", None).await.unwrap_err().to_string();
    assert!(err.contains("no key matching agent_identity \"nobody\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_certificates_are_verified_against_cert_authority_lines() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let ca = keygen(keys.path(), "host-ca", "ed25519", "");
    let other_ca = keygen(keys.path(), "other-ca", "ed25519", "");
    let mut sshd = Sshd::start(SshdOptions::default(), &[&key]);
    sshd.use_host_certificate(&ca, "127.0.0.1", "-5m:+1h");
    let with_known_hosts = |sshd: &Sshd, content: String| {
        let mut t = sshd.target("root", &key);
        t.host_key = HostKeyPolicy::KnownHosts(content);
        t
    };
    let label = format!("root@127.0.0.1:{}", sshd.port);

    // Only the CA in known_hosts, no host key: the certificate is what is trusted.
    let out = Client::new(with_known_hosts(&sshd, sshd.cert_authority_line(&ca))).exec("true", None).await.unwrap();
    assert!(out.success());

    // Signed by a CA known_hosts does not trust for this host: refused, naming the host
    // and both CAs, before anything runs.
    let err =
        Client::new(with_known_hosts(&sshd, sshd.cert_authority_line(&other_ca))).exec("true", None).await.unwrap_err();
    assert!(err.is_host_key_error(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&label) && msg.contains(&ca.fingerprint) && msg.contains(&other_ca.fingerprint), "{msg}");
    // A CA trusted for another host does not count for this one: the host is unknown.
    let elsewhere = format!("@cert-authority other.example {}\n", ca.public);
    let err = Client::new(with_known_hosts(&sshd, elsewhere)).exec("true", None).await.unwrap_err();
    assert!(matches!(err, Error::UnknownHost { .. }) && err.to_string().contains(&label), "{err}");

    // @revoked CA or host key wins over the CA line.
    for revoked in [&ca.public, &sshd.host_key.public] {
        let content = format!("{}@revoked * {revoked}\n", sshd.cert_authority_line(&ca));
        let err = Client::new(with_known_hosts(&sshd, content)).exec("true", None).await.unwrap_err();
        assert!(matches!(err, Error::HostKeyRevoked { .. }), "{err}");
    }

    // A certificate for another name, or an expired one, is not valid for this host.
    sshd.use_host_certificate(&ca, "node9.example", "-5m:+1h");
    let err = Client::new(with_known_hosts(&sshd, sshd.cert_authority_line(&ca))).exec("true", None).await.unwrap_err();
    assert!(err.to_string().contains("valid for node9.example but not for 127.0.0.1"), "{err}");
    sshd.use_host_certificate(&ca, "127.0.0.1", "-2h:-1h");
    let err = Client::new(with_known_hosts(&sshd, sshd.cert_authority_line(&ca))).exec("true", None).await.unwrap_err();
    assert!(err.to_string().contains("expired") && err.to_string().contains(&label), "{err}");

    // Without a CA line nothing asks for the certificate: the plain known_hosts line works.
    let out = Client::new(with_known_hosts(&sshd, sshd.known_hosts_line())).exec("true", None).await.unwrap();
    assert!(out.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_lock_excludes_other_connections_and_an_operator_until_released() {
    let keys = tmp();
    let key = keygen(keys.path(), "id", "ed25519", "");
    let sshd = Sshd::start(SshdOptions::default(), &[&key]);
    let dir = tmp();
    let path = dir.path().join("locks/strata-test.lock").display().to_string();
    // Two pools: two provider processes, each with its own connection.
    let (a, b) = (Pool::new().client(sshd.target("root", &key)), Pool::new().client(sshd.target("root", &key)));
    let never = CancellationToken::new();

    let held = a.lock(&path, Duration::from_secs(5), &never).await.unwrap();
    let err = b.lock(&path, Duration::from_secs(1), &never).await.unwrap_err().to_string();
    assert!(err.contains("still held by another change") && err.contains(&path), "{err}");
    // An operator's own `flock` on the node waits for it too.
    let busy = Command::new("flock").args(["-n", &path, "true"]).status().unwrap();
    assert!(!busy.success(), "flock -n got the lock while it was held");

    // Waiting stops when the operation is cancelled.
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let started = std::time::Instant::now();
    let err = b.lock(&path, Duration::from_secs(60), &cancel).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }) && started.elapsed() < Duration::from_secs(10), "{err}");

    held.release().await;
    // The cancelled waiter above is still queued on the node (its `flock -w` is bounded,
    // not killed): it takes the lock now and, finding its channel closed, lets go at
    // once. So the lock is free within moments, not necessarily this instant.
    let released = (0..50).any(|_| {
        let free = Command::new("flock").args(["-n", &path, "true"]).status().unwrap().success();
        if !free {
            std::thread::sleep(Duration::from_millis(100));
        }
        free
    });
    assert!(released, "not released");
    let again = b.lock(&path, Duration::from_secs(5), &never).await.unwrap();
    // Dropped without release (an error path): let go in the background.
    drop(again);
    let relocked = a.lock(&path, Duration::from_secs(5), &never).await.unwrap();
    // The connection dies with the lock held (the provider process died): the holder
    // reads end-of-file and the lock is free again.
    std::mem::forget(relocked);
    drop(a);
    let mut sshd = sshd;
    sshd.restart();
    let free = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Command::new("flock").args(["-n", &path, "true"]).status().unwrap().success()
    });
    assert!(free, "the lock outlived its connection");
}
