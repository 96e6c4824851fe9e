//! Leases on S3, against the emulator: the application lock (refused, expired and taken over,
//! lost, raced) and each server's lease (expired and taken over, lost).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_holder_stopped_is_taken_over_after_it_expires() {
    let f = S3Fixture::new();
    let s = f.store().await;
    // A holder elsewhere that will never renew: its lease runs out in a second.
    let lease = format!("{PREFIX}/apps/shop/lock.json");
    let expires = rehost_replication::clock::unix_ms(OffsetDateTime::now_utc()) + 1000;
    let body = serde_json::json!({
        "holder": "process 4242 on elsewhere", "token": "t", "acquired_at": 0,
        "renewed_at": 0, "expires_at": expires, "released": false
    });
    s3(f.sdk().await)
        .put_object()
        .bucket(&f.bucket)
        .key(&lease)
        .body(serde_json::to_vec(&body).unwrap().into())
        .send()
        .await
        .unwrap();
    let err = s.lock_app("shop").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
    assert!(
        msg.contains("process 4242 on elsewhere") && msg.contains("lease until"),
        "{msg}"
    );
    assert!(msg.contains(&format!("s3://{}/{lease}", f.bucket)), "{msg}");
    // Past its expiry (and the clock slack), it is taken over.
    tokio::time::sleep(Duration::from_millis(1000) + rehost_replication::state::s3::CLOCK_SLACK)
        .await;
    let guard = s.lock_app("shop").await.unwrap();
    assert!(guard.location().starts_with("lease s3://"));
    assert!(!guard.is_lost());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_was_taken_over_knows_it_lost() {
    let f = S3Fixture::with(
        &Moto::shared().endpoint(),
        S3Options {
            lease_ttl: Duration::from_millis(900),
            ..Default::default()
        },
    );
    let s = f.store().await;
    let guard = s.lock_app("shop").await.unwrap();
    // Renewed while held: still refused to others after several lifetimes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(f.store().await.lock_app("shop").await.is_err());
    assert!(!guard.is_lost());
    // Someone overwrites it (as a claimant would after an expiry this holder did not notice).
    let lease = format!("{PREFIX}/apps/shop/lock.json");
    s3(f.sdk().await)
        .put_object()
        .bucket(&f.bucket)
        .key(&lease)
        .body(b"{\"holder\":\"x\",\"token\":\"y\",\"acquired_at\":0,\"renewed_at\":0,\"expires_at\":0}".to_vec().into())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(guard.is_lost(), "the next renewal found the lease changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_claimants_racing_for_a_free_lease_exactly_one_wins() {
    let f = S3Fixture::new();
    let stores: Vec<S3Store> = futures_util::future::join_all((0..4).map(|_| f.store())).await;
    let results = futures_util::future::join_all(stores.iter().map(|s| s.lock_app("shop"))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StateError::Locked { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_holder_stopped_renewing_is_taken_over_after_its_lease_expires() {
    use rehost_replication::state::ServerClaim;
    use rehost_replication::state::s3::CLOCK_SLACK;
    let ttl = Duration::from_millis(1500);
    let f = S3Fixture::with(
        &Moto::shared().endpoint(),
        S3Options {
            lease_ttl: ttl,
            ..Default::default()
        },
    );
    let (a, b) = (f.store().await, f.store().await);
    let web = key("web");
    let ServerClaim::Won { guard, .. } = a.claim_server(&web, "process 1 on alpha").await.unwrap()
    else {
        panic!("a free server is won");
    };
    // Renewed while its holder lives: still held after two lifetimes.
    tokio::time::sleep(2 * ttl).await;
    assert!(matches!(
        b.claim_server(&web, "process 2 on beta").await.unwrap(),
        ServerClaim::Held(_)
    ));
    assert!(!guard.is_lost());
    guard.release().await;
    // A holder that died: its last renewal says the lease runs one more second.
    let expires = OffsetDateTime::now_utc().unix_timestamp() * 1000 + 1000;
    let body = serde_json::json!({
        "holder": "process 4242 on elsewhere", "token": "t", "acquired_at": 0,
        "renewed_at": 0, "expires_at": expires, "released": false
    });
    s3(f.sdk().await)
        .put_object()
        .bucket(&f.bucket)
        .key(format!("{PREFIX}/apps/shop/leases/web.json"))
        .body(serde_json::to_vec(&body).unwrap().into())
        .send()
        .await
        .unwrap();
    let died = std::time::Instant::now();
    let (guard, took_over) = loop {
        match b.claim_server(&web, "process 2 on beta").await.unwrap() {
            ServerClaim::Won { guard, took_over } => break (guard, took_over),
            ServerClaim::Held(h) => {
                assert_eq!(h.holder, "process 4242 on elsewhere");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let waited = died.elapsed();
    let old = took_over.expect("an expired lease is taken over, and says from whom");
    assert_eq!(old.holder, "process 4242 on elsewhere");
    assert!(
        waited >= CLOCK_SLACK,
        "taken over only past expiry and the clock slack ({waited:?})"
    );
    assert!(
        waited <= Duration::from_secs(1) + CLOCK_SLACK + Duration::from_secs(2),
        "taken over soon after ({waited:?})"
    );
    guard.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_holder_learns_of_a_take_over_through_its_guard() {
    use rehost_replication::state::ServerClaim;
    let f = S3Fixture::with(
        &Moto::shared().endpoint(),
        S3Options {
            lease_ttl: Duration::from_millis(900),
            ..Default::default()
        },
    );
    let s = f.store().await;
    let ServerClaim::Won { guard, .. } = s
        .claim_server(&key("web"), "process 1 on alpha")
        .await
        .unwrap()
    else {
        panic!("a free server is won");
    };
    let lease = format!("{PREFIX}/apps/shop/leases/web.json");
    s3(f.sdk().await)
        .put_object()
        .bucket(&f.bucket)
        .key(&lease)
        .body(b"{\"holder\":\"x\",\"token\":\"y\",\"acquired_at\":0,\"renewed_at\":0,\"expires_at\":0}".to_vec().into())
        .send()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("lost() resolves at the next renewal");
    assert!(guard.is_lost());
    // Giving back a lease that is not ours any more leaves the new holder's alone.
    guard.release().await;
    let after = s3(f.sdk().await)
        .get_object()
        .bucket(&f.bucket)
        .key(&lease)
        .send()
        .await
        .unwrap();
    let body = after.body.collect().await.unwrap().into_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"holder\":\"x\""));
}

/// Writes a server's lease as another host holding it until `expires_at` (Unix ms).
async fn hold_elsewhere(f: &S3Fixture, app: &str, server: &str, expires_at: i64, released: bool) {
    let body = serde_json::json!({
        "holder": "process 4242 on elsewhere", "token": "t", "acquired_at": 0,
        "renewed_at": 0, "expires_at": expires_at, "released": released
    });
    s3(f.sdk().await)
        .put_object()
        .bucket(&f.bucket)
        .key(format!("{PREFIX}/apps/{app}/leases/{server}.json"))
        .body(serde_json::to_vec(&body).unwrap().into())
        .send()
        .await
        .unwrap();
}

fn unix_ms_in(d: Duration) -> i64 {
    (OffsetDateTime::now_utc() + d).unix_timestamp() * 1000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_server_lease_is_lost_stops_at_once_and_the_next_holder_resumes_it() {
    use common::*;
    use rehost_replication::{Replicator, ReportStatus};
    let proxy = Proxy::start(Moto::shared().port());
    let f = S3Fixture::with(
        &proxy.endpoint(),
        S3Options {
            lease_ttl: Duration::from_millis(900),
            ..Default::default()
        },
    );
    let store = Arc::new(f.store().await);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    let block = rehost_replication::manifest::BLOCK_SIZE as u64;
    write_raw(&raw, 8 * block, &[(0, 8, Fill::Random)], 12);
    proxy.set_policy(|r| {
        if r.operation == "PutSnapshotBlock" {
            std::thread::sleep(Duration::from_millis(300));
        }
        Action::Forward
    });
    let mut opts = test_options();
    opts.upload_concurrency = 1;
    let sdk = sdk_config(&proxy.endpoint(), &fast_aws_options()).await;
    let rep = Arc::new(Replicator::new(&sdk, store.clone(), opts));
    let job = job("lost", "d1", &[("disk0", &raw)]);
    let run = tokio::spawn({
        let (rep, job) = (Arc::clone(&rep), job.clone());
        async move { rep.replicate(&job).await }
    });
    while proxy.accepted("PutSnapshotBlock") < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another host takes the lease over (as after an expiry this holder did not notice).
    hold_elsewhere(&f, "lost", "d1", unix_ms_in(Duration::from_secs(60)), false).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run stops soon after its lease is lost")
        .unwrap();
    assert_eq!(stopped.status, ReportStatus::Failed);
    let error = stopped.error.unwrap_or_default();
    assert!(error.contains("was lost"), "{error}");
    let sent = proxy.accepted("PutSnapshotBlock");
    assert!(sent < 8, "stopped before the end ({sent} blocks)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        proxy.accepted("PutSnapshotBlock") <= sent + 1,
        "nothing more sent after the stop (one block may have been in flight)"
    );
    // Nothing recorded the run as failed: it is still open, for the holder to resume.
    let key = ServerKey::new("lost", "d1");
    let history = store.server_history(&key, 5).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].status,
        rehost_replication::state::RunStatus::Running
    );

    // That holder gives it back; the next run resumes the same run and snapshot.
    hold_elsewhere(&f, "lost", "d1", unix_ms_in(Duration::ZERO), true).await;
    proxy.clear_policy();
    let done = rep.replicate(&job).await;
    assert_eq!(done.status, ReportStatus::Completed, "{:?}", done.error);
    assert!(done.resumed);
    assert_eq!(done.run_id, history[0].run_id);
    assert!(done.snapshots[0].blocks_resumed >= 1, "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_run_waits_for_the_server_a_worker_holds_and_gives_up_naming_it() {
    use common::*;
    use rehost_replication::{Replicator, ReportStatus};
    let f = S3Fixture::new();
    let store = Arc::new(f.store().await);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    let block = rehost_replication::manifest::BLOCK_SIZE as u64;
    write_raw(&raw, 2 * block, &[(0, 2, Fill::Random)], 13);
    let mut opts = test_options();
    opts.lease_wait = Duration::from_secs(2);
    let sdk = sdk_config(&Moto::shared().endpoint(), &fast_aws_options()).await;
    let rep = Replicator::new(&sdk, store.clone(), opts);
    let job = job("held", "d1", &[("disk0", &raw)]);

    // Held by a live worker past the wait: the server fails, naming the holder; no run begins.
    hold_elsewhere(&f, "held", "d1", unix_ms_in(Duration::from_secs(60)), false).await;
    let t0 = std::time::Instant::now();
    let report = rep.replicate(&job).await;
    assert!(t0.elapsed() >= Duration::from_secs(2), "it waited");
    assert_eq!(report.status, ReportStatus::Failed);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("being replicated by process 4242 on elsewhere") && error.contains("waited"),
        "{error}"
    );
    let key = ServerKey::new("held", "d1");
    assert!(store.server_history(&key, 5).await.unwrap().is_empty());

    // The worker finishes (gives it back) during the wait: the run follows it.
    hold_elsewhere(&f, "held", "d1", unix_ms_in(Duration::from_secs(60)), false).await;
    let mut opts = test_options();
    opts.lease_wait = Duration::from_secs(30);
    let rep = Replicator::new(&sdk, store.clone(), opts);
    let give_back = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        hold_elsewhere(&f, "held", "d1", unix_ms_in(Duration::ZERO), true).await;
    };
    let (report, ()) = tokio::join!(rep.replicate(&job), give_back);
    assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
}
