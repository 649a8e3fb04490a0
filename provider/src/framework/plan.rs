//! Generic planning: what Terraform's proposed new state becomes before a resource adds
//! its own knowledge (see `Resource::modify_plan`).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::diagnostics::{AttributePath, Diagnostics};
use super::schema::{Block, Nesting, Schema};
use super::value::Value;
use super::write_only;

/// A planned change, handed to a resource to refine.
#[derive(Debug)]
pub struct PlanChange {
    /// Null when the resource is being created.
    pub prior: Value,
    pub config: Value,
    pub planned: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Diagnostics,
    /// The configured provider, when it was configured (see `provider_data`).
    pub(crate) provider: Option<ProviderHandle>,
}

/// The provider's data as plans see it.
#[derive(Clone)]
pub struct ProviderHandle(pub(crate) Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderHandle")
    }
}

impl PlanChange {
    /// The configured provider's data; `None` when the provider is not configured (a
    /// plan must then not need it) or has another data type.
    pub fn provider_data<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.provider.clone().and_then(|p| p.0.downcast::<T>().ok())
    }

    pub fn is_create(&self) -> bool {
        self.prior.is_null()
    }

    /// Whether a top-level attribute's planned value differs from the prior state's.
    pub fn changed(&self, name: &str) -> bool {
        match (self.prior.attr(name), self.planned.attr(name)) {
            (Some(p), Some(n)) => n.is_unknown() || !p.semantically_equal(n),
            _ => true,
        }
    }

    /// Marks a computed top-level attribute as "known after apply".
    pub fn set_unknown(&mut self, name: &str) {
        if let Some(v) = self.planned.attr_mut(name) {
            *v = Value::Unknown;
        }
    }

    pub fn require_replace(&mut self, name: &str) {
        let p = AttributePath::root(name);
        if !self.requires_replace.contains(&p) {
            self.requires_replace.push(p);
        }
    }
}

/// Plans from Terraform's proposed new state (config merged with prior state for
/// computed attributes the config leaves null), as terraform-plugin-framework does:
/// - an attribute with a default gets it whenever the CONFIGURATION leaves it null
///   (Terraform proposes the prior value there, so deleting a line would otherwise
///   never bring the default back);
/// - another computed attribute left null becomes unknown, but only where there is no
///   prior object (a create, or a new nested element): on an update a null prior value
///   is what the remote side has, and stays null;
/// - computed values Terraform carried over from the prior state are kept, so an
///   unrelated change does not show them as "known after apply";
/// - write-only attributes are null (they live only in the configuration);
/// - changed attributes marked `requires_replace` are reported.
pub fn plan(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> PlanChange {
    let mut planned =
        if proposed.is_null() { Value::Null } else { fill_computed(&schema.block, proposed, prior, Some(config)) };
    write_only::clear(&schema.block, &mut planned);
    let mut requires_replace = Vec::new();
    if !prior.is_null() && !planned.is_null() {
        replace_paths(&schema.block, prior, &planned, &AttributePath::default(), &mut requires_replace);
    }
    PlanChange {
        prior: prior.clone(),
        config: config.clone(),
        planned,
        requires_replace,
        diagnostics: Diagnostics::new(),
        provider: None,
    }
}

/// `config` is the configuration at the same place, when it can be matched (sets have
/// no identity: their elements are planned from the proposed value alone).
fn fill_computed(block: &Block, proposed: &Value, prior: &Value, config: Option<&Value>) -> Value {
    let Value::Object(attrs) = proposed else { return proposed.clone() };
    let existed = matches!(prior, Value::Object(_));
    let mut out: BTreeMap<String, Value> = attrs.clone();
    for a in &block.attributes {
        if !a.mode.is_computed() {
            continue;
        }
        let configured = match config {
            Some(c) => c.attr(&a.name).is_some_and(|v| !v.is_null()),
            None => false,
        };
        let v = out.entry(a.name.clone()).or_insert(Value::Null);
        match &a.default {
            Some(d) if !configured && (config.is_some() || v.is_null()) => *v = d.clone(),
            Some(_) => {}
            None if v.is_null() => *v = if existed { Value::Null } else { Value::Unknown },
            None => {}
        }
    }
    for b in &block.blocks {
        let Some(v) = out.get_mut(&b.name) else { continue };
        let before = prior.attr(&b.name).unwrap_or(&Value::Null);
        let conf = config.map(|c| c.attr(&b.name).unwrap_or(&Value::Null));
        *v = match (b.nesting, &*v) {
            (Nesting::Single, inner) if !inner.is_null() && !inner.is_unknown() => {
                fill_computed(&b.block, inner, before, conf)
            }
            // Terraform matches list elements with the prior ones by position.
            (Nesting::List, Value::List(items)) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = match before {
                            Value::List(ps) => ps.get(i).unwrap_or(&Value::Null),
                            _ => &Value::Null,
                        };
                        let c = match conf {
                            Some(Value::List(cs)) => cs.get(i),
                            _ => None,
                        };
                        fill_computed(&b.block, item, p, c)
                    })
                    .collect(),
            ),
            // Set elements have no identity across plans: treat each as new.
            (Nesting::Set, Value::Set(items)) => {
                Value::Set(items.iter().map(|i| fill_computed(&b.block, i, &Value::Null, None)).collect())
            }
            (Nesting::Map, Value::Map(items)) => Value::Map(
                items
                    .iter()
                    .map(|(k, i)| {
                        let p = match before {
                            Value::Map(m) => m.get(k),
                            _ => None,
                        };
                        let c = match conf {
                            Some(Value::Map(cs)) => cs.get(k),
                            _ => None,
                        };
                        (k.clone(), fill_computed(&b.block, i, p.unwrap_or(&Value::Null), c))
                    })
                    .collect(),
            ),
            (_, other) => other.clone(),
        };
    }
    Value::Object(out)
}

