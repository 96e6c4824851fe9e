//! The application lock of a file-based state: an `flock` on `<db>.<app>.lock` beside the
//! database, holding the holder's pid. The kernel releases it when the process ends, SIGKILL
//! included, so a killed run never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{AppLockGuard, StateError};

/// Held for a whole replication of an application; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct AppLock {
    _file: File,
    path: PathBuf,
    app: String,
}

impl AppLock {
    /// Takes the lock of `app` for the state database `db`, or says who holds it.
    pub fn acquire(db: &Path, app: &str) -> Result<AppLock, StateError> {
        let path = lock_path(db, app);
        let lock_err = |source| StateError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateError::Locked {
                    app: app.to_string(),
                    holder: if holder.is_empty() {
                        "process unknown".into()
                    } else {
                        format!("process {holder}")
                    },
                    location: format!("lock file {}", path.display()),
                });
            }
            return Err(lock_err(err));
        }
        let describe = format!("{}", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(describe.as_bytes()))
            .map_err(lock_err)?;
        Ok(AppLock {
            _file: file,
            path,
            app: app.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AppLockGuard for AppLock {
    fn app(&self) -> &str {
        &self.app
    }
    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// `<db file name>.<app>.lock` beside the database, the application name reduced to
/// characters safe in a file name.
fn lock_path(db: &Path, app: &str) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.db".into());
    let safe: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    db.with_file_name(format!("{name}.{safe}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_sit_beside_the_database_with_safe_names() {
        assert_eq!(
            lock_path(Path::new("/x/.rehost/state.db"), "shop"),
            Path::new("/x/.rehost/state.db.shop.lock")
        );
        assert_eq!(
            lock_path(Path::new("state.db"), "../a b/c"),
            Path::new("state.db.___a_b_c.lock")
        );
    }

    #[test]
    fn the_lock_file_names_its_holder_and_is_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let lock = AppLock::acquire(&db, "shop").unwrap();
        assert_eq!(lock.app(), "shop");
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text, std::process::id().to_string());
        match AppLock::acquire(&db, "shop") {
            Err(StateError::Locked {
                holder, location, ..
            }) => {
                assert_eq!(holder, format!("process {}", std::process::id()));
                assert_eq!(location, format!("lock file {}", lock.path().display()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        AppLock::acquire(&db, "shop").unwrap();
    }
}
