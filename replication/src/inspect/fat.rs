//! A small read-only FAT12/16/32 reader for EFI system partitions (and FAT /boot partitions):
//! path lookup with long names, file reads by cluster chain. Everything is bounded: cluster
//! chains by the cluster count (a loop ends as an error), directories by the entry limit.

use std::io;

use super::guestfs::{DirEntry, FsError, GuestFs, components};
use super::io::{FileRead, ReadAt, le_u16, le_u32};

const ATTR_DIR: u8 = 0x10;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LFN: u8 = 0x0F;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

/// The geometry of a FAT volume, from its boot sector.
#[derive(Debug, Clone)]
pub struct FatGeometry {
    pub fat_type: FatType,
    cluster_size: u64,
    fat_start: u64,
    root_start: u64,
    root_entries: u64,
    root_cluster: u32,
    data_start: u64,
    cluster_count: u32,
    pub serial: u32,
}

impl FatGeometry {
    /// Parses and checks a boot sector; `None` when it is not a plausible FAT boot sector.
    pub fn parse(boot: &[u8], volume_size: u64) -> Option<FatGeometry> {
        if boot.len() < 512 || le_u16(boot, 510) != 0xAA55 {
            return None;
        }
        let bps = u64::from(le_u16(boot, 11));
        let spc = u64::from(boot[13]);
        let reserved = u64::from(le_u16(boot, 14));
        let fats = u64::from(boot[16]);
        let root_entries = u64::from(le_u16(boot, 17));
        let total16 = u64::from(le_u16(boot, 19));
        let fatsz16 = u64::from(le_u16(boot, 22));
        let total32 = u64::from(le_u32(boot, 32));
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || spc == 0
            || !spc.is_power_of_two()
            || reserved == 0
            || !(1..=4).contains(&fats)
        {
            return None;
        }
        let fat_size = if fatsz16 != 0 {
            fatsz16
        } else {
            u64::from(le_u32(boot, 36))
        };
        let total = if total16 != 0 { total16 } else { total32 };
        if fat_size == 0 || total == 0 {
            return None;
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let meta = reserved + fats * fat_size + root_sectors;
        if meta >= total {
            return None;
        }
        let clusters = (total - meta) / spc;
        let fat_type = if clusters < 4085 {
            FatType::Fat12
        } else if clusters < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        let (root_cluster, serial) = if fat_type == FatType::Fat32 {
            (le_u32(boot, 44), le_u32(boot, 67))
        } else {
            (0, le_u32(boot, 39))
        };
        let geometry = FatGeometry {
            fat_type,
            cluster_size: bps * spc,
            fat_start: reserved * bps,
            root_start: (reserved + fats * fat_size) * bps,
            root_entries,
            root_cluster,
            data_start: meta * bps,
            cluster_count: u32::try_from(clusters).ok()?,
            serial,
        };
        // The FAT must hold an entry per cluster, and the metadata must fit the volume.
        let fat_bytes = fat_size * bps;
        let needed = match fat_type {
            FatType::Fat12 => (u64::from(geometry.cluster_count) + 2) * 3 / 2,
            FatType::Fat16 => (u64::from(geometry.cluster_count) + 2) * 2,
            FatType::Fat32 => (u64::from(geometry.cluster_count) + 2) * 4,
        };
        if fat_bytes < needed || geometry.data_start > volume_size {
            return None;
        }
        Some(geometry)
    }

    /// The serial as fstab writes a FAT UUID: `ABCD-1234`.
    pub fn uuid(&self) -> String {
        format!("{:04X}-{:04X}", self.serial >> 16, self.serial & 0xFFFF)
    }
}

/// A FAT volume over any byte source.
pub struct FatFs<R: ReadAt> {
    volume: R,
    geo: FatGeometry,
    max_entries: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    attr: u8,
    cluster: u32,
    size: u32,
}

impl<R: ReadAt> FatFs<R> {
    pub fn open(volume: R, max_entries: usize) -> Result<FatFs<R>, FsError> {
        let mut boot = [0u8; 512];
        volume.read_exact_at(0, &mut boot)?;
        let geo = FatGeometry::parse(&boot, volume.size())
            .ok_or_else(|| FsError("not a valid FAT boot sector".into()))?;
        Ok(FatFs {
            volume,
            geo,
            max_entries,
        })
    }

    pub fn geometry(&self) -> &FatGeometry {
        &self.geo
    }

