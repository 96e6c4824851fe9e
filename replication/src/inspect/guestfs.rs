//! What the OS probes need from a guest filesystem, whatever its kind: read a small file, list a
//! directory, test a path, read a file at offsets. Paths are absolute and '/'-separated; FAT and
//! NTFS compare names without case.

use std::fmt;
use std::io;

use super::io::FileRead;

/// Why a filesystem read failed; it becomes the reason of an `unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError(pub String);

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FsError {}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> FsError {
        FsError(e.to_string())
    }
}

impl From<String> for FsError {
    fn from(s: String) -> FsError {
        FsError(s)
    }
}

impl From<&str> for FsError {
    fn from(s: &str) -> FsError {
        FsError(s.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// A readable guest filesystem.
pub trait GuestFs {
    /// Runs `f` on the file at `path`; `Ok(false)` when there is no such file.
    fn with_file(
        &mut self,
        path: &str,
        f: &mut dyn FnMut(&mut dyn FileRead) -> Result<(), FsError>,
    ) -> Result<bool, FsError>;

    /// The entries of a directory (at most `max`), `None` when it does not exist.
    fn list_dir(&mut self, path: &str, max: usize) -> Result<Option<Vec<DirEntry>>, FsError>;

    /// Whether a file or directory exists at `path`.
    fn exists(&mut self, path: &str) -> Result<bool, FsError>;

    /// The target of a symbolic link, where the filesystem has them.
    fn read_link(&mut self, _path: &str) -> Result<Option<String>, FsError> {
        Ok(None)
    }

    /// A whole file of at most `max` bytes; `None` when missing, an error when larger.
    fn read_file(&mut self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let mut out = None;
        let found = self.with_file(path, &mut |file| {
            let size = file.size();
            if size > max {
                return Err(FsError(format!(
                    "{path} is {size} bytes, more than the {max} read for it"
                )));
            }
            let mut buf = vec![0u8; size as usize];
            file.read_exact_at(0, &mut buf)?;
            out = Some(buf);
            Ok(())
        })?;
        Ok(if found { out } else { None })
    }

    /// A whole text file (lossy UTF-8), as `read_file`.
    fn read_text(&mut self, path: &str, max: u64) -> Result<Option<String>, FsError> {
        Ok(self
            .read_file(path, max)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

/// Splits an absolute path into its non-empty components.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
}

/// Runs `f` and turns a panic inside a third-party reader into an error, so a hostile image
/// never brings the process down.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, FsError>) -> Result<T, FsError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(FsError(format!(
                "{what} reader failed on damaged data: {detail}"
            )))
        }
    }
}
