//! Configure scripts: which files an application declares (so `load` reads each once), and
//! the checks of each server's script: type against OS and extension, text, size once wrapped.
//! Pure: the files' bytes (or why they could not be read) come in as [`ScriptFiles`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rehost_replication::domain::Choice;

use crate::app::{ConfigureScript, ScriptType};
use crate::diag::Diagnostics;
use crate::limits::{MAX_SCRIPT_READ, SCRIPT_BUDGET, URL_RESERVE, USER_DATA_LIMIT};
use crate::model::{self, Application, Spanned};
use crate::userdata;
use crate::yaml::Pos;

use super::layers::{Layers, relative_to};

/// Configure scripts as read from disk: each declared path (resolved against the application
/// file's directory) with its bytes, or why they could not be read.
pub type ScriptFiles = BTreeMap<PathBuf, Result<Vec<u8>, ScriptReadError>>;

/// Why a configure script could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptReadError {
    NotFound,
    /// A directory, FIFO, socket or device, named ("a directory").
    NotAFile(&'static str),
    /// Larger than any user data could hold, so not read (its size in bytes, when the file
    /// system reports one).
    TooLarge(Option<u64>),
    /// It resolves (symlinks followed) outside the application's repository.
    OutsideRepository {
        resolved: PathBuf,
        repository: PathBuf,
    },
    /// Any other I/O error, as the OS describes it.
    Io(String),
}

/// What the script checks of every server share, so a script used by thousands of servers is
/// decoded and measured once and held in memory once.
#[derive(Default)]
pub(super) struct ScriptCache {
    /// Each script's text, or why it cannot be used.
    texts: RefCell<HashMap<PathBuf, Result<Arc<str>, String>>>,
    /// Wrapped sizes, by script and type, the checks' block and server-id length.
    #[allow(clippy::type_complexity)]
    wrapped: RefCell<HashMap<(Option<(PathBuf, ScriptType)>, Option<Pos>, usize), usize>>,
}

/// Every configure script the application declares, in any block, as paths to read.
pub fn declared_scripts(model: &Application, base_dir: &Path) -> BTreeSet<PathBuf> {
    let defaults = model.defaults.as_ref().and_then(|d| d.launch.as_ref());
    let groups = model.groups.value.iter().map(|g| g.launch.as_ref());
    let servers = model.servers.value.iter().map(|s| s.launch.as_ref());
    std::iter::once(defaults)
        .chain(groups)
        .chain(servers)
        .flatten()
        .flat_map(|l| {
            let checks = l.checks.iter().flat_map(|c| c.value.iter());
            l.configure_script
                .iter()
                .chain(checks.filter_map(|c| c.script.as_ref()))
        })
        .map(|s| relative_to(base_dir, &s.value))
        .collect()
}

/// A script's text, or the message that says why it cannot be used.
fn script_text(scripts: &ScriptFiles, path: &Path) -> Result<Arc<str>, String> {
    let shown = path.display();
    let bytes = match scripts.get(path) {
        Some(Ok(bytes)) => bytes,
        Some(Err(ScriptReadError::NotFound)) | None => {
            return Err(format!("configure script `{shown}` does not exist"));
        }
        Some(Err(ScriptReadError::NotAFile(kind))) => {
            return Err(format!(
                "configure script `{shown}` is {kind}, not a regular file"
            ));
        }
        Some(Err(ScriptReadError::TooLarge(len))) => {
            let len = len.map_or_else(|| format!("over {MAX_SCRIPT_READ}"), |l| l.to_string());
            return Err(format!(
                "configure script `{shown}` is {len} bytes; EC2 user data holds at most {USER_DATA_LIMIT} bytes"
            ));
        }
        Some(Err(ScriptReadError::OutsideRepository {
            resolved,
            repository,
        })) => {
            return Err(format!(
                "configure script `{shown}` resolves to `{}`, outside the application's repository `{}`: \
                 scripts must live in the repository the application file belongs to",
                resolved.display(),
                repository.display()
            ));
        }
        Some(Err(ScriptReadError::Io(e))) => {
            return Err(format!("configure script `{shown}` cannot be read: {e}"));
        }
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("configure script `{shown}` is not UTF-8 text"))?;
    if text.contains('\0') {
        return Err(format!(
            "configure script `{shown}` contains NUL bytes; it must be text"
        ));
    }
    Ok(Arc::from(text))
}

