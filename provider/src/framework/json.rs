//! JSON forms of values: Terraform's stored state (`raw_state.json`, cty's JSON encoding)
//! and the bridge between values and resources' serde models.

use std::collections::BTreeMap;
use std::str::FromStr;

use bigdecimal::{BigDecimal, ToPrimitive};
use serde_json::Value as Json;

use super::types::Type;
use super::value::Value;

/// How strictly to read an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// An attribute the type does not have is an error.
    Reject,
    /// Dropped: stored state may still hold attributes a newer schema removed.
    Ignore,
}

/// Decodes JSON against a type. Absent object attributes are null, as in cty.
pub fn decode(json: &Json, ty: &Type, extra: Extra) -> Result<Value, String> {
    decode_at(json, ty, extra, &mut Vec::new())
}

pub fn decode_bytes(bytes: &[u8], ty: &Type, extra: Extra) -> Result<Value, String> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))?;
    decode(&json, ty, extra)
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "the value".into()
    } else {
        path.join(".")
    }
}

fn decode_at(json: &Json, ty: &Type, extra: Extra, path: &mut Vec<String>) -> Result<Value, String> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let wrong = || format!("{}: expected {ty}, got {}", at(path), json_kind(json));
    match ty {
        Type::String => match json {
            Json::String(s) => Ok(Value::String(s.clone())),
            // cty converts primitives to string on decode, as Terraform does.
            Json::Number(n) => Ok(Value::String(n.to_string())),
            Json::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(wrong()),
        },
        Type::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err(wrong()),
        },
        Type::Number => match json {
            Json::Number(n) => number(n).ok_or_else(wrong),
            Json::String(s) => BigDecimal::from_str(s).map(Value::Number).map_err(|_| wrong()),
            _ => Err(wrong()),
        },
        Type::List(et) | Type::Set(et) => {
            let Json::Array(items) = json else { return Err(wrong()) };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(decode_at(item, et, extra, path)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::List(_)) { Value::List(out) } else { Value::Set(out) })
        }
        Type::Tuple(ets) => {
            let Json::Array(items) = json else { return Err(wrong()) };
            if items.len() != ets.len() {
                return Err(format!("{}: tuple needs {} elements, got {}", at(path), ets.len(), items.len()));
            }
            let mut out = Vec::new();
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(i.to_string());
                out.push(decode_at(item, et, extra, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(et) => {
            let Json::Object(m) = json else { return Err(wrong()) };
            let mut out = BTreeMap::new();
            for (k, v) in m {
                path.push(k.clone());
                out.insert(k.clone(), decode_at(v, et, extra, path)?);
                path.pop();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let Json::Object(m) = json else { return Err(wrong()) };
            if extra == Extra::Reject {
                if let Some(k) = m.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(format!("{}: unsupported attribute {k:?}", at(path)));
                }
            }
            let mut out = BTreeMap::new();
            for (k, at_ty) in attrs {
                path.push(k.clone());
                let v = match m.get(k) {
                    Some(j) => decode_at(j, at_ty, extra, path)?,
                    None => Value::Null,
                };
                out.insert(k.clone(), v);
                path.pop();
            }
            Ok(Value::Object(out))
        }
        // cty's JSON for a dynamic value: {"value": ..., "type": <type JSON>}.
        Type::Dynamic => {
            let Json::Object(m) = json else { return Err(wrong()) };
            let (Some(v), Some(t)) = (m.get("value"), m.get("type")) else {
                return Err(format!("{}: dynamic value needs \"value\" and \"type\"", at(path)));
            };
            let inner_ty = Type::from_json(t).map_err(|e| format!("{}: {e}", at(path)))?;
            let inner = decode_at(v, &inner_ty, extra, path)?;
            Ok(Value::Dynamic(inner_ty, Box::new(inner)))
        }
    }
}

fn number(n: &serde_json::Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return Some(Value::int(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(Value::Number(BigDecimal::from(u)));
    }
    // serde_json holds non-integers as f64; its shortest rendering is the decimal the
    // state file had whenever that fits in 17 significant digits.
    BigDecimal::from_str(&n.to_string()).ok().map(Value::Number)
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Renders a value as plain JSON for a serde model. Unknowns become null: a model sees
/// "not known yet" as absent.
pub fn to_model_json(v: &Value) -> Json {
    match v {
        Value::Null | Value::Unknown => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let (true, Some(i)) = (n.is_integer(), n.to_i64()) {
                Json::from(i)
            } else {
                n.to_f64().map(Json::from).unwrap_or(Json::Null)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            Json::Array(items.iter().map(to_model_json).collect())
        }
        Value::Map(m) | Value::Object(m) => {
            Json::Object(m.iter().map(|(k, v)| (k.clone(), to_model_json(v))).collect())
        }
        Value::Dynamic(_, inner) => to_model_json(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_type() -> Type {
        Type::object([
            ("id", Type::String),
            ("count", Type::Number),
            ("enabled", Type::Bool),
            ("tags", Type::set(Type::String)),
            ("labels", Type::map(Type::String)),
            ("disks", Type::list(Type::object([("size_gb", Type::Number), ("storage", Type::String)]))),
            ("extra", Type::Dynamic),
        ])
    }

    #[test]
    fn decodes_terraform_state_json() {
        let raw = br#"{"id":"abc","count":3,"enabled":true,"tags":["a","b"],"labels":{"x":"y"},
            "disks":[{"size_gb":32,"storage":"local-lvm"}],
            "extra":{"value":["x",1],"type":["tuple",["string","number"]]}}"#;
        let v = decode_bytes(raw, &state_type(), Extra::Reject).unwrap();
        assert_eq!(v.attr("id"), Some(&Value::string("abc")));
        assert_eq!(v.attr("count").and_then(Value::as_i64), Some(3));
        assert_eq!(v.attr("tags"), Some(&Value::Set(vec!["a".into(), "b".into()])));
        let disk = &v.attr("disks").unwrap();
        let Value::List(disks) = disk else { panic!() };
        assert_eq!(disks[0].attr("storage"), Some(&Value::string("local-lvm")));
        assert_eq!(
            v.attr("extra"),
            Some(&Value::Dynamic(
                Type::Tuple(vec![Type::String, Type::Number]),
                Box::new(Value::Tuple(vec!["x".into(), Value::int(1)]))
            ))
        );
    }

    #[test]
    fn absent_attributes_are_null_and_extra_ones_depend_on_mode() {
        let raw = br#"{"id":"abc","removed_attr":1}"#;
        let v = decode_bytes(raw, &state_type(), Extra::Ignore).unwrap();
        assert_eq!(v.attr("count"), Some(&Value::Null));
        assert_eq!(v.attr("disks"), Some(&Value::Null));
        let err = decode_bytes(raw, &state_type(), Extra::Reject).unwrap_err();
        assert!(err.contains("removed_attr"), "{err}");
    }

    #[test]
    fn precise_numbers_survive() {
        let ty = Type::object([("n", Type::Number)]);
        let v = decode_bytes(br#"{"n":0.1}"#, &ty, Extra::Reject).unwrap();
        assert_eq!(v.attr("n"), Some(&Value::number_str("0.1").unwrap()));
        let v = decode_bytes(br#"{"n":18446744073709551615}"#, &ty, Extra::Reject).unwrap();
        assert_eq!(v.attr("n"), Some(&Value::number_str("18446744073709551615").unwrap()));
        // Numbers beyond float64 can be stored as strings and are read exactly.
        let v = decode_bytes(br#"{"n":"123456789012345678901234567890.5"}"#, &ty, Extra::Reject).unwrap();
        assert_eq!(v.attr("n"), Some(&Value::number_str("123456789012345678901234567890.5").unwrap()));
    }

    #[test]
    fn malformed_state_is_an_error_naming_the_attribute() {
        let err = decode_bytes(br#"{"disks":[{"size_gb":"big"}]}"#, &state_type(), Extra::Reject).unwrap_err();
        assert!(err.contains("disks.0.size_gb"), "{err}");
        assert!(decode_bytes(b"{not json", &state_type(), Extra::Reject).is_err());
        assert!(decode_bytes(br#"{"extra":{"value":1}}"#, &state_type(), Extra::Reject).is_err());
    }
}
