//! One member's node: the etcd package, its certificates and settings, Debian's
//! `etcd.service` with a drop-in, its data directory, and `etcdctl` run there with the
//! health-check client certificate.

use anyhow::{anyhow, bail};

use super::certs::{self, Issued, IssuedCert};
use super::{MemberModel, ReleaseArchiveModel};
use crate::node::services::{FileInSet, UnitAction};
use crate::node::{quote, Exec, Node};

pub const UNIT: &str = "etcd.service";
pub const PKI_DIR: &str = "/etc/etcd/pki";
/// Settings that hold for the member's whole life.
pub const ENV_FILE: &str = "/etc/etcd/strata.env";
/// `--initial-*` settings: read by etcd only when its data directory is empty.
pub const INITIAL_ENV_FILE: &str = "/etc/etcd/strata-initial.env";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// How long a started or added member may take to answer healthy.
const HEALTHY_WITHIN_SECS: u32 = 90;

/// The Debian unit reads `/etc/default/etcd`; the drop-in adds strata's files after it
/// (later files win), and keeps etcd from starting until strata has configured the
/// member: the package starts the unit on install, which would otherwise initialise a
/// stray single-member cluster on localhost.
const DROP_IN: &str =
    "[Unit]\nConditionPathExists=/etc/etcd/strata.env\n\n[Service]\nEnvironmentFile=/etc/etcd/strata.env\n\
EnvironmentFile=-/etc/etcd/strata-initial.env\nRestart=on-failure\nRestartSec=2s\nTimeoutStartSec=120s\n";

fn url_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

pub fn client_url(address: &str) -> String {
    format!("https://{}:{CLIENT_PORT}", url_host(address))
}

pub fn peer_url(address: &str) -> String {
    format!("https://{}:{PEER_PORT}", url_host(address))
}

/// `name=peer-url,...`: `--initial-cluster` of `members`.
pub fn initial_cluster(members: &[MemberModel]) -> String {
    members.iter().map(|m| format!("{}={}", m.name, peer_url(m.address()))).collect::<Vec<_>>().join(",")
}

/// The member's lasting settings: TLS with client-certificate authentication on both
/// client and peer URLs.
pub fn render_env(m: &MemberModel, data_dir: &str) -> String {
    let pki = PKI_DIR;
    format!(
        "# Written by strata_etcd_cluster.\nETCD_NAME={name}\nETCD_DATA_DIR={data_dir}\n\
         ETCD_LISTEN_CLIENT_URLS={client},https://127.0.0.1:{CLIENT_PORT}\nETCD_ADVERTISE_CLIENT_URLS={client}\n\
         ETCD_LISTEN_PEER_URLS={peer}\nETCD_INITIAL_ADVERTISE_PEER_URLS={peer}\n\
         ETCD_CERT_FILE={pki}/server.crt\nETCD_KEY_FILE={pki}/server.key\nETCD_TRUSTED_CA_FILE={pki}/ca.crt\n\
         ETCD_CLIENT_CERT_AUTH=true\n\
         ETCD_PEER_CERT_FILE={pki}/peer.crt\nETCD_PEER_KEY_FILE={pki}/peer.key\nETCD_PEER_TRUSTED_CA_FILE={pki}/ca.crt\n\
         ETCD_PEER_CLIENT_CERT_AUTH=true\n",
        name = m.name,
        client = client_url(m.address()),
        peer = peer_url(m.address()),
    )
}

pub fn render_initial(initial_cluster: &str, state: &str, token: &str) -> String {
    format!(
        "ETCD_INITIAL_CLUSTER={initial_cluster}\nETCD_INITIAL_CLUSTER_STATE={state}\nETCD_INITIAL_CLUSTER_TOKEN={token}\n"
    )
}

