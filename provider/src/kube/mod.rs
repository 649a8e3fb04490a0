//! The Kubernetes API as the provider uses it from the Terraform host: a small REST
//! client over rustls with the admin client certificate (or anonymously), verifying
//! the server against the cluster CA; bootstrap tokens made the way `kubeadm token
//! create` makes them; Node labels and taints; and the admin kubeconfig.

pub mod kubeconfig;
pub mod names;
pub mod packages;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

/// How long one API request may take: the endpoint is a VIP in front of API servers on
/// the same network, so anything slower is a server that does not answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one API endpoint (`https://host:port`); cheap to clone.
#[derive(Clone)]
pub struct KubeClient {
    http: reqwest::Client,
    base: String,
}

/// A client certificate and its key, PEM.
pub struct ClientIdentity<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// A Kubernetes taint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

impl Taint {
    /// Kubernetes identifies a taint by key and effect (`kubectl taint` and the
    /// scheduler do): one key may carry several effects.
    pub fn same_as(&self, key: &str, effect: &str) -> bool {
        self.key == key && self.effect == effect
    }
}

/// What the provider reads of a Node object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeObject {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (`kubectl cordon`).
    pub unschedulable: bool,
    pub annotations: BTreeMap<String, String>,
    /// `status.addresses` of type InternalIP.
    pub internal_ips: Vec<String>,
    /// The Ready condition's status (`True`, `False`, `Unknown`), if any.
    pub ready: Option<String>,
    /// `status.nodeInfo.kubeletVersion` (k3s: its own version, e.g. `v1.36.1+k3s1`).
    pub kubelet_version: Option<String>,
}

/// Why a Node of this name must not be deleted to let a new machine at `address` join
/// as `name`: it is Ready and registered from another address, i.e. another machine
/// that is alive uses the name. `None` when it is the stale registration of this node
/// (its address, or not Ready). `address` that is not an IP address (a host name Terraform
/// reaches the node by) cannot be compared: no conflict is assumed.
pub fn live_node_elsewhere(node: &NodeObject, name: &str, address: &str) -> Option<String> {
    let ready = node.ready.as_deref() == Some("True");
    let ip = address.parse::<std::net::IpAddr>().ok()?;
    let elsewhere = !node.internal_ips.is_empty()
        && !node.internal_ips.iter().any(|a| a.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip));
    (ready && elsewhere).then(|| {
        format!(
            "a Ready Node {name:?} is registered from {} in the cluster, not from this node's address {address}: another \
             machine runs under this name. Give this node another name, or remove the other machine (kubeadm reset) \
             and delete its Node",
            node.internal_ips.join(", ")
        )
    })
}

/// How many times a read-modify-write of a Node is retried when someone else (the node
/// lifecycle controller, `kubectl`) changed it in between.
const CONFLICT_RETRIES: usize = 8;

/// A bootstrap token minted through the API, and when it expires (RFC 3339).
pub struct MintedToken {
    pub token: String,
    pub expires_at: String,
}

