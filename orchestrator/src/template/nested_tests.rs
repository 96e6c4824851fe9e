//! Nested stacks: the generic transformation on hand-written templates (every kind of
//! reference), and on rendered applications (launch order, chunks, quotas).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::nested::{NestError, Unit, nest, nest_owned};
use super::package::nest_app_measured;
use super::*;
use crate::app::{App, Mode};
use crate::diag::{Diagnostics, Severity};

fn unit(id: &str, seeds: &[&str]) -> Unit {
    Unit {
        logical_id: id.into(),
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A template using every kind of reference across what will be two children.
fn flat() -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "test",
        "Parameters": {
            "Amis": {"Type": "List<AWS::EC2::Image::Id>", "Default": "ami-1,ami-2"},
            "Env": {"Type": "String", "Default": "prod"},
            "Unused": {"Type": "String"}
        },
        "Mappings": {"Scripts": {"db": {"Body": "echo db"}}, "Other": {"x": {"y": "z"}}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
        "Resources": {
            "Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle", "Properties": {}},
            "Db": {"Type": "AWS::EC2::Instance", "Properties": {
                "ImageId": {"Fn::Select": ["0", {"Ref": "Amis"}]},
                "UserData": {"Fn::Base64": {"Fn::Sub": ["${Url} ${!Literal} ${AWS::Region}", {"Url": {"Ref": "Handle"}}]}},
                "Tags": [{"Key": "s", "Value": {"Fn::FindInMap": ["Scripts", "db", "Body"]}}]
            }},
            "Gate": {"Type": "AWS::CloudFormation::WaitCondition", "DependsOn": ["Db"],
                     "Properties": {"Handle": {"Ref": "Handle"}, "Count": 1, "Timeout": "60"}},
            "Web": {"Type": "AWS::EC2::Instance", "DependsOn": "Gate", "Condition": "IsProd", "Properties": {
                "ImageId": {"Fn::Select": ["1", {"Ref": "Amis"}]},
                "UserData": {"Fn::Base64": {"Fn::Sub": "db=${Db.PrivateIp} id=${Db} ${AWS::StackName}"}},
                "KeyName": {"Fn::GetAtt": ["Db", "PrivateDnsName"]},
                "SubnetId": {"Fn::GetAtt": "Db.SubnetId"}
            }}
        },
        "Outputs": {
            "DbIp": {"Value": {"Fn::GetAtt": ["Db", "PrivateIp"]}},
            "Both": {"Value": {"Fn::Join": [",", [{"Ref": "Db"}, {"Ref": "Web"}]]}},
            "Waves": {"Value": "db | web"}
        }
    })
}

/// Validation nests a variant it owns by moving its resources: the children must be the
/// ones a launch makes by copying them.
#[test]
fn nesting_a_template_it_owns_makes_the_same_children_as_nesting_a_copy() {
    let units = [unit("DbStack", &["Db"]), unit("WebStack", &["Web"])];
    let copied = nest(&flat(), &units).unwrap();
    let moved = nest_owned(flat(), &units).unwrap();
    assert_eq!(moved.parent, copied.parent);
    let bodies = |n: &nested::Nested| -> Vec<(String, Value)> {
        let children = n.children.iter();
        children
            .map(|c| (c.logical_id.clone(), c.body.clone()))
            .collect()
    };
    assert_eq!(bodies(&moved), bodies(&copied));
    assert_eq!(
        nest_owned(flat(), &[unit("S1", &["Nope"])]).unwrap_err(),
        nest(&flat(), &[unit("S1", &["Nope"])]).unwrap_err()
    );
}

