//! A 1,000-server application in 40 groups, each group with its own configure script, launched
//! against the emulator as nested stacks (a parent and a child stack per group): every
//! instance found by its tags with its group's settings, the launch order in the deployed
//! parent's DependsOn between child stacks, each child holding its group's instances and gate.
//!
//! Emulator gaps stepped around: moto's CloudFormation fails (HTTP 500) on
//! `Fn::GetAtt [Child, Outputs.X]` in a parent, which real CloudFormation supports; this
//! application needs no value from one child in another (each group fits one child, whose gate
//! handle stays with it), so the parent has none (cfn-lint proves the packages that do, in
//! `nested_stacks`). WaitConditions are no-ops there, so the gates open at once; a path-style
//! TemplateURL is read only when its host is `localhost`, so the emulator is named that way.

mod launch_common;

use std::collections::BTreeMap;
use std::path::Path;

use launch_common::*;
use serde_json::{Value, json};

const GROUPS: usize = 40;
const PER_GROUP: usize = 25;

/// A subnet for 1,000 instances (the shared infra's /24 holds 251).
async fn large_subnet(vpc: &str) -> String {
    aws_sdk_ec2::Client::new(&sdk().await)
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.0.32.0/20")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap()
}

/// The application file, the network ids put in; group `g` runs `g<g>.sh`.
fn estate(dir: &Path, subnet: &str, infra: &Infra) -> String {
    for g in 0..GROUPS {
        std::fs::write(
            dir.join(format!("g{g}.sh")),
            format!("#!/bin/sh\nsystemctl restart app-{g}.service\n"),
        )
        .unwrap();
    }
    let text = rehost_testkit::apps::large_app_with(GROUPS * PER_GROUP, GROUPS, "estate", |g| {
        Some(format!("g{g}.sh"))
    })
    .replace("subnet-0a1b2c3d", subnet)
    .replace("sg-0a1b2c3d", &infra.sg);
    std::fs::write(dir.join("estate.yaml"), text).unwrap();
    "estate.yaml".into()
}

async fn cfn() -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&sdk().await)
}

