//! Raw images and block devices, read with pread. Holes of sparse files (SEEK_DATA/SEEK_HOLE)
//! are never read.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{DiskSource, Extent, ReadAt, SourceError, SourceFormat, normalize};

struct FileReader(File);

impl ReadAt for FileReader {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, offset)
    }
}

pub(super) fn open(path: &Path, device: bool) -> Result<DiskSource, SourceError> {
    let io_err = |operation, source| SourceError::Io {
        path: path.to_path_buf(),
        operation,
        offset: None,
        source,
    };
    let mut file = File::open(path).map_err(|e| io_err("open", e))?;
    // Works for block devices too, where metadata reports size 0.
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|e| io_err("find size", e))?;
    // SAFETY: advisory call on a descriptor we own.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
    let extents = if device {
        vec![Extent {
            start: 0,
            len: size,
        }]
    } else {
        data_extents(&file, size)
    };
    Ok(DiskSource {
        path: path.to_path_buf(),
        format: SourceFormat::Raw,
        size,
        extents: normalize(extents, size),
        reader: Box::new(FileReader(file)),
    })
}

/// The file's data regions; the whole file when the filesystem cannot tell.
fn data_extents(file: &File, size: u64) -> Vec<Extent> {
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        // SAFETY: lseek on a descriptor we own; the offset is ours alone (pread ignores it).
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return vec![Extent {
                start: 0,
                len: size,
            }];
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return vec![Extent {
                start: 0,
                len: size,
            }];
        }
        extents.push(Extent {
            start: data as u64,
            len: (hole - data) as u64,
        });
        pos = hole;
    }
    extents
}
