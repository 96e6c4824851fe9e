//! The launch history's records, built from what a launch knew and how it ended (pure): the
//! CLI writes them to the state when a launch starts and again when it ends, refusals included.

use std::collections::BTreeMap;

use rehost_replication::ids::new_run_id;
use rehost_replication::state::{
    AmiRecord, LaunchFailure, LaunchKind, LaunchMode, LaunchOutcome, LaunchRecord,
};
use time::OffsetDateTime;

use crate::app::{App, Mode};
use crate::launch::LaunchError;
use crate::launch::deploy::Outcome;
use crate::launch::guardrails::LaunchedAmi;
use crate::template::RenderOptions;

pub fn launch_mode(mode: Mode) -> LaunchMode {
    match mode {
        Mode::Test => LaunchMode::Test,
        Mode::Cutover => LaunchMode::Cutover,
    }
}

/// A launch as it starts: `running`, its id sorting by start time.
pub fn started(
    kind: LaunchKind,
    app: &App,
    options: &RenderOptions,
    definition: &str,
    caller: Option<String>,
    now: OffsetDateTime,
) -> LaunchRecord {
    LaunchRecord {
        launch_id: new_run_id(now),
        kind,
        mode: launch_mode(options.mode),
        stack: app.stack_name(options.mode),
        definition: definition.to_string(),
        health_gate: options.health_gate,
        amis: options.amis.clone(),
        started_at: now,
        finished_at: None,
        outcome: LaunchOutcome::Running,
        failure: None,
        caller,
        forced: None,
        hooks: Vec::new(),
        final_sync: Vec::new(),
    }
}

/// Refused before anything changed in AWS, for every one of `reasons`.
pub fn refused(record: &mut LaunchRecord, reasons: Vec<String>, now: OffsetDateTime) {
    record.outcome = LaunchOutcome::Refused;
    record.failure = Some(LaunchFailure {
        resource: None,
        reasons,
    });
    record.finished_at = Some(now);
}

/// How the launch ended: the outcome, or the error classified (refusals are what pre-flight
/// and rehost's own checks stopped before any change; a failed stack names its resource).
pub fn finished(
    record: &mut LaunchRecord,
    result: &Result<Outcome, LaunchError>,
    now: OffsetDateTime,
) {
    record.finished_at = Some(now);
    match result {
        Ok(Outcome::Completed { .. }) => record.outcome = LaunchOutcome::Succeeded,
        Ok(Outcome::Unchanged { .. }) => record.outcome = LaunchOutcome::Unchanged,
        Ok(Outcome::Started { .. }) => record.outcome = LaunchOutcome::Started,
        Err(LaunchError::Preflight(findings)) => refused(record, findings.clone(), now),
        Err(LaunchError::Cancelled) => record.outcome = LaunchOutcome::Cancelled,
        // Started and not followed to its end, as with `--no-wait`.
        Err(LaunchError::Detached { .. }) => record.outcome = LaunchOutcome::Started,
        Err(e) if e.is_invalid_input() => refused(record, vec![e.to_string()], now),
        Err(LaunchError::StackFailed {
            resource, reason, ..
        }) => {
            record.outcome = LaunchOutcome::Failed;
            record.failure = Some(LaunchFailure {
                resource: Some(resource.clone()),
                reasons: vec![reason.clone()],
            });
        }
        Err(e) => {
            record.outcome = LaunchOutcome::Failed;
            record.failure = Some(LaunchFailure {
                resource: None,
                reasons: vec![e.to_string()],
            });
        }
    }
}

