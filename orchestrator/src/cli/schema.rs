//! `rehost schema`: the JSON Schema of the application file, generated from the model types.

use std::path::PathBuf;

use crate::cli::common::write_output;
use crate::cli::io::Io;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    write_output(
        args.output.as_deref(),
        &rehost::model::json_schema(),
        io.out,
    )
}