impl KubeClient {
    /// `endpoint` is `host:port`; the server must present a certificate that chains
    /// to `ca_pem` and names `host`.
    pub fn new(endpoint: &str, ca_pem: &str, identity: Option<ClientIdentity<'_>>) -> anyhow::Result<KubeClient> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("reading the cluster CA certificate")?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        if let Some(id) = identity {
            let pem = format!("{}\n{}", id.cert_pem.trim_end(), id.key_pem.trim_end());
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).context("reading the client certificate")?);
        }
        Ok(KubeClient { http: b.build().context("building the HTTPS client")?, base: format!("https://{endpoint}") })
    }

    pub fn endpoint_url(&self) -> &str {
        &self.base
    }

    /// Whether `/readyz` answers 200 `ok`.
    pub async fn readyz(&self) -> anyhow::Result<bool> {
        let r = self.http.get(format!("{}/readyz", self.base)).send().await.map_err(describe)?;
        Ok(r.status().is_success())
    }

    /// Whether the API accepts this client's credentials (listing Nodes answers 200; 401
    /// and 403 are `false`).
    pub async fn authenticated(&self) -> anyhow::Result<bool> {
        let r = self.http.get(format!("{}/api/v1/nodes?limit=1", self.base)).send().await.map_err(describe)?;
        Ok(r.status().is_success())
    }

    /// `gitVersion` of `/version`, e.g. `v1.35.0`.
    pub async fn git_version(&self) -> anyhow::Result<String> {
        let v: Json = self.get_json("/version").await?.ok_or_else(|| anyhow!("/version: not found"))?;
        v.get("gitVersion")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("/version has no gitVersion"))
    }

    /// The `kubernetesVersion` of the ClusterConfiguration kubeadm keeps in the
    /// `kube-system/kubeadm-config` ConfigMap: the cluster's version as `kubeadm upgrade
    /// apply` last set it (`None` when there is no such ConfigMap).
    pub async fn kubeadm_cluster_version(&self) -> anyhow::Result<Option<String>> {
        let Some(cm) = self.get_json("/api/v1/namespaces/kube-system/configmaps/kubeadm-config").await? else {
            return Ok(None);
        };
        let text = cm.pointer("/data/ClusterConfiguration").and_then(Json::as_str).unwrap_or_default();
        let doc: Json = serde_yaml_ng::from_str(text).context("kubeadm-config: ClusterConfiguration is not YAML")?;
        Ok(doc.get("kubernetesVersion").and_then(Json::as_str).map(str::to_string))
    }

    /// Makes a bootstrap token valid for `ttl`, as `kubeadm token create` does: a
    /// `bootstrap-token-<id>` Secret in kube-system usable for authentication and signing,
    /// in kubeadm's default node-token group.
    pub async fn create_bootstrap_token(&self, ttl: Duration) -> anyhow::Result<MintedToken> {
        let token = crate::pki::bootstrap_token();
        let (id, secret) = token.split_once('.').expect("bootstrap tokens have a dot");
        let expires = time::OffsetDateTime::now_utc() + ttl;
        let expires_at = expires
            .replace_nanosecond(0)
            .unwrap_or(expires)
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the token expiry")?;
        let body = bootstrap_token_secret(id, secret, &expires_at);
        let r = self
            .http
            .post(format!("{}/api/v1/namespaces/kube-system/secrets", self.base))
            .json(&body)
            .send()
            .await
            .map_err(describe)?;
        // The token itself is never part of an error.
        check(r, "creating a bootstrap token").await?;
        Ok(MintedToken { token, expires_at })
    }

    /// Whether bootstrap token `token` (`<id>.<secret>`) still exists with that secret and
    /// has not expired: e.g. after the control plane was rebuilt on an etcd restored from
    /// a snapshot, the token minted before is still there and stays usable.
    pub async fn bootstrap_token_valid(&self, token: &str) -> anyhow::Result<bool> {
        let Some((id, _)) = token.split_once('.') else { return Ok(false) };
        let path = format!("/api/v1/namespaces/kube-system/secrets/bootstrap-token-{}", path_segment(id));
        Ok(self
            .get_json(&path)
            .await?
            .is_some_and(|s| bootstrap_token_matches(&s, token, time::OffsetDateTime::now_utc())))
    }

    /// The Node `name`, `None` when there is none.
    pub async fn get_node(&self, name: &str) -> anyhow::Result<Option<NodeObject>> {
        let Some(v) = self.get_json(&format!("/api/v1/nodes/{}", path_segment(name))).await? else {
            return Ok(None);
        };
        Ok(Some(parse_node(&v)?))
    }

    /// Sets the labels and taints the provider manages on Node `name`: `labels` are set
    /// and `removed_labels` deleted; `taints` are set (matched by key and effect) and
    /// `removed_taints` deleted. Everything else on the Node (the kubelet's labels, the
    /// node lifecycle controller's taints, `kubectl cordon`'s) is left as it is. Taints are
    /// one list in the API, so the list is read, changed and written back with its
    /// `resourceVersion` (a conflict, i.e. a change in between, is retried).
    pub async fn patch_node(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        removed_labels: &[String],
        taints: &[Taint],
        removed_taints: &[Taint],
    ) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/nodes/{}", self.base, path_segment(name));
        for _ in 0..CONFLICT_RETRIES {
            let node = self
                .get_json(&format!("/api/v1/nodes/{}", path_segment(name)))
                .await?
                .ok_or_else(|| anyhow!("node {name} not found"))?;
            let current = node.pointer("/spec/taints").and_then(Json::as_array).cloned().unwrap_or_default();
            let merged = merge_taints(&current, taints, removed_taints);
            let mut body = node_patch(labels, removed_labels, &merged);
            if let Some(rv) = node.pointer("/metadata/resourceVersion") {
                body["metadata"]["resourceVersion"] = rv.clone();
            }
            let r = self
                .http
                .patch(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
                .body(body.to_string())
                .send()
                .await
                .map_err(describe)?;
            if r.status() == reqwest::StatusCode::CONFLICT {
                continue;
            }
            return check(r, &format!("patching node {name}")).await.map(|_| ());
        }
        bail!("patching node {name}: it kept changing under us ({CONFLICT_RETRIES} conflicts in a row)")
    }

    /// Sets `spec.unschedulable` of Node `name`, as `kubectl cordon`/`uncordon` do.
    pub async fn set_unschedulable(&self, name: &str, unschedulable: bool) -> anyhow::Result<()> {
        self.set_unschedulable_noted(name, unschedulable, None).await
    }

    /// [`Self::set_unschedulable`], setting (`Some`) or removing (`None`) the annotation
    /// `note.0` in the same patch: who cordoned it, for whoever uncordons it later.
    pub async fn set_unschedulable_noted(
        &self,
        name: &str,
        unschedulable: bool,
        note: Option<(&str, Option<&str>)>,
    ) -> anyhow::Result<()> {
        let mut patch = json!({"spec": {"unschedulable": unschedulable}});
        if let Some((key, value)) = note {
            patch["metadata"] = json!({"annotations": {key: value}});
        }
        let r = self
            .http
            .patch(format!("{}/api/v1/nodes/{}", self.base, path_segment(name)))
            .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await
            .map_err(describe)?;
        check(r, &format!("cordoning node {name}")).await.map(|_| ())
    }

    /// The pods bound to Node `name` that a drain evicts, as `kubectl drain` picks them:
    /// not those of a DaemonSet (it would start them again) and not mirror pods of
    /// static pods (the kubelet owns them). `(namespace, name)`.
    pub async fn pods_to_evict(&self, node: &str) -> anyhow::Result<Vec<(String, String)>> {
        let selector =
            percent_encoding::utf8_percent_encode(&format!("spec.nodeName={node}"), percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let list = self.get_json(&format!("/api/v1/pods?fieldSelector={selector}")).await?.unwrap_or_default();
        Ok(evictable_pods(&list, node))
    }

    /// Asks the eviction API to evict a pod: `Ok(None)` when it was evicted (or is
    /// gone), `Ok(Some(why))` when the API refused for now (429: a PodDisruptionBudget
    /// would be violated), an error otherwise.
    pub async fn evict(&self, namespace: &str, pod: &str) -> anyhow::Result<Option<String>> {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace}});
        let r = self
            .http
            .post(format!(
                "{}/api/v1/namespaces/{}/pods/{}/eviction",
                self.base,
                path_segment(namespace),
                path_segment(pod)
            ))
            .json(&body)
            .send()
            .await
            .map_err(describe)?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            reqwest::StatusCode::TOO_MANY_REQUESTS => {
                let text = r.text().await.map_err(describe)?;
                Ok(Some(status_message(&text)))
            }
            _ => check(r, &format!("evicting pod {namespace}/{pod}")).await.map(|_| None),
        }
    }

    /// Whether pod `namespace/name` still exists.
    pub async fn pod_exists(&self, namespace: &str, name: &str) -> anyhow::Result<bool> {
        let path = format!("/api/v1/namespaces/{}/pods/{}", path_segment(namespace), path_segment(name));
        Ok(self.get_json(&path).await?.is_some())
    }

    /// Takes Lease `kube-system/name` for `holder` when it is free, expired or already
    /// held by `holder`: `Ok(None)` when taken, `Ok(Some(other holder))` when not. The
    /// Lease's `resourceVersion` makes two takers race safely (one gets a conflict).
    pub async fn try_lease(&self, name: &str, holder: &str, duration: Duration) -> anyhow::Result<Option<String>> {
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{}", path_segment(name));
        let now = micro_time(time::OffsetDateTime::now_utc());
        let secs = duration.as_secs().max(1);
        let spec =
            json!({"holderIdentity": holder, "leaseDurationSeconds": secs, "acquireTime": now, "renewTime": now});
        match self.get_json(&path).await? {
            None => {
                let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-system"}, "spec": spec});
                let r = self
                    .http
                    .post(format!("{}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", self.base))
                    .json(&body)
                    .send()
                    .await
                    .map_err(describe)?;
                if r.status() == reqwest::StatusCode::CONFLICT {
                    return Ok(Some("another taker (it was created in between)".into()));
                }
                check(r, &format!("creating Lease kube-system/{name}")).await.map(|_| None)
            }
            Some(mut lease) => {
                if let Some(other) = lease_held_by_other(&lease, holder, time::OffsetDateTime::now_utc()) {
                    return Ok(Some(other));
                }
                lease["spec"] = spec;
                let r = self.http.put(format!("{}{path}", self.base)).json(&lease).send().await.map_err(describe)?;
                if r.status() == reqwest::StatusCode::CONFLICT {
                    return Ok(Some("another taker (it changed in between)".into()));
                }
                check(r, &format!("taking Lease kube-system/{name}")).await.map(|_| None)
            }
        }
    }

    /// Gives Lease `kube-system/name` up when `holder` holds it (clears the holder).
    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{}", path_segment(name));
        let Some(mut lease) = self.get_json(&path).await? else { return Ok(()) };
        if lease.pointer("/spec/holderIdentity").and_then(Json::as_str) != Some(holder) {
            return Ok(());
        }
        lease["spec"]["holderIdentity"] = Json::Null;
        let r = self.http.put(format!("{}{path}", self.base)).json(&lease).send().await.map_err(describe)?;
        check(r, &format!("releasing Lease kube-system/{name}")).await.map(|_| ())
    }

    /// Before a machine that has not joined joins as `name` (at `address`): a Node of that
    /// name left by its previous machine is deleted, as kubeadm asks ("You must delete
    /// the existing Node"): after an etcd restore it comes back marked Ready until the
    /// node controller's grace period passes, and kubeadm refuses to join over a Ready
    /// Node. Its labels and taints are set again after the join. A Ready Node of the
    /// name registered from another address is another live machine: refused, naming it.
    /// Returns whether a Node was deleted.
    pub async fn clear_stale_node(&self, name: &str, address: &str) -> anyhow::Result<bool> {
        let Some(node) = self.get_node(name).await? else { return Ok(false) };
        if let Some(conflict) = live_node_elsewhere(&node, name, address) {
            bail!("{conflict}");
        }
        tracing::info!(node = name, ready = ?node.ready, "deleting the Node left by the node's previous machine before it joins");
        self.delete_node(name).await?;
        Ok(true)
    }

    /// Deletes Node `name`; one that is already gone is fine.
    pub async fn delete_node(&self, name: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .delete(format!("{}/api/v1/nodes/{}", self.base, path_segment(name)))
            .send()
            .await
            .map_err(describe)?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(r, &format!("deleting node {name}")).await.map(|_| ())
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Option<Json>> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.map_err(describe)?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = check(r, &format!("GET {path}")).await?;
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON"))?))
    }
}

