//! Reading guest bytes: a disk (a `DiskSource` behind a small chunk cache that charges the
//! server's budget), volumes (a partition or an LVM logical volume: segments of disks), and the
//! adapters the filesystem readers want (`ReadAt`, `Read + Seek`, `Ext4Read`).

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::source::DiskSource;

use super::limits::Budget;

/// Random-access reads of a byte range of known size.
pub trait ReadAt {
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; reading past `size()` is an error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start =
            usize::try_from(offset).map_err(|_| past_end(offset, buf.len(), self.size()))?;
        let end = start
            .checked_add(buf.len())
            .filter(|&e| e <= self.len())
            .ok_or_else(|| past_end(offset, buf.len(), self.size()))?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }
}

pub(crate) fn past_end(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at {offset} goes past the end ({size} bytes)"),
    )
}

/// Reads a little-endian integer out of a byte slice, zero when out of range (callers check
/// lengths first; this keeps hostile offsets from panicking).
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

const CHUNK: usize = 64 << 10;

/// One disk of the server being inspected.
pub struct Disk {
    name: String,
    size: u64,
    source: RefCell<DiskSource>,
    cache: RefCell<ChunkCache>,
    budget: Rc<Budget>,
}

impl Disk {
    /// A disk with a read cache of about `cache_bytes` (at least four chunks).
    pub fn new(name: String, source: DiskSource, budget: Rc<Budget>, cache_bytes: usize) -> Disk {
        let entries = (cache_bytes / CHUNK).max(4);
        Disk {
            name,
            size: source.size(),
            source: RefCell::new(source),
            cache: RefCell::new(ChunkCache::new(entries)),
            budget,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn budget(&self) -> &Rc<Budget> {
        &self.budget
    }
}

impl ReadAt for Disk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| past_end(offset, buf.len(), self.size))?;
        let mut cache = self.cache.borrow_mut();
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK as u64;
            let chunk_start = index * CHUNK as u64;
            let data = match cache.get(index) {
                Some(d) => d,
                None => {
                    let len = (self.size - chunk_start).min(CHUNK as u64) as usize;
                    self.budget.charge_source(len as u64)?;
                    let mut fresh = vec![0u8; len];
                    self.source
                        .borrow_mut()
                        .read_at(chunk_start, &mut fresh)
                        .map_err(io::Error::other)?;
                    cache.insert(index, fresh)
                }
            };
            let from = (pos - chunk_start) as usize;
            let take = ((end - pos) as usize).min(data.len() - from);
            let out = (pos - offset) as usize;
            buf[out..out + take].copy_from_slice(&data[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }
}

/// Least-recently-used chunks of one disk.
struct ChunkCache {
    capacity: usize,
    tick: u64,
    entries: Vec<(u64, u64, Vec<u8>)>,
}

impl ChunkCache {
    fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            capacity,
            tick: 0,
            entries: Vec::new(),
        }
    }

    fn get(&mut self, index: u64) -> Option<&[u8]> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.iter_mut().find(|e| e.0 == index)?;
        e.1 = tick;
        Some(&e.2)
    }

    fn insert(&mut self, index: u64, data: Vec<u8>) -> &[u8] {
        self.tick += 1;
        let slot = if self.entries.len() < self.capacity {
            self.entries.push((index, self.tick, data));
            self.entries.len() - 1
        } else {
            let (i, _) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.1)
                .expect("capacity is at least 4");
            self.entries[i] = (index, self.tick, data);
            i
        };
        &self.entries[slot].2
    }
}

/// A piece of a volume: `len` bytes at `disk_offset` of `disk`.
#[derive(Clone)]
pub struct Segment {
    pub disk: Rc<Disk>,
    pub disk_offset: u64,
    pub len: u64,
}

/// A partition, a whole disk or an LVM logical volume: a byte range made of disk segments.
#[derive(Clone)]
pub struct Volume {
    segments: Rc<[Segment]>,
    /// Start of each segment within the volume.
    starts: Rc<[u64]>,
    size: u64,
    budget: Rc<Budget>,
}

impl Volume {
    pub fn new(segments: Vec<Segment>, budget: Rc<Budget>) -> Volume {
        let mut starts = Vec::with_capacity(segments.len());
        let mut size = 0u64;
        for s in &segments {
            starts.push(size);
            size = size.saturating_add(s.len);
        }
        Volume {
            segments: segments.into(),
            starts: starts.into(),
            size,
            budget,
        }
    }

    /// The whole of `disk`, or the part of it from `start`, `len` bytes long (clipped to the disk).
    pub fn on_disk(disk: &Rc<Disk>, start: u64, len: u64) -> Volume {
        let start = start.min(disk.size());
        let len = len.min(disk.size() - start);
        let budget = disk.budget().clone();
        Volume::new(
            vec![Segment {
                disk: disk.clone(),
                disk_offset: start,
                len,
            }],
            budget,
        )
    }

    /// A cursor for readers that want `Read + Seek`.
    pub fn cursor(&self) -> VolumeCursor {
        VolumeCursor {
            volume: self.clone(),
            pos: 0,
        }
    }
}

impl ReadAt for Volume {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.budget.charge_logical(buf.len() as u64)?;
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| past_end(offset, buf.len(), self.size))?;
        let mut pos = offset;
        let mut i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
        while pos < end {
            let seg = self
                .segments
                .get(i)
                .ok_or_else(|| past_end(offset, buf.len(), self.size))?;
            let within = pos - self.starts[i];
            let take = (seg.len - within).min(end - pos) as usize;
            let out = (pos - offset) as usize;
            seg.disk
                .read_exact_at(seg.disk_offset + within, &mut buf[out..out + take])?;
            pos += take as u64;
            i += 1;
        }
        Ok(())
    }
}

impl ext4_view::Ext4Read for Volume {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.read_exact_at(start_byte, dst).map_err(|e| e.into())
    }
}

/// `Read + Seek` over a volume, for the NTFS reader.
pub struct VolumeCursor {
    volume: Volume,
    pos: u64,
}

impl Read for VolumeCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.volume.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        self.volume.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for VolumeCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.volume.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// A file inside a guest filesystem, read at offsets.
pub trait FileRead {
    fn size(&self) -> u64;
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// Sequential `Read` over a `FileRead`, stopping at its size.
pub struct FileStream<'a> {
    file: &'a mut dyn FileRead,
    pos: u64,
}

impl<'a> FileStream<'a> {
    pub fn new(file: &'a mut dyn FileRead) -> FileStream<'a> {
        FileStream { file, pos: 0 }
    }
}

impl Read for FileStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.file.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads up to `max` bytes from the start of a file (the whole file when smaller).
pub fn read_head(file: &mut dyn FileRead, max: usize) -> io::Result<Vec<u8>> {
    let n = (file.size()).min(max as u64) as usize;
    let mut buf = vec![0u8; n];
    file.read_exact_at(0, &mut buf)?;
    Ok(buf)
}
