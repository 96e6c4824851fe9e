//! `rehost migrate FILE`: replicate every server (or reuse AMIs newer than `--max-age`), then
//! launch the whole application in one action.

use std::path::PathBuf;

use anyhow::Context;
use rehost_replication::{ReplicateOptions, Replicator, SqliteStore, StateStore};
use time::OffsetDateTime;

use crate::cli::common::{AwsArgs, load_app, state_path};
use crate::cli::launch::{LaunchFlags, invalid_if_user_error, launch};
use crate::cli::render::TemplateFlags;
use crate::cli::replicate::{all_replicated, print_report_line, replicate_once};
use rehost::launch::AwsClients;
use rehost::replication_plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Reuse a server's latest AMI when it is younger than this (e.g. 30m, 6h, 2d); default:
    /// replicate every server now.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<time::Duration>,
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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
    let state = state_path(args.template.state.as_deref(), &args.file);
    let store = SqliteStore::open(&state).await?;
    let now = OffsetDateTime::now_utc();
    let latest = store.latest_amis(&app.name).await?;
    let plan: Vec<_> = replication_plan::plan(&app, &[], None)
        .into_iter()
        .filter(
            |entry| match (args.max_age, latest.get(&entry.job.server)) {
                (Some(age), Some(ami)) => {
                    let fresh = now - ami.created_at <= age;
                    if fresh {
                        println!(
                            "{}: reusing {} from {}",
                            entry.job.server, ami.ami_id, ami.created_at
                        );
                    }
                    !fresh
                }
                _ => true,
            },
        )
        .collect();
    let sdk = args.aws.sdk_config().await;
    if !plan.is_empty() {
        let _lock = store.lock_app(&app.name).await?;
        let replicator = Replicator::new(
            &sdk,
            std::sync::Arc::new(store),
            ReplicateOptions::default(),
        );
        let reports = replicate_once(&replicator, &plan).await;
        reports.iter().for_each(print_report_line);
        all_replicated(&reports).context("not launching")?;
    }
    let clients = AwsClients::new(&sdk);
    launch(&clients, &app, &args.template, &args.launch)
        .await
        .map_err(invalid_if_user_error)
}
