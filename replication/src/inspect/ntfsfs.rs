//! NTFS through the `ntfs` crate (read-only, no_std-capable). It is not documented as panic-free
//! on corrupt input, so every call runs under `guarded` (catch_unwind) and reads through the
//! server's budget.

use std::io::SeekFrom;

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::NtfsFileNamespace;
use ntfs::{Ntfs, NtfsAttributeFlags, NtfsFile, NtfsReadSeek};

use super::guestfs::{DirEntry, FsError, GuestFs, components, guarded};
use super::io::{FileRead, Volume, VolumeCursor};

pub struct NtfsFs {
    ntfs: Ntfs,
    cursor: VolumeCursor,
}

fn err(what: &str, e: impl std::fmt::Display) -> FsError {
    FsError(format!("{what}: {e}"))
}

impl NtfsFs {
    pub fn open(volume: &Volume) -> Result<NtfsFs, FsError> {
        let mut cursor = volume.cursor();
        guarded("NTFS", move || {
            let mut ntfs = Ntfs::new(&mut cursor).map_err(|e| err("NTFS unreadable", e))?;
            ntfs.read_upcase_table(&mut cursor)
                .map_err(|e| err("NTFS upcase table unreadable", e))?;
            Ok(NtfsFs { ntfs, cursor })
        })
    }

    fn lookup<'n>(
        ntfs: &'n Ntfs,
        fs: &mut VolumeCursor,
        path: &str,
    ) -> Result<Option<NtfsFile<'n>>, FsError> {
        let mut file = ntfs.root_directory(fs).map_err(|e| err("NTFS root", e))?;
        for comp in components(path) {
            if !file.is_directory() {
                return Ok(None);
            }
            let next = {
                let index = file
                    .directory_index(fs)
                    .map_err(|e| err(&format!("{path}: directory index"), e))?;
                let mut finder = index.finder();
                match NtfsFileNameIndex::find(&mut finder, ntfs, fs, comp) {
                    None => return Ok(None),
                    Some(entry) => {
                        let entry = entry.map_err(|e| err(path, e))?;
                        entry.to_file(ntfs, fs).map_err(|e| err(path, e))?
                    }
                }
            };
            file = next;
        }
        Ok(Some(file))
    }
}

struct NtfsFileReader<'a, 'n, 'f> {
    value: ntfs::attribute_value::NtfsAttributeValue<'n, 'f>,
    fs: &'a mut VolumeCursor,
    size: u64,
}

impl FileRead for NtfsFileReader<'_, '_, '_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let to_io = |e: ntfs::NtfsError| std::io::Error::other(e.to_string());
        self.value
            .seek(self.fs, SeekFrom::Start(offset))
            .map_err(to_io)?;
        self.value.read_exact(self.fs, buf).map_err(to_io)
    }
}

impl GuestFs for NtfsFs {
    fn with_file(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(&mut dyn FileRead) -> Result<(), FsError>,
    ) -> Result<bool, FsError> {
        let ntfs = &self.ntfs;
        let fs = &mut self.cursor;
        guarded("NTFS", || {
            let Some(file) = Self::lookup(ntfs, fs, path)? else {
                return Ok(false);
            };
            if file.is_directory() {
                return Ok(false);
            }
            let Some(item) = file.data(fs, "") else {
                return Err(FsError(format!("{path}: no data stream")));
            };
            let item = item.map_err(|e| err(path, e))?;
            let attribute = item.to_attribute().map_err(|e| err(path, e))?;
            let flags = attribute.flags();
            if flags.intersects(NtfsAttributeFlags::COMPRESSED | NtfsAttributeFlags::ENCRYPTED) {
                return Err(FsError(format!(
                    "{path} is NTFS-compressed or encrypted, which rehost cannot read"
                )));
            }
            let value = attribute.value(fs).map_err(|e| err(path, e))?;
            let size = value.len();
            let mut reader = NtfsFileReader { value, fs, size };
            f(&mut reader)?;
            Ok(true)
        })
    }

    fn list_dir(&mut self, path: &str, max: usize) -> Result<Option<Vec<DirEntry>>, FsError> {
        let ntfs = &self.ntfs;
        let fs = &mut self.cursor;
        guarded("NTFS", || {
            let Some(dir) = Self::lookup(ntfs, fs, path)? else {
                return Ok(None);
            };
            if !dir.is_directory() {
                return Ok(None);
            }
            let index = dir.directory_index(fs).map_err(|e| err(path, e))?;
            let mut entries = index.entries();
            let mut out = Vec::new();
            while let Some(entry) = entries.next(fs) {
                let entry = entry.map_err(|e| err(path, e))?;
                let Some(key) = entry.key() else { continue };
                let name = key.map_err(|e| err(path, e))?;
                if name.namespace() == NtfsFileNamespace::Dos {
                    continue;
                }
                if out.len() >= max {
                    return Err(FsError(format!("{path} has more than {max} entries")));
                }
                out.push(DirEntry {
                    name: name.name().to_string_lossy(),
                    is_dir: name.is_directory(),
                });
            }
            Ok(Some(out))
        })
    }

    fn exists(&mut self, path: &str) -> Result<bool, FsError> {
        let ntfs = &self.ntfs;
        let fs = &mut self.cursor;
        guarded("NTFS", || Ok(Self::lookup(ntfs, fs, path)?.is_some()))
    }
}
