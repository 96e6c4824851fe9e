//! What several subcommands share: loading an application with its diagnostics printed, writing
//! outputs atomically, the mode flag.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::app::Mode;
use crate::error::InvalidInput;
use crate::load::{Loaded, load_bytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Test,
    Cutover,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Test => Mode::Test,
            ModeArg::Cutover => Mode::Cutover,
        }
    }
}

/// Loads and validates an application file. Problems go to stderr as FILE:LINE:COL lines; an
/// invalid file becomes an `InvalidInput` error (exit code 2).
pub fn load_app(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::Error::new(InvalidInput::new(format!(
            "{}: no such file",
            path.display()
        ))),
        _ => anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
    })?;
    match load_bytes(&bytes, path) {
        Ok(loaded) => {
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            for w in &loaded.warnings {
                let _ = writeln!(err, "{}", w.display(path));
            }
            Ok(loaded)
        }
        Err(invalid) => {
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            for d in &invalid.diagnostics {
                let _ = writeln!(err, "{}", d.display(path));
            }
            let errors = invalid
                .diagnostics
                .iter()
                .filter(|d| d.severity == crate::diag::Severity::Error)
                .count();
            Err(InvalidInput::new(format!(
                "{} is invalid: {errors} problem{}",
                path.display(),
                if errors == 1 { "" } else { "s" }
            ))
            .into())
        }
    }
}

/// Writes `content` to `out` (or stdout for None / "-") atomically: a temporary file beside the
/// target, renamed over it, so a crash never leaves a half-written template.
pub fn write_output(out: Option<&Path>, content: &str) -> anyhow::Result<()> {
    match out {
        None => write_stdout(content),
        Some(p) if p == Path::new("-") => write_stdout(content),
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .context("output path has no file name")?
                .to_string_lossy();
            let tmp: PathBuf = dir.join(format!(".{name}.rehost-{}.tmp", std::process::id()));
            let result = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(content.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.with_context(|| format!("cannot write {}", path.display()))
        }
    }
}

fn write_stdout(content: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(content.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `rehost render | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}
