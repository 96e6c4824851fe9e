//! The contract for runs, AMIs, the lock, per-server isolation and corrupt text.

use std::collections::BTreeMap;

use rehost_replication::state::{
    DueFacts, RunPhase, RunStatus, ServerKey, SnapshotStatus, StateError,
};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

pub async fn a_second_holder_of_the_lock_is_refused(f: &dyn Fixture) {
    let a = f.open().await;
    let lock = a.lock_app("shop").await.unwrap();
    assert_eq!(lock.app(), "shop");
    // Another process would open its own store; a second handle behaves the same.
    let b = f.open().await;
    let err = b.lock_app("shop").await.unwrap_err();
    assert!(matches!(err, StateError::Locked { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("'shop'") && msg.contains(&std::process::id().to_string()),
        "{msg}"
    );
    // Other applications are independent.
    let _other = b.lock_app("crm").await.unwrap();
    drop(lock);
    let _again = b.lock_app("shop").await.unwrap();
}

pub async fn runs_resume_and_only_completed_runs_give_amis(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, resumed) = s.begin_run(&web, "front", t0).await.unwrap();
    assert!(!resumed);
    assert!(run.run_id.starts_with("20250301T100000Z-"));
    // Killed (still "running") or failed: the next call resumes the same run.
    let (again, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(5))
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!(again.run_id, run.run_id);
    assert_eq!(again.attempts, 2);
    s.fail_run(
        &web,
        &run.run_id,
        "boom",
        &BTreeMap::new(),
        t0 + time::Duration::minutes(6),
    )
    .await
    .unwrap();
    assert!(s.latest_amis("shop").await.unwrap().is_empty());
    assert_eq!(s.last_times(&web).await.unwrap().0, None, "no success yet");

    let (third, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(7))
        .await
        .unwrap();
    assert!(resumed);
    let done_at = t0 + time::Duration::minutes(9);
    s.complete_run(
        &web,
        &third.run_id,
        &ami("ami-1", &third.run_id, done_at),
        &BTreeMap::new(),
        done_at,
    )
    .await
    .unwrap();
    let latest = s.latest_amis("shop").await.unwrap();
    assert_eq!(latest["web"].ami_id, "ami-1");
    let (success, attempt) = s.last_times(&web).await.unwrap();
    assert_eq!(success, Some(done_at));
    assert_eq!(attempt, Some(t0 + time::Duration::minutes(7)));
    assert_eq!(
        s.due_facts(&web).await.unwrap(),
        DueFacts {
            newest: Some(RunStatus::Completed),
            success: Some(done_at),
            attempt: Some(t0 + time::Duration::minutes(7)),
        },
        "a worker's look at the server agrees with the history and the last times"
    );

    // A new run after a completed one is a new run; until it completes the old AMI stays latest.
    let (next, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::hours(2))
        .await
        .unwrap();
    assert!(!resumed);
    assert_ne!(next.run_id, run.run_id);
    assert_eq!(s.latest_amis("shop").await.unwrap()["web"].ami_id, "ami-1");
    let history = s.server_history(&web, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, RunStatus::Running);
    assert_eq!(history[1].status, RunStatus::Completed);
    assert_eq!(history[1].ami_id.as_deref(), Some("ami-1"));
    let facts = s.due_facts(&web).await.unwrap();
    assert_eq!(
        facts.newest,
        Some(RunStatus::Running),
        "an unfinished run is seen"
    );
    assert_eq!(facts.success, Some(done_at));
    assert_eq!(facts.attempt, Some(t0 + time::Duration::hours(2)));

    // A deregistered AMI is no longer offered.
    s.mark_ami_deregistered(&web, "ami-1").await.unwrap();
    assert!(s.latest_amis("shop").await.unwrap().is_empty());
}

pub async fn one_run_per_server_is_in_progress(f: &dyn Fixture) {
    let s = f.open().await;
    let now = datetime!(2025-03-01 10:00 UTC);
    let (web, _) = s.begin_run(&key("web"), "front", now).await.unwrap();
    let (db, resumed) = s.begin_run(&key("db"), "back", now).await.unwrap();
    assert!(!resumed, "another server's run is not resumed");
    assert_ne!(web.run_id, db.run_id);
    let other_app = ServerKey::new("crm", "web");
    let (crm, resumed) = s.begin_run(&other_app, "front", now).await.unwrap();
    assert!(
        !resumed,
        "nor another application's server of the same name"
    );
    assert_ne!(crm.run_id, web.run_id);
    let (again, resumed) = s
        .begin_run(&key("web"), "front-renamed", now)
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!(again.run_id, web.run_id);
    assert_eq!(again.group, "front-renamed", "the group follows the file");
    assert_eq!(again.status, RunStatus::Running);
    assert_eq!(s.server_history(&key("web"), 10).await.unwrap().len(), 1);
}

pub async fn a_failed_run_keeps_its_error_until_it_completes(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, _) = s.begin_run(&web, "front", t0).await.unwrap();
    s.set_phase(&web, &run.run_id, RunPhase::Uploading)
        .await
        .unwrap();
    assert_eq!(
        s.run(&web, &run.run_id).await.unwrap().unwrap().phase,
        RunPhase::Uploading
    );
    let timings = BTreeMap::from([("disk0".to_string(), 1.5), ("total".to_string(), 2.0)]);
    let failed_at = t0 + time::Duration::minutes(1);
    s.fail_run(
        &web,
        &run.run_id,
        "disk0: AccessDenied",
        &timings,
        failed_at,
    )
    .await
    .unwrap();
    let failed = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.phase, RunPhase::Failed);
    assert_eq!(failed.error.as_deref(), Some("disk0: AccessDenied"));
    assert_eq!(failed.timings, timings);
    assert_eq!(failed.finished_at, Some(failed_at));

    let (resumed, _) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(
        resumed.error, None,
        "a resumed run starts without the error"
    );
    let done = t0 + time::Duration::minutes(3);
    s.complete_run(
        &web,
        &run.run_id,
        &ami("ami-1", &run.run_id, done),
        &timings,
        done,
    )
    .await
    .unwrap();
    let completed = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(completed.status, RunStatus::Completed);
    assert_eq!(completed.phase, RunPhase::Completed);
    assert_eq!(completed.ami_id.as_deref(), Some("ami-1"));
    assert_eq!(completed.ami_name.as_deref(), Some("rehost-shop-web-ami-1"));
    assert_eq!(completed.error, None);
    assert_eq!(completed.finished_at, Some(done));
}

