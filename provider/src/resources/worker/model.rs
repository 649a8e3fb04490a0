//! The data of `strata_worker`; field names equal schema names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kube::Taint;
use crate::resources::connection::ConnectionModel;
use crate::resources::control_plane::JoinModel;

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct TaintModel {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl From<&TaintModel> for Taint {
    fn from(t: &TaintModel) -> Taint {
        Taint { key: t.key.clone(), value: t.value.clone().filter(|v| !v.is_empty()), effect: t.effect.clone() }
    }
}

impl From<&Taint> for TaintModel {
    fn from(t: &Taint) -> TaintModel {
        TaintModel { key: t.key.clone(), value: t.value.clone(), effect: t.effect.clone() }
    }
}

/// No `Debug`: holds a token and a kubeconfig.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct WorkerModel {
    pub id: Option<String>,
    pub name: String,
    pub address: Option<String>,
    pub kubernetes_version: String,
    pub join: JoinModel,
    pub kubeconfig: String,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub taint: Vec<TaintModel>,
    pub install_packages: Option<bool>,
    pub joined: Option<bool>,
    pub ssh: ConnectionModel,
}

impl WorkerModel {
    pub fn taints(&self) -> Vec<Taint> {
        self.taint.iter().map(Taint::from).collect()
    }
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }
}

/// A nested block list with no blocks arrives as null in a configuration.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TaintModel>, D::Error> {
    Ok(Option::<Vec<TaintModel>>::deserialize(d)?.unwrap_or_default())
}
