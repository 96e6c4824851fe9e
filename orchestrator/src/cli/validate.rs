//! `rehost validate FILE...`: every problem of every file, as FILE:LINE:COL lines.

use std::path::PathBuf;

use crate::cli::common::load_app;
use rehost::error::InvalidInput;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Application files (YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut invalid = 0;
    for file in &args.files {
        match load_app(file) {
            Ok(loaded) => {
                let app = &loaded.app;
                println!(
                    "{}: ok: application {}, {} servers in {} groups, {} launch waves",
                    file.display(),
                    app.name,
                    app.servers.len(),
                    app.groups.len(),
                    app.graph.waves().len()
                );
            }
            Err(e) if e.is::<InvalidInput>() => {
                eprintln!("{e}");
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
