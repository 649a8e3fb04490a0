//! `strata_etcd_cluster`: the external etcd cluster of a kubeadm control plane, over
//! TLS, run as Debian's `etcd.service` on each member: formation, adoption of a running
//! cluster, membership changes one member at a time, backups, restore from a snapshot.

mod archive;
mod backup;
mod certs;
mod cluster;
mod member;
mod schema;
pub use schema::check_dir;
mod version;

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::etcd::snapshot;
use crate::framework::{
    ApplyResult, AttributePath, Context, Diagnostic, Diagnostics, PlanChange, Resource, Schema, Timeouts, Value,
};
use crate::resources::cluster_node::{self, ClusterNodeModel};
use certs::Issued;
use schema::{DEFAULT_DATA_DIR, DEFAULT_RENEW_BEFORE_DAYS, DEFAULT_VALIDITY_DAYS};

pub struct EtcdCluster;

/// A member is a node of the shared shape; its `address` is required (its peer URL).
pub type MemberModel = ClusterNodeModel;

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct BackupModel {
    pub dir: String,
    pub schedule: Option<String>,
    pub keep: Option<i64>,
}

/// An etcd release archive on the Terraform host, instead of the Debian packages.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ReleaseArchiveModel {
    pub path: String,
    pub sha256: String,
}

/// A member as last observed.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct MemberStatus {
    pub name: String,
    pub id: String,
    pub healthy: bool,
    pub configured: bool,
}

/// Field names equal schema names. No `Debug`: holds private keys.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct EtcdClusterModel {
    pub id: Option<String>,
    pub ca_cert: String,
    pub ca_key: String,
    pub member: Vec<MemberModel>,
    pub data_dir: Option<String>,
    pub backup: Option<BackupModel>,
    pub delete_data_on_destroy: Option<bool>,
    pub restore_from_snapshot: Option<String>,
    pub allow_empty_cluster: Option<bool>,
    pub package_version: Option<String>,
    pub release_archive: Option<ReleaseArchiveModel>,
    pub certificate_validity_days: Option<i64>,
    pub renew_before_days: Option<i64>,
    pub version: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub ca_certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_private_key: Option<String>,
    pub cluster_id: Option<String>,
    pub members: Option<Vec<MemberStatus>>,
    pub backup_unit: Option<String>,
    pub certificates: Option<Issued>,
}

impl EtcdClusterModel {
    pub fn data_dir(&self) -> String {
        self.data_dir.clone().unwrap_or_else(|| DEFAULT_DATA_DIR.into())
    }

    pub fn validity_days(&self) -> i64 {
        self.certificate_validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS)
    }

    pub fn renew_before_days(&self) -> i64 {
        self.renew_before_days.unwrap_or(DEFAULT_RENEW_BEFORE_DAYS)
    }

    /// The attributes that follow from the configuration and the issued certificates.
    pub fn finish(&mut self) {
        self.endpoints = Some(self.member.iter().map(|m| member::client_url(m.address())).collect());
        self.ca_certificate = Some(self.ca_cert.clone());
        let client = self.certificates.as_ref().and_then(|c| c.get(certs::APISERVER_CLIENT)).cloned();
        self.client_certificate = client.as_ref().map(|c| c.cert.clone());
        self.client_private_key = client.map(|c| c.key);
        self.backup_unit = self.backup.as_ref().map(|_| backup::TIMER.to_string());
    }
}

