use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::AnyResource;
use crate::pki::{self, KeyAlgorithm};
use model::{CniModel, EtcdModel, NodeModel};
use serde_json::json;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&ControlPlane).value_type(), Extra::Ignore).unwrap()
}

fn node(name: &str, address: &str) -> serde_json::Value {
    json!({"name": name, "address": address, "ssh": {"host": address}})
}

fn base(nodes: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "endpoint": "10.0.0.100:6443",
        "kubernetes_version": "v1.35.0",
        "ca_cert": "CERT", "ca_key": "KEY",
        "front_proxy_ca_cert": "CERT", "front_proxy_ca_key": "KEY",
        "service_account_public_key": "PUB", "service_account_private_key": "KEY",
        "node": nodes,
        "etcd": {"endpoints": ["https://10.0.0.1:2379"], "ca_cert": "C", "client_cert": "C", "client_key": "K"},
    })
}

fn three() -> Vec<serde_json::Value> {
    vec![node("cp1", "10.0.0.1"), node("cp2", "10.0.0.2"), node("cp3", "10.0.0.3")]
}

fn paths(d: &Diagnostics, errors: bool) -> Vec<String> {
    let mut p: Vec<String> = d
        .iter()
        .filter(|d| (d.severity == crate::framework::Severity::Error) == errors)
        .map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default())
        .collect();
    p.sort();
    p
}

fn validate(j: serde_json::Value) -> Diagnostics {
    AnyResource::validate(&ControlPlane, &config(j), true)
}

#[test]
fn a_good_configuration_passes() {
    let d = validate(base(three()));
    assert!(d.is_empty(), "{d}");
}

#[test]
fn node_counts_are_one_three_or_five_and_even_is_a_warning() {
    let d = validate(base(vec![node("a", "10.0.0.1"), node("b", "10.0.0.2")]));
    assert_eq!(paths(&d, true), Vec::<String>::new());
    assert_eq!(paths(&d, false), vec!["node"]);
    let d = validate(base(vec![
        node("a", "10.0.0.1"),
        node("b", "10.0.0.2"),
        node("c", "10.0.0.3"),
        node("d", "10.0.0.4"),
        node("e", "10.0.0.5"),
        node("f", "10.0.0.6"),
        node("g", "10.0.0.7"),
    ]));
    assert_eq!(paths(&d, true), vec!["node"]);
    let d = validate(base(vec![node("a", "10.0.0.1"), node("a", "10.0.0.2"), node("c", "10.0.0.2")]));
    assert_eq!(paths(&d, true), vec!["node[1].name", "node[2].address"]);
}

#[test]
fn bad_input_is_refused_naming_the_attribute() {
    let mut j = base(three());
    j["endpoint"] = "10.0.0.100".into();
    j["kubernetes_version"] = "1.35".into();
    j["pod_cidr"] = "10.96.0.0/16".into();
    assert_eq!(paths(&validate(j), true), vec!["endpoint", "kubernetes_version", "service_cidr"]);
    let mut j = base(three());
    j["cni"] = json!({"type": "weave"});
    assert_eq!(paths(&validate(j), true), vec!["cni.type"]);
    let mut j = base(three());
    j["cni"] = json!({"type": "calico"});
    assert_eq!(paths(&validate(j), true), vec!["cni.manifest_file"], "calico needs a manifest");
    let mut j = base(three());
    j["cni"] = json!({"type": "none", "flannel_backend": "udp"});
    assert_eq!(paths(&validate(j), true), vec!["cni.flannel_backend", "cni.flannel_backend"]);
    let mut j = base(three());
    j["cni"] = json!({"type": "calico", "manifest_file": "/nonexistent/calico.yaml", "calico_encapsulation": "GRE"});
    assert_eq!(paths(&validate(j), true), vec!["cni.calico_encapsulation", "cni.manifest_file"]);
}

const CALICO: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: calico-config
  namespace: kube-system
