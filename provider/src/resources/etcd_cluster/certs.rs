//! The certificates an etcd cluster needs, issued from its CA and kept in state: per
//! member a server certificate (clients) and a peer certificate (members), both with
//! the member's address and name plus 127.0.0.1/localhost as SANs; a client
//! certificate for kube-apiserver and one for health checks and backups. A kept
//! certificate is re-issued only when the CA changes, its SANs no longer fit, or it
//! is within `renew_before_days` of expiry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MemberModel;
use crate::pki::{self, Usage};

pub const APISERVER_CLIENT: &str = "apiserver-client";
pub const HEALTHCHECK_CLIENT: &str = "healthcheck-client";

/// A certificate and its key, PEM. No `Debug`: holds a private key.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
pub struct IssuedCert {
    pub cert: String,
    pub key: String,
}

pub type Issued = BTreeMap<String, IssuedCert>;

pub fn server_name(member: &str) -> String {
    format!("{member}/server")
}

pub fn peer_name(member: &str) -> String {
    format!("{member}/peer")
}

/// One certificate the cluster needs.
pub struct Wanted {
    pub name: String,
    pub common_name: String,
    pub sans: Vec<String>,
    pub usage: Usage,
}

pub fn wanted(members: &[MemberModel]) -> Vec<Wanted> {
    let mut out = Vec::new();
    for m in members {
        let sans = vec![m.address().to_string(), m.name.clone(), "127.0.0.1".into(), "localhost".into()];
        // Server and client auth, as kubeadm issues etcd/server: etcd's v3 JSON gateway
        // (what kube-apiserver stand-ins and HTTP clients use) dials etcd itself with
        // the server certificate, which client-certificate auth then checks.
        out.push(Wanted {
            name: server_name(&m.name),
            common_name: m.name.clone(),
            sans: sans.clone(),
            usage: Usage::Peer,
        });
        out.push(Wanted { name: peer_name(&m.name), common_name: m.name.clone(), sans, usage: Usage::Peer });
    }
    // CNs as kubeadm names these clients.
    out.push(Wanted {
        name: APISERVER_CLIENT.into(),
        common_name: "kube-apiserver-etcd-client".into(),
        sans: Vec::new(),
        usage: Usage::Client,
    });
    out.push(Wanted {
        name: HEALTHCHECK_CLIENT.into(),
        common_name: "kube-etcd-healthcheck-client".into(),
        sans: Vec::new(),
        usage: Usage::Client,
    });
    out
}

/// Whether a kept certificate can stay: same CA, same SANs, not due for renewal.
pub fn still_good(kept: Option<&IssuedCert>, wanted: &Wanted, same_ca: bool, renew_before_days: i64) -> bool {
    let Some(kept) = kept else { return false };
    if !same_ca {
        return false;
    }
    let mut have = pki::subject_alt_names(&kept.cert).unwrap_or_default();
    let mut want = wanted.sans.clone();
    have.sort();
    want.sort();
    have == want && pki::seconds_left(&kept.cert).is_ok_and(|s| s > renew_before_days * 86_400)
}

/// The certificates for `members`, keeping those of `prior` that are still good and
/// issuing the rest. Returns them and the names of those newly issued.
pub fn ensure(
    prior: Option<&Issued>,
    same_ca: bool,
    ca_cert: &str,
    ca_key: &str,
    members: &[MemberModel],
    validity_days: i64,
    renew_before_days: i64,
) -> anyhow::Result<(Issued, Vec<String>)> {
    let mut out = Issued::new();
    let mut fresh = Vec::new();
    for w in wanted(members) {
        let kept = prior.and_then(|p| p.get(&w.name));
        if still_good(kept, &w, same_ca, renew_before_days) {
            out.insert(w.name.clone(), kept.cloned().expect("still_good implies kept"));
            continue;
        }
        let leaf = pki::issue_leaf(ca_cert, ca_key, &w.common_name, &w.sans, w.usage, validity_days)?;
        out.insert(w.name.clone(), IssuedCert { cert: leaf.cert_pem, key: leaf.key_pem });
        fresh.push(w.name);
    }
    Ok((out, fresh))
}

/// Whether `ensure` would issue anything new (plan time: no keys needed).
pub fn would_issue(
    prior: Option<&Issued>,
    same_ca: bool,
    members: &[MemberModel],
    renew_before_days: i64,
) -> Vec<String> {
    wanted(members)
        .into_iter()
        .filter(|w| !still_good(prior.and_then(|p| p.get(&w.name)), w, same_ca, renew_before_days))
        .map(|w| w.name)
        .collect()
}