pub async fn history_is_newest_first_and_limited(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let mut runs = Vec::new();
    for hour in 0..3 {
        let at = t0 + time::Duration::hours(hour);
        let (run, _) = s.begin_run(&web, "front", at).await.unwrap();
        s.complete_run(
            &web,
            &run.run_id,
            &ami(&format!("ami-{hour}"), &run.run_id, at),
            &BTreeMap::new(),
            at,
        )
        .await
        .unwrap();
        runs.push(run.run_id);
    }
    let history = s.server_history(&web, 2).await.unwrap();
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [runs[2].as_str(), runs[1].as_str()]);
    assert!(s.server_history(&key("db"), 10).await.unwrap().is_empty());
    assert_eq!(s.last_times(&key("db")).await.unwrap(), (None, None));
    let never = DueFacts {
        newest: None,
        success: None,
        attempt: None,
    };
    assert_eq!(s.due_facts(&key("db")).await.unwrap(), never);
}

pub async fn the_ami_name_of_a_run_is_fixed_once(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let (run, _) = s
        .begin_run(&web, "front", OffsetDateTime::now_utc())
        .await
        .unwrap();
    let first = s
        .ami_name_for(&web, &run.run_id, "rehost-shop-web-1")
        .await
        .unwrap();
    assert_eq!(first, "rehost-shop-web-1");
    let again = s
        .ami_name_for(&web, &run.run_id, "rehost-shop-web-2")
        .await
        .unwrap();
    assert_eq!(again, "rehost-shop-web-1", "a resumed run keeps its name");
    let read = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(read.ami_name.as_deref(), Some("rehost-shop-web-1"));
}

