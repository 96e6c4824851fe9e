//! `rehost validate FILE...`: every problem of every file, as FILE:LINE:COL lines.

use std::path::PathBuf;

use rehost::error::InvalidInput;

use crate::cli::common::load_app;
use crate::cli::io::Io;
use crate::cli::print;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Application files (YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: Args, io: &mut Io<'_>) -> anyhow::Result<()> {
    let mut invalid = 0;
    for file in &args.files {
        match load_app(file, io.err) {
            Ok(loaded) => print::valid_app(io.out, file, &loaded.app)?,
            Err(e) if e.is::<InvalidInput>() => {
                writeln!(io.err, "{e}")?;
                invalid += 1;
            }
            Err(e) => return Err(e),
        }
    }
    if invalid > 0 {
        return Err(
            InvalidInput::new(format!("{invalid} of {} files invalid", args.files.len())).into(),
        );
    }
    Ok(())
}
