//! Write-only attributes (protocol 6.10): their values exist only in the configuration.
//! The framework nulls them in every plan and state it returns, and hands them to a
//! resource's create and update from the configuration.
//!
//! Terraform older than 1.11 does not know write-only attributes: it ignores the
//! schema flag, expects the planned value to equal the configuration, and fails the
//! plan with "Provider produced invalid plan ... This is a bug in the provider". As
//! terraform-plugin-framework does, such a client is told at validation instead, by
//! [`refuse_unsupported`], naming the attribute.

use super::diagnostics::{AttributePath, Diagnostic, Diagnostics};
use super::schema::{Block, Nesting};
use super::value::Value;

/// The first Terraform release with write-only attributes (protocol 6.10).
pub const MIN_TERRAFORM: &str = "1.11";

/// Adds an error for every write-only attribute that `config` sets (a known or an
/// unknown value: only null is "unset"), for a client that did not announce write-only
/// support (`ClientCapabilities.write_only_attributes_allowed`; Terraform before 1.11
/// sends no capabilities at all). The value itself is never put in the message.
pub fn refuse_unsupported(block: &Block, config: &Value, at: &AttributePath, diags: &mut Diagnostics) {
    let Value::Object(attrs) = config else { return };
    for a in block.attributes.iter().filter(|a| a.write_only) {
        if attrs.get(&a.name).is_none_or(Value::is_null) {
            continue;
        }
        let path = at.attr(&a.name);
        let instead = match &a.write_only_instead {
            Some(i) => format!("or {i}"),
            None => format!("or leave `{path}` unset"),
        };
        diags.push(
            Diagnostic::error(
                format!("Write-only attribute needs Terraform {MIN_TERRAFORM} or later"),
                format!(
                    "`{path}` is write-only: its value must never be stored in state or plan files, and only \
                     Terraform {MIN_TERRAFORM} and later can keep it out (this Terraform did not announce \
                     write-only support, so it is older). Upgrade Terraform to {MIN_TERRAFORM} or later, {instead}."
                ),
            )
            .at(path),
        );
    }
    for b in block.blocks.iter().filter(|b| any(&b.block)) {
        let path = at.attr(&b.name);
        match (b.nesting, attrs.get(&b.name)) {
            (Nesting::Single, Some(v)) => refuse_unsupported(&b.block, v, &path, diags),
            (Nesting::List, Some(Value::List(items))) => {
                for (i, item) in items.iter().enumerate() {
                    refuse_unsupported(&b.block, item, &path.index(i), diags);
                }
            }
            // Set elements have no index or key to name: the path stops at the block.
            (Nesting::Set, Some(Value::Set(items) | Value::List(items))) => {
                for item in items {
                    refuse_unsupported(&b.block, item, &path, diags);
                }
            }
            (Nesting::Map, Some(Value::Map(items))) => {
                for (k, item) in items {
                    refuse_unsupported(&b.block, item, &path.key(k), diags);
                }
            }
            _ => {}
        }
    }
}

/// Whether the block has a write-only attribute at any depth.
pub fn any(block: &Block) -> bool {
    block.attributes.iter().any(|a| a.write_only) || block.blocks.iter().any(|b| any(&b.block))
}

/// Sets every write-only attribute in `value` to null.
pub fn clear(block: &Block, value: &mut Value) {
    walk(block, value, None);
}

/// Copies every write-only attribute's value from `config` into `value`, matching
/// nested blocks by position (lists, sets as given) or key (maps).
pub fn fill_from_config(block: &Block, value: &mut Value, config: &Value) {
    walk(block, value, Some(config));
}

