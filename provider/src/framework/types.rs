//! cty types, as Terraform describes them on the wire ("type JSON").

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

/// A cty type. Objects keep attribute order irrelevant (BTreeMap) because cty does too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    String,
    Number,
    Bool,
    /// Any type; the concrete type travels with the value.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }
    pub fn object<I, S>(attrs: I) -> Type
    where
        I: IntoIterator<Item = (S, Type)>,
        S: Into<String>,
    {
        Type::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The type JSON Terraform uses in schemas and dynamic values.
    pub fn to_json(&self) -> Json {
        match self {
            Type::String => Json::from("string"),
            Type::Number => Json::from("number"),
            Type::Bool => Json::from("bool"),
            Type::Dynamic => Json::from("dynamic"),
            Type::List(t) => Json::Array(vec!["list".into(), t.to_json()]),
            Type::Set(t) => Json::Array(vec!["set".into(), t.to_json()]),
            Type::Map(t) => Json::Array(vec!["map".into(), t.to_json()]),
            Type::Object(attrs) => Json::Array(vec![
                "object".into(),
                Json::Object(attrs.iter().map(|(k, t)| (k.clone(), t.to_json())).collect()),
            ]),
            Type::Tuple(elems) => {
                Json::Array(vec!["tuple".into(), Json::Array(elems.iter().map(Type::to_json).collect())])
            }
        }
    }

    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("type JSON always serialises")
    }

    pub fn from_json_bytes(bytes: &[u8]) -> Result<Type, String> {
        let json: Json = serde_json::from_slice(bytes).map_err(|e| format!("invalid type JSON: {e}"))?;
        Type::from_json(&json)
    }

    pub fn from_json(json: &Json) -> Result<Type, String> {
        match json {
            Json::String(s) => match s.as_str() {
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(format!("unknown primitive type {other:?}")),
            },
            Json::Array(parts) if parts.len() == 2 => {
                let kind = parts[0].as_str().ok_or("type kind must be a string")?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or("object type needs an attribute map")?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or("tuple type needs an element list")?;
                        Ok(Type::Tuple(elems.iter().map(Type::from_json).collect::<Result<_, _>>()?))
                    }
                    other => Err(format!("unknown type kind {other:?}")),
                }
            }
            // Object types with optional attributes carry a third element; we do not use them.
            Json::Array(parts) if parts.len() == 3 && parts[0] == "object" => {
                Type::from_json(&Json::Array(parts[..2].to_vec()))
            }
            other => Err(format!("invalid type JSON {other}")),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::String => write!(f, "string"),
            Type::Number => write!(f, "number"),
            Type::Bool => write!(f, "bool"),
            Type::Dynamic => write!(f, "dynamic"),
            Type::List(t) => write!(f, "list of {t}"),
            Type::Set(t) => write!(f, "set of {t}"),
            Type::Map(t) => write!(f, "map of {t}"),
            Type::Object(_) => write!(f, "object"),
            Type::Tuple(_) => write!(f, "tuple"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_json_round_trips() {
        let t = Type::object([
            ("a", Type::String),
            ("b", Type::list(Type::Number)),
            ("c", Type::set(Type::object([("x", Type::Bool)]))),
            ("d", Type::map(Type::Dynamic)),
            ("e", Type::Tuple(vec![Type::String, Type::Number])),
        ]);
        let bytes = t.to_json_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"["object",{"a":"string","b":["list","number"],"c":["set",["object",{"x":"bool"}]],"d":["map","dynamic"],"e":["tuple",["string","number"]]}]"#
        );
        assert_eq!(Type::from_json_bytes(&bytes).unwrap(), t);
    }

    #[test]
    fn bad_type_json_is_an_error() {
        assert!(Type::from_json_bytes(b"\"strin\"").is_err());
        assert!(Type::from_json_bytes(b"[\"list\"]").is_err());
        assert!(Type::from_json_bytes(b"{").is_err());
    }
}
