//! Partition tables: MBR (primary, extended and logical partitions), GPT (header and entry
//! CRCs, the backup header when the primary is damaged, 512- and 4096-byte sectors) behind its
//! protective MBR. Pure over `ReadAt`; bounded in entries and in the extended-partition chain.

use std::collections::BTreeSet;

use super::io::{ReadAt, le_u16, le_u32, le_u64};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Mbr,
    Gpt,
    None,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
            TableKind::None => "none",
        }
    }
}

/// A partition's type as its table records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    Mbr(u8),
    /// The type GUID in its on-disk (mixed-endian) byte order.
    Gpt([u8; 16]),
}

pub const GUID_EFI_SYSTEM: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
pub const GUID_BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
pub const GUID_LDM_METADATA: &str = "5808c8aa-7e8f-42e0-85d2-e1e90434cfb3";
pub const GUID_LDM_DATA: &str = "af9b60a0-1431-4f62-bc68-3311714a69ad";

const GPT_NAMES: &[(&str, &str)] = &[
    (GUID_EFI_SYSTEM, "efi-system"),
    (GUID_BIOS_BOOT, "bios-boot"),
    ("0fc63daf-8483-4772-8e79-3d69d8477de4", "linux-filesystem"),
    ("e6d6d379-f507-44c2-a23c-238f2a3df928", "linux-lvm"),
    ("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "linux-swap"),
    ("4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "linux-root-x86-64"),
    ("b921b045-1df0-41c3-af44-4c6f280d3fae", "linux-root-arm64"),
    (
        "bc13c2ff-59e6-4262-a352-b275fd6f7172",
        "linux-extended-boot",
    ),
    ("a19d880f-05fc-4d3b-a006-743f0f84911e", "linux-raid"),
    (
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
        "microsoft-basic-data",
    ),
    ("e3c9e316-0b5c-4db8-817d-f92df00215ae", "microsoft-reserved"),
    ("de94bba4-06d1-4d40-a16a-bfd50179d6ac", "windows-recovery"),
    (GUID_LDM_METADATA, "windows-ldm-metadata"),
    (GUID_LDM_DATA, "windows-ldm-data"),
];

impl PartType {
    /// The GUID as text (lowercase, dashed), for GPT types.
    pub fn guid(&self) -> Option<String> {
        let PartType::Gpt(g) = self else { return None };
        Some(format_guid(g))
    }

    /// A short, stable name: a well-known type's name, else `0xNN` or the GUID.
    pub fn name(&self) -> String {
        match self {
            PartType::Mbr(t) => match t {
                0x01 | 0x04 | 0x06 | 0x0B | 0x0C | 0x0E => "fat".into(),
                0x05 | 0x0F | 0x85 => "extended".into(),
                0x07 => "ntfs".into(),
                0x27 => "windows-recovery".into(),
                0x42 => "windows-ldm".into(),
                0x82 => "linux-swap".into(),
                0x83 => "linux".into(),
                0x8E => "linux-lvm".into(),
                0xEE => "gpt-protective".into(),
                0xEF => "efi-system".into(),
                0xFD => "linux-raid".into(),
                other => format!("0x{other:02x}"),
            },
            PartType::Gpt(_) => {
                let g = self.guid().unwrap_or_default();
                GPT_NAMES
                    .iter()
                    .find(|(id, _)| *id == g)
                    .map_or(g, |(_, n)| n.to_string())
            }
        }
    }

    pub fn is_efi_system(&self) -> bool {
        match self {
            PartType::Mbr(t) => *t == 0xEF,
            PartType::Gpt(_) => self.guid().as_deref() == Some(GUID_EFI_SYSTEM),
        }
    }

    pub fn is_bios_boot(&self) -> bool {
        self.guid().as_deref() == Some(GUID_BIOS_BOOT)
    }

    /// A Windows dynamic disk (Logical Disk Manager) partition.
    pub fn is_ldm(&self) -> bool {
        match self {
            PartType::Mbr(t) => *t == 0x42,
            PartType::Gpt(_) => matches!(
                self.guid().as_deref(),
                Some(GUID_LDM_METADATA) | Some(GUID_LDM_DATA)
            ),
        }
    }
}

/// GUIDs store their first three fields little-endian.
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as Linux numbers them (MBR logical partitions from 5).
    pub index: u32,
    pub kind: PartType,
    /// Bytes from the start of the disk.
    pub start: u64,
    pub size: u64,
    pub active: bool,
    /// The GPT unique partition GUID (PARTUUID), or the MBR disk signature form `xxxxxxxx-NN`.
    pub part_uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    pub partitions: Vec<Partition>,
    /// The first 440 bytes of sector 0 hold boot code (not all zeros).
    pub boot_code: bool,
    /// Problems met while reading (a CRC mismatch, a partition past the end...).
    pub problems: Vec<String>,
}

fn sector(disk: &dyn ReadAt, lba: u64, size: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    disk.read_exact_at(lba.checked_mul(size)?, &mut buf).ok()?;
    Some(buf)
}

/// A boot sector of a filesystem rather than a partition table (an unpartitioned disk).
fn looks_like_volume_boot_record(s0: &[u8]) -> bool {
    matches!(
        &s0[3..11],
        b"NTFS    " | b"-FVE-FS-" | b"EXFAT   " | b"ReFS\0\0\0\0"
    ) || super::fat::FatGeometry::parse(s0, u64::MAX).is_some()
}

/// Reads the partition table of a disk; a disk without one is `TableKind::None`.
pub fn read_table(disk: &dyn ReadAt, max_partitions: usize) -> std::io::Result<PartitionTable> {
    let mut s0 = vec![0u8; 512];
    disk.read_exact_at(0, &mut s0)?;
    let boot_code = s0[..440].iter().any(|&b| b != 0);
    let none = |problems| PartitionTable {
        kind: TableKind::None,
        partitions: Vec::new(),
        boot_code,
        problems,
    };
    if le_u16(&s0, 510) != 0xAA55 || looks_like_volume_boot_record(&s0) {
        return Ok(none(Vec::new()));
    }
    let entries: Vec<&[u8]> = (0..4).map(|i| &s0[446 + i * 16..462 + i * 16]).collect();
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        return Ok(none(vec![
            "sector 0 ends in 55AA but holds no valid MBR".into(),
        ]));
    }
    if entries.iter().any(|e| e[4] == 0xEE) {
        for sector_size in [512u64, 4096] {
            if let Some(t) = read_gpt(disk, sector_size, max_partitions, boot_code) {
                return Ok(t);
            }
        }
        return Ok(none(vec![
            "protective MBR but no readable GPT (primary and backup headers damaged)".into(),
        ]));
    }
    Ok(read_mbr(disk, &s0, &entries, max_partitions, boot_code))
}

