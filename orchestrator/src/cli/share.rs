//! `rehost share FILE --account ID...`: grant other accounts the latest AMIs and their
//! snapshots, and write the portable template they launch.

use std::path::PathBuf;

use rehost::app::Mode;
use rehost::error::InvalidInput;
use rehost::launch::{AwsClients, share};
use rehost::template::{Package, RenderOptions, render_package};

use crate::cli::args::{AwsArgs, StateArg, choice};
use crate::cli::common::{bound_state, exit_code_of, load_app, write_rendered};
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
    /// Render as nested stacks even when one template would do (larger applications always
    /// are).
    #[arg(long)]
    pub nested: bool,
    /// Where to write the portable template (default: standard output); for nested stacks,
    /// the directory to write the parent and its children to.
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
    let mut options = RenderOptions {
        mode: args.mode,
        portable: true,
        health_gate: !args.no_health_gate,
        nested: args.nested,
        amis: Default::default(),
    };
    // A nested package needs a directory: refused before anything is shared.
    if args.output.is_none() && matches!(render_package(&app, &options)?, Package::Nested(_)) {
        return Err(InvalidInput::new(format!(
            "{} is rendered as nested stacks (a parent template and a child per group): give a \
             directory to write them to with -o DIR; nothing was shared",
            app.name
        ))
        .into());
    }
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
    options.amis = shared
        .iter()
        .map(|s| (s.server.clone(), s.ami_id.clone()))
        .collect();
    let package = render_package(&app, &options)?;
    write_rendered(&app.name, package, args.output.as_deref(), false, io)
}