#[test]
fn every_reference_crossing_children_flows_through_the_parent() {
    let n = nest(
        &flat(),
        &[unit("DbStack", &["Db"]), unit("WebStack", &["Web"])],
    )
    .unwrap();
    let (db, web) = (&n.children[0].body, &n.children[1].body);
    // The handle goes before what uses it, the gate after what it waits for: both with Db.
    assert_eq!(keys(&db["Resources"]), ["Handle", "Db", "Gate"]);
    assert_eq!(keys(&web["Resources"]), ["Web"]);
    // Only what each child uses: the list parameter (no default), the mapping, the condition
    // with the parameter it reads.
    assert_eq!(keys(&db["Parameters"]), ["Amis"]);
    assert!(db["Parameters"]["Amis"].get("Default").is_none());
    assert_eq!(keys(&db["Mappings"]), ["Scripts"]);
    assert!(db.get("Conditions").is_none());
    assert_eq!(keys(&web["Conditions"]), ["IsProd"]);
    assert_eq!(
        keys(&web["Parameters"]),
        [
            "Amis",
            "Env",
            "Db",
            "DbPrivateDnsName",
            "DbPrivateIp",
            "DbSubnetId"
        ]
    );
    // The web child reads Db's values through parameters; `${!Literal}` and pseudo parameters
    // stay as they were.
    let w = &web["Resources"]["Web"];
    assert_eq!(
        w["Properties"]["UserData"],
        json!({"Fn::Base64": {"Fn::Sub": "db=${DbPrivateIp} id=${Db} ${AWS::StackName}"}})
    );
    assert_eq!(
        w["Properties"]["KeyName"],
        json!({"Ref": "DbPrivateDnsName"})
    );
    assert_eq!(w["Properties"]["SubnetId"], json!({"Ref": "DbSubnetId"}));
    assert!(w.get("DependsOn").is_none(), "the gate is in another child");
    assert_eq!(w["Condition"], "IsProd");
    let d = &db["Resources"]["Db"]["Properties"]["UserData"];
    assert_eq!(
        d,
        &json!({"Fn::Base64": {"Fn::Sub": ["${Url} ${!Literal} ${AWS::Region}", {"Url": {"Ref": "Handle"}}]}})
    );
    // The db child outputs what web needs, and the output about Db alone.
    assert_eq!(
        keys(&db["Outputs"]),
        [
            "DbIp",
            "DbPrivateDnsName",
            "DbPrivateIp",
            "DbRef",
            "DbRef2",
            "DbSubnetId"
        ]
        .iter()
        .filter(|k| **k != "DbRef2")
        .copied()
        .collect::<Vec<_>>()
    );
    assert_eq!(db["Outputs"]["DbRef"]["Value"], json!({"Ref": "Db"}));
    // The parent: the list passed joined, Db's values through GetAtt (which orders the stacks,
    // so no DependsOn), the children under TemplateBaseUrl.
    let p = &n.parent;
    let ws = &p["Resources"]["WebStack"];
    assert_eq!(
        ws["Properties"]["Parameters"]["Amis"],
        json!({"Fn::Join": [",", {"Ref": "Amis"}]})
    );
    assert_eq!(ws["Properties"]["Parameters"]["Env"], json!({"Ref": "Env"}));
    assert_eq!(
        ws["Properties"]["Parameters"]["Db"],
        json!({"Fn::GetAtt": ["DbStack", "Outputs.DbRef"]})
    );
    assert!(ws.get("DependsOn").is_none());
    assert_eq!(
        ws["Properties"]["TemplateURL"],
        json!({"Fn::Sub": "${TemplateBaseUrl}/WebStack.json"})
    );
    assert_eq!(
        keys(&p["Parameters"]),
        ["Amis", "Env", "Unused", TEMPLATE_BASE_URL]
    );
    assert_eq!(p["Parameters"]["Amis"]["Default"], "ami-1,ami-2");
    // Outputs: about nothing stays, about both reads each child's output.
    assert_eq!(keys(&p["Outputs"]), ["Both", "Waves"]);
    assert_eq!(
        p["Outputs"]["Both"]["Value"],
        json!({"Fn::Join": [",", [
            {"Fn::GetAtt": ["DbStack", "Outputs.DbRef"]},
            {"Fn::GetAtt": ["WebStack", "Outputs.WebRef"]}
        ]]})
    );
    assert_eq!(web["Outputs"]["WebRef"]["Value"], json!({"Ref": "Web"}));
    // Every resource is in exactly one child.
    let mut all = BTreeSet::new();
    for c in &n.children {
        for k in keys(&c.body["Resources"]) {
            assert!(all.insert(k.to_string()), "{k} twice");
        }
    }
    assert_eq!(all.len(), 4);
}

#[test]
fn depends_on_alone_orders_the_child_stacks() {
    let body = json!({"Resources": {
        "A": {"Type": "AWS::SNS::Topic"},
        "B": {"Type": "AWS::SNS::Topic", "DependsOn": ["A"]},
        "C": {"Type": "AWS::SNS::Topic"}
    }});
    let n = nest(
        &body,
        &[unit("S1", &["A"]), unit("S2", &["B"]), unit("S3", &["C"])],
    )
    .unwrap();
    assert_eq!(n.parent["Resources"]["S2"]["DependsOn"], json!(["S1"]));
    assert!(n.parent["Resources"]["S3"].get("DependsOn").is_none());
    assert!(
        n.children[1].body["Resources"]["B"]
            .get("DependsOn")
            .is_none()
    );
    assert!(n.children[1].body.get("Parameters").is_none());
    // With the children's URLs fixed, no TemplateBaseUrl is left.
    let fixed = n.with_urls(&["u1".into(), "u2".into(), "u3".into()]);
    assert_eq!(fixed["Resources"]["S3"]["Properties"]["TemplateURL"], "u3");
    assert!(fixed["Parameters"].get(TEMPLATE_BASE_URL).is_none());
}

