//! Periodic snapshots: a systemd service and timer on every member. The service saves a
//! snapshot only on the member that leads at that moment, so a directory shared by the
//! members (an NFS export) gets one snapshot per run, and backups go on while any
//! quorum of members is up.

use super::member::{etcdctl, Member, PKI_DIR};
use super::schema::{DEFAULT_KEEP, DEFAULT_SCHEDULE};
use super::BackupModel;
use crate::node::quote;
use crate::node::services::UnitAction;

pub const SERVICE: &str = "strata-etcd-backup.service";
pub const TIMER: &str = "strata-etcd-backup.timer";
const SCRIPT: &str = "/usr/local/lib/strata/etcd-backup";

fn unit_path(unit: &str) -> String {
    format!("/etc/systemd/system/{unit}")
}

pub fn script(member: &Member<'_>, b: &BackupModel) -> String {
    let keep = b.keep.unwrap_or(DEFAULT_KEEP);
    format!(
        r#"#!/bin/sh
# Written by strata_etcd_cluster: an etcd snapshot into {dir}, taken on the leader
# only, keeping the newest {keep}.
set -eu
dir={dir_q}
ctl() {{ {ctl} "$@"; }}
status=$(ctl endpoint status -w json)
me=$(printf '%s' "$status" | sed -n 's/.*"member_id":\([0-9]*\).*/\1/p')
leader=$(printf '%s' "$status" | sed -n 's/.*"leader":\([0-9]*\).*/\1/p')
if [ -z "$me" ] || [ "$me" != "$leader" ]; then
  echo "not the leader: no snapshot here"
  exit 0
fi
mkdir -p "$dir"
f="$dir/etcd-snapshot-$(date -u +%Y%m%dT%H%M%S%N).db"
ctl snapshot save "$f.part" >/dev/null
mv "$f.part" "$f"
echo "saved $f"
ls -1 "$dir"/etcd-snapshot-*.db | head -n -{keep} | xargs -r rm -f --
"#,
        dir = b.dir,
        dir_q = quote(&b.dir),
        ctl = etcdctl(PKI_DIR, &member.client_url()),
    )
}

fn service() -> String {
    format!(
        "[Unit]\nDescription=etcd snapshot (strata_etcd_cluster)\nAfter=etcd.service\n\n[Service]\nType=oneshot\nExecStart={SCRIPT}\n"
    )
}

fn timer(schedule: &str) -> String {
    format!(
        "[Unit]\nDescription=Periodic etcd snapshots (strata_etcd_cluster)\n\n[Timer]\nOnCalendar={schedule}\nPersistent=true\n\n\
         [Install]\nWantedBy=timers.target\n"
    )
}

/// Installs (or, with `backup` unset, removes) the backup units on a member.
pub async fn apply(member: &Member<'_>, backup: Option<&BackupModel>) -> anyhow::Result<()> {
    let node = &member.node;
    let Some(b) = backup else { return remove(member).await };
    let schedule = b.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
    // The node's systemd is the judge of a calendar expression.
    node.run_ok("checking backup.schedule", &format!("systemd-analyze calendar {} >/dev/null", quote(schedule)))
        .await
        .map_err(|e| anyhow::anyhow!("backup.schedule {schedule:?} is not a systemd calendar expression: {e:#}"))?;
    let mut changed = node.write_validated(SCRIPT, script(member, b).as_bytes(), 0o700, Some("sh -n {}")).await?;
    changed |= node.write_validated(&unit_path(SERVICE), service().as_bytes(), 0o644, None).await?;
    changed |= node.write_validated(&unit_path(TIMER), timer(schedule).as_bytes(), 0o644, None).await?;
    if changed {
        node.run_ok("reloading systemd units", "systemctl daemon-reload").await?;
    }
    node.ensure_running(TIMER, if changed { Some(UnitAction::Restart) } else { None }).await
}

pub async fn remove(member: &Member<'_>) -> anyhow::Result<()> {
    let node = &member.node;
    if node.unit_state(TIMER).await?.enabled == "not-found" {
        return Ok(());
    }
    node.unit(TIMER, UnitAction::Stop).await?;
    node.unit(TIMER, UnitAction::Disable).await?;
    node.run_ok(
        "removing the backup units",
        &format!("rm -f {} {} {SCRIPT} && systemctl daemon-reload", unit_path(TIMER), unit_path(SERVICE)),
    )
    .await
    .map(|_| ())
}

/// Whether the units on the node are the ones `backup` asks for.
pub async fn matches(member: &Member<'_>, backup: Option<&BackupModel>) -> anyhow::Result<bool> {
    let node = &member.node;
    let timer_file = node.read_file(&unit_path(TIMER)).await?;
    match backup {
        None => Ok(timer_file.is_none()),
        Some(b) => {
            let schedule = b.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
            let script_file = node.read_file(SCRIPT).await?;
            Ok(timer_file.as_deref() == Some(timer(schedule).as_bytes())
                && script_file.as_deref() == Some(script(member, b).as_bytes())
                && node.unit_state(TIMER).await?.is_active())
        }
    }
}
