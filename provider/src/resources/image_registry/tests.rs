use super::bundle::{self, Format, Reference};
use super::*;

#[test]
fn references_are_normalised_as_containerd_sees_them() {
    let r = Reference::parse("busybox:1.36").unwrap();
    assert_eq!(r.full(), "docker.io/library/busybox:1.36");
    assert_eq!(r.mirror_path(), "docker.io/library/busybox");
    assert_eq!(Reference::parse("docker.io/busybox:1.36").unwrap().full(), "docker.io/library/busybox:1.36");
    assert_eq!(Reference::parse("bitnami/redis:7").unwrap().full(), "docker.io/bitnami/redis:7");
    let p = Reference::parse("registry.k8s.io/pause:3.10.1").unwrap();
    assert_eq!((p.registry.as_str(), p.repository.as_str(), p.tag.as_str()), ("registry.k8s.io", "pause", "3.10.1"));
    assert_eq!(Reference::parse("10.0.0.5:5000/team/app:v1").unwrap().registry, "10.0.0.5:5000");
    for bad in ["registry.k8s.io/pause", "pause@sha256:abcd", "Reg.io/UPPER:1", "registry.k8s.io/pause:"] {
        assert!(Reference::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_oci_index_gives_names_and_digests() {
    let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "digest":"sha256:aaaa","size":10,"annotations":{"org.opencontainers.image.ref.name":"registry.k8s.io/pause:3.10.1"}}]}"#;
    let a = bundle::parse_oci_index(index).unwrap();
    assert_eq!(a.format, Format::OciArchive);
    assert_eq!(a.images[0].reference.full(), "registry.k8s.io/pause:3.10.1");
    assert_eq!(a.images[0].digest.as_deref(), Some("sha256:aaaa"));
    // A bare tag as the name (umoci's default) is refused: the image must carry its name.
    let bare = index.replace("registry.k8s.io/pause:3.10.1", "3.10.1");
    assert!(bundle::parse_oci_index(&bare).is_err());
    let unnamed = r#"{"manifests":[{"digest":"sha256:aaaa"}]}"#;
    assert!(format!("{:#}", bundle::parse_oci_index(unnamed).unwrap_err()).contains("ref.name"));
}

#[test]
fn a_docker_archive_is_named_by_its_repo_tags() {
    let m = r#"[{"Config":"c.json","RepoTags":["busybox:1.36","quay.io/x/y:2"],"Layers":["l.tar"]}]"#;
    let a = bundle::parse_docker_manifest(m).unwrap();
    assert_eq!(a.format, Format::DockerArchive);
    let names: Vec<String> = a.images.iter().map(|i| i.reference.full()).collect();
    assert_eq!(names, ["docker.io/library/busybox:1.36", "quay.io/x/y:2"]);
    assert!(a.images.iter().all(|i| i.digest.is_none()));
    assert!(bundle::parse_docker_manifest(r#"[{"Config":"c.json","RepoTags":null}]"#).is_err());
}

/// A real tar on disk: its checksum is checked at plan and names the attribute.
#[test]
fn a_bundle_whose_sha256_differs_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tar");
    let mut t = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let index = br#"{"manifests":[{"digest":"sha256:bbbb","annotations":{"org.opencontainers.image.ref.name":"docker.io/library/busybox:1.36"}}]}"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(index.len() as u64);
    h.set_mode(0o644);
    t.append_data(&mut h, "index.json", &index[..]).unwrap();
    t.finish().unwrap();
    drop(t);
    let sum = bundle::sha256_file(&path).unwrap();
    let b = |sha: &str| {
        Value::Object(
            [
                ("archive".to_string(), Value::string(path.to_str().unwrap())),
                ("sha256".to_string(), Value::string(sha)),
            ]
            .into(),
        )
    };
    let mut diags = Diagnostics::new();
    let read = read_bundles(&[b(&sum)], &mut diags).unwrap();
    assert!(!diags.has_errors());
    assert_eq!(read.digests["docker.io/library/busybox:1.36"].as_deref(), Some("sha256:bbbb"));
    assert_eq!(read.registries, ["docker.io"]);
    let mut diags = Diagnostics::new();
    assert!(read_bundles(&[b(&"0".repeat(64))], &mut diags).is_none());
    let text = format!("{diags:?}");
    assert!(text.contains("checksum mismatch") && text.contains(&sum), "{text}");
    assert!(text.contains("image_bundle") && text.contains("sha256"), "the attribute is named: {text}");
}

#[test]
fn the_configuration_points_at_the_storage_and_the_tls_files() {
    let m = ImageRegistryModel {
        address: "10.0.0.5".into(),
        port: Some(5443),
        storage_path: Some("/srv/registry".into()),
        ..Default::default()
    };
    let c = server::render_config(&m);
    let v: serde_json::Value = serde_yaml_ng::from_str(&c).unwrap();
    assert_eq!(v["storage"]["filesystem"]["rootdirectory"], "/srv/registry");
    assert_eq!(v["http"]["addr"], ":5443");
    assert_eq!(v["http"]["tls"]["key"], "/etc/docker/registry/strata/tls.key");
    assert_eq!(v["storage"]["delete"]["enabled"], false);
}

#[test]
fn urls_follow_the_address_and_the_bundles_upstreams() {
    let m = ImageRegistry::finish(ImageRegistryModel {
        ssh: ConnectionModel { host: "n1".into(), ..Default::default() },
        address: "10.0.0.5".into(),
        port: Some(5000),
        image_bundle: Some(vec![ImageBundleModel {
            archive: "a.tar".into(),
            sha256: "x".into(),
            images: Some(vec!["registry.k8s.io/pause:3.10.1".into(), "docker.io/library/busybox:1.36".into()]),
        }]),
        ..Default::default()
    });
    assert_eq!(m.id.as_deref(), Some("n1:5000"));
    assert_eq!(m.mirrors.as_ref().unwrap()["docker.io"], "https://10.0.0.5:5000/v2/docker.io");
    assert_eq!(m.repositories.as_ref().unwrap()["registry.k8s.io"], "10.0.0.5:5000/registry.k8s.io");
}
