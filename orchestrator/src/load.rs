//! Reading an application: parse, decode, read the configure scripts it declares, validate,
//! resolve, check the templates it renders. All problems at once.
//!
//! This is the only place the pure core meets the file system: everything after
//! [`read_script`] works from bytes.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::app::App;
use crate::diag::{Diagnostic, Diagnostics};
use crate::limits::{MAX_FILE_BYTES, MAX_SCRIPT_READ};
use crate::validate::{ScriptFiles, ScriptReadError};
use crate::{decode, template, validate, yaml};

/// A file that could not be loaded, with the problems found, in file order (repeats of one kind
/// capped, see `Diagnostics::into_report`).
#[derive(Debug)]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
    /// Errors found in all, shown or not.
    pub errors: usize,
}

impl Invalid {
    fn from(diags: Diagnostics) -> Invalid {
        let report = diags.into_report();
        Invalid {
            diagnostics: report.shown,
            errors: report.errors,
        }
    }
}

/// The validated application and the warnings it still deserves.
#[derive(Debug)]
pub struct Loaded {
    pub app: App,
    pub warnings: Vec<Diagnostic>,
}

/// Loads from the application file's bytes, already read; `file` resolves relative paths and
/// names the file in messages. Reads the configure scripts the file declares, each only if it
/// resolves inside the application's repository.
pub fn load_bytes(bytes: &[u8], file: &Path) -> Result<Loaded, Invalid> {
    load_with(bytes, file, |model| {
        let repository = repository_of(file);
        validate::declared_scripts(model, validate::base_dir(file))
            .into_iter()
            .map(|path| {
                let read = match &repository {
                    Ok(root) => read_script(&path, root),
                    Err(e) => Err(ScriptReadError::Io(format!(
                        "the application file's directory cannot be resolved: {e}"
                    ))),
                };
                (path, read)
            })
            .collect()
    })
}

/// Loads with the configure scripts supplied by `scripts` (given the decoded model): pure when
/// `scripts` is, which is how tests load applications without files.
pub fn load_with(
    bytes: &[u8],
    file: &Path,
    scripts: impl FnOnce(&crate::model::Application) -> ScriptFiles,
) -> Result<Loaded, Invalid> {
    let mut diags = Diagnostics::default();
    let root = match yaml::parse(bytes) {
        Ok(root) => root,
        Err(e) => {
            diags.error(e.pos, e.message);
            return Err(Invalid::from(diags));
        }
    };
    let model = decode::application(&root, &mut diags);
    let app = model.as_ref().and_then(|m| {
        let scripts = scripts(m);
        validate::resolve(m, file, &scripts, &mut diags)
    });
    if let Some(app) = &app {
        template::check(app, &mut diags);
    }
    match app {
        Some(app) if !diags.has_errors() => Ok(Loaded {
            app,
            warnings: diags.into_report().shown,
        }),
        _ => Err(Invalid::from(diags)),
    }
}

/// The repository an application file belongs to, which its configure scripts must stay in:
/// the enclosing git work tree (the nearest ancestor directory holding `.git`, a directory or,
/// in a linked work tree or submodule, a file), else the file's own directory. Symlinks in the
/// path are resolved.
pub fn repository_of(file: &Path) -> std::io::Result<PathBuf> {
    let dir = validate::base_dir(file);
    let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    let enclosing = dir
        .ancestors()
        .find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
        .map(Path::to_path_buf);
    Ok(enclosing.unwrap_or(dir))
}

