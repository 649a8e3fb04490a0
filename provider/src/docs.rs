//! Markdown reference pages generated from the schemas, so the docs say exactly what the
//! provider accepts. `make docs` writes them to docs/; a test fails when they are stale.
//!
//! Examples come from `examples/` in the Terraform registry layout (as tfplugindocs reads
//! it): `provider/provider.tf`, `resources/<type>/resource.tf` and `import.sh`,
//! `data-sources/<type>/data-source.tf`. Every page must have its example, and a
//! resource has `import.sh` exactly when it supports import.

use std::fmt::Write as _;
use std::path::Path;

use crate::framework::{Attribute, Block, Mode, NestedBlock, Nesting, ProviderDefinition, Schema, Value};

/// The registry-layout example files of one type, relative to the examples directory.
pub fn example_path(kind: ExampleKind, type_name: &str) -> String {
    match kind {
        ExampleKind::Provider => "provider/provider.tf".to_string(),
        ExampleKind::Resource => format!("resources/{type_name}/resource.tf"),
        ExampleKind::Import => format!("resources/{type_name}/import.sh"),
        ExampleKind::DataSource => format!("data-sources/{type_name}/data-source.tf"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExampleKind {
    Provider,
    Resource,
    Import,
    DataSource,
}

/// One page per resource and data source, plus the provider's own, as (relative path, text),
/// with the examples read from `examples` (the repository's `examples/`). A missing
/// example, or an import script that disagrees with the resource, is an error naming the file.
pub fn pages(provider: &dyn ProviderDefinition, examples: &Path) -> Result<Vec<(String, String)>, String> {
    let read = |kind: ExampleKind, type_name: &str| -> Result<Option<String>, String> {
        let rel = example_path(kind, type_name);
        match std::fs::read_to_string(examples.join(&rel)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("examples/{rel}: {e}")),
        }
    };
    let need = |kind: ExampleKind, type_name: &str| -> Result<String, String> {
        read(kind, type_name)?.ok_or_else(|| format!("examples/{} is missing", example_path(kind, type_name)))
    };
    let prefix = provider.type_name();
    let mut index = page(&format!("{prefix} provider"), "provider", &provider.schema());
    usage(&mut index, &need(ExampleKind::Provider, prefix)?);
    let mut out = vec![("index.md".to_string(), index)];
    for r in provider.resources() {
        let name = format!("{prefix}_{}", r.name());
        let mut text = page(&name, "resource", &r.schema());
        usage(&mut text, &need(ExampleKind::Resource, &name)?);
        let script = read(ExampleKind::Import, &name)?;
        match (r.import_id(), script) {
            (Some(id), Some(script)) => text.push_str(&import_section(&name, id, &script)),
            (None, None) => {}
            (Some(_), None) => {
                return Err(format!(
                    "{name} supports import: add examples/{}",
                    example_path(ExampleKind::Import, &name)
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{name} cannot be imported: remove examples/{}",
                    example_path(ExampleKind::Import, &name)
                ))
            }
        }
        out.push((format!("resources/{}.md", r.name()), text));
    }
    for d in provider.data_sources() {
        let name = format!("{prefix}_{}", d.name());
        let mut text = page(&name, "data source", &d.schema());
        usage(&mut text, &need(ExampleKind::DataSource, &name)?);
        out.push((format!("data-sources/{}.md", d.name()), text));
    }
    Ok(out)
}

/// The example goes before the reference, as on registry pages.
fn usage(page: &mut String, example: &str) {
    let at = page.find("\n## ").map(|i| i + 1).unwrap_or(page.len());
    page.insert_str(at, &format!("## Example Usage\n\n```terraform\n{}\n```\n\n", example.trim_end()));
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
                notes.push("write-only: never stored in state or plan files; needs Terraform 1.11 or later".into());
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

/// How a resource imports: the documented ID, then the registry's `import.sh`.
fn import_section(name: &str, id: &str, script: &str) -> String {
    format!(
        "## Import\n\nImported by ID: {id}.\n\nIn Terraform 1.5 or later, with an `import` block:\n\n```terraform\nimport {{\n  to = {name}.example\n  id = \"ID\"\n}}\n```\n\nor with the command:\n\n```shell\n{}\n```\n",
        script.trim_end()
    )
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
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for (rel, text) in pages(&StrataProvider, &examples).unwrap() {
            let on_disk = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
            assert!(on_disk == text, "docs/{rel} is stale or missing: run `make docs`");
        }
    }

    /// A page without its example is an error naming the missing file.
    #[test]
    fn a_missing_example_is_named() {
        let empty = std::env::temp_dir().join(format!("strata-docs-empty-{}", std::process::id()));
        let err = pages(&StrataProvider, &empty).expect_err("no examples is an error");
        assert!(err.contains("examples/provider/provider.tf is missing"), "{err}");
    }
}
