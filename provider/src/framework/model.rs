//! Conversions between values and the typed serde structs resources work with.
//! Resources never see values, msgpack or protobuf: only their own models.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::diagnostics::{Diagnostic, Diagnostics};
use super::json::{self, Extra};
use super::types::Type;
use super::value::Value;

/// Value -> model. Unknown values arrive as absent (`None`): at apply time they are the
/// computed attributes the resource is about to fill in.
pub fn to_model<M: DeserializeOwned>(v: &Value) -> Result<M, Diagnostics> {
    serde_json::from_value(json::to_model_json(v)).map_err(|e| {
        // serde's message names the field; it never contains the value for type errors
        // of our (string/number/bool) models beyond the kind of the value.
        Diagnostics::from(Diagnostic::error("Provider could not read the resource data", e.to_string()))
    })
}

/// Model -> value of the schema's type.
pub fn from_model<M: Serialize>(m: &M, ty: &Type) -> Result<Value, Diagnostics> {
    let j = serde_json::to_value(m).map_err(|e| {
        Diagnostics::from(Diagnostic::error("Provider could not encode the resource data", e.to_string()))
    })?;
    json::decode(&j, ty, Extra::Reject)
        .map_err(|e| Diagnostics::from(Diagnostic::error("Provider produced data that does not fit its schema", e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Nic {
        bridge: String,
        mac: Option<String>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Vm {
        name: String,
        memory_mb: Option<i64>,
        tags: Vec<String>,
        nic: Vec<Nic>,
    }

    fn ty() -> Type {
        Type::object([
            ("name", Type::String),
            ("memory_mb", Type::Number),
            ("tags", Type::set(Type::String)),
            ("nic", Type::list(Type::object([("bridge", Type::String), ("mac", Type::String)]))),
        ])
    }

    #[test]
    fn model_round_trip_keeps_types() {
        let vm = Vm {
            name: "w1".into(),
            memory_mb: Some(2048),
            tags: vec!["k8s".into()],
            nic: vec![Nic { bridge: "vmbr0".into(), mac: None }],
        };
        let v = from_model(&vm, &ty()).unwrap();
        assert_eq!(v.attr("tags"), Some(&Value::Set(vec!["k8s".into()])));
        assert_eq!(v.attr("memory_mb"), Some(&Value::int(2048)));
        let back: Vm = to_model(&v).unwrap();
        assert_eq!(back, vm);
    }

    #[test]
    fn unknown_computed_values_read_as_none() {
        let mut v = from_model(
            &Vm { name: "a".into(), memory_mb: None, tags: vec![], nic: vec![Nic { bridge: "b".into(), mac: None }] },
            &ty(),
        )
        .unwrap();
        if let Some(Value::List(nics)) = v.attr_mut("nic") {
            if let Value::Object(m) = &mut nics[0] {
                m.insert("mac".into(), Value::Unknown);
            }
        }
        let back: Vm = to_model(&v).unwrap();
        assert_eq!(back.nic[0].mac, None);
    }

    #[test]
    fn a_model_that_does_not_fit_the_schema_is_an_error() {
        #[derive(Serialize)]
        struct Wrong {
            name: i64,
            extra: bool,
        }
        assert!(from_model(&Wrong { name: 1, extra: true }, &ty()).is_err());
    }
}
