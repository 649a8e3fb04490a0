use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

fn round_trip(v: &Value, ty: &Type) -> Value {
    let bytes = encode(v, ty).expect("encode");
    decode(&bytes, ty).expect("decode")
}

#[test]
fn primitives_round_trip() {
    for (v, ty) in [
        (Value::string("hello"), Type::String),
        (Value::Bool(true), Type::Bool),
        (Value::int(-42), Type::Number),
        (Value::number_str("3.25").unwrap(), Type::Number),
        (Value::number_str("123456789012345678901234567890.000000000000000000001").unwrap(), Type::Number),
        (Value::Null, Type::String),
        (Value::Unknown, Type::Number),
    ] {
        assert_eq!(round_trip(&v, &ty), v, "{ty}");
    }
}

#[test]
fn wire_bytes_match_go_cty() {
    // go-cty: unknown is fixext1 type 0; null is nil; small ints are fixints.
    assert_eq!(encode(&Value::Unknown, &Type::String).unwrap(), vec![0xd4, 0x00, 0x00]);
    assert_eq!(encode(&Value::Null, &Type::String).unwrap(), vec![0xc0]);
    assert_eq!(encode(&Value::int(5), &Type::Number).unwrap(), vec![0x05]);
    // Object attributes always all present, null ones as nil.
    let ty = Type::object([("a", Type::String), ("b", Type::Bool)]);
    let bytes = encode(&obj(&[("a", "x".into())]), &ty).unwrap();
    assert_eq!(bytes, vec![0x82, 0xa1, b'a', 0xa1, b'x', 0xa1, b'b', 0xc0]);
}

#[test]
fn big_and_fractional_numbers_travel_as_decimal_strings() {
    let n = Value::number_str("0.1").unwrap();
    let bytes = encode(&n, &Type::Number).unwrap();
    assert_eq!(bytes, vec![0xa3, b'0', b'.', b'1']);
    // A float64 from the client is read exactly.
    let mut buf = Vec::new();
    rmp::encode::write_f64(&mut buf, 0.5).unwrap();
    assert_eq!(decode(&buf, &Type::Number).unwrap(), Value::number_str("0.5").unwrap());
    // uint64 beyond int64.
    let mut buf = Vec::new();
    rmp::encode::write_u64(&mut buf, u64::MAX).unwrap();
    assert_eq!(decode(&buf, &Type::Number).unwrap(), Value::number_str("18446744073709551615").unwrap());
}

#[test]
fn any_extension_type_is_unknown() {
    // ext 12 is a refined unknown (Terraform >= 1.6 may send it, with a payload).
    let refined = vec![0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc2];
    assert_eq!(decode(&refined, &Type::String).unwrap(), Value::Unknown);
    assert_eq!(decode(&[0xd4, 0x00, 0x00], &Type::list(Type::String)).unwrap(), Value::Unknown);
    // Inside a collection too.
    let mut buf = Vec::new();
    rmp::encode::write_array_len(&mut buf, 2).unwrap();
    rmp::encode::write_str(&mut buf, "a").unwrap();
    buf.extend_from_slice(&refined);
    assert_eq!(decode(&buf, &Type::list(Type::String)).unwrap(), Value::List(vec!["a".into(), Value::Unknown]));
}

#[test]
fn null_nested_values_round_trip() {
    let ty = Type::object([
        ("inner", Type::object([("x", Type::String), ("y", Type::list(Type::Number))])),
        ("list", Type::list(Type::String)),
        ("map", Type::map(Type::Bool)),
    ]);
    let v = obj(&[
        ("inner", obj(&[("x", Value::Null), ("y", Value::List(vec![Value::Null, Value::int(1)]))])),
        ("list", Value::Null),
        ("map", Value::Map([("k".to_string(), Value::Null)].into())),
    ]);
    assert_eq!(round_trip(&v, &ty), v);
    // A null object is nil, not an empty map.
    assert_eq!(encode(&Value::Null, &ty).unwrap(), vec![0xc0]);
}

#[test]
fn sets_of_objects_and_maps_round_trip() {
    let elem = Type::object([("client", Type::String), ("options", Type::list(Type::String))]);
    let ty = Type::set(elem);
    let v = Value::Set(vec![
        obj(&[("client", "10.0.0.0/24".into()), ("options", Value::List(vec!["rw".into()]))]),
        obj(&[("client", Value::Unknown), ("options", Value::Null)]),
    ]);
    assert_eq!(round_trip(&v, &ty), v);
    let mty = Type::map(Type::map(Type::Number));
    let m = Value::Map(BTreeMap::from([(
        "outer".to_string(),
        Value::Map(BTreeMap::from([("inner".to_string(), Value::int(7))])),
    )]));
    assert_eq!(round_trip(&m, &mty), m);
}

#[test]
fn dynamic_values_carry_their_type() {
    let inner_ty = Type::object([("a", Type::list(Type::String))]);
    let v = Value::Dynamic(inner_ty.clone(), Box::new(obj(&[("a", Value::List(vec!["x".into()]))])));
    let bytes = encode(&v, &Type::Dynamic).unwrap();
    // [type-json bytes, value]
    assert_eq!(bytes[0], 0x92);
    assert_eq!(round_trip(&v, &Type::Dynamic), v);
    // Null and unknown dynamic values are plain nil / ext.
    assert_eq!(round_trip(&Value::Null, &Type::Dynamic), Value::Null);
    assert_eq!(round_trip(&Value::Unknown, &Type::Dynamic), Value::Unknown);
    // A value a resource built is encoded with its inferred type.
    let built = Value::Tuple(vec!["s".into(), Value::int(1)]);
    match round_trip(&built, &Type::Dynamic) {
        Value::Dynamic(t, inner) => {
            assert_eq!(t, Type::Tuple(vec![Type::String, Type::Number]));
            assert_eq!(*inner, built);
        }
        other => panic!("expected dynamic, got {other:?}"),
    }
}

