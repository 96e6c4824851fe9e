//! The loader never panics, whatever it is fed: arbitrary bytes, and arbitrary YAML-looking
//! documents built from the application file's own vocabulary (so decoding and validation run
//! deep, not just the YAML parser).

use std::path::Path;

use proptest::prelude::*;
use rehost::load::load_bytes;

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "description",
    "tags",
    "defaults",
    "servers",
    "groups",
    "replication",
    "launch",
    "frequencyHours",
    "runOnce",
    "seedTime",
    "licenseType",
    "keepRecentAmis",
    "encrypted",
    "kmsKeyId",
    "instanceType",
    "vpc",
    "subnet",
    "securityGroups",
    "keyName",
    "iamInstanceProfile",
    "associatePublicIpAddress",
    "signalTimeoutMinutes",
    "privateIpAddress",
    "logicalId",
    "configureScript",
    "configureScriptType",
    "test",
    "id",
    "os",
    "disks",
    "source",
    "dependsOn",
    "launchOrder",
    "architecture",
    "bootMode",
    "enaSupport",
    "<<",
];
const SCALARS: &[&str] = &[
    "rehost/v1",
    "Application",
    "shop",
    "web",
    "web01",
    "db",
    "linux",
    "windows",
    "m5.large",
    "12",
    "-1",
    "0",
    "25",
    "true",
    "yes",
    "null",
    "~",
    "\"\"",
    "AUTO",
    "BYOL",
    "subnet-0a1b2c3d",
    "sg-0a1b2c3d",
    "10.0.0.5",
    "alias/x",
    "2026-12-01T02:00:00Z",
    "a.img",
    "/dev/sda",
    "'${x}'",
    "&a",
    "*a",
    "!!str x",
    "[]",
    "{}",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(SCALARS).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => "[a-zA-Z]{1,8}"]
}

/// Block-style YAML trees of bounded depth.
fn document() -> impl Strategy<Value = String> {
    let leaf = scalar();
    let tree = leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec((key(), inner.clone()), 0..6).prop_map(|entries| {
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}:\n{}", indent(v)))
                    .collect::<String>()
            }),
            prop::collection::vec(inner, 0..5).prop_map(|items| items
                .iter()
                .map(|v| format!("-\n{}", indent(v)))
                .collect::<String>()),
            prop::collection::vec(scalar(), 0..5)
                .prop_map(|items| format!("[{}]\n", items.join(", "))),
        ]
    });
    prop::collection::vec((key(), tree), 1..10).prop_map(|entries| {
        entries
            .iter()
            .map(|(k, v)| format!("{k}:\n{}", indent(v)))
            .collect()
    })
}

fn indent(block: &str) -> String {
    if block.is_empty() {
        return "  ~\n".into();
    }
    let mut out: String = block.lines().map(|l| format!("  {l}\n")).collect();
    if !block.contains('\n') {
        out = format!("  {block}\n");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = load_bytes(&bytes, Path::new("fuzz.yaml"));
    }

    #[test]
    fn yaml_looking_documents_never_panic(doc in document()) {
        let _ = load_bytes(doc.as_bytes(), Path::new("fuzz.yaml"));
    }

    #[test]
    fn mutated_example_never_panics(cut in 0usize..4000, insert in "[ -~\n]{0,8}") {
        let example = include_str!("../apps/ecommerce-3tier.yaml");
        let at = example.char_indices().map(|(i, _)| i).nth(cut % example.chars().count()).unwrap_or(0);
        let doc = format!("{}{}{}", &example[..at], insert, &example[at..]);
        let _ = load_bytes(doc.as_bytes(), Path::new("apps/fuzz.yaml"));
    }
}

#[test]
fn huge_and_deep_inputs_are_refused_cleanly() {
    let huge = vec![b'a'; 9 * 1024 * 1024];
    let err = load_bytes(&huge, Path::new("huge.yaml")).unwrap_err();
    assert!(err.diagnostics[0].message.contains("larger than"));
    let deep = format!("a: {}{}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(load_bytes(deep.as_bytes(), Path::new("deep.yaml")).is_err());
    let deep_maps: String = (0..500).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    assert!(load_bytes(deep_maps.as_bytes(), Path::new("deep.yaml")).is_err());
}
