//! The contract for a whole migration (`rehost state migrate`) beyond the servers' replication
//! records: the launch history, each server's cached inspection and its accepted risks, servers
//! inspected but never replicated and applications that only launched included; checked before
//! anything is written, and a migration run again changes nothing.

use rehost_replication::inspect::Verdict;
use rehost_replication::state::{
    AcceptedRisk, InspectionRecord, LaunchOutcome, LaunchRecord, StateError, migrate,
};
use time::macros::datetime;

use super::guest::inspection;
use super::launches::launch;
use super::transfer::eventful_server;
use super::*;

fn risk(mode: &str, at: OffsetDateTime, finding: &str) -> AcceptedRisk {
    AcceptedRisk {
        mode: mode.into(),
        findings: vec![finding.into()],
        accepted_at: at,
        caller_arn: "arn:aws:iam::111111111111:user/ops".into(),
    }
}

fn inspected(server: &str, fingerprint: &str, verdict: Verdict) -> InspectionRecord {
    InspectionRecord {
        fingerprint: fingerprint.into(),
        inspected_at: datetime!(2025-03-01 09:30:00.250 UTC),
        inspection: inspection(server, verdict),
    }
}

/// What the guest and launch records of a state read as: launches of `shop` and `crm`, then
/// inspection and accepted risks of each server of `servers`.
type GuestRecords = (
    Vec<LaunchRecord>,
    Vec<LaunchRecord>,
    Vec<(Option<InspectionRecord>, Vec<AcceptedRisk>)>,
);

async fn guest_records(s: &dyn StateStore, servers: &[ServerKey]) -> GuestRecords {
    let mut guests = Vec::new();
    for key in servers {
        guests.push((
            s.inspection(key).await.unwrap(),
            s.accepted_risks(key).await.unwrap(),
        ));
    }
    (
        s.launches("shop", usize::MAX).await.unwrap(),
        s.launches("crm", usize::MAX).await.unwrap(),
        guests,
    )
}

/// A source with one replicated server (`db`, inspected, two accepted risks), one inspected
/// and never replicated (`web`, one accepted risk), two launches of `shop` (one ended) and an
/// application that only launched (`crm`).
async fn source_with_everything(s: &dyn StateStore) {
    let t0 = datetime!(2025-03-01 10:00 UTC);
    eventful_server(s, &key("db")).await;
    s.store_inspection(&key("db"), &inspected("db", "aa", Verdict::Ready))
        .await
        .unwrap();
    s.store_inspection(&key("web"), &inspected("web", "bb", Verdict::XenOnly))
        .await
        .unwrap();
    s.record_accepted_risk(&key("db"), &risk("test", t0, "no agent"))
        .await
        .unwrap();
    s.record_accepted_risk(
        &key("db"),
        &risk("cutover", t0 + time::Duration::hours(1), "no agent"),
    )
    .await
    .unwrap();
    s.record_accepted_risk(&key("web"), &risk("test", t0, "xen-only on m5"))
        .await
        .unwrap();
    let mut ended = launch("20250301T100000Z-a", t0);
    ended.outcome = LaunchOutcome::Succeeded;
    ended.finished_at = Some(t0 + time::Duration::minutes(7));
    s.record_launch("shop", &ended).await.unwrap();
    s.record_launch(
        "shop",
        &launch("20250302T100000Z-b", t0 + time::Duration::days(1)),
    )
    .await
    .unwrap();
    s.record_launch("crm", &launch("20250303T100000Z-c", t0))
        .await
        .unwrap();
}

pub async fn a_migration_carries_inspections_accepted_risks_and_launches(f: &dyn Fixture) {
    let from = f.open().await;
    source_with_everything(&*from).await;
    let servers = [key("db"), key("web")];
    let wanted = guest_records(&*from, &servers).await;
    assert_eq!(wanted.0.len(), 2, "the source holds what the test wrote");
    assert_eq!(wanted.2[0].1.len(), 2);

    let to = f.open_other().await;
    let done = migrate(&*from, &*to).await.unwrap();
    assert_eq!(done.moved, [key("db")], "web was never replicated");
    assert_eq!(
        (done.launches, done.inspections, done.accepted_risks),
        (3, 2, 3)
    );
    assert_eq!(
        guest_records(&*to, &servers).await,
        wanted,
        "every launch, inspection and accepted risk arrived, the never-replicated server's too"
    );
    assert_eq!(
        to.export_server(&key("db")).await.unwrap(),
        from.export_server(&key("db")).await.unwrap()
    );

    let again = migrate(&*from, &*to).await.unwrap();
    assert_eq!(again.moved, []);
    assert_eq!(again.already_there, [key("db")]);
    assert_eq!(
        (again.launches, again.inspections, again.accepted_risks),
        (0, 0, 0),
        "nothing written again"
    );
    assert_eq!(
        guest_records(&*to, &servers).await,
        wanted,
        "a repeated migration changes nothing (no risk appended twice)"
    );
}

/// Accepted risks are appended one at a time: a migration interrupted among them left the
/// first ones in the destination, and running it again appends only the rest.
pub async fn an_interrupted_migration_of_accepted_risks_is_finished_by_running_it_again(
    f: &dyn Fixture,
) {
    let from = f.open().await;
    source_with_everything(&*from).await;
    let to = f.open_other().await;
    let first = from.accepted_risks(&key("db")).await.unwrap()[0].clone();
    to.record_accepted_risk(&key("db"), &first).await.unwrap();
    let done = migrate(&*from, &*to).await.unwrap();
    assert_eq!(done.accepted_risks, 2, "db's second and web's one");
    assert_eq!(
        to.accepted_risks(&key("db")).await.unwrap(),
        from.accepted_risks(&key("db")).await.unwrap()
    );
}

pub async fn other_inspections_risks_or_launches_in_the_destination_are_refused_by_name(
    f: &dyn Fixture,
) {
    let from = f.open().await;
    source_with_everything(&*from).await;
    let to = f.open_other().await;
    // The same launch id ended otherwise; an inspection of web with another result; db's
    // risks not those of the source; an inspection of a server the source does not know.
    let mut other = from.launches("shop", 1).await.unwrap().remove(0);
    other.outcome = LaunchOutcome::Failed;
    to.record_launch("shop", &other).await.unwrap();
    to.store_inspection(&key("web"), &inspected("web", "bb", Verdict::Ready))
        .await
        .unwrap();
    let t = datetime!(2025-04-01 10:00 UTC);
    to.record_accepted_risk(&key("db"), &risk("cutover", t, "something else"))
        .await
        .unwrap();
    to.store_inspection(&key("mail"), &inspected("mail", "cc", Verdict::Ready))
        .await
        .unwrap();
    let before = guest_records(&*to, &[key("db"), key("web"), key("mail")]).await;

    let err = migrate(&*from, &*to).await.unwrap_err();
    let StateError::Differs { server: named, .. } = &err else {
        panic!("not refused as differing: {err:?}");
    };
    let mut named: Vec<&str> = named.split(", ").collect();
    named.sort();
    let launch_named = format!("launch {} of shop", other.launch_id);
    assert_eq!(
        named,
        [
            launch_named.as_str(),
            "the accepted risks of shop/db",
            "the inspection of shop/mail",
            "the inspection of shop/web",
        ],
        "each difference named, and only those (db's replication records are not there)"
    );
    assert_eq!(
        guest_records(&*to, &[key("db"), key("web"), key("mail")]).await,
        before,
        "nothing was written"
    );
    assert!(to.export_server(&key("db")).await.unwrap().is_empty());
    assert!(to.launches("crm", usize::MAX).await.unwrap().is_empty());
}
