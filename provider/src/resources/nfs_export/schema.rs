//! The schema of `strata_nfs_export`.

use super::options::{self, Backend};
use crate::framework::{Attribute, Block, NestedBlock, Schema, Type, Validator, Value};
use crate::resources::cluster_node;

fn check_path(v: &Value) -> Result<(), String> {
    let p = v.as_str().unwrap_or_default();
    let ok = p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && p.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != "..")
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if !ok {
        return Err("Must be an absolute, normalised path of letters, digits, '.', '_', '-' and '/'.".into());
    }
    if p.matches('/').count() < 2 {
        return Err(
            "Must be at least two levels deep (e.g. /srv/nfs): exporting or deleting a top-level directory is refused."
                .into(),
        );
    }
    Ok(())
}

pub fn schema() -> Schema {
    let block = Block::new(
        "One NFS export on a node, served by the kernel NFS server (`backend = \"kernel\"`: a file in \
             /etc/exports.d, then `exportfs -ra`) or by nfs-ganesha (`backend = \"ganesha\"`: one EXPORT block \
             included from ganesha.conf, then a reload). Options are checked at plan time; an option the server \
             still refuses is reported with the server's message and the previous export is restored. \
             `storage_class_parameters` feeds nfs-subdir-external-provisioner. Import with `HOST:NAME`. \
             The `ssh` block only says how Terraform reaches the server: changing it (host text, user, port, \
             key, bastion, host keys) is an in-place update that only checks that the server answers and still \
             holds the export; `id` and `server` stay as they are. \
             Every change holds `flock` on `/run/lock/strata-nfs-exports.lock` on the server, so concurrent \
             Terraform runs and workspaces never interleave; scripts that edit exports themselves can take the \
             same lock (`flock /run/lock/strata-nfs-exports.lock exportfs -ra`).",
    )
    .attribute(
        Attribute::computed("id", Type::String).description(
            "`HOST:NAME`, with the `ssh.host` of the create (or the import): it stays when `ssh` changes.",
        ),
    )
    .attribute(Attribute::optional_computed("server", Type::String).description(
        "The address clients mount (`storage_class_parameters.server`). Default: `ssh.host` at create, then kept: \
         a later change of `ssh.host` (e.g. from an address to a DNS name of the same machine) does not change \
         what clients mount. Changing it runs nothing on the server.",
    ))
    .attribute(
        Attribute::required("name", Type::String)
            .requires_replace()
            .validate(Validator::Matches(
                "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                "a DNS label (lower-case letters, digits, '-')",
            ))
            .description(
                "Name of the export; names its file on the node (`strata-NAME.exports` / `strata-NAME.conf`).",
            ),
    )
    .attribute(
        Attribute::required("path", Type::String)
            .requires_replace()
            .validate(Validator::Custom(check_path))
            .description("Directory to export, e.g. `/srv/nfs/k8s-prod`."),
    )
    .attribute(
        Attribute::optional("backend", Type::String)
            .default("kernel")
            .requires_replace()
            .validate(Validator::OneOf(Backend::NAMES.to_vec()))
            .description("`kernel` (default) or `ganesha`."),
    )
    .attribute(
        Attribute::optional("pseudo_path", Type::String)
            .requires_replace()
            .validate(Validator::Matches("/[A-Za-z0-9._/-]*", "an absolute path"))
            .description("ganesha only: the NFSv4 pseudo path clients mount (default: `path`)."),
    )
    .attribute(
        Attribute::optional_computed("export_id", Type::Number)
            .validate(Validator::IntBetween(1, 65534))
            .description("ganesha only: the export's Export_Id (default: the lowest free id from 100)."),
    )
    .attribute(Attribute::optional("restore_from", Type::String).description(
        "Path, on the machine running Terraform, of a tar archive of the export's contents (plain, gzip, xz or zstd; \
         e.g. a backup made with `tar -C /srv/nfs/k8s-prod -czf k8s-prod.tar.gz .`), unpacked into `path` when the \
         export is created, before it is exported, keeping owners and modes. Only into an empty directory: data that \
         is already there is never overwritten (the archive is then skipped with a warning). Changing it later has no \
         effect, so a rebuild that re-creates the export restores its data in the same apply. The archive is read into \
         memory; `xz` or `zstd` must be installed on the server for those formats.",
    ))
    .attribute(Attribute::optional("delete_data_on_destroy", Type::Bool).default(false).description(
        "Delete the exported directory with the export. Off by default: destroying an export keeps the data.",
    ))
    .attribute(
        Attribute::computed("storage_class_parameters", Type::map(Type::String))
            .description("`server` and `path` for nfs-subdir-external-provisioner (`nfs.server`, `nfs.path`)."),
    )
    .block(cluster_node::ssh_block())
    .block(NestedBlock::single(
        "create_directory",
        Block::new("Create the directory if missing, with this mode and owner.")
            .attribute(
                Attribute::optional("mode", Type::String)
                    .default("0755")
                    .validate(Validator::Matches("0?[0-7]{3}", "an octal mode like 0755"))
                    .description("Mode (default 0755)."),
            )
            .attribute(Attribute::optional("owner", Type::String).default("root").description("Owner (default root)."))
            .attribute(Attribute::optional("group", Type::String).default("root").description("Group (default root).")),
    ))
    .block(
        NestedBlock::list(
            "clients",
            Block::new("Who may mount the export, with which options.")
                .attribute(
                    Attribute::required("client", Type::String)
                        .validate(Validator::Custom(|v| options::check_client(v.as_str().unwrap_or_default())))
                        .description("A host, an address, a network in CIDR form, a wildcard or an @netgroup."),
                )
                .attribute(
                    Attribute::optional("options", Type::list(Type::String)).description(
                        "exports(5) options, e.g. `[\"rw\", \"sync\", \"no_subtree_check\"]` (the default).",
                    ),
                ),
        )
        .items(1, 0),
    );
    // Version 1 added `server` (version 0 states get it from storage_class_parameters).
    Schema::new(1, block)
}
