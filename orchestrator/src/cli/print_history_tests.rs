//! The text of issue 10's commands (history, guardrails, the cutover runbook), rendered from
//! fixed data and compared with `tests/expected/cli/` (see `print_tests`).

use std::collections::BTreeMap;
use std::time::Duration;

use rehost::app::{AppHook, AppHooks, HookRun};
use rehost::launch::runbook::ExpectedDelta;
use rehost_replication::state::{RunPhase, RunStatus};

use super::tests::{expect, rendered};
#[test]
fn history_and_guardrail_text() {
    use rehost::launch::history::timeline;
    use rehost_replication::state::{
        HookOutcome, HookPhase, HookRecord, LaunchFailure, LaunchKind, LaunchMode, LaunchOutcome,
        LaunchRecord, Override, RunRecord, SyncRecord,
    };
    use time::macros::datetime;
    let at = datetime!(2026-03-01 02:00 UTC);
    let by = "arn:aws:iam::123456789012:user/ops";
    let launch = |id: &str, hours: i64, mode, outcome| LaunchRecord {
        launch_id: id.into(),
        kind: LaunchKind::Launch,
        mode,
        stack: if mode == LaunchMode::Test {
            "rehost-sharepoint-farm-test".into()
        } else {
            "rehost-sharepoint-farm-cutover".into()
        },
        definition: "sha256:0123456789abcdef0123".into(),
        health_gate: true,
        amis: BTreeMap::new(),
        started_at: at + time::Duration::hours(hours),
        finished_at: Some(at + time::Duration::hours(hours)),
        outcome,
        failure: None,
        caller: Some(by.into()),
        forced: None,
        hooks: vec![],
        final_sync: vec![],
    };
    let test = launch("l1", 1, LaunchMode::Test, LaunchOutcome::Succeeded);
    let refused = LaunchRecord {
        failure: Some(LaunchFailure {
            resource: None,
            reasons: vec![
                "sql01: ami-0123456789abcdef0 was replicated 4h10m ago, more than maxLagMinutes 180: replicate it again".into(),
            ],
        }),
        ..launch("l2", 2, LaunchMode::Cutover, LaunchOutcome::Refused)
    };
    let failed = LaunchRecord {
        kind: LaunchKind::Cutover,
        health_gate: false,
        failure: Some(LaunchFailure {
            resource: Some("DatabaseGate".into()),
            reasons: vec!["WaitCondition received failed message: 'sql\u{1b}[2J01 exit 3'".into()],
        }),
        forced: Some(Override {
            reason: "CAB-1234 accepts the lag".into(),
            by: Some(by.into()),
            at: at + time::Duration::hours(3),
            overridden: vec!["no test launch of this definition (0123456789ab) succeeded".into()],
        }),
        hooks: vec![HookRecord {
            phase: HookPhase::PreCutover,
            name: "stop-sharepoint".into(),
            command: "launch-scripts/sharepoint/stop-services.sh".into(),
            outcome: HookOutcome::Succeeded,
            exit_code: Some(0),
            seconds: 4.25,
            output: "stopped\n".into(),
            output_dropped: 0,
        }],
        final_sync: vec![
            SyncRecord {
                server: "sql01".into(),
                ami_id: Some("ami-0123456789abcdef1".into()),
                run_id: "r2".into(),
                blocks: 42,
                bytes: 42 * 512 * 1024,
                seconds: 3.5,
                error: None,
            },
            SyncRecord {
                server: "app01".into(),
                ami_id: None,
                run_id: "r3".into(),
                blocks: 0,
                bytes: 0,
                seconds: 1.0,
                error: Some("AccessDenied".into()),
            },
        ],
        ..launch("l3", 3, LaunchMode::Cutover, LaunchOutcome::Failed)
    };
    let run = RunRecord {
        run_id: "20260301T020000Z-0000abcd".into(),
        app: "sharepoint-farm".into(),
        server: "sql01".into(),
        group: "database".into(),
        status: RunStatus::Completed,
        phase: RunPhase::Completed,
        started_at: at,
        attempted_at: at,
        finished_at: Some(at + time::Duration::minutes(5)),
        attempts: 1,
        ami_id: Some("ami-0123456789abcdef0".into()),
        ami_name: None,
        error: None,
        timings: BTreeMap::new(),
        snapshots: vec![],
    };
    let history = timeline("sharepoint-farm", vec![test, refused, failed], &[run], 10);
    let mut text = rendered(|w| super::history(w, &history));
    text.extend(rendered(|w| {
        super::history(w, &timeline("sharepoint-farm", vec![], &[], 10))
    }));
    let reasons = vec![
        "no test launch of this definition (0123456789ab) succeeded: run `rehost launch FILE` (test mode) first".to_string(),
        "sql01: ami-0123456789abcdef0 was replicated 4h10m ago, more than maxLagMinutes 180: replicate it again".to_string(),
    ];
    text.extend(rendered(|w| super::guardrails_refused(w, &reasons)));
    text.extend(rendered(|w| {
        super::guardrails_overridden(w, &reasons[..1], "CAB-1234 accepts the lag")
    }));
    expect("history.txt", &text);
}

