//! The contract for what ties a state to AWS: the account and region an application's state
//! is bound to, and the AMIs it recorded (all that retention may ever remove).

use std::collections::BTreeMap;

use rehost_replication::state::{AccountBinding, StateError};
use time::macros::datetime;

use super::*;

fn binding(account: &str, region: &str) -> AccountBinding {
    AccountBinding {
        account: account.into(),
        region: region.into(),
    }
}

pub async fn the_first_account_binding_wins_per_application(f: &dyn Fixture) {
    let s = f.open().await;
    let here = binding("111111111111", "us-east-1");
    assert_eq!(s.account_binding("shop").await.unwrap(), None);
    assert_eq!(s.bind_account("shop", &here).await.unwrap(), here);
    let elsewhere = binding("222222222222", "eu-west-1");
    assert_eq!(
        s.bind_account("shop", &elsewhere).await.unwrap(),
        here,
        "a second binding does not replace the first"
    );
    // Another handle (another process) sees the same binding; another application has its own.
    let t = f.open().await;
    assert_eq!(t.account_binding("shop").await.unwrap(), Some(here.clone()));
    assert_eq!(t.account_binding("crm").await.unwrap(), None);
    assert_eq!(t.bind_account("crm", &elsewhere).await.unwrap(), elsewhere);
    assert_eq!(s.account_binding("shop").await.unwrap(), Some(here));
}

pub async fn another_account_or_region_is_refused(f: &dyn Fixture) {
    let s = f.open().await;
    let here = binding("111111111111", "us-east-1");
    s.ensure_account("shop", &here).await.unwrap();
    s.ensure_account("shop", &here).await.unwrap();
    for other in [
        binding("222222222222", "us-east-1"),
        binding("111111111111", "eu-west-1"),
    ] {
        let err = s.ensure_account("shop", &other).await.unwrap_err();
        assert!(err.is_refusal(), "{err}");
        assert!(
            matches!(&err, StateError::OtherAccount { recorded, current, app, .. }
                if **recorded == here && **current == other && app == "shop"),
            "{err}"
        );
        let msg = err.to_string();
        for part in [
            "111111111111",
            "us-east-1",
            other.account.as_str(),
            other.region.as_str(),
        ] {
            assert!(msg.contains(part), "names {part}: {msg}");
        }
    }
    assert_eq!(
        s.account_binding("shop").await.unwrap(),
        Some(here),
        "a refusal records nothing"
    );
}

pub async fn recorded_amis_are_the_servers_available_ones_oldest_first(f: &dyn Fixture) {
    let s = f.open().await;
    let t0 = datetime!(2025-03-01 10:00 UTC);
    for (server, h) in [("web", 2), ("web", 0), ("web", 1), ("db", 3)] {
        let at = t0 + time::Duration::hours(h);
        let (run, _) = s.begin_run(&key(server), "g", at).await.unwrap();
        let mut image = ami(&format!("ami-{server}-{h}"), &run.run_id, at);
        image.snapshot_ids = vec![format!("snap-{server}-{h}")];
        s.complete_run(&key(server), &run.run_id, &image, &BTreeMap::new(), at)
            .await
            .unwrap();
    }
    let ids = |list: Vec<AmiRecord>| -> Vec<(String, Vec<String>)> {
        list.into_iter()
            .map(|a| (a.ami_id, a.snapshot_ids))
            .collect()
    };
    assert_eq!(
        ids(s.recorded_amis(&key("web")).await.unwrap()),
        [
            ("ami-web-0".to_string(), vec!["snap-web-0".to_string()]),
            ("ami-web-1".to_string(), vec!["snap-web-1".to_string()]),
            ("ami-web-2".to_string(), vec!["snap-web-2".to_string()]),
        ]
    );
    s.mark_ami_deregistered(&key("web"), "ami-web-1")
        .await
        .unwrap();
    let web: Vec<String> = ids(s.recorded_amis(&key("web")).await.unwrap())
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        web,
        ["ami-web-0", "ami-web-2"],
        "deregistered ones are gone"
    );
    assert!(
        s.recorded_amis(&ServerKey::new("crm", "web"))
            .await
            .unwrap()
            .is_empty(),
        "another application's server records nothing here"
    );
}