/// The child stacks of a stack: logical id -> physical id.
async fn children(stack: &str) -> BTreeMap<String, String> {
    cfn()
        .await
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::CloudFormation::Stack"))
        .map(|r| {
            (
                r.logical_resource_id().unwrap().to_string(),
                r.physical_resource_id().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_thousand_servers_launch_as_nested_stacks_in_group_order() {
    let dir = scratch("nested-estate");
    let infra = rt().block_on(infra("estate"));
    let image = rt().block_on(async { amazon_image(&sdk().await).await });
    let subnet = rt().block_on(large_subnet(&infra.vpc));
    let file = estate(&dir, &subnet, &infra);
    let mut args: Vec<String> = vec!["launch".into(), file.clone()];
    for g in 0..GROUPS {
        for i in 0..PER_GROUP {
            args.push("--ami".into());
            args.push(format!("s{g}x{i}={image}"));
        }
    }
    let out = ok(&rehost_at(&dir)
        .args(&args)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://localhost:{}", moto().port()),
        )
        .run());
    assert!(
        out.contains("stack rehost-estate-test: CREATE_COMPLETE"),
        "{out}"
    );
    // The launch table lists every server, in launch order, with its instance.
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("SERVER"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 1000, "{out}");
    assert!(rows[0].starts_with("s0x0 "), "{}", rows[0]);
    assert!(
        rows.iter().all(|r| r.contains(" i-")),
        "every server has an instance"
    );

    // Every instance, found by its tags, with its group's settings.
    let launched = rt().block_on(instances("estate", "test"));
    assert_eq!(launched.len(), 1000);
    for g in 0..GROUPS {
        for i in 0..PER_GROUP {
            let server = format!("s{g}x{i}");
            let instance = &launched[&server];
            assert_eq!(instance.tags["rehost:group"], format!("g{g}"), "{server}");
            assert_eq!(instance.tags["rehost:server"], server);
            assert_eq!(instance.tags["Name"], format!("{server}-test"));
            assert_eq!(instance.image, image, "{server}");
            assert_eq!(instance.instance_type, "m5.large", "{server}");
            assert_eq!(instance.state, "running", "{server}");
        }
    }

    // The launch order: each group's child stack waits for the child of the group it depends
    // on (group g on group (g - 1) / 2), and the children come from the template bucket.
    let parent = rt().block_on(deployed_template("rehost-estate-test"));
    let stacks = parent["Resources"].as_object().unwrap();
    assert_eq!(stacks.len(), GROUPS);
    assert!(stacks["G0Stack"].get("DependsOn").is_none());
    for g in 1..GROUPS {
        assert_eq!(
            stacks[&format!("G{g}Stack")]["DependsOn"],
            json!([format!("G{}Stack", (g - 1) / 2)]),
            "G{g}"
        );
    }
    let url = stacks["G7Stack"]["Properties"]["TemplateURL"]
        .as_str()
        .unwrap();
    assert!(
        url.contains("/rehost-templates-")
            && url.contains("/rehost-estate-test/")
            && url.ends_with(".json"),
        "content-addressed in rehost's bucket: {url}"
    );

    // Each child holds its group's instances (with the group's script and the network), then
    // its gate, which waits for exactly them.
    let children = rt().block_on(children("rehost-estate-test"));
    assert_eq!(children.len(), GROUPS);
    for g in [0, 7, 39] {
        let child: Value = rt().block_on(deployed_template(&children[&format!("G{g}Stack")]));
        let resources = child["Resources"].as_object().unwrap();
        assert_eq!(resources.len(), PER_GROUP + 2, "G{g}");
        // The gate's id carries its generation (gate generations, issue 10 part 4).
        let gate = &resources[&rehost_testkit::gate_id(&child, &format!("G{g}"), "Gate")];
        assert_eq!(gate["DependsOn"].as_array().unwrap().len(), PER_GROUP);
        assert_eq!(gate["Properties"]["Count"], PER_GROUP);
        let s = &resources[&format!("S{g}x3")]["Properties"];
        assert_eq!(s["SubnetId"], subnet);
        assert_eq!(s["SecurityGroupIds"], json!([infra.sg]));
        // The group's script is stored once in the child's Mappings (issue 11): resolve it.
        let values = BTreeMap::from([("GateUrl", "https://gate.example".to_string())]);
        let user_data = rehost_testkit::resolve_user_data(&child, &format!("S{g}x3"), &values);
        assert!(user_data.contains(&format!("app-{g}.service")), "G{g}");
        assert_eq!(
            s["ImageId"],
            json!({"Fn::Select": ["3", {"Ref": format!("G{g}GroupImageIds")}]})
        );
    }

    // Terminating the parent removes the children and every instance.
    ok(&rehost(&dir, &["terminate", &file]));
    assert!(rt().block_on(instances("estate", "test")).is_empty());
}

/// `plan` of a nested launch shows the changes inside the child stacks, not only that a child
/// stack changes. Emulator gap: moto computes no nested change sets (IncludeNestedStacks is
/// ignored: the parent's change set lists the child stack as modified, with no nested change
/// set id), so the instance's change comes from rehost's diff of the child's deployed template
/// against the new one, the path a nested change set without detail also takes.
#[test]
fn plan_shows_the_changes_inside_the_child_stacks() {
    let dir = scratch("nested-plan");
    let infra = rt().block_on(infra("nplan"));
    let image = rt().block_on(async { amazon_image(&sdk().await).await });
    let file = small_app(&dir, "nplan", &["a1", "a2"], &infra);
    let f = file.to_str().unwrap().to_string();
    let localhost = format!("http://localhost:{}", moto().port());
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend([f.clone(), "--nested".into(), "--no-health-gate".into()]);
        for s in ["a1", "a2"] {
            all.extend(["--ami".into(), format!("{s}={image}")]);
        }
        rehost_at(&dir)
            .args(&all)
            .env("AWS_ENDPOINT_URL", &localhost)
            .run()
    };
    let out = ok(&run(&["launch"]));
    assert!(out.contains("CREATE_COMPLETE"), "{out}");
    assert_eq!(rt().block_on(instances("nplan", "test")).len(), 2);
    let parent = rt().block_on(deployed_template("rehost-nplan-test"));
    assert_eq!(
        parent["Resources"]["GStack"]["Type"],
        "AWS::CloudFormation::Stack"
    );

    // a2 moves to a larger instance type: the plan names it, inside the child stack.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "{id: a2, os: linux, disks: [{source: a2.img}]}",
        "{id: a2, os: linux, disks: [{source: a2.img}], launch: {instanceType: m5.xlarge}}",
    );
    std::fs::write(&file, text).unwrap();
    let plan = json(&run(&["plan", "--output", "json"]));
    assert_eq!(plan["action"], "update", "{plan}");
    let changes = plan["changes"].as_array().unwrap();
    let stack = changes
        .iter()
        .find(|c| c["logical_id"] == "GStack")
        .unwrap_or_else(|| panic!("the child stack changes: {plan}"));
    assert_eq!(stack["action"], "Modify");
    let a2 = changes
        .iter()
        .find(|c| c["server"] == "a2")
        .unwrap_or_else(|| panic!("the instance inside the child: {plan}"));
    assert_eq!(a2["action"], "Modify");
    assert_eq!(a2["group"], "g");
    let properties: Vec<&str> = a2["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(properties, ["InstanceType"], "{plan}");
    assert!(
        !changes.iter().any(|c| c["server"] == "a1"),
        "a1 is unchanged: {plan}"
    );
    // The plan changed nothing.
    let child = rt().block_on(async {
        aws_sdk_cloudformation::Client::new(&sdk().await)
            .describe_stack_resources()
            .stack_name("rehost-nplan-test")
            .send()
            .await
            .unwrap()
            .stack_resources()[0]
            .physical_resource_id()
            .unwrap()
            .to_string()
    });
    let deployed = rt().block_on(deployed_template(&child));
    assert_eq!(
        deployed["Resources"]["A2"]["Properties"]["InstanceType"],
        "m5.large"
    );
}
