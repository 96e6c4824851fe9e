//! Rendering and template checks on applications built from YAML text: no files, no CLI.

use std::path::Path;

use rehost_replication::tags;
use serde_json::json;

use super::*;
use crate::app::{App, Mode};
use crate::diag::Diagnostics;

const HEAD: &str = "apiVersion: rehost/v1\nkind: Application\nname: shop\n";

/// The application as validation resolves it, before the template checks `load` adds.
fn app(text: &str) -> App {
    let root = crate::yaml::parse(text.as_bytes()).expect("valid YAML");
    let mut diags = Diagnostics::default();
    let model = crate::decode::application(&root, &mut diags).expect("decodes");
    let app = crate::validate::resolve(
        &model,
        Path::new("shop.yaml"),
        &Default::default(),
        &mut diags,
    );
    assert!(!diags.has_errors(), "{:?}", diags.into_sorted());
    app.expect("valid application")
}

/// The test kit's generated application (`s<g>x<i>` servers, `g<g>` groups).
fn generated(servers: usize, groups: usize) -> App {
    app(&rehost_testkit::apps::large_app(servers, groups))
}

const NETWORK: &str = "defaults:\n  launch:\n    instanceType: m5.large\n    subnet: subnet-0a1b2c3d\n    \
    securityGroups: [sg-0a1b2c3d, sg-0b1b2c3d]\n    test: {subnet: subnet-0e0e0e0e}\n\
    servers:\n  - {id: db, os: linux, disks: [{source: a.img}], launch: {subnet: subnet-0f0f0f0f, iamInstanceProfile: ssm}}\n  \
    - {id: web-01, os: linux, disks: [{source: b.img}], launch: {associatePublicIpAddress: true, privateIpAddress: 10.0.0.9}}\n\
    groups:\n  - {name: data, servers: [db], launch: {keyName: admin}}\n  - {name: web, servers: [web-01], dependsOn: [data]}\n";

#[test]
fn portable_parameters_are_shared_by_the_servers_inheriting_one_block() {
    let app = app(&format!("{HEAD}{NETWORK}"));
    let mut options = RenderOptions::new(Mode::Cutover);
    options.portable = true;
    let t = render(&app, &options);
    let p = &t.body["Parameters"];
    let names: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "DbImageId",
            "Web01ImageId",
            "DataGroupKeyName",
            "DbInstanceProfile",
            "DbSubnet",
            "DefaultSecurityGroups",
            "DefaultSubnet",
        ],
        "AMIs in launch order, then the portable ones by name"
    );
    assert_eq!(p["DefaultSecurityGroups"]["Type"], SECURITY_GROUPS_TYPE);
    assert_eq!(
        p["DefaultSecurityGroups"]["Description"],
        "Security groups (was sg-0a1b2c3d,sg-0b1b2c3d in the source account)"
    );
    let db = &t.body["Resources"]["Db"]["Properties"];
    assert_eq!(db["SubnetId"], json!({"Ref": "DbSubnet"}));
    assert_eq!(
        db["SecurityGroupIds"],
        json!({"Ref": "DefaultSecurityGroups"})
    );
    assert_eq!(db["KeyName"], json!({"Ref": "DataGroupKeyName"}));
    assert_eq!(
        db["IamInstanceProfile"],
        json!({"Ref": "DbInstanceProfile"})
    );

    options.mode = Mode::Test;
    let t = render(&app, &options);
    let names: Vec<&str> = t.body["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(names.contains(&"DefaultTestSubnet"), "{names:?}");
    assert!(
        !names.contains(&"DbSubnet"),
        "the test block's subnet replaces the server's"
    );
}

const SECURITY_GROUPS_TYPE: &str = "List<AWS::EC2::SecurityGroup::Id>";

#[test]
fn portable_fields_are_one_table() {
    let names: Vec<&str> = PORTABLE_FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["Subnet", "SecurityGroups", "KeyName", "InstanceProfile"]
    );
    assert_eq!(PORTABLE_FIELDS[1].parameter_type, SECURITY_GROUPS_TYPE);
}

