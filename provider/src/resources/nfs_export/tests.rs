use super::*;
use crate::framework::json::{decode, Extra};
use crate::framework::model::to_model;
use crate::framework::AnyResource;

fn config(j: serde_json::Value) -> Value {
    decode(&j, &Resource::schema(&NfsExport).value_type(), Extra::Reject).unwrap()
}

fn base() -> serde_json::Value {
    serde_json::json!({
        "ssh": {"host": "10.0.0.5"},
        "name": "k8s-prod",
        "path": "/srv/nfs/k8s-prod",
        "clients": [{"client": "10.0.0.0/24", "options": ["rw", "sync"]}]
    })
}

fn error_paths(d: &Diagnostics) -> Vec<String> {
    d.iter().map(|d| d.attribute.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
}

#[test]
fn bad_options_are_reported_at_their_index() {
    let mut j = base();
    j["clients"] = serde_json::json!([
        {"client": "10.0.0.0/24", "options": ["rw", "bogus"]},
        {"client": "10.1.0.0/33", "options": ["ro"]}
    ]);
    let d = AnyResource::validate(&NfsExport, &config(j), true);
    assert_eq!(error_paths(&d), vec!["clients[1].client", "clients[0].options[1]"]);
    assert!(d.0[1].detail.contains("unknown export option \"bogus\""));
}

#[test]
fn ganesha_refuses_kernel_only_options_and_kernel_refuses_ganesha_attributes() {
    let mut j = base();
    j["backend"] = "ganesha".into();
    j["clients"][0]["options"] = serde_json::json!(["rw", "crossmnt"]);
    let d = AnyResource::validate(&NfsExport, &config(j), true);
    assert_eq!(error_paths(&d), vec!["clients[0].options[1]"]);
    let mut j = base();
    j["pseudo_path"] = "/x".into();
    let d = AnyResource::validate(&NfsExport, &config(j), true);
    assert_eq!(error_paths(&d), vec!["pseudo_path"]);
}

#[test]
fn paths_must_be_safe() {
    for bad in ["srv/nfs", "/srv", "/srv/../etc", "/srv/nfs/", "/srv/a b", "/"] {
        let mut j = base();
        j["path"] = bad.into();
        let d = AnyResource::validate(&NfsExport, &config(j), true);
        assert_eq!(error_paths(&d), vec!["path"], "{bad}");
    }
}

#[test]
fn plan_knows_id_and_storage_class_parameters() {
    let mut j = base();
    j["backend"] = "ganesha".into();
    j["pseudo_path"] = "/k8s-prod".into();
    let c = config(j);
    let p = AnyResource::plan(&NfsExport, &crate::framework::Context::detached(), &Value::Null, &c, &c);
    assert_eq!(p.planned.attr("id"), Some(&Value::string("10.0.0.5:k8s-prod")));
    assert_eq!(p.planned.attr("export_id"), Some(&Value::Unknown));
    let params = p.planned.attr("storage_class_parameters").unwrap();
    assert_eq!(
        params,
        &Value::Map(BTreeMap::from([("path".into(), "/k8s-prod".into()), ("server".into(), "10.0.0.5".into())]))
    );
    // Kernel exports have no export id.
    let c = config(base());
    let p = AnyResource::plan(&NfsExport, &crate::framework::Context::detached(), &Value::Null, &c, &c);
    assert_eq!(p.planned.attr("export_id"), Some(&Value::Null));
    assert_eq!(p.planned.attr("backend"), Some(&Value::string("kernel")));
    assert_eq!(p.planned.attr("delete_data_on_destroy"), Some(&Value::Bool(false)));
}

fn plan(prior: &Value, config: &Value) -> PlanChange {
    // Terraform proposes the prior value for computed attributes the configuration leaves null.
    let proposed = match (prior, config) {
        (Value::Object(p), Value::Object(c)) => Value::Object(
            c.iter()
                .map(|(k, v)| {
                    let computed = ["id", "server", "export_id", "storage_class_parameters"].contains(&k.as_str());
                    (
                        k.clone(),
                        if computed && v.is_null() { p.get(k).cloned().unwrap_or(Value::Null) } else { v.clone() },
                    )
                })
                .collect(),
        ),
        _ => config.clone(),
    };
    AnyResource::plan(&NfsExport, &crate::framework::Context::detached(), prior, &proposed, config)
}

fn created(j: serde_json::Value) -> Value {
    plan(&Value::Null, &config(j)).planned.unknown_as_null()
}

#[test]
fn changing_path_or_backend_replaces() {
    let prior = created(base());
    let mut j = base();
    j["path"] = "/srv/nfs/other".into();
    j["backend"] = "ganesha".into();
    let p = plan(&prior, &config(j));
    assert_eq!(p.requires_replace, vec![AttributePath::root("path"), AttributePath::root("backend")]);
}

#[test]
fn a_new_ssh_host_is_an_in_place_update_that_keeps_id_and_server() {
    let prior = created(base());
    assert_eq!(prior.attr("server"), Some(&Value::string("10.0.0.5")));
    let mut j = base();
    j["ssh"] = serde_json::json!({"host": "nfs1.example", "user": "admin", "port": 2222, "sudo": true,
                                  "bastion": {"host": "10.0.0.1"}});
    let p = plan(&prior, &config(j));
    assert!(p.requires_replace.is_empty(), "{:?}", p.requires_replace);
    assert!(p.diagnostics.is_empty(), "{}", p.diagnostics);
    assert_eq!(p.planned.attr("id"), Some(&Value::string("10.0.0.5:k8s-prod")));
    assert_eq!(p.planned.attr("server"), Some(&Value::string("10.0.0.5")));
    assert_eq!(p.planned.attr("storage_class_parameters"), prior.attr("storage_class_parameters"));
    // The server never sees the change: nothing is written or reloaded.
    let (before, after): (NfsExportModel, NfsExportModel) =
        (to_model(&prior).unwrap(), to_model(&p.planned.unknown_as_null()).unwrap());
    assert!(NfsExport::same_on_the_node(&before, &after));
    // A change of the clients is one the server sees.
    let mut j = base();
    j["clients"][0]["options"] = serde_json::json!(["ro"]);
    let changed: NfsExportModel = to_model(&plan(&prior, &config(j)).planned.unknown_as_null()).unwrap();
    assert!(!NfsExport::same_on_the_node(&before, &changed));
}

#[test]
fn server_defaults_to_the_host_at_create_and_follows_the_configuration_when_set() {
    let mut j = base();
    j["server"] = "nfs.example".into();
    let c = config(j);
    let p = plan(&Value::Null, &c);
    assert_eq!(p.planned.attr("server"), Some(&Value::string("nfs.example")));
    let params = p.planned.attr("storage_class_parameters").unwrap();
    assert_eq!(
        params,
        &Value::Map(BTreeMap::from([
            ("path".into(), "/srv/nfs/k8s-prod".into()),
            ("server".into(), "nfs.example".into())
        ]))
    );
    // Setting it on an existing export changes what clients mount, in place.
    let prior = created(base());
    let p = plan(&prior, &c);
    assert!(p.requires_replace.is_empty());
    assert_eq!(p.planned.attr("id"), prior.attr("id"));
    let Some(Value::Map(params)) = p.planned.attr("storage_class_parameters") else { panic!() };
    assert_eq!(params["server"], Value::string("nfs.example"));
}

#[test]
fn state_of_version_0_keeps_the_server_clients_mount() {
    let raw = serde_json::json!({
        "id": "10.0.0.5:k8s-prod", "name": "k8s-prod", "ssh": {"host": "10.0.0.5"},
        "storage_class_parameters": {"server": "10.0.0.5", "path": "/srv/nfs/k8s-prod"}
    });
    let up = NfsExport.upgrade_state(0, raw).unwrap();
    assert_eq!(up["server"], "10.0.0.5");
    assert_eq!(AnyResource::schema(&NfsExport).version, 1);
    // Through the framework, from the raw JSON Terraform stored.
    let stored = serde_json::json!({
        "id": "10.0.0.5:k8s-prod", "name": "k8s-prod", "path": "/srv/nfs/k8s-prod", "backend": "kernel",
        "ssh": {"host": "10.0.0.5"}, "clients": [{"client": "*", "options": null}],
        "storage_class_parameters": {"server": "10.0.0.5", "path": "/srv/nfs/k8s-prod"}
    });
    let out = AnyResource::upgrade(&NfsExport, 0, stored.to_string().as_bytes());
    assert!(out.diagnostics.is_empty(), "{}", out.diagnostics);
    assert_eq!(out.value.attr("server"), Some(&Value::string("10.0.0.5")));
}

#[test]
fn rendering_uses_default_options_when_unset() {
    let m = NfsExportModel {
        name: "a".into(),
        path: "/srv/a".into(),
        clients: vec![ClientModel { client: "*".into(), options: None }],
        ..Default::default()
    };
    assert!(NfsExport::render(&m).contains("\"/srv/a\" *(rw,sync,no_subtree_check)"));
    assert_eq!(NfsExport::file_path(&m), "/etc/exports.d/strata-a.exports");
}

#[test]
fn contradictory_options_are_refused_at_the_later_one_naming_both() {
    let mut j = base();
    j["clients"][0]["options"] = serde_json::json!(["rw", "sync", "ro"]);
    let d = AnyResource::validate(&NfsExport, &config(j), true);
    assert_eq!(error_paths(&d), vec!["clients[0].options[2]"]);
    assert!(d.0[0].detail.contains("\"rw\"") && d.0[0].detail.contains("\"ro\""), "{d}");
}

#[test]
fn import_ids_are_host_colon_name() {
    assert_eq!(parse_import_id("10.0.0.5:k8s-prod").unwrap(), ("10.0.0.5".to_string(), "k8s-prod".to_string()));
    assert_eq!(parse_import_id("fd00::5:k8s-prod").unwrap(), ("fd00::5".to_string(), "k8s-prod".to_string()));
    for bad in ["k8s-prod", "10.0.0.5:", ":k8s-prod", "10.0.0.5:K8S_prod"] {
        let d = parse_import_id(bad).unwrap_err();
        assert!(d.0[0].detail.contains("HOST:NAME"), "{bad}: {d}");
    }
}

#[test]
fn restore_from_must_be_a_readable_tar_archive_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar.gz");
    let not_tar = dir.path().join("notes.txt");
    std::fs::write(&not_tar, "hello").unwrap();
    for (path, why) in [(&missing, "cannot read"), (&not_tar, "is not a tar archive")] {
        let mut j = base();
        j["restore_from"] = path.to_str().unwrap().into();
        let d = AnyResource::validate(&NfsExport, &config(j), true);
        assert_eq!(error_paths(&d), vec!["restore_from"], "{path:?}");
        assert!(d.0[0].detail.contains(why), "{}", d.0[0].detail);
    }
    // Real archives from tar, by their magic bytes.
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "data").unwrap();
    for (flag, name, expected) in [("", "a.tar", ""), ("-z", "a.tar.gz", "-z"), ("-J", "a.tar.xz", "-J")] {
        let out = dir.path().join(name);
        let mut cmd = std::process::Command::new("tar");
        cmd.arg("-c");
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        assert!(cmd.arg("-f").arg(&out).arg("-C").arg(&src).arg(".").status().unwrap().success());
        assert_eq!(server::archive_format_of(out.to_str().unwrap()), Ok(expected), "{name}");
        let mut j = base();
        j["restore_from"] = out.to_str().unwrap().into();
        assert!(AnyResource::validate(&NfsExport, &config(j), true).is_empty(), "{name} is accepted");
    }
}
