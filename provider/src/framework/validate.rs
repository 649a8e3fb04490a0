//! Plan-time validation of a configuration against its schema's validators.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::diagnostics::{AttributePath, Diagnostic, Diagnostics};
use super::schema::{Block, Nesting, Validator};
use super::value::Value;

/// Runs every attribute validator on known, non-null values; unknown values are checked
/// later, when they are known (Terraform validates again before apply).
pub fn validate_block(block: &Block, value: &Value, path: &AttributePath, diags: &mut Diagnostics) {
    let Value::Object(attrs) = value else { return };
    for a in &block.attributes {
        let Some(v) = attrs.get(&a.name) else { continue };
        if v.is_null() || v.is_unknown() {
            continue;
        }
        let at = path.attr(&a.name);
        for validator in &a.validators {
            if let Err(msg) = check(validator, v) {
                // The value itself is left out: the attribute may be sensitive.
                diags.push(Diagnostic::error(format!("Invalid value for {at}"), msg).at(at.clone()));
            }
        }
    }
    for b in &block.blocks {
        let Some(v) = attrs.get(&b.name) else { continue };
        let at = path.attr(&b.name);
        match (b.nesting, v) {
            (Nesting::Single, v) => validate_block(&b.block, v, &at, diags),
            (Nesting::List | Nesting::Set, Value::List(items) | Value::Set(items)) => {
                for (i, item) in items.iter().enumerate() {
                    validate_block(&b.block, item, &at.index(i), diags);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (k, item) in items {
                    validate_block(&b.block, item, &at.key(k), diags);
                }
            }
            _ => {}
        }
    }
}

fn check(validator: &Validator, v: &Value) -> Result<(), String> {
    match validator {
        Validator::OneOf(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => Err(format!(
                "Must be one of: {}.",
                allowed.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
            )),
        },
        Validator::IntBetween(min, max) => match v.as_i64() {
            Some(i) if (*min..=*max).contains(&i) => Ok(()),
            Some(i) => Err(format!("Must be between {min} and {max}, got {i}.")),
            None => Err(format!("Must be a whole number between {min} and {max}.")),
        },
        Validator::LengthBetween(min, max) => {
            let len = match v {
                Value::String(s) => s.chars().count(),
                Value::List(x) | Value::Set(x) => x.len(),
                Value::Map(m) => m.len(),
                _ => return Ok(()),
            };
            if (*min..=*max).contains(&len) {
                Ok(())
            } else {
                Err(format!("Length must be between {min} and {max}, got {len}."))
            }
        }
        Validator::Matches(re, what) => {
            let ok = v.as_str().is_some_and(|s| whole_match(re).is_some_and(|r| r.is_match(s)));
            if ok {
                Ok(())
            } else {
                Err(format!("Must be {what}."))
            }
        }
        Validator::IpAddress(why) => match v.as_str().map(str::parse::<std::net::IpAddr>) {
            Some(Ok(_)) | None => Ok(()),
            Some(Err(_)) if why.is_empty() => Err("Must be an IP address.".into()),
            Some(Err(_)) => Err(format!("Must be an IP address ({why}).")),
        },
        Validator::Custom(f) => f(v),
    }
}

/// The compiled `^(?:pattern)$` of a `Matches` validator, or None for a pattern that does
/// not compile. Compiled once per process (compiling costs ~60 us and validation runs for
/// every instance on every ValidateResourceConfig and PlanResourceChange) and shared, not
/// cloned: a clone starts with empty match caches, which costs about as much again.
/// Patterns are `'static` and few, so the compiled ones live as long as the process.
fn whole_match(pattern: &'static str) -> Option<&'static regex::Regex> {
    type Compiled = HashMap<&'static str, Option<&'static regex::Regex>>;
    static COMPILED: LazyLock<Mutex<Compiled>> = LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *compiled
        .entry(pattern)
        .or_insert_with(|| regex::Regex::new(&format!("^(?:{pattern})$")).ok().map(|r| &*Box::leak(Box::new(r))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::{Attribute, NestedBlock};
    use crate::framework::types::Type;

    fn schema() -> Block {
        Block::new("t")
            .attribute(Attribute::optional("algo", Type::String).validate(Validator::OneOf(vec!["a", "b"])))
            .attribute(Attribute::optional("days", Type::Number).validate(Validator::IntBetween(1, 10)))
            .block(NestedBlock::list(
                "disk",
                Block::new("d").attribute(
                    Attribute::required("iface", Type::String).validate(Validator::Matches("scsi[0-9]+", "like scsi0")),
                ),
            ))
    }

    fn obj(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn reports_each_bad_attribute_with_its_path() {
        let v = obj(vec![
            ("algo", "c".into()),
            ("days", Value::int(0)),
            ("disk", Value::List(vec![obj(vec![("iface", "scsi0".into())]), obj(vec![("iface", "ide9x".into())])])),
        ]);
        let mut d = Diagnostics::new();
        validate_block(&schema(), &v, &AttributePath::default(), &mut d);
        let paths: Vec<String> = d.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
        assert_eq!(paths, vec!["algo", "days", "disk[1].iface"]);
    }

    #[test]
    fn unknown_and_null_values_pass() {
        let v = obj(vec![("algo", Value::Unknown), ("days", Value::Null), ("disk", Value::Unknown)]);
        let mut d = Diagnostics::new();
        validate_block(&schema(), &v, &AttributePath::default(), &mut d);
        assert!(d.is_empty(), "{d}");
    }

    #[test]
    fn a_pattern_matches_whole_values_every_time() {
        let v = Validator::Matches("a|b[0-9]", "a or b and a digit");
        for _ in 0..2 {
            assert!(check(&v, &"a".into()).is_ok());
            assert!(check(&v, &"b7".into()).is_ok());
            assert!(check(&v, &"ab7".into()).is_err(), "alternation stays inside the anchors");
            assert!(check(&v, &"b77".into()).is_err());
        }
        assert!(check(&Validator::Matches("(", "broken"), &"(".into()).is_err(), "a bad pattern matches nothing");
    }

    #[test]
    fn ip_addresses_v4_and_v6_and_the_reason_in_the_error() {
        let v = Validator::IpAddress("the node listens on it");
        assert!(check(&v, &"10.0.0.5".into()).is_ok());
        assert!(check(&v, &"fd00::5".into()).is_ok());
        assert_eq!(check(&v, &"node1".into()), Err("Must be an IP address (the node listens on it).".into()));
        assert_eq!(check(&Validator::IpAddress(""), &"10.0.0".into()), Err("Must be an IP address.".into()));
    }
}