#[test]
fn instances_carry_rehosts_tags_first_and_an_explicit_public_ip_choice_on_a_nic() {
    let app = app(&format!("{HEAD}tags: {{Team: shop}}\n{NETWORK}"));
    let t = render(&app, &RenderOptions::new(Mode::Test));
    let web = &t.body["Resources"]["Web01"]["Properties"];
    let keys: Vec<&str> = web["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["Key"].as_str().unwrap())
        .collect();
    let mut expected = tags::INSTANCE_KEYS.to_vec();
    expected.push("Team");
    assert_eq!(keys, expected);
    assert_eq!(web["Tags"][0]["Value"], "web-01-test");
    assert_eq!(web["Tags"][4]["Value"], "test");
    let nic = &web["NetworkInterfaces"][0];
    assert_eq!(nic["AssociatePublicIpAddress"], true);
    assert_eq!(nic["SubnetId"], "subnet-0e0e0e0e");
    assert!(
        nic.get("PrivateIpAddress").is_none(),
        "no cutover address in test"
    );
    assert!(web.get("SubnetId").is_none());
    let cutover = render(&app, &RenderOptions::new(Mode::Cutover));
    assert_eq!(
        cutover.body["Resources"]["Web01"]["Properties"]["NetworkInterfaces"][0]["PrivateIpAddress"],
        "10.0.0.9"
    );
    let data_gate = &cutover.gate(0).unwrap().gate;
    assert!(data_gate.starts_with("DataGate"));
    assert_eq!(
        cutover.body["Resources"]["Web01"]["DependsOn"],
        json!([data_gate])
    );
}

#[test]
fn over_the_parameter_quota_amis_become_one_list_per_group() {
    let small = generated(20, 4);
    let t = render(&small, &RenderOptions::new(Mode::Cutover));
    assert_eq!(t.ami_parameters, AmiParameters::PerServer);
    assert_eq!(t.parameters, 20);
    assert!(t.body["Outputs"].get("S0x0InstanceId").is_some());

    let large = generated(240, 8);
    let mut options = RenderOptions::new(Mode::Cutover);
    options.amis = (0..30)
        .map(|s| (format!("s2x{s}"), format!("ami-{s:08x}")))
        .collect();
    let t = render(&large, &options);
    assert_eq!(t.ami_parameters, AmiParameters::PerGroup);
    assert_eq!(t.parameters, 8);
    let g2 = &t.body["Parameters"]["G2GroupImageIds"];
    assert_eq!(g2["Type"], "List<AWS::EC2::Image::Id>");
    assert!(
        g2["Default"]
            .as_str()
            .unwrap()
            .starts_with("ami-00000000,ami-00000001,")
    );
    assert!(
        t.body["Parameters"]["G3GroupImageIds"]
            .get("Default")
            .is_none()
    );
    assert_eq!(
        t.body["Resources"]["S2x7"]["Properties"]["ImageId"],
        json!({"Fn::Select": ["7", {"Ref": "G2GroupImageIds"}]})
    );
    // 480 outputs would not fit: one list per group.
    assert!(t.body["Outputs"].get("S0x0InstanceId").is_none());
    assert_eq!(
        t.body["Outputs"]["G2GroupPrivateIps"]["Value"]["Fn::Join"][1][0],
        json!({"Fn::GetAtt": ["S2x0", "PrivateIp"]})
    );
    assert_eq!(t.outputs, 2 * 8 + 1);
}

#[test]
fn the_description_is_cut_to_cloudformations_limit_on_a_character_boundary() {
    let app = app(&format!(
        "{HEAD}description: \"{}\"\ndefaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  - {{id: a, os: linux, disks: [{{source: a.img}}]}}\ngroups:\n  - {{name: g, servers: [a]}}\n",
        "é".repeat(999)
    ));
    let t = render(&app, &RenderOptions::new(Mode::Cutover));
    let d = t.body["Description"].as_str().unwrap();
    assert!(d.len() <= crate::limits::MAX_TEMPLATE_DESCRIPTION);
    assert_eq!(
        d.len(),
        1024,
        "1024 bytes is a boundary between two-byte characters"
    );
}

/// Quotas are checked by counting before rendering: the counts are what rendering makes.
#[test]
fn counted_quotas_match_the_rendered_template() {
    let network = app(&format!("{HEAD}{NETWORK}"));
    for app in [
        generated(50, 5),
        generated(300, 150),
        generated(480, 10),
        network,
    ] {
        for mode in [Mode::Cutover, Mode::Test] {
            for portable in [false, true] {
                for health_gate in [true, false] {
                    let opts = RenderOptions {
                        mode,
                        portable,
                        health_gate,
                        nested: false,
                        amis: Default::default(),
                    };
                    let t = render(&app, &opts);
                    let c = check::counts(&app, &opts);
                    let what = format!("{} servers, {opts:?}", app.servers.len());
                    assert_eq!(c.resources, t.resources, "{what}");
                    assert_eq!(c.parameters, t.parameters, "{what}");
                    assert_eq!(c.outputs, t.outputs, "{what}");
                    assert_eq!(c.ami_parameters, t.ami_parameters, "{what}");
                    assert_eq!(t.compact_len(), t.to_json_compact().len());
                }
            }
        }
    }
}

#[test]
fn quotas_and_collisions_are_reported_at_the_servers_list() {
    let mut diags = Diagnostics::default();
    check(&generated(300, 150), &mut diags);
    let messages: Vec<String> = diags.into_sorted().into_iter().map(|d| d.message).collect();
    // Over one template's resources and outputs: nested stacks, a note, not an error.
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("AMIs are passed as one list parameter per group"));
    assert!(
        messages[1].starts_with("the cutover template needs 600 resources and 301 outputs")
            && messages[1].ends_with("it is rendered as nested stacks, one per group"),
        "{messages:?}"
    );
    // The parent holds every parameter: 200 AMI lists and the children's location do not fit.
    // Counted, not rendered.
    let mut diags = Diagnostics::default();
    check(&generated(400, 200), &mut diags);
    let errors: Vec<String> = diags
        .into_sorted()
        .into_iter()
        .filter(|d| d.severity == crate::diag::Severity::Error)
        .map(|d| d.message)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("the cutover template needs 201 parameters"),
        "{errors:?}"
    );
    // Within the counts, the size is measured on the rendered variants.
    let mut diags = Diagnostics::default();
    check(&generated(200, 20), &mut diags);
    let messages: Vec<String> = diags.into_sorted().into_iter().map(|d| d.message).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("AMIs are passed as one list parameter per group"));
    assert!(messages[1].contains("over the 51200 bytes CloudFormation takes inline"));

    // A server named like a portable parameter of its group collides with it.
    let app = app(&format!(
        "{HEAD}defaults:\n  launch: {{instanceType: m5.large}}\nservers:\n  \
         - {{id: a, os: linux, disks: [{{source: a.img}}], launch: {{logicalId: WebGroupSubnet}}}}\n\
         groups:\n  - {{name: web, servers: [a], launch: {{subnet: subnet-0a1b2c3d}}}}\n"
    ));
    let mut diags = Diagnostics::default();
    check(&app, &mut diags);
    let messages: Vec<String> = diags.into_sorted().into_iter().map(|d| d.message).collect();
    assert_eq!(
        messages,
        [
            "logical id `WebGroupSubnet` of the portable Subnet parameter of group `web` collides \
          with server `a`; set a distinct `logicalId` on the server"
        ]
    );
}
