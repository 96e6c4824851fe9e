//! Helpers several subcommands share: loading an application with its diagnostics printed,
//! writing outputs atomically, the replication state, `--ami` and `--server` checks, and how
//! library errors map to exit codes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use rehost::app::App;
use rehost::diag::suggestion;
use rehost::error::InvalidInput;
use rehost::inspected::{contradictions, fill_ami_settings};
use rehost::launch::{AwsClients, LaunchError};
use rehost::limits::MAX_S3_BODY;
use rehost::load::{Loaded, ReadError, load_bytes, read_application_file};
use rehost::template::{Package, TEMPLATE_BASE_URL};
use rehost_replication::inspect::{ServerInspection, inspect_cached};
use rehost_replication::state::StateLocation;
use rehost_replication::{ScheduledJob, ServerReport, StateError, StateStore};
use serde_json::Value;

use crate::cli::args::{AwsArgs, open_state};
use crate::cli::io::Io;
use crate::cli::print;

/// Loads and validates an application file. Problems go to `err` as FILE:LINE:COL lines; an
/// invalid file becomes an `InvalidInput` error (exit code 2), and so does a path that is not a
/// regular file or holds more than an application file may (nothing past the bound is read).
pub fn load_app(path: &Path, err: &mut dyn Write) -> anyhow::Result<Loaded> {
    let bytes = read_application_file(path).map_err(|e| match e {
        ReadError::Io(e) => {
            anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
        }
        refused => anyhow::Error::new(InvalidInput::new(format!("{}: {refused}", path.display()))),
    })?;
    match load_bytes(&bytes, path) {
        Ok(loaded) => {
            print::diagnostics(err, path, &loaded.warnings)?;
            Ok(loaded)
        }
        Err(invalid) => {
            print::diagnostics(err, path, &invalid.diagnostics)?;
            let errors = invalid.errors;
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
/// atomically: into a new temporary file beside the target (created exclusively under an
/// unpredictable name, so nothing planted there is followed or overwritten), then renamed over
/// it, so a crash never leaves a half-written template. A symlink at the target itself is
/// replaced, not followed.
/// Writes what `render` (or `share`) rendered: a flat template to `output` (or standard
/// output); a nested package into the directory `output`, which it needs.
pub fn write_rendered(
    app: &str,
    package: Package,
    output: Option<&Path>,
    yaml: bool,
    io: &mut Io<'_>,
) -> anyhow::Result<()> {
    let nested = match package {
        Package::Flat(template) => {
            let text = text_of(&template.body, yaml, io)?;
            return write_output(output, &text, io.out);
        }
        Package::Nested(nested) => nested,
    };
    let Some(dir) = output.filter(|o| *o != Path::new("-")) else {
        return Err(InvalidInput::new(format!(
            "{app} is rendered as nested stacks: a parent template and {} child templates; \
             give a directory to write them to with -o DIR",
            nested.children.len()
        ))
        .into());
    };
    let ext = if yaml { "yaml" } else { "json" };
    let files = nested
        .files(ext)
        .into_iter()
        .map(|(name, body)| Ok((name, text_of(&body, yaml, io)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    write_package(dir, &files)?;
    writeln!(
        io.err,
        "wrote {}/template.{ext} and {} nested stack templates beside it; launch it with the \
         parameter {TEMPLATE_BASE_URL} set to the URL of an S3 folder holding them (`rehost launch` \
         uploads them itself)",
        dir.display(),
        nested.children.len()
    )?;
    Ok(())
}

/// A template as text in the chosen format.
fn text_of(body: &Value, yaml: bool, io: &mut Io<'_>) -> anyhow::Result<String> {
    Ok(if !yaml {
        {
            let mut pretty = serde_json::to_string_pretty(body)?;
            pretty.push('\n');
            if pretty.len() > MAX_S3_BODY {
                // Indentation alone can push a large template over CloudFormation's limit.
                writeln!(
                    io.err,
                    "note: the indented template would be {} bytes, over CloudFormation's {MAX_S3_BODY}: writing it compact",
                    pretty.len(),
                )?;
                serde_json::to_string(body)? + "\n"
            } else {
                pretty
            }
        }
    } else {
        rehost::template::to_yaml(body)
    })
}
/// Writes a template package into `dir` (created when missing), each file atomically.
pub fn write_package(dir: &Path, files: &[(String, String)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        write_output(Some(&dir.join(name)), text, &mut std::io::sink())?;
    }
    Ok(())
}

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
            let result = (|| {
                let mut tmp = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".rehost.tmp")
                    // What File::create would give (the umask applies), not tempfile's 0600.
                    .permissions(std::fs::Permissions::from_mode(0o666))
                    .tempfile_in(dir)?;
                tmp.write_all(content.as_bytes())?;
                tmp.as_file().sync_all()?;
                // Dropped on error, the temporary file is removed.
                tmp.persist(path).map_err(|e| e.error)?;
                Ok::<_, std::io::Error>(())
            })();
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
    validate_named_servers(app, "--server", ids)
}

/// Every value of a flag naming servers (`--server`, `--accept-risk`) must name a server of the
/// application; all wrong ones are reported at once (exit code 2).
pub fn validate_named_servers(app: &App, flag: &str, ids: &[String]) -> anyhow::Result<()> {
    let wrong: Vec<String> = ids
        .iter()
        .filter(|id| app.server(id).is_none())
        .map(|id| {
            format!(
                "{flag} {id}: no such server in application {}{}",
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

/// An error naming every server whose replication failed, if any did. A server whose disks
/// the source checks refused is the operator's to fix (exit code 2), like any invalid input;
/// other failures are runtime failures (1) that the next run resumes.
pub fn all_replicated(reports: &[ServerReport]) -> anyhow::Result<()> {
    let names = |refused: bool| -> Vec<&str> {
        reports
            .iter()
            .filter(|r| r.ami_id.is_none() && r.refused == refused)
            .map(|r| r.server.as_str())
            .collect()
    };
    let (refused, failed) = (names(true), names(false));
    let mut message = Vec::new();
    if !refused.is_empty() {
        message.push(format!(
            "disks refused for {} (fix the disk or its definition)",
            refused.join(", ")
        ));
    }
    if !failed.is_empty() {
        message.push(format!("replication failed for {}", failed.join(", ")));
    }
    match (refused.is_empty(), message.is_empty()) {
        (_, true) => Ok(()),
        (false, false) => Err(InvalidInput::new(message.join("; ")).into()),
        (true, false) => Err(anyhow::anyhow!(message.join("; "))),
    }
}

/// The state store of a command that talks to AWS: opened (a state on S3 reached with `aws`),
/// and bound to the account and region the credentials reach (recorded on first use; a state
/// bound to another one is refused, exit code 2) before the command changes anything in AWS.
pub async fn bound_state(
    location: &StateLocation,
    aws: &AwsArgs,
    app: &App,
    clients: &AwsClients,
) -> anyhow::Result<Arc<dyn StateStore>> {
    let store = open_state(location, aws).await?;
    bind_state(store.as_ref(), app, clients).await?;
    Ok(store)
}

/// Binds an opened state to the account and region `clients` reach, or refuses it (exit code
/// 2) when it is bound to another.
pub async fn bind_state(
    store: &dyn StateStore,
    app: &App,
    clients: &AwsClients,
) -> anyhow::Result<()> {
    let identity = clients.identity().await.map_err(exit_code_of)?;
    store
        .ensure_account(&app.name, &identity)
        .await
        .map_err(state_error)
}

/// For the commands that only read the state (`status`, `cutover --dry-run`): a state bound to
/// another account or region is refused (exit code 2), as every command refuses it (its
/// replications would be shown beside another account's stacks); nothing is recorded. Works
/// offline: without credentials (no identity) there is nothing to compare.
pub async fn check_bound_account(
    store: &dyn StateStore,
    app: &str,
    clients: &AwsClients,
) -> anyhow::Result<()> {
    let Ok(identity) = clients.identity().await else {
        return Ok(());
    };
    match store.account_binding(app).await? {
        Some(recorded) => {
            rehost_replication::state::check_account(&store.location(), app, &recorded, &identity)
                .map_err(state_error)
        }
        None => Ok(()),
    }
}

/// A state error as the CLI reports it: the operator's to fix (exit code 2) when the state is
/// bound to another account or region, its location is wrong, the bucket unfit or not set up,
/// or a migration would overwrite other records.
pub fn state_error(e: StateError) -> anyhow::Error {
    if e.is_refusal() {
        InvalidInput::new(e.to_string()).into()
    } else {
        e.into()
    }
}

/// Refuses (exit code 2) an application whose `bootMode`, `architecture` or `os` settings the
/// servers' inspections contradict, each printed on `err` as FILE:LINE:COL.
pub fn refuse_contradictions(
    app: &App,
    inspections: &std::collections::BTreeMap<String, ServerInspection>,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let found = contradictions(app, inspections);
    if found.is_empty() {
        return Ok(());
    }
    print::diagnostics(err, &app.file, &found)?;
    Err(InvalidInput::new(format!(
        "{} contradicts what is on its servers' disks: {} problem{}",
        app.file.display(),
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    ))
    .into())
}

/// Before replicating: inspects the jobs' servers (a server whose disks are unchanged since
/// its cached inspection is not read again), refuses settings the inspections contradict, and
/// fills in each job's boot mode and architecture the file leaves open (`architecture_set`:
/// `--architecture` was given). A server whose disks cannot be inspected is warned about and
/// replicated as the file says (its replication reports why the disk cannot be read).
pub async fn inspect_jobs(
    store: &dyn StateStore,
    app: &App,
    jobs: &mut [ScheduledJob],
    architecture_set: bool,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let servers: Vec<(String, Vec<rehost_replication::DiskJob>)> = jobs
        .iter()
        .map(|j| (j.job.server.clone(), j.job.disks.clone()))
        .collect();
    let mut inspections = std::collections::BTreeMap::new();
    for result in inspect_cached(store, &app.name, &servers, false).await? {
        match result {
            Ok(inspected) => {
                let i = inspected.inspection;
                inspections.insert(i.server.clone(), i);
            }
            Err(e) => writeln!(err, "warning: not inspected: {e}")?,
        }
    }
    refuse_contradictions(app, &inspections, err)?;
    for job in jobs {
        if let (Some(server), Some(found)) = (
            app.server(&job.job.server),
            inspections.get(&job.job.server),
        ) {
            fill_ami_settings(&mut job.job, server, found, architecture_set);
        }
    }
    Ok(())
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

/// Hooks run in the application file's directory.
pub fn app_dir(app: &App) -> &Path {
    app.file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8 item 13: the output was written through `.NAME.rehost-<pid>.tmp` with
    /// `File::create`, which follows a symlink another user planted there.
    #[test]
    fn output_file_never_follows_a_symlink_planted_at_the_old_temporary_name() {
        let dir = std::env::temp_dir().join(format!("rehost-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        // The one name the old scheme used for this process, and the target itself.
        let planted = dir.join(format!(".t.json.rehost-{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let other_victim = dir.join("other-victim");
        std::fs::write(&other_victim, "also precious\n").unwrap();
        let target = dir.join("t.json");
        std::os::unix::fs::symlink(&other_victim, &target).unwrap();

        write_output(Some(&target), "{\"template\": 1}\n", &mut Vec::new()).unwrap();

        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            std::fs::read_to_string(&other_victim).unwrap(),
            "also precious\n"
        );
        assert_eq!(
            std::fs::read_link(&planted).unwrap(),
            victim,
            "left untouched"
        );
        let meta = std::fs::symlink_metadata(&target).unwrap();
        assert!(
            meta.is_file(),
            "the target is replaced by a file, not followed"
        );
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "{\"template\": 1}\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rehost.tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn output_file_keeps_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("rehost-output-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("t.yaml");
        write_output(Some(&target), "a: 1\n", &mut Vec::new()).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(mode, 0o666 & !umask, "as File::create makes it, not 0600");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
