//! `k3s server`: CAs and token, embedded etcd (first server, joining server, restart,
//! cluster reset), bootstrap data in etcd, the stand-in API server with the supervisor
//! paths on 6443, the admin kubeconfig, the agent side (containerd, images, Node), the
//! snapshot schedule, sd_notify.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::config::Config;
use super::etcd::{self as emb, EtcdPaths};
use super::token::{self, Token};
use super::{bootstrap, containerd, node, snapshot, supervisor};
use crate::kubeconfig::Kubeconfig;
use crate::pki::{self, Usage};

pub const RESET_DONE: &str =
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now.";

struct Dirs {
    data: PathBuf,
    server: PathBuf,
    tls: PathBuf,
}

impl Dirs {
    fn tls(&self, f: &str) -> String {
        self.tls.join(f).to_string_lossy().into_owned()
    }
}

fn ensure_cas(d: &Dirs) -> Result<()> {
    pki::ensure_ca(&d.tls("server-ca.crt"), &d.tls("server-ca.key"), "k3s-server-ca")?;
    pki::ensure_ca(&d.tls("client-ca.crt"), &d.tls("client-ca.key"), "k3s-client-ca")?;
    pki::ensure_ca(&d.tls("request-header-ca.crt"), &d.tls("request-header-ca.key"), "k3s-request-header-ca")?;
    if !Path::new(&d.tls("service.key")).exists() {
        pki::write_file(d.tls("service.key"), &rcgen::KeyPair::generate()?.serialize_pem(), 0o600)?;
    }
    emb::ensure_cas(&EtcdPaths::new(&d.server))
}

/// The token secret: `token`, else `token-file`, else the one already on disk, else new.
fn secret_of(cfg: &Config, d: &Dirs) -> Result<(Option<Token>, String)> {
    let given = match (cfg.str("token"), cfg.str("token-file")) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(f)) => Some(std::fs::read_to_string(f).with_context(|| format!("reading token-file {f}"))?),
        _ => None,
    };
    if let Some(t) = given {
        let t = Token::parse(&t, "server")?;
        let s = t.password.clone();
        return Ok((Some(t), s));
    }
    if let Ok(t) = std::fs::read_to_string(d.server.join("token")) {
        return Ok((None, Token::parse(&t, "server")?.password));
    }
    Ok((None, token::random_secret()))
}

fn write_tokens(d: &Dirs, secret: &str) -> Result<String> {
    let ca = std::fs::read(d.tls("server-ca.crt"))?;
    let full = Token::format(&token::ca_hash(&ca), "server", secret);
    pki::write_file(d.server.join("token"), &format!("{full}\n"), 0o600)?;
    pki::write_file(d.server.join("node-token"), &format!("{full}\n"), 0o600)?;
    Ok(full)
}

/// Puts this token's bootstrap data into etcd when none is there, or takes etcd's
/// (writing it to disk); refuses data encrypted with another token.
async fn reconcile_bootstrap(etcd: &crate::etcd::Etcd, d: &Dirs, secret: &str) -> Result<()> {
    let entries = etcd.list("/bootstrap/").await.context("reading the bootstrap data from etcd")?;
    match bootstrap::find(&entries, secret)? {
        Some(plain) => bootstrap::write_out(&d.tls, &plain),
        None => {
            let enc = bootstrap::encrypt(secret, &bootstrap::collect(&d.tls)?)?;
            etcd.put(&bootstrap::storage_key(secret), enc.as_bytes()).await.context("storing the bootstrap data")
        }
    }
}

fn kubeconfig_mode(cfg: &Config) -> Result<u32> {
    let m = cfg.string_or("write-kubeconfig-mode", "0600");
    u32::from_str_radix(m.trim_start_matches("0o"), 8).with_context(|| format!("invalid write-kubeconfig-mode {m:?}"))
}

/// The admin certificate on disk when k3s would keep it: signed by the client CA and
/// more than 90 days from expiry (k3s renews its certificates at start within 90 days
/// of expiry, and otherwise keeps them, so k3s.yaml is the same across restarts).
fn reusable_admin(d: &Dirs) -> Option<(String, String)> {
    let cert = std::fs::read_to_string(d.tls.join("client-admin.crt")).ok()?;
    let key = std::fs::read_to_string(d.tls.join("client-admin.key")).ok()?;
    let ca = std::fs::read_to_string(d.tls("client-ca.crt")).ok()?;
    pki::verify_signed_by(&cert, &ca).ok()?;
    let info = pki::cert_info(&cert, "client-admin.crt").ok()?;
    (info.not_after - ::time::OffsetDateTime::now_utc() > ::time::Duration::days(90)).then_some((cert, key))
}