pub async fn latest_amis_are_per_server_and_newest(f: &dyn Fixture) {
    let s = f.open().await;
    let t0 = datetime!(2025-03-01 10:00 UTC);
    for (server, hours) in [("web", [0, 1]), ("db", [2, 3])] {
        for h in hours {
            let at = t0 + time::Duration::hours(h);
            let (run, _) = s.begin_run(&key(server), "g", at).await.unwrap();
            let mut image = ami(&format!("ami-{server}-{h}"), &run.run_id, at);
            image.snapshot_ids = vec![format!("snap-{h}"), format!("snap-{h}-data")];
            image.encrypted = h % 2 == 1;
            image.kms_key_id = image
                .encrypted
                .then(|| "arn:aws:kms:us-east-1:1:key/k".into());
            s.complete_run(&key(server), &run.run_id, &image, &BTreeMap::new(), at)
                .await
                .unwrap();
        }
    }
    let (run, _) = s
        .begin_run(&ServerKey::new("crm", "web"), "g", t0)
        .await
        .unwrap();
    s.complete_run(
        &ServerKey::new("crm", "web"),
        &run.run_id,
        &ami("ami-crm", &run.run_id, t0 + time::Duration::hours(9)),
        &BTreeMap::new(),
        t0,
    )
    .await
    .unwrap();
    let latest = s.latest_amis("shop").await.unwrap();
    assert_eq!(latest.len(), 2, "{latest:?}");
    assert_eq!(latest["web"].ami_id, "ami-web-1");
    assert_eq!(latest["db"].ami_id, "ami-db-3");
    assert_eq!(latest["db"].snapshot_ids, ["snap-3", "snap-3-data"]);
    assert!(latest["db"].encrypted);
    assert_eq!(
        latest["db"].kms_key_id.as_deref(),
        Some("arn:aws:kms:us-east-1:1:key/k")
    );
    assert_eq!(latest["db"].created_at, t0 + time::Duration::hours(3));
    s.mark_ami_deregistered(&key("web"), "ami-web-1")
        .await
        .unwrap();
    assert_eq!(
        s.latest_amis("shop").await.unwrap()["web"].ami_id,
        "ami-web-0",
        "the one before a deregistered AMI is the latest again"
    );
}

pub async fn records_of_one_server_are_not_seen_through_another(f: &dyn Fixture) {
    let s = f.open().await;
    let (db, web) = (key("db"), key("web"));
    let run_id = open_snapshot(&*s, &db, "snap-a").await;
    s.record_written(&db, "snap-a", &[block(1)]).await.unwrap();
    assert_eq!(s.run(&web, &run_id).await.unwrap(), None);
    assert_eq!(s.snapshot(&web, "snap-a").await.unwrap(), None);
    assert_eq!(s.run_snapshot(&web, &run_id, "disk0").await.unwrap(), None);
    assert!(s.written_blocks(&web, "snap-a").await.unwrap().is_empty());
    // Writes through the wrong server change nothing.
    s.record_written(&web, "snap-a", &[block(2)]).await.unwrap();
    s.abandon_snapshot(&web, "snap-a").await.unwrap();
    s.set_phase(&web, &run_id, RunPhase::Registering)
        .await
        .unwrap();
    assert_eq!(s.written_blocks(&db, "snap-a").await.unwrap(), [block(1)]);
    assert_eq!(
        s.snapshot(&db, "snap-a").await.unwrap().unwrap().status,
        SnapshotStatus::Open
    );
    assert_eq!(
        s.run(&db, &run_id).await.unwrap().unwrap().phase,
        RunPhase::Scanning
    );
}

pub async fn unknown_status_text_is_corrupt(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let run_id = open_snapshot(&*s, &db, "snap-a").await;
    let corrupt = |err: StateError, table: &str, id: &str, text: &str| {
        let msg = err.to_string();
        assert!(
            matches!(&err, StateError::Corrupt { table: t, id: i, .. } if *t == table && i == id),
            "{err:?}"
        );
        assert!(msg.contains(text) && msg.contains(id), "{msg}");
    };

    f.damage(Damage::SnapshotStatus {
        snapshot_id: "snap-a",
        text: "pending",
    })
    .await;
    corrupt(
        s.snapshot(&db, "snap-a").await.unwrap_err(),
        "snapshots",
        "snap-a",
        "pending",
    );
    corrupt(
        s.server_history(&db, 10).await.unwrap_err(),
        "snapshots",
        "snap-a",
        "pending",
    );
    f.damage(Damage::SnapshotStatus {
        snapshot_id: "snap-a",
        text: "open",
    })
    .await;
    assert!(s.snapshot(&db, "snap-a").await.is_ok());

    f.damage(Damage::RunStatus {
        run_id: &run_id,
        text: "paused",
    })
    .await;
    corrupt(
        s.run(&db, &run_id).await.unwrap_err(),
        "runs",
        &run_id,
        "paused",
    );
    f.damage(Damage::RunStatus {
        run_id: &run_id,
        text: "running",
    })
    .await;
    f.damage(Damage::RunPhase {
        run_id: &run_id,
        text: "verifying",
    })
    .await;
    corrupt(
        s.server_history(&db, 10).await.unwrap_err(),
        "runs",
        &run_id,
        "verifying",
    );
}
