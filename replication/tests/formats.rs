//! Every source format, made with qemu-img from the same raw data, yields the same blocks and
//! hashes; regions without data are never read. No emulator needed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use rehost_replication::manifest::{BLOCK_SIZE, BlockHash, block_hash, zero_block_hash};
use rehost_replication::scan::{self, Decision, Reference, ScanConfig, ScanShared};
use rehost_replication::source::{DiskSource, QemuTools, SourceFormat};
use sha2::{Digest, Sha256};

const BLOCK: u64 = BLOCK_SIZE as u64;

struct Scanned {
    hashes: Vec<BlockHash>,
    sent: BTreeMap<u64, [u8; 32]>,
    read: u64,
}

fn scan_all(path: &Path) -> (SourceFormat, u64, Scanned) {
    let source = DiskSource::open(path, None, &QemuTools::default()).expect("open source");
    let (format, size, blocks) = (source.format(), source.size(), source.block_count());
    let mut s = scan::start(
        source,
        blocks,
        Arc::new(Reference::default()),
        ScanConfig {
            hash_threads: 2,
            queue: 8,
        },
        &ScanShared::new(16, 2),
    );
    let mut hashes = vec![[0u8; 16]; blocks as usize];
    let mut sent = BTreeMap::new();
    let mut read = 0;
    while let Some(b) = s.blocks.blocking_recv() {
        hashes[b.index as usize] = b.hash;
        read += u64::from(b.read);
        if let Some(up) = b.upload {
            assert_eq!(b.decision, Decision::Send);
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&up.data)), up.sha256);
            sent.insert(b.index, up.sha256);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let totals = rt.block_on(&mut s.done).unwrap().unwrap();
    assert_eq!(totals.blocks, blocks);
    (format, size, Scanned { hashes, sent, read })
}

#[test]
fn every_format_yields_identical_block_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    // 160 MiB less 4 KiB: random runs, written zeros, holes, a block with data only in its first
    // 4 KiB, and a short last block.
    let blocks = 320u64;
    let size = blocks * BLOCK - 4096;
    let mut layout = vec![];
    for i in 0..blocks / 20 {
        let base = i * 20;
        layout.push((base, 5, Fill::Random));
        layout.push((base + 5, 3, Fill::Zeros));
        layout.push((base + 12 + i % 3, 2, Fill::Random));
    }
    layout.push((blocks - 1, 1, Fill::Random));
    write_raw(&raw, size, &layout, 42);
    {
        // Data only at the start of block 9 (otherwise a hole).
        let f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        let mut small = vec![0u8; 4096];
        Rng::new(5).fill(&mut small);
        std::os::unix::fs::FileExt::write_all_at(&f, &small, 9 * BLOCK).unwrap();
    }

    // What the blocks are, straight from the file.
    let expected: Vec<BlockHash> = raw_blocks(&raw)
        .iter()
        .map(|b| b.as_ref().map_or_else(zero_block_hash, |d| block_hash(d)))
        .collect();
    let expected_sent: BTreeMap<u64, [u8; 32]> = raw_blocks(&raw)
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.as_ref().map(|d| (i as u64, Sha256::digest(d).into())))
        .collect();

    let (format, raw_size, raw_scan) = scan_all(&raw);
    assert_eq!(format, SourceFormat::Raw);
    assert_eq!(raw_size, size);
    assert_eq!(raw_scan.hashes, expected);
    assert_eq!(raw_scan.sent, expected_sent);
    // Holes of the sparse raw file are never read.
    let holes = raw_blocks(&raw).len() as u64 - raw_scan.read;
    assert!(
        holes >= 5 * (blocks / 20),
        "only {holes} blocks skipped as holes"
    );

    for (name, want) in [
        ("qcow2", SourceFormat::Qcow2),
        ("vmdk-sparse", SourceFormat::Vmdk),
        ("vmdk-stream", SourceFormat::Vmdk),
        ("vhd", SourceFormat::Vpc),
        ("vhdx", SourceFormat::Vhdx),
    ] {
        let image = convert(&raw, dir.path(), name);
        let (format, img_size, scanned) = scan_all(&image);
        assert_eq!(format, want, "{name}");
        assert_eq!(img_size, size, "{name}: virtual size");
        assert!(
            scanned.hashes == expected,
            "{name}: block hashes differ from the raw image"
        );
        assert_eq!(scanned.sent, expected_sent, "{name}: blocks to send differ");
        // qemu's allocation map keeps unallocated regions unread (its VHDX driver has no map).
        if name != "vhdx" {
            assert!(
                scanned.read < blocks,
                "{name}: read {} of {blocks} blocks",
                scanned.read
            );
        }
        println!("{name}: {} of {blocks} blocks read", scanned.read);
    }

    // A declared format wins over the extension: a qcow2 image named `.img` (as cloud images
    // often are) is read as qcow2 when declared so.
    let named_img = dir.path().join("cloud.img");
    std::fs::rename(convert(&raw, dir.path(), "qcow2"), &named_img).unwrap();
    let source = DiskSource::open(&named_img, Some(SourceFormat::Qcow2), &QemuTools::default())
        .expect("declared qcow2");
    assert_eq!(source.format(), SourceFormat::Qcow2);
    assert_eq!(source.size(), size);
}

#[test]
fn a_missing_or_broken_source_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        DiskSource::open(&dir.path().join("nope.raw"), None, &QemuTools::default()).unwrap_err();
    assert!(err.to_string().contains("nope.raw"), "{err}");
    let bad = dir.path().join("bad.qcow2");
    write_file(&bad, "not a qcow2 image");
    let err = DiskSource::open(&bad, None, &QemuTools::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.qcow2") && err.contains("qemu-img"),
        "{err}"
    );
}
