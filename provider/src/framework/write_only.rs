//! Write-only attributes (protocol 6.10): their values exist only in the configuration.
//! The framework nulls them in every plan and state it returns, and hands them to a
//! resource's create and update from the configuration.

use super::schema::{Block, Nesting};
use super::value::Value;

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
}
