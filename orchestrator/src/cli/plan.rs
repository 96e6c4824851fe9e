//! `rehost plan FILE`: what a launch would do, changing nothing.

use std::path::PathBuf;

use rehost::error::InvalidInput;
use rehost::launch::{AwsClients, preview};
use rehost::template::render_package;

use crate::cli::args::{AwsArgs, OutputFormat, TemplateFlags};
use crate::cli::common::{exit_code_of, load_app};
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub template: TemplateFlags,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    if args.template.portable {
        return Err(InvalidInput::new(
            "--portable templates are launched in other accounts: plan without it",
        )
        .into());
    }
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let (options, _) = args
        .template
        .options(&app, &args.aws, Some(&clients), io.err)
        .await?;
    let package = render_package(&app, &options)?;
    let preview = preview::preview(&clients, &app, options.mode, &package)
        .await
        .map_err(exit_code_of)?;
    match args.output {
        OutputFormat::Json => writeln!(io.out, "{}", serde_json::to_string_pretty(&preview)?)?,
        OutputFormat::Text => print::preview(io.out, &preview)?,
    }
    Ok(())
}
