//! Bounded fuzzing of the spec parser, run as a normal test (fixed case
//! counts, so CI time is bounded): random and mutated HCL/JSON must never
//! panic; errors must carry a position inside the input; accepted specs
//! must survive a JSON round trip.

use proptest::prelude::*;
use std::collections::BTreeMap;
use strata_agent::parse::{parse_hcl, parse_json, parse_spec, Format};
use strata_agent::spec::*;

const HCL: &str = include_str!("../examples/k8s-node.hcl");
const JSON: &str = include_str!("../examples/k8s-node.json");

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just("[".to_string()),
        Just(",".to_string()),
        Just("\n".to_string()),
        Just("${x}".to_string()),
        Just("<<EOF\n".to_string()),
        Just("bogus = 1\n".to_string()),
        Just("-1".to_string()),
        Just("9999999999999999999999".to_string()),
        Just("null".to_string()),
        Just("é".to_string()),
        "\\PC{0,6}",
    ];
    prop_oneof![
        (any::<usize>(), token.clone()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), token).prop_map(|(i, s)| Mutation::Replace(i, s)),
    ]
}

fn mutate(base: &str, muts: &[Mutation]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for m in muts {
        let len = s.len().max(1);
        match m {
            Mutation::Insert(i, t) => {
                let i = i % (s.len() + 1);
                s.splice(i..i, t.chars());
            }
            Mutation::Delete(i, n) => {
                let i = i % len;
                let end = (i + n).min(s.len());
                if i < end {
                    s.drain(i..end);
                }
            }
            Mutation::Replace(i, t) => {
                if !s.is_empty() {
                    let i = i % s.len();
                    s.splice(i..i + 1, t.chars());
                }
            }
        }
    }
    s.into_iter().collect()
}