/// The files a member's certificates go to: (path, content, mode).
pub fn cert_files<'a>(
    ca_cert: &'a str,
    m: &MemberModel,
    issued: &'a Issued,
) -> anyhow::Result<Vec<(String, &'a str, u32)>> {
    let get = |name: &str| -> anyhow::Result<&'a IssuedCert> {
        issued.get(name).ok_or_else(|| anyhow!("no {name} certificate in state"))
    };
    let (server, peer, health) =
        (get(&certs::server_name(&m.name))?, get(&certs::peer_name(&m.name))?, get(certs::HEALTHCHECK_CLIENT)?);
    Ok(vec![
        (format!("{PKI_DIR}/ca.crt"), ca_cert, 0o644),
        (format!("{PKI_DIR}/server.crt"), &server.cert, 0o644),
        (format!("{PKI_DIR}/server.key"), &server.key, 0o640),
        (format!("{PKI_DIR}/peer.crt"), &peer.cert, 0o644),
        (format!("{PKI_DIR}/peer.key"), &peer.key, 0o640),
        (format!("{PKI_DIR}/healthcheck-client.crt"), &health.cert, 0o644),
        (format!("{PKI_DIR}/healthcheck-client.key"), &health.key, 0o600),
    ])
}

/// What a member's node has, before anything is changed there.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// strata's settings are there.
    pub configured: bool,
    /// The data directory holds a member (`member/`).
    pub has_data: bool,
    pub active: bool,
}

/// `etcdctl` with TLS and the health-check client certificate in `pki`.
pub fn etcdctl(pki: &str, endpoints: &str) -> String {
    let (ca, cert, key) =
        (format!("{pki}/ca.crt"), format!("{pki}/healthcheck-client.crt"), format!("{pki}/healthcheck-client.key"));
    crate::etcd::etcdctl(&crate::etcd::ClientFiles { ca: &ca, cert: &cert, key: &key }, endpoints, 15)
}

/// A member and the node it runs on, for one operation.
pub struct Member<'a> {
    pub m: &'a MemberModel,
    pub node: Node,
}