fn members_of(config: &Value) -> Vec<&Value> {
    match config.attr("member") {
        Some(Value::List(items)) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Plan-time checks across members: count, unique names and addresses.
fn validate_members(config: &Value, diags: &mut Diagnostics) {
    let Some(Value::List(items)) = config.attr("member") else {
        if config.attr("member").is_some_and(Value::is_unknown) {
            return;
        }
        diags.push(
            Diagnostic::error(
                "No etcd members",
                "Configure at least one member block (three for a quorum that survives one loss).",
            )
            .at(AttributePath::root("member")),
        );
        return;
    };
    if items.is_empty() {
        diags.push(
            Diagnostic::error(
                "No etcd members",
                "Configure at least one member block (three for a quorum that survives one loss).",
            )
            .at(AttributePath::root("member")),
        );
    } else if items.len() % 2 == 0 {
        diags.push(
            Diagnostic::warning(
                "Even number of etcd members",
                format!(
                    "{} members tolerate no more failures than {}: the extra member adds no fault tolerance and one more \
                     vote to gather. Use an odd number.",
                    items.len(),
                    items.len() - 1
                ),
            )
            .at(AttributePath::root("member")),
        );
    }
    cluster_node::validate(items, |i| AttributePath::root("member").index(i), diags);
}

/// (name, address) of each configured member, when all are known.
fn planned_members(v: &Value) -> Option<Vec<(String, String)>> {
    members_of(v)
        .into_iter()
        .map(|m| Some((m.attr("name")?.as_str()?.to_string(), m.attr("address")?.as_str()?.to_string())))
        .collect()
}

fn prior_model(plan: &PlanChange) -> Option<EtcdClusterModel> {
    crate::framework::model::to_model::<EtcdClusterModel>(&plan.prior).ok()
}

#[async_trait]
impl Resource for EtcdCluster {
    type Model = EtcdClusterModel;

    fn name(&self) -> &'static str {
        "etcd_cluster"
    }

    fn schema(&self) -> Schema {
        schema::schema()
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts { read: std::time::Duration::from_secs(2 * 60), ..Timeouts::default() }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate_members(config, diags);
        // The version is known at plan only when it is pinned; otherwise the apply checks
        // what each member runs (`etcd --version`) before etcd is started or restarted.
        if let Some(Value::String(v)) = config.attr("package_version") {
            if let Err(e) =
                version::require_supported(&version::upstream_of_debian(v), &format!("package_version {v:?}"))
            {
                diags.push(Diagnostic::error("etcd too old for kubeadm", e).at(AttributePath::root("package_version")));
            }
        }
        if let Some(a @ Value::Object(_)) = config.attr("release_archive") {
            if let (Some(Value::String(path)), Some(Value::String(sha256))) = (a.attr("path"), a.attr("sha256")) {
                let m = ReleaseArchiveModel { path: path.clone(), sha256: sha256.clone() };
                if let Err(e) = archive::read_checked(&m) {
                    diags.push(
                        Diagnostic::error("Invalid release_archive", e).at(AttributePath::root("release_archive")),
                    );
                }
            }
            if config.attr("package_version").is_some_and(|v| !v.is_null()) {
                diags.push(
                    Diagnostic::error(
                        "Conflicting installation sources",
                        "package_version pins the Debian packages; release_archive installs from an archive instead. Set one.",
                    )
                    .at(AttributePath::root("package_version")),
                );
            }
        }
    }

    fn modify_plan(&self, plan: &mut PlanChange) {
        // Known from the configuration alone.
        if let Some(members) = planned_members(&plan.planned) {
            let endpoints = members.iter().map(|(_, a)| Value::string(member::client_url(a))).collect();
            if let Some(v) = plan.planned.attr_mut("endpoints") {
                *v = Value::List(endpoints);
            }
        }
        if let Some(ca @ Value::String(_)) = plan.planned.attr("ca_cert").cloned() {
            if let Some(v) = plan.planned.attr_mut("ca_certificate") {
                *v = ca;
            }
        }
        let has_backup = plan.planned.attr("backup").is_some_and(|b| !b.is_null() && !b.is_unknown());
        if let Some(v) = plan.planned.attr_mut("backup_unit") {
            *v = if has_backup { Value::string(backup::TIMER) } else { Value::Null };
        }
        let prior = prior_model(plan);
        // The state knows a cluster whose data every member has lost (see cluster::observe).
        let lost = prior.as_ref().filter(|p| p.cluster_id.is_none()).and_then(|p| p.id.clone());
        // The snapshot is read only when the cluster is formed: a file moved since must
        // not break the plans of a running cluster.
        if plan.is_create() || lost.is_some() {
            if let Some(Value::String(path)) = plan.planned.attr("restore_from_snapshot") {
                if let Err(e) = snapshot::check(path) {
                    plan.diagnostics.push(
                        Diagnostic::error("Invalid restore_from_snapshot", e)
                            .at(AttributePath::root("restore_from_snapshot")),
                    );
                }
            }
        }
        if plan.is_create() {
            return;
        }
        if let Some(id) = &lost {
            let restore = plan.planned.attr("restore_from_snapshot").is_some_and(|v| !v.is_null());
            let allow =
                plan.planned.attr("allow_empty_cluster").is_some_and(|v| *v != Value::Bool(false) && !v.is_null());
            // Said at plan, refused at apply (before anything is formed): the plan of
            // the rest of the configuration, e.g. the machines re-created, still runs.
            let then = match (restore, allow) {
                (true, _) => "The apply restores it from restore_from_snapshot.".to_string(),
                (false, true) => "The apply forms a new, empty cluster (allow_empty_cluster = true).".to_string(),
                (false, false) => format!("The apply will refuse it: {}", cluster::refusal(id)),
            };
            plan.diagnostics.push(
                Diagnostic::warning(
                    "etcd cluster data lost",
                    format!("Every member of etcd cluster {id} is gone or without data. {then}"),
                )
                .at(AttributePath::root("restore_from_snapshot")),
            );
            // Formed again: a new cluster id (a restore keeps it only for the same peers).
            for a in ["id", "cluster_id", "members", "version"] {
                plan.set_unknown(a);
            }
        }
        if plan.changed("data_dir") {
            plan.diagnostics.push(
                Diagnostic::error(
                    "data_dir cannot change on a running cluster",
                    "Replacing the cluster would wipe its data. Take a snapshot, and create a cluster with the new \
                     data_dir and restore_from_snapshot instead.",
                )
                .at(AttributePath::root("data_dir")),
            );
            return;
        }
        let Some(prior) = prior else { return };
        // Removing a majority at once would leave the rest without a quorum. A member is
        // its address (peer URL): a renamed member is not removed.
        if let Some(planned) = planned_members(&plan.planned) {
            let kept: BTreeSet<&str> = planned.iter().map(|(_, a)| a.as_str()).collect();
            let removed = prior.member.iter().filter(|m| !kept.contains(m.address())).count();
            if removed * 2 > prior.member.len() {
                plan.diagnostics.push(
                    Diagnostic::error(
                        "Removing a majority of etcd members",
                        format!(
                            "This plan removes {removed} of the {} members at once; the rest could not keep a quorum. \
                             Remove fewer than half in one apply (members change one at a time, never below quorum).",
                            prior.member.len()
                        ),
                    )
                    .at(AttributePath::root("member")),
                );
                return;
            }
        }
        let planned_model = crate::framework::model::to_model::<EtcdClusterModel>(&plan.planned).ok();
        let same_ca = plan.planned.attr("ca_cert") == plan.prior.attr("ca_cert");
        let membership_changed = plan.changed("member");
        let drift = prior.members.as_ref().is_some_and(|ms| ms.iter().any(|s| !s.healthy || !s.configured))
            || prior.members.as_ref().map(Vec::len) != Some(prior.member.len());
        let reissue = match &planned_model {
            Some(p) if plan.planned.attr("member").is_some_and(Value::is_fully_known) => {
                certs::would_issue(prior.certificates.as_ref(), same_ca, &p.member, p.renew_before_days())
            }
            _ => vec!["unknown".into()],
        };
        // A removed member's certificates leave the map too.
        let wanted: BTreeSet<String> =
            planned_model.iter().flat_map(|p| certs::wanted(&p.member)).map(|w| w.name).collect();
        let kept: BTreeSet<String> = prior.certificates.iter().flat_map(|c| c.keys().cloned()).collect();
        if !reissue.is_empty() || wanted != kept {
            plan.set_unknown("certificates");
            if reissue.iter().any(|n| n == certs::APISERVER_CLIENT || n == "unknown") {
                plan.set_unknown("client_certificate");
                plan.set_unknown("client_private_key");
            }
        }
        if membership_changed
            || drift
            || !reissue.is_empty()
            || plan.changed("backup")
            || plan.changed("package_version")
            || plan.changed("release_archive")
        {
            plan.set_unknown("members");
        }
        if plan.changed("package_version") || plan.changed("release_archive") {
            plan.set_unknown("version");
        }
    }

    async fn create(&self, ctx: &Context, planned: EtcdClusterModel) -> ApplyResult<EtcdClusterModel> {
        let mut m = planned;
        cluster::create(ctx, &mut m).await?;
        if !cluster::observe(ctx, &mut m).await? {
            return Err(anyhow::anyhow!("the cluster was formed but no member can be found afterwards").into());
        }
        Ok(m)
    }

    async fn read(&self, ctx: &Context, state: EtcdClusterModel) -> Result<Option<EtcdClusterModel>, Diagnostics> {
        let mut m = state;
        Ok(cluster::observe(ctx, &mut m).await?.then_some(m))
    }

    async fn update(
        &self,
        ctx: &Context,
        prior: EtcdClusterModel,
        planned: EtcdClusterModel,
    ) -> ApplyResult<EtcdClusterModel> {
        let mut m = planned;
        let same_ca = prior.ca_cert == m.ca_cert;
        let (issued, _) = cluster::issue(&m, prior.certificates.as_ref(), same_ca)?;
        m.certificates = Some(issued);
        // Members are matched by address (their peer URL), never by name: a renamed
        // member stays, restarted under its new name.
        let addresses: BTreeSet<&str> = m.member.iter().map(|x| x.address()).collect();
        let leaving_models: Vec<MemberModel> =
            prior.member.iter().filter(|x| !addresses.contains(x.address())).cloned().collect();
        let config = m.member.clone();
        let members = cluster::connect(ctx, &config).await?;
        let leaving = cluster::connect(ctx, &leaving_models).await?;
        let issued = m.certificates.clone().unwrap_or_default();
        let result = match prior.id.as_deref() {
            Some(id) => cluster::recover_if_lost(&m, &members, &issued, id).await,
            None => Ok(false),
        };
        let result = match result {
            Ok(false) => cluster::converge(&m, &members, &leaving, Some(&prior.ca_cert)).await,
            Ok(true) => Ok(()),
            Err(e) => return Err(e.into()),
        };
        // Whatever happened, state says what the cluster now is.
        let observed = cluster::observe(ctx, &mut m).await;
        match (result, observed) {
            (Ok(()), Ok(true)) => Ok(m),
            (Err(e), _) => Err(crate::framework::Failure::with_state(m, e)),
            (Ok(()), Ok(false)) => {
                Err(anyhow::anyhow!("no member of the cluster can be found after the change").into())
            }
            (Ok(()), Err(d)) => Err(crate::framework::Failure::with_state(m, d)),
        }
    }

    async fn delete(&self, ctx: &Context, state: EtcdClusterModel) -> Result<(), Diagnostics> {
        let data_dir = state.data_dir();
        let members = cluster::connect(ctx, &state.member).await?;
        let wipe = state.delete_data_on_destroy == Some(true);
        futures::future::try_join_all(members.iter().map(|x| async {
            backup::remove(x).await?;
            // Data is never deleted by a default: only delete_data_on_destroy wipes it.
            match wipe {
                true => x.stop_and_wipe(&data_dir).await?,
                false => x.stop_keeping_data().await?,
            }
            x.node
                .run_ok(
                    "removing the etcd certificates",
                    &format!(
                        "rm -rf {} /etc/systemd/system/{}.d/strata.conf && systemctl daemon-reload",
                        member::PKI_DIR,
                        member::UNIT
                    ),
                )
                .await
        }))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
