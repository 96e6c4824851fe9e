//! `rehost share FILE --account ID...`: grant other accounts the latest AMIs and their
//! snapshots, and write the portable template they launch.

use std::path::PathBuf;

use rehost::app::Mode;
use rehost::launch::{AwsClients, share};
use rehost::template::{RenderOptions, render};

use crate::cli::args::{AwsArgs, StateArg, choice};
use crate::cli::common::{bound_state, exit_code_of, load_app, write_output};
use crate::cli::io::Io;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Account to share with (repeatable).
    #[arg(long = "account", value_name = "ID", required = true)]
    pub accounts: Vec<String>,
    /// The mode whose launch settings the portable template carries (default test, as
    /// everywhere: cutover must be named).
    #[arg(long, default_value = "test", value_parser = choice::<Mode>())]
    pub mode: Mode,
    /// Render without launch gates.
    #[arg(long)]
    pub no_health_gate: bool,
    /// Where to write the portable template (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let location = args.state.resolve(&app)?;
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let store = bound_state(&location, &args.aws, &app, &clients).await?;
    let amis = store.latest_amis(&app.name).await?;
    let shared = share::share(&clients, &app, &amis, &args.accounts)
        .await
        .map_err(exit_code_of)?;
    for s in &shared {
        writeln!(
            io.err,
            "shared {}: {} and snapshots {} with {}",
            s.server,
            s.ami_id,
            s.snapshot_ids.join(", "),
            args.accounts.join(", ")
        )?;
    }
    if let Some(note) = share::kms_note(&shared, &args.accounts) {
        writeln!(io.err, "note: {note}")?;
    }
    let options = RenderOptions {
        mode: args.mode,
        portable: true,
        health_gate: !args.no_health_gate,
        amis: shared
            .iter()
            .map(|s| (s.server.clone(), s.ami_id.clone()))
            .collect(),
    };
    write_output(
        args.output.as_deref(),
        &render(&app, &options).to_json_pretty(),
        io.out,
    )
}
