//! The launch lifecycle end to end against the moto server: replicate the example applications
//! from small generated disk images, plan, launch test and cutover side by side, check every
//! instance against the definition, plan a one-field change, share, report status, terminate;
//! pre-flight failures and an unreachable endpoint.
//!
//! Emulator gaps stepped around (see README): moto creates stacks instantly and treats
//! WaitConditions as no-ops, so most launches use `--no-health-gate` (the gated templates are
//! proven by cfn-lint in render_templates); moto ignores an instance's NetworkInterfaces (subnet,
//! security groups, private IP) and shows no security groups, so those are checked in the
//! deployed template (GetTemplate) instead of on the instance; moto corrupts a stack when an
//! instance property is updated, so the one-change plan is computed but never executed.
//!
//! Why one file of ~700 lines: the guide allows one emulator per test binary, and these tests
//! share it (and its helpers); `sharepoint_farm_lifecycle` alone is one ~300-line story whose
//! steps (launch, plan, share, status, terminate) depend on the state the earlier ones leave.

mod launch_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use launch_common::*;
use rehost_testkit::{Rehost, cfn_lint, gate_id, workspace_root};
use serde_json::Value;

#[test]
fn sharepoint_farm_lifecycle() {
    let dir = scratch("sharepoint");
    let infra = rt().block_on(infra("sp"));
    let file = prepare("sharepoint-farm", &dir, &infra, "sp-farm");
    let f = file.to_str().unwrap();

    // Replicate every server; the JSON report names each AMI.
    let report = json(&rehost(&dir, &["replicate", f, "--output", "json"]));
    let mut amis = BTreeMap::new();
    for s in report["servers"].as_array().unwrap() {
        assert_eq!(s["status"], "completed", "{s}");
        amis.insert(
            s["server"].as_str().unwrap().to_string(),
            s["ami_id"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(amis.len(), 6);

    // Plan a new test stack: every server, wave by wave.
    let plan = json(&rehost(
        &dir,
        &[
            "plan",
            f,
            "--mode",
            "test",
            "--no-health-gate",
            "--output",
            "json",
        ],
    ));
    assert_eq!(plan["action"], "create");
    let waves: Vec<Vec<String>> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["server"].as_str().map(str::to_string))
                .collect()
        })
        .collect();
    assert_eq!(
        waves,
        vec![
            vec!["dc01"],
            vec!["sql01"],
            vec!["app01", "app02"],
            vec!["web01", "web02"]
        ]
    );
    assert!(
        !rt().block_on(stack_exists("rehost-sp-farm-test")),
        "plan changes nothing"
    );

    // Launch the test farm; the table lists servers in launch order.
    let out = ok(&rehost(
        &dir,
        &["launch", f, "--mode", "test", "--no-health-gate"],
    ));
    let order: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("SERVER"))
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        order,
        ["dc01", "sql01", "app01", "app02", "web01", "web02"],
        "{out}"
    );

    let test = rt().block_on(instances("sp-farm", "test"));
    assert_eq!(test.len(), 6);
    let expected_types = [
        ("dc01", "m5.large"),
        ("sql01", "r5.xlarge"),
        ("app01", "m5.xlarge"),
        ("app02", "m5.xlarge"),
        ("web01", "m5.large"),
        ("web02", "m5.large"),
    ];
    for (server, ty) in expected_types {
        let i = &test[server];
        assert_eq!(i.image, amis[server], "{server} runs its replicated AMI");
        assert_eq!(i.instance_type, ty, "{server}");
        assert_eq!(i.state, "running");
        assert_eq!(i.tags["Name"], format!("{server}-test"));
        assert_eq!(i.tags["rehost:mode"], "test");
        assert_eq!(i.tags["Project"], "intranet");
    }
    assert_eq!(test["sql01"].tags["rehost:group"], "database");

    // Subnet, security groups, private IP and launch order, in the deployed template.
    let t = rt().block_on(deployed_template("rehost-sp-farm-test"));
    let r = &t["Resources"];
    for server in ["Dc01", "SqlServer01", "App01", "Web02"] {
        let nic = &r[server]["Properties"]["NetworkInterfaces"][0];
        assert_eq!(
            nic["SubnetId"],
            infra.test_subnet.as_str(),
            "{server} in the test subnet"
        );
        assert_eq!(
            nic["GroupSet"],
            serde_json::json!([infra.test_sg]),
            "{server}"
        );
        assert_eq!(nic["AssociatePublicIpAddress"], false);
        assert!(
            nic.get("PrivateIpAddress").is_none(),
            "test instances never take cutover addresses"
        );
    }
    assert!(r["Dc01"].get("DependsOn").is_none());
    assert_eq!(r["SqlServer01"]["DependsOn"], serde_json::json!(["Dc01"]));
    assert_eq!(r["App01"]["DependsOn"], serde_json::json!(["SqlServer01"]));
    assert_eq!(
        r["Web01"]["DependsOn"],
        serde_json::json!(["App01", "App02"])
    );

    // Cutover beside test: the test stack is untouched.
    ok(&rehost(
        &dir,
        &["launch", f, "--mode", "cutover", "--no-health-gate"],
    ));
    let cutover = rt().block_on(instances("sp-farm", "cutover"));
    assert_eq!(cutover.len(), 6);
    assert_eq!(cutover["dc01"].tags["Name"], "dc01");
    let test_again = rt().block_on(instances("sp-farm", "test"));
    assert_eq!(test_again.len(), 6, "cutover never touches the test stack");
    let t = rt().block_on(deployed_template("rehost-sp-farm-cutover"));
    let nic = &t["Resources"]["SqlServer01"]["Properties"]["NetworkInterfaces"][0];
    assert_eq!(nic["PrivateIpAddress"], "10.0.1.20");
    assert_eq!(nic["SubnetId"], infra.subnet.as_str());
    assert_eq!(nic["GroupSet"], serde_json::json!([infra.sg]));

    // Re-running a launch converges: nothing to do, no second stack.
    let again = ok(&rehost(
        &dir,
        &["launch", f, "--mode", "cutover", "--no-health-gate"],
    ));
    assert!(again.contains("up to date"), "{again}");

    // One server's instance type changes: the plan shows exactly one Modify.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("instanceType: r5.xlarge", "instanceType: r5.2xlarge"),
    )
    .unwrap();
    let plan = json(&rehost(
        &dir,
        &[
            "plan",
            f,
            "--mode",
            "cutover",
            "--no-health-gate",
            "--output",
            "json",
        ],
    ));
    assert_eq!(plan["action"], "update");
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{plan}");
    assert_eq!(changes[0]["action"], "Modify");
    assert_eq!(changes[0]["logical_id"], "SqlServer01");
    assert_eq!(changes[0]["server"], "sql01");
    let props: Vec<&str> = changes[0]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(props, ["InstanceType"]);
    assert_eq!(changes[0]["properties"][0]["effect"], "some interruption");
    std::fs::write(&file, text).unwrap();

    // Share with another account: launch and create-volume permissions, plus the portable template.
    let portable = dir.join("portable.json");
    let out = rehost(
        &dir,
        &[
            "share",
            f,
            "--account",
            "111122223333",
            "--mode",
            "cutover",
            "-o",
            portable.to_str().unwrap(),
        ],
    );
    ok(&out);
    // share reads encryption from EC2, not the state. Emulator gap: moto's StartSnapshot
    // ignores Encrypted and KmsKeyArn, so these snapshots are not encrypted there and no key
    // grant is needed (launch_safety shares a snapshot encrypted with a customer key).
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("kms:CreateGrant"),
        "EC2 shows the snapshots unencrypted"
    );
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk().await);
        for ami in amis.values() {
            let attr = ec2
                .describe_image_attribute()
                .image_id(ami)
                .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
                .send()
                .await
                .unwrap();
            let users: Vec<&str> = attr
                .launch_permissions()
                .iter()
                .filter_map(|p| p.user_id())
                .collect();
            assert!(users.contains(&"111122223333"), "{ami}: {users:?}");
        }
        let snapshot = report["servers"][0]["snapshots"][0]["snapshot_id"]
            .as_str()
            .unwrap();
        let attr = ec2
            .describe_snapshot_attribute()
            .snapshot_id(snapshot)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .unwrap();
        let users: Vec<&str> = attr
            .create_volume_permissions()
            .iter()
            .filter_map(|p| p.user_id())
            .collect();
        assert!(users.contains(&"111122223333"), "{snapshot}: {users:?}");
    });
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&portable).unwrap()).unwrap();
    assert_eq!(
        t["Parameters"]["SqlServer01ImageId"]["Default"],
        amis["sql01"].as_str()
    );
    assert_eq!(
        t["Parameters"]["DefaultSubnet"]["Type"],
        "AWS::EC2::Subnet::Id"
    );
    let lint = cfn_lint(&portable);
    assert!(lint.success, "{}", lint.output);

    // Status: replication and both stacks in one place.
    let status = json(&rehost(&dir, &["status", f, "--output", "json"]));
    let servers = status["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 6);
    for s in servers {
        assert_eq!(
            s["last_success"]["ami_id"],
            amis[s["server"].as_str().unwrap()].as_str()
        );
        assert_eq!(s["behind_schedule"], false);
    }
    for st in status["stacks"].as_array().unwrap() {
        assert!(
            st["status"].as_str().unwrap().ends_with("_COMPLETE"),
            "{st}"
        );
        assert_eq!(st["instances"].as_array().unwrap().len(), 6);
    }

    // Terminate: test freely, cutover only with --yes.
    ok(&rehost(&dir, &["terminate", f, "--mode", "test"]));
    assert!(!rt().block_on(stack_exists("rehost-sp-farm-test")));
    let refused = rehost(&dir, &["terminate", f, "--mode", "cutover"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(rt().block_on(stack_exists("rehost-sp-farm-cutover")));
    ok(&rehost(
        &dir,
        &["terminate", f, "--mode", "cutover", "--yes"],
    ));
    assert!(!rt().block_on(stack_exists("rehost-sp-farm-cutover")));
    let again = ok(&rehost(&dir, &["terminate", f, "--mode", "test"]));
    assert!(again.contains("nothing to terminate"));
}

/// The three-tier example in SMS's launchOrder style, migrated in one action with its launch
/// gates on (a no-op in the emulator, but the gated template is what is deployed), and the
/// configure script arriving intact in the instance's user data. Without `--mode`, migrate
/// launches the test stack: production is never the default.
#[test]
fn ecommerce_migrates_in_one_action_with_gates() {
    let dir = scratch("ecommerce");
    let infra = rt().block_on(infra("shop"));
    let file = prepare("ecommerce-3tier", &dir, &infra, "shop");
    let f = file.to_str().unwrap();
    let out = ok(&rehost(&dir, &["migrate", f]));
    let order: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("SERVER"))
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        order,
        ["shopdb", "tomcat01", "tomcat02", "iis01", "iis02"],
        "{out}"
    );
    assert!(
        !rt().block_on(stack_exists("rehost-shop-cutover")),
        "no cutover unless named"
    );
    let t = rt().block_on(deployed_template("rehost-shop-test"));
    assert_eq!(
        t["Resources"]["Tomcat01"]["DependsOn"],
        serde_json::json!([gate_id(&t, "Database", "Gate")])
    );
    let application_gate = gate_id(&t, "Application", "Gate");
    assert_eq!(
        t["Resources"]["Iis01"]["DependsOn"],
        serde_json::json!([application_gate])
    );
    assert_eq!(t["Resources"][&application_gate]["Properties"]["Count"], 2);

    // The user data as the instance sees it: the script verbatim, `${...}` and all.
    let script = std::fs::read_to_string(
        workspace_root().join("launch-scripts/ecommerce/point-tomcat-at-database.sh"),
    )
    .unwrap();
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk().await);
        let id = instances("shop", "test").await;
        assert_eq!(id.len(), 5);
        let out = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:rehost:server")
                    .values("tomcat01")
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("tag:rehost:app")
                    .values("shop")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let instance_id = out.reservations()[0].instances()[0]
            .instance_id()
            .unwrap()
            .to_string();
        let attr = ec2
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        use base64::Engine as _;
        let encoded = attr.user_data().and_then(|u| u.value()).unwrap();
        let user_data = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap();
        assert!(
            user_data.contains(&script),
            "script arrives verbatim:\n{user_data}"
        );
        assert!(
            !user_data.contains("${GateUrl}"),
            "the gate URL was substituted"
        );
    });

    // migrate again with --max-age: every AMI is fresh, nothing is replicated, the stack is current.
    let again = ok(&rehost(&dir, &["migrate", f, "--max-age", "1h"]));
    assert_eq!(again.matches("reusing").count(), 5, "{again}");
    assert!(again.contains("up to date"), "{again}");
}