#[test]
fn units_that_contradict_the_references_are_refused() {
    let body = json!({"Resources": {
        "A": {"Type": "AWS::SNS::Topic", "DependsOn": "B"},
        "B": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Fn::GetAtt": ["C", "TopicName"]}}},
        "C": {"Type": "AWS::SNS::Topic", "DependsOn": "A"}
    }});
    let err = nest(&body, &[unit("S1", &["A", "C"]), unit("S2", &["B"])]).unwrap_err();
    assert!(matches!(err, NestError::Cycle(_)), "{err}");
    let err = nest(&body, &[unit("S1", &["Nope"])]).unwrap_err();
    assert!(matches!(err, NestError::UnknownSeed { .. }));
    let err = nest(&body, &[unit("A", &["A"])]).unwrap_err();
    assert_eq!(err, NestError::Collision("A".into()));
}

const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

fn app(text: &str) -> App {
    let loaded = crate::load::load_with(text.as_bytes(), Path::new("shop.yaml"), |_| {
        Default::default()
    })
    .expect("valid application");
    loaded.app
}

#[test]
fn a_nested_launch_keeps_the_launch_order_of_the_groups() {
    // db -> app -> web; cache independent of them all.
    let app = app(&format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large, subnet: subnet-0a1b2c3d}}\nservers:\n\
         - {{id: db, os: linux, disks: [{{source: a.img}}]}}\n\
         - {{id: app1, os: linux, disks: [{{source: b.img}}]}}\n\
         - {{id: app2, os: linux, disks: [{{source: c.img}}]}}\n\
         - {{id: web, os: linux, disks: [{{source: d.img}}]}}\n\
         - {{id: cache, os: linux, disks: [{{source: e.img}}]}}\n\
         groups:\n  - {{name: db, servers: [db]}}\n  - {{name: app, servers: [app1, app2], dependsOn: [db]}}\n\
         \x20 - {{name: web, servers: [web], dependsOn: [app]}}\n  - {{name: cache, servers: [cache]}}\n"
    ));
    for gated in [true, false] {
        let mut opts = RenderOptions::new(Mode::Test);
        opts.nested = true;
        opts.health_gate = gated;
        let Package::Nested(n) = render_package(&app, &opts).unwrap() else {
            panic!("--nested renders nested stacks");
        };
        let r = &n.parent.body["Resources"];
        assert_eq!(keys(r), ["DbStack", "CacheStack", "AppStack", "WebStack"]);
        assert_eq!(
            r["AppStack"]["DependsOn"],
            json!(["DbStack"]),
            "gated: {gated}"
        );
        assert_eq!(r["WebStack"]["DependsOn"], json!(["AppStack"]));
        assert!(r["DbStack"].get("DependsOn").is_none());
        assert!(r["CacheStack"].get("DependsOn").is_none());
        let app_child = &n.children[2].body;
        let mut expected = vec!["App1", "App2"];
        if gated {
            // Each child ends with its group's gate (its ids carry the gate's generation).
            let gate = n.flat.gate(1).expect("the app group is gated");
            expected = vec![gate.handle.as_str(), "App1", "App2", gate.gate.as_str()];
        }
        assert_eq!(keys(&app_child["Resources"]), expected);
        assert_eq!(
            keys(&app_child["Parameters"]),
            ["App1ImageId", "App2ImageId"]
        );
        for c in &n.children {
            assert!(quota_problems(&c.body).is_empty());
        }
    }
}

/// The checks `load` runs, on an application of `servers` in `groups`.
fn checked(servers: usize, groups: usize) -> Diagnostics {
    let text = rehost_testkit::apps::large_app(servers, groups);
    let root = crate::yaml::parse(text.as_bytes()).unwrap();
    let mut diags = Diagnostics::default();
    let model = crate::decode::application(&root, &mut diags).unwrap();
    let app =
        crate::validate::resolve(&model, Path::new("l.yaml"), &Default::default(), &mut diags)
            .unwrap();
    check(&app, &mut diags);
    diags
}

#[test]
fn an_application_over_one_templates_quotas_is_a_note_not_an_error() {
    let diags = checked(1000, 40);
    assert!(!diags.has_errors(), "{:?}", diags.clone().into_sorted());
    let notes: Vec<_> = diags
        .into_sorted()
        .into_iter()
        .filter(|d| d.severity == Severity::Note)
        .collect();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].message.contains("rendered as nested stacks"),
        "{}",
        notes[0].message
    );
}

