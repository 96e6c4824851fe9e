//! The S3 requests one replication run makes against the S3 state, counted on the emulator:
//! the figures the worker simulation (`benches/workers_sim.rs`) charges per run. When the
//! backend's request pattern changes, this test fails naming the new counts: bring
//! `benches/workers_sim/run_cost.rs` and the README's simulation figures up to date. The run's
//! hold of its server lease (every replication on an S3 state holds one) is counted apart: the
//! simulation charges claims and releases in their own protocol steps (4 and 6).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use rehost_replication::state::s3::{BucketEncryption, S3Options, S3Store};
use rehost_replication::{Replicator, ReportStatus};
use rehost_testkit::Moto;
use rehost_testkit::proxy::{Action, Proxy, Request};

#[path = "../benches/workers_sim/run_cost.rs"]
mod run_cost;
use run_cost::RunCost;

/// The kind an S3 request is billed as, or `None` for a request that is not to the bucket.
fn kind(r: &Request, bucket: &str) -> Option<&'static str> {
    let path = r.path.as_str();
    let in_bucket = path == format!("/{bucket}")
        || path.starts_with(&format!("/{bucket}/"))
        || path.starts_with(&format!("/{bucket}?"));
    if !in_bucket {
        return None;
    }
    let query = path.split_once('?').map_or("", |(_, q)| q);
    Some(match r.method.as_str() {
        "GET" if query.split('&').any(|p| p == "list-type=2") => "LIST",
        "GET" | "HEAD" => "GET",
        "PUT" => "PUT",
        "POST" if query.split('&').any(|p| p == "delete" || p == "delete=") => "DELETE",
        "DELETE" => "DELETE",
        _ => "OTHER",
    })
}

fn cost(counts: &BTreeMap<&'static str, u32>) -> RunCost {
    let other = counts.get("OTHER").copied().unwrap_or(0);
    assert_eq!(other, 0, "S3 requests of a kind not priced: {counts:?}");
    RunCost {
        get: counts.get("GET").copied().unwrap_or(0),
        put: counts.get("PUT").copied().unwrap_or(0),
        list: counts.get("LIST").copied().unwrap_or(0),
        delete: counts.get("DELETE").copied().unwrap_or(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_and_an_increment_cost_what_the_worker_simulation_charges() {
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    let bucket = format!("rehost-run-cost-{:012x}", fastrand::u64(..) >> 16);
    let sdk = sdk_config(&proxy.endpoint(), &fast_aws_options()).await;
    S3Store::init(&sdk, &bucket, "team", BucketEncryption::S3Managed)
        .await
        .expect("init the S3 state");
    let store = Arc::new(
        S3Store::open(&sdk, &bucket, "team", S3Options::default())
            .await
            .expect("open the S3 state"),
    );
    let counts: Arc<Mutex<BTreeMap<&'static str, u32>>> = Arc::default();
    let lease_counts: Arc<Mutex<BTreeMap<&'static str, u32>>> = Arc::default();
    let (seen, seen_lease) = (Arc::clone(&counts), Arc::clone(&lease_counts));
    let b = bucket.clone();
    proxy.set_policy(move |r| {
        if let Some(k) = kind(r, &b) {
            let to = if r.path.contains("/leases/") {
                &seen_lease
            } else {
                &seen
            };
            *to.lock().unwrap().entry(k).or_default() += 1;
        }
        Action::Forward
    });

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    let block = rehost_replication::manifest::BLOCK_SIZE as u64;
    // One block of data: the seed sends one block, so its journal is one segment.
    write_raw(&raw, 4 * block, &[(1, 1, Fill::Random)], 7);
    let rep = Replicator::new(&sdk, store.clone(), test_options());
    let job = job("costs", "small", &[("disk0", &raw)]);

    let seed = rep.replicate(&job).await;
    assert_eq!(seed.status, ReportStatus::Completed, "{:?}", seed.error);
    assert_eq!(seed.snapshots[0].blocks_uploaded, 1);
    let seed_cost = cost(&std::mem::take(&mut *counts.lock().unwrap()));
    let seed_lease = cost(&std::mem::take(&mut *lease_counts.lock().unwrap()));

    change_blocks(&raw, &[2], None, 8);
    let inc = rep.replicate(&job).await;
    assert_eq!(inc.status, ReportStatus::Completed, "{:?}", inc.error);
    assert_eq!(inc.snapshots[0].blocks_uploaded, 1);
    let inc_cost = cost(&std::mem::take(&mut *counts.lock().unwrap()));
    let inc_lease = cost(&std::mem::take(&mut *lease_counts.lock().unwrap()));

    println!("seed: {seed_cost:?}\nincrement: {inc_cost:?}");
    assert_eq!(
        (seed_cost, inc_cost),
        (run_cost::SEED, run_cost::INCREMENT),
        "the S3 requests of a run changed: update benches/workers_sim/run_cost.rs and the README"
    );
    // The lease a run holds: read, created (claim, step 4), given back (release, step 6).
    let held = RunCost {
        get: 1,
        put: 2,
        list: 0,
        delete: 0,
    };
    assert_eq!(
        (seed_lease, inc_lease),
        (held, held),
        "a run's lease requests changed: the simulation's steps 4 and 6 charge a claim and a release"
    );
}