#[test]
fn cutover_runbook_text() {
    use rehost_replication::state::{HookOutcome, HookPhase, HookRecord, SyncRecord};
    let hook = |name: &str, run| AppHook {
        name: name.into(),
        run,
        timeout: Duration::from_secs(900),
    };
    let hooks = AppHooks {
        pre_cutover: vec![hook(
            "stop-farm",
            HookRun::Command(vec![
                "../launch-scripts/sharepoint/source-services.sh".into(),
                "stop".into(),
            ]),
        )],
        post_rollback: vec![hook(
            "notify",
            HookRun::Shell("curl -fsS \"$CHAT_WEBHOOK\" -d rolled-back".into()),
        )],
    };
    let deltas = [
        ExpectedDelta {
            server: "sql01".into(),
            increments: 3,
            bytes: 400 << 20,
            seconds: 40.25,
        },
        ExpectedDelta {
            server: "web01".into(),
            increments: 0,
            bytes: 0,
            seconds: 0.0,
        },
    ];
    let mut text = rendered(|w| super::dry_run(w, Some("22:00"), &hooks, &deltas, &[]));
    text.extend(rendered(|w| {
        super::dry_run(
            w,
            None,
            &AppHooks::default(),
            &deltas[1..],
            &["no test launch of this definition (0123456789ab) succeeded: run `rehost launch FILE` (test mode) first".into()],
        )
    }));
    let ran = HookRecord {
        phase: HookPhase::PreCutover,
        name: "stop-farm".into(),
        command: "../launch-scripts/sharepoint/source-services.sh stop".into(),
        outcome: HookOutcome::Failed,
        exit_code: Some(255),
        seconds: 15.5,
        output: "web01: Stop-Service -Name W3SVC -Force\nssh: connect to host web01 port 22: Connection timed out\u{1b}]52;c;x\u{7}\n".into(),
        output_dropped: 0,
    };
    text.extend(rendered(|w| super::hook_ran(w, &ran)));
    let ok = HookRecord {
        outcome: HookOutcome::Succeeded,
        exit_code: Some(0),
        ..ran.clone()
    };
    text.extend(rendered(|w| super::hook_ran(w, &ok)));
    let sync = SyncRecord {
        server: "sql01".into(),
        ami_id: Some("ami-0123456789abcdef0".into()),
        run_id: "r".into(),
        blocks: 812,
        bytes: 812 * 512 * 1024,
        seconds: 38.2,
        error: None,
    };
    text.extend(rendered(|w| super::final_sync(w, &sync)));
    let failed = SyncRecord {
        ami_id: None,
        error: Some("disk0: AccessDenied".into()),
        ..sync
    };
    text.extend(rendered(|w| super::final_sync(w, &failed)));
    expect("cutover.txt", &text);
}