fn replace_paths(block: &Block, prior: &Value, planned: &Value, path: &AttributePath, out: &mut Vec<AttributePath>) {
    let differs = |name: &str| match (prior.attr(name), planned.attr(name)) {
        (Some(p), Some(n)) => n.is_unknown() || !p.semantically_equal(n),
        (None, None) => false,
        _ => true,
    };
    for a in &block.attributes {
        if a.requires_replace && differs(&a.name) {
            out.push(path.attr(&a.name));
        }
    }
    for b in &block.blocks {
        if b.requires_replace && differs(&b.name) {
            out.push(path.attr(&b.name));
        } else if b.nesting == Nesting::Single {
            if let (Some(p), Some(n)) = (prior.attr(&b.name), planned.attr(&b.name)) {
                if !p.is_null() && !n.is_null() {
                    replace_paths(&b.block, p, n, &path.attr(&b.name), out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::{Attribute, NestedBlock};
    use crate::framework::types::Type;

    fn schema() -> Schema {
        Schema::new(
            0,
            Block::new("t")
                .attribute(Attribute::required("name", Type::String).requires_replace())
                .attribute(Attribute::optional("days", Type::Number).default(10i64))
                .attribute(Attribute::computed("id", Type::String))
                .block(NestedBlock::list(
                    "nic",
                    Block::new("n")
                        .attribute(Attribute::required("bridge", Type::String))
                        .attribute(Attribute::optional_computed("mac", Type::String)),
                )),
        )
    }

    fn obj(pairs: Vec<(&str, Value)>) -> Value {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn create_plans_defaults_and_unknown_computed_values() {
        let proposed = obj(vec![
            ("name", "a".into()),
            ("days", Value::Null),
            ("id", Value::Null),
            ("nic", Value::List(vec![obj(vec![("bridge", "vmbr0".into()), ("mac", Value::Null)])])),
        ]);
        let p = plan(&schema(), &Value::Null, &proposed, &proposed);
        assert_eq!(p.planned.attr("days"), Some(&Value::int(10)));
        assert_eq!(p.planned.attr("id"), Some(&Value::Unknown));
        let Some(Value::List(nics)) = p.planned.attr("nic") else { panic!() };
        assert_eq!(nics[0].attr("mac"), Some(&Value::Unknown));
        assert!(p.requires_replace.is_empty());
        assert!(p.is_create());
    }

    #[test]
    fn update_keeps_prior_computed_values_and_flags_replacement() {
        let prior = obj(vec![
            ("name", "a".into()),
            ("days", Value::int(10)),
            ("id", "x1".into()),
            ("nic", Value::List(vec![])),
        ]);
        let mut proposed = prior.clone();
        if let Value::Object(m) = &mut proposed {
            m.insert("name".into(), "b".into());
        }
        let p = plan(&schema(), &prior, &proposed, &proposed);
        assert_eq!(p.planned.attr("id"), Some(&Value::string("x1")));
        assert_eq!(p.requires_replace, vec![AttributePath::root("name")]);
        assert!(p.changed("name"));
        assert!(!p.changed("id"));
    }

    #[test]
    fn update_keeps_null_computed_values_and_fills_new_nested_elements() {
        let prior = obj(vec![
            ("name", "a".into()),
            ("days", Value::int(10)),
            ("id", Value::Null),
            ("nic", Value::List(vec![obj(vec![("bridge", "vmbr0".into()), ("mac", Value::Null)])])),
        ]);
        let mut proposed = prior.clone();
        if let Some(Value::List(nics)) = proposed.attr_mut("nic") {
            nics.push(obj(vec![("bridge", "vmbr1".into()), ("mac", Value::Null)]));
        }
        let p = plan(&schema(), &prior, &proposed, &proposed);
        assert_eq!(p.planned.attr("id"), Some(&Value::Null), "null on the remote side stays null");
        let Some(Value::List(nics)) = p.planned.attr("nic") else { panic!() };
        assert_eq!(nics[0].attr("mac"), Some(&Value::Null));
        assert_eq!(nics[1].attr("mac"), Some(&Value::Unknown), "a new element's computed value is not known yet");
    }

    #[test]
    fn a_default_comes_back_when_its_line_is_removed() {
        // Terraform proposes the prior value (100) for an optional+computed attribute the
        // configuration no longer sets; the default must win over it.
        let prior = obj(vec![
            ("name", "a".into()),
            ("days", Value::int(100)),
            ("id", "x1".into()),
            ("nic", Value::List(vec![obj(vec![("bridge", "vmbr0".into()), ("mac", "aa".into())])])),
        ]);
        let proposed = prior.clone();
        let mut config = prior.clone();
        if let Value::Object(m) = &mut config {
            m.insert("days".into(), Value::Null);
            m.insert("id".into(), Value::Null);
            m.insert("nic".into(), Value::List(vec![obj(vec![("bridge", "vmbr0".into()), ("mac", Value::Null)])]));
        }
        let p = plan(&schema(), &prior, &proposed, &config);
        assert_eq!(p.planned.attr("days"), Some(&Value::int(10)));
        assert_eq!(p.planned.attr("id"), Some(&Value::string("x1")), "computed values without default are kept");
        let Some(Value::List(nics)) = p.planned.attr("nic") else { panic!() };
        assert_eq!(nics[0].attr("mac"), Some(&Value::string("aa")));
        // A configured value stays as configured.
        if let Value::Object(m) = &mut config {
            m.insert("days".into(), Value::int(7));
        }
        let mut proposed = proposed;
        if let Value::Object(m) = &mut proposed {
            m.insert("days".into(), Value::int(7));
        }
        assert_eq!(plan(&schema(), &prior, &proposed, &config).planned.attr("days"), Some(&Value::int(7)));
    }

    #[test]
    fn destroy_plans_null() {
        let prior = obj(vec![("name", "a".into())]);
        let p = plan(&schema(), &prior, &Value::Null, &Value::Null);
        assert!(p.planned.is_null());
    }
}
