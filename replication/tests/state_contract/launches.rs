//! The contract for the launch history: one record per launch of an application, written when
//! it starts and replaced whole when it ends, read back newest first.

use std::collections::BTreeMap;

use rehost_replication::state::{
    HookOutcome, HookPhase, HookRecord, LaunchFailure, LaunchKind, LaunchMode, LaunchOutcome,
    LaunchRecord, Override, SyncRecord,
};
use time::macros::datetime;

use super::*;

pub(super) fn launch(id: &str, at: OffsetDateTime) -> LaunchRecord {
    LaunchRecord {
        launch_id: id.into(),
        kind: LaunchKind::Launch,
        mode: LaunchMode::Test,
        stack: "rehost-shop-test".into(),
        definition: "sha256:aa".into(),
        health_gate: true,
        amis: BTreeMap::from([("web".to_string(), "ami-1".to_string())]),
        started_at: at,
        finished_at: None,
        outcome: LaunchOutcome::Running,
        failure: None,
        caller: Some("arn:aws:iam::111111111111:user/ops".into()),
        forced: None,
        hooks: Vec::new(),
        final_sync: Vec::new(),
    }
}

pub async fn launches_are_replaced_whole_and_listed_newest_first(f: &dyn Fixture) {
    let s = f.open().await;
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let first = launch("20250301T100000Z-a", t0);
    s.record_launch("shop", &first).await.unwrap();
    let mut second = launch("20250301T110000Z-b", t0 + time::Duration::hours(1));
    second.kind = LaunchKind::Cutover;
    second.mode = LaunchMode::Cutover;
    s.record_launch("shop", &second).await.unwrap();
    let third = launch("20250301T090000Z-c", t0 - time::Duration::hours(1));
    s.record_launch("shop", &third).await.unwrap();

    // The second ends: everything it carries comes back as written.
    let mut ended = second.clone();
    ended.finished_at = Some(t0 + time::Duration::minutes(70));
    ended.outcome = LaunchOutcome::Failed;
    ended.failure = Some(LaunchFailure {
        resource: Some("WebServer01".into()),
        reasons: vec!["WaitCondition received failed message".into()],
    });
    ended.forced = Some(Override {
        reason: "lag accepted by the change board".into(),
        by: Some("arn:aws:iam::111111111111:user/ops".into()),
        at: t0 + time::Duration::hours(1),
        overridden: vec!["web: replication 4h old".into()],
    });
    ended.hooks = vec![HookRecord {
        phase: HookPhase::PreCutover,
        name: "stop-iis".into(),
        command: "ssh web iisreset /stop".into(),
        outcome: HookOutcome::Succeeded,
        exit_code: Some(0),
        seconds: 1.5,
        output: "stopped\n".into(),
        output_dropped: 0,
    }];
    ended.final_sync = vec![SyncRecord {
        server: "web".into(),
        ami_id: Some("ami-2".into()),
        run_id: "run-9".into(),
        blocks: 3,
        bytes: 3 * 512 * 1024,
        seconds: 0.25,
        error: None,
    }];
    s.record_launch("shop", &ended).await.unwrap();

    let t = f.open().await;
    let all = t.launches("shop", 10).await.unwrap();
    assert_eq!(
        all.iter().map(|l| l.launch_id.as_str()).collect::<Vec<_>>(),
        [
            "20250301T110000Z-b",
            "20250301T100000Z-a",
            "20250301T090000Z-c"
        ],
        "newest first, one record per launch"
    );
    assert_eq!(all[0], ended, "the record is replaced whole");
    assert_eq!(all[1], first);
    let two = t.launches("shop", 2).await.unwrap();
    assert_eq!(two.len(), 2, "limited");
    assert_eq!(two[0].launch_id, "20250301T110000Z-b");
}

pub async fn launches_of_one_application_are_not_seen_through_another(f: &dyn Fixture) {
    let s = f.open().await;
    let at = datetime!(2025-03-01 10:00 UTC);
    let shop = launch("20250301T100000Z-a", at);
    s.record_launch("shop", &shop).await.unwrap();
    assert!(s.launches("crm", 10).await.unwrap().is_empty());
    // Another application writing the same id does not replace this one's record.
    let mut other = shop.clone();
    other.stack = "rehost-crm-test".into();
    other.outcome = LaunchOutcome::Refused;
    let _ = s.record_launch("crm", &other).await;
    assert_eq!(s.launches("shop", 10).await.unwrap(), vec![shop]);
}
