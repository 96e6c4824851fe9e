//! Gates that also hold on updates (issue 10 part 4), against the emulator: a launch that
//! replaces a group's instance gives that group a new gate (new handle and wait condition, the
//! old ones removed) and its dependents wait on it; the other groups keep theirs. `plan` warns
//! about what an update cannot gate or run: a configure script changed on an instance that is
//! not replaced, and a group re-gated while one of its instances is not replaced.
//!
//! Emulator gaps stepped around: moto treats wait conditions as no-ops (so nothing here waits
//! for a signal), and it corrupts `DescribeStackResources` after an update that modifies an
//! instance, so the update is started with `--no-wait` and the gate ids are read from the
//! deployed template (GetTemplate), which shows what CloudFormation was asked to run.

mod launch_common;

use std::path::{Path, PathBuf};

use launch_common::*;
use rehost_testkit::gate_id;
use serde_json::Value;

/// `db` (server a) <- `web` (servers b and c, with a configure script).
fn gated_app(dir: &Path, infra: &Infra) -> PathBuf {
    std::fs::write(dir.join("web.sh"), "#!/bin/sh\necho one\n").unwrap();
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: gen\ndefaults:\n  launch:\n    instanceType: m5.large\n    \
         subnet: {}\n    securityGroups: [{}]\n    test: {{subnet: {}, securityGroups: [{}]}}\nservers:\n  \
         - {{id: a, os: linux, disks: [{{source: a.img}}]}}\n  - {{id: b, os: linux, disks: [{{source: b.img}}]}}\n  \
         - {{id: c, os: linux, disks: [{{source: c.img}}]}}\n\
         groups:\n  - {{name: db, servers: [a]}}\n  \
         - {{name: web, servers: [b, c], dependsOn: [db], launch: {{configureScript: web.sh}}}}\n",
        infra.subnet, infra.sg, infra.test_subnet, infra.test_sg
    );
    let file = dir.join("gen.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn warnings(plan: &Value) -> Vec<String> {
    plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_update_that_replaces_an_instance_regates_its_group_only() {
    let dir = scratch("gates-update");
    let infra = rt().block_on(infra("gen"));
    let file = gated_app(&dir, &infra);
    let f = file.to_str().unwrap();
    let images = rt().block_on(x86_images(2));
    let ami = |server: &str, i: usize| format!("{server}={}", images[i]);
    let (a0, a1, b0, b1, c0) = (
        ami("a", 0),
        ami("a", 1),
        ami("b", 0),
        ami("b", 1),
        ami("c", 0),
    );
    let with = |cmd: &str, amis: [&str; 3], extra: &[&str]| {
        let mut args = vec![cmd, f];
        for a in amis {
            args.extend(["--ami", a]);
        }
        args.extend_from_slice(extra);
        rehost(&dir, &args)
    };
    let out = ok(&with("launch", [&a0, &b0, &c0], &[]));
    assert!(out.contains("CREATE_COMPLETE"), "{out}");
    let stack = "rehost-gen-test";
    let before = rt().block_on(deployed_template(stack));
    let (db_gate, web_gate) = (
        gate_id(&before, "Db", "Gate"),
        gate_id(&before, "Web", "Gate"),
    );

    // The same launch again changes nothing: same generations.
    let plan = json(&with("plan", [&a0, &b0, &c0], &["--output", "json"]));
    assert_eq!(plan["action"], "none", "{plan}");

    // A changed configure script alone replaces nothing: the gates keep their ids, and plan
    // warns that the script will not run on the running instances.
    std::fs::write(dir.join("web.sh"), "#!/bin/sh\necho two\n").unwrap();
    let plan = json(&with("plan", [&a0, &b0, &c0], &["--output", "json"]));
    let text = plan.to_string();
    assert!(!text.contains("\"Add\""), "no new gate: {plan}");
    let w = warnings(&plan);
    assert!(
        w.iter()
            .any(|w| w.starts_with("server b: its configure script or checks changed")),
        "{plan}"
    );
    std::fs::write(dir.join("web.sh"), "#!/bin/sh\necho one\n").unwrap();

    // Only b of web gets a new AMI: web is re-gated, and c, not replaced, cannot signal.
    let plan = json(&with("plan", [&a0, &b1, &c0], &["--output", "json"]));
    let w = warnings(&plan);
    assert!(
        w.iter()
            .any(|w| w.starts_with("group web: server c is not replaced")),
        "{plan}"
    );
    assert!(!w.iter().any(|w| w.contains("server b ")), "{plan}");

    // a gets a new AMI: db is re-gated (the old handle and condition removed), web keeps its
    // gate and waits on db's new one.
    let plan = json(&with("plan", [&a1, &b0, &c0], &["--output", "json"]));
    assert!(warnings(&plan).is_empty(), "{plan}");
    let out = ok(&with("launch", [&a1, &b0, &c0], &["--no-wait"]));
    assert!(out.contains("updating stack rehost-gen-test"), "{out}");
    let after = rt().block_on(deployed_template(stack));
    let new_db_gate = gate_id(&after, "Db", "Gate");
    assert_ne!(new_db_gate, db_gate, "db has a new gate");
    assert_eq!(
        gate_id(&after, "Web", "Gate"),
        web_gate,
        "web keeps its gate"
    );
    let r = &after["Resources"];
    assert!(r.get(&db_gate).is_none(), "the old condition is removed");
    assert!(
        r.get(db_gate.replace("Gate", "GateHandle")).is_none(),
        "the old handle is removed"
    );
    assert_eq!(
        r[&new_db_gate]["Properties"]["Handle"]["Ref"],
        gate_id(&after, "Db", "GateHandle")
    );
    for web in ["B", "C"] {
        assert_eq!(
            r[web]["DependsOn"],
            serde_json::json!([new_db_gate]),
            "{web} waits on db's new gate"
        );
    }
}