data:
  veth_mtu: "0"
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
spec:
  template:
    spec:
      containers:
        - name: calico-node
          image: docker.io/calico/node:v3.29.1
          env:
            - name: CALICO_IPV4POOL_IPIP
              value: "Always"
            - name: CALICO_IPV4POOL_VXLAN
              value: "Never"
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
"#;

const FLANNEL: &str = r#"kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  cni-conf.json: |
    {"name": "cbr0", "cniVersion": "0.3.1"}
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "EnableNFTables": false,
      "Backend": {
        "Type": "vxlan"
      }
    }
"#;

fn env_of(rendered: &str) -> Vec<(String, String)> {
    let docs: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::Deserializer::from_str(rendered).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    ds["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn calico_gets_the_pod_cidr_and_encapsulation() {
    let out = cni::calico(CALICO, "10.44.0.0/16", "VXLAN").unwrap();
    let env = env_of(&out);
    assert!(env.contains(&("CALICO_IPV4POOL_CIDR".into(), "10.44.0.0/16".into())), "{env:?}");
    assert!(env.contains(&("CALICO_IPV4POOL_IPIP".into(), "Never".into())));
    assert!(env.contains(&("CALICO_IPV4POOL_VXLAN".into(), "Always".into())));
    assert_eq!(env.len(), 3);
    assert!(out.contains("calico-config"), "other documents stay");
    assert!(cni::calico(FLANNEL, "10.44.0.0/16", "IPIP").unwrap_err().to_string().contains("calico-node"));
}

#[test]
fn flannel_gets_the_pod_cidr_and_backend() {
    let out = cni::flannel(FLANNEL, "10.45.0.0/16", "host-gw").unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
    let conf: serde_json::Value = serde_json::from_str(doc["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(conf["Network"], "10.45.0.0/16");
    assert_eq!(conf["Backend"]["Type"], "host-gw");
    assert_eq!(conf["EnableNFTables"], false, "other settings stay");
    assert!(cni::flannel(CALICO, "10.45.0.0/16", "vxlan").is_err());
}

#[test]
fn a_manifest_file_is_rendered_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("calico.yaml");
    std::fs::write(&f, CALICO).unwrap();
    let mut j = base(three());
    j["cni"] = json!({"type": "calico", "manifest_file": f.to_str().unwrap()});
    assert!(validate(j.clone()).is_empty());
    j["cni"]["type"] = "flannel".into();
    assert_eq!(paths(&validate(j), true), vec!["cni.manifest_file"], "a calico manifest is no flannel manifest");
}

fn ca() -> (String, String) {
    let c = pki::new_ca("kubernetes", KeyAlgorithm::EcdsaP256, 3650).unwrap();
    (c.cert_pem, c.key_pem)
}

fn model(ca: &(String, String)) -> ControlPlaneModel {
    ControlPlaneModel {
        endpoint: "10.0.0.100:6443".into(),
        kubernetes_version: "v1.35.0".into(),
        cert_sans: Some(vec!["api.example.org".into(), "10.0.0.100".into()]),
        ca_cert: ca.0.clone(),
        ca_key: ca.1.clone(),
        node: vec![
            NodeModel { name: "cp1".into(), address: Some("10.0.0.1".into()), ..Default::default() },
            NodeModel { name: "cp2".into(), address: Some("10.0.0.2".into()), ..Default::default() },
        ],
        etcd: EtcdModel {
            endpoints: vec!["https://10.0.0.1:2379".into(), "https://10.0.0.2:2379".into()],
            ..Default::default()
        },
        cni: Some(CniModel { kind: "none".into(), ..Default::default() }),
        ..Default::default()
    }
}

fn docs(text: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

#[test]
fn init_configuration_is_v1beta4_with_the_endpoint_external_etcd_and_networks() {
    let m = model(&ca());
    let d = docs(&kubeadm::init_config(&m, &m.node[0], "abcdef.0123456789abcdef"));
    assert_eq!(d.len(), 2);
    let (init, cluster) = (&d[0], &d[1]);
    assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(init["kind"], "InitConfiguration");
    assert_eq!(init["bootstrapTokens"][0]["token"], "abcdef.0123456789abcdef");
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "10.0.0.1");
    assert_eq!(init["nodeRegistration"]["name"], "cp1");
    assert_eq!(init["nodeRegistration"]["criSocket"], "unix:///run/containerd/containerd.sock");
    assert_eq!(init["nodeRegistration"]["kubeletExtraArgs"], json!([{"name": "node-ip", "value": "10.0.0.1"}]));
    assert_eq!(cluster["kind"], "ClusterConfiguration");
    assert_eq!(cluster["controlPlaneEndpoint"], "10.0.0.100:6443");
    assert_eq!(cluster["kubernetesVersion"], "v1.35.0");
    assert_eq!(cluster["etcd"]["external"]["endpoints"], json!(["https://10.0.0.1:2379", "https://10.0.0.2:2379"]));
    assert_eq!(cluster["etcd"]["external"]["certFile"], "/etc/kubernetes/pki/apiserver-etcd-client.crt");
    assert_eq!(cluster["apiServer"]["certSANs"], json!(["10.0.0.100", "api.example.org"]), "VIP first, no duplicates");
    assert_eq!(
        cluster["networking"],
        json!({"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12", "dnsDomain": "cluster.local"})
    );
}

#[test]
fn control_plane_join_discovers_by_token_and_hash_without_a_certificate_key() {
    let m = model(&ca());
    let d = docs(&kubeadm::join_config(&m, &m.node[1], "abcdef.0123456789abcdef", "sha256:00ff"));
    assert_eq!(d.len(), 1);
    let j = &d[0];
    assert_eq!(j["kind"], "JoinConfiguration");
    assert_eq!(j["discovery"]["bootstrapToken"]["apiServerEndpoint"], "10.0.0.100:6443");
    assert_eq!(j["discovery"]["bootstrapToken"]["caCertHashes"], json!(["sha256:00ff"]));
    assert_eq!(j["controlPlane"]["localAPIEndpoint"], json!({"advertiseAddress": "10.0.0.2", "bindPort": 6443}));
    assert!(j["controlPlane"].get("certificateKey").is_none());
}

#[test]
fn pki_files_hold_the_identity_and_keys_are_private() {
    let mut m = model(&ca());
    let files = pki_files::files(&m);
    let names: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    for want in [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.crt",
        "apiserver-etcd-client.key",
    ] {
        assert!(names.contains(&format!("/etc/kubernetes/pki/{want}").as_str()), "{want}");
    }
    assert!(files.iter().filter(|(p, _, _)| p.ends_with(".key")).all(|(_, _, mode)| *mode == 0o600));
    assert!(!names.contains(&"/etc/kubernetes/pki/etcd/ca.key"));
    m.etcd.ca_key = Some("K".into());
    assert!(pki_files::files(&m).iter().any(|(p, _, _)| p == "/etc/kubernetes/pki/etcd/ca.key"));
}

fn state(m: &ControlPlaneModel) -> Value {
    crate::framework::model::from_model(m, &Resource::schema(&ControlPlane).value_type()).unwrap()
}

const COMPUTED: [&str; 7] =
    ["kubeconfig", "kubeconfig_expires_at", "join", "nodes", "ca_cert_hash", "id", "certificates_expire_at"];

fn plan(prior: &ControlPlaneModel, planned: &ControlPlaneModel) -> PlanChange {
    let ctx = Context::detached();
    let p = state(prior);
    let mut n = state(planned);
    // The configuration leaves computed attributes null.
    for a in COMPUTED {
        *n.attr_mut(a).unwrap() = Value::Null;
    }
    let proposed = {
        let mut v = n.clone();
        for a in COMPUTED {
            *v.attr_mut(a).unwrap() = p.attr(a).unwrap().clone();
        }
        v
    };
    AnyResource::plan(&ControlPlane, &ctx, &p, &proposed, &n)
}

fn applied(ca: &(String, String)) -> ControlPlaneModel {
    let mut m = model(ca);
    m.cluster_name = Some("kubernetes".into());
    m.pod_cidr = Some("10.244.0.0/16".into());
    m.service_cidr = Some("10.96.0.0/12".into());
    m.cluster_domain = Some("cluster.local".into());
    m.install_packages = Some(true);
    m.kubeconfig_validity_days = Some(365);
    m.kubeconfig_renew_before_days = Some(30);
    m.join_token_ttl_hours = Some(24);
    m.certificate_validity = Some("8760h".into());
    m.certificates_renew_before_days = Some(30);
    m.certificates_expire_at = Some(certs::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(300)));
    m.id = Some("kubernetes".into());
    m.ca_cert_hash = Some(pki::ca_cert_hash(&ca.0).unwrap());
    m.nodes = Some(
        m.node
            .iter()
            .map(|n| model::NodeStatus {
                name: n.name.clone(),
                reachable: true,
                joined: true,
                ca_matches: true,
                kubernetes_version: Some("v1.35.0".into()),
            })
            .collect(),
    );
    m.join = Some(JoinModel {
        endpoint: m.endpoint.clone(),
        ca_cert_hash: m.ca_cert_hash.clone().unwrap(),
        token: "abcdef.0123456789abcdef".into(),
        token_expires_at: "2026-12-03T00:00:00Z".into(),
    });
    cluster::ensure_kubeconfig(&mut m, None).unwrap();
    m
}

#[test]
fn the_kubeconfig_is_stable_across_plans_and_renewed_only_near_expiry() {
    let ca = ca();
    let m = applied(&ca);
    let p = plan(&m, &m.clone());
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert_eq!(p.planned.attr("kubeconfig"), state(&m).attr("kubeconfig"), "kept as it is");
    assert_eq!(p.planned, state(&m), "no change at all");
    // Renewal window wider than what is left: re-issued at plan time.
    let mut near = m.clone();
    near.kubeconfig_renew_before_days = Some(400);
    let p = plan(&m, &near);
    assert!(p.planned.attr("kubeconfig").unwrap().is_unknown());
    // Applying keeps the one that fits and issues one when due.
    let mut again = m.clone();
    cluster::ensure_kubeconfig(&mut again, m.kubeconfig.as_deref()).unwrap();
    assert_eq!(again.kubeconfig, m.kubeconfig);
    let mut renewed = near.clone();
    cluster::ensure_kubeconfig(&mut renewed, m.kubeconfig.as_deref()).unwrap();
    assert_ne!(renewed.kubeconfig, m.kubeconfig);
    // Another CA or endpoint: re-issued.
    let mut other = m.clone();
    other.endpoint = "10.0.0.101:6443".into();
    let p = plan(&m, &other);
    assert!(p.planned.attr("kubeconfig").unwrap().is_unknown());
    assert!(p.planned.attr("join").unwrap().is_unknown());
}

#[test]
fn the_kubeconfig_verifies_against_the_cluster_ca_and_points_at_the_endpoint() {
    let ca = ca();
    let m = applied(&ca);
    let k = crate::kube::kubeconfig::parse(m.kubeconfig.as_deref().unwrap()).unwrap();
    assert_eq!(k.server, "https://10.0.0.100:6443");
    assert_eq!(k.ca_pem.trim(), ca.0.trim());
    assert!(pki::signed_by(&k.client_cert_pem, &ca.0).unwrap());
    let other = pki::new_ca("kubernetes", KeyAlgorithm::EcdsaP256, 1).unwrap();
    assert!(!pki::signed_by(&k.client_cert_pem, &other.cert_pem).unwrap());
    assert!(!crate::kube::kubeconfig::still_good(m.kubeconfig.as_deref().unwrap(), &m.endpoint, &other.cert_pem, 30));
}

#[test]
fn upgrades_skipping_a_minor_or_going_down_are_refused_at_plan_time() {
    let ca = ca();
    let m = applied(&ca);
    for (to, ok) in [("v1.36.1", true), ("v1.35.3", true), ("v1.37.0", false), ("v1.34.3", false)] {
        let mut n = m.clone();
        n.kubernetes_version = to.into();
        let p = plan(&m, &n);
        assert_eq!(!p.diagnostics.has_errors(), ok, "{to}: {}", p.diagnostics);
        if !ok {
            assert_eq!(paths(&p.diagnostics, true), vec!["kubernetes_version"]);
        } else {
            assert!(p.planned.attr("nodes").unwrap().is_unknown(), "an upgrade shows as a change of the nodes");
        }
    }
}

#[test]
fn an_unhealthy_node_is_drift_the_plan_shows() {
    let ca = ca();
    let mut m = applied(&ca);
    m.nodes.as_mut().unwrap()[1].reachable = false;
    let p = plan(&m, &m.clone());
    assert!(p.planned.attr("nodes").unwrap().is_unknown());
    assert!(!p.diagnostics.has_errors());
}

#[test]
fn the_refusal_of_a_foreign_cluster_says_why_and_how_to_import() {
    let e = cluster::foreign_ca_error("cp1", "root@10.0.0.1:22").to_string();
    assert!(e.contains("is not ca_cert"), "{e}");
    assert!(e.contains("id = \"ssh://root@10.0.0.1\""), "{e}");
    assert!(e.contains("strata_cluster_secrets"), "{e}");
}

#[test]
fn kubeadm_init_runs_again_only_when_no_node_has_joined() {
    let blank = probe::Found { joined: false, ca_cert: None, version: None };
    let joined = probe::Found { joined: true, ca_cert: Some("CA".into()), version: None };
    assert!(cluster::needs_init(&[blank.clone(), blank.clone(), blank.clone()]), "every machine re-created blank");
    assert!(!cluster::needs_init(&[blank.clone(), joined.clone(), blank]), "one runs: the others join it");
    assert!(!cluster::needs_init(&[joined.clone(), joined.clone(), joined]));
}

#[test]
fn a_rebuild_keeps_the_kubeconfig_and_plans_the_join_token_as_known_after_apply() {
    let ca = ca();
    let mut m = applied(&ca);
    for s in m.nodes.as_mut().unwrap() {
        s.joined = false;
    }
    let p = plan(&m, &m.clone());
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert!(p.planned.attr("nodes").unwrap().is_unknown(), "the nodes are built again");
    assert_eq!(p.planned.attr("kubeconfig"), state(&m).attr("kubeconfig"), "the kubeconfig stays as it is");
    assert!(p.planned.attr("join").unwrap().is_unknown(), "the token may have to be minted again");
    // One node still joined: the others join it, the token stays.
    m.nodes.as_mut().unwrap()[0].joined = true;
    let p = plan(&m, &m.clone());
    assert_eq!(p.planned.attr("join"), state(&m).attr("join"));
}

#[test]
fn settings_fixed_at_init_are_refused_on_a_running_cluster_not_replaced() {
    let ca = ca();
    let m = applied(&ca);
    type Change = fn(&mut ControlPlaneModel);
    let changes: [(&str, Change); 4] = [
        ("cluster_name", |n| n.cluster_name = Some("prod".into())),
        ("pod_cidr", |n| n.pod_cidr = Some("10.200.0.0/16".into())),
        ("service_cidr", |n| n.service_cidr = Some("10.112.0.0/12".into())),
        ("cluster_domain", |n| n.cluster_domain = Some("example.internal".into())),
    ];
    for (attr, change) in changes {
        let mut n = m.clone();
        change(&mut n);
        let p = plan(&m, &n);
        assert_eq!(paths(&p.diagnostics, true), vec![attr], "{}", p.diagnostics);
        let text = p.diagnostics.to_string();
        assert!(text.contains("cannot change on a running cluster"), "{text}");
        assert!(text.contains("kubeadm reset -f"), "says why: {text}");
        assert!(text.contains("Keep "), "says what to do: {text}");
    }
    // The same value written out, or left to its default, is no change.
    let mut n = m.clone();
    n.cluster_name = None;
    n.pod_cidr = None;
    let p = plan(&m, &n);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    // An unknown value could be a change: refused too, since the create half of a
    // replacement is never checked again.
    let prior = state(&m);
    let mut proposed = prior.clone();
    *proposed.attr_mut("cluster_name").unwrap() = Value::Unknown;
    let p = AnyResource::plan(&ControlPlane, &Context::detached(), &prior, &proposed, &proposed);
    assert_eq!(paths(&p.diagnostics, true), vec!["cluster_name"]);
    // Nothing joined (machines blank): no running cluster to break, the change is planned.
    let mut blank = m.clone();
    for s in blank.nodes.as_mut().unwrap() {
        s.joined = false;
    }
    let mut n = blank.clone();
    n.pod_cidr = Some("10.200.0.0/16".into());
    let p = plan(&blank, &n);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
}

#[test]
fn a_joined_node_renamed_at_the_same_address_is_refused_not_reset() {
    let ca = ca();
    let m = applied(&ca);
    let mut n = m.clone();
    n.node[1].name = "cp-renamed".into();
    let p = plan(&m, &n);
    assert_eq!(paths(&p.diagnostics, true), vec!["node[1].name"], "{}", p.diagnostics);
    let text = p.diagnostics.to_string();
    assert!(text.contains("kubeadm reset") && text.contains("Keep name"), "says why and what to do: {text}");
    // A node that never joined (a blank machine) may take another name.
    let mut blank = m.clone();
    for s in blank.nodes.as_mut().unwrap() {
        s.joined = false;
    }
    let p = plan(&blank, &n);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    // Another node at a new address under a new name is an addition, not a rename.
    let mut other = m.clone();
    other.node[1].name = "cp-new".into();
    other.node[1].address = Some("10.0.0.99".into());
    let p = plan(&m, &other);
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
}

#[test]
fn certificates_are_renewed_only_within_the_window() {
    let ca = ca();
    let m = applied(&ca);
    let p = plan(&m, &m.clone());
    assert_eq!(p.planned, state(&m), "300 days left, window 30: nothing to do");
    // 20 days left: the plan shows the renewal.
    let mut near = m.clone();
    near.certificates_expire_at = Some(certs::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(20)));
    let p = plan(&near, &near.clone());
    assert!(!p.diagnostics.has_errors(), "{}", p.diagnostics);
    assert!(p.planned.attr("certificates_expire_at").unwrap().is_unknown());
    assert_eq!(p.planned.attr("kubeconfig"), state(&near).attr("kubeconfig"), "the admin kubeconfig is not touched");
    assert!(!p.planned.attr("nodes").unwrap().is_unknown());
    // A wider window brings a renewal forward.
    let mut wide = m.clone();
    wide.certificates_renew_before_days = Some(301);
    assert!(plan(&m, &wide).planned.attr("certificates_expire_at").unwrap().is_unknown());
}

