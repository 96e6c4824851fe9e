//! `rehost replicate FILE`: copy the chosen servers' disks block by block into EBS snapshots and
//! register an AMI per server, once (`--once`, the default) or on each server's schedule (`--watch`).

use std::path::PathBuf;

use anyhow::Context;
use rehost_replication::watch::{WatchEntry, watch};
use rehost_replication::{
    ProgressMode, ReplicateOptions, Replicator, ServerReport, SqliteStore, StateStore,
};

use crate::cli::common::{AwsArgs, OutputFormat, load_app, state_path, validate_server_ids};
use rehost::replication_plan;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ArchitectureArg {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

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
    #[arg(long, value_enum)]
    pub architecture: Option<ArchitectureArg>,
    /// PutSnapshotBlock calls in flight per disk.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `--state PATH`: the replication state database (default `.rehost/state.db` beside the file).
#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    #[arg(long = "state", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// Replicates the planned servers once each, one after another, and returns their reports.
pub async fn replicate_once(replicator: &Replicator, entries: &[WatchEntry]) -> Vec<ServerReport> {
    let mut reports = Vec::with_capacity(entries.len());
    for entry in entries {
        reports.push(replicator.replicate(&entry.job).await);
    }
    reports
}

pub fn print_report_line(report: &ServerReport) {
    match (&report.ami_id, &report.error) {
        (Some(ami), _) => {
            let uploaded: u64 = report.snapshots.iter().map(|s| s.blocks_uploaded).sum();
            let total: u64 = report.snapshots.iter().map(|s| s.blocks_total).sum();
            println!(
                "{}: {ami} ({uploaded} of {total} blocks sent, {:.1} s){}",
                report.server,
                report.seconds,
                if report.resumed { ", resumed" } else { "" }
            );
        }
        (None, error) => println!(
            "{}: failed: {}",
            report.server,
            error.as_deref().unwrap_or("unknown error")
        ),
    }
    for warning in &report.warnings {
        println!("{}: warning: {warning}", report.server);
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
    validate_server_ids(&app, &args.servers)?;
    let architecture = args.architecture.map(|a| match a {
        ArchitectureArg::X86_64 => rehost::app::Architecture::X86_64,
        ArchitectureArg::Arm64 => rehost::app::Architecture::Arm64,
    });
    let entries = replication_plan::plan(&app, &args.servers, architecture);
    let state = state_path(args.state.path.as_deref(), &args.file);
    let store = SqliteStore::open(&state).await?;
    let _lock = store.lock_app(&app.name).await?;
    let sdk = args.aws.sdk_config().await;
    let options = ReplicateOptions {
        upload_concurrency: usize::from(args.concurrency),
        progress: match args.output {
            OutputFormat::Json => ProgressMode::Quiet,
            OutputFormat::Text => ProgressMode::auto(),
        },
        ..ReplicateOptions::default()
    };
    let replicator = Replicator::new(&sdk, std::sync::Arc::new(store), options);

    if args.watch {
        let text = matches!(args.output, OutputFormat::Text);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("interrupted: stopping; an interrupted run resumes next time");
        };
        watch(&replicator, &entries, shutdown, |report| {
            if text {
                print_report_line(report);
            } else if let Ok(line) = serde_json::to_string(report) {
                println!("{line}");
            }
        })
        .await
        .context("replication watch stopped")?;
        return Ok(());
    }

    let reports = replicate_once(&replicator, &entries).await;
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({"application": app.name, "servers": reports});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => reports.iter().for_each(print_report_line),
    }
    all_replicated(&reports)
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