/// Per server, the AMI the launch would use and when the state recorded it (`recorded`: each
/// server's available AMIs as the state holds them).
pub fn launched_amis(
    app: &App,
    amis: &BTreeMap<String, String>,
    recorded: &BTreeMap<String, Vec<AmiRecord>>,
) -> Vec<LaunchedAmi> {
    app.servers_in_launch_order()
        .into_iter()
        .map(|s| {
            let ami_id = amis.get(&s.id).cloned();
            let replicated_at = ami_id.as_ref().and_then(|id| {
                recorded
                    .get(&s.id)
                    .and_then(|list| list.iter().find(|a| &a.ami_id == id))
                    .map(|a| a.created_at)
            });
            LaunchedAmi {
                server: s.id.clone(),
                ami_id,
                replicated_at,
                max_lag_minutes: s.replication.max_lag_minutes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use time::macros::datetime;

    use super::*;

    fn app() -> App {
        let text = concat!(
            "apiVersion: rehost/v1\nkind: Application\nname: shop\n",
            "defaults:\n  launch: {instanceType: m5.large}\n  replication: {maxLagMinutes: 60}\n",
            "servers:\n  - {id: db, os: linux, disks: [{source: a.img}]}\n",
            "  - {id: web, os: linux, disks: [{source: b.img}], replication: {maxLagMinutes: 20}}\n",
            "groups:\n  - {name: db, servers: [db]}\n  - {name: web, servers: [web], dependsOn: [db]}\n",
        );
        crate::load::load_with(text.as_bytes(), Path::new("shop.yaml"), |_| {
            Default::default()
        })
        .unwrap()
        .app
    }

    #[test]
    fn launched_amis_take_their_age_from_the_state_record_of_exactly_that_ami() {
        let at = datetime!(2025-03-01 10:00 UTC);
        let rec = |id: &str| AmiRecord {
            ami_id: id.into(),
            name: id.into(),
            run_id: "r".into(),
            created_at: at,
            snapshot_ids: vec![],
            encrypted: false,
            kms_key_id: None,
        };
        let recorded = BTreeMap::from([("db".to_string(), vec![rec("ami-1"), rec("ami-2")])]);
        let amis = BTreeMap::from([
            ("db".to_string(), "ami-2".to_string()),
            ("web".to_string(), "ami-9".to_string()),
        ]);
        let got = launched_amis(&app(), &amis, &recorded);
        assert_eq!(
            got,
            vec![
                LaunchedAmi {
                    server: "db".into(),
                    ami_id: Some("ami-2".into()),
                    replicated_at: Some(at),
                    max_lag_minutes: 60
                },
                LaunchedAmi {
                    server: "web".into(),
                    ami_id: Some("ami-9".into()),
                    replicated_at: None,
                    max_lag_minutes: 20
                },
            ]
        );
    }

    #[test]
    fn a_launch_ends_refused_failed_or_done_as_its_result_says() {
        let app = app();
        let now = datetime!(2025-03-01 10:00 UTC);
        let options = RenderOptions::new(Mode::Test);
        let start = started(LaunchKind::Launch, &app, &options, "sha256:a", None, now);
        assert_eq!(start.outcome, LaunchOutcome::Running);
        assert_eq!(start.stack, "rehost-shop-test");
        assert!(start.launch_id.starts_with("20250301T100000Z-"));
        let end = |result: Result<Outcome, LaunchError>| {
            let mut r = start.clone();
            finished(&mut r, &result, now);
            (r.outcome, r.failure)
        };
        assert_eq!(
            end(Err(LaunchError::Preflight(vec!["a".into(), "b".into()]))),
            (
                LaunchOutcome::Refused,
                Some(LaunchFailure {
                    resource: None,
                    reasons: vec!["a".into(), "b".into()]
                })
            )
        );
        assert_eq!(
            end(Err(LaunchError::StackFailed {
                stack: "s".into(),
                status: "ROLLBACK_COMPLETE".into(),
                resource: "DbGate".into(),
                reason: "timed out".into()
            })),
            (
                LaunchOutcome::Failed,
                Some(LaunchFailure {
                    resource: Some("DbGate".into()),
                    reasons: vec!["timed out".into()]
                })
            )
        );
        assert_eq!(
            end(Err(LaunchError::Refused("no".into()))).0,
            LaunchOutcome::Refused
        );
        assert_eq!(
            end(Ok(Outcome::Unchanged {
                stack: "s".into(),
                instances: vec![]
            })),
            (LaunchOutcome::Unchanged, None)
        );
        // The operator stopped it: before anything was created, or by no longer following a
        // stack that goes on (as `--no-wait` leaves it).
        assert_eq!(
            end(Err(LaunchError::Cancelled)),
            (LaunchOutcome::Cancelled, None)
        );
        assert_eq!(
            end(Err(LaunchError::Detached { stack: "s".into() })),
            (LaunchOutcome::Started, None)
        );
    }
}
