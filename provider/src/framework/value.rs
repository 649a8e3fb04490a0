//! Values with null and unknown at every level, like cty's.

use std::collections::BTreeMap;
use std::str::FromStr;

use bigdecimal::BigDecimal;

use super::types::Type;

/// An arbitrary-precision decimal, as cty numbers are.
pub type Number = BigDecimal;

/// A value of some cty type. Null and unknown carry no type of their own: the schema
/// (or, for `dynamic`, [`Value::Dynamic`]) supplies it when encoding.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// Not known until apply. Refinements Terraform may attach (ext 12) are not kept:
    /// a provider must not rely on them.
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements are unique; order carries no meaning.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value received for a `dynamic` type, with the concrete type it arrived as, so it
    /// is sent back exactly as it came.
    Dynamic(Type, Box<Value>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn int(i: i64) -> Value {
        Value::Number(BigDecimal::from(i))
    }

    pub fn number_str(s: &str) -> Option<Value> {
        BigDecimal::from_str(s).ok().map(Value::Number)
    }

    pub fn is_null(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Dynamic(_, v) => v.is_null(),
            _ => false,
        }
    }

    pub fn is_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Dynamic(_, v) => v.is_unknown(),
            _ => false,
        }
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_fully_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().all(Value::is_fully_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_fully_known),
            Value::Dynamic(_, v) => v.is_fully_known(),
            _ => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        use bigdecimal::ToPrimitive;
        match self {
            Value::Number(n) if n.is_integer() => n.to_i64(),
            _ => None,
        }
    }

    /// Attribute of an object value; `None` when this is not an object (e.g. null).
    pub fn attr(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.get(name),
            _ => None,
        }
    }

    pub fn attr_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) => m.get_mut(name),
            _ => None,
        }
    }

    /// Replaces every unknown inside this value with null (what a model sees at apply
    /// time for computed attributes it has yet to fill in).
    pub fn unknown_as_null(&self) -> Value {
        match self {
            Value::Unknown => Value::Null,
            Value::List(v) => Value::List(v.iter().map(Value::unknown_as_null).collect()),
            Value::Set(v) => Value::Set(v.iter().map(Value::unknown_as_null).collect()),
            Value::Tuple(v) => Value::Tuple(v.iter().map(Value::unknown_as_null).collect()),
            Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), v.unknown_as_null())).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.unknown_as_null())).collect()),
            Value::Dynamic(t, v) => Value::Dynamic(t.clone(), Box::new(v.unknown_as_null())),
            other => other.clone(),
        }
    }

    /// Semantic equality: sets compare without order, numbers by value.
    pub fn semantically_equal(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Set(a), Value::Set(b)) => {
                a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| x.semantically_equal(y)))
            }
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.semantically_equal(y))
            }
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, x)| b.get(k).is_some_and(|y| x.semantically_equal(y)))
            }
            (Value::Dynamic(_, a), b) | (b, Value::Dynamic(_, a)) => a.semantically_equal(b),
            (a, b) => a == b,
        }
    }

    /// The type this value evidently has, used to encode a `dynamic` value that a
    /// resource built itself. Empty collections become collections of `dynamic`.
    pub fn infer_type(&self) -> Type {
        match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(v) => Type::list(v.first().map(Value::infer_type).unwrap_or(Type::Dynamic)),
            Value::Set(v) => Type::set(v.first().map(Value::infer_type).unwrap_or(Type::Dynamic)),
            Value::Map(m) => Type::map(m.values().next().map(Value::infer_type).unwrap_or(Type::Dynamic)),
            Value::Object(m) => Type::Object(m.iter().map(|(k, v)| (k.clone(), v.infer_type())).collect()),
            Value::Tuple(v) => Type::Tuple(v.iter().map(Value::infer_type).collect()),
            Value::Dynamic(t, _) => t.clone(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::int(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_compare_without_order() {
        let a = Value::Set(vec!["x".into(), "y".into()]);
        let b = Value::Set(vec!["y".into(), "x".into()]);
        assert!(a.semantically_equal(&b));
        assert!(!a.semantically_equal(&Value::Set(vec!["x".into()])));
    }

    #[test]
    fn known_ness_looks_inside() {
        let v = Value::Object([("a".to_string(), Value::List(vec![Value::Unknown]))].into());
        assert!(!v.is_fully_known());
        assert!(v.unknown_as_null().is_fully_known());
        assert_eq!(v.unknown_as_null().attr("a"), Some(&Value::List(vec![Value::Null])));
    }
}
