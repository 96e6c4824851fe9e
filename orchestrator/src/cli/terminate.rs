//! `rehost terminate FILE`: delete a mode's stack and wait until it is gone.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::common::{AwsArgs, ModeArg, load_app};
use crate::cli::launch::Progress;
use rehost::app::Mode;
use rehost::error::InvalidInput;
use rehost::launch::{AwsClients, stack};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    /// Which launch to remove (default: the test launch).
    #[arg(long, value_enum, default_value_t = ModeArg::Test)]
    pub mode: ModeArg,
    /// Required to terminate the cutover stack: it runs production.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
    let mode: Mode = args.mode.into();
    let name = app.stack_name(mode);
    if mode == Mode::Cutover && !args.yes {
        return Err(InvalidInput::new(format!(
            "refusing to terminate the cutover stack {name}, which runs the migrated application: add --yes if you mean it"
        ))
        .into());
    }
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let mut progress = Progress::Lines;
    if stack::delete(&clients, &name, Duration::from_secs(3600), &mut progress).await? {
        println!("stack {name} deleted");
    } else {
        println!("stack {name} does not exist: nothing to terminate");
    }
    Ok(())
}
