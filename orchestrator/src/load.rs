//! Reading an application file: parse, decode, validate, resolve. All problems at once.

use std::path::Path;

use crate::app::App;
use crate::diag::{Diagnostic, Diagnostics};
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

/// Loads from bytes already read; `file` is used for resolving relative paths and in messages.
pub fn load_bytes(bytes: &[u8], file: &Path) -> Result<Loaded, Invalid> {
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
    let app = model
        .as_ref()
        .and_then(|m| validate::resolve(m, file, &mut diags));
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
