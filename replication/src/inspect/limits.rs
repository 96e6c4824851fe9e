//! Bounds on everything inspection reads. Disk images are untrusted: a hostile or damaged image
//! must end in `unknown` with a reason, fast and in bounded memory, never in a hang.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

/// Caps applied to one server's inspection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes fetched from the disk sources (cache misses), per server.
    pub max_source_bytes: u64,
    /// Bytes handed out by the volume layer, cache hits included: catches loops that spin on
    /// cached data without reading anything new.
    pub max_logical_bytes: u64,
    /// Wall-clock bound per server, the last safety net.
    pub max_time: Duration,
    /// Size of small text files read whole (os-release, fstab, grub.cfg, modules.builtin...).
    pub max_text_file: u64,
    /// Largest registry hive accepted (it is read cell by cell, never held whole).
    pub max_hive_file: u64,
    /// Hive cells visited per hive.
    pub max_hive_cells: u64,
    /// Entries listed from one directory.
    pub max_dir_entries: usize,
    /// Compressed initramfs size.
    pub max_initramfs_file: u64,
    /// Decompressed initramfs bytes scanned (streamed, never held).
    pub max_initramfs_bytes: u64,
    /// Entries in one initramfs.
    pub max_cpio_entries: u64,
    /// Partitions per disk (GPT entries and logical MBR partitions).
    pub max_partitions: usize,
    /// LVM metadata text size.
    pub max_lvm_metadata: u64,
    /// Nesting depth of LVM metadata, boot loader configuration and registry index lists.
    pub max_depth: usize,
    /// Disk read cache per server, shared by its disks.
    pub cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 1 << 30,
            max_logical_bytes: 16 << 30,
            max_time: Duration::from_secs(120),
            max_text_file: 4 << 20,
            max_hive_file: 1 << 30,
            max_hive_cells: 2_000_000,
            max_dir_entries: 100_000,
            max_initramfs_file: 512 << 20,
            max_initramfs_bytes: 2 << 30,
            max_cpio_entries: 500_000,
            max_partitions: 256,
            max_lvm_metadata: 1 << 20,
            max_depth: 32,
            cache_bytes: 8 << 20,
        }
    }
}

/// What one server's inspection has consumed so far; shared by every reader of the server.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    source_bytes: Cell<u64>,
    logical_bytes: Cell<u64>,
    deadline: Instant,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        let deadline = Instant::now() + limits.max_time;
        Budget {
            limits,
            source_bytes: Cell::new(0),
            logical_bytes: Cell::new(0),
            deadline,
        }
    }

    pub fn charge_source(&self, bytes: u64) -> io::Result<()> {
        let total = self.source_bytes.get().saturating_add(bytes);
        self.source_bytes.set(total);
        if total > self.limits.max_source_bytes {
            return Err(exhausted(format!(
                "read budget of {} MiB per server exhausted",
                self.limits.max_source_bytes >> 20
            )));
        }
        self.check_time()
    }

    pub fn charge_logical(&self, bytes: u64) -> io::Result<()> {
        let total = self.logical_bytes.get().saturating_add(bytes);
        self.logical_bytes.set(total);
        if total > self.limits.max_logical_bytes {
            return Err(exhausted(format!(
                "more than {} GiB read through the filesystems (a loop in the on-disk structures?)",
                self.limits.max_logical_bytes >> 30
            )));
        }
        Ok(())
    }

    pub fn check_time(&self) -> io::Result<()> {
        if Instant::now() > self.deadline {
            return Err(exhausted(format!(
                "inspection took longer than {} s",
                self.limits.max_time.as_secs()
            )));
        }
        Ok(())
    }
}

fn exhausted(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::QuotaExceeded, msg)
}