/// The Secret `kubeadm token create` makes.
pub fn bootstrap_token_secret(id: &str, secret: &str, expires_at: &str) -> Json {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "description": "made by terraform-provider-strata",
            "token-id": id,
            "token-secret": secret,
            "expiration": expires_at,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        }
    })
}

/// Whether the bootstrap-token Secret `secret` holds `token` and is not expired at
/// `now`. A Secret's `data` is base64; no `expiration` means it never expires.
pub fn bootstrap_token_matches(secret: &Json, token: &str, now: time::OffsetDateTime) -> bool {
    use base64::Engine;
    let Some((id, want)) = token.split_once('.') else { return false };
    let field = |k: &str| -> Option<String> {
        let b64 = secret.pointer(&format!("/data/{k}"))?.as_str()?;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
    };
    if field("token-id").as_deref() != Some(id) || field("token-secret").as_deref() != Some(want) {
        return false;
    }
    match field("expiration") {
        None => true,
        Some(e) => {
            time::OffsetDateTime::parse(&e, &time::format_description::well_known::Rfc3339).is_ok_and(|t| t > now)
        }
    }
}

/// The Node's taint list after setting `desired` and deleting `removed` (both matched by
/// key and effect): other taints stay as they are, with every field the API gave them
/// (e.g. `timeAdded` of the controller's `NoExecute` taints), in their order.
pub fn merge_taints(current: &[Json], desired: &[Taint], removed: &[Taint]) -> Vec<Json> {
    let key_effect = |t: &Json| {
        (
            t.get("key").and_then(Json::as_str).unwrap_or("").to_string(),
            t.get("effect").and_then(Json::as_str).unwrap_or("").to_string(),
        )
    };
    let to_json = |t: &Taint| serde_json::to_value(t).expect("taints serialise");
    let mut out = Vec::new();
    let mut placed = vec![false; desired.len()];
    for t in current {
        let (k, e) = key_effect(t);
        if let Some(i) = desired.iter().position(|d| d.same_as(&k, &e)) {
            if !placed[i] {
                out.push(to_json(&desired[i]));
                placed[i] = true;
            }
        } else if !removed.iter().any(|r| r.same_as(&k, &e)) {
            out.push(t.clone());
        }
    }
    out.extend(desired.iter().zip(&placed).filter(|(_, p)| !**p).map(|(d, _)| to_json(d)));
    out
}

