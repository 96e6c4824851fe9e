//! Disk sources: where blocks are read from, and which regions hold data at all.
//!
//! Raw images and block devices are read directly (holes of sparse files found with
//! SEEK_DATA/SEEK_HOLE); qcow2, VMDK, VHD and VHDX through qemu's own tools: `qemu-img map` gives
//! the allocation map and `qemu-nbd` serves the guest-visible bytes. Regions without data are
//! never read; they are zeros.

mod nbd;
mod qemu;
mod raw;

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::manifest::{BLOCK_SIZE, BLOCK_SIZE_U64};

pub use qemu::QemuTools;

/// How a source is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Raw,
    Qcow2,
    Vmdk,
    /// VHD (qemu calls it `vpc`).
    Vpc,
    Vhdx,
}

impl SourceFormat {
    /// qemu's name of the format.
    pub fn qemu_name(self) -> &'static str {
        match self {
            SourceFormat::Raw => "raw",
            SourceFormat::Qcow2 => "qcow2",
            SourceFormat::Vmdk => "vmdk",
            SourceFormat::Vpc => "vpc",
            SourceFormat::Vhdx => "vhdx",
        }
    }

    fn from_qemu_name(name: &str) -> Option<SourceFormat> {
        Some(match name {
            "raw" => SourceFormat::Raw,
            "qcow2" => SourceFormat::Qcow2,
            "vmdk" => SourceFormat::Vmdk,
            "vpc" => SourceFormat::Vpc,
            "vhdx" => SourceFormat::Vhdx,
            _ => return None,
        })
    }

    fn from_extension(path: &Path) -> Option<SourceFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "raw" => SourceFormat::Raw,
            "qcow2" | "qcow" => SourceFormat::Qcow2,
            "vmdk" => SourceFormat::Vmdk,
            "vhd" | "vpc" => SourceFormat::Vpc,
            "vhdx" => SourceFormat::Vhdx,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {operation}{}: {source}", offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Io {
        path: PathBuf,
        operation: &'static str,
        offset: Option<u64>,
        source: io::Error,
    },
    #[error("{path}: {tool} failed: {message}")]
    Tool {
        path: PathBuf,
        tool: String,
        message: String,
    },
    #[error("{path}: NBD: {message}")]
    Nbd { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
}

/// A byte range holding data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Reads bytes at an offset.
trait ReadAt: Send {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// An opened disk: its size, its data extents and a reader.
pub struct DiskSource {
    path: PathBuf,
    format: SourceFormat,
    size: u64,
    /// Sorted, non-overlapping, merged.
    extents: Vec<Extent>,
    reader: Box<dyn ReadAt>,
}

impl std::fmt::Debug for DiskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSource")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("size", &self.size)
            .field("extents", &self.extents.len())
            .finish()
    }
}

/// What `read_block` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRead {
    /// No data in the block's range: it is zeros and nothing was read.
    Unallocated,
    /// The buffer holds the block (zero-padded past the end of the disk or of the data).
    Data,
}

impl DiskSource {
    /// Opens a source, choosing the reader by what the path is: a block device or a raw image
    /// is read directly; an image in a qemu format through qemu-nbd. The format comes from the
    /// extension (.raw, .qcow2, .vmdk, .vhd, .vhdx), else from `qemu-img info`'s probe.
    pub fn open(path: &Path, tools: &QemuTools) -> Result<DiskSource, SourceError> {
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            operation: "stat",
            offset: None,
            source,
        })?;
        if meta.file_type().is_block_device() {
            return raw::open(path, true);
        }
        if !meta.is_file() {
            return Err(SourceError::Unsupported {
                path: path.to_path_buf(),
                message: "not a regular file or block device".into(),
            });
        }
        let format = match SourceFormat::from_extension(path) {
            Some(f) => f,
            None => match tools.probe_format(path)? {
                Some(f) => f,
                // No qemu-img to ask: a plain file is a raw image.
                None => SourceFormat::Raw,
            },
        };
        match format {
            SourceFormat::Raw => raw::open(path, false),
            other => qemu::open(path, other, tools),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> SourceFormat {
        self.format
    }

    /// Guest-visible size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn block_count(&self) -> u64 {
        crate::manifest::block_count(self.size)
    }

    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Bytes of the disk that hold data (what a scan reads).
    pub fn data_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Reads block `index` into `buf`, reading only its data extents.
    pub fn read_block(&mut self, index: u64, buf: &mut [u8]) -> Result<BlockRead, SourceError> {
        debug_assert_eq!(buf.len(), BLOCK_SIZE);
        self.read_range(index * BLOCK_SIZE_U64, buf)
    }

    /// Reads `buf.len()` bytes at `offset`, reading only data extents: unallocated ranges and
    /// anything past the end of the disk read as zeros.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<BlockRead, SourceError> {
        let read = self.read_range(offset, buf)?;
        if read == BlockRead::Unallocated {
            buf.fill(0);
        }
        Ok(read)
    }

    /// Like `read_at`, but a range without data leaves `buf` untouched (`Unallocated`).
    fn read_range(&mut self, offset: u64, buf: &mut [u8]) -> Result<BlockRead, SourceError> {
        let start = offset;
        let want_end = offset.saturating_add(buf.len() as u64);
        let end = want_end.min(self.size);
        let first = self.extents.partition_point(|e| e.end() <= start);
        let overlapping = self.extents[first..].iter().take_while(|e| e.start < end);
        let mut pieces = overlapping
            .map(|e| (e.start.max(start), e.end().min(end)))
            .peekable();
        if pieces.peek().is_none() {
            return Ok(BlockRead::Unallocated);
        }
        let pieces: Vec<(u64, u64)> = pieces.collect();
        let covered = pieces.len() == 1 && pieces[0] == (start, want_end);
        if !covered {
            buf.fill(0);
        }
        for (a, b) in pieces {
            let slice = &mut buf[(a - start) as usize..(b - start) as usize];
            self.reader
                .read_exact_at(slice, a)
                .map_err(|source| SourceError::Io {
                    path: self.path.clone(),
                    operation: "read",
                    offset: Some(a),
                    source,
                })?;
        }
        Ok(BlockRead::Data)
    }
}

/// Merges touching or overlapping extents, drops empty ones and clips them to `size`.
fn normalize(mut extents: Vec<Extent>, size: u64) -> Vec<Extent> {
    extents.retain(|e| e.len > 0 && e.start < size);
    extents.sort_by_key(|e| e.start);
    let mut out: Vec<Extent> = Vec::with_capacity(extents.len());
    for mut e in extents {
        e.len = e.len.min(size - e.start);
        match out.last_mut() {
            Some(last) if e.start <= last.end() => last.len = last.len.max(e.end() - last.start),
            _ => out.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_are_merged_and_clipped() {
        let e = |start, len| Extent { start, len };
        assert_eq!(
            normalize(vec![e(10, 5), e(0, 10), e(20, 0), e(30, 100)], 50),
            vec![e(0, 15), e(30, 20)]
        );
    }
}
