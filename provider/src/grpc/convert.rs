//! Framework <-> protocol conversions. The only place that knows both sides.

use strata_proto::tfplugin6 as pb;

use crate::framework::diagnostics::PathStep;
use crate::framework::json::{self, Extra};
use crate::framework::{
    msgpack, AttributePath, Block, Diagnostic, Diagnostics, Mode, NestedBlock, Nesting, Schema, Severity, Type, Value,
};

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema { version: s.version, block: Some(block(&s.block)) }
}

fn block(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: b
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.clone(),
                r#type: a.ty.to_json_bytes(),
                nested_type: None,
                description: a.description.clone(),
                required: a.mode == Mode::Required,
                optional: matches!(a.mode, Mode::Optional | Mode::OptionalComputed),
                computed: a.mode.is_computed(),
                sensitive: a.sensitive,
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: a.deprecated,
                write_only: a.write_only,
                deprecation_message: String::new(),
            })
            .collect(),
        block_types: b.blocks.iter().map(nested_block).collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecated,
        deprecation_message: String::new(),
    }
}

fn nested_block(nb: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode;
    let nesting = match nb.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
    };
    pb::schema::NestedBlock {
        type_name: nb.name.clone(),
        block: Some(block(&nb.block)),
        nesting: nesting as i32,
        min_items: nb.min_items,
        max_items: nb.max_items,
    }
}

pub fn path(p: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attribute(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error as i32,
            Severity::Warning => pb::diagnostic::Severity::Warning as i32,
        },
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.attribute.as_ref().map(path),
    }
}

pub fn diagnostics(d: &Diagnostics) -> Vec<pb::Diagnostic> {
    d.iter().map(diagnostic).collect()
}

/// Decodes a DynamicValue. Terraform sends msgpack; JSON is accepted too, and an empty
/// value is null.
pub fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let result = if !dv.msgpack.is_empty() {
        msgpack::decode(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        json::decode_bytes(&dv.json, ty, Extra::Reject)
    } else {
        Ok(Value::Null)
    };
    result.map_err(|e| Diagnostic::error(format!("Invalid {what} from Terraform"), e).into())
}

pub fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostics> {
    msgpack::encode(v, ty)
        .map(|msgpack| pb::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::error("Provider produced a value it cannot encode", e).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Attribute, Validator};

    #[test]
    fn schema_converts_with_modes_types_and_descriptions() {
        let s = Schema::new(
            2,
            Block::new("A thing.")
                .attribute(Attribute::required("name", Type::String).description("Its name."))
                .attribute(
                    Attribute::optional("days", Type::Number).default(5i64).validate(Validator::IntBetween(1, 9)),
                )
                .attribute(Attribute::computed("key", Type::String).sensitive())
                .block(
                    NestedBlock::list(
                        "disk",
                        Block::new("A disk.").attribute(Attribute::required("size", Type::Number)),
                    )
                    .items(1, 4),
                ),
        );
        let p = schema(&s);
        assert_eq!(p.version, 2);
        let b = p.block.unwrap();
        assert_eq!(b.description, "A thing.");
        let name = &b.attributes[0];
        assert!(name.required && !name.optional && !name.computed);
        assert_eq!(name.r#type, b"\"string\"");
        assert_eq!(name.description, "Its name.");
        let days = &b.attributes[1];
        assert!(!days.required && days.optional && days.computed, "a default makes it optional+computed");
        let key = &b.attributes[2];
        assert!(key.computed && !key.optional && key.sensitive);
        let disk = &b.block_types[0];
        assert_eq!(disk.type_name, "disk");
        assert_eq!(disk.nesting, pb::schema::nested_block::NestingMode::List as i32);
        assert_eq!((disk.min_items, disk.max_items), (1, 4));
        assert_eq!(disk.block.as_ref().unwrap().attributes[0].r#type, b"\"number\"");
    }

    #[test]
    fn diagnostics_carry_paths() {
        let d = Diagnostic::error("bad", "worse").at(AttributePath::root("disks").index(2).attr("size_gb"));
        let p = diagnostic(&d);
        assert_eq!(p.severity, pb::diagnostic::Severity::Error as i32);
        assert_eq!(p.attribute.unwrap().steps.len(), 3);
    }

    #[test]
    fn malformed_dynamic_values_become_diagnostics() {
        let dv = pb::DynamicValue { msgpack: vec![0x81, 0xa1], json: vec![] };
        let err = decode(Some(&dv), &Type::object([("a", Type::String)]), "configuration").unwrap_err();
        assert!(err.has_errors());
        assert!(err.0[0].summary.contains("configuration"));
        let dv = pb::DynamicValue { msgpack: vec![], json: b"{\"a\":".to_vec() };
        assert!(decode(Some(&dv), &Type::object([("a", Type::String)]), "state").is_err());
        assert_eq!(decode(None, &Type::String, "x").unwrap(), Value::Null);
    }
}