/// The pods of a pod list bound to `node` that a drain evicts (see
/// [`KubeClient::pods_to_evict`]); the node is checked again in case the server ignored
/// the field selector.
pub fn evictable_pods(list: &Json, node: &str) -> Vec<(String, String)> {
    let items = list.get("items").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Json::as_str) == Some(node))
        .filter(|p| {
            let owners = p.pointer("/metadata/ownerReferences").and_then(Json::as_array);
            !owners.is_some_and(|o| o.iter().any(|r| r.get("kind").and_then(Json::as_str) == Some("DaemonSet")))
        })
        .filter(|p| p.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_none())
        .filter(|p| !matches!(p.pointer("/status/phase").and_then(Json::as_str), Some("Succeeded" | "Failed")))
        .filter_map(|p| {
            let m = p.get("metadata")?;
            Some((m.get("namespace")?.as_str()?.to_string(), m.get("name")?.as_str()?.to_string()))
        })
        .collect()
}

/// Who holds `lease` other than `holder` while it has not expired at `now` (its
/// `renewTime` plus `leaseDurationSeconds`); `None` when `holder` may take it.
pub fn lease_held_by_other(lease: &Json, holder: &str, now: time::OffsetDateTime) -> Option<String> {
    let spec = lease.get("spec")?;
    let other = spec.get("holderIdentity").and_then(Json::as_str).filter(|h| !h.is_empty() && *h != holder)?;
    let renewed = spec
        .get("renewTime")
        .and_then(Json::as_str)
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
    let secs = spec.get("leaseDurationSeconds").and_then(Json::as_i64).unwrap_or(0);
    match renewed {
        Some(t) if t + time::Duration::seconds(secs) > now => Some(other.to_string()),
        _ => None,
    }
}

