//! The msgpack wire format of Terraform's DynamicValue, following go-cty's cty/msgpack.
//! Parsing and writing msgpack itself is rmpv's job; this module only maps it to typed
//! values.

use std::collections::BTreeMap;
use std::str::FromStr;

use bigdecimal::{BigDecimal, ToPrimitive};
use rmpv::Value as Mp;

use super::types::Type;
use super::value::Value;

/// go-cty writes an unknown as fixext1 type 0 with one zero byte (`d4 00 00`).
const UNKNOWN_EXT: i8 = 0;

pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, String> {
    let mut rd = bytes;
    let mp = rmpv::decode::read_value(&mut rd).map_err(|e| format!("malformed msgpack: {e}"))?;
    if !rd.is_empty() {
        return Err(format!("malformed msgpack: {} trailing bytes", rd.len()));
    }
    from_mp(&mp, ty, &mut Vec::new())
}

pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, String> {
    let mp = to_mp(value, ty, &mut Vec::new())?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &mp).map_err(|e| e.to_string())?;
    Ok(out)
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "the value".to_string()
    } else {
        path.join(".")
    }
}

fn from_mp(mp: &Mp, ty: &Type, path: &mut Vec<String>) -> Result<Value, String> {
    // Any extension type is an unknown: ext 0 from go-cty, ext 12 (refined unknown)
    // from newer Terraform.
    if let Mp::Ext(_, _) = mp {
        return Ok(Value::Unknown);
    }
    if let Mp::Nil = mp {
        return Ok(Value::Null);
    }
    let wrong = |what: &str| format!("{}: expected {ty}, got {what}", at(path));
    match ty {
        Type::String => match mp {
            Mp::String(s) => {
                s.as_str().map(Value::string).ok_or_else(|| format!("{}: string is not valid UTF-8", at(path)))
            }
            other => Err(wrong(kind(other))),
        },
        Type::Bool => match mp {
            Mp::Boolean(b) => Ok(Value::Bool(*b)),
            other => Err(wrong(kind(other))),
        },
        Type::Number => match mp {
            Mp::Integer(i) => {
                if let Some(v) = i.as_i64() {
                    Ok(Value::Number(BigDecimal::from(v)))
                } else {
                    Ok(Value::Number(BigDecimal::from(i.as_u64().unwrap_or_default())))
                }
            }
            Mp::F64(f) => float(*f, path),
            Mp::F32(f) => float(f64::from(*f), path),
            // Values that fit neither int64 nor float64 exactly come as decimal strings.
            Mp::String(s) => s
                .as_str()
                .and_then(|s| BigDecimal::from_str(s).ok())
                .map(Value::Number)
                .ok_or_else(|| format!("{}: invalid number string", at(path))),
            other => Err(wrong(kind(other))),
        },
        Type::List(et) | Type::Set(et) => {
            let Mp::Array(items) = mp else { return Err(wrong(kind(mp))) };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(from_mp(item, et, path)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::List(_)) { Value::List(out) } else { Value::Set(out) })
        }
        Type::Tuple(ets) => {
            let Mp::Array(items) = mp else { return Err(wrong(kind(mp))) };
            if items.len() != ets.len() {
                return Err(format!("{}: tuple needs {} elements, got {}", at(path), ets.len(), items.len()));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(i.to_string());
                out.push(from_mp(item, et, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(et) => {
            let Mp::Map(entries) = mp else { return Err(wrong(kind(mp))) };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = map_key(k, path)?;
                path.push(key.clone());
                out.insert(key, from_mp(v, et, path)?);
                path.pop();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let Mp::Map(entries) = mp else { return Err(wrong(kind(mp))) };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = map_key(k, path)?;
                let Some(at_ty) = attrs.get(&key) else {
                    return Err(format!("{}: unexpected attribute {key:?}", at(path)));
                };
                path.push(key.clone());
                out.insert(key, from_mp(v, at_ty, path)?);
                path.pop();
            }
            if out.len() != attrs.len() {
                let missing: Vec<_> = attrs.keys().filter(|k| !out.contains_key(*k)).cloned().collect();
                return Err(format!(
                    "{}: an object with {} attributes is required ({} given; missing {})",
                    at(path),
                    attrs.len(),
                    out.len(),
                    missing.join(", ")
                ));
            }
            Ok(Value::Object(out))
        }
        Type::Dynamic => {
            let Mp::Array(pair) = mp else { return Err(wrong(kind(mp))) };
            if pair.len() != 2 {
                return Err(format!("{}: dynamic value must be a [type, value] pair", at(path)));
            }
            let type_json = match &pair[0] {
                Mp::Binary(b) => b.as_slice(),
                Mp::String(s) => s.as_bytes(),
                other => return Err(wrong(kind(other))),
            };
            let inner_ty = Type::from_json_bytes(type_json).map_err(|e| format!("{}: {e}", at(path)))?;
            let inner = from_mp(&pair[1], &inner_ty, path)?;
            Ok(Value::Dynamic(inner_ty, Box::new(inner)))
        }
    }
}

fn float(f: f64, path: &[String]) -> Result<Value, String> {
    if !f.is_finite() {
        return Err(format!("{}: number must be finite", at(path)));
    }
    // go-cty sends a float only when it is exact, so convert exactly, not via a
    // shortest-decimal rendering.
    BigDecimal::try_from(f).map(Value::Number).map_err(|e| format!("{}: {e}", at(path)))
}

fn map_key(k: &Mp, path: &[String]) -> Result<String, String> {
    match k {
        Mp::String(s) => s.as_str().map(str::to_string).ok_or_else(|| format!("{}: key is not UTF-8", at(path))),
        other => Err(format!("{}: map keys must be strings, got {}", at(path), kind(other))),
    }
}

fn kind(mp: &Mp) -> &'static str {
    match mp {
        Mp::Nil => "nil",
        Mp::Boolean(_) => "bool",
        Mp::Integer(_) | Mp::F32(_) | Mp::F64(_) => "number",
        Mp::String(_) => "string",
        Mp::Binary(_) => "binary",
        Mp::Array(_) => "array",
        Mp::Map(_) => "map",
        Mp::Ext(_, _) => "extension",
    }
}

fn to_mp(value: &Value, ty: &Type, path: &mut Vec<String>) -> Result<Mp, String> {
    let mismatch = || format!("{}: cannot encode {value:?} as {ty}", at(path));
    match (value, ty) {
        (Value::Null, Type::Dynamic) => Ok(Mp::Nil),
        (Value::Unknown, _) => Ok(Mp::Ext(UNKNOWN_EXT, vec![0])),
        (Value::Null, _) => Ok(Mp::Nil),
        (Value::Dynamic(inner_ty, inner), Type::Dynamic) => dynamic(inner, inner_ty, path),
        (Value::Dynamic(_, inner), _) => to_mp(inner, ty, path),
        (v, Type::Dynamic) => dynamic(v, &v.infer_type(), path),
        (Value::String(s), Type::String) => Ok(Mp::from(s.as_str())),
        (Value::Bool(b), Type::Bool) => Ok(Mp::Boolean(*b)),
        (Value::Number(n), Type::Number) => Ok(number(n)),
        (Value::List(items), Type::List(et)) | (Value::Set(items), Type::Set(et)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                out.push(to_mp(item, et, path)?);
                path.pop();
            }
            Ok(Mp::Array(out))
        }
        (Value::Tuple(items), Type::Tuple(ets)) if items.len() == ets.len() => {
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(i.to_string());
                out.push(to_mp(item, et, path)?);
                path.pop();
            }
            Ok(Mp::Array(out))
        }
        (Value::Map(m), Type::Map(et)) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                path.push(k.clone());
                out.push((Mp::from(k.as_str()), to_mp(v, et, path)?));
                path.pop();
            }
            Ok(Mp::Map(out))
        }
        (Value::Object(m), Type::Object(attrs)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(format!("{}: unexpected attribute {extra:?}", at(path)));
            }
            // Every attribute must be present; an absent one is written as null.
            let mut out = Vec::with_capacity(attrs.len());
            for (k, at_ty) in attrs {
                path.push(k.clone());
                let v = m.get(k).unwrap_or(&Value::Null);
                out.push((Mp::from(k.as_str()), to_mp(v, at_ty, path)?));
                path.pop();
            }
            Ok(Mp::Map(out))
        }
        _ => Err(mismatch()),
    }
}

fn dynamic(value: &Value, ty: &Type, path: &mut Vec<String>) -> Result<Mp, String> {
    match value {
        Value::Null => Ok(Mp::Nil),
        Value::Unknown => Ok(Mp::Ext(UNKNOWN_EXT, vec![0])),
        v => Ok(Mp::Array(vec![Mp::Binary(ty.to_json_bytes()), to_mp(v, ty, path)?])),
    }
}

/// int64 when exact, else a decimal string. (go-cty also uses float64 when that is
/// exact; a string is always exact, and Terraform reads both.)
fn number(n: &BigDecimal) -> Mp {
    if n.is_integer() {
        if let Some(i) = n.to_i64() {
            return Mp::from(i);
        }
    }
    Mp::from(n.normalized().to_plain_string().as_str())
}

#[cfg(test)]
mod tests;
