//! `rehost state init s3://BUCKET/PREFIX` sets up a state on S3 for a team; `rehost state
//! migrate --from PATH --to s3://...` moves an existing state there.

use anyhow::Context;
use rehost::error::InvalidInput;
use rehost_replication::state::s3::{BucketEncryption, NONCURRENT_DAYS, S3Store};
use rehost_replication::state::{StateLocation, migrate};

use crate::cli::args::{AwsArgs, open_state};
use crate::cli::common::state_error;
use crate::cli::io::Io;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Set up a state on S3: create the bucket (private, encrypted, versioned) or check the
    /// one there, and mark the prefix as a rehost state
    Init(InitArgs),
    /// Move a whole state (every application in it) to another place, typically a local
    /// SQLite file to S3; run again, it finishes an interrupted move and changes nothing else
    Migrate(MigrateArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// s3://BUCKET/PREFIX
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    pub location: String,
    /// Encrypt a new bucket with this KMS key (id, alias or ARN) instead of SSE-S3.
    #[arg(long, value_name = "KEY")]
    pub kms_key: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The state to move (a SQLite file, or s3://BUCKET/PREFIX).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub from: String,
    /// Where to move it.
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub to: String,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    match args.command {
        StateCommand::Init(args) => init(args, io).await,
        StateCommand::Migrate(args) => migrate_state(args, io).await,
    }
}

async fn init(args: InitArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let location = StateLocation::parse(&args.location, None).map_err(state_error)?;
    let StateLocation::S3 { bucket, prefix } = &location else {
        return Err(InvalidInput::new(format!(
            "{location}: `state init` sets up a state on S3 (s3://BUCKET/PREFIX); a SQLite file needs no setup"
        ))
        .into());
    };
    let encryption = args
        .kms_key
        .map_or(BucketEncryption::S3Managed, BucketEncryption::Kms);
    let sdk = args.aws.sdk_config().await;
    let report = S3Store::init(&sdk, bucket, prefix, encryption)
        .await
        .map_err(state_error)?;
    if report.bucket_created {
        writeln!(
            io.out,
            "created bucket {bucket} for account {}: public access blocked, encrypted with {}, \
             versioned (old versions expire after {NONCURRENT_DAYS} days)",
            report.account, report.encryption
        )?;
    } else {
        writeln!(
            io.out,
            "bucket {bucket} belongs to account {}, blocks public access, is encrypted with {} and versioned",
            report.account, report.encryption
        )?;
    }
    if report.state_created {
        writeln!(io.out, "state {} is ready", report.location)?;
    } else {
        writeln!(io.out, "state {} was already set up", report.location)?;
    }
    Ok(())
}

async fn migrate_state(args: MigrateArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let from = StateLocation::parse(&args.from, None).map_err(state_error)?;
    let to = StateLocation::parse(&args.to, None).map_err(state_error)?;
    if let StateLocation::File(path) = &from
        && !path.exists()
    {
        return Err(InvalidInput::new(format!("--from {}: no such file", path.display())).into());
    }
    let source = open_state(&from, &args.aws).await?;
    let destination = open_state(&to, &args.aws).await?;
    let done = migrate(&*source, &*destination)
        .await
        .map_err(state_error)
        .with_context(|| format!("moving the state from {from} to {to}"))?;
    for key in &done.moved {
        writeln!(io.out, "moved {key}")?;
    }
    for key in &done.already_there {
        writeln!(io.out, "already there: {key}")?;
    }
    writeln!(
        io.out,
        "{} launch record{}, {} inspection{} and {} accepted risk{} moved",
        done.launches,
        plural(done.launches),
        done.inspections,
        plural(done.inspections),
        done.accepted_risks,
        plural(done.accepted_risks)
    )?;
    writeln!(
        io.out,
        "{} server{} moved, {} already there, from {from} to {to}",
        done.moved.len(),
        plural(done.moved.len()),
        done.already_there.len()
    )?;
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
