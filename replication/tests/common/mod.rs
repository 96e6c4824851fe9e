//! Helpers shared by the replication test binaries: SDK configuration pointed at the emulator
//! (directly or through the fault proxy), test images (from the test kit), and reading
//! snapshots back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use rehost_replication::aws::{AwsOptions, configure_loader};
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_replication::{
    Architecture, BootMode, DiskFormat, DiskJob, LicenseType, ProgressMode, ReplicateOptions,
    Replicator, ServerJob, SqliteStore,
};

pub const MIB: u64 = 1 << 20;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "rehost_replication=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// An SDK configuration for `endpoint` with rehost's retry and timeout policy applied.
pub async fn sdk_config(endpoint: &str, opts: &AwsOptions) -> SdkConfig {
    let creds =
        aws_sdk_ebs::config::Credentials::new("testing", "testing", None, None, "rehost-tests");
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(creds);
    configure_loader(loader, opts).load().await
}

/// Short timeouts and backoffs so fault tests finish quickly.
pub fn fast_aws_options() -> AwsOptions {
    AwsOptions {
        max_attempts: Some(8),
        connect_timeout: Some(Duration::from_secs(2)),
        read_timeout: Some(Duration::from_secs(5)),
        attempt_timeout: Some(Duration::from_secs(5)),
        operation_timeout: Some(Duration::from_secs(60)),
        max_backoff: Some(Duration::from_millis(500)),
        ..Default::default()
    }
}

pub fn test_options() -> ReplicateOptions {
    ReplicateOptions {
        upload_concurrency: 8,
        hash_threads: 2,
        progress: ProgressMode::Quiet,
        poll_interval: Duration::from_millis(100),
        wait_timeout: Duration::from_secs(60),
        ..Default::default()
    }
}

pub async fn replicator(endpoint: &str, state: &Path, opts: ReplicateOptions) -> Replicator {
    let sdk = sdk_config(endpoint, &fast_aws_options()).await;
    let store = SqliteStore::open(state).await.expect("state store");
    Replicator::new(&sdk, std::sync::Arc::new(store), opts)
}

pub fn job(app: &str, server: &str, disks: &[(&str, &Path)]) -> ServerJob {
    ServerJob {
        app: app.into(),
        server: server.into(),
        group: "web".into(),
        disks: disks
            .iter()
            .map(|(n, p)| DiskJob {
                name: n.to_string(),
                source: p.to_path_buf(),
                format: DiskFormat::implied_by(p)
                    .expect("test images carry their format's extension"),
            })
            .collect(),
        architecture: Architecture::X86_64,
        boot_mode: Some(BootMode::Uefi),
        ena_support: true,
        license_type: LicenseType::Byol,
        encryption: None,
        keep_recent_amis: 0,
        tags: vec![("owner".into(), "tests".into())],
    }
}

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use rehost_testkit::images::{
    FORMATS, Fill, Rng, change_blocks, convert, raw_blocks, write_raw,
};

// The test kit lays images out in EBS blocks; so does the engine.
const _: () = assert!(rehost_testkit::images::BLOCK == BLOCK_SIZE as u64);

/// Every block of a snapshot, read back with ListSnapshotBlocks + GetSnapshotBlock.
pub async fn read_snapshot(ebs: &aws_sdk_ebs::Client, snapshot_id: &str) -> BTreeMap<u64, Vec<u8>> {
    let mut tokens = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = ebs
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .set_next_token(next.clone())
            .send()
            .await
            .expect("ListSnapshotBlocks");
        for b in out.blocks() {
            tokens.push((
                b.block_index().unwrap() as u64,
                b.block_token().unwrap().to_string(),
            ));
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let mut blocks = BTreeMap::new();
    for (index, token) in tokens {
        let out = ebs
            .get_snapshot_block()
            .snapshot_id(snapshot_id)
            .block_index(index as i32)
            .block_token(token)
            .send()
            .await
            .expect("GetSnapshotBlock");
        let data = out
            .block_data
            .collect()
            .await
            .expect("block body")
            .into_bytes()
            .to_vec();
        blocks.insert(index, data);
    }
    blocks
}

/// Asserts that a snapshot holds exactly the non-zero blocks of `expected` (seed snapshots:
/// zero blocks are not written).
pub fn assert_seed_matches(
    blocks: &BTreeMap<u64, Vec<u8>>,
    expected: &[Option<Vec<u8>>],
    what: &str,
) {
    for (i, want) in expected.iter().enumerate() {
        match (want, blocks.get(&(i as u64))) {
            (Some(w), Some(got)) => assert!(got == w, "{what}: block {i} differs"),
            (Some(_), None) => panic!("{what}: block {i} missing"),
            (None, Some(got)) => assert!(
                got.iter().all(|&b| b == 0),
                "{what}: block {i} should be zeros"
            ),
            (None, None) => {}
        }
    }
    assert!(
        blocks.keys().all(|&i| (i as usize) < expected.len()),
        "{what}: block beyond the disk"
    );
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write file");
}