fn read_mbr(
    disk: &dyn ReadAt,
    s0: &[u8],
    entries: &[&[u8]],
    max_partitions: usize,
    boot_code: bool,
) -> PartitionTable {
    let signature = le_u32(s0, 440);
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    let mut extended = None;
    for (i, e) in entries.iter().enumerate() {
        let kind = e[4];
        let (start, len) = (u64::from(le_u32(e, 8)), u64::from(le_u32(e, 12)));
        if kind == 0 || len == 0 {
            continue;
        }
        let p = Partition {
            index: i as u32 + 1,
            kind: PartType::Mbr(kind),
            start: start * 512,
            size: len * 512,
            active: e[0] == 0x80,
            part_uuid: Some(format!("{signature:08x}-{:02x}", i + 1)),
        };
        if matches!(kind, 0x05 | 0x0F | 0x85) && extended.is_none() {
            extended = Some(start);
        }
        parts.push(p);
    }
    if let Some(base) = extended {
        read_logical(
            disk,
            base,
            signature,
            max_partitions,
            &mut parts,
            &mut problems,
        );
    }
    check_bounds(disk.size(), &mut parts, &mut problems);
    PartitionTable {
        kind: TableKind::Mbr,
        partitions: parts,
        boot_code,
        problems,
    }
}

/// Follows the chain of extended boot records; loops and overlong chains end it with a problem.
fn read_logical(
    disk: &dyn ReadAt,
    base: u64,
    signature: u32,
    max_partitions: usize,
    parts: &mut Vec<Partition>,
    problems: &mut Vec<String>,
) {
    let mut seen = BTreeSet::new();
    let mut ebr = base;
    let mut index = 5;
    loop {
        if !seen.insert(ebr) {
            problems.push("extended partition chain loops".into());
            return;
        }
        if parts.len() >= max_partitions {
            problems.push(format!(
                "more than {max_partitions} partitions; the rest ignored"
            ));
            return;
        }
        let Some(s) = sector(disk, ebr, 512) else {
            problems.push(format!("extended boot record at sector {ebr} unreadable"));
            return;
        };
        if le_u16(&s, 510) != 0xAA55 {
            problems.push(format!(
                "extended boot record at sector {ebr} has no signature"
            ));
            return;
        }
        let (e1, e2) = (&s[446..462], &s[462..478]);
        let (start, len) = (u64::from(le_u32(e1, 8)), u64::from(le_u32(e1, 12)));
        if e1[4] != 0 && len != 0 {
            parts.push(Partition {
                index,
                kind: PartType::Mbr(e1[4]),
                start: (ebr + start) * 512,
                size: len * 512,
                active: e1[0] == 0x80,
                part_uuid: Some(format!("{signature:08x}-{index:02x}")),
            });
            index += 1;
        }
        let next = u64::from(le_u32(e2, 8));
        if e2[4] == 0 || next == 0 {
            return;
        }
        ebr = base + next;
    }
}