/// The admin kubeconfig (`default` cluster, context and user, server 127.0.0.1).
fn admin_kubeconfig(d: &Dirs, port: i64) -> Result<Kubeconfig> {
    let (cert_pem, key_pem) = match reusable_admin(d) {
        Some(pair) => pair,
        None => {
            let ca = pki::load_ca(&d.tls("client-ca.crt"), &d.tls("client-ca.key"))?;
            let leaf = pki::issue(&ca, "system:admin", &["system:masters"], &[], Usage::Client)?;
            pki::write_file(d.tls.join("client-admin.crt"), &leaf.cert_pem, 0o644)?;
            pki::write_file(d.tls.join("client-admin.key"), &leaf.key_pem, 0o600)?;
            (leaf.cert_pem, leaf.key_pem)
        }
    };
    let server_ca = std::fs::read_to_string(d.tls("server-ca.crt"))?;
    let mut k = Kubeconfig::new(
        "default",
        &format!("https://127.0.0.1:{port}"),
        &server_ca,
        "default",
        Kubeconfig::cert_user(&cert_pem, &key_pem),
    );
    k.contexts[0].name = "default".into();
    k.current_context = "default".into();
    Ok(k)
}

fn serving_cert(d: &Dirs, cfg: &Config, node_name: &str, node_ip: &str) -> Result<()> {
    let ca = pki::load_ca(&d.tls("server-ca.crt"), &d.tls("server-ca.key"))?;
    let mut sans: Vec<String> = vec![
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "10.43.0.1".into(),
        node_name.into(),
        node_ip.into(),
    ];
    for s in cfg.list("tls-san") {
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    let leaf = pki::issue(&ca, "kube-apiserver", &[], &sans, Usage::Server)?;
    pki::write_file(d.tls.join("serving-kube-apiserver.crt"), &leaf.cert_pem, 0o644)?;
    pki::write_file(d.tls.join("serving-kube-apiserver.key"), &leaf.key_pem, 0o600)
}

async fn join_bootstrap(url: &str, tok: &Token, d: &Dirs) -> Result<Vec<String>> {
    let ca = super::fetch_cacerts(url, tok).await?;
    let http = super::http(Some(&ca))?;
    let base = url.trim_end_matches('/');
    let r = http
        .get(format!("{base}/v1-k3s/server-bootstrap"))
        .basic_auth("server", Some(&tok.password))
        .send()
        .await
        .context("getting the bootstrap data")?;
    if !r.status().is_success() {
        bail!("failed to get bootstrap data from {base}: {} (is the token the server token?)", r.status());
    }
    bootstrap::write_out(&d.tls, &r.bytes().await?)?;
    let info: serde_json::Value = http
        .get(format!("{base}/db/info"))
        .basic_auth("server", Some(&tok.password))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let urls: Vec<String> = info["members"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["clientURLs"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    if urls.is_empty() {
        bail!("{base}/db/info lists no etcd members");
    }
    Ok(urls)
}

pub async fn run(cfg: Config, version: String) -> Result<i32> {
    let data = PathBuf::from(cfg.string_or("data-dir", super::DATA_DIR));
    let d = Dirs { server: data.join("server"), tls: data.join("server/tls"), data: data.clone() };
    let external = cfg.str("datastore-endpoint").map(str::to_string);
    if let Some(ds) = &external {
        if !ds.split(',').all(|e| e.starts_with("https://") || e.starts_with("http://")) {
            bail!(
                "the stand-in k3s supports only an external etcd as datastore-endpoint (http(s)://HOST:2379[,...]); \
                 {ds:?} (kine: SQLite, MySQL, Postgres, NATS) is not implemented"
            );
        }
        if cfg.bool("cluster-init") || cfg.bool("cluster-reset") {
            bail!(
                "cluster-init and cluster-reset are for the embedded etcd; they cannot be used with datastore-endpoint"
            );
        }
    }
    for f in ["disable-etcd", "disable-apiserver", "rootless", "docker"] {
        if cfg.bool(f) {
            bail!("the stand-in k3s does not implement --{f}");
        }
    }
    let cron_spec = cfg.string_or("etcd-snapshot-schedule-cron", snapshot::DEFAULT_CRON);
    let cron = snapshot::parse_cron(&cron_spec)?;
    for t in cfg.list("node-taint") {
        node::parse_taint(&t)?;
    }
    let mode = kubeconfig_mode(&cfg)?;
    let node_name = super::node_name(&cfg);
    let node_ip = super::node_ip(&cfg)?;
    let port = cfg.int_or("https-listen-port", 6443);
    let ep = EtcdPaths::new(&d.server);
    let (tok, secret) = secret_of(&cfg, &d)?;
    let join_url = cfg.str("server").map(str::to_string);
    let member = emb::member_name(&node_name, &ep.data)?;

    // --cluster-reset (run once, by hand): a one-member etcd of this node.
    if cfg.bool("cluster-reset") {
        // A fresh machine (the rebuild) has no CAs yet: k3s makes them as at a first
        // start, and the snapshot's bootstrap data replaces them below.
        ensure_cas(&d)?;
        emb::issue_certs(&ep, &node_name, &node_ip)?;
        let restore = cfg.str("cluster-reset-restore-path");
        if let Some(path) = restore {
            snapshot::restore(&ep, Path::new(path), &member, &node_ip)?;
        }
        let start = emb::Start {
            name: &member,
            node_ip: &node_ip,
            initial_cluster: None,
            extra_args: cfg.list("etcd-arg"),
            force_new_cluster: restore.is_none(),
        };
        let mut child = emb::start(&ep, &start).await?;
        let c = emb::client(&ep, &["https://127.0.0.1:2379".into()])?;
        let r = reconcile_bootstrap(&c, &d, &secret).await;
        super::stop_child("etcd", &mut child).await;
        r?;
        println!("{RESET_DONE}");
        eprintln!("I {RESET_DONE}");
        return Ok(0);
    }

    let mut initial_cluster = None;
    let mut etcd_child = None;
    let etcd_flags: (Vec<String>, String, String, String);
    let etcd;
    if let Some(ds) = &external {
        // An external etcd (k3s's endpoint package with an etcd DSN): the bootstrap data
        // is read from it (later servers) or stored in it (the first).
        let eps: Vec<String> = ds.split(',').map(str::to_string).collect();
        let (ca, cert, key) = (
            cfg.string_or("datastore-cafile", ""),
            cfg.string_or("datastore-certfile", ""),
            cfg.string_or("datastore-keyfile", ""),
        );
        etcd = crate::etcd::Etcd::new(&eps, &ca, &cert, &key).context("datastore-endpoint")?;
        let mut up = false;
        for _ in 0..30 {
            if etcd.healthy().await {
                up = true;
                break;
            }
            eprintln!("I Waiting for the datastore {ds}");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        if !up {
            bail!("the datastore {ds} did not answer within 60s");
        }
        let entries = etcd.list("/bootstrap/").await.context("reading the bootstrap data from the datastore")?;
        match bootstrap::find(&entries, &secret)? {
            Some(plain) => bootstrap::write_out(&d.tls, &plain)?,
            None => ensure_cas(&d)?,
        }
        if let Some(t) = &tok {
            t.check_ca(&std::fs::read(d.tls("server-ca.crt"))?)?;
        }
        etcd_flags = (eps, ca, cert, key);
    } else {
        if let (Some(url), false) = (&join_url, ep.has_member()) {
            let Some(tok) = &tok else { bail!("--token is required to join a cluster (server: {url})") };
            eprintln!("I Joining the cluster of {url}");
            let existing = join_bootstrap(url, tok, &d).await?;
            emb::issue_certs(&ep, &node_name, &node_ip)?;
            initial_cluster = Some(emb::join(&ep, &existing, &member, &node_ip).await?);
        } else {
            if !ep.has_member() && !cfg.bool("cluster-init") && join_url.is_none() {
                eprintln!(
                "I the stand-in k3s uses a one-member embedded etcd where real k3s would use SQLite (kine) without cluster-init"
            );
            }
            ensure_cas(&d)?;
            if let Some(t) = &tok {
                t.check_ca(&std::fs::read(d.tls("server-ca.crt"))?)?;
            }
            emb::issue_certs(&ep, &node_name, &node_ip)?;
        }
        etcd_child = Some(
            emb::start(
                &ep,
                &emb::Start {
                    name: &member,
                    node_ip: &node_ip,
                    initial_cluster,
                    extra_args: cfg.list("etcd-arg"),
                    force_new_cluster: false,
                },
            )
            .await?,
        );
        etcd = emb::client(&ep, &["https://127.0.0.1:2379".into()])?;
        etcd_flags = (vec!["https://127.0.0.1:2379".into()], ep.server_ca(), ep.client_cert(), ep.client_key());
    }
    reconcile_bootstrap(&etcd, &d, &secret).await?;
    write_tokens(&d, &secret)?;
    serving_cert(&d, &cfg, &node_name, &node_ip)?;
    let admin = admin_kubeconfig(&d, port)?;
    let out = cfg.string_or("write-kubeconfig", super::KUBECONFIG);
    pki::write_file(&out, &admin.to_yaml(), mode)?;

    let flags = crate::apiserver::Flags {
        advertise_address: cfg.str("advertise-address").unwrap_or(&node_ip).to_string(),
        bind_address: cfg.string_or("bind-address", "0.0.0.0"),
        secure_port: port as u16,
        tls_cert_file: d.tls("serving-kube-apiserver.crt"),
        tls_private_key_file: d.tls("serving-kube-apiserver.key"),
        client_ca_file: d.tls("client-ca.crt"),
        etcd_servers: etcd_flags.0,
        etcd_cafile: etcd_flags.1,
        etcd_certfile: etcd_flags.2,
        etcd_keyfile: etcd_flags.3,
        service_cluster_ip_range: cfg.list("service-cidr").first().cloned().unwrap_or("10.43.0.0/16".into()),
        service_account_key_file: vec![d.tls("service.key")],
        enable_bootstrap_token_auth: true,
    };
    let state = Arc::new(crate::apiserver::State {
        flags,
        etcd: etcd.clone(),
        version: super::version::kube_version(&version),
        git_version: Some(version.clone()),
        ca: pki::load_ca(&d.tls("client-ca.crt"), &d.tls("client-ca.key")).ok(),
        observed: Default::default(),
    });
    let agent_secret = match (cfg.str("agent-token"), cfg.str("agent-token-file")) {
        (Some(t), _) => Some(Token::parse(t, "node")?),
        (None, Some(f)) => Some(Token::parse(
            &std::fs::read_to_string(f).with_context(|| format!("reading agent-token-file {f}"))?,
            "node",
        )?),
        _ => None,
    };
    if let Some(a) = &agent_secret {
        a.check_ca(&std::fs::read(d.tls("server-ca.crt"))?)?;
        let full = Token::format(&token::ca_hash(&std::fs::read(d.tls("server-ca.crt"))?), "node", &a.password);
        pki::write_file(d.server.join("agent-token"), &format!("{full}\n"), 0o600)?;
    }
    let sup = Arc::new(supervisor::Supervisor {
        tls_dir: d.tls.clone(),
        secret: secret.clone(),
        agent_secret: agent_secret.map(|a| a.password),
        etcd: etcd.clone(),
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let api = tokio::spawn(crate::apiserver::run_with(state, supervisor::router(sup), Some(ready_tx)));

    // The agent side (unless disable-agent): containerd with the images, then the Node.
    let agent = !cfg.bool("disable-agent");
    let mut ctr_child = None;
    if agent {
        let cpaths = containerd::Paths { agent_dir: d.data.join("agent") };
        ctr_child = Some(
            containerd::start(
                &cpaths,
                &cfg.string_or("pause-image", containerd::DEFAULT_PAUSE),
                cfg.str("snapshotter"),
            )
            .await?,
        );
        containerd::write_hosts(
            &cpaths,
            Path::new(&cfg.string_or("private-registry", super::REGISTRIES)),
            cfg.bool("disable-default-registry-endpoint"),
        )?;
        containerd::import_images(&cpaths).await?;
    }

    if ready_rx.await.is_err() {
        let r = api.await;
        bail!("the API server did not start: {r:?}");
    }
    let client = crate::apiclient::ApiClient::from_kubeconfig(&admin)?;
    let spec = node::NodeSpec {
        name: node_name.clone(),
        ip: node_ip.clone(),
        version: version.clone(),
        server: true,
        etcd: external.is_none(),
        labels: cfg.list("node-label"),
        taints: cfg.list("node-taint"),
    };
    eprintln!("I k3s (stand-in) {version} is up and running");
    super::sd_notify_ready();
    if agent {
        tokio::spawn(node::run(client, spec, || {}));
    }
    if !cfg.bool("etcd-disable-snapshots") && external.is_none() {
        let dir = cfg.str("etcd-snapshot-dir").map(PathBuf::from).unwrap_or_else(|| d.server.join("db/snapshots"));
        let keep = cfg.int_or("etcd-snapshot-retention", 5).max(1) as usize;
        tokio::spawn(snapshot::schedule(EtcdPaths::new(&d.server), dir, cron, node_name.clone(), keep));
    }
    // The API server returns on SIGTERM (graceful); then the children stop.
    let r = api.await;
    if let Some(c) = ctr_child.as_mut() {
        super::stop_child("containerd", c).await;
    }
    if let Some(c) = etcd_child.as_mut() {
        super::stop_child("etcd", c).await;
    }
    match r {
        Ok(Ok(())) => Ok(0),
        Ok(Err(e)) => Err(e),
        Err(e) => bail!("API server task: {e}"),
    }
}
