//! Reading an application: parse, decode, read the configure scripts it declares, validate,
//! resolve, check the templates it renders. All problems at once.
//!
//! This is the only place the pure core meets the file system: everything after
//! [`read_script`] works from bytes.

use std::path::Path;

use crate::app::App;
use crate::diag::{Diagnostic, Diagnostics};
use crate::limits::MAX_SCRIPT_READ;
use crate::validate::{ScriptFiles, ScriptReadError};
use crate::{decode, template, validate, yaml};

/// A file that could not be loaded, with every problem found, in file order.
#[derive(Debug)]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
}

/// The validated application and the warnings it still deserves.
#[derive(Debug)]
pub struct Loaded {
    pub app: App,
    pub warnings: Vec<Diagnostic>,
}

/// Loads from the application file's bytes, already read; `file` resolves relative paths and
/// names the file in messages. Reads the configure scripts the file declares.
pub fn load_bytes(bytes: &[u8], file: &Path) -> Result<Loaded, Invalid> {
    load_with(bytes, file, |model| {
        validate::declared_scripts(model, validate::base_dir(file))
            .into_iter()
            .map(|path| {
                let read = read_script(&path);
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
            return Err(Invalid {
                diagnostics: diags.into_sorted(),
            });
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
            warnings: diags.into_sorted(),
        }),
        _ => Err(Invalid {
            diagnostics: diags.into_sorted(),
        }),
    }
}

/// Reads one configure script, refusing files too large for any user data before reading them.
pub fn read_script(path: &Path) -> Result<Vec<u8>, ScriptReadError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScriptReadError::NotFound,
        _ => ScriptReadError::Io(e.to_string()),
    })?;
    if !meta.is_file() {
        return Err(ScriptReadError::NotAFile);
    }
    if meta.len() > MAX_SCRIPT_READ {
        return Err(ScriptReadError::TooLarge(meta.len()));
    }
    std::fs::read(path).map_err(|e| ScriptReadError::Io(e.to_string()))
}
