//! The schema of `strata_image_registry`.

use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator, Value};
use crate::resources::cluster_node;

pub const DEFAULT_PORT: i64 = 5000;
pub const DEFAULT_STORAGE: &str = "/var/lib/docker-registry";

fn check_dir(v: &Value) -> Result<(), String> {
    let p = v.as_str().unwrap_or_default();
    let ok = p.starts_with('/')
        && p.matches('/').count() >= 2
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("Must be an absolute, normalised path at least two levels deep (e.g. /var/lib/docker-registry).".into())
    }
}

fn check_sha256(v: &Value) -> Result<(), String> {
    let s = v.as_str().unwrap_or_default();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("Must be the archive's SHA-256 as 64 lower-case hex digits (`sha256sum FILE`).".into())
    }
}

pub fn schema() -> Schema {
    let block = Block::new(
        "A local OCI image registry on a node, for air-gapped sites: Debian's `docker-registry` (distribution 2.8) \
         as its systemd service, over TLS with a certificate from `ca_cert` (or from a CA Strata issues and keeps \
         in state), storing images in `storage_path`, which is never wiped by a default. `image_bundle` blocks load \
         it from OCI archives (or `docker save` tarballs) on the Terraform host: each archive's SHA-256 is checked \
         at plan, the images are pushed with Debian's `skopeo` under the names they carry, each upstream under its \
         own prefix (`registry.k8s.io/pause:3.10.1` becomes `ADDRESS:PORT/registry.k8s.io/pause:3.10.1`), and an \
         image the registry already serves with the same digest is not uploaded again. Read reports whether the \
         service runs, the catalog and each image's digest: an image deleted or changed in the registry is drift \
         the next apply pushes again. Point nodes at it with `strata_node_config`'s `containerd.registry_mirror` \
         (`endpoints = [mirrors[\"docker.io\"]]`, `ca_cert`, `fallback = false`) and the control plane with \
         `image_repository = repositories[\"registry.k8s.io\"]`. Changing `storage_path` of a running registry is \
         refused at plan (moving the data is a copy and a new registry). Destroying stops the service and keeps \
         the stored images unless `delete_data_on_destroy = true`. The registry has no users yet: anyone who \
         reaches `ADDRESS:PORT` can pull and push, so keep the port reachable from the cluster network only.",
    )
    .attribute(
        Attribute::computed("id", Type::String)
            .description("`HOST:PORT` of the create (`ssh.host`): it stays when `ssh` changes."),
    )
    .attribute(
        Attribute::required("address", Type::String)
            .validate(Validator::Matches("[A-Za-z0-9.:-]+", "an IP address or a DNS name"))
            .description("The address nodes reach the registry at: in its certificate and in every URL."),
    )
    .attribute(
        Attribute::optional("port", Type::Number)
            .default(DEFAULT_PORT)
            .validate(Validator::IntBetween(1, 65535))
            .description("The HTTPS port (default 5000)."),
    )
    .attribute(
        Attribute::optional("storage_path", Type::String)
            .default(DEFAULT_STORAGE)
            .validate(Validator::Custom(check_dir))
            .description(
                "Where the registry stores images (default `/var/lib/docker-registry`, the package's). Fixed once \
                 the registry exists: a change is refused at plan.",
            ),
    )
    .attribute(Attribute::optional_computed("ca_cert", Type::String).description(
        "The CA certificate (PEM) that signs the registry's certificate; nodes trust it \
         (`registry_mirror.ca_cert`). Unset: Strata issues a CA at create and keeps it.",
    ))
    .attribute(
        Attribute::optional_computed("ca_key", Type::String)
            .sensitive()
            .description("The CA's private key (PEM); with `ca_cert`, or issued with it."),
    )
    .attribute(Attribute::computed("tls_cert", Type::String).description(
        "The registry's certificate (PEM), for `address`; issued again when `address` or the CA changes, or when \
         the one on the node is not this CA's.",
    ))
    .attribute(Attribute::computed("tls_key", Type::String).sensitive().description("Its private key (PEM)."))
    .attribute(Attribute::optional("delete_data_on_destroy", Type::Bool).default(false).description(
        "Delete `storage_path` with the registry. Off by default: destroying the registry keeps the images.",
    ))
    .attribute(Attribute::computed("url", Type::String).description("`https://ADDRESS:PORT`."))
    .attribute(Attribute::computed("mirrors", Type::map(Type::String)).description(
        "For each upstream registry of the bundles' images, the mirror URL containerd uses for it \
         (`https://ADDRESS:PORT/v2/<upstream>`, with `override_path`), e.g. `mirrors[\"docker.io\"]`.",
    ))
    .attribute(Attribute::computed("repositories", Type::map(Type::String)).description(
        "For each upstream registry of the bundles' images, the image repository that serves its images directly \
         (`ADDRESS:PORT/<upstream>`), e.g. `repositories[\"registry.k8s.io\"]` for kubeadm's `image_repository`.",
    ))
    .attribute(Attribute::computed("images", Type::map(Type::String)).description(
        "Each bundle image (`registry/repository:tag`) with the manifest digest the registry serves for it: the \
         pinned version list. Known at plan for OCI archives.",
    ))
    .attribute(
        Attribute::computed("catalog", Type::list(Type::String))
            .description("The registry's repositories (`/v2/_catalog`), as last read."),
    )
    .attribute(
        Attribute::computed("running", Type::Bool)
            .description("Whether the registry service ran and answered over TLS when last read."),
    )
    .block(cluster_node::ssh_block())
    .block(NestedBlock::list(
        "image_bundle",
        Block::new("An archive of images on the Terraform host, pushed into the registry.")
            .attribute(Attribute::required("archive", Type::String).description(
                "Path of an OCI archive (`skopeo copy ... oci-archive:FILE:NAME`, each image named by its \
                 `org.opencontainers.image.ref.name`) or a `docker save` tarball (named by its RepoTags). Every \
                 image must carry its full name with a tag, e.g. `registry.k8s.io/pause:3.10.1`.",
            ))
            .attribute(
                Attribute::required("sha256", Type::String)
                    .validate(Validator::Custom(check_sha256))
                    .description("The archive's SHA-256, checked at plan and again on the node before the push."),
            )
            .attribute(
                Attribute::computed("images", Type::list(Type::String))
                    .description("The images the archive carries (`registry/repository:tag`)."),
            ),
    ));
    Schema::new(0, block)
}
