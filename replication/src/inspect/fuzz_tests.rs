//! Hostile input: the on-disk parsers get arbitrary bytes and mutated valid structures (real
//! ones, made by the test kit's tools and writers). Whatever they get, they return (an answer
//! or an error), never panic, and stay within their bounds.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::fat::FatFs;
use super::guestfs::GuestFs;
use super::hive::Hive;
use super::io::FileRead;
use super::limits::Limits;
use super::{bootcfg, detect, initramfs, lvm, partition};

use rehost_testkit::guest::{hive as khive, images, lvm as klvm, tools};

struct MemFile(Vec<u8>);

impl FileRead for MemFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        super::io::ReadAt::read_exact_at(&self.0, offset, buf)
    }
}

/// One directory for every fixture (made once: `scratch_dir` empties what it returns, and the
/// fixtures are built by tests running in parallel).
fn scratch() -> &'static std::path::PathBuf {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| rehost_testkit::scratch_dir("inspect-fuzz", "images"))
}

/// A 2 MiB disk with a GPT (made by sfdisk) and one with an MBR and a logical partition.
fn tables() -> &'static (Vec<u8>, Vec<u8>) {
    static T: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let d = scratch();
        let gpt = d.join("gpt.raw");
        tools::sparse(&gpt, 2 * tools::MIB);
        tools::sfdisk(&gpt, "label: gpt\nstart=2048, size=1024, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=3072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n");
        let mbr = d.join("mbr.raw");
        tools::sparse(&mbr, 2 * tools::MIB);
        tools::sfdisk(&mbr, "label: dos\nstart=2048, size=512, type=83, bootable\nstart=2560, type=5\nstart=2600, size=100, type=83\nstart=2800, size=100, type=82\n");
        (std::fs::read(gpt).unwrap(), std::fs::read(mbr).unwrap())
    })
}

fn fat() -> &'static Vec<u8> {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| {
        let p = scratch().join("esp.fat");
        tools::mkfs_fat(
            &p,
            tools::MIB,
            0xABCD_0001,
            &[
                ("/EFI/BOOT/BOOTX64.EFI", tools::pe_stub(0x8664)),
                (
                    "/EFI/debian/grub.cfg",
                    b"configfile $prefix/grub.cfg\n".repeat(200),
                ),
            ],
        );
        std::fs::read(p).unwrap()
    })
}

fn initrd() -> &'static Vec<u8> {
    static I: OnceLock<Vec<u8>> = OnceLock::new();
    I.get_or_init(|| {
        let d = scratch().join("initrd");
        tools::tree(
            &d,
            &[
                (
                    "usr/lib/modules/6.1/kernel/drivers/nvme/host/nvme.ko",
                    vec![1; 3000],
                ),
                ("init", b"#!/bin/sh\n".to_vec()),
            ],
        );
        let mut out = tools::cpio(&d);
        out.extend(tools::compress("gzip", &tools::cpio(&d)));
        out
    })
}

fn pv() -> Vec<u8> {
    let mut h = klvm::pv_header(
        64 * tools::MIB,
        "vg0",
        4 * tools::MIB,
        "PvUuid0000aaaabbbbccccddddeeeeff",
        &[klvm::LvSpec {
            name: "root",
            segments: vec![(0, 2, 3), (2, 1, 0)],
        }],
    );
    h.truncate(8192);
    h
}

fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(i, v) in edits {
        if !b.is_empty() {
            let n = b.len();
            b[i % n] = v;
        }
    }
    b
}

fn edits(max: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((0usize..max, any::<u8>()), 1..16)
}

fn exercise_fat(bytes: Vec<u8>) {
    if let Ok(mut fs) = FatFs::open(bytes, 1000) {
        let _ = fs.exists("/EFI/BOOT/BOOTX64.EFI");
        let _ = fs.list_dir("/EFI", 100);
        let _ = fs.read_file("/EFI/debian/grub.cfg", 1 << 20);
    }
}

