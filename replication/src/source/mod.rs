//! Disk sources: where blocks are read from, and which regions hold data at all.
//!
//! Raw images and block devices are read directly (holes of sparse files found with
//! SEEK_DATA/SEEK_HOLE); qcow2, VMDK, VHD and VHDX through qemu's own tools: `qemu-img map` gives
//! the allocation map and `qemu-nbd` serves the guest-visible bytes. Regions without data are
//! never read; they are zeros.
//!
//! Image contents are never trusted. The format is never guessed from them (a guest can write a
//! qcow2 header into its own raw disk): it is declared, or follows from the extension, or the
//! source is a block device under `/dev/` (raw). Every qemu tool is told the format. Before an
//! image in a qemu format is read, every file its chain names must lie in the directory of the
//! disk's source (`confine`).

mod bounded;
mod confine;
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

/// Extensions and the formats they stand for (compared without case).
pub const EXTENSIONS: &[(&str, SourceFormat)] = &[
    ("raw", SourceFormat::Raw),
    ("img", SourceFormat::Raw),
    ("qcow2", SourceFormat::Qcow2),
    ("qcow", SourceFormat::Qcow2),
    ("vmdk", SourceFormat::Vmdk),
    ("vhd", SourceFormat::Vpc),
    ("vpc", SourceFormat::Vpc),
    ("vhdx", SourceFormat::Vhdx),
];

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

    /// The name an application file uses (`format: vhd`).
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Vpc => "vhd",
            other => other.qemu_name(),
        }
    }

    /// Parses the names an application file uses: raw, qcow2, vmdk, vhd, vhdx.
    pub fn from_name(name: &str) -> Option<SourceFormat> {
        Some(match name {
            "raw" => SourceFormat::Raw,
            "qcow2" => SourceFormat::Qcow2,
            "vmdk" => SourceFormat::Vmdk,
            "vhd" => SourceFormat::Vpc,
            "vhdx" => SourceFormat::Vhdx,
            _ => return None,
        })
    }

    fn from_qemu_name(name: &str) -> Option<SourceFormat> {
        match name {
            "vpc" => Some(SourceFormat::Vpc),
            "vhd" => None,
            other => SourceFormat::from_name(other),
        }
    }

    /// The format the file name's extension stands for ([`EXTENSIONS`]).
    pub fn from_extension(path: &Path) -> Option<SourceFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        EXTENSIONS
            .iter()
            .find(|(e, _)| *e == ext)
            .map(|(_, format)| *format)
    }

    /// How a disk is read: the declared format, else a block device under `/dev/` is raw, else
    /// the extension decides. Never the contents.
    pub fn resolve(
        path: &Path,
        declared: Option<SourceFormat>,
    ) -> Result<SourceFormat, SourceError> {
        declared
            .or_else(|| path.starts_with("/dev").then_some(SourceFormat::Raw))
            .or_else(|| SourceFormat::from_extension(path))
            .ok_or_else(|| SourceError::UnknownFormat {
                path: path.to_path_buf(),
            })
    }
}

/// What an image names besides its own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    BackingFile,
    DataFile,
    Extent,
    /// Another file qemu opened for the image.
    File,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reference::BackingFile => "backing file",
            Reference::DataFile => "external data file",
            Reference::Extent => "extent",
            Reference::File => "file",
        })
    }
}

/// The rule a referenced file broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// It resolves (symlinks followed) outside the directory of the disk's source.
    Outside {
        resolved: PathBuf,
        directory: PathBuf,
    },
    /// It is a qemu protocol (`nbd:`, `http:`, ...) or `json:` name, not a file.
    NotAFile,
    /// It is a device, FIFO, socket or directory inside the directory.
    NotRegular { resolved: PathBuf },
    /// It does not exist or cannot be resolved.
    Unresolvable(String),
    /// A backing file whose format its image does not record: qemu would guess it.
    UndeclaredFormat,
    /// A backing file in a format rehost does not read.
    UnsupportedFormat(String),
    /// The chain is longer than rehost follows.
    TooDeep,
    /// qemu's own walk of the chain found other files than rehost's.
    Mismatch,
}

