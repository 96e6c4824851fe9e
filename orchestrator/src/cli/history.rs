//! `rehost history FILE`: the application's launches and replication runs, newest first, from
//! the state alone (offline: no AWS call for a local state).

use std::path::PathBuf;

use rehost::launch::history::timeline;
use rehost_replication::state::ServerKey;

use crate::cli::args::{AwsArgs, OutputFormat, StateArg, open_state_to_read};
use crate::cli::common::load_app;
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub state: StateArg,
    /// Show at most this many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let location = args.state.resolve(&app)?;
    // A missing state means nothing happened yet; reading does not create it.
    let (launches, runs) = if let Some(store) = open_state_to_read(&location, &args.aws).await? {
        let launches = store.launches(&app.name, args.limit).await?;
        let mut runs = Vec::new();
        for s in &app.servers {
            let key = ServerKey::new(&app.name, &s.id);
            runs.extend(store.server_history(&key, args.limit).await?);
        }
        (launches, runs)
    } else {
        (Vec::new(), Vec::new())
    };
    let history = timeline(&app.name, launches, &runs, args.limit);
    match args.output {
        OutputFormat::Json => writeln!(io.out, "{}", serde_json::to_string_pretty(&history)?)?,
        OutputFormat::Text => print::history(io.out, &history)?,
    }
    Ok(())
}