#[test]
fn tuples_round_trip_and_check_length() {
    let ty = Type::Tuple(vec![Type::String, Type::Bool]);
    let v = Value::Tuple(vec!["a".into(), Value::Bool(false)]);
    assert_eq!(round_trip(&v, &ty), v);
    let short = encode(&Value::Tuple(vec!["a".into()]), &Type::Tuple(vec![Type::String])).unwrap();
    assert!(decode(&short, &ty).unwrap_err().contains("tuple needs 2"));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let ty = Type::object([("a", Type::String)]);
    for bad in [
        &b""[..],
        &[0x81][..],               // map header without entries
        &[0xa5, b'a'][..],         // truncated string
        &[0x81, 0xa1, b'b', 0xc0], // unexpected attribute
        &[0x80][..],               // missing attribute
        &[0x81, 0xa1, b'a', 0x05], // number where string expected
        &[0xc0, 0xc0][..],         // trailing bytes
    ] {
        assert!(decode(bad, &ty).is_err(), "{bad:?} should fail");
    }
    assert!(decode(&[0x92, 0xa3, b'x', b'y', b'z', 0xc0], &Type::Dynamic).is_err());
}

#[test]
fn encoding_a_mismatched_value_is_an_error() {
    assert!(encode(&Value::Bool(true), &Type::String).is_err());
    let ty = Type::object([("a", Type::String)]);
    assert!(encode(&obj(&[("zzz", "x".into())]), &ty).is_err());
}

fn arb_type() -> impl Strategy<Value = Type> {
    let leaf = prop_oneof![Just(Type::String), Just(Type::Number), Just(Type::Bool)];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            prop::collection::btree_map("[a-z]{1,4}", inner.clone(), 0..4).prop_map(Type::Object),
            prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
        ]
    })
}

fn arb_value(ty: Type) -> BoxedStrategy<Value> {
    let special = prop_oneof![Just(Value::Null), Just(Value::Unknown)];
    let known: BoxedStrategy<Value> = match ty {
        Type::String => ".{0,12}".prop_map(Value::String).boxed(),
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => prop_oneof![
            any::<i64>().prop_map(Value::int),
            (any::<i64>(), 0u32..30).prop_map(|(m, s)| Value::Number(BigDecimal::new(m.into(), s as i64))),
        ]
        .boxed(),
        Type::List(et) => prop::collection::vec(arb_value(*et), 0..3).prop_map(Value::List).boxed(),
        Type::Set(et) => prop::collection::vec(arb_value(*et), 0..3).prop_map(Value::Set).boxed(),
        Type::Map(et) => prop::collection::btree_map("[a-z]{0,3}", arb_value(*et), 0..3).prop_map(Value::Map).boxed(),
        Type::Object(attrs) => {
            let strategies: Vec<_> =
                attrs.into_iter().map(|(k, t)| arb_value(t).prop_map(move |v| (k.clone(), v))).collect();
            strategies.prop_map(|pairs| Value::Object(pairs.into_iter().collect())).boxed()
        }
        Type::Tuple(ets) => {
            let strategies: Vec<_> = ets.into_iter().map(arb_value).collect();
            strategies.prop_map(Value::Tuple).boxed()
        }
        Type::Dynamic => Just(Value::Null).boxed(),
    };
    prop_oneof![1 => special, 4 => known].boxed()
}

fn normalise(v: Value) -> Value {
    // Decimal scale is not part of a number's value.
    match v {
        Value::Number(n) => Value::Number(n.normalized()),
        Value::List(x) => Value::List(x.into_iter().map(normalise).collect()),
        Value::Set(x) => Value::Set(x.into_iter().map(normalise).collect()),
        Value::Tuple(x) => Value::Tuple(x.into_iter().map(normalise).collect()),
        Value::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        Value::Dynamic(t, v) => Value::Dynamic(t, Box::new(normalise(*v))),
        other => other,
    }
}

proptest! {
    #[test]
    fn any_value_of_any_type_round_trips((ty, v) in arb_type().prop_flat_map(|t| (Just(t.clone()), arb_value(t)))) {
        let bytes = encode(&v, &ty).unwrap();
        let back = decode(&bytes, &ty).unwrap();
        prop_assert_eq!(normalise(back), normalise(v.clone()));
        // And the same value inside a dynamic slot.
        let dynv = Value::Dynamic(ty.clone(), Box::new(v.clone()));
        let back = decode(&encode(&dynv, &Type::Dynamic).unwrap(), &Type::Dynamic).unwrap();
        if v.is_null() || v.is_unknown() {
            prop_assert_eq!(back, v);
        } else {
            prop_assert_eq!(normalise(back), normalise(dynv));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), ty in arb_type()) {
        let _ = decode(&bytes, &ty);
        let _ = decode(&bytes, &Type::Dynamic);
    }
}
