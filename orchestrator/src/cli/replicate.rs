//! `rehost replicate FILE`: copy the chosen servers' disks block by block into EBS snapshots and
//! register an AMI per server, once (`--once`, the default), on each server's schedule
//! (`--watch`), or as one of several replication hosts sharing an S3 state (`--worker`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use rehost::error::InvalidInput;
use rehost::launch::AwsClients;
use rehost::replication_jobs::scheduled_jobs;
use rehost_replication::state::StateLocation;
use rehost_replication::watch::{DEFAULT_PARALLEL, replicate_all, watch};
use rehost_replication::worker::{WorkerOptions, readable, run_worker};
use rehost_replication::{Architecture, ProgressMode, ReplicateOptions, Replicator, ServerReport};

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
    /// seedTime; a failed run is retried at the next slot. Ctrl-C, SIGTERM or SIGHUP stops it
    /// (runs in flight resume next time).
    #[arg(long)]
    pub watch: bool,
    /// Be one of several replication hosts sharing an S3 state, with no coordinator: replicate
    /// the due servers whose disks this host can read, each under a lease on the state, on
    /// their schedules (as --watch); take over a server whose holder died once its lease
    /// expires, resuming its run. Ctrl-C, SIGTERM or SIGHUP stops it, the leases given back.
    #[arg(long, conflicts_with_all = ["watch", "once"])]
    pub worker: bool,
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
    if args.worker && matches!(location, StateLocation::File(_)) {
        return Err(InvalidInput::new(format!(
            "--worker needs a state the replication hosts share: {location} is a local file; \
             use --state s3://BUCKET/PREFIX (set up with `rehost state init`)"
        ))
        .into());
    }
    let store = bound_state(&location, &args.aws, &app, &AwsClients::new(&sdk)).await?;
    // Workers exclude each other per server (leases), never per application.
    let _lock = if args.worker {
        None
    } else {
        Some(store.lock_app(&app.name).await?)
    };
    if args.worker {
        // Only the servers this host can read are its to inspect and replicate.
        let (mine, others) = readable(&jobs);
        if !others.is_empty() {
            writeln!(
                io.err,
                "leaving {} server{} to other workers (disks not readable here): {}",
                others.len(),
                if others.len() == 1 { "" } else { "s" },
                others.join(", ")
            )?;
        }
        jobs = mine.into_iter().map(|i| jobs[i].clone()).collect();
    }
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

    if args.worker {
        let Io { out, err } = io;
        let opts = WorkerOptions {
            parallel,
            lease_ttl: rehost_replication::state::s3::lease_ttl_from_env(),
        };
        run_worker(&replicator, &jobs, &opts, shutdown_signal(), |report| {
            print_report(*out, args.output, report)
        })
        .await
        .context("replication worker stopped")?;
        let _ = writeln!(err, "worker stopped");
        return Ok(());
    }

    if args.watch {
        let Io { out, .. } = io;
        // A report that cannot be printed must not stop the replication it reports on.
        watch(&replicator, &jobs, parallel, shutdown_signal(), |report| {
            print_report(*out, args.output, report)
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

/// One report line as it comes (`--watch`, `--worker`). A report that cannot be printed must
/// not stop the replication it reports on.
fn print_report(out: &mut dyn Write, format: OutputFormat, report: &ServerReport) {
    let _ = match format {
        OutputFormat::Text => print::report_line(out, report),
        OutputFormat::Json => serde_json::to_string(report)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(out, "{line}")),
    };
}

/// Resolves at Ctrl-C (SIGINT), SIGTERM (a service manager stopping the worker or the watch)
/// or SIGHUP (its terminal closed), saying what stopping means.
async fn shutdown_signal() {
    let signal = crate::cli::signals::interrupted().await;
    tracing::warn!(
        "stopping at {signal}: any leases held are given back; an interrupted run resumes next time"
    );
}
