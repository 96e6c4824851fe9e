//! `rehost migrate FILE`: replicate every server (or reuse AMIs newer than `--max-age`), then
//! launch the whole application in one action.

use std::path::PathBuf;

use rehost::launch::AwsClients;
use rehost::launch::deploy::refuse_portable;
use rehost::replication_jobs::{scheduled_jobs, split_fresh};
use rehost_replication::state::LaunchKind;
use rehost_replication::watch::{DEFAULT_PARALLEL, replicate_all};
use rehost_replication::{ReplicateOptions, Replicator};
use time::OffsetDateTime;

use crate::cli::args::{AwsArgs, LaunchFlags, TemplateFlags};
use crate::cli::common::{all_replicated, exit_code_of, inspect_jobs, load_app};
use crate::cli::guarded::Guarded;
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Reuse a server's latest AMI when it is younger than this (e.g. 30m, 6h, 2d); default:
    /// replicate every server now.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<time::Duration>,
    /// Servers replicated at once (they share one bound on blocks in flight and on memory).
    #[arg(long, default_value_t = DEFAULT_PARALLEL as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    #[command(flatten)]
    pub launch: LaunchFlags,
    #[command(flatten)]
    pub template: TemplateFlags,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `90s`, `30m`, `6h`, `2d`.
pub fn parse_age(s: &str) -> Result<time::Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and a unit, e.g. 6h"))?;
    match unit {
        "s" => Ok(time::Duration::seconds(n)),
        "m" => Ok(time::Duration::minutes(n)),
        "h" => Ok(time::Duration::hours(n)),
        "d" => Ok(time::Duration::days(n)),
        _ => Err(format!("`{s}`: the unit must be s, m, h or d")),
    }
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    // Refused before replicating anything: a portable template never launches here.
    refuse_portable(args.template.portable).map_err(exit_code_of)?;
    let sdk = args.aws.sdk_config().await;
    let clients = AwsClients::new(&sdk);
    let guarded = Guarded {
        clients: &clients,
        app: &app,
        template: &args.template,
        flags: &args.launch,
        aws: &args.aws,
        kind: LaunchKind::Migrate,
    };
    let store = guarded.store().await?;
    let (options, inspections) = guarded.options(io).await?;
    let mut rec = guarded.start_record(&options).await;
    if !args.launch.force {
        // What does not depend on the AMIs refuses a cutover before anything is replicated.
        guarded
            .hold(store.as_ref(), &mut rec, None, &inspections, io)
            .await?;
    }
    let latest = store.latest_amis(&app.name).await?;
    let (mut stale, reused) = split_fresh(
        scheduled_jobs(&app, &[], None),
        &latest,
        args.max_age,
        OffsetDateTime::now_utc(),
    );
    for r in &reused {
        print::reused(io.out, r)?;
    }
    if !stale.is_empty() {
        let _lock = store.lock_app(&app.name).await?;
        inspect_jobs(store.as_ref(), &app, &mut stale, false, io.err).await?;
        let replicator = Replicator::new(&sdk, store.clone(), ReplicateOptions::default());
        let reports = replicate_all(&replicator, &stale, usize::from(args.parallel)).await;
        for report in &reports {
            print::report_line(io.out, report)?;
        }
        if let Err(e) = all_replicated(&reports) {
            guarded
                .refuse(store.as_ref(), &mut rec, format!("not launched: {e}"))
                .await?;
            return Err(e.context("not launching"));
        }
    }
    // The AMIs and inspections of this replication.
    let (options, inspections) = guarded
        .hold_replicated(store.as_ref(), &mut rec, io)
        .await?;
    guarded
        .deploy(store.as_ref(), &options, inspections, &mut rec, io)
        .await
}
