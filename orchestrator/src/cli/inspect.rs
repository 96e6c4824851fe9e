//! `rehost inspect FILE`: will each server boot on EC2 and run its configure script? Reads every
//! disk read-only through the replication sources and prints a verdict per server with its
//! findings and fixes. Results are kept in the state, keyed by what was read: a server whose
//! disks are unchanged is not read again (`--fresh` reads every disk anyway). Exit 0 whatever
//! the verdicts (launch pre-flight is where they refuse); 2 for an invalid file or an unknown
//! --server; 1 when a disk cannot be opened.

use std::path::PathBuf;

use anyhow::Context;
use rehost::replication_jobs::server_job;
use rehost_replication::DiskJob;
use rehost_replication::inspect::inspect_cached;

use crate::cli::args::{AwsArgs, OutputFormat, StateArg, open_state};
use crate::cli::common::{load_app, validate_server_ids};
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Inspect only these servers (repeatable); default: all.
    #[arg(long = "server", value_name = "ID")]
    pub servers: Vec<String>,
    /// Read every disk again, even when the state holds a result for the disks as they are.
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub state: StateArg,
    /// Reaches a state on S3 (the disks themselves are read locally).
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    validate_server_ids(&app, &args.servers)?;
    // The disks exactly as replication reads them: same names, formats and checks.
    let chosen: Vec<(String, Vec<DiskJob>)> = app
        .servers_in_launch_order()
        .into_iter()
        .filter(|s| args.servers.is_empty() || args.servers.contains(&s.id))
        .map(|s| (s.id.clone(), server_job(&app, s, None).disks))
        .collect();
    let store = open_state(&args.state.resolve(&app)?, &args.aws).await?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for r in inspect_cached(store.as_ref(), &app.name, &chosen, args.fresh).await? {
        match r {
            Ok(inspected) => {
                if inspected.cached {
                    print::inspection_reused(io.err, &inspected)?;
                }
                reports.push(inspected.inspection);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let out = &mut *io.out;
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({"application": app.name, "servers": reports});
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
        }
        OutputFormat::Text => print::inspections(out, &reports),
    }
    .context("cannot write to standard output")?;
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("\n"))
    }
}