impl Member<'_> {
    pub fn client_url(&self) -> String {
        client_url(self.m.address())
    }

    pub async fn inspect(&self, data_dir: &str) -> anyhow::Result<Found> {
        let out = self
            .node
            .run(
                "inspecting the etcd member",
                &format!(
                    "test -f {ENV_FILE} && echo configured; test -d {}/member && echo data; \
                     systemctl is-active --quiet {UNIT} && echo active; true",
                    quote(data_dir)
                ),
            )
            .await?;
        let has = |w: &str| out.stdout.lines().any(|l| l.trim() == w);
        Ok(Found { configured: has("configured"), has_data: has("data"), active: has("active") })
    }

    /// The drop-in, then the packages (which cannot start etcd before its settings exist)
    /// or the release archive.
    pub async fn install(
        &self,
        package_version: Option<&str>,
        archive: Option<&ReleaseArchiveModel>,
    ) -> anyhow::Result<()> {
        self.node.require_systemd().await?;
        self.node.drop_in(UNIT, "strata", DROP_IN).await?;
        if let Some(a) = archive {
            return super::archive::install(&self.node, a).await;
        }
        let pinned: Vec<String> = ["etcd-server", "etcd-client"]
            .iter()
            .map(|p| match package_version {
                Some(v) => format!("{p}={v}"),
                None => p.to_string(),
            })
            .collect();
        let names: Vec<&str> = pinned.iter().map(String::as_str).collect();
        self.node.install_packages(&names).await
    }

    /// Writes certificates and lasting settings; returns whether anything changed.
    pub async fn write_config(&self, ca_cert: &str, issued: &Issued, data_dir: &str) -> anyhow::Result<bool> {
        // etcd reads its certificate files again at every TLS handshake, and clients
        // (etcdctl, the API servers' health checks) at every call: the set goes into place
        // at once. etcd runs as the package's etcd user: it reads the keys through its
        // group, given before they are in place.
        let files = cert_files(ca_cert, self.m, issued)?;
        let set: Vec<FileInSet<'_>> = files
            .iter()
            .map(|(path, content, mode)| FileInSet {
                path: path.clone(),
                content: content.as_bytes(),
                mode: *mode,
                group: (path.ends_with("/server.key") || path.ends_with("/peer.key")).then_some("etcd"),
            })
            .collect();
        let mut changed = self.node.write_together(&set).await?;
        changed |= self.node.write_validated(ENV_FILE, render_env(self.m, data_dir).as_bytes(), 0o644, None).await?;
        let d = quote(data_dir);
        self.node
            .run_ok(
                "giving etcd its data directory",
                &format!("chgrp etcd {PKI_DIR}/server.key {PKI_DIR}/peer.key && mkdir -p {d} && chown etcd:etcd {d} && chmod 700 {d}"),
            )
            .await?;
        Ok(changed)
    }

    pub async fn write_initial(&self, content: &str) -> anyhow::Result<()> {
        self.node.write_validated(INITIAL_ENV_FILE, content.as_bytes(), 0o644, None).await.map(|_| ())
    }

    /// Whether the files on the node are the ones `issued` and the settings say.
    pub async fn config_matches(&self, ca_cert: &str, issued: &Issued, data_dir: &str) -> anyhow::Result<bool> {
        for (path, content, _) in cert_files(ca_cert, self.m, issued)? {
            if path.ends_with(".key") {
                continue;
            }
            if self.node.read_file(&path).await?.as_deref() != Some(content.as_bytes()) {
                return Ok(false);
            }
        }
        Ok(self.node.read_file(ENV_FILE).await?.as_deref() == Some(render_env(self.m, data_dir).as_bytes()))
    }

    /// The certificates on disk, for adopting a running member without restarting it.
    pub async fn read_certs(&self) -> anyhow::Result<Option<(IssuedCert, IssuedCert, IssuedCert)>> {
        let mut files = Vec::new();
        for f in
            ["server.crt", "server.key", "peer.crt", "peer.key", "healthcheck-client.crt", "healthcheck-client.key"]
        {
            match self.node.read_file(&format!("{PKI_DIR}/{f}")).await? {
                Some(b) => files.push(String::from_utf8(b).map_err(|_| anyhow!("{PKI_DIR}/{f} is not text"))?),
                None => return Ok(None),
            }
        }
        let mut it = files.into_iter();
        let mut pair = || IssuedCert { cert: it.next().unwrap_or_default(), key: it.next().unwrap_or_default() };
        Ok(Some((pair(), pair(), pair())))
    }

    pub async fn start(&self) -> anyhow::Result<()> {
        self.node.unit(UNIT, UnitAction::Start).await?;
        self.node.unit(UNIT, UnitAction::Enable).await
    }

    pub async fn restart(&self) -> anyhow::Result<()> {
        self.node.unit(UNIT, UnitAction::Restart).await
    }

    /// Restarts a running member of a healthy cluster; a leader first hands its
    /// leadership to another member (`etcdctl move-leader`), so that writes go on
    /// instead of waiting out an election (a write loop during a CA rotation saw
    /// "etcdserver: request timed out, possibly due to connection lost" when the leader
    /// was restarted under it). When the hand-over fails the restart happens anyway:
    /// the election is what would have happened without it.
    pub async fn restart_in_turn(&self) -> anyhow::Result<()> {
        if let Ok(out) = self.etcdctl("reading the member's status", None, "endpoint status -w json").await {
            if let Some((me, _)) = parse_status(&out.stdout).filter(|(me, leader)| me == leader) {
                if let Ok(list) = self.etcdctl("listing the members", None, "member list -w json").await {
                    if let Some(to) = other_started_member(&list.stdout, me) {
                        let moved =
                            self.etcdctl("handing over the leadership", None, &format!("move-leader {to:x}")).await;
                        if !moved.as_ref().is_ok_and(|o| o.status == 0) {
                            tracing::warn!(member = %self.m.name, "could not hand over the leadership before restarting");
                        }
                    }
                }
            }
        }
        self.restart().await
    }

    /// Stops etcd and empties the data directory (the member is gone from the cluster
    /// or never was in it); its settings go too, so nothing starts it again.
    pub async fn stop_and_wipe(&self, data_dir: &str) -> anyhow::Result<()> {
        self.stop_keeping_data().await?;
        self.node
            .run_ok(
                "wiping the etcd data directory",
                &format!(
                    "rm -f {ENV_FILE} {INITIAL_ENV_FILE}; if [ -d {d} ]; then find {d} -mindepth 1 -delete; fi",
                    d = quote(data_dir)
                ),
            )
            .await
            .map(|_| ())
    }

    /// Stops and disables etcd here, leaving its data directory as it is.
    pub async fn stop_keeping_data(&self) -> anyhow::Result<()> {
        let state = self.node.unit_state(UNIT).await?;
        if state.enabled != "not-found" {
            self.node.unit(UNIT, UnitAction::Stop).await?;
            if state.enabled == "enabled" {
                self.node.unit(UNIT, UnitAction::Disable).await?;
            }
        }
        Ok(())
    }

    /// Runs etcdctl here against `endpoints` (this member's own by default).
    pub async fn etcdctl(&self, step: &str, endpoints: Option<&str>, args: &str) -> anyhow::Result<Exec> {
        let own = self.client_url();
        self.node.run(step, &format!("{} {args}", etcdctl(PKI_DIR, endpoints.unwrap_or(&own)))).await
    }

    pub async fn etcdctl_ok(&self, step: &str, args: &str) -> anyhow::Result<String> {
        let out = self.etcdctl(step, None, args).await?;
        if out.status != 0 {
            bail!("{step} on {} failed: {}", self.m.name, out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// Waits (bounded) until this member answers healthy over TLS.
    pub async fn wait_healthy(&self) -> anyhow::Result<()> {
        let check = format!("{} endpoint health", etcdctl(PKI_DIR, &self.client_url()));
        let out = self
            .node
            .run(
                &format!("waiting for member {} to be healthy", self.m.name),
                &format!(
                    "for i in $(seq {HEALTHY_WITHIN_SECS}); do {check} >/dev/null 2>&1 && exit 0; sleep 1; done; {check}"
                ),
            )
            .await?;
        if out.status != 0 {
            bail!(
                "member {} did not answer healthy within {HEALTHY_WITHIN_SECS}s: {}{}",
                self.m.name,
                out.stdout.trim(),
                out.stderr.trim()
            );
        }
        Ok(())
    }

    /// Refuses an etcd older than kubeadm accepts (see [`super::version`]), from what
    /// `etcd --version` says on the node once etcd is installed.
    pub async fn require_supported(&self) -> anyhow::Result<()> {
        let what = format!("member {} ({})", self.m.name, self.node.label());
        match self.version().await? {
            Some(v) => super::version::require_supported(&v, &what)
                .map_err(|e| anyhow!("{e} etcd was not started or restarted with this version on {}.", self.m.name)),
            None => bail!("{what}: `etcd --version` printed no version once etcd was installed"),
        }
    }

    pub async fn version(&self) -> anyhow::Result<Option<String>> {
        let out = self.node.run("reading the etcd version", "etcd --version 2>/dev/null | head -n 1").await?;
        Ok(out.stdout.trim().strip_prefix("etcd Version:").map(|v| v.trim().to_string()))
    }
}

/// (this member's id, the leader's id) from `etcdctl endpoint status -w json`.
pub fn parse_status(json: &str) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let status = &v.as_array()?.first()?["Status"];
    Some((status["header"]["member_id"].as_u64()?, status["leader"].as_u64()?))
}

/// A started member (it has a name) other than `me`, from `etcdctl member list -w json`.
pub fn other_started_member(json: &str, me: u64) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["members"]
        .as_array()?
        .iter()
        .filter(|m| m["name"].as_str().is_some_and(|n| !n.is_empty()) && m["isLearner"].as_bool() != Some(true))
        .filter_map(|m| m["ID"].as_u64())
        .find(|id| *id != me)
}
