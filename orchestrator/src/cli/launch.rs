//! `rehost launch FILE`: pre-flight, then create or update the mode's stack, follow it wave by
//! wave, and end with the servers in launch order. Recorded in the launch history; a cutover
//! is held by the guardrails.

use std::path::PathBuf;

use rehost::launch::AwsClients;

use crate::cli::args::{AwsArgs, LaunchFlags, TemplateFlags};
use rehost_replication::state::LaunchKind;

use crate::cli::common::load_app;
use crate::cli::guarded::Guarded;
use crate::cli::io::Io;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub launch: LaunchFlags,
    #[command(flatten)]
    pub template: TemplateFlags,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    Guarded {
        clients: &clients,
        app: &app,
        template: &args.template,
        flags: &args.launch,
        aws: &args.aws,
        kind: LaunchKind::Launch,
    }
    .run(io)
    .await
}