    fn next_cluster(&self, cluster: u32) -> io::Result<Option<u32>> {
        let (offset, len) = match self.geo.fat_type {
            FatType::Fat12 => (u64::from(cluster) * 3 / 2, 2),
            FatType::Fat16 => (u64::from(cluster) * 2, 2),
            FatType::Fat32 => (u64::from(cluster) * 4, 4),
        };
        let mut b = [0u8; 4];
        self.volume
            .read_exact_at(self.geo.fat_start + offset, &mut b[..len])?;
        let raw = u32::from_le_bytes(b);
        let (value, eoc) = match self.geo.fat_type {
            FatType::Fat12 => {
                let v = if cluster & 1 == 1 {
                    raw >> 4
                } else {
                    raw & 0xFFF
                };
                (v & 0xFFF, 0xFF8)
            }
            FatType::Fat16 => (raw & 0xFFFF, 0xFFF8),
            FatType::Fat32 => (raw & 0x0FFF_FFFF, 0x0FFF_FFF8),
        };
        Ok(if value >= eoc { None } else { Some(value) })
    }

    fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c - 2 < self.geo.cluster_count
    }

    /// The clusters of a chain, at most `max` of them; a loop or a bad link is an error.
    fn chain(&self, start: u32, max: u64) -> Result<Vec<u32>, FsError> {
        let mut out = Vec::new();
        let mut c = start;
        let bound = max.min(u64::from(self.geo.cluster_count));
        loop {
            if !self.valid_cluster(c) {
                return Err(FsError(format!(
                    "FAT cluster chain points to invalid cluster {c}"
                )));
            }
            if out.len() as u64 >= bound {
                return Err(FsError(
                    "FAT cluster chain loops or is longer than its file".into(),
                ));
            }
            out.push(c);
            match self.next_cluster(c)? {
                None => return Ok(out),
                Some(n) => c = n,
            }
        }
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.geo.data_start + u64::from(c - 2) * self.geo.cluster_size
    }

    fn read_dir_bytes(&self, dir: Option<&Entry>) -> Result<Vec<u8>, FsError> {
        let max_bytes = self.max_entries as u64 * 32;
        match dir {
            None if self.geo.fat_type != FatType::Fat32 => {
                let len = self.geo.root_entries * 32;
                let mut buf = vec![0u8; len as usize];
                self.volume.read_exact_at(self.geo.root_start, &mut buf)?;
                Ok(buf)
            }
            _ => {
                let start = dir.map_or(self.geo.root_cluster, |d| d.cluster);
                let clusters = self.chain(start, max_bytes.div_ceil(self.geo.cluster_size) + 1)?;
                let mut buf = vec![0u8; clusters.len() * self.geo.cluster_size as usize];
                for (i, &c) in clusters.iter().enumerate() {
                    let cs = self.geo.cluster_size as usize;
                    self.volume
                        .read_exact_at(self.cluster_offset(c), &mut buf[i * cs..(i + 1) * cs])?;
                }
                Ok(buf)
            }
        }
    }

    fn entries(&self, dir: Option<&Entry>) -> Result<Vec<Entry>, FsError> {
        let bytes = self.read_dir_bytes(dir)?;
        let mut out = Vec::new();
        let mut lfn: Vec<(u8, [u16; 13])> = Vec::new(); // (checksum, name part)
        for raw in bytes.chunks_exact(32) {
            match raw[0] {
                0 => break,
                0xE5 => {
                    lfn.clear();
                    continue;
                }
                _ => {}
            }
            let attr = raw[11];
            if attr & 0x3F == ATTR_LFN {
                let mut part = [0u16; 13];
                let offsets = (1..11)
                    .step_by(2)
                    .chain((14..26).step_by(2))
                    .chain((28..32).step_by(2));
                for (i, at) in offsets.enumerate() {
                    part[i] = le_u16(raw, at);
                }
                lfn.push((raw[13], part));
                continue;
            }
            if attr & ATTR_VOLUME != 0 {
                lfn.clear();
                continue;
            }
            let short = short_name(&raw[..11], raw[12]);
            let name = long_name(&mut lfn, &raw[..11]).unwrap_or(short);
            if out.len() >= self.max_entries {
                return Err(FsError(format!(
                    "FAT directory has more than {} entries",
                    self.max_entries
                )));
            }
            let hi = if self.geo.fat_type == FatType::Fat32 {
                u32::from(le_u16(raw, 20)) << 16
            } else {
                0
            };
            out.push(Entry {
                name,
                attr,
                cluster: hi | u32::from(le_u16(raw, 26)),
                size: le_u32(raw, 28),
            });
        }
        Ok(out)
    }

