use super::*;
use crate::framework::json::{decode, Extra};
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
    let d = AnyResource::validate(&NfsExport, &config(j));
    assert_eq!(error_paths(&d), vec!["clients[1].client", "clients[0].options[1]"]);
    assert!(d.0[1].detail.contains("unknown export option \"bogus\""));
}

#[test]
fn ganesha_refuses_kernel_only_options_and_kernel_refuses_ganesha_attributes() {
    let mut j = base();
    j["backend"] = "ganesha".into();
    j["clients"][0]["options"] = serde_json::json!(["rw", "crossmnt"]);
    let d = AnyResource::validate(&NfsExport, &config(j));
    assert_eq!(error_paths(&d), vec!["clients[0].options[1]"]);
    let mut j = base();
    j["pseudo_path"] = "/x".into();
    let d = AnyResource::validate(&NfsExport, &config(j));
    assert_eq!(error_paths(&d), vec!["pseudo_path"]);
}

#[test]
fn paths_must_be_safe() {
    for bad in ["srv/nfs", "/srv", "/srv/../etc", "/srv/nfs/", "/srv/a b", "/"] {
        let mut j = base();
        j["path"] = bad.into();
        let d = AnyResource::validate(&NfsExport, &config(j));
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

#[test]
fn changing_host_path_or_backend_replaces() {
    let c = config(base());
    let prior = AnyResource::plan(&NfsExport, &crate::framework::Context::detached(), &Value::Null, &c, &c)
        .planned
        .unknown_as_null();
    let mut j = base();
    j["ssh"]["host"] = "10.0.0.6".into();
    j["clients"][0]["options"] = serde_json::json!(["ro"]);
    let c2 = config(j);
    let p = AnyResource::plan(&NfsExport, &crate::framework::Context::detached(), &prior, &c2, &c2);
    assert_eq!(p.requires_replace, vec![AttributePath::root("ssh").attr("host")]);
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
    let d = AnyResource::validate(&NfsExport, &config(j));
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
        let d = AnyResource::validate(&NfsExport, &config(j));
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
        assert!(AnyResource::validate(&NfsExport, &config(j)).is_empty(), "{name} is accepted");
    }
}