fn exercise_hive(bytes: Vec<u8>) {
    let mut f = MemFile(bytes);
    if let Ok(mut h) = Hive::open(&mut f, 10_000) {
        let root = h.root();
        if let Ok(Some(k)) = h.path(root, "ControlSet001\\Services\\AWSNVMe") {
            let _ = h.value(k, "Start");
            let _ = h.value(k, "ImagePath");
        }
        let _ = h.subkey(root, "Select");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn partition_tables_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..8192)) {
        let _ = partition::read_table(&bytes, 128);
        let _ = detect::detect(&bytes);
    }

    #[test]
    fn mutated_gpt_and_mbr_never_panic(e in edits(4096), mbr in any::<bool>()) {
        let (g, m) = tables();
        let base = if mbr { m } else { g };
        let bytes = mutate(&base[..], &e);
        if let Ok(t) = partition::read_table(&bytes, 128) {
            prop_assert!(t.partitions.len() <= 128);
        }
    }

    #[test]
    fn mutated_lvm_never_panics(e in edits(8192)) {
        let bytes = mutate(&pv(), &e);
        if let Some(label) = lvm::read_label(&bytes)
            && let Ok(text) = lvm::read_metadata(&bytes, &label, 1 << 20)
            && let Ok(items) = lvm::parse(&text, 32)
        {
            let _ = lvm::logical_volumes(&items);
        }
    }

    #[test]
    fn lvm_text_never_panics(text in "[a-z0-9_ =\\[\\]{}\",#\n]{0,400}") {
        if let Ok(items) = lvm::parse(&text, 8) {
            let _ = lvm::logical_volumes(&items);
        }
    }

    #[test]
    fn mutated_fat_never_panics(e in edits(64 * 1024)) {
        exercise_fat(mutate(fat(), &e));
    }

    #[test]
    fn arbitrary_fat_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 512..4096)) {
        // A plausible boot sector signature so the parser goes past the first check.
        let n = bytes.len();
        bytes[510 % n] = 0x55;
        bytes[511 % n] = 0xAA;
        exercise_fat(bytes);
    }

    #[test]
    fn mutated_hives_never_panic(e in edits(16 * 1024)) {
        let base = images::system_hive(&images::WindowsSpec { aws_nvme: true, ena: true, ..Default::default() });
        exercise_hive(mutate(&base, &e));
    }

    #[test]
    fn arbitrary_hives_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 4104..12288)) {
        bytes[..4].copy_from_slice(b"regf");
        bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
        bytes[4096..4100].copy_from_slice(b"hbin");
        exercise_hive(bytes);
    }

    #[test]
    fn mutated_initramfs_never_panics(e in edits(2048)) {
        let bytes = mutate(initrd(), &e);
        let limits = Limits { max_initramfs_bytes: 1 << 20, ..Limits::default() };
        let _ = initramfs::scan(&bytes[..], &["nvme", "xen_blkfront"], &limits);
    }

    #[test]
    fn arbitrary_initramfs_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..4096), magic in 0usize..5) {
        let prefixes: [&[u8]; 5] = [b"070701", &[0x1F, 0x8B], &[0xFD, b'7', b'z', b'X', b'Z', 0], &[0x28, 0xB5, 0x2F, 0xFD], b""];
        let p = prefixes[magic];
        if bytes.len() >= p.len() {
            bytes[..p.len()].copy_from_slice(p);
        }
        let limits = Limits { max_initramfs_bytes: 1 << 20, ..Limits::default() };
        let _ = initramfs::scan(&bytes[..], &["nvme"], &limits);
    }

    #[test]
    fn boot_configs_never_panic(text in "[a-z0-9 '\"{}=>$_/.\n-]{0,400}", saved in "[a-z0-9>]{0,10}") {
        let _ = bootcfg::grub2_default(&text, Some(&saved), 8);
        let _ = bootcfg::grub_legacy_default(&text);
        let _ = bootcfg::bls_entry(&text, Some("root=/dev/sda1"));
    }
}

#[test]
fn the_valid_structures_parse() {
    let (g, m) = tables();
    let gpt = partition::read_table(g, 128).unwrap();
    assert_eq!(
        (gpt.kind, gpt.partitions.len()),
        (partition::TableKind::Gpt, 2)
    );
    assert!(gpt.problems.is_empty(), "{:?}", gpt.problems);
    let mbr = partition::read_table(m, 128).unwrap();
    let idx: Vec<u32> = mbr.partitions.iter().map(|p| p.index).collect();
    assert_eq!(idx, [1, 2, 5, 6], "primary, extended, two logical");
    let pv = pv();
    let label = lvm::read_label(&pv).unwrap();
    let items = lvm::parse(&lvm::read_metadata(&pv, &label, 1 << 20).unwrap(), 32).unwrap();
    let lvs = lvm::logical_volumes(&items);
    let map = lvs[0].map.as_ref().unwrap();
    assert_eq!(
        (map.len(), map[0].pv_offset, map[1].lv_offset),
        (2, (1 + 12) * tools::MIB, 8 * tools::MIB)
    );
    let mut fs = FatFs::open(fat().clone(), 1000).unwrap();
    assert_eq!(
        fs.read_file("/efi/debian/GRUB.CFG", 1 << 20)
            .unwrap()
            .unwrap()
            .len(),
        28 * 200
    );
    let scan = initramfs::scan(&initrd()[..], &["nvme"], &Limits::default()).unwrap();
    assert!(scan.modules.contains("nvme"));
    let mut f = MemFile(khive::write_hive(&khive::RegKey::new("ROOT")));
    assert!(Hive::open(&mut f, 100).is_ok());
}
