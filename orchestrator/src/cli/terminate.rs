//! `rehost terminate FILE`: delete a mode's stack and wait until it is gone.

use std::path::PathBuf;
use std::time::Duration;

use rehost::app::Mode;
use rehost::error::InvalidInput;
use rehost::launch::{AwsClients, stack};

use crate::cli::args::{AwsArgs, choice};
use crate::cli::common::{exit_code_of, load_app};
use crate::cli::io::Io;
use crate::cli::progress::Progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Which launch to remove (default: the test launch).
    #[arg(long, default_value = "test", value_parser = choice::<Mode>())]
    pub mode: Mode,
    /// Required to terminate the cutover stack: it runs production.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let name = app.stack_name(args.mode);
    if args.mode == Mode::Cutover && !args.yes {
        return Err(InvalidInput::new(format!(
            "refusing to terminate the cutover stack {name}, which runs the migrated application: add --yes if you mean it"
        ))
        .into());
    }
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let mut progress = Progress::lines(io.err);
    let deleted = stack::delete(
        &clients,
        &app,
        args.mode,
        Duration::from_secs(3600),
        &mut progress,
    )
    .await
    .map_err(exit_code_of)?;
    if deleted {
        writeln!(io.out, "stack {name} deleted")?;
    } else {
        writeln!(io.out, "stack {name} does not exist: nothing to terminate")?;
    }
    Ok(())
}
