//! `rehost plan FILE`: what a launch would do, changing nothing.

use std::path::PathBuf;

use crate::cli::common::{AwsArgs, OutputFormat, load_app};
use crate::cli::launch::invalid_if_user_error;
use crate::cli::render::TemplateFlags;
use rehost::error::InvalidInput;
use rehost::launch::{AwsClients, changes};
use rehost::template::render;

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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let app = load_app(&args.file)?.app;
    if args.template.portable {
        return Err(InvalidInput::new(
            "--portable templates are launched in other accounts: plan without it",
        )
        .into());
    }
    let options = args.template.options(&app).await?;
    let template = render(&app, &options);
    let clients = AwsClients::new(&args.aws.sdk_config().await);
    let plan = changes::plan(&clients, &app, options.mode, &template)
        .await
        .map_err(|e| invalid_if_user_error(e.into()))?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        OutputFormat::Text => changes::print(&plan),
    }
    Ok(())
}