fn check_invariants(input: &str, format: Format) {
    match parse_spec(input, format) {
        Ok(spec) => {
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(parse_json(&json).unwrap(), spec, "JSON round trip of an accepted spec");
        }
        Err(e) => {
            let lines = input.split('\n').count();
            if let Some(l) = e.line {
                assert!(l >= 1 && l <= lines + 1, "line {l} outside input of {lines} lines: {e}");
            }
            assert!(!e.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_hcl_never_panics(muts in proptest::collection::vec(mutation(), 1..6)) {
        check_invariants(&mutate(HCL, &muts), Format::Hcl);
    }

    #[test]
    fn mutated_json_never_panics(muts in proptest::collection::vec(mutation(), 1..6)) {
        check_invariants(&mutate(JSON, &muts), Format::Json);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        check_invariants(&s, Format::Hcl);
        check_invariants(&s, Format::Json);
    }
}

fn abs_path() -> impl Strategy<Value = AbsPath> {
    "(/[a-z][a-z0-9._-]{0,8}){1,3}".prop_map(|s| AbsPath::try_from(s).unwrap())
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let file = (
        "\\PC{0,30}",
        proptest::option::of(0u32..0o7777),
        proptest::option::of("[a-z]{1,6}"),
        proptest::collection::vec("[a-z]{1,6}", 0..2),
    )
        .prop_map(|(content, mode, owner, notify)| FileSpec {
            content,
            mode: mode.map(Mode),
            owner,
            group: None,
            notify,
        });
    // Only valid combinations: the parser also checks rules across fields.
    let apt_repository = (
        proptest::collection::vec("https?://[a-z.:/0-9]{1,20}", 1..3),
        any::<bool>(),
        "[a-z]{1,8}",
        proptest::collection::vec("[a-z]{1,8}", 1..3),
        "[ -~\n]{0,40}",
        any::<bool>(),
    )
        .prop_map(|(uris, flat, suite, comps, key, trusted)| AptRepositorySpec {
            uris,
            suites: vec![if flat { "/".into() } else { suite }],
            components: if flat { vec![] } else { comps },
            architectures: vec![],
            key: (!trusted).then(|| format!("-----BEGIN PGP PUBLIC KEY BLOCK-----\n{key}")),
            trusted,
        });
    let service =
        (proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()))
            .prop_map(|(enabled, running, masked)| {
                // masked = true rules out enabled/running = true.
                let off = |v: Option<bool>| if masked == Some(true) { v.filter(|x| !x) } else { v };
                ServiceSpec { enabled: off(enabled), running: off(running), masked }
            });
    let containerd = (
        any::<bool>(),
        any::<bool>(),
        proptest::option::of("[ -~]{0,20}"),
        proptest::collection::btree_map(
            "[a-z.]{1,10}",
            proptest::collection::vec("https://[a-z.:0-9]{1,12}", 1..3),
            0..3,
        ),
    )
        .prop_map(|(v3, cg, img, mirrors)| ContainerdSpec {
            version: if v3 { ContainerdConfigVersion::V3 } else { ContainerdConfigVersion::V2 },
            systemd_cgroup: cg,
            sandbox_image: img,
            registry_mirror: mirrors
                .into_iter()
                .map(|(k, endpoints)| {
                    (
                        k,
                        RegistryMirror {
                            endpoints,
                            server: None,
                            capabilities: vec!["pull".into()],
                            ca_cert: None,
                            fallback: true,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        });
    let kubelet = (
        proptest::collection::vec("[0-9.]{1,15}", 0..2),
        "[a-z.]{1,12}",
        any::<bool>(),
        proptest::collection::btree_map("[a-z.]{1,10}", "[0-9]{1,3}Mi", 0..2),
    )
        .prop_map(|(cluster_dns, cluster_domain, rotate_certificates, eviction_hard)| KubeletSpec {
            cluster_dns,
            cluster_domain,
            rotate_certificates,
            eviction_hard,
            cgroup_driver: CgroupDriver::Cgroupfs,
            ..Default::default()
        });
    (
        proptest::option::of(containerd),
        proptest::option::of(kubelet),
        proptest::collection::btree_map("[a-z]{1,5}(\\.[a-z_]{1,6}){1,3}", "[0-9]{1,3}", 0..4),
        proptest::collection::vec("[a-z_]{1,10}", 0..3),
        any::<bool>(),
        proptest::collection::btree_map(
            "[a-z][a-z0-9.+-]{1,8}",
            (proptest::option::of("[0-9.:~+-]{1,10}"), proptest::option::of(any::<bool>())),
            0..3,
        ),
        proptest::collection::btree_map(abs_path(), file, 0..3),
        proptest::option::of((0u64..100_000, 0u32..1000)),
        proptest::collection::btree_map("[a-z][a-z0-9._-]{0,8}", apt_repository, 0..2),
        proptest::collection::btree_map("[a-z][a-z0-9@.-]{0,8}", service, 0..3),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                containerd,
                kubelet,
                sysctl,
                kernel_modules,
                swap_off,
                package,
                file,
                apt,
                repos,
                service,
                (down, held),
            )| NodeSpec {
                containerd,
                kubelet,
                crictl: None,
                sysctl: sysctl.into_iter().map(|(k, v)| (k, SysctlValue(v))).collect(),
                kernel_modules,
                swap_off,
                package: package
                    .into_iter()
                    .map(|(k, (version, hold))| {
                        (k, PackageSpec { version, hold, allow_downgrade: down, allow_change_held: held })
                    })
                    .collect(),
                apt: apt.map(|(lists_max_age, lock_timeout)| AptSpec { lists_max_age, lock_timeout }),
                apt_repository: repos,
                service,
                file,
                directory: BTreeMap::new(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// What the provider serializes is exactly what the agent reads.
    #[test]
    fn spec_json_roundtrip(spec in node_spec()) {
        let json = serde_json::to_string_pretty(&spec).unwrap();
        prop_assert_eq!(parse_json(&json).unwrap(), spec);
    }

    /// The same data model written as HCL reads back identically.
    #[test]
    fn spec_hcl_roundtrip(spec in node_spec()) {
        let hcl = hcl::to_string(&spec).unwrap();
        prop_assert_eq!(parse_hcl(&hcl).unwrap(), spec, "{}", hcl);
    }
}
