//! API discovery as kubectl reads it (the legacy, unaggregated documents: `/api`,
//! `/apis`, `/api/v1`, `/apis/<group>/<version>`): which resources exist, their kinds,
//! whether they are namespaced, and the subresources kubectl uses (`pods/eviction` tells
//! `kubectl drain` that the eviction API is served).

use serde_json::{json, Value};

/// (group, version, resource, kind, namespaced, short names). Subresources are
/// `resource/sub`; their kind is the kind sent to them.
type Resource = (&'static str, &'static str, &'static str, &'static str, bool, &'static [&'static str]);
const RESOURCES: &[Resource] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"]),
    ("", "v1", "nodes", "Node", false, &["no"]),
    ("", "v1", "nodes/status", "Node", false, &[]),
    ("", "v1", "pods", "Pod", true, &["po"]),
    ("", "v1", "pods/status", "Pod", true, &[]),
    ("", "v1", "pods/eviction", "Eviction", true, &[]),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    ("", "v1", "secrets", "Secret", true, &[]),
    ("", "v1", "services", "Service", true, &["svc"]),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"]),
    ("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"]),
    ("", "v1", "events", "Event", true, &["ev"]),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"]),
    ("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"]),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"]),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    // An application's storage (a StatefulSet's PVCs on a StorageClass): stored only, no
    // provisioner binds them.
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"]),
    ("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", false, &["csr"]),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[]),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[]),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[]),
];

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The kind of `resource` in `group`, e.g. `Node` for ("", "nodes").
pub fn kind(group: &str, resource: &str) -> Option<&'static str> {
    RESOURCES.iter().find(|r| r.0 == group && r.2 == resource).map(|r| r.3)
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = RESOURCES.iter().map(|r| r.0).filter(|g| !g.is_empty()).collect();
    g.dedup();
    g
}

/// The discovery document at `path`, `None` when the path is not a discovery path.
pub fn document(path: &str, advertise: &str) -> Option<Value> {
    let gv = |g: &str| json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
    match path {
        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": advertise}]})),
        "/apis" => Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups().iter().map(|g| json!({
            "name": g, "versions": [gv(g)], "preferredVersion": gv(g)})).collect::<Vec<_>>()})),
        "/api/v1" => Some(resource_list("", "v1")),
        _ => {
            let rest = path.strip_prefix("/apis/")?;
            match rest.split('/').collect::<Vec<_>>().as_slice() {
                [g] if groups().contains(g) => Some(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
                    "versions": [gv(g)], "preferredVersion": gv(g)})),
                [g, "v1"] if groups().contains(g) => Some(resource_list(g, "v1")),
                _ => None,
            }
        }
    }
}

/// OpenAPI v3 as far as kubectl reads it: the root lists each group-version, and each
/// group-version's document has the PATCH operations of its kinds with the
/// `fieldValidation` parameter, from which kubectl learns that the server validates
/// fields itself (so it sends `fieldValidation=Strict` and needs no schemas). The
/// schemas themselves are not served, and the stand-in does not validate fields.
pub fn openapi_v3(path: &str) -> Option<Value> {
    let gvs = || {
        let mut v: Vec<String> = RESOURCES
            .iter()
            .map(|r| if r.0.is_empty() { format!("api/{}", r.1) } else { format!("apis/{}/{}", r.0, r.1) })
            .collect();
        v.dedup();
        v
    };
    if path == "/openapi/v3" {
        let paths: serde_json::Map<String, Value> = gvs()
            .into_iter()
            .map(|gv| (gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=standin")})))
            .collect();
        return Some(json!({"paths": paths}));
    }
    let gv = path.strip_prefix("/openapi/v3/")?;
    if !gvs().iter().any(|g| g == gv) {
        return None;
    }
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    for (_, _, res, kind, namespaced, _) in RESOURCES.iter().filter(|r| r.0 == group && r.1 == version) {
        if res.contains('/') {
            continue;
        }
        let ns = if *namespaced { "namespaces/{namespace}/" } else { "" };
        let op = json!({
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                           {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                           {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(format!("/{gv}/{ns}{res}/{{name}}"), json!({"patch": op}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (stand-in)", "version": "unversioned"}, "paths": paths}),
    )
}

fn resource_list(group: &str, version: &str) -> Value {
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.0 == group && r.1 == version)
        .map(|(_, _, name, kind, namespaced, short)| {
            let mut r = json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind});
            if name.ends_with("/eviction") {
                r["group"] = json!("policy");
                r["version"] = json!("v1");
                r["verbs"] = json!(["create"]);
            } else if name.contains('/') {
                r["verbs"] = json!(["get", "patch", "update"]);
            } else {
                r["verbs"] = json!(VERBS);
                r["singularName"] = json!(kind.to_lowercase());
                if !short.is_empty() {
                    r["shortNames"] = json!(short);
                }
            }
            r
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_finds_the_eviction_subresource() {
        let core = document("/api/v1", "10.0.0.1:6443").unwrap();
        let ev = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(
            (ev["group"].as_str(), ev["version"].as_str(), ev["kind"].as_str()),
            (Some("policy"), Some("v1"), Some("Eviction"))
        );
        let apis = document("/apis", "x").unwrap();
        assert!(apis["groups"].as_array().unwrap().iter().any(|g| g["name"] == "coordination.k8s.io"));
        assert_eq!(document("/apis/policy/v1", "x").unwrap()["resources"][0]["kind"], "PodDisruptionBudget");
        assert!(document("/apis/nothing/v1", "x").is_none());
        assert_eq!(kind("", "nodes"), Some("Node"));
    }
}