/// The server's configure script (from the most specific block that names one), checked against
/// its OS, its extension and the user-data budget; None when there is none or it is unusable.
pub(super) fn resolve_script(
    server: &model::Server,
    layers: &Layers<'_>,
    base_dir: &Path,
    scripts: &ScriptFiles,
    cache: &ScriptCache,
    diags: &mut Diagnostics,
) -> Option<ConfigureScript> {
    let (declared, _) = layers.launch(|l| l.configure_script.as_ref())?;
    let declared_type = layers
        .launch(|l| l.configure_script_type.as_ref())
        .map(|(t, _)| t);
    let os = server.os.value;
    let kind = declared_type.map_or(os.native_script(), |t| t.value);
    if kind.os() != os {
        diags.error(
            declared_type.map_or(declared.pos, |t| t.pos),
            format!(
                "server `{}` runs {}: a {} cannot run there; use {}",
                server.id.value,
                os.file_name(),
                kind.file_name(),
                os.native_script().file_name()
            ),
        );
    }
    read_declared(
        declared,
        kind,
        &server.id.value,
        base_dir,
        scripts,
        cache,
        diags,
    )
}

/// A declared script (configure script or script check) of type `kind`: its extension must
/// agree, and its file must be usable text. None (with the error reported) otherwise.
pub(super) fn read_declared(
    declared: &Spanned<String>,
    kind: ScriptType,
    server_id: &str,
    base_dir: &Path,
    scripts: &ScriptFiles,
    cache: &ScriptCache,
    diags: &mut Diagnostics,
) -> Option<ConfigureScript> {
    let lower = declared.value.to_ascii_lowercase();
    let looks_like = if lower.ends_with(".ps1") {
        Some(ScriptType::PowerShell)
    } else if lower.ends_with(".sh") || lower.ends_with(".bash") {
        Some(ScriptType::Shell)
    } else {
        None
    };
    if let Some(ext_kind) = looks_like
        && ext_kind != kind
    {
        diags.error(
                declared.pos,
                format!(
                    "`{}` looks like a {} but runs as {} on server `{}`; set configureScriptType or fix the file",
                    declared.value,
                    ext_kind.file_name(),
                    kind.file_name(),
                    server_id
                ),
            );
    }
    let path = relative_to(base_dir, &declared.value);
    let text = cache
        .texts
        .borrow_mut()
        .entry(path.clone())
        .or_insert_with(|| script_text(scripts, &path))
        .clone();
    let content = match text {
        Ok(c) => c,
        Err(e) => {
            diags.error(declared.pos, e);
            return None;
        }
    };
    Some(ConfigureScript {
        declared: declared.value.clone(),
        path,
        kind,
        content,
    })
}

/// Whether the server's whole user data (wrapper, configure script, checks) fits EC2's 16 KB
/// with room kept for the gate's URL; reported at `pos` (the script, else the checks).
#[allow(clippy::too_many_arguments)]
pub(super) fn check_user_data_size(
    server: &model::Server,
    os: crate::app::Os,
    script: Option<&ConfigureScript>,
    checks: &[crate::app::LaunchCheck],
    checks_pos: Option<Pos>,
    pos: Pos,
    cache: &ScriptCache,
    diags: &mut Diagnostics,
) {
    if script.is_none() && checks.is_empty() {
        return;
    }
    // The wrapper depends on the server only through its id's length: measured once per script,
    // kind and length, however many servers share the script.
    // Checks come from one block, so the block's position stands for them.
    let key = (
        script.map(|s| (s.path.clone(), s.kind)),
        checks_pos,
        server.id.value.len(),
    );
    let size = *cache
        .wrapped
        .borrow_mut()
        .entry(key)
        .or_insert_with(|| userdata::wrapped_size(os, script, checks, &server.id.value));
    if size > SCRIPT_BUDGET {
        let what = match script {
            Some(s) => format!("configure script `{}`", s.declared),
            None => "the checks".to_string(),
        };
        let with = if script.is_some() && !checks.is_empty() {
            " with its checks"
        } else {
            ""
        };
        diags.error(
            pos,
            format!(
                "{what}{with} is {size} bytes once wrapped for server `{}`; EC2 user data holds {} bytes \
                 and {} of them are kept for the launch gate's signal URL",
                server.id.value,
                USER_DATA_LIMIT,
                URL_RESERVE
            ),
        );
    }
}
