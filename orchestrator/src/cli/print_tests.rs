//! The CLI's text, rendered in process from fixed data and compared byte for byte with the files
//! under `tests/expected/cli/`. After an intended change, rerun with `REHOST_BLESS=1` to rewrite
//! them, and review the diff.

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_cloudformation::types::{ChangeAction, Replacement, StackStatus};
use rehost::app::{App, Mode};
use rehost::launch::deploy::Outcome;
use rehost::launch::preview::{
    self, LaunchPreview, PropertyChange, ResourceChange, StackAction, UpdateEffect,
};
use rehost::launch::stack::{EventView, InstanceView, Notice, Started};
use rehost::launch::status::{RunView, ServerStatus, StackView, Status};
use rehost::load::{load_bytes, load_with};
use rehost::replication_jobs::Reused;
use rehost::template::{RenderOptions, render};
use rehost::validate::ScriptReadError;
use rehost_replication::inspect::Verdict;
use rehost_replication::state::{RunPhase, RunStatus};
use rehost_replication::{ReportStatus, ServerReport, SnapshotReport};

use super::*;
use crate::cli::graph::{self, Format};

/// Compares `actual` with `tests/expected/cli/<name>`, or rewrites it under `REHOST_BLESS=1`.
pub(super) fn expect(name: &str, actual: &[u8]) {
    let path = rehost_testkit::workspace_root()
        .join("tests/expected/cli")
        .join(name);
    if std::env::var_os("REHOST_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the rendering:\n--- expected\n{}\n--- actual\n{}\nif the change is intended, rerun with REHOST_BLESS=1 and review the diff",
        path.display(),
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

pub(super) fn rendered(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Vec<u8> {
    let mut buf = Vec::new();
    f(&mut buf).unwrap();
    buf
}

fn example(name: &str) -> App {
    let file = rehost_testkit::workspace_root().join(format!("apps/{name}.yaml"));
    let bytes = std::fs::read(&file).unwrap();
    // Named as the CLI sees it when run from the workspace root.
    let shown = Path::new("apps").join(format!("{name}.yaml"));
    let loaded = load_bytes(&bytes, &file).expect("the example is valid");
    App {
        file: shown,
        ..loaded.app
    }
}

fn instance(server: &str, group: &str, id: Option<&str>, ip: Option<&str>) -> InstanceView {
    InstanceView {
        server: server.into(),
        group: group.into(),
        logical_id: server.to_uppercase(),
        instance_id: id.map(str::to_string),
        private_ip: ip.map(str::to_string),
        state: id.map(|_| "running".to_string()),
        instance_type: Some("m5.large".into()),
        image_id: Some("ami-0123456789abcdef0".into()),
    }
}

fn farm_instances() -> Vec<InstanceView> {
    vec![
        instance(
            "dc01",
            "directory",
            Some("i-0a1b2c3d4e5f60001"),
            Some("10.0.1.10"),
        ),
        instance(
            "sql01",
            "database",
            Some("i-0a1b2c3d4e5f60002"),
            Some("10.0.1.20"),
        ),
        instance("app01", "app", None, None),
    ]
}

#[test]
fn instances_table() {
    expect(
        "instances.txt",
        &rendered(|w| instances(w, &farm_instances())),
    );
}

#[test]
fn launch_outcomes() {
    let file = Path::new("apps/sharepoint-farm.yaml");
    let stack = "rehost-sharepoint-farm-test".to_string();
    let mut text = Vec::new();
    for o in [
        Outcome::Completed {
            stack: stack.clone(),
            status: StackStatus::CreateComplete,
            instances: farm_instances(),
        },
        Outcome::Unchanged {
            stack: stack.clone(),
            instances: farm_instances()[..1].to_vec(),
        },
        Outcome::Started {
            stack: stack.clone(),
            started: Started::Created,
        },
        Outcome::Started {
            stack,
            started: Started::Updated,
        },
    ] {
        text.extend(rendered(|w| outcome(w, file, &o)));
    }
    expect("launch-outcomes.txt", &text);
}

#[test]
fn plan_of_a_new_stack() {
    let app = example("sharepoint-farm");
    let mut options = RenderOptions::new(Mode::Test);
    options.health_gate = true;
    options.amis = BTreeMap::from([("dc01".into(), "ami-0123456789abcdef0".into())]);
    let template = render(&app, &options);
    let plan = preview::creation(&app, Mode::Test, &template);
    expect("plan-create.txt", &rendered(|w| preview(w, &plan)));
}

#[test]
fn plan_of_an_update_and_of_no_change() {
    let change = |action: ChangeAction,
                  id: &str,
                  ty: &str,
                  server: Option<&str>,
                  group: Option<&str>,
                  replacement: Option<Replacement>,
                  properties: &[(&str, UpdateEffect)]| ResourceChange {
        action,
        logical_id: id.into(),
        resource_type: ty.into(),
        server: server.map(str::to_string),
        group: group.map(str::to_string),
        replacement,
        properties: properties
            .iter()
            .map(|(name, effect)| PropertyChange {
                name: name.to_string(),
                effect: *effect,
            })
            .collect(),
    };
    let update = LaunchPreview {
        stack: "rehost-sharepoint-farm-cutover".into(),
        mode: Mode::Cutover,
        action: StackAction::Update,
        waves: vec![],
        changes: vec![
            change(
                ChangeAction::Modify,
                "SqlServer01",
                "AWS::EC2::Instance",
                Some("sql01"),
                Some("database"),
                Some(Replacement::False),
                &[("InstanceType", UpdateEffect::SomeInterruption)],
            ),
            change(
                ChangeAction::Modify,
                "Web01",
                "AWS::EC2::Instance",
                Some("web01"),
                Some("web"),
                Some(Replacement::True),
                &[
                    ("ImageId", UpdateEffect::Replacement),
                    ("Tags", UpdateEffect::NoInterruption),
                ],
            ),
            change(
                ChangeAction::Modify,
                "App01",
                "AWS::EC2::Instance",
                Some("app01"),
                Some("app"),
                Some(Replacement::Conditional),
                &[("SubnetId", UpdateEffect::ConditionalReplacement)],
            ),
            change(
                ChangeAction::Add,
                "SearchGate",
                "AWS::CloudFormation::WaitCondition",
                None,
                Some("search"),
                None,
                &[],
            ),
            change(
                ChangeAction::Remove,
                "Legacy01",
                "AWS::EC2::Instance",
                None,
                None,
                None,
                &[],
            ),
        ],
        warnings: vec!["server web01: its configure script or checks changed, but its instance is not replaced: user data does not run again on an existing instance, so the change will not run there".into()],
    };
    let none = LaunchPreview {
        action: StackAction::None,
        changes: vec![],
        warnings: vec![],
        ..update.clone()
    };
    let mut text = rendered(|w| preview(w, &update));
    text.extend(rendered(|w| preview(w, &none)));
    expect("plan-update.txt", &text);

    // The same update refused as a cutover launch without --yes: only the changes that replace
    // (or may replace) or remove an instance are listed.
    let endangered: Vec<ResourceChange> = update
        .changes
        .iter()
        .filter(|c| c.endangers_instance())
        .cloned()
        .collect();
    let ids: Vec<&str> = endangered.iter().map(|c| c.logical_id.as_str()).collect();
    assert_eq!(ids, ["Web01", "App01", "Legacy01"]);
    expect(
        "launch-refused.txt",
        &rendered(|w| refused_changes(w, &update.stack, &endangered)),
    );
}

#[test]
fn status_report() {
    let run =
        |id: &str, status: RunStatus, phase: RunPhase, ami: Option<&str>, error: Option<&str>| {
            RunView {
                run_id: id.into(),
                status,
                phase,
                time: "2026-03-01T02:00:00Z".into(),
                ami_id: ami.map(str::to_string),
                snapshot_ids: vec![],
                error: error.map(str::to_string),
                seconds: Some(12.5),
            }
        };
    let ok = run(
        "r1",
        RunStatus::Completed,
        RunPhase::Completed,
        Some("ami-0123456789abcdef0"),
        None,
    );
    let status = Status {
        application: "sharepoint-farm".into(),
        servers: vec![
            ServerStatus {
                server: "dc01".into(),
                group: "directory".into(),
                schedule: "every 12h".into(),
                last_run: Some(ok.clone()),
                last_success: Some(ok.clone()),
                lag_hours: Some(1.25),
                behind_schedule: false,
                failures: 0,
                next_run: Some("2026-03-01T14:00:00Z".into()),
                verdict: Some(Verdict::Ready),
                inspected_at: Some("2026-03-01T01:00:00Z".into()),
            },
            ServerStatus {
                server: "sql01".into(),
                group: "database".into(),
                schedule: "every 6h".into(),
                last_run: Some(run(
                    "r7",
                    RunStatus::Failed,
                    RunPhase::Failed,
                    None,
                    Some("disk0: AccessDenied"),
                )),
                last_success: Some(ok),
                lag_hours: Some(30.0),
                behind_schedule: true,
                failures: 2,
                next_run: None,
                verdict: Some(Verdict::XenOnly),
                inspected_at: Some("2026-03-01T01:00:00Z".into()),
            },
            ServerStatus {
                server: "app01".into(),
                group: "app".into(),
                schedule: "once".into(),
                last_run: Some(run(
                    "r9",
                    RunStatus::Running,
                    RunPhase::Uploading,
                    None,
                    None,
                )),
                last_success: None,
                lag_hours: None,
                behind_schedule: true,
                failures: 0,
                next_run: None,
                verdict: None,
                inspected_at: None,
            },
        ],
        stacks: vec![
            StackView {
                mode: Mode::Test,
                stack: "rehost-sharepoint-farm-test".into(),
                status: Some(StackStatus::UpdateRollbackComplete),
                reason: Some("Resource update cancelled".into()),
                updated: None,
                instances: farm_instances(),
                error: None,
            },
            StackView {
                mode: Mode::Cutover,
                stack: "rehost-sharepoint-farm-cutover".into(),
                status: None,
                reason: None,
                updated: None,
                instances: vec![],
                error: None,
            },
        ],
    };
    let unreachable = Status {
        stacks: vec![StackView {
            error: Some("cloudformation:DescribeStacks failed: dispatch failure".into()),
            ..status.stacks[1].clone()
        }],
        servers: vec![],
        ..status.clone()
    };
    let mut text = rendered(|w| super::status(w, &status));
    text.extend(rendered(|w| super::status(w, &unreachable)));
    expect("status.txt", &text);
}

#[test]
fn replicate_report_lines() {
    let snapshot = |uploaded: u64, total: u64| SnapshotReport {
        disk: "disk0".into(),
        snapshot_id: "snap-0123456789abcdef0".into(),
        parent_snapshot_id: None,
        blocks_total: total,
        blocks_scanned: total,
        blocks_uploaded: uploaded,
        bytes_uploaded: uploaded * 512 * 1024,
        seconds: 1.0,
        blocks_changed: uploaded,
        blocks_resumed: 0,
        volume_size_gib: 1,
        reused: false,
    };
    let report =
        |server: &str, ami: Option<&str>, error: Option<&str>, resumed: bool| ServerReport {
            server: server.into(),
            ami_id: ami.map(str::to_string),
            snapshots: vec![snapshot(3, 16), snapshot(1, 2048)],
            status: if ami.is_some() {
                ReportStatus::Completed
            } else {
                ReportStatus::Failed
            },
            error: error.map(str::to_string),
            refused: false,
            run_id: "r1".into(),
            app: "shop".into(),
            ami_name: None,
            architecture: None,
            boot_mode: None,
            resumed,
            seconds: 7.46,
            warnings: vec![],
            deregistered_amis: vec![],
            deleted_snapshots: vec![],
        };
    let mut warned = report("web01", Some("ami-0fedcba9876543210"), None, true);
    warned.warnings = vec!["retention: cannot deregister ami-0123456789abcdef0".into()];
    let mut text = Vec::new();
    for r in [
        report("shopdb", Some("ami-0123456789abcdef0"), None, false),
        warned,
        report("iis01", None, Some("disk0: block 7: AccessDenied"), false),
        report("iis02", None, None, false),
    ] {
        text.extend(rendered(|w| report_line(w, &r)));
    }
    text.extend(rendered(|w| {
        reused(
            w,
            &Reused {
                server: "tomcat01".into(),
                ami_id: "ami-0123456789abcdef1".into(),
                created_at: time::macros::datetime!(2026-03-01 02:00:00 UTC),
            },
        )
    }));
    expect("replicate.txt", &text);
}

#[test]
fn progress_lines() {
    let event = |id: &str, ty: &str, status: &str, reason: Option<&str>| EventView {
        time: "2026-03-01T02:00:00Z".into(),
        logical_id: id.into(),
        resource_type: ty.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
    };
    let mut text = Vec::new();
    for e in [
        event(
            "rehost-shop-cutover",
            "AWS::CloudFormation::Stack",
            "CREATE_IN_PROGRESS",
            Some("User Initiated"),
        ),
        event("Shopdb", "AWS::EC2::Instance", "CREATE_COMPLETE", None),
        event(
            "DatabaseGate",
            "AWS::CloudFormation::WaitCondition",
            "CREATE_FAILED",
            Some("WaitCondition timed out"),
        ),
    ] {
        text.extend(rendered(|w| super::event(w, &e)));
    }
    for n in [
        Notice::WaitingForOperation {
            stack: "rehost-shop-cutover".into(),
            status: "UPDATE_IN_PROGRESS".into(),
        },
        Notice::ReplacingFailedStack {
            stack: "rehost-shop-cutover".into(),
            status: "ROLLBACK_COMPLETE".into(),
        },
    ] {
        text.extend(rendered(|w| notice(w, &n)));
    }
    expect("progress.txt", &text);
}

#[test]
fn graphs_of_the_examples() {
    for name in ["sharepoint-farm", "ecommerce-3tier"] {
        let app = example(name);
        for (format, ext) in [
            (Format::Text, "txt"),
            (Format::Mermaid, "mmd"),
            (Format::Dot, "dot"),
        ] {
            expect(
                &format!("graph-{name}.{ext}"),
                graph::drawing(&app, format).as_bytes(),
            );
        }
    }
}

#[test]
fn validate_reports_the_examples_as_ok() {
    let mut text = Vec::new();
    for name in ["sharepoint-farm", "ecommerce-3tier"] {
        let app = example(name);
        text.extend(rendered(|w| valid_app(w, &app.file, &app)));
    }
    expect("validate-examples.txt", &text);
}

/// Many problems of one file, with configure scripts supplied as bytes: every diagnostic at its
/// FILE:LINE:COL, in file order.
#[test]
fn validate_diagnostics_of_a_bad_file() {
    let text = include_str!("../../../tests/data/many-problems.yaml");
    let file = Path::new("bad.yaml");
    let invalid = load_with(text.as_bytes(), file, |_| {
        BTreeMap::from([
            ("s.sh".into(), Ok(b"hi\n".to_vec())),
            ("big.sh".into(), Ok(vec![b'a'; 20_000])),
            ("bin.sh".into(), Ok(vec![0xff, 0xfe])),
            ("dir".into(), Err(ScriptReadError::NotAFile("a directory"))),
            ("nothere.sh".into(), Err(ScriptReadError::NotFound)),
        ])
    })
    .unwrap_err();
    expect(
        "validate-bad.txt",
        &rendered(|w| diagnostics(w, file, &invalid.diagnostics)),
    );
}