#[test]
fn certificate_validity_is_kubeadm_certificate_validity_period_and_longer_than_the_window() {
    let mut m = model(&ca());
    m.certificate_validity = Some("720h".into());
    let c = kubeadm::cluster_configuration(&m);
    assert_eq!(c["certificateValidityPeriod"], "720h");
    let mut j = base(three());
    j["certificate_validity"] = "720h".into();
    j["certificates_renew_before_days"] = 30.into();
    assert_eq!(paths(&validate(j.clone()), true), vec!["certificates_renew_before_days"]);
    j["certificates_renew_before_days"] = 29.into();
    assert!(validate(j.clone()).is_empty());
    j["certificate_validity"] = "30m".into();
    assert_eq!(paths(&validate(j.clone()), true), vec!["certificate_validity"]);
    j["certificate_validity"] = "a year".into();
    assert!(paths(&validate(j), true).contains(&"certificate_validity".to_string()));
}

#[test]
fn the_version_a_node_runs_is_its_api_server_image_tag() {
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - name: \
                    kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.36.1\n    command: [kube-apiserver]\n";
    assert_eq!(probe::manifest_version(manifest), Some(validate::KubeVersion::parse("v1.36.1").unwrap()));
    let other = manifest.replace("kube-apiserver:v1.36.1", "kube-apiserver:latest");
    assert_eq!(probe::manifest_version(&other), None);
    assert_eq!(probe::manifest_version("not: [a pod"), None);
}
