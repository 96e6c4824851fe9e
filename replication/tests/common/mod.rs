//! Helpers shared by the replication test binaries: SDK configuration pointed at the emulator
//! (directly or through the fault proxy), test images, and reading snapshots back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use rehost_replication::aws::{AwsOptions, configure_loader};
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_replication::{
    Architecture, BootMode, DiskFormat, DiskJob, LicenseType, ProgressMode, ReplicateOptions,
    Replicator, ServerJob, StateStore,
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
    Replicator::new(&sdk, StateStore::open(state).expect("state store"), opts)
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

/// A deterministic pseudo-random generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// What a region of a test image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Random,
    /// Zeros written out (allocated in a raw file).
    Zeros,
    /// Never written: a hole in a raw file.
    Hole,
}

/// Writes a raw image of `size` bytes: `layout` gives (start block, blocks, fill); the rest are
/// holes. Returns the image's bytes per block index for comparisons (None = all zero).
pub fn write_raw(path: &Path, size: u64, layout: &[(u64, u64, Fill)], seed: u64) {
    let file = std::fs::File::create(path).expect("create image");
    file.set_len(size).expect("size image");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; BLOCK_SIZE];
    for &(start, count, fill) in layout {
        for b in start..start + count {
            let off = b * BLOCK_SIZE as u64;
            if off >= size {
                break;
            }
            let len = (size - off).min(BLOCK_SIZE as u64) as usize;
            match fill {
                Fill::Hole => continue,
                Fill::Zeros => buf[..len].fill(0),
                Fill::Random => rng.fill(&mut buf[..len]),
            }
            std::os::unix::fs::FileExt::write_all_at(&file, &buf[..len], off).expect("write image");
        }
    }
    file.sync_all().ok();
}

/// Overwrites whole blocks of a raw image (zeros when `zero`, random otherwise).
pub fn change_blocks(path: &Path, blocks: &[u64], zero_block: Option<u64>, seed: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open image");
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; BLOCK_SIZE];
    for &b in blocks {
        if Some(b) == zero_block {
            buf.fill(0);
        } else {
            rng.fill(&mut buf);
        }
        std::os::unix::fs::FileExt::write_all_at(&file, &buf, b * BLOCK_SIZE as u64)
            .expect("write block");
    }
    file.sync_all().ok();
}

/// The blocks of a raw image, zero-padded; `None` for all-zero blocks.
pub fn raw_blocks(path: &Path) -> Vec<Option<Vec<u8>>> {
    let data = std::fs::read(path).expect("read image");
    data.chunks(BLOCK_SIZE)
        .map(|c| {
            let mut b = c.to_vec();
            b.resize(BLOCK_SIZE, 0);
            if b.iter().all(|&x| x == 0) {
                None
            } else {
                Some(b)
            }
        })
        .collect()
}

/// Converts a raw image with qemu-img; returns the new path.
pub fn convert(raw: &Path, dir: &Path, format: &str) -> PathBuf {
    let (ext, fmt, opts): (&str, &str, &[&str]) = match format {
        "qcow2" => ("qcow2", "qcow2", &[]),
        "vmdk-sparse" => ("vmdk", "vmdk", &["-o", "subformat=monolithicSparse"]),
        "vmdk-stream" => ("vmdk", "vmdk", &["-o", "subformat=streamOptimized"]),
        "vhd" => ("vhd", "vpc", &["-o", "subformat=dynamic,force_size=on"]),
        "vhdx" => ("vhdx", "vhdx", &[]),
        other => panic!("unknown format {other}"),
    };
    let out = dir.join(format!(
        "{}-{format}.{ext}",
        raw.file_stem().unwrap().to_string_lossy()
    ));
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", fmt])
        .args(opts)
        .arg(raw)
        .arg(&out)
        .status()
        .expect("qemu-img runs");
    assert!(status.success(), "qemu-img convert to {format} failed");
    out
}

pub const FORMATS: [&str; 5] = ["qcow2", "vmdk-sparse", "vmdk-stream", "vhd", "vhdx"];

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
