//! `rehost status FILE`: replication and launch state of every server, in one place.

use std::path::PathBuf;

use rehost::launch::{AwsClients, status};

use crate::cli::args::{AwsArgs, OutputFormat, StateArg, open_state_to_read};
use crate::cli::common::{check_bound_account, load_app};
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let store = open_state_to_read(&args.state.resolve(&app)?, &args.aws).await?;
    let store = store.as_deref();
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    if let Some(store) = store {
        check_bound_account(store, &app.name, &clients).await?;
    }
    let servers = status::replication(&app, store, time::OffsetDateTime::now_utc()).await?;
    let stacks = status::stacks(&clients, &app).await;
    let unreachable: Vec<String> = stacks.iter().filter_map(|s| s.error.clone()).collect();
    let report = status::Status {
        application: app.name.clone(),
        servers,
        stacks,
    };
    match args.output {
        OutputFormat::Json => writeln!(io.out, "{}", serde_json::to_string_pretty(&report)?)?,
        OutputFormat::Text => print::status(io.out, &report)?,
    }
    if let Some(first) = unreachable.first() {
        anyhow::bail!("stack status incomplete: {first}");
    }
    Ok(())
}
