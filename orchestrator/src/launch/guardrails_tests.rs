//! The guardrails rule by rule, and what the definition hash covers.

use std::collections::BTreeMap;
use std::path::Path;

use rehost_replication::state::{LaunchOutcome, LaunchRecord};
use time::macros::datetime;

use super::*;

const APP: &str = concat!(
    "apiVersion: rehost/v1\nkind: Application\nname: shop\n",
    "defaults:\n  launch: {instanceType: m5.large, subnet: subnet-0123456789abcdef0,\n",
    "    test: {subnet: subnet-0fedcba9876543210}}\n",
    "servers:\n",
    "  - {id: db, os: linux, disks: [{source: a.img}]}\n",
    "  - {id: web, os: linux, disks: [{source: b.img}]}\n",
    "groups:\n  - {name: db, servers: [db]}\n  - {name: web, servers: [web], dependsOn: [db]}\n",
);

fn app(text: &str) -> App {
    crate::load::load_with(text.as_bytes(), Path::new("shop.yaml"), |_| {
        Default::default()
    })
    .unwrap()
    .app
}

fn hash(text: &str) -> String {
    definition_hash(&app(text))
}

#[test]
fn the_definition_hash_ignores_amis_tests_and_replication_and_sees_what_is_launched() {
    let base = hash(APP);
    assert!(
        base.starts_with("sha256:") && base.len() == 7 + 64,
        "{base}"
    );
    assert_eq!(base, hash(APP), "deterministic");
    let same = [
        // Test-only settings shape only the test template.
        APP.replace("subnet-0fedcba9876543210", "subnet-0aaaaaaaaaaaaaaaa"),
        APP.replace(
            "test: {subnet: subnet-0fedcba9876543210}",
            "test: {subnet: subnet-0fedcba9876543210, instanceType: t3.small}",
        ),
        // Replication settings shape no template.
        APP.replace(
            "defaults:\n",
            "defaults:\n  replication: {frequencyHours: 1, maxLagMinutes: 30}\n",
        ),
    ];
    let different = [
        APP.replace("m5.large", "m5.xlarge"),
        APP.replace("subnet-0123456789abcdef0", "subnet-0bbbbbbbbbbbbbbbb"),
        APP.replace(", dependsOn: [db]", ""),
        APP.replace("name: shop", "name: shop\ntags: {Owner: ops}"),
    ];
    for text in same.iter().chain(&different) {
        assert_ne!(text, APP, "each case changes the file");
    }
    for text in &same {
        assert_eq!(hash(text), base, "{text}");
    }
    for text in &different {
        assert_ne!(hash(text), base, "{text}");
    }
    // AMIs are not part of the definition: the hash takes none.
    let a = app(APP);
    let with_ami = render(
        &a,
        &RenderOptions {
            amis: BTreeMap::from([("db".into(), "ami-0123456789abcdef0".into())]),
            ..RenderOptions::new(Mode::Cutover)
        },
    );
    assert_ne!(
        with_ami.to_json_compact(),
        render(&a, &RenderOptions::new(Mode::Cutover)).to_json_compact()
    );
    assert_eq!(definition_hash(&a), base);
}

const NOW: OffsetDateTime = datetime!(2025-03-01 12:00 UTC);

fn record(
    mode: LaunchMode,
    definition: &str,
    outcome: LaunchOutcome,
    hours_ago: i64,
) -> LaunchRecord {
    let at = NOW - time::Duration::hours(hours_ago);
    LaunchRecord {
        launch_id: format!("{hours_ago}-{definition}-{}", mode == LaunchMode::Test),
        kind: LaunchKind::Launch,
        mode,
        stack: "rehost-shop-test".into(),
        definition: definition.into(),
        health_gate: true,
        amis: BTreeMap::new(),
        started_at: at,
        finished_at: Some(at),
        outcome,
        failure: None,
        caller: None,
        forced: None,
        hooks: vec![],
        final_sync: vec![],
    }
}

fn fresh(server: &str, minutes_ago: i64) -> LaunchedAmi {
    LaunchedAmi {
        server: server.into(),
        ami_id: Some(format!("ami-{server}")),
        replicated_at: Some(NOW - time::Duration::minutes(minutes_ago)),
        max_lag_minutes: 180,
    }
}

fn run(
    history: &[LaunchRecord],
    amis: &[LaunchedAmi],
    inspections: &BTreeMap<String, InspectionGate>,
) -> Vec<Refusal> {
    evaluate(&Facts {
        definition: "sha256:a",
        history,
        amis,
        inspections,
        health_gate: true,
        now: NOW,
    })
}

fn ok_amis() -> Vec<LaunchedAmi> {
    vec![fresh("db", 10), fresh("web", 179)]
}

#[test]
fn a_successful_test_of_this_definition_and_fresh_amis_pass() {
    let none = BTreeMap::new();
    for outcome in [LaunchOutcome::Succeeded, LaunchOutcome::Unchanged] {
        let history = [record(LaunchMode::Test, "sha256:a", outcome, 2)];
        assert_eq!(run(&history, &ok_amis(), &none), vec![]);
    }
    // An older change is fine: the test came after it.
    let history = [
        record(LaunchMode::Test, "sha256:b", LaunchOutcome::Succeeded, 5),
        record(LaunchMode::Test, "sha256:a", LaunchOutcome::Succeeded, 2),
        record(LaunchMode::Cutover, "sha256:a", LaunchOutcome::Failed, 1),
    ];
    assert_eq!(run(&history, &ok_amis(), &none), vec![]);
}

