//! `rehost render FILE`: the application's CloudFormation template.

use std::path::PathBuf;

use rehost::template::render_package;

use crate::cli::args::{AwsArgs, TemplateFlags};
use crate::cli::common::{load_app, write_rendered};
use crate::cli::io::Io;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub template: TemplateFlags,
    /// Write to this file instead of standard output (atomically); for an application
    /// launched as nested stacks, the directory to write the parent and its children to.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let (options, _) = args
        .template
        .options(&app, &AwsArgs::default(), None, io.err)
        .await?;
    let package = render_package(&app, &options)?;
    let yaml = matches!(args.format, Format::Yaml);
    write_rendered(&app.name, package, args.output.as_deref(), yaml, io)
}