#[test]
fn preflight_reports_every_problem_at_once_and_launches_nothing() {
    let dir = scratch("preflight");
    let infra = rt().block_on(infra("pf"));
    let app = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: pf\ndefaults:\n  launch:\n    instanceType: m5.large\n    subnet: {}\n    securityGroups: [{}]\nservers:\n  - {{id: a, os: linux, disks: [{{source: a.img}}]}}\n  - {{id: b, os: linux, disks: [{{source: b.img}}], launch: {{subnet: subnet-0123456789abcdef0}}}}\n  - {{id: c, os: linux, disks: [{{source: c.img}}], launch: {{instanceType: zz9.large}}}}\ngroups:\n  - {{name: g, servers: [a, b, c]}}\n",
        infra.subnet, infra.sg
    );
    std::fs::write(dir.join("pf.yaml"), app).unwrap();
    // Only b and c get AMIs (any existing image will do): a has none.
    let image = rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk().await);
        let out = ec2.describe_images().owners("amazon").send().await.unwrap();
        out.images()[0].image_id().unwrap().to_string()
    });
    let b = format!("b={image}");
    let c = format!("c={image}");
    let out = rehost(
        &dir,
        &[
            "launch",
            "pf.yaml",
            "--ami",
            &b,
            "--ami",
            &c,
            "--no-health-gate",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server a: no AMI"), "{stderr}");
    assert!(
        stderr.contains("server b: subnet subnet-0123456789abcdef0 does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server c: instance type zz9.large is not offered"),
        "{stderr}"
    );
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(!rt().block_on(stack_exists("rehost-pf-test")));
}

#[test]
fn unreachable_endpoint_fails_fast_with_a_clear_message() {
    let dir = scratch("unreachable");
    let port = rehost_testkit::moto::free_port();
    std::fs::write(
        dir.join("u.yaml"),
        "apiVersion: rehost/v1\nkind: Application\nname: u\ndefaults:\n  launch: {instanceType: m5.large}\nservers:\n  - {id: a, os: linux, disks: [{source: a.img}]}\ngroups:\n  - {name: g, servers: [a]}\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = rehost_at(&dir)
        .args(["launch", "u.yaml", "--ami", "a=ami-0123456789abcdef0"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("REHOST_AWS_MAX_ATTEMPTS", "2")
        .run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    // The first call: who runs the launch, which binds the state and is recorded in the
    // launch history (issue 10).
    assert!(stderr.contains("sts:GetCallerIdentity failed"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connect"),
        "names the connection problem: {stderr}"
    );
    assert!(
        !stderr.contains("DispatchFailure {"),
        "no Debug dumps: {stderr}"
    );
}

/// `rehost launch` of application `name` (written to `dir`): 40 servers with a configure script
/// each, so its template is over CloudFormation's 51,200-byte inline limit.
fn large_launch(dir: &Path, name: &str, infra: &Infra, image: &str) -> Rehost {
    // Configure scripts live in the application's repository: here, the scratch directory. Each
    // server has its own (a script servers share is stored once, which keeps a template small).
    let script = std::fs::read_to_string(
        workspace_root().join("launch-scripts/ecommerce/point-tomcat-at-database.sh"),
    )
    .unwrap();
    let mut app = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: {name}\ndefaults:\n  launch:\n    instanceType: m5.large\n    subnet: {}\n    securityGroups: [{}]\nservers:\n",
        infra.subnet, infra.sg,
    );
    for i in 0..40 {
        std::fs::write(
            dir.join(format!("c{i}.sh")),
            format!("{script}# server s{i}\n"),
        )
        .unwrap();
        app.push_str(&format!(
            "  - {{id: s{i}, os: linux, disks: [{{source: s{i}.img}}], launch: {{configureScript: c{i}.sh}}}}\n"
        ));
    }
    app.push_str("groups:\n");
    for g in 0..4 {
        let members: Vec<String> = (0..10).map(|i| format!("s{}", g * 10 + i)).collect();
        app.push_str(&format!(
            "  - {{name: g{g}, servers: [{}]",
            members.join(", ")
        ));
        app.push_str(&if g > 0 {
            format!(", dependsOn: [g{}]}}\n", g - 1)
        } else {
            "}\n".to_string()
        });
    }
    let file = format!("{name}.yaml");
    std::fs::write(dir.join(&file), app).unwrap();
    let mut args: Vec<String> = vec!["launch".into(), file];
    for i in 0..40 {
        args.push("--ami".into());
        args.push(format!("s{i}={image}"));
    }
    // Emulator gap: moto's CloudFormation reads a path-style TemplateURL only when its host is
    // "localhost" (it takes "127" of 127.0.0.1 for a bucket name), so this launch names the
    // emulator by that loopback name.
    rehost_at(dir).args(&args).env(
        "AWS_ENDPOINT_URL",
        format!("http://localhost:{}", moto().port()),
    )
}

/// A template over CloudFormation's 51,200-byte inline limit goes through the bucket rehost owns,
/// which is created encrypted, private and expiring; the stack launches from its URL.
#[test]
fn large_templates_go_through_the_template_bucket() {
    let dir = scratch("large");
    let infra = rt().block_on(infra("big"));
    let image = rt().block_on(async { amazon_image(&sdk().await).await });
    let out = ok(&large_launch(&dir, "big", &infra, &image).run());
    assert!(
        out.contains("stack rehost-big-test: CREATE_COMPLETE"),
        "{out}"
    );
    assert_eq!(rt().block_on(instances("big", "test")).len(), 40);

    rt().block_on(async {
        let conf = sdk().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        let bucket = "rehost-templates-123456789012-us-east-1";
        let objects = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("rehost-big-test/")
            .send()
            .await
            .unwrap();
        assert_eq!(
            objects.contents().len(),
            1,
            "one content-addressed template"
        );
        assert!(objects.contents()[0].size().unwrap() > 51_200);
        let enc = s3
            .get_bucket_encryption()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm()
                .as_str(),
            "AES256"
        );
        let block = s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let block = block.public_access_block_configuration().unwrap();
        assert_eq!(
            (
                block.block_public_acls(),
                block.ignore_public_acls(),
                block.block_public_policy(),
                block.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let lifecycle = s3
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(lifecycle.rules()[0].expiration().unwrap().days(), Some(7));
    });
}

/// Another account creates `rehost-templates-<account>-<region>` first (bucket names are
/// global; the emulator, like S3, lets it). rehost never writes to that bucket: it sees the
/// bucket is not in its own ListBuckets and uses a stand-in of its own with an unguessable
/// name, which the next launch finds again. The squatter's bucket stays empty.
#[test]
fn squatted_template_bucket_is_never_written_to() {
    let dir = scratch("squatted");
    let victim_account = "222222222222";
    let (victim, victim_env) = rt().block_on(other_account(victim_account));
    let (squatter, _) = rt().block_on(other_account("111111111111"));
    let preferred = format!("rehost-templates-{victim_account}-us-east-1");
    rt().block_on(async {
        s3_client(&squatter)
            .create_bucket()
            .bucket(&preferred)
            .send()
            .await
            .unwrap();
    });
    let infra = rt().block_on(infra_in(&victim, "squat"));
    let image = rt().block_on(amazon_image(&victim));
    let stand_ins = || {
        rt().block_on(async {
            let out = s3_client(&victim).list_buckets().send().await.unwrap();
            out.buckets()
                .iter()
                .filter_map(|b| b.name())
                .filter(|n| n.starts_with(&format!("{preferred}-")))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
    };
    for attempt in ["create", "update"] {
        let mut cmd = large_launch(&dir, "squat", &infra, &image);
        for (k, v) in &victim_env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = ok(&out);
        assert!(
            stdout.contains("stack rehost-squat-test"),
            "{attempt}: {stdout}"
        );
        let squatted = rt().block_on(async {
            s3_client(&squatter)
                .list_objects_v2()
                .bucket(&preferred)
                .send()
                .await
                .unwrap()
                .key_count()
        });
        assert_eq!(
            squatted,
            Some(0),
            "{attempt}: the squatter's bucket stays empty"
        );
        let own = stand_ins();
        assert_eq!(
            own.len(),
            1,
            "{attempt}: one stand-in, found again: {own:?}"
        );
        if attempt == "create" {
            assert!(
                stderr.contains(&preferred) && stderr.contains(&own[0]),
                "the launch says which bucket it used instead: {stderr}"
            );
        }
        rt().block_on(async {
            let objects = s3_client(&victim)
                .list_objects_v2()
                .bucket(&own[0])
                .prefix("rehost-squat-test/")
                .send()
                .await
                .unwrap();
            assert_eq!(
                objects.contents().len(),
                1,
                "{attempt}: the template is in rehost's own bucket"
            );
            // Nor was it reconfigured: rehost set no lifecycle rule on it.
            assert!(
                s3_client(&squatter)
                    .get_bucket_lifecycle_configuration()
                    .bucket(&preferred)
                    .send()
                    .await
                    .is_err()
            );
        });
    }
}