/// Reads one configure script: it must resolve (symlinks followed) inside `repository` and be a
/// regular file, read through a bound far below what could exhaust memory.
pub fn read_script(path: &Path, repository: &Path) -> Result<Vec<u8>, ScriptReadError> {
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        // A missing file outside the repository is reported as outside: that is the mistake.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let normal = resolve_missing(path);
            return Err(if normal.starts_with(repository) {
                ScriptReadError::NotFound
            } else {
                ScriptReadError::OutsideRepository {
                    resolved: normal,
                    repository: repository.to_path_buf(),
                }
            });
        }
        Err(e) => return Err(ScriptReadError::Io(e.to_string())),
    };
    if !resolved.starts_with(repository) {
        return Err(ScriptReadError::OutsideRepository {
            resolved,
            repository: repository.to_path_buf(),
        });
    }
    read_regular_file(&resolved, MAX_SCRIPT_READ).map_err(|e| match e {
        ReadError::NotFound => ScriptReadError::NotFound,
        ReadError::NotRegular(kind) => ScriptReadError::NotAFile(kind),
        ReadError::TooLarge { size, .. } => ScriptReadError::TooLarge(size),
        ReadError::Io(e) => ScriptReadError::Io(e.to_string()),
    })
}

/// Where a path that does not exist would be: its deepest existing ancestor resolved, then the
/// rest with `.` and `..` applied to the text.
fn resolve_missing(path: &Path) -> PathBuf {
    let (base, rest) = path
        .ancestors()
        .skip(1)
        .find_map(|a| {
            let base = std::fs::canonicalize(if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            })
            .ok()?;
            Some((base, path.strip_prefix(a).ok()?))
        })
        .unwrap_or_else(|| (PathBuf::from("/"), path));
    let mut out = base;
    for part in rest.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads an application file through the input bound (`limits::MAX_FILE_BYTES`): `/dev/zero`,
/// a FIFO or a directory is refused before anything is read.
pub fn read_application_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_regular_file(path, MAX_FILE_BYTES as u64)
}

/// Why a file the loader reads was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no such file")]
    NotFound,
    /// A directory, FIFO, socket or device, named.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// Over `limit` bytes; `size` when the file system reports one (a `/proc` file reports 0).
    #[error("is larger than the {limit} bytes rehost reads{}", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge { limit: u64, size: Option<u64> },
    #[error(transparent)]
    Io(std::io::Error),
}

/// Reads a regular file, at most `limit` bytes. The type is checked twice: by path before
/// opening (opening a device can have effects), then on the open descriptor, which is opened
/// non-blocking so a FIFO swapped in between cannot hang the read. The size the file system
/// reports is not trusted: at most `limit + 1` bytes are read, and a file that yields more is
/// refused.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| match e.kind() {
        ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    };
    regular(&std::fs::metadata(path).map_err(io)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    regular(&meta)?;
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            limit,
            size: Some(meta.len()),
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit, size: None });
    }
    Ok(bytes)
}

fn regular(meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    };
    Err(ReadError::NotRegular(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rehost-load-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A `/proc` file reports size 0: the bound holds on what is read, not on what is reported.
    #[test]
    fn the_read_bound_holds_for_files_that_report_size_zero() {
        let meta = std::fs::metadata("/proc/self/status").unwrap();
        assert_eq!(meta.len(), 0, "the premise: /proc reports no size");
        match read_regular_file(Path::new("/proc/self/status"), 16) {
            Err(ReadError::TooLarge {
                limit: 16,
                size: None,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(read_regular_file(Path::new("/proc/self/status"), 1 << 20).is_ok());
    }

    #[test]
    fn the_repository_is_the_nearest_git_work_tree_or_the_files_directory() {
        let dir = scratch("repository");
        let canonical = std::fs::canonicalize(&dir).unwrap();
        std::fs::create_dir_all(dir.join("plain/apps")).unwrap();
        assert_eq!(
            repository_of(&dir.join("plain/apps/app.yaml")).unwrap(),
            canonical.join("plain/apps")
        );
        // A linked work tree or a submodule has a `.git` file.
        std::fs::create_dir_all(dir.join("linked/apps")).unwrap();
        std::fs::write(dir.join("linked/.git"), "gitdir: /elsewhere\n").unwrap();
        assert_eq!(
            repository_of(&dir.join("linked/apps/app.yaml")).unwrap(),
            canonical.join("linked")
        );
        std::fs::create_dir_all(dir.join("tree/.git")).unwrap();
        std::fs::create_dir_all(dir.join("tree/a/b")).unwrap();
        assert_eq!(
            repository_of(&dir.join("tree/a/b/app.yaml")).unwrap(),
            canonical.join("tree")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
