//! What several subcommands share: loading an application with its diagnostics printed, writing
//! outputs atomically, the mode flag.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use rehost::app::{App, Mode};
use rehost::diag::suggestion;
use rehost::error::InvalidInput;
use rehost::load::{Loaded, load_bytes};

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
                .filter(|d| d.severity == rehost::diag::Severity::Error)
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How to reach AWS: the standard chain (environment, profiles, SSO, instance metadata) and the
/// standard `AWS_ENDPOINT_URL` override, with rehost's retry and timeout policy.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// AWS region (default: from the environment or profile).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
}

impl AwsArgs {
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let opts = rehost_replication::aws::AwsOptions {
            region: self.region.clone(),
            ..Default::default()
        };
        rehost_replication::aws::load_sdk_config(&opts).await
    }
}

/// The replication state database: `--state`, else `.rehost/state.db` beside the application file.
pub fn state_path(explicit: Option<&Path>, app_file: &Path) -> PathBuf {
    explicit.map_or_else(
        || rehost_replication::state::default_state_path(app_file),
        Path::to_path_buf,
    )
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

/// The latest replicated AMI of each server, for template parameter defaults. A missing state
/// database means nothing was replicated yet (and is not created by reading).
pub async fn replicated_amis(
    state: &Path,
    app: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    if !state.exists() {
        return Ok(Default::default());
    }
    let store = rehost_replication::SqliteStore::open(state).await?;
    Ok(rehost_replication::StateStore::latest_amis(&store, app)
        .await?
        .into_iter()
        .map(|(server, ami)| (server, ami.ami_id))
        .collect())
}