fn check_bounds(disk_size: u64, parts: &mut [Partition], problems: &mut Vec<String>) {
    for p in parts.iter() {
        if p.start.saturating_add(p.size) > disk_size {
            problems.push(format!(
                "partition {} ends past the end of the disk (truncated image?)",
                p.index
            ));
        }
    }
}

fn read_gpt(
    disk: &dyn ReadAt,
    sector_size: u64,
    max_partitions: usize,
    boot_code: bool,
) -> Option<PartitionTable> {
    let mut problems = Vec::new();
    let last_lba = (disk.size() / sector_size).checked_sub(1)?;
    let primary = sector(disk, 1, sector_size).and_then(|h| gpt_header(&h, 1));
    let header = match primary {
        Some(h) => h,
        None => {
            let backup =
                sector(disk, last_lba, sector_size).and_then(|h| gpt_header(&h, last_lba))?;
            problems.push("primary GPT header damaged; the backup header was used".into());
            backup
        }
    };
    let (entries_lba, count, entry_size, entries_crc) = header;
    let total = u64::from(count) * u64::from(entry_size);
    if total > (1 << 20) {
        problems.push(format!(
            "GPT claims {count} entries of {entry_size} bytes; not read"
        ));
        return Some(PartitionTable {
            kind: TableKind::Gpt,
            partitions: Vec::new(),
            boot_code,
            problems,
        });
    }
    let mut array = vec![0u8; total as usize];
    disk.read_exact_at(entries_lba.checked_mul(sector_size)?, &mut array)
        .ok()?;
    if crc32fast::hash(&array) != entries_crc {
        problems.push("GPT partition entry array fails its CRC".into());
    }
    let mut parts = Vec::new();
    for (i, e) in array.chunks_exact(entry_size as usize).enumerate() {
        let mut kind = [0u8; 16];
        kind.copy_from_slice(&e[..16]);
        if kind == [0; 16] {
            continue;
        }
        if parts.len() >= max_partitions {
            problems.push(format!(
                "more than {max_partitions} partitions; the rest ignored"
            ));
            break;
        }
        let (first, last) = (le_u64(e, 32), le_u64(e, 40));
        if last < first {
            problems.push(format!("partition {} ends before it starts", i + 1));
            continue;
        }
        let mut unique = [0u8; 16];
        unique.copy_from_slice(&e[16..32]);
        let (Some(start), Some(size)) = (
            first.checked_mul(sector_size),
            (last - first + 1).checked_mul(sector_size),
        ) else {
            problems.push(format!("partition {} has impossible bounds", i + 1));
            continue;
        };
        parts.push(Partition {
            index: i as u32 + 1,
            kind: PartType::Gpt(kind),
            start,
            size,
            active: false,
            part_uuid: Some(format_guid(&unique)),
        });
    }
    check_bounds(disk.size(), &mut parts, &mut problems);
    Some(PartitionTable {
        kind: TableKind::Gpt,
        partitions: parts,
        boot_code,
        problems,
    })
}

/// (entries LBA, entry count, entry size, entries CRC) of a valid GPT header at `lba`.
fn gpt_header(h: &[u8], lba: u64) -> Option<(u64, u32, u32, u32)> {
    if &h[..8] != b"EFI PART" {
        return None;
    }
    let size = le_u32(h, 12) as usize;
    if !(92..=h.len()).contains(&size) || le_u64(h, 24) != lba {
        return None;
    }
    let mut copy = h[..size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le_u32(h, 16) {
        return None;
    }
    let entry_size = le_u32(h, 84);
    if entry_size < 128 || !entry_size.is_multiple_of(8) || entry_size > 4096 {
        return None;
    }
    Some((le_u64(h, 72), le_u32(h, 80), entry_size, le_u32(h, 88)))
}