impl std::fmt::Display for Confinement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Confinement::Outside {
                resolved,
                directory,
            } => write!(
                f,
                "resolves to {}, outside {}; an image may only use files in the directory of the \
                 disk's source",
                resolved.display(),
                directory.display()
            ),
            Confinement::NotAFile => f.write_str(
                "is a qemu protocol or json: name, not a file in the directory of the disk's source",
            ),
            Confinement::NotRegular { resolved } => write!(
                f,
                "resolves to {}, which is not a regular file",
                resolved.display()
            ),
            Confinement::Unresolvable(e) => write!(f, "cannot be resolved: {e}"),
            Confinement::UndeclaredFormat => f.write_str(
                "has no format recorded in the image, and rehost never lets qemu guess one; \
                 record it with `qemu-img rebase -u -F FORMAT -b FILE IMAGE`",
            ),
            Confinement::UnsupportedFormat(format) => write!(
                f,
                "is in format {format:?}, which rehost does not read (raw, qcow2, vmdk, vpc, vhdx)"
            ),
            Confinement::TooDeep => write!(
                f,
                "makes the chain longer than the {} images rehost follows",
                confine::MAX_CHAIN
            ),
            Confinement::Mismatch => f.write_str(
                "is the chain qemu-img walks, which differs from the one rehost checked",
            ),
        }
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
    /// No declared format, no known extension, not under `/dev/`.
    #[error(
        "{path}: the disk format is unknown: the file name has no known extension ({}) and the \
         disk sets no `format:`; set `format: raw|qcow2|vmdk|vhd|vhdx` (rehost never guesses \
         from the contents, which the guest controls)",
        EXTENSIONS.iter().map(|(e, _)| format!(".{e}")).collect::<Vec<_>>().join(" ")
    )]
    UnknownFormat { path: PathBuf },
    /// A file the image names breaks the confinement rule; nothing was read.
    #[error(transparent)]
    Refused(Box<Refusal>),
}

/// Why an image was refused, with what the operator needs to find the file.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: refused: {} the {reference} `{target}`, which {rule}",
    namer(path, image)
)]
pub struct Refusal {
    /// The disk's source.
    pub path: PathBuf,
    /// The image (the source or a layer of its chain) that names the file.
    pub image: PathBuf,
    pub reference: Reference,
    /// The file as the image names it.
    pub target: String,
    pub rule: Confinement,
}

/// Who names the offending file: the disk's image itself or a layer of its chain.
fn namer(path: &Path, image: &Path) -> String {
    if std::path::absolute(path).ok().as_deref() == Some(image) || path == image {
        "the image names".to_string()
    } else {
        format!("its backing image {} names", image.display())
    }
}

impl SourceError {
    /// Whether the operator must fix the disk or its definition (exit 2), rather than a
    /// failure of the moment (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SourceError::UnknownFormat { .. } | SourceError::Refused { .. }
        )
    }
}

/// A raw image (by its extension) that starts like an image format is still read raw, since a
/// guest can write any header into its disk; but cloud images named `.img` are often qcow2, so
/// the operator hears about it.
fn warn_if_an_image_format(path: &Path) {
    let mut head = [0u8; 64];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| io::Read::read(&mut f, &mut head))
    else {
        return;
    };
    let head = &head[..n];
    let format = if head.starts_with(b"QFI\xfb") {
        "qcow2"
    } else if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        "vmdk"
    } else if head.starts_with(b"vhdxfile") {
        "vhdx"
    } else if head.starts_with(b"conectix") {
        "vhd"
    } else {
        return;
    };
    tracing::warn!(
        "{}: read as raw (its extension), though it starts like a {format} image; if it is \
         one, set `format: {format}` on the disk",
        path.display()
    );
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
    /// Opens a source in its format ([`SourceFormat::resolve`]): a raw image or block device is
    /// read directly, an image in a qemu format through qemu-nbd once its chain is vetted.
    pub fn open(
        path: &Path,
        declared: Option<SourceFormat>,
        tools: &QemuTools,
    ) -> Result<DiskSource, SourceError> {
        let format = SourceFormat::resolve(path, declared)?;
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            operation: "stat",
            offset: None,
            source,
        })?;
        let device = meta.file_type().is_block_device();
        if !device && !meta.is_file() {
            return Err(SourceError::Unsupported {
                path: path.to_path_buf(),
                message: "not a regular file or block device".into(),
            });
        }
        if format == SourceFormat::Raw && declared.is_none() && !device {
            warn_if_an_image_format(path);
        }
        match format {
            SourceFormat::Raw => raw::open(path, device),
            other => qemu::open(path, other, tools),
        }
    }

    /// What [`DiskSource::open`] checks before reading anything, without opening: the format,
    /// and for an image in a qemu format every file its chain names. A replication inspects
    /// every disk of a server this way before it starts a snapshot.
    pub fn inspect(
        path: &Path,
        declared: Option<SourceFormat>,
        tools: &QemuTools,
    ) -> Result<SourceFormat, SourceError> {
        let format = SourceFormat::resolve(path, declared)?;
        if format != SourceFormat::Raw {
            confine::vet(path, format, tools)?;
        }
        Ok(format)
    }

    /// Every file a reader of the source reads: the source itself, and for an image in a qemu
    /// format every file of its chain (backing files, data files, extents), each checked as
    /// [`DiskSource::inspect`] checks them.
    pub fn chain_files(
        path: &Path,
        declared: Option<SourceFormat>,
        tools: &QemuTools,
    ) -> Result<Vec<PathBuf>, SourceError> {
        let format = SourceFormat::resolve(path, declared)?;
        if format == SourceFormat::Raw {
            return Ok(vec![path.to_path_buf()]);
        }
        let mut files = confine::vet(path, format, tools)?.files;
        if files.is_empty() {
            files.push(path.to_path_buf());
        }
        Ok(files)
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
