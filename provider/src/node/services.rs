//! Node services: what every node-facing resource does on a systemd node, said as
//! *what* (a package, a file a validator accepted, a unit and its drop-ins), done here
//! as *how* (apt-get, systemctl). Resources never spell out systemctl themselves.

use anyhow::{anyhow, bail};

use super::{quote, Node};

/// What a resource asks of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitAction {
    Enable,
    Disable,
    Start,
    Stop,
    /// Re-reads configuration without dropping connections (haproxy, ganesha).
    Reload,
    Restart,
    /// Restarts only if running: never starts a unit someone stopped on purpose.
    TryRestart,
}

impl UnitAction {
    fn verb(self) -> &'static str {
        match self {
            UnitAction::Enable => "enable",
            UnitAction::Disable => "disable",
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Reload => "reload",
            UnitAction::Restart => "restart",
            UnitAction::TryRestart => "try-restart",
        }
    }
}

/// A unit's state as systemd reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitState {
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active: String,
    /// `enabled`, `disabled`, `static`, `masked`, ... (`systemctl is-enabled`).
    pub enabled: String,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active == "active" || self.active == "reloading"
    }
}

/// How long apt waits for another apt or dpkg to finish before giving up.
const APT_LOCK_TIMEOUT_SECS: u32 = 120;
/// Taken around every package install of this provider on a node.
const APT_TURN_LOCK: &str = "/run/lock/strata-apt.lock";

impl Node {
    /// Refuses a node that does not run systemd, naming it: units cannot be managed
    /// there, and pretending would leave services half-configured.
    pub async fn require_systemd(&self) -> anyhow::Result<()> {
        let out = self.run("checking for systemd", "test -d /run/systemd/system").await?;
        if out.status != 0 {
            bail!(
                "{}: {} does not run systemd (no /run/systemd/system); this resource manages its services as systemd units",
                self.resource(),
                self.label()
            );
        }
        Ok(())
    }

    /// Installs packages that are missing (from whatever apt sources the node has, e.g.
    /// a local mirror), updating the lists first when there are none. Installed
    /// packages are left as they are: no upgrades, downgrades or held-package changes.
    pub async fn install_packages(&self, packages: &[&str]) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        for p in packages {
            let q = format!("dpkg-query -W -f='${{Status}}' {} 2>/dev/null", quote(p));
            let out = self.run(&format!("checking package {p}"), &q).await?;
            if !out.stdout.contains("install ok installed") {
                missing.push(*p);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let words: Vec<String> = missing.iter().map(|p| quote(p)).collect();
        let apt = format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             if [ -z \"$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')\" ]; then \
               apt-get -q -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} update >/dev/null || exit $?; fi; \
             for i in $(seq {tries}); do \
               out=$(apt-get -q -y -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_SECS} -o Dpkg::Options::=--force-confold \
                 install --no-install-recommends {} 2>&1) && exit 0; \
               case \"$out\" in *'Could not get lock'*) sleep 2 ;; *) echo \"$out\" >&2; exit 100 ;; esac; \
             done; echo \"$out\" >&2; exit 100",
            words.join(" "),
            tries = APT_LOCK_TIMEOUT_SECS / 2,
        );
        // Two resources on one node (an NFS export and an image registry on the NFS VM)
        // install at once: installs by this provider take turns under one lock file, and
        // apt's lists lock (which DPkg::Lock::Timeout does not cover: another apt, e.g.
        // cloud-init's) is waited for above.
        let locked = format!("flock -w {APT_LOCK_TIMEOUT_SECS} {APT_TURN_LOCK} sh -c {}", quote(&apt));
        self.run_ok(&format!("installing {}", missing.join(", ")), &locked).await.map(|_| ())
    }

    /// Writes `path` only after `validator` accepted the candidate: the content goes to
    /// a temp file beside it, `validator` runs with `{}` replaced by that file, and only
    /// on success is it renamed over `path`. On refusal the old file is untouched and
    /// the error carries the validator's output. Returns whether the file changed.
    pub async fn write_validated(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        validator: Option<&str>,
    ) -> anyhow::Result<bool> {
        if self.read_file(path).await?.as_deref() == Some(content) {
            return Ok(false);
        }
        let Some(validator) = validator else {
            self.write_file(path, content, mode).await?;
            return Ok(true);
        };
        let candidate = self.validated_candidate(path, content, mode, validator).await?;
        self.run_ok(&format!("installing {path}"), &format!("mv -f -- {} {}", quote(&candidate), quote(path))).await?;
        Ok(true)
    }

    /// Writes a set of files that belong together (a certificate and its key, read again
    /// by etcd at every TLS handshake and by clients at every call): each changed file is
    /// staged beside its path with its mode and group, and all are renamed into place by
    /// one command, so no reader sees a new certificate beside the old key for longer
    /// than between two renames. Two files cannot be swapped as one, so the renames run
    /// under an exclusive `flock` on the set's directory: a reader that needs a matching
    /// pair takes a shared one while it reads (`flock -s DIR cp ...`). Returns whether any
    /// file changed.
    pub async fn write_together(&self, files: &[FileInSet<'_>]) -> anyhow::Result<bool> {
        let mut moves = Vec::new();
        for f in files {
            if self.read_file(&f.path).await?.as_deref() == Some(f.content) {
                continue;
            }
            let (dir, name) = f.path.rsplit_once('/').ok_or_else(|| anyhow!("{} is not an absolute path", f.path))?;
            let staged = format!("{dir}/.{name}.strata-new");
            self.write_file(&staged, f.content, f.mode).await?;
            if let Some(group) = f.group {
                self.run_ok(
                    &format!("giving {} to group {group}", f.path),
                    &format!("chgrp {} {}", quote(group), quote(&staged)),
                )
                .await?;
            }
            moves.push(format!("mv -f -- {} {}", quote(&staged), quote(&f.path)));
        }
        if moves.is_empty() {
            return Ok(false);
        }
        let dirs: std::collections::BTreeSet<&str> =
            files.iter().filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d)).collect();
        let script = moves.join(" && ");
        let command = match dirs.iter().next() {
            Some(dir) if dirs.len() == 1 => {
                format!("flock -x -w 30 {} sh -c {}", quote(dir), quote(&script))
            }
            _ => script,
        };
        self.run_ok("installing the new files together", &command).await?;
        Ok(true)
    }

