//! Helpers several subcommands share: loading an application with its diagnostics printed,
//! writing outputs atomically, the replication state, `--ami` and `--server` checks, and how
//! library errors map to exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use rehost::app::App;
use rehost::diag::{Severity, suggestion};
use rehost::error::InvalidInput;
use rehost::launch::deploy::{self, Deployment};
use rehost::launch::{AwsClients, LaunchError};
use rehost::load::{Loaded, load_bytes};
use rehost_replication::ServerReport;

use crate::cli::args::{AwsArgs, LaunchFlags, TemplateFlags};
use crate::cli::io::Io;
use crate::cli::print;
use crate::cli::progress::Progress;

/// Loads and validates an application file. Problems go to `err` as FILE:LINE:COL lines; an
/// invalid file becomes an `InvalidInput` error (exit code 2).
pub fn load_app(path: &Path, err: &mut dyn Write) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::Error::new(InvalidInput::new(format!(
            "{}: no such file",
            path.display()
        ))),
        _ => anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
    })?;
    match load_bytes(&bytes, path) {
        Ok(loaded) => {
            print::diagnostics(err, path, &loaded.warnings)?;
            Ok(loaded)
        }
        Err(invalid) => {
            print::diagnostics(err, path, &invalid.diagnostics)?;
            let errors = invalid
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
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

/// Writes `content` to the file `out`, or to `stdout` for None / "-". A file is written
/// atomically: a temporary file beside the target, renamed over it, so a crash never leaves a
/// half-written template.
pub fn write_output(
    out: Option<&Path>,
    content: &str,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    match out {
        None => write_stdout(stdout, content),
        Some(p) if p == Path::new("-") => write_stdout(stdout, content),
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

fn write_stdout(stdout: &mut dyn Write, content: &str) -> anyhow::Result<()> {
    stdout
        .write_all(content.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

/// Every `--server` must name a server of the application; all wrong ones are reported at once.
pub fn validate_server_ids(app: &App, ids: &[String]) -> anyhow::Result<()> {
    let wrong: Vec<String> = ids
        .iter()
        .filter(|id| app.server(id).is_none())
        .map(|id| {
            format!(
                "--server {id}: no such server in application {}{}",
                app.name,
                suggestion(id, app.servers.iter().map(|s| s.id.as_str()))
            )
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(InvalidInput::new(wrong.join("\n")).into())
    }
}

/// An error naming every server whose replication failed, if any did.
pub fn all_replicated(reports: &[ServerReport]) -> anyhow::Result<()> {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.ami_id.is_none())
        .map(|r| r.server.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("replication failed for {}", failed.join(", "))
    }
}

/// Pre-flight findings and refusals are the user's to fix (exit code 2); other launch errors
/// are runtime failures (1).
pub fn exit_code_of(e: LaunchError) -> anyhow::Error {
    if e.is_invalid_input() {
        InvalidInput::new(e.to_string()).into()
    } else {
        e.into()
    }
}

/// A launch as `launch` and `migrate` run it: refuse `--portable`, render with the AMI
/// defaults, deploy with progress on `io.err`, and print the outcome on `io.out`.
pub async fn deploy_and_report(
    clients: &AwsClients,
    app: &App,
    template: &TemplateFlags,
    flags: &LaunchFlags,
    aws: &AwsArgs,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    deploy::refuse_portable(template.portable).map_err(exit_code_of)?;
    let options = template.options(app, aws).await?;
    let deployment = Deployment {
        app,
        options: &options,
        on_failure: flags.on_failure,
        follow: !flags.no_wait,
        timeout_minutes: flags.timeout,
    };
    let outcome = deploy::deploy(clients, &deployment, &mut Progress::new(io.err))
        .await
        .map_err(exit_code_of)?;
    print::outcome(io.out, &app.file, &outcome)?;
    Ok(())
}