#[test]
fn no_successful_test_of_this_definition_is_refused() {
    let none = BTreeMap::new();
    let cases: [Vec<LaunchRecord>; 4] = [
        vec![],
        vec![record(
            LaunchMode::Test,
            "sha256:b",
            LaunchOutcome::Succeeded,
            1,
        )],
        vec![
            record(LaunchMode::Test, "sha256:a", LaunchOutcome::Failed, 1),
            record(LaunchMode::Test, "sha256:a", LaunchOutcome::Refused, 1),
            record(LaunchMode::Test, "sha256:a", LaunchOutcome::Started, 1),
        ],
        vec![record(
            LaunchMode::Cutover,
            "sha256:a",
            LaunchOutcome::Succeeded,
            1,
        )],
    ];
    for history in cases {
        let refusals = run(&history, &ok_amis(), &none);
        assert!(
            matches!(refusals.as_slice(), [Refusal::NotTested { definition }] if definition == "sha256:a"),
            "{history:?}: {refusals:?}"
        );
        assert!(
            refusals[0]
                .to_string()
                .contains("no test launch of this definition")
        );
    }
}

#[test]
fn a_test_older_than_the_last_change_is_refused() {
    // Tested a, then launched (even refused) b, then back to a: a's test is outdated.
    let history = [
        record(LaunchMode::Test, "sha256:a", LaunchOutcome::Succeeded, 5),
        record(LaunchMode::Test, "sha256:b", LaunchOutcome::Refused, 3),
    ];
    let refusals = run(&history, &ok_amis(), &BTreeMap::new());
    assert_eq!(
        refusals,
        vec![Refusal::TestOutdated {
            tested: NOW - time::Duration::hours(5),
            changed: NOW - time::Duration::hours(3),
            other: "sha256:b".into(),
        }]
    );
    assert!(refusals[0].to_string().contains("test again"));
    // A rollback launches no definition: it is no change.
    let mut rollback = record(LaunchMode::Cutover, "sha256:b", LaunchOutcome::Succeeded, 1);
    rollback.kind = LaunchKind::Rollback;
    let history = [
        record(LaunchMode::Test, "sha256:a", LaunchOutcome::Succeeded, 5),
        rollback,
    ];
    assert_eq!(run(&history, &ok_amis(), &BTreeMap::new()), vec![]);
}

#[test]
fn every_stale_unknown_or_missing_ami_is_refused_at_once() {
    let history = [record(
        LaunchMode::Test,
        "sha256:a",
        LaunchOutcome::Succeeded,
        1,
    )];
    let mut short = fresh("cache", 31);
    short.max_lag_minutes = 30;
    let amis = vec![
        fresh("db", 181),
        fresh("web", 180),
        short,
        LaunchedAmi {
            replicated_at: None,
            ..fresh("app", 0)
        },
        LaunchedAmi {
            ami_id: None,
            replicated_at: None,
            ..fresh("mq", 0)
        },
    ];
    let refusals = run(&history, &amis, &BTreeMap::new());
    assert_eq!(
        refusals,
        vec![
            Refusal::Stale {
                server: "db".into(),
                ami: "ami-db".into(),
                age_minutes: 181,
                max_lag_minutes: 180
            },
            Refusal::Stale {
                server: "cache".into(),
                ami: "ami-cache".into(),
                age_minutes: 31,
                max_lag_minutes: 30
            },
            Refusal::UnknownAge {
                server: "app".into(),
                ami: "ami-app".into()
            },
            Refusal::NoAmi {
                server: "mq".into()
            },
        ],
        "exactly 180 minutes is still within the lag"
    );
    assert_eq!(
        refusals[0].to_string(),
        "db: ami-db was replicated 3h01m ago, more than maxLagMinutes 180: replicate it again"
    );
}

#[test]
fn inspection_verdicts_that_forbid_refuse_unless_accepted() {
    let history = [record(
        LaunchMode::Test,
        "sha256:a",
        LaunchOutcome::Succeeded,
        1,
    )];
    let gate = |verdict, accepted| InspectionGate { verdict, accepted };
    let inspections = BTreeMap::from([
        ("a".to_string(), gate(Verdict::WillNotBoot, false)),
        ("b".to_string(), gate(Verdict::NoAgent, false)),
        ("c".to_string(), gate(Verdict::WillNotBoot, true)),
        ("d".to_string(), gate(Verdict::Unknown, false)),
        ("e".to_string(), gate(Verdict::Ready, false)),
        ("f".to_string(), gate(Verdict::XenOnly, false)),
    ]);
    assert_eq!(
        run(&history, &ok_amis(), &inspections),
        vec![
            Refusal::Inspection {
                server: "a".into(),
                verdict: Verdict::WillNotBoot
            },
            Refusal::Inspection {
                server: "b".into(),
                verdict: Verdict::NoAgent
            },
        ],
        "unknown is never a refusal; accepted risk passes"
    );
    // Without health gates nothing waits for user data: no agent is no reason to refuse.
    let ungated = evaluate(&Facts {
        definition: "sha256:a",
        history: &history,
        amis: &ok_amis(),
        inspections: &inspections,
        health_gate: false,
        now: NOW,
    });
    assert_eq!(ungated.len(), 1);
    assert!(ungated[0].to_string().contains("--accept-risk a"));
}

#[test]
fn every_rule_reports_at_once() {
    let inspections = BTreeMap::from([(
        "db".to_string(),
        InspectionGate {
            verdict: Verdict::WillNotBoot,
            accepted: false,
        },
    )]);
    let refusals = run(&[], &[fresh("db", 500)], &inspections);
    assert_eq!(refusals.len(), 3, "{refusals:?}");
}
