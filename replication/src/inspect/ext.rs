//! ext2/3/4 through `ext4-view` (read-only, no unsafe, designed not to panic or loop on corrupt
//! data); every call is still guarded, and its reads go through the server's budget.

use std::io::{Read, Seek, SeekFrom};

use ext4_view::{Ext4, Ext4Error};

use super::guestfs::{DirEntry, FsError, GuestFs, guarded};
use super::io::{FileRead, Volume};

pub struct ExtFs {
    fs: Ext4,
}

impl ExtFs {
    pub fn open(volume: &Volume) -> Result<ExtFs, FsError> {
        let volume = volume.clone();
        guarded("ext4", move || {
            Ext4::load(Box::new(volume))
                .map(|fs| ExtFs { fs })
                .map_err(|e| FsError(format!("ext filesystem unreadable: {e}")))
        })
    }

    /// The filesystem UUID as `/etc/fstab` writes it (lowercase, dashed).
    pub fn uuid(&self) -> String {
        self.fs.uuid().to_string().to_ascii_lowercase()
    }

    pub fn label(&self) -> String {
        self.fs.label().to_str().unwrap_or_default().to_string()
    }
}

fn err(path: &str, e: Ext4Error) -> FsError {
    FsError(format!("{path}: {e}"))
}

fn missing(e: &Ext4Error) -> bool {
    matches!(
        e,
        Ext4Error::NotFound | Ext4Error::NotADirectory | Ext4Error::IsADirectory
    )
}

struct ExtFile(ext4_view::File);

impl FileRead for ExtFile {
    fn size(&self) -> u64 {
        self.0.metadata().len()
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.read_exact(buf)
    }
}

impl GuestFs for ExtFs {
    fn with_file(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(&mut dyn FileRead) -> Result<(), FsError>,
    ) -> Result<bool, FsError> {
        guarded("ext4", || match self.fs.open(path) {
            Ok(file) => {
                f(&mut ExtFile(file))?;
                Ok(true)
            }
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(err(path, e)),
        })
    }

    fn list_dir(&mut self, path: &str, max: usize) -> Result<Option<Vec<DirEntry>>, FsError> {
        guarded("ext4", || {
            let iter = match self.fs.read_dir(path) {
                Ok(i) => i,
                Err(e) if missing(&e) => return Ok(None),
                Err(e) => return Err(err(path, e)),
            };
            let mut out = Vec::new();
            for entry in iter {
                let entry = entry.map_err(|e| err(path, e))?;
                let name = entry.file_name();
                let Ok(name) = name.as_str() else { continue };
                if name == "." || name == ".." {
                    continue;
                }
                if out.len() >= max {
                    return Err(FsError(format!("{path} has more than {max} entries")));
                }
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                out.push(DirEntry {
                    name: name.to_string(),
                    is_dir,
                });
            }
            Ok(Some(out))
        })
    }

    fn exists(&mut self, path: &str) -> Result<bool, FsError> {
        guarded("ext4", || match self.fs.exists(path) {
            Ok(b) => Ok(b),
            Err(e) if missing(&e) => Ok(false),
            Err(e) => Err(err(path, e)),
        })
    }

    fn read_link(&mut self, path: &str) -> Result<Option<String>, FsError> {
        guarded("ext4", || match self.fs.read_link(path) {
            Ok(p) => Ok(p.to_str().ok().map(str::to_string)),
            Err(Ext4Error::NotASymlink) => Ok(None),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(err(path, e)),
        })
    }
}
