//! `rehost replicate FILE`: copy the chosen servers' disks block by block into EBS snapshots and
//! register an AMI per server, once (`--once`, the default) or on each server's schedule (`--watch`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rehost::launch::AwsClients;
use rehost::replication_jobs::scheduled_jobs;
use rehost_replication::watch::{DEFAULT_PARALLEL, replicate_all, watch};
use rehost_replication::{Architecture, ProgressMode, ReplicateOptions, Replicator};

use crate::cli::args::{AwsArgs, OutputFormat, StateArg, choice};
use crate::cli::common::{
    all_replicated, bound_state, inspect_jobs, load_app, validate_server_ids,
};
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Replicate only these servers (repeatable); default: all.
    #[arg(long = "server", value_name = "ID")]
    pub servers: Vec<String>,
    /// Replicate each chosen server once and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Keep running: replicate each server on its frequency (runOnce servers once), from its
    /// seedTime; a failed run is retried at the next slot. Ctrl-C stops after the current step.
    #[arg(long)]
    pub watch: bool,
    /// Override the servers' AMI architecture.
    #[arg(long, value_parser = choice::<Architecture>())]
    pub architecture: Option<Architecture>,
    /// Servers replicated at once. They share one bound on blocks in flight (`--concurrency`),
    /// one pool of block buffers and the hashing threads, so memory does not grow with it.
    #[arg(long, default_value_t = DEFAULT_PARALLEL as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// PutSnapshotBlock calls in flight, across every server and disk being replicated.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    validate_server_ids(&app, &args.servers)?;
    let mut jobs = scheduled_jobs(&app, &args.servers, args.architecture);
    let sdk = args.aws.sdk_config().await;
    let location = args.state.resolve(&app)?;
    let store = bound_state(&location, &args.aws, &app, &AwsClients::new(&sdk)).await?;
    let _lock = store.lock_app(&app.name).await?;
    // The disks are read anyway: inspect them first (cached), for the AMIs' boot mode and
    // architecture, and refuse settings they contradict before any snapshot starts.
    inspect_jobs(
        store.as_ref(),
        &app,
        &mut jobs,
        args.architecture.is_some(),
        io.err,
    )
    .await?;
    let options = ReplicateOptions {
        upload_concurrency: usize::from(args.concurrency),
        progress: match args.output {
            OutputFormat::Json => ProgressMode::Quiet,
            OutputFormat::Text => ProgressMode::auto(),
        },
        ..ReplicateOptions::default()
    };
    let replicator = Replicator::new(&sdk, store, options);
    let parallel = usize::from(args.parallel);

    if args.watch {
        let Io { out, err } = io;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            let _ = writeln!(
                err,
                "interrupted: stopping; an interrupted run resumes next time"
            );
        };
        // A report that cannot be printed must not stop the replication it reports on.
        watch(&replicator, &jobs, parallel, shutdown, |report| {
            let _ = match args.output {
                OutputFormat::Text => print::report_line(*out, report),
                OutputFormat::Json => serde_json::to_string(report)
                    .map_err(std::io::Error::other)
                    .and_then(|line| writeln!(out, "{line}")),
            };
        })
        .await
        .context("replication watch stopped")?;
        return Ok(());
    }

    let reports = replicate_all(&replicator, &jobs, parallel).await;
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({"application": app.name, "servers": reports});
            writeln!(io.out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        OutputFormat::Text => {
            for report in &reports {
                print::report_line(io.out, report)?;
            }
        }
    }
    all_replicated(&reports)
}
