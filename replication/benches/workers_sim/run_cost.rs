//! What one replication run costs in S3 requests against the S3 state, as measured on the real
//! backend. Shared by the simulation (`benches/workers_sim.rs`) and the test that measures it
//! (`tests/s3_requests_per_run.rs`), so a change of the backend's request pattern fails that
//! test until these figures (and the README's simulation table) are brought up to date.
//!
//! How it was measured: `Replicator::replicate` of a one-disk server (4 blocks of 512 KiB, one
//! of them holding data) with an `S3Store` state on moto, every request passing through the
//! test kit's proxy, whose policy hook counts the S3 requests by kind (method, and for a GET
//! whether it is a ListObjectsV2); the store's opening (bucket checks) is not counted, nor are
//! EBS and EC2 calls (StartSnapshot, PutSnapshotBlock, CompleteSnapshot, RegisterImage...):
//! they are not S3 requests. The seed sends one block, the increment one changed block, so
//! each writes exactly one journal segment (the recorder writes its first batch at once, and
//! the flush before completion finds nothing left); that segment is included below.
//!
//! In the simulation a run's other journal segments are added on top: the recorder writes at
//! most one a second while blocks are accepted (see `workers_sim.rs`, `JOURNAL_SHARE`).

/// S3 requests by kind. DELETE counts DeleteObjects calls (S3 does not charge for deletes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunCost {
    pub get: u32,
    pub put: u32,
    pub list: u32,
    pub delete: u32,
}

/// One seed of the small server (no previous snapshot), journal segment included.
pub const SEED: RunCost = RunCost {
    get: 9,
    put: 11,
    list: 3,
    delete: 1,
};

/// One increment of the same server (one block changed), journal segment included.
pub const INCREMENT: RunCost = RunCost {
    get: 10,
    put: 11,
    list: 3,
    delete: 1,
};
