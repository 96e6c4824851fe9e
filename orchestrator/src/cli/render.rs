//! `rehost render FILE`: the application's CloudFormation template.

use std::path::PathBuf;

use rehost::limits::MAX_S3_BODY;
use rehost::template::render;

use crate::cli::args::{AwsArgs, TemplateFlags};
use crate::cli::common::{load_app, write_output};
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
    /// Write to this file instead of standard output (atomically).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let app = load_app(&args.file, io.err)?.app;
    let options = args
        .template
        .options(&app, &AwsArgs::default(), None)
        .await?;
    let template = render(&app, &options);
    let text = match args.format {
        Format::Json => {
            let pretty = template.to_json_pretty();
            if pretty.len() > MAX_S3_BODY {
                // Indentation alone can push a large template over CloudFormation's limit.
                writeln!(
                    io.err,
                    "note: the indented template would be {} bytes, over CloudFormation's {MAX_S3_BODY}: writing it compact",
                    pretty.len(),
                )?;
                template.to_json_compact() + "\n"
            } else {
                pretty
            }
        }
        Format::Yaml => template.to_yaml(),
    };
    write_output(args.output.as_deref(), &text, io.out)
}
