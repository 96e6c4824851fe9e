//! The contract for claiming a server (replication workers): one holder at a time on a shared
//! state, given back by a release; a state that cannot be shared says so.

use rehost_replication::state::{ServerClaim, StateError};

use super::*;

pub async fn a_server_is_claimed_by_one_holder_at_a_time(f: &dyn Fixture) {
    let a = f.open().await;
    let b = f.open().await;
    let web = key("web");
    let first = match a.claim_server(&web, "process 1 on alpha").await {
        Err(StateError::NotShared { location }) => {
            // A local state: the application lock already excludes every other rehost.
            assert_eq!(location, a.location());
            assert!(!location.starts_with("s3://"), "{location}");
            return;
        }
        other => other.unwrap(),
    };
    let ServerClaim::Won { guard, took_over } = first else {
        panic!("a free server is won: {first:?}");
    };
    assert_eq!(took_over, None, "nobody held it before");
    assert!(!guard.is_lost());
    assert!(guard.location().contains("leases/web.json"), "{guard:?}");

    // The second claimant (another handle, as another host) finds it held, and by whom.
    match b.claim_server(&web, "process 2 on beta").await.unwrap() {
        ServerClaim::Held(holder) => {
            assert_eq!(holder.holder, "process 1 on alpha");
            assert!(holder.expires_at > OffsetDateTime::now_utc());
        }
        won => panic!("two holders of one server: {won:?}"),
    }
    // Other servers are independent.
    let ServerClaim::Won { guard: db, .. } = b
        .claim_server(&key("db"), "process 2 on beta")
        .await
        .unwrap()
    else {
        panic!("another server is free");
    };

    // Given back: the next claimant wins at once, and it is no take-over.
    guard.release().await;
    match b.claim_server(&web, "process 2 on beta").await.unwrap() {
        ServerClaim::Won { guard, took_over } => {
            assert_eq!(took_over, None, "a released lease is no take-over");
            guard.release().await;
        }
        held => panic!("a released lease is free: {held:?}"),
    }
    db.release().await;
}
