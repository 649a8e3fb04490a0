//! Markdown reference pages generated from the schemas, so the docs say exactly what the
//! provider accepts. `make docs` writes them to docs/; a test fails when they are stale.

use std::fmt::Write as _;

use crate::framework::{Attribute, Block, Mode, NestedBlock, Nesting, ProviderDefinition, Schema, Value};

/// One page per resource and data source, plus the provider's own, as (relative path, text).
pub fn pages(provider: &dyn ProviderDefinition) -> Vec<(String, String)> {
    let prefix = provider.type_name();
    let mut out = vec![("index.md".to_string(), page(&format!("{prefix} provider"), "provider", &provider.schema()))];
    for r in provider.resources() {
        let name = format!("{prefix}_{}", r.name());
        let mut text = page(&name, "resource", &r.schema());
        if let Some((path, example)) = example(r.name()) {
            let _ =
                write!(text, "## Example\n\nFrom [{path}](../../{path}):\n\n```hcl\n{}\n```\n\n", example.trim_end());
        }
        text.push_str(&import_section(&name, r.import_id()));
        out.push((format!("resources/{}.md", r.name()), text));
    }
    for d in provider.data_sources() {
        let name = format!("{prefix}_{}", d.name());
        out.push((format!("data-sources/{}.md", d.name()), page(&name, "data source", &d.schema())));
    }
    out
}

fn page(name: &str, kind: &str, schema: &Schema) -> String {
    let mut s = format!("# `{name}` ({kind})\n\n<!-- Generated from the schema by `make docs`; do not edit. -->\n\n");
    s.push_str(schema.block.description.trim());
    s.push_str("\n\n");
    block(&mut s, &schema.block, 2);
    s
}

fn block(s: &mut String, b: &Block, level: usize) {
    let heading = "#".repeat(level.min(6));
    for (title, filter) in [
        ("Required", &(|a: &Attribute| a.mode == Mode::Required) as &dyn Fn(&Attribute) -> bool),
        ("Optional", &|a: &Attribute| matches!(a.mode, Mode::Optional | Mode::OptionalComputed)),
        ("Read-only", &|a: &Attribute| a.mode == Mode::Computed),
    ] {
        let attrs: Vec<&Attribute> = b.attributes.iter().filter(|a| filter(a)).collect();
        if attrs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{heading} {title}\n");
        for a in attrs {
            let mut notes = vec![a.ty.to_string()];
            if a.write_only {
                notes.push("write-only: never stored in state or plan files".into());
            } else if a.sensitive {
                notes.push("sensitive".into());
            }
            if a.requires_replace {
                notes.push("forces replacement".into());
            }
            if let Some(d) = &a.default {
                notes.push(format!("default `{}`", literal(d)));
            }
            let _ = writeln!(s, "- `{}` ({}): {}", a.name, notes.join(", "), a.description.trim());
        }
        s.push('\n');
    }
    for nb in &b.blocks {
        nested(s, nb, level);
    }
}

fn nested(s: &mut String, nb: &NestedBlock, level: usize) {
    let heading = "#".repeat(level.min(6));
    let how = match (nb.nesting, nb.min_items, nb.max_items) {
        (Nesting::Single, 1, _) => "block, required".to_string(),
        (Nesting::Single, _, _) => "block, optional".to_string(),
        (_, min, 0) if min > 0 => format!("blocks, at least {min}"),
        (_, min, max) if max > 0 => format!("blocks, {min} to {max}"),
        _ => "blocks, any number".to_string(),
    };
    let replace = if nb.requires_replace { ", forces replacement" } else { "" };
    let _ = writeln!(s, "{heading} `{}` ({how}{replace})\n", nb.name);
    if !nb.block.description.trim().is_empty() {
        let _ = writeln!(s, "{}\n", nb.block.description.trim());
    }
    block(s, &nb.block, level + 1);
}

/// The example configuration a resource's page shows (path in the repository, text),
/// taken from examples/ so the page shows what the tests and `make demo` can apply.
fn example(resource: &str) -> Option<(&'static str, &'static str)> {
    match resource {
        "etcd_cluster" => Some(("examples/etcd-cluster/main.tf", include_str!("../../examples/etcd-cluster/main.tf"))),
        "control_plane" => Some((
            "examples/resources/strata_control_plane/resource.tf",
            include_str!("../../examples/resources/strata_control_plane/resource.tf"),
        )),
        "worker" => Some((
            "examples/resources/strata_worker/resource.tf",
            include_str!("../../examples/resources/strata_worker/resource.tf"),
        )),
        _ => None,
    }
}

/// Every resource page says whether and how it imports.
fn import_section(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            "## Import\n\nImported by ID: {id}.\n\n```hcl\nimport {{\n  to = {name}.example\n  id = \"ID\"\n}}\n```\n\nor `terraform import {name}.example ID`.\n"
        ),
        None => format!("## Import\n\n`{name}` cannot be imported.\n"),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(x) => format!("{x:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::StrataProvider;

    #[test]
    fn every_attribute_is_described() {
        let p = StrataProvider;
        fn check(b: &Block, path: &str) {
            for a in &b.attributes {
                assert!(!a.description.trim().is_empty(), "{path}.{} has no description", a.name);
            }
            for nb in &b.blocks {
                check(&nb.block, &format!("{path}.{}", nb.name));
            }
        }
        for r in p.resources() {
            check(&r.schema().block, r.name());
        }
        for d in p.data_sources() {
            check(&d.schema().block, d.name());
        }
    }

    /// docs/ must match the schemas: regenerate with `make docs`.
    #[test]
    fn committed_docs_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        for (rel, text) in pages(&StrataProvider) {
            let on_disk = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
            assert!(on_disk == text, "docs/{rel} is stale or missing: run `make docs`");
        }
    }
}