    /// Has `validator` accept `content` as the next `path` without installing it, for a
    /// change that must be accepted on every node before any node takes it.
    pub async fn check_candidate(&self, path: &str, content: &[u8], mode: u32, validator: &str) -> anyhow::Result<()> {
        let candidate = self.validated_candidate(path, content, mode, validator).await?;
        self.remove_file(&candidate).await
    }

    /// Writes the candidate beside `path` and runs `validator` on it; returns its path.
    async fn validated_candidate(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        validator: &str,
    ) -> anyhow::Result<String> {
        let (dir, name) = path.rsplit_once('/').ok_or_else(|| anyhow!("{path} is not an absolute path"))?;
        let candidate = format!("{dir}/.{name}.strata-candidate");
        self.write_file(&candidate, content, mode).await?;
        let check = validator.replace("{}", &quote(&candidate));
        let out = self.run(&format!("validating the new {path}"), &check).await?;
        if out.status != 0 {
            let _ = self.run("removing the refused candidate", &format!("rm -f -- {}", quote(&candidate))).await;
            bail!(
                "{}: the new {path} was refused by its validator on {} (exit {}), the old file is unchanged: {}{}",
                self.resource(),
                self.label(),
                out.status,
                out.stdout.trim(),
                out.stderr.trim()
            );
        }
        Ok(candidate)
    }

    /// Runs one systemctl action on a unit.
    pub async fn unit(&self, unit: &str, action: UnitAction) -> anyhow::Result<()> {
        let verb = action.verb();
        self.run_ok(&format!("{verb} {unit}"), &format!("systemctl {verb} {}", quote(unit))).await.map(|_| ())
    }

    /// The unit's active and enabled state.
    pub async fn unit_state(&self, unit: &str) -> anyhow::Result<UnitState> {
        let u = quote(unit);
        let out = self
            .run(
                &format!("querying {unit}"),
                &format!("systemctl is-active {u}; systemctl is-enabled {u} 2>/dev/null || true"),
            )
            .await?;
        let mut lines = out.stdout.lines().map(str::trim);
        let active = lines.next().unwrap_or("unknown").to_string();
        let enabled = lines.next().filter(|l| !l.is_empty()).unwrap_or("not-found").to_string();
        Ok(UnitState { active, enabled })
    }

    /// Enables a unit and makes it run: started when stopped, else `running_action`
    /// (e.g. a reload after its configuration changed, or nothing).
    pub async fn ensure_running(&self, unit: &str, running_action: Option<UnitAction>) -> anyhow::Result<()> {
        let state = self.unit_state(unit).await?;
        if state.enabled == "masked" {
            bail!("{}: {unit} is masked on {}; unmask it first", self.resource(), self.label());
        }
        if state.enabled == "disabled" {
            self.unit(unit, UnitAction::Enable).await?;
        }
        if !state.is_active() {
            self.unit(unit, UnitAction::Start).await
        } else if let Some(action) = running_action {
            self.unit(unit, action).await
        } else {
            Ok(())
        }
    }

    /// Writes a drop-in `/etc/systemd/system/UNIT.d/NAME.conf` and reloads systemd's
    /// view of units when it changed. Returns whether it changed.
    pub async fn drop_in(&self, unit: &str, name: &str, content: &str) -> anyhow::Result<bool> {
        let path = format!("/etc/systemd/system/{unit}.d/{name}.conf");
        let changed = self.write_validated(&path, content.as_bytes(), 0o644, None).await?;
        if changed {
            self.run_ok("reloading systemd units", "systemctl daemon-reload").await?;
        }
        Ok(changed)
    }
}

/// One file of [`Node::write_together`].
pub struct FileInSet<'a> {
    pub path: String,
    pub content: &'a [u8],
    pub mode: u32,
    /// The group that must own it (e.g. a daemon's group for its key), set before it is in
    /// place.
    pub group: Option<&'a str>,
}