/// A Lease's MicroTime: RFC 3339 with microseconds.
fn micro_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The `message` of a Kubernetes Status body, else the start of the text.
fn status_message(text: &str) -> String {
    serde_json::from_str::<Json>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

/// The merge patch for [`KubeClient::patch_node`]: a null label deletes it.
pub fn node_patch(labels: &BTreeMap<String, String>, removed_labels: &[String], taints: &[Json]) -> Json {
    let mut l = serde_json::Map::new();
    for k in removed_labels {
        l.insert(k.clone(), Json::Null);
    }
    for (k, v) in labels {
        l.insert(k.clone(), Json::String(v.clone()));
    }
    json!({"metadata": {"labels": l}, "spec": {"taints": taints}})
}

pub fn parse_node(v: &Json) -> anyhow::Result<NodeObject> {
    let labels = match v.pointer("/metadata/labels") {
        Some(l) => serde_json::from_value(l.clone()).context("node labels")?,
        None => BTreeMap::new(),
    };
    let taints = match v.pointer("/spec/taints") {
        Some(Json::Null) | None => Vec::new(),
        Some(t) => serde_json::from_value(t.clone()).context("node taints")?,
    };
    let unschedulable = v.pointer("/spec/unschedulable").and_then(Json::as_bool).unwrap_or(false);
    let annotations = match v.pointer("/metadata/annotations") {
        Some(a) if a.is_object() => serde_json::from_value(a.clone()).context("node annotations")?,
        _ => BTreeMap::new(),
    };
    let internal_ips = v
        .pointer("/status/addresses")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let ready = v
        .pointer("/status/conditions")
        .and_then(Json::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .map(str::to_string);
    let kubelet_version = v.pointer("/status/nodeInfo/kubeletVersion").and_then(Json::as_str).map(str::to_string);
    Ok(NodeObject { labels, taints, unschedulable, annotations, internal_ips, ready, kubelet_version })
}

/// What a URL path segment cannot hold as is (RFC 3986 `pchar` plus `%` itself). Object
/// names are DNS subdomains, which need none of it, but be safe; `-` and `.` stay as they
/// are, as kubectl sends them.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A name as one URL path segment.
fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// The body of a successful response; otherwise an error with the status and the
/// API's `message` (Kubernetes Status objects hold no secrets we sent).
async fn check(r: reqwest::Response, what: &str) -> anyhow::Result<String> {
    let status = r.status();
    let text = r.text().await.map_err(describe)?;
    if status.is_success() {
        return Ok(text);
    }
    let message = status_message(&text);
    bail!("{what}: the API answered {status}: {message}")
}

/// A transport error with its causes (reqwest's top-level text alone says little).
fn describe(e: reqwest::Error) -> anyhow::Error {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    anyhow!(s)
}

#[cfg(test)]
mod tests;