#[test]
fn a_group_too_large_for_one_child_is_split_into_parts() {
    let app = app(&rehost_testkit::apps::large_app(1200, 2));
    for gated in [true, false] {
        let mut opts = RenderOptions::new(Mode::Cutover);
        opts.health_gate = gated;
        let Package::Nested(n) = render_package(&app, &opts).unwrap() else {
            panic!("1,200 servers do not fit one template");
        };
        // 600 instances are two templates' worth of resources, and the group's list outputs
        // then span the parts, each of which outputs its servers' ids and IPs: 7 parts of 86
        // servers keep every part under 200 outputs.
        let ids: Vec<&str> = n.children.iter().map(|c| c.logical_id.as_str()).collect();
        let parts = |g: usize| (1..=7).map(move |k| format!("G{g}Part{k}Stack"));
        let expected: Vec<String> = parts(0).chain(parts(1)).collect();
        assert_eq!(ids, expected, "gated: {gated}");
        for c in &n.children {
            assert!(quota_problems(&c.body).is_empty(), "{}", c.logical_id);
        }
        let r = &n.parent.body["Resources"];
        if gated {
            // The handle is made with the first part (which outputs it), the gate waits in
            // the last, after the first; the next group waits for the gate's part.
            let gate = n.flat.gate(0).expect("group G0 is gated");
            assert!(n.children[0].body["Resources"].get(&gate.handle).is_some());
            assert!(n.children[6].body["Resources"].get(&gate.gate).is_some());
            assert_eq!(
                r["G0Part2Stack"]["Properties"]["Parameters"][&gate.handle],
                json!({"Fn::GetAtt": ["G0Part1Stack", format!("Outputs.{}Ref", gate.handle)]})
            );
            for part in parts(1).take(6) {
                assert_eq!(r[&part]["DependsOn"], json!(["G0Part7Stack"]), "{part}");
            }
            assert_eq!(r["G1Part7Stack"]["DependsOn"][0], "G0Part7Stack");
            let after: BTreeSet<&str> = r["G0Part7Stack"]["DependsOn"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                after.len(),
                5,
                "the gate waits for parts 2-6 (part 1 gives its handle)"
            );
        } else {
            for part in parts(1) {
                let after: BTreeSet<String> = r[&part]["DependsOn"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                assert_eq!(after, parts(0).collect::<BTreeSet<_>>());
            }
        }
    }
}

/// Groups of hundreds of servers (which only nested stacks launch) list their servers in
/// descriptions within CloudFormation's limits (4,000 bytes for parameters, 1,024 for outputs).
#[test]
fn long_server_lists_are_cut_to_the_description_limits() {
    let ids: Vec<String> = (0..600).map(|i| format!("server{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let text = super::parameters::listing(&ids, 100);
    assert!(text.len() <= 100, "{text}");
    assert!(text.starts_with("server0, server1, "), "{text}");
    assert!(text.ends_with("server8 and 591 more"), "{text}");
    assert_eq!(
        super::parameters::listing(&ids[..3], 100),
        "server0, server1, server2"
    );
    let app = app(&rehost_testkit::apps::large_app(1200, 2));
    let t = render(&app, &RenderOptions::new(Mode::Cutover));
    for (name, p) in t.body["Parameters"].as_object().unwrap() {
        assert!(p["Description"].as_str().unwrap().len() <= 4000, "{name}");
    }
    for (name, o) in t.body["Outputs"].as_object().unwrap() {
        assert!(o["Description"].as_str().unwrap().len() <= 1024, "{name}");
    }
}

/// What validation measures of a nested variant is what a launch of it sends, whether the
/// first round fits (moved, not copied) or a group must be split (rendered again, more rounds).
#[test]
fn validation_measures_the_nested_templates_a_launch_sends() {
    for (servers, groups) in [(600, 12), (1200, 2)] {
        let app = app(&rehost_testkit::apps::large_app(servers, groups));
        for gated in [true, false] {
            let mut opts = RenderOptions::new(Mode::Cutover);
            opts.health_gate = gated;
            let launched = package::nest_app(&app, render(&app, &opts)).unwrap();
            let measured = nest_app_measured(&app, &opts, render(&app, &opts)).unwrap();
            assert_eq!(measured.parent, launched.parent.body, "{servers}/{gated}");
            assert_eq!(measured.children.len(), launched.children.len());
            for ((m, l), &len) in measured
                .children
                .iter()
                .zip(&launched.children)
                .zip(&measured.child_lens)
            {
                assert_eq!((&m.logical_id, &m.body), (&l.logical_id, &l.body));
                assert_eq!(len, serde_json::to_string(&l.body).unwrap().len());
            }
            // One child per group, or more: the groups were split (further rounds).
            assert_eq!(
                measured.children.len() > groups,
                servers == 1200,
                "only the 1,200-server case takes the path that splits groups"
            );
        }
    }
}
