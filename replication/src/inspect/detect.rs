//! What a volume holds, from on-disk signatures only.

use super::io::{ReadAt, le_u16, le_u32};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Ext2,
    Ext3,
    Ext4,
    Fat,
    Ntfs,
    Xfs,
    Btrfs,
    BitLocker,
    Lvm2,
    Swap,
    Luks,
    Refs,
    ExFat,
    LinuxRaid,
}

impl FsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Fat => "vfat",
            FsKind::Ntfs => "ntfs",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::BitLocker => "bitlocker",
            FsKind::Lvm2 => "lvm2",
            FsKind::Swap => "swap",
            FsKind::Luks => "luks",
            FsKind::Refs => "refs",
            FsKind::ExFat => "exfat",
            FsKind::LinuxRaid => "linux-raid",
        }
    }

    /// Why rehost cannot look inside, for kinds it has no reader for (`None` when it can, or
    /// when there is nothing to read).
    pub fn unreadable_reason(self) -> Option<&'static str> {
        Some(match self {
            FsKind::Xfs => "XFS, which rehost cannot read yet",
            FsKind::Btrfs => "btrfs, which rehost cannot read yet",
            FsKind::BitLocker => "a BitLocker-encrypted volume",
            FsKind::Luks => "a LUKS-encrypted volume",
            FsKind::Refs => "ReFS, which rehost cannot read",
            FsKind::ExFat => "exFAT, which rehost cannot read",
            FsKind::LinuxRaid => "a Linux software RAID member, which rehost cannot assemble",
            _ => return None,
        })
    }
}

fn read(vol: &dyn ReadAt, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; len];
    vol.read_exact_at(offset, &mut b).ok()?;
    Some(b)
}

/// The filesystem (or container) a volume holds, `None` when no signature matches.
pub fn detect(vol: &dyn ReadAt) -> Option<FsKind> {
    let head = read(vol, 0, 4096.min(vol.size() as usize))?;
    if head.len() >= 512 {
        match &head[3..11] {
            b"NTFS    " => return Some(FsKind::Ntfs),
            b"-FVE-FS-" => return Some(FsKind::BitLocker),
            b"EXFAT   " => return Some(FsKind::ExFat),
            b"ReFS\0\0\0\0" => return Some(FsKind::Refs),
            _ => {}
        }
    }
    if head.starts_with(b"XFSB") {
        return Some(FsKind::Xfs);
    }
    if head.starts_with(b"LUKS\xba\xbe") {
        return Some(FsKind::Luks);
    }
    for s in 0..4usize {
        if head.len() >= s * 512 + 32
            && &head[s * 512..s * 512 + 8] == b"LABELONE"
            && &head[s * 512 + 24..s * 512 + 32] == b"LVM2 001"
        {
            return Some(FsKind::Lvm2);
        }
    }
    if head.len() >= 512 && super::fat::FatGeometry::parse(&head[..512], vol.size()).is_some() {
        return Some(FsKind::Fat);
    }
    if let Some(sb) = read(vol, 1024, 1024)
        && le_u16(&sb, 56) == 0xEF53
    {
        let compat = le_u32(&sb, 92);
        let incompat = le_u32(&sb, 96);
        // extents, 64bit, flex_bg, huge files... make it ext4; a journal alone ext3.
        return Some(if incompat & (0x40 | 0x80 | 0x200) != 0 {
            FsKind::Ext4
        } else if compat & 0x4 != 0 {
            FsKind::Ext3
        } else {
            FsKind::Ext2
        });
    }
    if head.len() >= 4096
        && (&head[4086..4096] == b"SWAPSPACE2" || &head[4086..4096] == b"SWAP-SPACE")
    {
        return Some(FsKind::Swap);
    }
    if let Some(md) = read(vol, 4096, 4)
        && le_u32(&md, 0) == 0xa92b_4efc
    {
        return Some(FsKind::LinuxRaid);
    }
    if let Some(b) = read(vol, 0x10040, 8)
        && &b == b"_BHRfS_M"
    {
        return Some(FsKind::Btrfs);
    }
    None
}