    /// The entry at `path`: `Ok(None)` when missing, `Ok(Some(None))` for the root directory.
    fn lookup(&self, path: &str) -> Result<Option<Option<Entry>>, FsError> {
        let mut current: Option<Entry> = None;
        for comp in components(path) {
            if let Some(e) = &current
                && e.attr & ATTR_DIR == 0
            {
                return Ok(None);
            }
            let entries = self.entries(current.as_ref())?;
            match entries
                .into_iter()
                .find(|e| e.name.to_lowercase() == comp.to_lowercase())
            {
                Some(e) => current = Some(e),
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }
}

fn short_name(raw: &[u8], case: u8) -> String {
    let conv = |b: &[u8], lower: bool| -> String {
        let s: String = b
            .iter()
            .map(|&c| c as char)
            .collect::<String>()
            .trim_end()
            .to_string();
        if lower { s.to_lowercase() } else { s }
    };
    let mut first = raw[..8].to_vec();
    if first[0] == 0x05 {
        first[0] = 0xE5;
    }
    let base = conv(&first, case & 0x08 != 0);
    let ext = conv(&raw[8..11], case & 0x10 != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

fn lfn_checksum(short: &[u8]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &c| (sum >> 1 | (sum & 1) << 7).wrapping_add(c))
}

/// Assembles the long name gathered before a short entry (stored last part first).
fn long_name(parts: &mut Vec<(u8, [u16; 13])>, short: &[u8]) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    let sum = lfn_checksum(short);
    if parts.iter().any(|(s, _)| *s != sum) {
        // Orphaned long-name entries: the short name is the truth.
        parts.clear();
        return None;
    }
    let mut units = Vec::with_capacity(parts.len() * 13);
    for (_, part) in parts.iter().rev() {
        units.extend_from_slice(part);
    }
    parts.clear();
    let end = units
        .iter()
        .position(|&u| u == 0 || u == 0xFFFF)
        .unwrap_or(units.len());
    let name = String::from_utf16_lossy(&units[..end]);
    (!name.is_empty()).then_some(name)
}

struct FatFile<'a, R: ReadAt> {
    fs: &'a FatFs<R>,
    clusters: Vec<u32>,
    size: u64,
}

impl<R: ReadAt> FileRead for FatFile<'_, R> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| super::io::past_end(offset, buf.len(), self.size))?;
        let cs = self.fs.geo.cluster_size;
        let mut pos = offset;
        while pos < end {
            let index = (pos / cs) as usize;
            let within = pos % cs;
            let take = (cs - within).min(end - pos) as usize;
            let c = *self
                .clusters
                .get(index)
                .ok_or_else(|| super::io::past_end(offset, buf.len(), self.size))?;
            let out = (pos - offset) as usize;
            self.fs.volume.read_exact_at(
                self.fs.cluster_offset(c) + within,
                &mut buf[out..out + take],
            )?;
            pos += take as u64;
        }
        Ok(())
    }
}

impl<R: ReadAt> GuestFs for FatFs<R> {
    fn with_file(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(&mut dyn FileRead) -> Result<(), FsError>,
    ) -> Result<bool, FsError> {
        let Some(Some(entry)) = self.lookup(path)? else {
            return Ok(false);
        };
        if entry.attr & ATTR_DIR != 0 {
            return Ok(false);
        }
        let size = u64::from(entry.size);
        let clusters = if size == 0 {
            Vec::new()
        } else {
            let needed = size.div_ceil(self.geo.cluster_size);
            let chain = self.chain(entry.cluster, needed + 1)?;
            if (chain.len() as u64) < needed {
                return Err(FsError(format!(
                    "{path}: cluster chain shorter than the file size"
                )));
            }
            chain
        };
        let mut file = FatFile {
            fs: self,
            clusters,
            size,
        };
        f(&mut file)?;
        Ok(true)
    }

    fn list_dir(&mut self, path: &str, _max: usize) -> Result<Option<Vec<DirEntry>>, FsError> {
        let dir = match self.lookup(path)? {
            None => return Ok(None),
            Some(Some(e)) if e.attr & ATTR_DIR == 0 => return Ok(None),
            Some(d) => d,
        };
        Ok(Some(
            self.entries(dir.as_ref())?
                .into_iter()
                .filter(|e| e.name != "." && e.name != "..")
                .map(|e| DirEntry {
                    is_dir: e.attr & ATTR_DIR != 0,
                    name: e.name,
                })
                .collect(),
        ))
    }

    fn exists(&mut self, path: &str) -> Result<bool, FsError> {
        Ok(self.lookup(path)?.is_some())
    }
}