fn walk(block: &Block, value: &mut Value, config: Option<&Value>) {
    let Value::Object(attrs) = value else { return };
    for a in block.attributes.iter().filter(|a| a.write_only) {
        let from = config.and_then(|c| c.attr(&a.name)).cloned().unwrap_or(Value::Null);
        attrs.insert(a.name.clone(), from);
    }
    for b in &block.blocks {
        if !any(&b.block) {
            continue;
        }
        let Some(v) = attrs.get_mut(&b.name) else { continue };
        let c = config.and_then(|c| c.attr(&b.name));
        match (b.nesting, v) {
            (Nesting::Single, v) => walk(&b.block, v, c),
            (Nesting::List | Nesting::Set, Value::List(items) | Value::Set(items)) => {
                let cs: Vec<Value> = match c {
                    Some(Value::List(x) | Value::Set(x)) => x.clone(),
                    _ => Vec::new(),
                };
                for (i, item) in items.iter_mut().enumerate() {
                    walk(&b.block, item, config.map(|_| cs.get(i).unwrap_or(&Value::Null)));
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (k, item) in items.iter_mut() {
                    let ci = match c {
                        Some(Value::Map(m)) => m.get(k),
                        _ => None,
                    };
                    walk(&b.block, item, config.map(|_| ci.unwrap_or(&Value::Null)));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::{Attribute, NestedBlock};
    use crate::framework::types::Type;

    fn block() -> Block {
        Block::new("t").attribute(Attribute::required("name", Type::String)).block(NestedBlock::single(
            "ssh",
            Block::new("s")
                .attribute(Attribute::required("host", Type::String))
                .attribute(Attribute::optional("private_key", Type::String).write_only()),
        ))
    }

    fn obj(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn clears_and_refills_nested_write_only_values() {
        let config =
            obj(vec![("name", "a".into()), ("ssh", obj(vec![("host", "n1".into()), ("private_key", "KEY".into())]))]);
        let mut planned = config.clone();
        clear(&block(), &mut planned);
        assert_eq!(planned.attr("ssh").unwrap().attr("private_key"), Some(&Value::Null));
        assert_eq!(planned.attr("ssh").unwrap().attr("host"), Some(&Value::string("n1")));
        fill_from_config(&block(), &mut planned, &config);
        assert_eq!(planned, config);
        assert!(any(&block()));
    }

    fn messages(config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        refuse_unsupported(&block(), config, &AttributePath::default(), &mut diags);
        diags
    }

    #[test]
    fn a_set_write_only_value_is_refused_naming_the_attribute_and_the_version_never_the_value() {
        for value in [Value::string("SECRET-KEY"), Value::Unknown] {
            let config =
                obj(vec![("name", "a".into()), ("ssh", obj(vec![("host", "n1".into()), ("private_key", value)]))]);
            let diags = messages(&config);
            assert_eq!(diags.0.len(), 1, "{diags}");
            let d = &diags.0[0];
            assert!(diags.has_errors());
            assert_eq!(d.attribute, Some(AttributePath::parse("ssh.private_key")));
            assert!(d.summary.contains("1.11") && d.detail.contains("`ssh.private_key`"), "{d:?}");
            assert!(d.detail.contains("leave `ssh.private_key` unset"), "{d:?}");
            assert!(!format!("{d:?}").contains("SECRET-KEY"), "{d:?}");
            assert!(!format!("{d:?}").contains("bug in the provider"), "{d:?}");
        }
    }

    #[test]
    fn unset_write_only_values_and_absent_blocks_pass() {
        let config =
            obj(vec![("name", "a".into()), ("ssh", obj(vec![("host", "n1".into()), ("private_key", Value::Null)]))]);
        assert!(messages(&config).is_empty());
        assert!(messages(&obj(vec![("name", "a".into()), ("ssh", Value::Null)])).is_empty());
        assert!(messages(&Value::Null).is_empty());
    }

    #[test]
    fn nested_lists_and_maps_name_the_element_and_say_what_to_use_instead() {
        let inner = Block::new("n").attribute(
            Attribute::optional("password", Type::String).write_only().write_only_instead("use `password_file`"),
        );
        let b = Block::new("t").block(NestedBlock::list("node", inner.clone())).block(NestedBlock::new(
            "by_name",
            Nesting::Map,
            inner,
        ));
        let pw = |v: Value| obj(vec![("password", v)]);
        let config = obj(vec![
            ("node", Value::List(vec![pw(Value::Null), pw("x".into())])),
            ("by_name", Value::Map([("a".to_string(), pw("y".into()))].into_iter().collect())),
        ]);
        let mut diags = Diagnostics::new();
        refuse_unsupported(&b, &config, &AttributePath::default(), &mut diags);
        let paths: Vec<String> = diags.iter().map(|d| d.attribute.clone().unwrap().to_string()).collect();
        assert_eq!(paths, vec!["node[1].password".to_string(), r#"by_name["a"].password"#.to_string()]);
        assert!(diags.0[0].detail.ends_with("or use `password_file`."), "{}", diags.0[0].detail);
    }
}
